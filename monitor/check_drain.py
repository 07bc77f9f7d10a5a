"""The check drain of runmonitor: claim due notices, check them, record, release.

`drain_checks()` handles one batch (`MONITOR_BATCH` notices at most) and returns whether more
notices are due (monitor/jobs.py). Shaped after healthchecks' sendalerts command: the rows are
the schedule (`next_check_at`), claims are leases, network work happens outside any transaction.

A batch is streamed in chunks of 2 x `MONITOR_CONCURRENCY` notices: the checks run in the check
process (monitor/check_process.py, a child of the monitor with an interpreter of its own), while the
drain's thread claims the next chunks and records the finished ones, so the database's work
overlaps the checks instead of alternating with them.
Every step below works per chunk; every guarantee is per notice.

1. **Claim** (one short transaction per chunk): the due notices (`next_check_at <= now`, oldest
   first) are taken with `SELECT ... FOR UPDATE SKIP LOCKED` on PostgreSQL (a compare-and-set
   `UPDATE ... WHERE next_check_at <= now` elsewhere; SQLite's write lock serialises claims
   anyway). Each gets `lease_token` = this batch's token and `next_check_at` pushed forward by the
   lease, counted from the chunk's claim. Another process skips them; if this one dies, the lease
   expires and they are due again: nothing is lost. A stopping monitor claims no further chunk.
   The due time the claim overwrites is kept in `first_due_at`: a claim of an unleased notice
   sets it to `next_check_at`, a claim that takes over an expired lease keeps it (the lease's end
   is not when the check was due). It is the claimed check's `due_at`, so the lag on the health
   page counts a killed monitor's stranded claims from when they were first due.
2. **Check** (no transaction, asyncio, in the check process, which never touches the database):
   every URL through monitor/check_client.py, `MONITOR_CONCURRENCY` at once. A check not started within
   the budget of its chunk is given back unchecked (due again at once), so no check outlives its
   lease.
3. **Classify** (pure, monitor/classification.py) with the placeholder hashes, whether the host resolved
   before (only asked for NXDOMAIN answers) and, for content still served, whether the answering
   address belongs to another hoster (moved: monitor/attribution_decision.py's registry match).
4. **Record** (one short transaction per chunk of finished checks): the notices are read again,
   locked, *only if the lease is still ours* (`lease_token` = token): a lease that expired and was
   taken by another process is theirs now, and our observations are discarded (no takedown is ever
   recorded twice). For the rest: the accounting (compliance/rules.py `apply_check`) gives the new
   timing state, the schedule (monitor/schedule.py) the next due time; the checks are appended
   (COPY on PostgreSQL), each linked to its notice's evidence chain (compliance/evidence.py: the
   row lock taken here is what keeps two monitors from forking a chain), the notices updated in
   one statement with their new chain heads, the lease released. A reappearance
   of content whose URL has another open notice by now (the constraint `notice_one_open_per_url`)
   is recorded on the notice, which stays removed and is no longer checked: the open notice
   measures the URL.

One bad row never takes the batch down: its error is logged with the traceback and the notice is
pushed forward. A hoster's "removed" claim (the portal sets `reported_removed_at` and
`next_check_at = now`) is checked like any other due notice, with the trigger `hoster_claim`; the
claim itself changes nothing. An analyst's "check now" (admin; `check_requested_at`) works the
same way, with the trigger `analyst`. A claim or request that arrives while the notice is leased
is checked again right after.
"""

from __future__ import annotations

import functools
import logging
import os
import socket
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import psycopg
from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Case, F, When
from django.db.models.functions import Coalesce
from django.utils import timezone

from compliance import bulk, evidence, rules, services
from compliance.models import Attribution, Check, Notice
from monitor import check_dispatch, check_process, jobs, schedule
from monitor.attribution_decision import RegisteredNetworks
from monitor.attribution_drain import load_registry
from monitor.check_client import Observation
from monitor.classification import Classification, classify
from monitor.models import PlaceholderHash

log = logging.getLogger("monitor.check_drain")

WORKER = f"{socket.gethostname()}:{os.getpid()}"[:100]
CLAIM_FIELDS = (
    "id",
    "url",
    "hoster_id",
    "content_sha256",
    "next_check_at",
    "last_checked_at",
    "reported_removed_at",
    "check_requested_at",
)
RECORD_FIELDS = (
    "id",
    "url",
    "hoster_id",
    "notified_at",
    "settles_at",
    "deadline_s",
    "reported_removed_at",
    "check_requested_at",
    *rules.Timing.FIELDS,
    "check_chain_head",  # the notice's evidence chain (compliance/evidence.py), read under the row lock
)
LOCAL_VANTAGE = rules.DEFAULT_VANTAGE  # the monitor's own address and resolvers (MONITOR_VANTAGES adds others)
PROBE_POLL_S = 0.05  # while every vantage that may take checks is a probe with a full queue


