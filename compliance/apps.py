from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ComplianceConfig(AppConfig):
    name = "compliance"
    verbose_name = _("Compliance")

    def ready(self):
        # The audit trail records logins, logouts and failed logins (compliance/audit.py).
        from compliance import audit, twofactor

        audit.connect_signals()
        # Whether a user who may go without a second factor chose one, noted in the session at login.
        twofactor.connect_signals()
