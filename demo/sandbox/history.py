"""Back-filled history for the demo: months of notices of the sandbox market, with their checks.

Every back-filled notice is a simulation of what the monitor would have recorded, built from the
product's own rules so that nothing on a scorecard is invented:

1. the notice is notified at a random moment of a past month, for a hoster of the market (by its
   `history_share`) on one of its sites, with the 24-hour deadline; the hoster removes it after a
   lognormal time from its `Conduct` (the month's trend applied), or never;
2. its checks run on the real schedule (`monitor.schedule.next_check_at`) from intake until the
   next one would be due after `now`; each check observes what the sandbox site serves at that
   moment (online, 404/410, the placeholder, NXDOMAIN for a vanished domain, a flaky hoster's 503s
   and resets) and is classified with the reasons of monitor/outcomes.py;
3. the notice's timing fields are the fold of `compliance.rules.apply_check` over those checks (the
   same function the check drain uses, so `rules.replay(checks)` gives them back exactly), and its
   `next_check_at` is where the schedule says;
4. the item's path tells the sandbox site what to serve from now on (`kept` if still online at
   `now`, else `gone`), so the live monitor's re-checks of back-filled notices agree with their
   history. A vanished domain's host name is not in the sandbox DNS at all (NXDOMAIN).

`generate(...)` is pure (plain rows); `load(...)` writes them with one executemany per table.
"""

from __future__ import annotations

import hashlib
import math
import random
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from django.db import connection, transaction

from compliance import rules
from compliance.bulk import insert_rows, insert_values
from demo.sandbox import world as market
from monitor import schedule

DAY = 86400
WORKER = "history"  # the `worker` of back-filled checks: they were not made by a live monitor
HISTORY_NEVER = {"prompt": 0.004, "steady": 0.01, "slowpoke": 0.05, "neveract": 0.55, "pixelswap": 0.01, "flaky": 0.03}
VANISHED_SHARE = {"steady": 0.03, "slowpoke": 0.06, "neveract": 0.05}  # notices on throw-away domains
CDN_SHARE = {"steady": 0.3}  # of the hoster's notices: on its CDN-fronted site
HOSTNAME_WORDS = ("dl", "share", "drop", "tmp", "box", "file", "up", "get")
PLACEHOLDER_LEN = len(market.PLACEHOLDER_BODY)
# (outcome, reason, http_status, error_kind, body_sha256, byte_count) of the flaky hoster's faults.
FAILURES = (
    (rules.NO_EVIDENCE, "http_503", 503, "", "", 37),
    (rules.TRANSIENT, "reset", None, "reset", "", 0),
)
# A back-filled check: notice number, then these Check fields.
CHECK_COLUMNS = (
    "checked_at",
    "due_at",
    "duration_ms",
    "outcome",
    "reason",
    "http_status",
    "error_kind",
    "body_sha256",
    "byte_count",
    "resolved_ip",
)


@dataclass
class History:
    notices: list[dict] = field(default_factory=list)
    checks: list[dict] = field(default_factory=list)
    attributions: list[dict] = field(default_factory=list)


def _weighted(rng: random.Random, weights: dict[str, float]) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def _online_at(t: float, removal: float | None, back: tuple[float, float] | None) -> bool:
    if back is not None and back[0] <= t < back[1]:
        return True
    return removal is None or t < removal