@dataclass
class Claimed:
    id: int
    url: str
    hoster_id: int | None
    content_sha256: str
    due_at: datetime
    trigger: str
    reported_removed_at: datetime | None
    check_requested_at: datetime | None = None
    vantage: str = LOCAL_VANTAGE  # set at dispatch (monitor/check_dispatch.py): where the check is made from
    worker: str = ""  # who made it, when not this process (a probe's host:pid)


@dataclass
class BatchResult:
    claimed: int = 0
    recorded: int = 0
    discarded: int = 0  # lease lost to another process: observations thrown away
    not_started: int = 0  # budget ran out: given back unchecked
    failed: int = 0  # rows that raised: pushed forward
    takedowns: int = 0
    waiting_for_probes: bool = False  # stopped because every available vantage is a backlogged probe


def batch_budget_s() -> float:
    """Seconds a batch may keep starting checks (then in-flight checks finish within the timeout)."""
    return max(30.0, 2 * settings.MONITOR_TIMEOUT)


def lease_s() -> float:
    if settings.MONITOR_LEASE:
        return float(settings.MONITOR_LEASE)
    return batch_budget_s() + settings.MONITOR_TIMEOUT + 15.0


def drain_checks(*, now: datetime | None = None, limit: int | None = None) -> bool:
    """Check one batch of due notices; True if more are waiting. See the module docstring."""
    if jobs.stopping.is_set():
        return False
    limit = limit or settings.MONITOR_BATCH
    result = run_batch(now=now, limit=limit)
    if result.waiting_for_probes:
        # The probes have work queued: ask again shortly (not at the next wake-up, a second away,
        # which would leave a fast probe idle), without spinning.
        time.sleep(PROBE_POLL_S)
        return True
    return result.claimed >= limit


def run_batch(*, now: datetime | None = None, limit: int | None = None) -> BatchResult:
    """One batch, streamed: its claims, checks and writes overlap (see the module docstring).

    The checks run in the check process (monitor/check_process.py); the calling thread does all database
    work, on its own connection, in chunks of `_chunk_size(limit)` notices:

    1. claim the first chunk and start its checks;
    2. while they run, claim the next chunks (up to `limit`) and start theirs;
    3. as checks finish, classify and record them, one transaction per chunk.

    So PostgreSQL updates one chunk's notices while the check process checks the next ones: only the
    first claim and the last write wait for each other. Each chunk commits on its own; every
    guarantee is per notice (lease, lease check at the write), so a batch dying half-way leaves
    its recorded chunks recorded and the rest leased until the lease expires, as before.
    """
    limit = limit or settings.MONITOR_BATCH
    started_at, t0 = now or timezone.now(), time.monotonic()
    token = uuid.uuid4()
    chunk = _chunk_size(limit)
    lease = lease_s()
    budget = settings.MONITOR_LEASE * 0.5 if settings.MONITOR_LEASE else batch_budget_s()

    def claim_chunk(want: int) -> tuple[list[Claimed], float]:
        # Each chunk's lease and start-by time count from its own claim, so a long batch never
        # outlives the lease of its later chunks. Nothing is claimed while no vantage may check.
        plan = check_dispatch.Plan.now()
        if not plan.available:
            result.waiting_for_probes = bool(plan.backlogged)
            return [], 0.0
        now = started_at + timedelta(seconds=time.monotonic() - t0)
        part = claim(now=now, limit=want, token=token, lease_s=lease)
        start_by = time.monotonic() + budget
        if part:
            # Each notice's check goes to a vantage (rotating); a probe's go to RabbitMQ at once and
            # come back through monitor/probe_results.py's drain, so a slow probe holds back nothing here.
            check_dispatch.assign(part, plan)
            part, remote = check_dispatch.split(part, plan)
            if remote:
                check_dispatch.publish(remote, token=token, start_by=time.time() + budget)
                result.claimed += sum(len(r) for r in remote.values())
        return part, start_by

    classifier = _BatchClassifier()
    result = BatchResult()
    # The check process is ready (started, configured) before anything is claimed: its start-up
    # never eats into the claimed notices' time to start. With probes only, there is none.
    with (
        check_process.batch() if any(not v.is_probe for v in settings.MONITOR_VANTAGES) else _NoLocalChecks() as checks
    ):
        claimed, start_by = claim_chunk(chunk)
        result.claimed += len(claimed)
        if not result.claimed:
            return result
        checks.submit(claimed, start_by=start_by)
        more = result.claimed == chunk and result.claimed < limit
        while checks.in_flight or more:
            if jobs.stopping.is_set():
                more = False  # a stopping monitor claims nothing new
            if more and checks.in_flight <= 2 * chunk:
                # Claim ahead, then write a chunk if one is ready.
                want = min(chunk, limit - result.claimed)
                before = result.claimed
                part, start_by = claim_chunk(want)
                result.claimed += len(part)
                checks.submit(part, start_by=start_by)
                more = result.claimed - before == want and result.claimed < limit
                done = checks.finished(at_least=chunk) if checks.in_flight else []
            elif checks.in_flight:
                done = checks.finished(at_least=min(chunk, checks.in_flight), wait=True)
            else:
                break
            if done:
                claimed_part = [c for c, _o in done]
                observations = [o for _c, o in done]
                classifications = classifier.classify(claimed_part, observations)
                record(claimed_part, observations, classifications, token=token, result=result)
    if result.failed or result.discarded:
        log.warning(
            "check batch: %d claimed, %d recorded, %d discarded (lease lost), %d failed",
            result.claimed,
            result.recorded,
            result.discarded,
            result.failed,
        )
    return result


