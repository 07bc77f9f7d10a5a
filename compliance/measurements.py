"""Services that rewrite measurements from their evidence, and close notices by hand.

- `notices_remeasure`: replay notices' checks under the current methodology (compliance/rules.py)
  and write the timing fields they give, audited per notice. `recompute_measurements` runs it over
  every notice; an analyst's attribution override runs it for one notice (a hoster set on a notice
  whose name never resolved makes those checks evidence of absence).
- `methodology_record`: note the methodology version and its settings as in use now.
- `notice_withdraw`: an analyst closes a notice sent in error (status `withdrawn`, outside every rate).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.module_loading import import_string

from compliance import methodology, rules, selectors
from compliance.models import AuditEvent, MethodologyRecord, Notice


@dataclass
class RemeasureResult:
    notices: int = 0
    changed: int = 0
    rescheduled: int = 0
    fields: dict[str, int] = field(default_factory=dict)  # field name -> notices where it changed

    def as_dict(self) -> dict:
        return {
            "notices": self.notices,
            "changed": self.changed,
            "rescheduled": self.rescheduled,
            "fields": dict(sorted(self.fields.items())),
            "methodology_version": settings.METHODOLOGY_VERSION,
        }


def _json(value):
    return value.isoformat() if isinstance(value, datetime) else value


def notices_remeasure(
    notices: Iterable[int] | None = None,
    *,
    actor=None,
    reason: str,
    now: datetime | None = None,
    batch: int = 1000,
    progress: Callable[[int], None] | None = None,
) -> RemeasureResult:
    """Replay the checks of `notices` (ids; None: every notice) under the current rules and write the
    timing fields they give.

    1. Per batch (one transaction, the rows locked: a monitor recording a check for one of them waits
       and then reads the rewritten state), the measured notices' checks are replayed
       (`selectors.replayed_timing`). A notice with a hoster left `unresolvable` by an earlier
       methodology is measured again from `pending`.
    2. Each notice whose fields change gets them written and an audit event `notice.remeasure` with
       the old and new values and the methodology version.
    3. An open notice (or a provisional takedown) that the monitor no longer checks (`next_check_at`
       empty: an earlier methodology stopped after 30 deadlines) is due again now.
    4. The hooks in `settings.MEASUREMENTS_CHANGED_HOOKS` are called once (the reports' rollups).
    """
    now = now or timezone.now()
    rule_set = rules.Rules.from_settings()
    result = RemeasureResult()
    qs = selectors.measured_for_replay(Notice.objects.all()).order_by("id")
    wanted = None if notices is None else sorted(set(notices))
    last_id = 0
    while True:
        if wanted is not None:
            ids = [i for i in wanted if i > last_id][:batch]
            if not ids:
                break
            page = qs.filter(id__in=ids)
        else:
            page = qs.filter(id__gt=last_id)
        with transaction.atomic():
            locked = page.select_for_update() if _locks() else page
            rows = list(locked.values(*selectors.REPLAY_FIELDS, "next_check_at", "settles_at")[:batch])
            if not rows and wanted is None:
                break
            if wanted is not None:
                last_id = ids[-1]
            elif rows:
                last_id = rows[-1]["id"]
            checks = selectors.checks_of([r["id"] for r in rows])
            events = []
            for row in rows:
                result.notices += 1
                if row["status"] == rules.UNRESOLVABLE:
                    row = {**row, "status": "pending"}  # a hoster is known: measured after all
                new = selectors.replayed_timing(row, checks[row["id"]], rule_set)
                old = rules.Timing.of(row)
                changes = {
                    name: [_json(getattr(old, name)), _json(getattr(new, name))]
                    for name in rules.Timing.FIELDS
                    if getattr(old, name) != getattr(new, name)
                }
                values = new.as_dict() if changes else {}
                watched = new.status in rules.OPEN_STATUSES or rules.is_provisional(
                    removal_mechanism=new.removal_mechanism, takedown_at=new.takedown_at, settles_at=row["settles_at"]
                )
                if watched and row["next_check_at"] is None:
                    values["next_check_at"] = now
                    result.rescheduled += 1
                if not values:
                    continue
                Notice.objects.filter(pk=row["id"]).update(**values, updated_at=now)
                if changes:
                    result.changed += 1
                    for name in changes:
                        result.fields[name] = result.fields.get(name, 0) + 1
                    events.append(_audit_event(row, changes, actor=actor, reason=reason, now=now))
            AuditEvent.objects.bulk_create(events)
        if progress is not None:
            progress(len(rows))
        if wanted is None and len(rows) < batch:
            break
    if result.changed or result.rescheduled:
        for path in settings.MEASUREMENTS_CHANGED_HOOKS:
            import_string(path)()
    return result


def _locks() -> bool:
    from django.db import connection

    return connection.features.has_select_for_update


def _audit_event(row: dict, changes: dict, *, actor, reason: str, now: datetime) -> AuditEvent:
    is_user = actor is not None and getattr(actor, "is_authenticated", False)
    return AuditEvent(
        at=now,
        actor=actor if is_user else None,
        actor_username=actor.get_username() if is_user else "",
        actor_role=(selectors.role_of(actor) or "") if is_user else "",
        action="notice.remeasure",
        notice_id=row["id"],
        hoster_id=row["hoster_id"],
        detail={"reason": reason, "methodology_version": settings.METHODOLOGY_VERSION, "changes": changes},
    )


def methodology_record(*, now: datetime | None = None) -> MethodologyRecord:
    """Note that the current methodology version, with the settings in use, is in use now."""
    now = now or timezone.now()
    values = methodology.settings_in_use()
    text = json.dumps({"version": methodology.CURRENT, "settings": values}, sort_keys=True)
    fingerprint = hashlib.sha256(text.encode()).hexdigest()
    record, created = MethodologyRecord.objects.get_or_create(
        fingerprint=fingerprint,
        defaults={"version": methodology.CURRENT, "settings": values, "first_seen_at": now, "last_seen_at": now},
    )
    if not created:
        MethodologyRecord.objects.filter(pk=record.pk).update(last_seen_at=now)
    return record


class WithdrawError(ValueError):
    pass


@transaction.atomic
def notice_withdraw(*, notice_ids: list[int], reason: str, user, now: datetime | None = None, request=None) -> int:
    """An analyst closes notices sent in error: status `withdrawn`, no more checks, outside every
    rate; their checks stay (evidence is never deleted). Audited per notice with the reason.
    Returns how many were withdrawn (already withdrawn ones are left as they are)."""
    from compliance.audit import audit_record

    reason = (reason or "").strip()
    if not reason:
        raise WithdrawError("say why the notice is withdrawn")
    now = now or timezone.now()
    notices = list(Notice.objects.select_for_update().filter(pk__in=notice_ids).exclude(status=Notice.Status.WITHDRAWN))
    for notice in notices:
        previous = notice.status
        Notice.objects.filter(pk=notice.pk).filter(~Q(status=Notice.Status.WITHDRAWN)).update(
            status=Notice.Status.WITHDRAWN,
            withdrawn_at=now,
            withdrawn_reason=reason[:2000],
            next_check_at=None,
            updated_at=now,
        )
        audit_record(
            actor=user,
            action="notice.withdraw",
            notice=notice,
            detail={"reason": reason[:2000], "previous_status": previous},
            request=request,
        )
    for path in settings.MEASUREMENTS_CHANGED_HOOKS:
        transaction.on_commit(import_string(path))
    return len(notices)
