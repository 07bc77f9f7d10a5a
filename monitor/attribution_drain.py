"""The attribution drain of runmonitor: DNS, origin AS and registry -> the hoster of each new notice.

The evidence of every attribution is an `Attribution` row of its own (compliance, append-only): the
host name, CNAME chain, resolved addresses and the one chosen, origin ASN(s), routed prefix, AS
name, registry, RDAP network and abuse contacts when known, every candidate, the method, the time,
and for an override who decided and why. The decision itself is pure (monitor/attribution_decision.py);
an analyst's override and re-attribution are compliance's (compliance/attributions.py); RDAP detail
comes from a drain of its own (monitor/rdap_drain.py).

Host names are looked up once per batch, not once per notice: 160,000 URLs on 2,000 host names
cost about 2,000 host lookups (plus one origin lookup per distinct address and one name lookup per
distinct AS), and monitor/dns.py's cache carries answers over to the next batches for their TTL.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, InterfaceError, OperationalError, transaction
from django.utils import timezone

from compliance import bulk, evidence, services
from compliance.attributions import rdap_evidence
from compliance.models import Attribution, Check, Hoster, HosterASN, HosterPrefix, Notice, RdapRecord
from monitor import asn as asnlookup
from monitor import attribution_decision, dns, jobs, rdap
from monitor.models import RdapQueue

log = logging.getLogger("monitor.attribution_drain")

GIVEN_SOURCES = (Notice.HosterSource.HOTLINE, Notice.HosterSource.ANALYST)


# --- Gathering the answers (network, outside any transaction) ---------------------------------


@dataclass
class Lookups:
    hosts: dict[str, dns.HostAnswer]
    origins: dict[str, asnlookup.OriginAnswer]
    as_names: dict[int, asnlookup.ASName | None]


async def gather_lookups(hosts: list[str], *, concurrency: int, fresh: set[str] = frozenset()) -> Lookups:
    """Resolve the host names, then the origins of their addresses, then the names of those ASes,
    each distinct name, address and AS once, at most `concurrency` queries in flight. Names in
    `fresh` bypass the DNS cache (a retry asks the DNS again, not the cache)."""
    semaphore = asyncio.Semaphore(max(1, concurrency))

    async def bounded(coro):
        async with semaphore:
            return await coro

    # What the cache holds is taken without the event loop: a batch of 5,000 notices over
    # 2,000 known names would otherwise spend most of its time creating tasks.
    host_answers: dict[str, dns.HostAnswer] = {}
    for host in dict.fromkeys(hosts):
        cached = None if host in fresh else dns.cached_host(host)
        if cached is not None:
            host_answers[host] = cached
    missing = [h for h in dict.fromkeys(hosts) if h not in host_answers]
    answers = await asyncio.gather(*(bounded(dns.resolve_host(h, use_cache=h not in fresh)) for h in missing))
    host_answers.update(zip(missing, answers, strict=True))

    ips = list(dict.fromkeys(ip for a in host_answers.values() if a.is_resolved for ip in a.ips))
    origins: dict[str, asnlookup.OriginAnswer] = {}
    for ip in ips:
        cached = asnlookup.cached_origin(ip)
        if cached is not None:
            origins[ip] = cached
    missing = [ip for ip in ips if ip not in origins]
    origins.update(
        zip(missing, await asyncio.gather(*(bounded(asnlookup.lookup_origin(ip)) for ip in missing)), strict=True)
    )

    asns = list(dict.fromkeys(a for o in origins.values() for origin in o.origins[:1] for a in origin.asns))
    names: dict[int, asnlookup.ASName | None] = {}
    for number in asns:
        is_cached, name = asnlookup.cached_as_name(number)
        if is_cached:
            names[number] = name
    missing = [a for a in asns if a not in names]
    names.update(
        zip(missing, await asyncio.gather(*(bounded(asnlookup.lookup_as_name(a)) for a in missing)), strict=True)
    )
    return Lookups(host_answers, origins, names)


def address_facts(answer: dns.HostAnswer, lookups: Lookups) -> list[attribution_decision.AddressFacts]:
    facts = []
    for ip in answer.ips:
        origin = lookups.origins.get(ip)
        if origin is None or origin.is_transient:
            lookup = attribution_decision.LOOKUP_FAILED
        elif origin.found:
            lookup = attribution_decision.LOOKUP_FOUND
        else:
            lookup = attribution_decision.LOOKUP_NOT_ROUTED
        origins = origin.origins if origin is not None else ()
        names = {a: lookups.as_names[a] for o in origins[:1] for a in o.asns if lookups.as_names.get(a)}
        facts.append(attribution_decision.AddressFacts(ip, lookup, origins, names))
    return facts


def load_registry() -> attribution_decision.RegisteredNetworks:
    """The curated registry (hosters' prefixes and ASNs, which are CDNs) in memory: the attribution
    drain decides with it, the check drain asks it whether an address moved to another hoster."""
    return attribution_decision.RegisteredNetworks(
        prefixes=HosterPrefix.objects.values_list("prefix", "hoster_id"),
        asns=HosterASN.objects.values_list("asn", "hoster_id"),
        kinds={pk: Hoster.Kind.CDN for pk in Hoster.objects.filter(kind=Hoster.Kind.CDN).values_list("id", flat=True)},
    )


# --- The drain ---------------------------------------------------------------------------------


@dataclass
class _Claimed:
    id: int
    host: str
    hoster_id: int | None
    hoster_source: str
    notified_at: datetime | None
    received_at: datetime
    deadline_s: int
    status: str
    attribution_state: str

    @property
    def deadline_at(self) -> datetime:
        """The deadline the attribution works to: the notice's, or (not yet notified) from receipt."""
        return Notice.timeline(self.notified_at or self.received_at, self.deadline_s)[0]


_CLAIM_FIELDS = (
    "id",
    "host",
    "hoster_id",
    "hoster_source",
    "notified_at",
    "received_at",
    "deadline_s",
    "status",
    "attribution_state",
)


def _claim(*, now: datetime, batch_size: int) -> tuple[list[_Claimed], datetime]:
    """Step 1: take due notices and push them forward by a lease. The lease's end doubles as the
    claim's token: the write step only touches rows that still carry it (a process that was too
    slow, whose lease expired and was taken over, writes nothing).

    A notice that cannot be read (a stored value Python cannot represent) would fail the whole
    claim, every pass: then the batch is read row by row and the unreadable one pushed forward
    by services.BAD_ROW_DELAY, logged with its traceback."""
    lease_until = now + timedelta(seconds=settings.MONITOR_ATTRIBUTION_LEASE, microseconds=random.randrange(1, 999_999))
    with transaction.atomic():
        due = (
            Notice.objects.select_for_update(skip_locked=True)
            .filter(next_attribution_at__lte=now)
            # Spelt out, not a parameter list: SQLite uses the partial index notice_due_attribution
            # only when the query repeats its condition literally (PostgreSQL either way).
            .extra(where=["attribution_state IN ('pending', 'retry')"])
            .order_by("next_attribution_at")
        )
        try:
            with transaction.atomic():  # a savepoint: PostgreSQL aborts a transaction on a failed read
                rows = list(due.values_list(*_CLAIM_FIELDS)[:batch_size])
        except services.UNREADABLE_ROW_ERRORS:
            log.warning("attribution claim: a due notice cannot be read; reading the batch row by row", exc_info=True)
            rows = _readable_rows(list(due.values_list("id", flat=True)[:batch_size]), now=now)
        claimed = [_Claimed(*row) for row in rows]
        _update_notices(("next_attribution_at",), [((lease_until,), c.id) for c in claimed])
    return claimed, lease_until


def _readable_rows(ids: list[int], *, now: datetime) -> list[tuple]:
    """The claim's rows read one at a time; the unreadable ones pushed forward, not claimed."""
    rows, unreadable = [], []
    for pk in ids:
        try:
            with transaction.atomic():
                rows.append(Notice.objects.filter(pk=pk).values_list(*_CLAIM_FIELDS).get())
        except services.UNREADABLE_ROW_ERRORS:
            log.exception("attribution: notice %s cannot be read; pushed forward", pk)
            unreadable.append(pk)
    if unreadable:
        Notice.objects.filter(pk__in=unreadable).update(next_attribution_at=now + services.BAD_ROW_DELAY)
    return rows


def _store_attribution_heads(heads: dict[int, str]) -> None:
    if heads:
        evidence.store_heads(Attribution.evidence_chain, heads, appended=len(heads))


def _update_notices(columns: tuple[str, ...], rows: list[tuple[tuple, int]], *, lease_until=None) -> None:
    """`UPDATE notice SET <columns> WHERE id = ?` for many rows with one prepared statement.

    The ORM compiles one UPDATE per distinct set of values, each with an id list: a batch of
    attribution results costs a hundred such statements, and most of its time goes to compiling
    them. `rows` are (values in column order, notice id); with `lease_until`, a row is written
    only while it still carries that lease (see _claim).
    """
    if not rows:
        return
    connection = transaction.get_connection()
    fields = [Notice._meta.get_field(c) for c in columns]
    adapt_to = bulk.adapters(fields, connection)
    quote = connection.ops.quote_name
    sql = (
        f"UPDATE {quote(Notice._meta.db_table)} SET {', '.join(f'{quote(f.column)} = %s' for f in fields)} "
        f"WHERE {quote('id')} = %s"
    )
    guard = []
    if lease_until is not None:
        sql += f" AND {quote('next_attribution_at')} = %s"
        guard = bulk.adapt(bulk.adapters([Notice._meta.get_field("next_attribution_at")], connection), [lease_until])
    shared: dict = {}  # the rows share a few datetimes: each adapted once

    if connection.vendor == "postgresql" and "attribution_chain_head" in columns:
        # A value per row (the chain head): one `UPDATE ... FROM unnest(<one array per column>)`,
        # server-side binding in binary, as monitor/check_drain.py writes the notices' state.
        import psycopg

        types = ["bigint", *(f.cast_db_type(connection) for f in fields)]
        names = ["id", *(f.column for f in fields)]
        unnest = ", ".join(f"%b::{t}[]" for t in types)
        sets = ", ".join(f"{quote(f.column)} = v.{quote(f.column)}" for f in fields)
        statement = (
            f"UPDATE {quote(Notice._meta.db_table)} AS n SET {sets} FROM unnest({unnest}) AS v({', '.join(names)})"
            " WHERE n.id = v.id"
        )
        params = [
            [pk for _values, pk in rows],
            *(list(col) for col in zip(*(values for values, _pk in rows), strict=True)),
        ]
        if lease_until is not None:
            statement += f" AND n.{quote('next_attribution_at')} = %b"
            params.append(lease_until)
        connection.ensure_connection()
        with psycopg.Cursor(connection.connection) as raw:
            raw.execute(statement, params, binary=True)
        return
    if connection.vendor == "postgresql":
        # One statement per distinct set of values, the ids as one array parameter: PostgreSQL
        # runs 10,000 single-row UPDATEs several times slower than one UPDATE of 10,000 rows.
        sql = sql.replace(f"{quote('id')} = %s", f"{quote('id')} = ANY(%s)")
        groups: dict[tuple, list[int]] = defaultdict(list)
        for values, pk in rows:
            groups[tuple(values)].append(pk)
        with connection.cursor() as cursor:
            for values, ids in groups.items():
                cursor.execute(sql, [*bulk.adapt(adapt_to, values, shared), ids, *guard])
        return
    params = [[*bulk.adapt(adapt_to, values, shared), pk, *guard] for values, pk in rows]
    with connection.cursor() as cursor:
        cursor.executemany(sql, params)


def drain_attribution(*, now: datetime | None = None, batch_size: int | None = None) -> bool:
    """Attribute one batch of due notices. Returns True when more may be waiting.

    1. Claim: a short transaction takes up to `MONITOR_ATTRIBUTION_BATCH` notices whose
       attribution is pending or to retry and due, and leases them (next_attribution_at moves
       to the lease's end).
    2. Look up (no transaction open): each distinct host name, address and AS once
       (`gather_lookups`), concurrently.
    3. Decide per host name (pure, monitor/attribution_decision.py).
    4. Write: a second short transaction per batch records one Attribution row per notice and
       sets the notices' hoster/CDN/flags and state, only for rows still under this claim.
       A host name that did not resolve is retried every deadline/96; still unresolvable at the
       deadline, the notice is closed as unresolvable (never a takedown). Transient DNS failures
       are never evidence: they only make the notice wait for the next attempt.
    A batch that fails is logged; its notices come back when the lease ends.
    """
    batch_size = batch_size or settings.MONITOR_ATTRIBUTION_BATCH
    explicit_now = now is not None  # tests pass the time; the monitor uses the clock
    now = now or timezone.now()
    claimed, lease_until = _claim(now=now, batch_size=batch_size)
    if not claimed:
        return False
    by_host: dict[str, list[_Claimed]] = defaultdict(list)
    for notice in claimed:
        by_host[notice.host].append(notice)

    retrying = {n.host for n in claimed if n.attribution_state == Notice.AttributionState.RETRY}
    lookups = asyncio.run(
        gather_lookups(list(by_host), concurrency=settings.MONITOR_ATTRIBUTION_CONCURRENCY, fresh=retrying)
    )
    registry = load_registry()
    write_now = now if explicit_now else timezone.now()
    try:
        _write(by_host, lookups, registry, now=write_now, lease_until=lease_until)
    except (OperationalError, InterfaceError):
        raise  # the database is gone: no notice's fault; the leases expire and the batch comes back
    except Exception:
        # One notice's values failed the batch's transaction: write host name by host name, so
        # that only the failing one waits (pushed forward by services.BAD_ROW_DELAY).
        log.exception("attribution batch: the write failed; writing host name by host name")
        for host, notices in by_host.items():
            try:
                _write({host: notices}, lookups, registry, now=write_now, lease_until=lease_until)
            except Exception:
                ids = [n.id for n in notices]
                log.exception("attribution: notices %s (one host name) could not be written; pushed forward", ids)
                _push_forward(ids, now=write_now, lease_until=lease_until)
    return len(claimed) >= batch_size and not jobs.stopping.is_set()


def _push_forward(ids: list[int], *, now: datetime, lease_until: datetime) -> None:
    """Notices that failed: tried again after services.BAD_ROW_DELAY (only while still ours)."""
    with transaction.atomic():
        _update_notices(
            ("next_attribution_at",), [((now + services.BAD_ROW_DELAY,), pk) for pk in ids], lease_until=lease_until
        )


# --- Step 4: writing ---------------------------------------------------------------------------


def _hoster_for_unknown_as(unknown: attribution_decision.UnknownAS) -> int:
    """The unreviewed hoster of an AS nobody registered: found by its ASN, else created."""
    existing = HosterASN.objects.filter(asn=unknown.asn).values_list("hoster_id", flat=True).first()
    if existing is not None:
        return existing
    hoster = Hoster.objects.filter(slug=unknown.slug).first()
    if hoster is None:
        try:
            with transaction.atomic():  # a savepoint: another monitor process may create it first
                hoster = Hoster.objects.create(
                    slug=unknown.slug,
                    name=unknown.display_name[:200],
                    country=unknown.country if len(unknown.country) == 2 and unknown.country.isalpha() else "",
                    is_reviewed=False,
                )
        except IntegrityError:
            hoster = Hoster.objects.get(slug=unknown.slug)
    try:
        with transaction.atomic():
            HosterASN.objects.create(hoster=hoster, asn=unknown.asn)
    except IntegrityError:  # registered meanwhile (load_hosters, or another monitor process)
        return HosterASN.objects.get(asn=unknown.asn).hoster_id
    return hoster.pk


def _evidence(
    host: str,
    answer: dns.HostAnswer,
    decision: attribution_decision.Decision | None,
    slugs: dict[int, str],
    rdap_of: dict,
) -> dict:
    chosen = decision.chosen if decision else None
    return {
        "rdap": rdap_of.get(chosen.ip, {}) if chosen else {},
        "method": Attribution.Method.DNS,
        "hostname": host,
        "cname_chain": list(answer.cname_chain),
        "resolved_ips": list(answer.ips),
        "chosen_ip": chosen.ip if chosen else None,
        "asn": chosen.asn if chosen else None,
        "asns": list(chosen.asns) if chosen else [],
        "routed_prefix": chosen.routed_prefix if chosen else "",
        "as_name": (chosen.as_name if chosen else "")[:200],
        "as_country": (chosen.as_country if chosen else "")[:2],
        "registry": (chosen.registry if chosen else "")[:20],
        "candidates": [c.as_evidence(slugs) for c in decision.candidates] if decision else [],
        "is_ambiguous": decision.is_ambiguous if decision else False,
    }


def _write(
    by_host: dict[str, list[_Claimed]],
    lookups: Lookups,
    registry: attribution_decision.RegisteredNetworks,
    *,
    now: datetime,
    lease_until: datetime,
) -> None:
    decisions: dict[str, attribution_decision.Decision] = {}
    broken: set[str] = set()  # host names whose decision raised: their notices are pushed forward
    for host in by_host:
        answer = lookups.hosts[host]
        if answer.is_resolved:
            try:
                decisions[host] = attribution_decision.decide(address_facts(answer, lookups), registry)
            except Exception:
                log.exception("attribution: the decision for one host name failed; its notices pushed forward")
                broken.add(host)

    hoster_ids = {c.hoster for d in decisions.values() for c in d.candidates if isinstance(c.hoster, int)}
    hoster_ids |= {n.hoster_id for ns in by_host.values() for n in ns if n.hoster_id}
    with transaction.atomic():
        # Only rows still under this claim (see _claim).
        ours = set(
            Notice.objects.select_for_update()
            .filter(next_attribution_at=lease_until)
            .extra(where=["attribution_state IN ('pending', 'retry')"])  # the partial index, as in _claim
            .values_list("id", flat=True)
        )
        unknown = {
            c.hoster
            for d in decisions.values()
            for c in d.candidates
            if isinstance(c.hoster, attribution_decision.UnknownAS)
        }
        known = dict(HosterASN.objects.filter(asn__in=[u.asn for u in unknown]).values_list("asn", "hoster_id"))
        unknown_ids = {u: known[u.asn] if u.asn in known else _hoster_for_unknown_as(u) for u in unknown}
        slugs = dict(Hoster.objects.filter(id__in=hoster_ids | set(unknown_ids.values())).values_list("id", "slug"))

        rdap_of = _rdap_for([d.chosen for d in decisions.values() if d.chosen is not None], now=now)

        unresolved = [host for host in by_host if host not in decisions and host not in broken]
        failing = [n.id for host in unresolved for n in by_host[host] if n.id in ours]
        resolved_before = _resolved_before(failing)

        rows: list[dict] = []
        updates: dict[tuple, list[int]] = defaultdict(list)
        closes: list[int] = []
        pushed = (("next_attribution_at", now + services.BAD_ROW_DELAY),)
        batch = _Batch(unknown_ids=unknown_ids, slugs=slugs, resolved_before=resolved_before, now=now)
        for host, notices in by_host.items():
            answer = lookups.hosts[host]
            decision = decisions.get(host)
            evidence = None
            for notice in notices:
                if notice.id not in ours:
                    continue
                if host in broken:
                    updates[pushed].append(notice.id)
                    continue
                try:
                    if decision is not None and evidence is None:
                        # The evidence of one host name is the same for all its notices: built once.
                        evidence = _evidence(host, answer, decision, slugs, rdap_of)
                    plan = _plan_one(notice, answer, decision, evidence, batch)
                except Exception:
                    # One bad notice (a value out of every range) never stops the others.
                    log.exception("attribution: notice %s could not be attributed; pushed forward", notice.id)
                    updates[pushed].append(notice.id)
                    continue
                if plan.row is not None:
                    rows.append(plan.row)
                updates[plan.values].append(notice.id)
                if plan.close:
                    closes.append(notice.id)

        _store(rows, updates, closes, now=now, lease_until=lease_until)


def _store(
    rows: list[dict], updates: dict[tuple, list[int]], closes: list[int], *, now: datetime, lease_until: datetime
) -> None:
    """Write a batch's plans (inside `_write`'s transaction): the attribution rows, the notices' new
    values (with their chains' new heads), and the notices closed as unresolvable."""
    # The attribution chains' new heads go out with the notices' own update (one write each).
    heads = insert_attributions(rows, store_heads=False)
    by_columns: dict[tuple[str, ...], list[tuple[tuple, int]]] = defaultdict(list)
    for values, ids in updates.items():
        columns = (*(k for k, _v in values), "updated_at")
        row_values = (*(v for _k, v in values), now)
        for pk in ids:
            if pk in heads:
                by_columns[(*columns, "attribution_chain_head")].append(((*row_values, heads.pop(pk)), pk))
            else:
                by_columns[columns].append((row_values, pk))
    for columns, rows_of_columns in by_columns.items():
        _update_notices(columns, rows_of_columns, lease_until=lease_until)
    _store_attribution_heads(heads)  # rows whose notice had no update of its own (none today)
    for chunk in bulk.chunks(closes):
        # Unresolvable at notice time: no measurement. Only a notice nothing has observed yet, and
        # only without a hoster: a notice with one counts for it (decided as a 404 at its first check).
        (
            Notice.objects.filter(id__in=chunk, status=Notice.Status.PENDING, hoster_id__isnull=True)
            .exclude(id__in=Check.objects.filter(notice_id__in=chunk, resolved_ip__isnull=False).values("notice_id"))
            .update(status=Notice.Status.UNRESOLVABLE, next_check_at=None, updated_at=now)
        )


def _rdap_for(chosen: list[attribution_decision.Candidate], *, now: datetime) -> dict[str, dict]:
    """The `rdap` evidence for each chosen address: the registered network when a recent RDAP
    record exists, "not_applicable" for addresses no registry has, else "pending" (and the
    address is queued for drain_rdap). Empty with MONITOR_RDAP off. Never waits for RDAP."""
    if not settings.MONITOR_RDAP:
        return {}
    registry_of = {c.ip: c.registry for c in chosen}
    out: dict[str, dict] = {}
    public = []
    for ip in registry_of:
        reason = rdap.not_applicable_reason(ip)
        if reason:
            out[ip] = {"status": RdapRecord.Status.NOT_APPLICABLE, "reason": reason}
        else:
            public.append(ip)
    cutoff = now - timedelta(seconds=settings.MONITOR_RDAP_MAX_AGE)
    for chunk in bulk.chunks(public):
        for record in RdapRecord.objects.filter(ip__in=chunk, looked_up_at__gte=cutoff).order_by("looked_up_at", "id"):
            out[record.ip] = rdap_evidence(record)  # the latest wins
    waiting = [ip for ip in public if ip not in out]
    for ip in waiting:
        out[ip] = {"status": "pending"}
    RdapQueue.objects.bulk_create(
        [RdapQueue(ip=ip, registry=registry_of[ip], next_attempt_at=now, created_at=now) for ip in waiting],
        ignore_conflicts=True,  # already queued
    )
    return out


def _resolved_before(notice_ids: list[int]) -> set[int]:
    """Notices with an earlier DNS attribution that resolved (re-attribution, not notice time)."""
    found = set()
    for chunk in bulk.chunks(notice_ids):
        for notice_id, ips in Attribution.objects.filter(
            notice_id__in=chunk, method=Attribution.Method.DNS
        ).values_list("notice_id", "resolved_ips"):
            if ips:
                found.add(notice_id)
    return found


@dataclass(frozen=True)
class _Batch:
    """What `_write` knows of the whole batch, for deciding each notice."""

    unknown_ids: dict  # UnknownAS -> the id of the hoster created (or found) for it
    slugs: dict[int, str]  # hoster id -> slug, for the reasons' words
    resolved_before: set[int]  # notices whose host name resolved at an earlier DNS attribution
    now: datetime


@dataclass(frozen=True)
class _Plan:
    """What to write for one notice."""

    values: tuple[tuple[str, object], ...]  # the notice's new values, sorted (column, value) pairs
    row: dict | None = None  # an Attribution row (values by attname), if any
    close: bool = False  # close as unresolvable at notice time


def _plan_one(
    notice: _Claimed,
    answer: dns.HostAnswer,
    decision: attribution_decision.Decision | None,
    evidence: dict | None,
    batch: _Batch,
) -> _Plan:
    """Decide what to write for one notice."""
    state = Notice.AttributionState
    deadline_at = notice.deadline_at
    now, slugs = batch.now, batch.slugs

    if decision is None:  # the host name did not resolve
        definitive = answer.is_definitive
        if notice.id in batch.resolved_before:
            # Re-attribution of a name that resolved before: record what DNS says now, keep the rest.
            if definitive or attribution_decision.give_up(
                now=now, deadline_at=deadline_at, deadline_s=notice.deadline_s, is_definitive=False
            ):
                row = None
                if definitive:
                    row = {
                        "notice_id": notice.id,
                        "created_at": now,
                        "method": Attribution.Method.DNS,
                        "hostname": notice.host,
                        "cname_chain": list(answer.cname_chain),
                        "reason": f"re-attribution: the host name does not resolve now ({answer.outcome}); "
                        "the earlier attribution stands",
                    }
                return _Plan((("attribution_state", state.DONE), ("next_attribution_at", None)), row=row)
        elif attribution_decision.give_up(
            now=now, deadline_at=deadline_at, deadline_s=notice.deadline_s, is_definitive=definitive
        ):
            what = f"last answer {answer.outcome}" + (f" ({answer.error})" if answer.error else "")
            row = {
                "notice_id": notice.id,
                "created_at": now,
                "method": Attribution.Method.DNS,
                "hostname": notice.host,
                "cname_chain": list(answer.cname_chain),
                "reason": f"unresolvable at notice time: the host name did not resolve by "
                f"{deadline_at.isoformat()}; {what}"[:2000],
            }
            return _Plan(
                (("attribution_state", state.UNRESOLVABLE), ("next_attribution_at", None)), row=row, close=True
            )
        nxt = attribution_decision.retry_at(now=now, deadline_at=deadline_at, deadline_s=notice.deadline_s)
        return _Plan((("attribution_state", state.RETRY), ("next_attribution_at", nxt)))

    if decision.needs_retry and now < deadline_at:
        # An address's origin lookup failed (transient): try again rather than decide on half.
        nxt = attribution_decision.retry_at(now=now, deadline_at=deadline_at, deadline_s=notice.deadline_s)
        return _Plan((("attribution_state", state.RETRY), ("next_attribution_at", nxt)))

    hoster_id = (
        batch.unknown_ids.get(decision.hoster)
        if isinstance(decision.hoster, attribution_decision.UnknownAS)
        else decision.hoster
    )
    reason = decision.reason
    values = {
        "attribution_state": state.DONE,
        "next_attribution_at": None,
        "cdn_id": decision.cdn,
        "is_behind_cdn": decision.is_behind_cdn,
    }
    if notice.hoster_source in GIVEN_SOURCES and notice.hoster_id:
        # The hotline (or an analyst) named the hoster: it stands. DNS is recorded beside it.
        values["is_ambiguous"] = False
        if hoster_id is not None and hoster_id != notice.hoster_id:
            given = slugs.get(notice.hoster_id, str(notice.hoster_id))
            found = slugs.get(hoster_id, str(hoster_id))
            reason += f"; disagreement: DNS names {found}, the {notice.hoster_source} named {given} (kept)"
    else:
        values.update(
            hoster_id=hoster_id, hoster_source=Notice.HosterSource.ATTRIBUTION, is_ambiguous=decision.is_ambiguous
        )
    row = {
        **evidence,
        "notice_id": notice.id,
        "created_at": now,
        "hoster_id": hoster_id,
        "cdn_id": decision.cdn,
        "reason": reason[:2000],
    }
    return _Plan(tuple(sorted(values.items())), row=row)


def insert_attributions(rows: list[dict], *, store_heads: bool = True) -> dict[int, str]:
    """Insert evidence rows (values by attname): COPY on PostgreSQL, one prepared statement
    (executemany) on SQLite. Returns the notices' new attribution chain heads; with
    `store_heads=False` the caller writes them (the drain, with the notices' own update: a second
    UPDATE of each notice cost as much as the first).

    bulk_create spends most of a 10,000-row batch compiling SQL for 20 columns in chunks (SQLite's
    parameter cap) and adapting the same JSON again for every row; the rows of one host name share
    their JSON values, which are encoded once here. Insert only: the rows are append-only
    evidence (compliance/models.py).
    """
    if not rows:
        return {}
    connection = transaction.get_connection()
    is_postgres = connection.vendor == "postgresql"
    fields = [f for f in Attribution._meta.concrete_fields if not f.primary_key]
    adapt_to = bulk.adapters(fields, connection, copy=is_postgres)
    raw_defaults = {f.attname: f.get_default() for f in fields}
    defaults = dict(zip(raw_defaults, bulk.adapt(adapt_to, raw_defaults.values()), strict=True))
    # Chained per notice (compliance/evidence.py); the caller holds the notices' row locks.
    chain = Attribution.evidence_chain
    notice_at = chain.fields.index("notice_id")
    chained = [[row.get(a, raw_defaults[a]) for a in chain.fields] for row in rows]
    if store_heads:
        hashes = evidence.append_rows(chain, chained, key=lambda r: r[notice_at])
    else:
        current = evidence.lock_heads(chain, {r[notice_at] for r in chained})
        hashes = evidence.link_rows(chain, chained, current, key=lambda r: r[notice_at])
    heads = {r[notice_at]: h for r, h in zip(chained, hashes, strict=True)}
    rows = [{**row, "chain_hash": h} for row, h in zip(rows, hashes, strict=True)]
    # JSON, addresses, times: the same values recur for every notice of a host name, adapted once.
    shared: dict = {}
    missing = object()
    params = []
    for row in rows:
        given = [row.get(a, missing) for a in defaults]
        values = bulk.adapt(adapt_to, [None if v is missing else v for v in given], shared)
        params.append([defaults[a] if g is missing else v for a, g, v in zip(defaults, given, values, strict=True)])
    table = connection.ops.quote_name(Attribution._meta.db_table)
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    with connection.cursor() as cursor:
        if is_postgres:
            with cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                for values in params:
                    copy.write_row(values)
        else:
            placeholders = ", ".join(["%s"] * len(fields))
            cursor.executemany(f"INSERT INTO {table} ({columns}) VALUES ({placeholders})", params)
    return heads