class _NoLocalChecks:
    """The check batch of a monitor whose vantages are all probes: nothing is checked here."""

    in_flight = 0

    def __enter__(self) -> _NoLocalChecks:
        return self

    def __exit__(self, *exc) -> None:
        return None

    def submit(self, claimed: list, *, start_by: float) -> None:
        if claimed:
            raise RuntimeError("no local vantage is configured")

    def finished(self, *, at_least: int, wait: bool = False) -> list:
        return []


def _chunk_size(limit: int) -> int:
    """Notices per claim and per write within a batch: two rounds of the checks in flight at once.
    Small enough that writing one chunk overlaps the checks of the next two, large enough that the
    cost per statement stays small."""
    return max(1, min(limit, 2 * settings.MONITOR_CONCURRENCY))


# --- 1. Claim -----------------------------------------------------------------------------------


def claim(*, now: datetime, limit: int, token: uuid.UUID, lease_s: float) -> list[Claimed]:
    """Lease up to `limit` due notices to this batch (see the module docstring, step 1)."""
    until = now + timedelta(seconds=lease_s)
    try:
        if connection.vendor == "postgresql":
            rows = _claim_postgresql(now=now, until=until, limit=limit, token=token)
        else:
            rows = _claim_compare_and_set(now=now, until=until, limit=limit, token=token)
    except services.UNREADABLE_ROW_ERRORS:
        # One due notice cannot be read (the claim rolled back): claim row by row without it.
        log.warning("check claim: a due notice cannot be read; claiming row by row", exc_info=True)
        rows = _claim_row_by_row(now=now, until=until, limit=limit, token=token)
    claimed = []
    for nid, url, hoster_id, content_sha256, due_at, last_checked_at, reported_removed_at, check_requested_at in rows:
        claimed.append(
            Claimed(
                id=nid,
                url=url,
                hoster_id=hoster_id,
                content_sha256=content_sha256,
                due_at=due_at,
                trigger=_trigger(last_checked_at, reported_removed_at, check_requested_at),
                reported_removed_at=reported_removed_at,
                check_requested_at=check_requested_at,
            )
        )
    return claimed


def _trigger(last_checked_at, reported_removed_at, check_requested_at) -> str:
    """Why this check runs: an analyst's request or a hoster's removal claim made since the last
    check (the analyst's wins when both are waiting), otherwise the schedule."""

    def since_last_check(at: datetime | None) -> bool:
        return at is not None and (last_checked_at is None or at > last_checked_at)

    if since_last_check(check_requested_at):
        return Check.Trigger.ANALYST
    if since_last_check(reported_removed_at):
        return Check.Trigger.HOSTER_CLAIM
    return Check.Trigger.SCHEDULE


