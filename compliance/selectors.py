"""Reads shared by pages, the API and reports. Role scoping is decided here and nowhere else.

`notices_visible_to(user)` and `hosters_visible_to(user)` are the one place that says what a
user may see; every page, endpoint and export starts from them. A hoster user sees only its
own hoster's notices; an object outside the queryset is a 404, never a 403 with details.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from django.db.models import QuerySet

from compliance import rules
from compliance.models import DeliveryEvent, Dispute, Hoster, Notice, NoticeEmail, Role

# The verdict's reads live with the verdict (compliance/verdicts.py); reports/ still reaches them here.
from compliance.verdicts import unmeasured_condition


def role_of(user) -> str | None:
    """The user's role; superusers are analysts; anonymous or role-less users have none."""
    if user is None or not user.is_authenticated or not user.is_active:
        return None
    membership = getattr(user, "membership", None)
    if membership is not None:
        return membership.role
    return Role.ANALYST if user.is_superuser else None


def hoster_id_of(user) -> int | None:
    membership = getattr(user, "membership", None)
    return membership.hoster_id if membership is not None and membership.role == Role.HOSTER else None


def can_see_urls(user) -> bool:
    """Raw URLs and host names: analysts, and hoster users for their own notices."""
    return role_of(user) in (Role.ANALYST, Role.HOSTER)


def can_see_addresses(user) -> bool:
    """Server addresses: a check's `resolved_ip`, an attribution's `resolved_ips`, `chosen_ip`,
    candidates' addresses, narrow prefixes and RDAP ranges. The same people as for URLs (analysts,
    hoster users for their own notices): for an IP-literal URL the address *is* the host. Others
    get keyed pseudonyms (`compliance.pseudonym.pseudonymise_address`) and prefixes widened to at
    most /24 or /48 (`coarse_network`); the table per field is in docs/access-control.md."""
    return can_see_urls(user)


def with_visible_repeat_of(qs: QuerySet[Notice], user) -> QuerySet[Notice]:
    """Annotates `visible_repeat_of_id`: the notice a repeat repeats, when `user` may see that
    notice, else NULL. A repeat can follow a notice of another hoster (the URL moved): a hoster
    user must not learn that notice's id, nor even that it exists (docs/access-control.md)."""
    from django.db.models import Case, F, IntegerField, When

    if sees_all_hosters(user):
        return qs.annotate(visible_repeat_of_id=F("repeat_of_id"))
    return qs.annotate(
        visible_repeat_of_id=Case(
            When(repeat_of_id__in=notices_visible_to(user).values("id"), then=F("repeat_of_id")),
            default=None,
            output_field=IntegerField(),
        )
    )


def visible_repeat_of_id(notice: Notice, user) -> int | None:
    """`with_visible_repeat_of` for one notice that was read without the annotation."""
    if hasattr(notice, "visible_repeat_of_id"):
        return notice.visible_repeat_of_id
    if notice.repeat_of_id is None or sees_all_hosters(user):
        return notice.repeat_of_id
    return notice.repeat_of_id if notices_visible_to(user).filter(pk=notice.repeat_of_id).exists() else None


def can_see_content_hashes(user) -> bool:
    """SHA-256 of reported content (a notice's `content_sha256`, a check's `body_sha256`): analysts
    only. A hash of known abuse material is itself restricted: hotlines share such hash lists
    under agreement, and nobody needs them to judge a takedown time."""
    return role_of(user) == Role.ANALYST


def notices_visible_to(user) -> QuerySet[Notice]:
    role = role_of(user)
    qs = Notice.objects.all()
    if role in (Role.ANALYST, Role.MINISTRY, Role.RESEARCHER):
        return qs
    if role == Role.HOSTER:
        # Only notified notices: until the notice e-mail is accepted (NOTIFY_BY_EMAIL=on) the
        # hoster has not been told; its clock (notified_at) has not started yet.
        return qs.filter(hoster_id=hoster_id_of(user), notified_at__isnull=False)
    return qs.none()


def hosters_visible_to(user) -> QuerySet[Hoster]:
    role = role_of(user)
    qs = Hoster.objects.all()
    if role in (Role.ANALYST, Role.MINISTRY, Role.RESEARCHER):
        return qs
    if role == Role.HOSTER:
        return qs.filter(pk=hoster_id_of(user))
    return qs.none()


# --- Reports: who sees which figures (reports app) -----------------------------------------------
# Scoping decisions for scorecards and exports live here
# beside the ones above, so that pages, API and exports cannot disagree.


def sees_all_hosters(user) -> bool:
    """Analysts, ministry and researchers see every hoster's figures and the national totals."""
    return role_of(user) in (Role.ANALYST, Role.MINISTRY, Role.RESEARCHER)


def can_see_open_notice_list(user) -> bool:
    """The list of open notices past their deadline on a scorecard is the hotline's work queue."""
    return role_of(user) == Role.ANALYST


def url_mode(user) -> str:
    """How URLs and host names appear in this user's exports and pages.

    `raw` for analysts and hoster users (their own notices only); `hash` (compliance.pseudonym,
    keyed, stable within a deployment) for researchers and ministry users, who never see a URL.
    """
    return "raw" if can_see_urls(user) else "hash"


# --- The hosters' portal, disputes, notice e-mails and the audit trail -------------------------
# Each starts from notices_visible_to / role_of above: no read below widens what a user may see.


def portal_notices(user) -> QuerySet[Notice]:
    """The notices a hoster user deals with in the portal and the hoster API: its own hoster's,
    notified (a notice not yet sent is not the hoster's business yet), not repeats (a repeat is
    the same notice told again; it is shown with the notice it repeats). Other roles: none."""
    if role_of(user) != Role.HOSTER:
        return Notice.objects.none()
    return notices_visible_to(user).exclude(status=Notice.Status.REPEAT)