def generate(
    *,
    now: datetime,
    months: int = 6,
    per_month: int = 1000,
    http_port: int = market.DEFAULT_HTTP_PORT,
    deadline_s: int = DAY,
    seed: int = 2026,
    part: int = 0,
    parts: int = 1,
) -> History:
    """Simulate `months * per_month` notices notified over the last `months` calendar months
    (of those, numbers `part`, `part + parts`, ...: `generate_parallel` runs the parts at once)."""
    rng = random.Random(f"{seed}:{part}:{parts}")
    hosters = {h.slug: h for h in market.HOSTERS if h.history_share}
    shares = {slug: h.history_share for slug, h in hosters.items()}
    sites_of: dict[str, list[market.Site]] = {}
    for site in market.SITES:
        if not site.vanishes_at:
            sites_of.setdefault(site.hoster, []).append(site)
    # Internally naive UTC: half a million check times go to SQLite as `str()` without conversion.
    # The history starts on the first of a month (Europe/Amsterdam), `months - 1` months before
    # this one, so the monthly figures show whole months and the current one.
    local = now.astimezone(ZoneInfo("Europe/Amsterdam"))
    first = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    year, month = divmod(first.year * 12 + first.month - 1 - (months - 1), 12)
    start = first.replace(year=year, month=month + 1).astimezone(UTC).replace(tzinfo=None)
    now = now.astimezone(UTC).replace(tzinfo=None)
    span = (now - start).total_seconds()
    history = History()
    for n in range(part, months * per_month, parts):
        slug = _weighted(rng, shares)
        hoster = hosters[slug]
        conduct = hoster.conduct
        # Reports arrive during the day, more on working days (Europe/Amsterdam is UTC+1/+2).
        offset = rng.random() * span
        notified = start + timedelta(seconds=offset)
        hour = rng.choices(range(24), weights=[1, 1, 1, 1, 1, 2, 3, 5, 8, 9, 9, 9, 8, 9, 9, 9, 8, 6, 4, 3, 2, 2, 1, 1])[
            0
        ]
        notified = notified.replace(hour=(hour - 1) % 24, minute=rng.randrange(60), second=rng.randrange(60))
        if notified.weekday() >= 5 and rng.random() < 0.6:
            notified -= timedelta(days=rng.choice((1, 2)))
        if (now - notified).total_seconds() < 600 or notified < start:
            continue
        month_index = min(
            int((notified - start).total_seconds() / span * len(conduct.history_trend)), len(conduct.history_trend) - 1
        )
        median = conduct.median * conduct.history_trend[month_index]

        cdn = ""
        site = rng.choice(sites_of[slug])
        vanished = rng.random() < VANISHED_SHARE.get(slug, 0.0)
        if not vanished and rng.random() < CDN_SHARE.get(slug, 0.0):
            site = next(s for s in market.SITES if s.cdn and s.hoster == slug)
            cdn = site.cdn
        elif site.cdn:
            site = next(s for s in sites_of[slug] if not s.cdn)
        item_id = 100_000 + n

        removal: float | None = None  # seconds after notification
        if rng.random() >= HISTORY_NEVER.get(slug, 0.0):
            removal = rng.lognormvariate(math.log(median), conduct.sigma) * deadline_s
        back = None
        if removal is not None and rng.random() < conduct.reappearance_share:
            comes_back = removal + rng.uniform(0.3, 2.0) * deadline_s
            back = (comes_back, comes_back + rng.uniform(0.3, 3.0) * deadline_s)
        still_online = _online_at((now - notified).total_seconds(), removal, back)

        if vanished:
            host = f"{rng.choice(HOSTNAME_WORDS)}-{hashlib.sha256(f'{seed}:{n}'.encode()).hexdigest()[:8]}.test"
            ip = site.ip.rsplit(".", 1)[0] + f".{100 + n % 100}"
            if still_online:
                vanished = False  # a domain that is still there is an ordinary site
        if not vanished:
            host, ip = site.host, site.served_ip
        template = market.Site(host, ip, slug, site.path)  # a vanished domain used its hoster's paths
        kind = market.KEPT if still_online else market.GONE
        path = market.item_path(template, item_id, kind)
        body = market.item_body(host, path)
        body_sha, body_len = hashlib.sha256(body).hexdigest(), len(body)
        url = market.url_of(template, path, http_port)
        notice_id = n  # replaced by the loader
        history.notices.append(
            {
                "_n": notice_id,
                "url": url,
                "host": host,
                "port": None if http_port == 80 else http_port,
                "path": path,
                "reference": f"HIST-{notified:%Y%m}-{n:06d}",
                "content_sha256": body_sha,
                "notified_at": notified.replace(tzinfo=UTC),
                "deadline_s": deadline_s,
                "hoster": slug,
                "hoster_source": "hotline" if cdn else "attribution",
                "cdn": cdn,
            }
        )
        history.attributions.append(
            {
                "_n": notice_id,
                "created_at": (notified + timedelta(seconds=rng.uniform(1, 20))).replace(tzinfo=UTC),
                "hostname": host,
                "cname_chain": [site.edge] if cdn else [],
                "resolved_ips": [ip],
                "chosen_ip": ip,
                "asn": market.HOSTERS_BY_SLUG[cdn or slug].asn,
                "hoster": slug,
                "cdn": cdn,
            }
        )

        # The checks, on the real schedule, each observing what the site served at that moment.
        # A check is a tuple in CHECK_COLUMNS order (half a million of them: no dicts).
        state = rules.Timing()
        t = notified + timedelta(seconds=rng.uniform(3, 40))
        due = notified
        failed_before = False
        checks = history.checks
        steady_online, pending, pending_at, pending_kind = False, 0, t, rules.ONLINE
        latency_ms = conduct.latency_s * 1000
        online_obs = (rules.ONLINE, "online", 200, "", body_sha, body_len, ip)
        if vanished:
            removed_obs = (rules.REMOVED, "nxdomain", None, "dns_nxdomain", "", 0, None)
        elif conduct.removal == "placeholder":
            removed_obs = (rules.REMOVED, "placeholder", 200, "", market.PLACEHOLDER_SHA256, PLACEHOLDER_LEN, ip)
        else:
            code = int(conduct.removal)
            removed_obs = (rules.REMOVED, f"http_{code}", code, "", "", 10, ip)
        while True:
            if conduct.failure_share and not failed_before and rng.random() < conduct.failure_share:
                failed_before = True
                obs = FAILURES[rng.random() < 0.5] + (ip,)
            else:
                failed_before = False
                obs = online_obs if _online_at((t - notified).total_seconds(), removal, back) else removed_obs
            checks.append((n, t, due, int(rng.uniform(3, 60) + latency_ms), *obs))
            outcome = obs[0]
            if (outcome == rules.ONLINE and steady_online) or (outcome != rules.ONLINE and state.status == "removed"):
                # Fast path, same result as apply_check: an online observation of a notice that is
                # online with no streak (or any but online after a takedown) only moves the
                # counters; folded in before the next real transition (tests replay every notice).
                pending += 1
                pending_at = t
                pending_kind = rules.evidence(outcome, obs[1])
            else:
                if pending:
                    state = _fold(state, pending, pending_at, pending_kind)
                    pending = 0
                state = rules.apply_check(
                    state, at=t, outcome=outcome, reason=obs[1], deadline_s=deadline_s, notified_at=notified
                )
                steady_online = state.status == "online" and not state.offline_streak and not state.unreachable_streak
            due = schedule.next_check_at(
                now=t,
                notified_at=notified,
                deadline_s=deadline_s,
                status=state.status,
                takedown_at=state.takedown_at,
                offline_streak=state.offline_streak,
            )
            if due is None or due >= now:
                break
            t = due + timedelta(seconds=rng.uniform(0.05, 1.5))
            if t >= now:
                break
        if pending:
            state = _fold(state, pending, pending_at, pending_kind)
        timing = {k: v.replace(tzinfo=UTC) if isinstance(v, datetime) else v for k, v in state.as_dict().items()}
        history.notices[-1].update(timing, next_check_at=due.replace(tzinfo=UTC) if due else None)
    return history