def _claim_postgresql(*, now: datetime, until: datetime, limit: int, token: uuid.UUID) -> list[tuple]:
    """One statement: lock the due rows no other process holds (SKIP LOCKED), lease them, return them
    with their first due time (an unleased row's `next_check_at`; an expired lease's kept
    `first_due_at`). Served by the partial index notice_due_check."""
    table = connection.ops.quote_name(Notice._meta.db_table)
    with transaction.atomic():
        connection.ensure_connection()
        # Binary results, server-side binding: parsing 2,000 timestamps as text cost more than the claim.
        cursor = psycopg.Cursor(connection.connection)
        cursor.execute(
            f"""
            WITH due AS (
                SELECT id, next_check_at, lease_token, first_due_at FROM {table}
                WHERE next_check_at <= %s AND NOT (status = ANY(%s))
                ORDER BY next_check_at LIMIT %s
                FOR UPDATE SKIP LOCKED
            )
            UPDATE {table} AS n SET next_check_at = %s, lease_token = %s,
                first_due_at = CASE WHEN due.lease_token IS NULL THEN due.next_check_at
                                    ELSE COALESCE(due.first_due_at, due.next_check_at) END
            FROM due WHERE n.id = due.id
            RETURNING n.id, n.url, n.hoster_id, n.content_sha256, n.first_due_at, n.last_checked_at,
                      n.reported_removed_at, n.check_requested_at
            """,
            [now, list(rules.UNMEASURED_STATUSES), limit, until, token],
            binary=True,
        )
        rows = cursor.fetchall()
        cursor.close()
    rows.sort(key=lambda r: r[4])
    return rows


def _due(now: datetime):
    """The notices due for a check at `now`, the earliest first (never an unmeasured one)."""
    return (
        Notice.objects.filter(next_check_at__lte=now)
        .exclude(status__in=rules.UNMEASURED_STATUSES)
        .order_by("next_check_at")
    )


def _claim_compare_and_set(*, now: datetime, until: datetime, limit: int, token: uuid.UUID) -> list[tuple]:
    """Without row locks: read the due rows, lease those still due (compare-and-set), keep what is ours.

    On SQLite the IMMEDIATE transaction holds the write lock from its start, so nobody gets between
    the read and the update; the compare-and-set keeps it correct on any database."""
    with transaction.atomic():
        qs = _due(now)
        rows = [
            # The due time is the first one (see the module docstring, step 1), as on PostgreSQL.
            (*r[:4], r[4] if lease is None else (first or r[4]), *r[5:])
            for *r, lease, first in qs.values_list(*CLAIM_FIELDS, "lease_token", "first_due_at")[:limit]
        ]
        if not rows:
            return []
        ids = [r[0] for r in rows]
        # Every SET expression reads the row as it was before the update.
        first_due = Case(
            When(lease_token__isnull=True, then=F("next_check_at")),
            default=Coalesce(F("first_due_at"), F("next_check_at")),
        )
        updated = 0
        for chunk in bulk.chunks(ids):
            updated += Notice.objects.filter(pk__in=chunk, next_check_at__lte=now).update(
                next_check_at=until, lease_token=token, first_due_at=first_due
            )
        if updated != len(ids):
            ours = set()
            for chunk in bulk.chunks(ids):
                ours.update(Notice.objects.filter(pk__in=chunk, lease_token=token).values_list("id", flat=True))
            rows = [r for r in rows if r[0] in ours]
    return rows


def _claim_row_by_row(*, now: datetime, until: datetime, limit: int, token: uuid.UUID) -> list[tuple]:
    """The claim when one due row cannot be read: each row read and leased on its own (in a
    savepoint); an unreadable one is pushed forward by services.BAD_ROW_DELAY and logged."""
    rows = []
    with transaction.atomic():
        due = _due(now)
        for pk in list(due.select_for_update(skip_locked=True).values_list("id", flat=True)[:limit]):
            try:
                with transaction.atomic():
                    row = Notice.objects.filter(pk=pk).values_list(*CLAIM_FIELDS).get()
                    leased = Notice.objects.filter(pk=pk, next_check_at__lte=now)
                    if leased.update(next_check_at=until, lease_token=token):
                        rows.append(row)
            except services.UNREADABLE_ROW_ERRORS:
                log.exception("check claim: notice %s cannot be read; pushed forward", pk)
                Notice.objects.filter(pk=pk).update(next_check_at=now + services.BAD_ROW_DELAY, lease_token=None)
    return rows


# --- 3. Classify (step 2, the check, runs in monitor/check_process.py or on a probe) -----------


@dataclass
class _Context:
    """What classification needs from the database, loaded once per batch."""

    placeholders_global: frozenset[str]
    placeholders_by_hoster: dict[int, frozenset[str]]
    registry: RegisteredNetworks | None


def _needs_history(claimed: list[Claimed], observations: list[Observation | None]) -> list[int]:
    """Notices whose answer was NXDOMAIN / no address: whether the host resolved before decides."""
    return [
        c.id
        for c, o in zip(claimed, observations, strict=True)
        if o is not None and o.error_kind in ("dns_nxdomain", "dns_no_answer") and o.error_hop == 0
    ]


