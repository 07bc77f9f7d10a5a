"""reset_2fa USERNAME [--reason TEXT]: delete a user's second factors (authenticator, recovery codes).

For a user who lost both the phone and the recovery codes (docs/access-control.md#two-factor-login).
Their sessions lose their verification at once; at the next login an analyst enrols a new
authenticator, another role logs in with the password alone until they turn it on again. Recorded
in the audit trail (`2fa.reset`, with the reason). The last line on stdout is JSON
`{"user": NAME, "devices_deleted": N}`.
"""

from __future__ import annotations

import json

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from compliance.twofactor import twofactor_reset


class Command(BaseCommand):
    help = "Delete a user's two-factor devices and recovery codes (audited); they enrol again at the next login."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--reason", default="", help="why (kept in the audit trail)")

    def handle(self, *args, username: str, reason: str, **options):
        user_model = get_user_model()
        try:
            user = user_model.objects.get(**{user_model.USERNAME_FIELD: username})
        except user_model.DoesNotExist:
            raise CommandError(f"no user {username!r}", returncode=2) from None
        deleted = twofactor_reset(user=user, reason=reason)
        self.stdout.write(json.dumps({"user": user.get_username(), "devices_deleted": deleted}))
