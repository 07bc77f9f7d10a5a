from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ComplianceConfig(AppConfig):
    name = "compliance"
    verbose_name = _("Compliance")

    def ready(self):
        # The audit trail records logins, logouts and failed logins (compliance/audit.py).
        from compliance import audit

        audit.connect_signals()