def classify_batch(claimed: list[Claimed], observations: list[Observation | None]) -> list[Classification | None]:
    return _BatchClassifier().classify(claimed, observations)


class _BatchClassifier:
    """Classifies a batch's checks chunk by chunk, loading what they share (placeholders, the
    registry) once per batch."""

    def __init__(self) -> None:
        self.placeholders: tuple[frozenset[str], dict[int, frozenset[str]]] | None = None
        self.registry: RegisteredNetworks | None = None

    def classify(self, claimed: list[Claimed], observations: list[Observation | None]) -> list[Classification | None]:
        if self.placeholders is None:
            self.placeholders = _placeholders()
        if self.registry is None and any(c.hoster_id for c in claimed):
            self.registry = load_registry()
        ctx = _Context(*self.placeholders, self.registry)
        needs = _needs_history(claimed, observations)
        resolved_before = _resolved_before(needs) if needs else set()
        return _classify(claimed, observations, ctx, resolved_before)


def _classify(
    claimed: list[Claimed], observations: list[Observation | None], ctx: _Context, resolved_before: set[int]
) -> list[Classification | None]:
    out: list[Classification | None] = []
    for c, o in zip(claimed, observations, strict=True):
        if o is None:
            out.append(None)
            continue
        is_moved = False
        if (
            ctx.registry is not None
            and c.hoster_id
            and o.resolved_ip
            and not o.error_kind
            and o.http_status
            and 200 <= o.http_status < 300
        ):
            is_moved = _is_moved(ctx.registry, o.resolved_ip, c.hoster_id)
        placeholders = ctx.placeholders_global | ctx.placeholders_by_hoster.get(c.hoster_id, frozenset())
        out.append(
            classify(
                o,
                content_sha256=c.content_sha256,
                placeholder_hashes=placeholders,
                resolved_before=c.id in resolved_before,
                has_hoster=c.hoster_id is not None,
                is_moved=is_moved,
            )
        )
    return out


def _placeholders() -> tuple[frozenset[str], dict[int, frozenset[str]]]:
    everyone: set[str] = set()
    by_hoster: dict[int, set[str]] = {}
    for sha, hoster_id in PlaceholderHash.objects.values_list("sha256", "hoster_id"):
        (everyone if hoster_id is None else by_hoster.setdefault(hoster_id, set())).add(sha)
    return frozenset(everyone), {k: frozenset(v) for k, v in by_hoster.items()}


def _resolved_before(notice_ids: list[int]) -> set[int]:
    """Notices whose host resolved at some earlier moment: a check reached an address, or DNS attribution did."""
    found: set[int] = set()
    for chunk in bulk.chunks(notice_ids):
        found.update(
            Check.objects.filter(notice_id__in=chunk, resolved_ip__isnull=False).values_list("notice_id", flat=True)
        )
        found.update(
            Attribution.objects.filter(
                notice_id__in=chunk, method=Attribution.Method.DNS, chosen_ip__isnull=False
            ).values_list("notice_id", flat=True)
        )
    return found


def _is_moved(registry: RegisteredNetworks, ip: str, hoster_id: int) -> bool:
    """The answering address lies in a prefix registered to another hoster (not a CDN in front)."""
    hit = registry.match_prefix(ip)
    if hit is None:
        return False  # unknown space: no evidence either way
    owner = hit[0]
    return owner != hoster_id and not registry.is_cdn(owner)


# --- 4. Record ----------------------------------------------------------------------------------


def record(
    claimed: list[Claimed],
    observations: list[Observation | None],
    classifications: list[Classification | None],
    *,
    token: uuid.UUID,
    result: BatchResult,
) -> None:
    items = list(zip(claimed, observations, classifications, strict=True))
    try:
        with transaction.atomic():
            _merge(result, _record(items, token=token))
    except IntegrityError:
        # A concurrent intake opened a notice for a URL we were reopening: go row by row, so the
        # one conflict is handled and nothing else is lost.
        log.warning("check batch: a constraint fired; recording row by row", exc_info=True)
        _record_row_by_row(items, token=token, result=result)
    except services.UNREADABLE_ROW_ERRORS:
        # One notice of the chunk cannot be read: the others are recorded, it is pushed forward.
        log.warning("check batch: a notice cannot be read; recording row by row", exc_info=True)
        _record_row_by_row(items, token=token, result=result)


