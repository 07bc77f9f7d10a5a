"""Methodology versions: the rules that change published figures, and what changed between them.

Every figure (scorecards, `compliance_report`, the metrics API, exports) carries
`settings.METHODOLOGY_VERSION`, which is `CURRENT` here. The accounting rules live in
compliance/rules.py; the settings that tune them (`rules.Rules`, the deadline) are recorded with the
version in use (`compliance.models.MethodologyRecord`, written by `runmonitor` and
`recompute_measurements`), so a figure can always be recomputed under the rules it was made with:
`manage.py recompute_measurements` replays every notice's checks under the current version.

Bump `CURRENT` (and add an entry below, in English; the pages translate it) whenever a rule changes
what a figure means. docs/methodology.md and `/methodology/` describe the rules in words.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from django.utils.translation import gettext_lazy as _


@dataclass(frozen=True)
class Version:
    number: str
    date: date  # the version took effect
    changes: tuple  # lazily translated sentences


VERSIONS = (
    Version(
        "1.0",
        date(2026, 11, 22),
        (
            _("First published accounting: two consecutive observations of absence confirm a takedown."),
            _("Three unreachable checks spanning a quarter of the deadline are a server-gone takedown."),
            _("403, 429 and 5xx answers counted as unreachable."),
        ),
    ),
    Version(
        "2.0",
        date(2026, 12, 6),
        (
            _(
                "Only evidence of absence is a takedown. 403, 429, any 5xx, a stalled body or a timeout after "
                "the connection was made are 'no evidence': they never make a takedown, however long they last."
            ),
            _(
                "Server gone comes only from network-level failure (connection refused or timed out, no route, "
                "reset before any response) and is provisional: content seen again within two deadlines of the "
                "notification annuls it, and its verdict stays pending until then."
            ),
            _(
                "Every notice counts for its hoster: a notice with a hoster whose host name does not resolve at "
                "its first check is decided as a 404 at the first check; only a notice without any hoster can "
                "be unresolvable."
            ),
            _("Times to takedown keep millisecond precision and are rounded up, never down."),
            _("Open notices stay watched after 30 deadlines, once per deadline, until removed or withdrawn."),
            _("Withdrawn notices (sent in error) are outside every rate."),
        ),
    ),
    Version(
        "2.1",
        date(2026, 12, 6),
        (
            _(
                "Vantage points: with more than one configured, a takedown is confirmed only once absence was "
                "seen from two of them, and server gone needs every one of them to fail at the network level."
            ),
            _(
                "Content seen from one vantage point right after another saw it absent or was refused it is "
                "selective serving: the notice stays online (never a takedown) and is counted as served "
                "selectively."
            ),
        ),
    ),
)
CURRENT = VERSIONS[-1].number


def settings_in_use() -> dict:
    """The settings that change figures under the current version, as recorded with it."""
    from django.conf import settings

    from compliance import rules

    tuned = rules.Rules.from_settings()
    return {
        "confirmations": tuned.confirmations,
        "server_gone_checks": tuned.server_gone_checks,
        "server_gone_share": tuned.server_gone_share,
        "vantages": tuned.vantages,
        "settle_after_deadlines": rules.SETTLE_AFTER_DEADLINES,
        "compliance_deadline_s": settings.COMPLIANCE_DEADLINE,
    }
