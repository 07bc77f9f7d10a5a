"""add_user USERNAME --role ROLE [--hoster SLUG] [--password P] [--token] (README, Commands)."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from compliance import services
from compliance.models import Role


class Command(BaseCommand):
    help = "Create or update a user with a role. With --token, the last line printed is the user's API token."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--role", required=True, choices=Role.values)
        parser.add_argument("--hoster", help="slug of the hoster (hoster users only)")
        parser.add_argument("--password", help="password for page login (must pass the password rules)")
        parser.add_argument("--email", default="")
        parser.add_argument("--token", action="store_true", help="print the user's API token (created if missing)")

    def handle(self, *args, username, role, hoster, password, email, token, **options):
        try:
            user, created, key = services.user_upsert(
                username=username, role=role, hoster_slug=hoster, password=password, email=email, with_token=token
            )
        except ValidationError as exc:
            raise CommandError("password rejected: " + " ".join(exc.messages), returncode=2) from None
        except ValueError as exc:
            raise CommandError(str(exc), returncode=2) from None
        verb = "created" if created else "updated"
        self.stderr.write(f"{verb} user {username} ({role}{f', hoster {hoster}' if hoster else ''})")
        if created and password is None:
            self.stderr.write("no password set: the user can use the API token only (set one with --password)")
        if key:
            self.stdout.write(key)