def _record_row_by_row(items, *, token: uuid.UUID, result: BatchResult) -> None:
    for item in items:
        try:
            try:
                with transaction.atomic():
                    _merge(result, _record([item], token=token))
            except IntegrityError:
                with transaction.atomic():
                    _merge(result, _record([item], token=token, can_reopen=False))
        except services.UNREADABLE_ROW_ERRORS:
            nid = item[0].id
            log.exception("check batch: notice %s cannot be read; its check is not recorded; pushed forward", nid)
            Notice.objects.filter(pk=nid, lease_token=token).update(
                next_check_at=timezone.now() + services.BAD_ROW_DELAY, lease_token=None
            )
            result.failed += 1


def _merge(result: BatchResult, part: BatchResult) -> None:
    """Counts of a transaction that committed (a rolled-back attempt counts nothing)."""
    for name in ("recorded", "discarded", "not_started", "failed", "takedowns"):
        setattr(result, name, getattr(result, name) + getattr(part, name))


def _record(items, *, token: uuid.UUID, can_reopen: bool = True) -> BatchResult:
    ids = [c.id for c, _o, _k in items]
    fresh = _fresh_rows(ids, token=token)
    reopen_blocked = _reopen_blocked(items, fresh) if can_reopen else set(fresh)
    checks, updates, part = _plan(items, fresh, reopen_blocked, now=timezone.now())
    part.discarded = len(ids) - len(fresh)
    heads = _insert_checks(checks, heads={nid: row["check_chain_head"] for nid, row in fresh.items()})
    # The chain heads moved by the checks go out with the notices' new state: one write per notice.
    _update_notices([(*u[:-1], heads.get(u[0], u[-1])) for u in updates], token=token)
    return part


def _plan(items, fresh: dict[int, dict], reopen_blocked: set[int], *, now: datetime):
    """Step 4's decisions, without I/O: the Check rows to append and the notices' new values."""
    part = BatchResult()
    checks: list[tuple] = []
    updates: list[tuple] = []
    accounting = _rules()  # once per chunk: reading three settings per row cost more than applying them
    for c, obs, kind in items:
        row = fresh.get(c.id)
        if row is None:
            continue  # the lease is another process's now
        try:
            if obs is None or kind is None:
                part.not_started += 1
                updates.append(_release_values(row, next_check_at=c.due_at, now=now))
                continue
            state = rules.Timing.of(row)
            new = rules.apply_check(
                state,
                at=obs.started_at,
                outcome=kind.outcome,
                reason=kind.reason,
                deadline_s=row["deadline_s"],
                notified_at=row["notified_at"],
                has_hoster=row["hoster_id"] is not None,
                rules=accounting,
                can_reopen=c.id not in reopen_blocked,
                vantage=c.vantage,
            )
            due = schedule.next_check_at(
                now=now,
                notified_at=row["notified_at"],
                deadline_s=row["deadline_s"],
                status=new.status,
                takedown_at=new.takedown_at,
                offline_streak=new.offline_streak,
                is_provisional=rules.is_provisional(
                    removal_mechanism=new.removal_mechanism, takedown_at=new.takedown_at, settles_at=row["settles_at"]
                ),
            )
            if new.reappeared_at != state.reappeared_at and new.status == Notice.Status.REMOVED:
                due = None  # reappeared, but another open notice measures this URL now
            asked_meanwhile = (
                row["reported_removed_at"] != c.reported_removed_at or row["check_requested_at"] != c.check_requested_at
            )
            if asked_meanwhile and due is not None:
                due = now  # a hoster's claim or an analyst's request came while we held the lease: again now
            checks.append(_check_row(c, obs, kind))
            updates.append(_state_values(row, new, next_check_at=due, now=now))
            part.recorded += 1
            part.takedowns += new.takedown_at is not None and state.takedown_at is None
        except Exception:
            log.exception("check batch: notice %s could not be recorded; pushed forward", c.id)
            part.failed += 1
            updates.append(
                _release_values(row, next_check_at=now + timedelta(seconds=max(60.0, row["deadline_s"] / 96)), now=now)
            )
    return checks, updates, part


def _fresh_rows(ids: list[int], *, token: uuid.UUID) -> dict[int, dict]:
    """The notices of this batch whose lease is still ours, locked, with their current state."""
    if connection.vendor == "postgresql":
        # One statement in binary: the ORM spent more time parsing timestamps than PostgreSQL reading them.
        with psycopg.Cursor(connection.connection) as raw:
            raw.execute(_PG_FRESH_SQL, [ids, token], binary=True)
            return {row[0]: dict(zip(RECORD_FIELDS, row, strict=True)) for row in raw}
    qs = Notice.objects.filter(lease_token=token)
    if connection.features.has_select_for_update:
        qs = qs.select_for_update()
    fresh = {}
    for chunk in bulk.chunks(ids):
        for row in qs.filter(pk__in=chunk).values(*RECORD_FIELDS):
            fresh[row["id"]] = row
    return fresh