def portal_open_notices(user) -> QuerySet[Notice]:
    """Open notices, the nearest deadline first."""
    return portal_notices(user).filter(status__in=Notice.OPEN_STATUSES).order_by("deadline_at", "id")


def portal_closed_notices(user) -> QuerySet[Notice]:
    return portal_notices(user).exclude(status__in=Notice.OPEN_STATUSES).order_by("-notified_at", "-id")


def notice_recent_checks(limit: int):
    """A Prefetch of each notice's newest checks (times and outcomes; `checks_recent`)."""
    from django.db.models import Prefetch

    from compliance.models import Check

    return Prefetch(
        "checks",
        queryset=Check.objects.order_by("-checked_at", "-id").only(
            "id", "notice_id", "checked_at", "outcome", "http_status", "trigger", "error_kind"
        )[:limit],
        to_attr="checks_recent",
    )


def disputes_visible_to(user) -> QuerySet:
    """Analysts: every dispute; a hoster user: its own hoster's; everyone else: none."""
    role = role_of(user)
    qs = Dispute.objects.select_related("notice", "hoster")
    if role == Role.ANALYST:
        return qs
    if role == Role.HOSTER:
        return qs.filter(hoster_id=hoster_id_of(user))
    return qs.none()


def dispute_queue(user) -> QuerySet:
    """The analysts' queue: open disputes, oldest first."""
    return disputes_visible_to(user).filter(state=Dispute.State.OPEN).order_by("created_at", "id")


def notice_emails_visible_to(user) -> QuerySet:
    """Notice e-mails: analysts all; a hoster user those about its notices to its own address."""
    role = role_of(user)
    qs = NoticeEmail.objects.all()
    if role == Role.ANALYST:
        return qs
    if role == Role.HOSTER:
        return qs.filter(hoster_id=hoster_id_of(user), notice__in=portal_notices(user))
    return qs.none()


def delivery_problems_of(hoster_id: int, *, limit: int = 5) -> list:
    """The newest delivery failures for a hoster, if its last delivery failed (else empty)."""
    events = list(DeliveryEvent.objects.filter(hoster_id=hoster_id).order_by("-at", "-id")[:limit])
    if not events or events[0].outcome == DeliveryEvent.Outcome.ACCEPTED:
        return []
    return [e for e in events if e.outcome != DeliveryEvent.Outcome.ACCEPTED]


# --- Measurements are evidence: the stored timing of every notice is the replay of its checks ----


@dataclass(frozen=True)
class Discrepancy:
    notice_id: int
    field: str
    stored: object
    replayed: object


REPLAY_FIELDS = ("id", "deadline_s", "notified_at", "hoster_id", *rules.Timing.FIELDS)


def replayed_timing(notice: dict, checks: list[tuple], rule_set: rules.Rules) -> rules.Timing:
    """The timing a notice's checks `(checked_at, outcome, reason)` give under the current rules
    (`notice`: a dict of REPLAY_FIELDS). A reappearance the monitor could not reopen (another notice
    measured the URL by then: `can_reopen=False`) leaves the notice removed; a stored state that only
    that reading explains is the replay."""
    context = {
        "deadline_s": notice["deadline_s"],
        "notified_at": notice["notified_at"],
        "has_hoster": notice["hoster_id"] is not None,
        "rules": rule_set,
    }
    stored = rules.Timing.of(notice)
    replayed = rules.replay(checks, **context)
    if replayed != stored and stored.reappearance_count:
        blocked = rules.replay(checks, can_reopen=False, **context)
        if blocked == stored:
            return blocked
    return replayed


def measured_for_replay(notices: QuerySet[Notice]) -> QuerySet[Notice]:
    """The notices whose timing is a replay of their checks: all but the unmeasured ones."""
    return notices.exclude(unmeasured_condition())


def checks_of(notice_ids: list[int]) -> dict[int, list[tuple]]:
    """`(checked_at, outcome, reason, vantage)` of each notice's checks, in time order."""
    from compliance.models import Check

    checks: dict[int, list[tuple]] = {nid: [] for nid in notice_ids}
    found = Check.objects.filter(notice_id__in=notice_ids).order_by("notice_id", "checked_at", "id")
    for notice_id, *check in found.values_list("notice_id", "checked_at", "outcome", "reason", "vantage"):
        checks[notice_id].append(tuple(check))
    return checks


def measurement_discrepancies(notices: QuerySet[Notice], *, batch: int = 2000) -> Iterator[Discrepancy | int]:
    """Replay every measured notice's checks (compliance.rules.replay, the rules of the settings)
    and compare with its stored timing fields. Yields the number of notices verified after each
    batch, and a Discrepancy per field that differs.

    Read without locks while the monitor writes: the monitor writes a check and its effect on the
    notice in one transaction, so the checks up to the notice's `last_checked_at` as read are
    exactly those applied to it; a newer check committed meanwhile is left out, not judged."""
    rule_set = rules.Rules.from_settings()
    measured = measured_for_replay(notices).order_by("id")
    last_id = 0
    while True:
        rows = list(measured.filter(id__gt=last_id).values(*REPLAY_FIELDS)[:batch])
        if not rows:
            return
        last_id = rows[-1]["id"]
        checks = checks_of([r["id"] for r in rows])
        for notice in rows:
            until = notice["last_checked_at"]
            applied = [c for c in checks[notice["id"]] if until is not None and c[0] <= until]
            stored, replayed = rules.Timing.of(notice), replayed_timing(notice, applied, rule_set)
            for name in rules.Timing.FIELDS:
                if getattr(stored, name) != getattr(replayed, name):
                    yield Discrepancy(notice["id"], name, getattr(stored, name), getattr(replayed, name))
        yield len(rows)