def generate_parallel(*, processes: int = 2, **kwargs) -> History:
    """`generate` split over `processes` forked processes (the simulation is CPU-bound)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    if processes <= 1:
        return generate(**kwargs)
    with ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("fork")) as pool:
        futures = [pool.submit(generate, part=i, parts=processes, **kwargs) for i in range(processes)]
        results = [f.result() for f in futures]
    merged = History()
    for result in results:
        merged.notices += result.notices
        merged.checks += result.checks
        merged.attributions += result.attributions
    return merged


def _fold(state: rules.Timing, count: int, last_at: datetime, last_kind: str) -> rules.Timing:
    """`count` fast-path observations up to `last_at`, the last of evidence class `last_kind` (see `generate`)."""
    seen = {"last_evidence": last_kind, "last_vantage": rules.DEFAULT_VANTAGE}
    if state.status == "online":
        return replace(
            state, check_count=state.check_count + count, last_checked_at=last_at, last_online_at=last_at, **seen
        )
    return replace(state, check_count=state.check_count + count, last_checked_at=last_at, **seen)


# --- Loading -------------------------------------------------------------------------------------


@transaction.atomic
def load(history: History, *, now: datetime) -> dict[str, int]:
    """Write the history: notices (with explicit ids after the current last one), their checks
    and attribution evidence. Hosters must exist (load_hosters)."""
    from django.core.management.color import no_style
    from django.db.models import Max

    from compliance.models import Hoster, Notice
    from monitor.models import Attribution, Check

    hoster_ids = dict(Hoster.objects.values_list("slug", "id"))
    first_id = (Notice.objects.aggregate(m=Max("id"))["m"] or 0) + 1
    history.notices.sort(key=lambda row: row["notified_at"])  # ids in the order of notification
    ids = {row["_n"]: first_id + i for i, row in enumerate(history.notices)}
    notice_rows = []
    for row in history.notices:
        notified = row["notified_at"]
        notice_rows.append(
            {
                "id": ids[row["_n"]],
                "url": row["url"],
                "scheme": "http",
                "host": row["host"],
                "port": row["port"],
                "path": row["path"],
                "query": "",
                "source": "hotline",
                "reference": row["reference"],
                "content_sha256": row["content_sha256"],
                "received_at": notified,
                "notified_at": notified.replace(tzinfo=UTC),
                "deadline_s": row["deadline_s"],
                **dict(zip(("deadline_at", "settles_at"), Notice.timeline(notified, row["deadline_s"]), strict=True)),
                "status": row["status"],
                "hoster_id": hoster_ids[row["hoster"]],
                "hoster_source": row["hoster_source"],
                "cdn_id": hoster_ids[row["cdn"]] if row["cdn"] else None,
                "is_behind_cdn": bool(row["cdn"]),
                "attribution_state": Notice.AttributionState.DONE,
                "next_attribution_at": None,
                "next_check_at": row["next_check_at"],
                "lease_token": None,
                **{name: row[name] for name in rules.Timing.FIELDS},
                "created_at": notified,
                "updated_at": now,
            }
        )
    attribution_rows = []
    for row in history.attributions:
        hoster = market.HOSTERS_BY_SLUG[row["cdn"] or row["hoster"]]
        prefix = next(p for p in hoster.prefixes if ":" not in p)
        attribution_rows.append(
            {
                "notice_id": ids[row["_n"]],
                "created_at": row["created_at"],
                "method": Attribution.Method.DNS,
                "hostname": row["hostname"],
                "cname_chain": row["cname_chain"],
                "resolved_ips": row["resolved_ips"],
                "chosen_ip": row["chosen_ip"],
                "asn": row["asn"],
                "asns": [row["asn"]],
                "routed_prefix": prefix,
                "as_name": hoster.as_name,
                "as_country": hoster.country,
                "registry": "ripencc",
                "rdap": {},
                "candidates": [
                    {
                        "ip": row["chosen_ip"],
                        "asn": row["asn"],
                        "prefix": prefix,
                        "hoster": hoster.slug,
                        "is_cdn": bool(row["cdn"]),
                    }
                ],
                "hoster_id": hoster_ids[row["hoster"]],
                "cdn_id": hoster_ids[row["cdn"]] if row["cdn"] else None,
                "is_ambiguous": False,
                "reason": "behind a CDN; the origin hoster given by the hotline" if row["cdn"] else "registered prefix",
            }
        )
    # Evidence chains (compliance/evidence.py): every notice is new, so its chains start here, in
    # the order the rows are inserted (their ids); the heads go on the notices.
    attribution_heads = _chain_attributions(attribution_rows)
    # Checks: tuples straight to the driver, the constant columns as literal parameters. Their
    # times are naive UTC (see generate): SQLite stores `str()` of them, PostgreSQL gets them aware.
    constants = {
        "trigger": Check.Trigger.SCHEDULE,
        "is_truncated": False,
        "redirect_count": 0,
        "final_url": "",
        "worker": WORKER,
        "vantage": "local",
    }
    columns = ["notice_id", *CHECK_COLUMNS, *constants, "chain_hash"]
    tail = tuple(constants.values())
    aware = [(ids[c[0]], c[1].replace(tzinfo=UTC), c[2].replace(tzinfo=UTC), *c[3:], *tail) for c in history.checks]
    hashes, check_heads = _chain_checks(columns, aware)
    for row in notice_rows:
        row["check_chain_head"] = check_heads.get(row["id"], "")
        row["attribution_chain_head"] = attribution_heads.get(row["id"], "")
    insert_rows(Notice, notice_rows)
    insert_rows(Attribution, attribution_rows)
    if connection.vendor == "sqlite":
        params = [
            (c[0], str(c[1].replace(tzinfo=None)), str(c[2].replace(tzinfo=None)), *c[3:], h)
            for c, h in zip(aware, hashes, strict=True)
        ]
    else:
        params = [(*c, h) for c, h in zip(aware, hashes, strict=True)]
    if connection.vendor == "sqlite":
        # Building the check table's indexes once after the insert is faster than maintaining them
        # row by row (DDL is transactional in SQLite: a failure leaves them as they were).
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = %s AND sql IS NOT NULL",
                [Check._meta.db_table],
            )
            indexes = cursor.fetchall()
            for name, _sql in indexes:
                cursor.execute(f"DROP INDEX {connection.ops.quote_name(name)}")
        insert_values(Check, columns, params)
        with connection.cursor() as cursor:
            for _name, sql in indexes:
                cursor.execute(sql)
    else:
        insert_values(Check, columns, params)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            for sql in connection.ops.sequence_reset_sql(no_style(), [Notice, Attribution, Check]):
                cursor.execute(sql)
    return {"notices": len(notice_rows), "checks": len(history.checks), "attributions": len(attribution_rows)}


def _chain_attributions(rows: list[dict]) -> dict[int, str]:
    """Set each attribution row's `chain_hash`; returns the heads by notice id."""
    from compliance.evidence import GENESIS
    from monitor.models import Attribution

    chain = Attribution.evidence_chain
    defaults = {f.attname: f.get_default() for f in Attribution._meta.concrete_fields}
    heads: dict[int, str] = {}
    for row in rows:
        values = [row.get(a, defaults[a]) for a in chain.fields]
        values = [v.replace(tzinfo=UTC) if isinstance(v, datetime) and v.tzinfo is None else v for v in values]
        row["chain_hash"] = heads[row["notice_id"]] = chain.link(heads.get(row["notice_id"], GENESIS), values)
    return heads


def _chain_checks(columns: list[str], rows: list[tuple]) -> tuple[list[str], dict[int, str]]:
    """The hashes of check rows (values in `columns` order, times aware), in insertion order, and
    the heads by notice id."""
    from compliance.evidence import GENESIS
    from monitor.models import Check

    chain = Check.evidence_chain
    order = [columns.index(name) for name in chain.fields]
    heads: dict[int, str] = {}
    hashes = []
    link = chain.link
    for row in rows:
        h = heads[row[0]] = link(heads.get(row[0], GENESIS), [row[i] for i in order])
        hashes.append(h)
    return hashes, heads
