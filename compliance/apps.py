from django.apps import AppConfig
from django.db.backends.signals import connection_created
from django.db.models.signals import post_migrate
from django.utils.translation import gettext_lazy as _


class ComplianceConfig(AppConfig):
    name = "compliance"
    verbose_name = _("Compliance")

    def ready(self):
        # The audit trail records logins, logouts and failed logins (compliance/audit.py).
        from compliance import audit, triggers, twofactor

        audit.connect_signals()
        # Evidence is append-only in the database too (compliance/triggers.py): SQLite's triggers
        # ask this process's connections whether maintenance is on; after every migrate the
        # triggers are re-installed (SQLite drops them when Django rebuilds a table).
        connection_created.connect(triggers.register_sqlite_function, dispatch_uid="compliance.evidence_sqlite")
        post_migrate.connect(triggers.install_all, sender=self, dispatch_uid="compliance.evidence_triggers")
        # Whether a user who may go without a second factor chose one, noted in the session at login.
        twofactor.connect_signals()