def _reopen_candidates(items, fresh: dict[int, dict]) -> dict[int, str]:
    """Removed notices seen online again: id -> URL."""
    return {
        c.id: fresh[c.id]["url"]
        for c, _o, kind in items
        if kind is not None
        and kind.outcome == rules.ONLINE
        and c.id in fresh
        and fresh[c.id]["status"] == Notice.Status.REMOVED
    }


def _reopen_blocked(items, fresh: dict[int, dict]) -> set[int]:
    """Removed notices seen online again whose URL has another open notice by now."""
    candidates = _reopen_candidates(items, fresh)
    if not candidates:
        return set()
    open_urls = set(
        Notice.objects.filter(url__in=set(candidates.values()), status__in=Notice.OPEN_STATUSES)
        .exclude(pk__in=candidates.keys())
        .values_list("url", flat=True)
    )
    return {nid for nid, url in candidates.items() if url in open_urls}


_rules_cache: tuple[tuple, rules.Rules] | None = None


def _rules() -> rules.Rules:
    global _rules_cache
    key = (
        settings.MONITOR_CONFIRMATIONS,
        settings.MONITOR_SERVER_GONE_CHECKS,
        settings.MONITOR_SERVER_GONE_SHARE,
        tuple(v.name for v in settings.MONITOR_VANTAGES),
    )
    if _rules_cache is None or _rules_cache[0] != key:
        _rules_cache = (key, rules.Rules.from_settings())
    return _rules_cache[1]


CHECK_COLUMNS = (
    "notice_id",
    "checked_at",
    "due_at",
    "duration_ms",
    "trigger",
    "resolved_ip",
    "outcome",
    "http_status",
    "error_kind",
    "reason",
    "body_sha256",
    "byte_count",
    "is_truncated",
    "redirect_count",
    "final_url",
    "worker",
    "vantage",
)


def _check_row(c: Claimed, obs: Observation, kind: Classification) -> tuple:
    """A Check row's values in CHECK_COLUMNS order (written in bulk, not through model instances)."""
    return (
        c.id,
        obs.started_at,
        c.due_at,
        obs.duration_ms,
        c.trigger,
        obs.resolved_ip,
        kind.outcome,
        obs.http_status,
        obs.error_kind,
        kind.reason[:40],
        obs.body_sha256,
        obs.byte_count,
        obs.is_truncated,
        obs.redirect_count,
        obs.final_url[:2048],
        c.worker or WORKER,
        c.vantage,
    )


def _insert_checks(rows: list[tuple], *, heads: dict[int, str] | None = None) -> dict[int, str]:
    """Append the batch's checks, chained: COPY on PostgreSQL, one executemany elsewhere.

    Checks are append-only evidence; they are written here and nowhere else by the monitor.
    `bulk_create` spent more time compiling SQL for 16 columns than the database spent storing them.
    Each row is linked to its notice's check chain (compliance/evidence.py). The record step passes
    the chain heads of the notices it read FOR UPDATE (`_fresh_rows`): no other monitor appends to
    them meanwhile, and the moved heads are returned for `_update_notices` to write with the state
    (a second UPDATE of each notice cost as much as the first). Without `heads` the notices are
    locked and their heads read and stored here.
    Returns the moved heads: notice id -> its last check's hash.
    """
    order = _chain_order()
    chained = rows if order is None else [tuple(r[i] for i in order) for r in rows]
    chain = Check.evidence_chain
    if not rows:
        return {}
    if heads is None:
        hashes = evidence.append_rows(chain, chained, key=_notice_of)
    else:
        current = {_notice_of(r): heads[_notice_of(r)] or evidence.GENESIS for r in chained}
        hashes = evidence.link_rows(chain, chained, current, key=_notice_of)
    heads = {_notice_of(r): h for r, h in zip(chained, hashes, strict=True)}  # the last one per notice wins
    ops = connection.ops
    fields = [Check._meta.get_field(name) for name in (*CHECK_COLUMNS, "chain_hash")]
    table = ops.quote_name(Check._meta.db_table)
    columns = ", ".join(ops.quote_name(f.column) for f in fields)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            with cursor.cursor.copy(_pg_copy_sql()) as copy:
                for row, h in zip(rows, hashes, strict=True):
                    copy.write_row((*row, h))
            return heads
        adapt_to = bulk.adapters(fields, connection)
        placeholders = ", ".join(["%s"] * len(fields))
        cursor.executemany(
            f"INSERT INTO {table} ({columns}) VALUES ({placeholders})",
            [bulk.adapt(adapt_to, (*row, h)) for row, h in zip(rows, hashes, strict=True)],
        )
    return heads


