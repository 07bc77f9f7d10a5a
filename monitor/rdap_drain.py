"""The RDAP drain of runmonitor: the registered network and abuse contact of attributed addresses.

The attribution drain (monitor/attribution_drain.py) queues each chosen address it has no recent
RDAP record for (`RdapQueue`); this drain looks them up (monitor/rdap.py, one worker per registry,
backing off a registry that rate-limits) and writes append-only `RdapRecord` rows. It never blocks
attribution: an attribution made before its address's RDAP was known shows the first record looked
up after it (compliance/attributions.py `rdap_records_after`).
"""

from __future__ import annotations

import logging
import random
from collections import defaultdict
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from compliance.models import RdapRecord
from monitor import jobs, rdap
from monitor.models import RdapQueue

log = logging.getLogger("monitor.rdap_drain")

# registry -> (back-off until, current back-off in seconds). Per process: each monitor process
# backs off by itself, and the queue rows it pushed forward hold the others back too.
_rdap_backoff: dict[str, tuple[datetime, float]] = {}


def drain_rdap(*, now: datetime | None = None) -> bool:
    """Look up the RDAP network of queued addresses. Returns True when more may be waiting.

    1. Claim: a short transaction takes up to `MONITOR_RDAP_BATCH` due queue rows of registries
       not backing off, and leases them (next_attempt_at moves to the lease's end).
    2. Look up (no transaction): one worker thread per registry, at most
       `MONITOR_RDAP_CONCURRENCY` at once, each registry's addresses one after the other; a rate
       limit stops that registry's worker at once (ipwhois is told never to sleep on it).
    3. Write: a found network (or "not applicable") becomes an append-only RdapRecord and the
       queue row goes; a rate-limited registry backs off (doubling from `MONITOR_RDAP_BACKOFF`
       up to an hour) with all its queued addresses; a failed address is retried later, and
       dropped after `MONITOR_RDAP_ATTEMPTS` failures.
    """
    if not settings.MONITOR_RDAP:
        return False
    explicit_now = now is not None
    now = now or timezone.now()
    blocked = [registry for registry, (until, _s) in _rdap_backoff.items() if until > now]
    lease_until = now + timedelta(seconds=settings.MONITOR_ATTRIBUTION_LEASE, microseconds=random.randrange(1, 999_999))
    with transaction.atomic():
        claimed = list(
            RdapQueue.objects.select_for_update(skip_locked=True)
            .filter(next_attempt_at__lte=now)
            .exclude(registry__in=blocked)
            .order_by("next_attempt_at", "id")[: settings.MONITOR_RDAP_BATCH]
        )
        RdapQueue.objects.filter(id__in=[q.id for q in claimed]).update(next_attempt_at=lease_until)
    if not claimed:
        return False

    by_registry: dict[str, list[RdapQueue]] = defaultdict(list)
    for entry in claimed:
        by_registry[entry.registry].append(entry)

    def one_registry(entries: list[RdapQueue]) -> list[rdap.RdapResult]:
        results = []
        for entry in entries:
            if jobs.stopping.is_set():
                break
            result = rdap.lookup(entry.ip, registry=entry.registry)
            results.append(result)
            if result.status is rdap.Status.RATE_LIMITED:
                break  # the rest of this registry waits for the back-off
        return results

    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=settings.MONITOR_RDAP_CONCURRENCY, thread_name_prefix="rdap") as pool:
        futures = {registry: pool.submit(one_registry, entries) for registry, entries in by_registry.items()}
        results = {registry: future.result() for registry, future in futures.items()}

    write_now = now if explicit_now else timezone.now()
    with transaction.atomic():
        for registry, entries in by_registry.items():
            _rdap_write(registry, entries, results[registry], now=write_now, lease_until=lease_until)
    return len(claimed) >= settings.MONITOR_RDAP_BATCH and not jobs.stopping.is_set()


def _rdap_write(registry: str, entries: list[RdapQueue], results: list[rdap.RdapResult], *, now, lease_until) -> None:
    by_ip = {r.ip: r for r in results}
    for entry in entries:
        # Still ours? (a process too slow for its lease writes nothing)
        if not RdapQueue.objects.filter(pk=entry.pk, next_attempt_at=lease_until).exists():
            continue
        result = by_ip.get(entry.ip)
        if result is None or result.status is rdap.Status.RATE_LIMITED:
            continue  # handled with the registry's back-off below
        if result.status in (rdap.Status.FOUND, rdap.Status.NOT_APPLICABLE):
            RdapRecord.objects.create(
                ip=entry.ip,
                looked_up_at=now,
                registry=registry,
                status=RdapRecord.Status(result.status.value),
                network=result.network.as_evidence() if result.network else {"reason": result.error},
                url=result.url[:500],
            )
            RdapQueue.objects.filter(pk=entry.pk).delete()
            continue
        attempts = entry.attempts + 1
        if attempts >= settings.MONITOR_RDAP_ATTEMPTS:
            log.warning("RDAP for %s failed %d times, giving up: %s", entry.ip, attempts, result.error)
            RdapQueue.objects.filter(pk=entry.pk).delete()
            continue
        delay = min(3600, settings.MONITOR_RDAP_BACKOFF * 2 ** (attempts - 1))
        RdapQueue.objects.filter(pk=entry.pk).update(
            attempts=attempts, last_error=result.error[:2000], next_attempt_at=now + timedelta(seconds=delay)
        )
    if any(r.status is rdap.Status.RATE_LIMITED for r in results):
        _until, previous = _rdap_backoff.get(registry, (now, 0.0))
        delay = min(3600.0, previous * 2 if previous else float(settings.MONITOR_RDAP_BACKOFF))
        until = now + timedelta(seconds=delay)
        _rdap_backoff[registry] = (until, delay)
        log.warning("RDAP: %s is rate-limiting; backing off for %d s", registry or "bootstrap", delay)
        # Every address of that registry waits, those of this batch included.
        RdapQueue.objects.filter(registry=registry, next_attempt_at__lt=until).update(next_attempt_at=until)
        RdapQueue.objects.filter(registry=registry, next_attempt_at=lease_until).update(next_attempt_at=until)
    elif registry in _rdap_backoff:
        del _rdap_backoff[registry]  # it answers again: start over at the smallest back-off