def _notice_of(row: tuple):
    return row[0]


@functools.cache
def _chain_order() -> tuple[int, ...] | None:
    """Where each field the check chain covers sits in a CHECK_COLUMNS row; None when the orders
    are the same (today). A covered field missing from CHECK_COLUMNS fails here, loudly."""
    order = tuple(CHECK_COLUMNS.index(name) for name in Check.evidence_chain.fields)
    if order == tuple(range(len(CHECK_COLUMNS))):
        return None
    if order[0] != 0:
        raise RuntimeError("the check chain must cover notice_id first")
    return order


# The chain head last: `_record` puts the head `_insert_checks` moved it to in place of the one read.
_STATE_COLUMNS = (*rules.Timing.FIELDS, "next_check_at", "lease_token", "updated_at", "check_chain_head")


def _state_values(row: dict, new: rules.Timing, *, next_check_at: datetime | None, now: datetime) -> tuple:
    return (
        row["id"],
        *(getattr(new, f) for f in rules.Timing.FIELDS),
        next_check_at,
        None,
        now,
        row["check_chain_head"],
    )


def _release_values(row: dict, *, next_check_at: datetime | None, now: datetime) -> tuple:
    return (row["id"], *(row[f] for f in rules.Timing.FIELDS), next_check_at, None, now, row["check_chain_head"])


def _update_notices(updates: list[tuple], *, token: uuid.UUID) -> None:
    """Write the batch's new notice states, releasing the lease, only where the lease is still ours.

    The caller passes only rows it locked while they were ours (`_fresh_rows`). PostgreSQL: one
    `UPDATE ... FROM unnest(<one array per column>)`; elsewhere one executemany of
    `UPDATE ... WHERE id = ? AND lease_token = ?` (the lease checked again).
    """
    if not updates:
        return
    ops = connection.ops
    fields = [Notice._meta.get_field(name) for name in _STATE_COLUMNS]
    table = ops.quote_name(Notice._meta.db_table)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # Server-side binding, binary: Django's client-side cursor would quote 17 arrays in Python.
            with psycopg.Cursor(connection.connection) as raw:
                raw.execute(_pg_update_sql(), _columns(updates))
            return
        adapt_to = bulk.adapters(fields, connection)
        sets = ", ".join(f"{ops.quote_name(f.column)} = %s" for f in fields)
        token_db = Notice._meta.get_field("lease_token").get_db_prep_save(token, connection)
        params = [[*bulk.adapt(adapt_to, values[1:]), values[0], token_db] for values in updates]
        cursor.executemany(f"UPDATE {table} SET {sets} WHERE id = %s AND lease_token = %s", params)


# --- PostgreSQL statements ----------------------------------------------------------------------

_PG_FRESH_SQL = (
    f"SELECT {', '.join(RECORD_FIELDS)} FROM compliance_notice WHERE id = ANY(%b) AND lease_token = %b FOR UPDATE"
)


@functools.cache
def _pg_update_sql() -> str:
    """`UPDATE ... FROM unnest(<one binary array per column>)` of the notices' new state.

    No `AND n.lease_token = ...`: the rows were read FOR UPDATE *where the lease is ours* in the same
    transaction, so nobody else holds them; and with that filter (lease_token is not indexed) the
    planner scanned the table once per row: a second per batch.
    """
    fields = [Notice._meta.get_field(name) for name in _STATE_COLUMNS]
    types = ["bigint", *(f.cast_db_type(connection) for f in fields)]
    names = ", ".join(["id", *(f.column for f in fields)])
    unnest = ", ".join(f"%b::{t}[]" for t in types)
    sets = ", ".join(f"{f.column} = v.{f.column}" for f in fields)
    return f"UPDATE compliance_notice AS n SET {sets} FROM unnest({unnest}) AS v({names}) WHERE n.id = v.id"


def _columns(updates: list[tuple]) -> list[list]:
    return [list(col) for col in zip(*updates, strict=True)]


@functools.cache
def _pg_copy_sql() -> str:
    columns = ", ".join(Check._meta.get_field(name).column for name in (*CHECK_COLUMNS, "chain_hash"))
    return f"COPY {Check._meta.db_table} ({columns}) FROM STDIN"
