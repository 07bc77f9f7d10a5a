"""Data for the scorecards benchmark: 1,000,000 notices over 200 hosters and their checks, in PostgreSQL.

Generated inside PostgreSQL (INSERT ... SELECT over generate_series, seeded), so a million notices
take seconds, not minutes. The market is skewed as the real one: one hoster gets 40 % of the
notices, the other 199 share the rest by a power law. Times to takedown are lognormal (a median per
hoster between ~1 h and ~2 days, sigma 1.3); notices whose takedown lies in the future are still
online. Every notice gets checks at the times of its timing fields (online at intake, online at
`last_online_at`, removed twice from `takedown_at`): ~3.5 checks per notice, enough for the
queries' costs; and one DNS attribution. Checks and attributions are hash-chained per notice as
the monitor writes them (compliance/evidence.py): the rows are made in PostgreSQL, hashed in
Python and copied back, so `verify_evidence` finds them intact (the `evidence` benchmark).
They are not a full history: removal mechanisms other than `file_gone`, reappearances and check
counts are drawn, not derived, so `verify_measurements` reports about a third of these notices
(it finds the real monitor's and the demo history's consistent).

Column lists come from the models, so fields other engineers add (with defaults) are filled too.
Run through `python -m bench scorecards`; re-running reuses the data when the parameters match.
"""

from __future__ import annotations

import json
import time

from django.db import connection, transaction
from django.utils import timezone

from compliance import evidence
from compliance.models import Attribution, Check, Hoster, HosterPrefix, Notice

PARAMS = {"notices": 1_000_000, "hosters": 200, "big_share": 0.4, "days": 365, "seed": 0.42, "version": 7}


def _columns(model, given: dict[str, str]) -> tuple[list[str], list[str], dict]:
    """(column names, SQL expressions, named parameters): `given` expressions, model defaults for the rest."""
    names, exprs, params = [], [], {}
    for f in model._meta.concrete_fields:
        if f.primary_key:
            continue
        names.append(connection.ops.quote_name(f.column))
        if f.name in given or f.column in given:
            exprs.append(given.get(f.name, given.get(f.column)))
            continue
        if f.null:
            exprs.append("NULL")
            continue
        if getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False):
            exprs.append("now()")
            continue
        default = f.get_default()
        exprs.append(f"CAST(%(default_{f.column})s AS {f.db_type(connection)})")
        params[f"default_{f.column}"] = f.get_db_prep_value(default, connection, prepared=False)
    return names, exprs, params


def _meta_get() -> dict | None:
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE IF NOT EXISTS bench_meta (key text PRIMARY KEY, value text NOT NULL)")
        cursor.execute("SELECT value FROM bench_meta WHERE key = 'scorecards'")
        row = cursor.fetchone()
    return json.loads(row[0]) if row else None


def ensure(log=print) -> dict:
    """Generate the data unless the database already holds it for these parameters."""
    meta = _meta_get()
    if meta and meta.get("params") == PARAMS and Notice.objects.exists():
        log(f"reusing bench data generated at {meta['generated_at']}")
        return meta
    return generate(log)


def generate(log=print) -> dict:
    started = time.perf_counter()
    now = timezone.now()
    with connection.cursor() as cursor:
        log("clearing previous data")
        cursor.execute(
            "TRUNCATE compliance_hoster, compliance_notice, monitor_check, monitor_attribution RESTART IDENTITY CASCADE"
        )
    hosters = Hoster.objects.bulk_create(
        Hoster(
            slug=f"bench-{i:03d}",
            name=f"Bench Hosting {i:03d}" if i else "Bench Giant Hosting",
            country="NL",
            kind="hoster",
            is_reviewed=True,
            abuse_email=f"abuse@bench-{i:03d}.test",
        )
        for i in range(PARAMS["hosters"])
    )
    # Sizes: the giant a /12, the tail one to three prefixes of /16 to /24 each.
    prefixes = [HosterPrefix(hoster=hosters[0], prefix="11.0.0.0/12", version=4, length=12)]
    for i, h in enumerate(hosters[1:], start=1):
        length = 16 + (i * 7) % 9
        for j in range(1 + i % 3):
            prefixes.append(HosterPrefix(hoster=h, prefix=f"{20 + j}.{i}.0.0/{length}", version=4, length=length))
    HosterPrefix.objects.bulk_create(prefixes)
    ids = [h.pk for h in hosters]

    n = PARAMS["notices"]
    log(f"inserting {n:,} notices")
    # s.*: per-row random numbers; hoster index: 40 % the giant, the rest a power law over 199.
    notice_given = {
        # Up to 100 host names per hoster (20,000 in all): hosts repeat, as they do (one image host, many files).
        "url": "'https://files' || (s.i %% 100) || '.h' || s.hix || '.example/img/' || s.i || '.jpg'",
        "scheme": "'https'",
        "host": "'files' || (s.i %% 100) || '.h' || s.hix || '.example'",
        "port": "NULL",
        "path": "'/img/' || s.i || '.jpg'",
        "query": "''",
        "source": "'bench'",
        "reference": "'B-' || s.i",
        "content_sha256": "''",
        "received_at": "s.notified_at",
        "notified_at": "s.notified_at",
        "deadline_s": "s.deadline_s",
        # Notice.timeline's rule in SQL: the rows are generated inside the database.
        "deadline_at": "s.notified_at + make_interval(secs => s.deadline_s)",
        "settles_at": "s.notified_at + make_interval(secs => 2 * s.deadline_s)",
        # The 24 h covenant; the shorter deadlines are removal orders (regimes).
        "regime": "CASE WHEN s.deadline_s = 86400 THEN 'covenant' ELSE 'order' END",
        "status": "s.status",
        "hoster": "(%(ids)s::bigint[])[s.hix + 1]",
        "hoster_source": "'attribution'",
        "attribution_state": "'done'",
        "check_count": "CASE WHEN s.taken THEN 4 WHEN s.status = 'online' THEN 3 ELSE 0 END",
        "last_checked_at": (
            "CASE WHEN s.taken THEN s.notified_at + make_interval(secs => s.ttt + 900) "
            "WHEN s.status = 'online' THEN s.last_seen END"
        ),
        "last_online_at": (
            "CASE WHEN s.taken THEN s.notified_at + make_interval(secs => s.ttt * (0.5 + 0.5 * s.r_x)) "
            "WHEN s.status = 'online' THEN s.last_seen END"
        ),
        "takedown_at": "CASE WHEN s.taken THEN s.notified_at + make_interval(secs => s.ttt) END",
        "next_check_at": "CASE WHEN s.status IN ('online', 'reappeared') THEN %(now)s + interval '10 min' END",
        "removal_mechanism": (
            "CASE WHEN NOT s.taken THEN '' WHEN s.r_m < 0.70 THEN 'file_gone' "
            "WHEN s.r_m < 0.82 THEN 'replaced' WHEN s.r_m < 0.90 THEN 'server_gone' "
            "WHEN s.r_m < 0.95 THEN 'domain_gone' WHEN s.r_m < 0.98 THEN 'blocked' ELSE 'moved' END"
        ),
        "is_displaced": "s.taken AND s.r_m >= 0.98",
        "reappearance_count": "CASE WHEN s.status = 'reappeared' THEN 1 ELSE 0 END",
        "reappeared_at": "CASE WHEN s.status = 'reappeared' THEN s.notified_at + make_interval(secs => s.ttt * 2) END",
    }
    names, exprs, params = _columns(Notice, notice_given)
    sql = f"""
        INSERT INTO compliance_notice ({", ".join(names)})
        SELECT {", ".join(exprs)}
        FROM (
            SELECT b.*,
                   GREATEST(b.notified_at, %(now)s - make_interval(secs => b.r_x * 1800)) AS last_seen,
                   b.ttt_raw IS NOT NULL AND b.status_raw = 'measured'
                       AND b.notified_at + make_interval(secs => b.ttt_raw) <= %(now)s - interval '10 minutes'
                       AS taken,
                   LEAST(b.ttt_raw, 60 * 86400) AS ttt,
                   CASE WHEN b.status_raw <> 'measured' THEN b.status_raw
                        WHEN b.notified_at > %(now)s - interval '2 minutes' THEN 'pending'
                        WHEN b.ttt_raw IS NULL
                             OR b.notified_at + make_interval(secs => b.ttt_raw) > %(now)s - interval '10 minutes'
                             THEN 'online'
                        WHEN b.r_x < 0.03 THEN 'reappeared'
                        ELSE 'removed' END AS status
            FROM (
                SELECT a.*,
                       %(now)s - make_interval(secs => a.r_n * {PARAMS["days"]} * 86400) AS notified_at,
                       CASE WHEN a.r_d < 0.01 THEN 3600 WHEN a.r_d < 0.05 THEN 43200 ELSE 86400 END AS deadline_s,
                       CASE WHEN a.r_s < 0.01 THEN 'repeat' WHEN a.r_s < 0.02 THEN 'unresolvable' ELSE 'measured' END
                           AS status_raw,
                       -- lognormal: median between ~1 h and ~2 days per hoster, sigma 1.3; 1.5 %% never
                       CASE WHEN a.r_m > 0.985 THEN NULL ELSE round(exp(ln(3600) + (((a.hix * 37) %% 100) / 100.0) * 3.9
                                 + 1.3 * sqrt(-2 * ln(a.u1)) * cos(2 * pi() * a.u2)))::bigint END AS ttt_raw
                FROM (
                    SELECT g AS i,
                           CASE WHEN r_h < {PARAMS["big_share"]} THEN 0
                                ELSE 1 + LEAST(198, floor(199 * power((r_h - {PARAMS["big_share"]})
                                                                      / (1 - {PARAMS["big_share"]}), 2.5))::int)
                           END AS hix,
                           r_n, r_d, r_s, r_x, r_m, GREATEST(u1, 1e-12) AS u1, u2
                    FROM (SELECT g, random() AS r_h, random() AS r_n, random() AS r_d, random() AS r_s,
                                 random() AS r_x, random() AS r_m, random() AS u1, random() AS u2
                          FROM generate_series(1, {n}) g) r
                ) a
            ) b
        ) s
        -- Ids in notification order, as in a real deployment (notices arrive over time): a month's
        -- notices then sit together on disk, as they would.
        ORDER BY s.notified_at
    """
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT setseed(%s)", [PARAMS["seed"]])
        cursor.execute(sql, {**params, "now": now, "ids": ids})
        log(f"  {cursor.rowcount:,} notices in {time.perf_counter() - started:.1f} s")

    t_checks = time.perf_counter()
    checks = _insert_chained_checks(now)
    log(f"  {checks:,} checks (hash-chained) in {time.perf_counter() - t_checks:.1f} s")
    t_attr = time.perf_counter()
    attributions = _insert_chained_attributions(now)
    log(f"  {attributions:,} attributions (hash-chained) in {time.perf_counter() - t_attr:.1f} s")
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE compliance_notice")
        cursor.execute("ANALYZE monitor_check")
        cursor.execute("ANALYZE monitor_attribution")
    meta = {
        "params": PARAMS,
        "generated_at": now.isoformat(),
        "notices": n,
        "checks": checks,
        "attributions": attributions,
        "generate_s": round(time.perf_counter() - started, 1),
    }
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO bench_meta VALUES ('scorecards', %s) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
            [json.dumps(meta)],
        )
    log(f"generated in {meta['generate_s']} s")
    return meta


def _copy_chained(model, chain, fetch, *, const: dict, head_field: str, step: int = 50_000) -> int:
    """COPY the rows `fetch(lo, hi)` gives for notice ids in [lo, hi) (dicts of the varying values,
    in chain order per notice) with their hashes, range by range (a COPY cannot run beside a
    fetch on one connection), and set the notices' chain heads from a temporary table."""
    columns = [f.attname for f in model._meta.concrete_fields if not f.primary_key]
    const = {**{f.attname: f.get_default() for f in model._meta.concrete_fields}, **const}
    heads: dict[int, str] = {}
    link = chain.link
    n = 0
    table = model._meta.db_table
    names = ", ".join(connection.ops.quote_name(model._meta.get_field(c).column) for c in columns)
    with connection.cursor() as cursor:
        cursor.execute("SELECT coalesce(max(id), 0) FROM compliance_notice")
        top = cursor.fetchone()[0]
        for lo in range(1, top + 1, step):
            rows = fetch(cursor, lo, lo + step)
            with cursor.cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
                for varying in rows:
                    values = {**const, **varying}
                    nid = values["notice_id"]
                    h = heads[nid] = link(heads.get(nid, evidence.GENESIS), [values[a] for a in chain.fields])
                    values["chain_hash"] = h
                    copy.write_row(
                        [json.dumps(v) if isinstance(v, list | dict) else v for v in (values[c] for c in columns)]
                    )
                    n += 1
        cursor.execute("CREATE TEMPORARY TABLE bench_heads (id bigint PRIMARY KEY, h varchar(64)) ON COMMIT DROP")
        with cursor.cursor.copy("COPY bench_heads (id, h) FROM STDIN") as copy:
            for nid, h in heads.items():
                copy.write_row((nid, h))
        cursor.execute(f"UPDATE compliance_notice n SET {head_field} = b.h FROM bench_heads b WHERE n.id = b.id")
    return n


def _insert_chained_checks(now) -> int:
    const = {
        "duration_ms": 40,
        "trigger": "schedule",
        "resolved_ip": "10.0.0.1",
        "error_kind": "",
        "body_sha256": "",
        "byte_count": 0,
        "is_truncated": False,
        "redirect_count": 0,
        "final_url": "",
        "worker": "bench",
        "vantage": "local",
    }
    sql = """
        WITH n AS (SELECT * FROM compliance_notice WHERE id >= %s AND id < %s)
        SELECT id, checked_at, outcome, http_status, reason FROM (
            SELECT id, notified_at + interval '30 seconds' AS checked_at, 'online' AS outcome, 200 AS http_status,
                   'http_200' AS reason, 0 AS k
              FROM n WHERE status NOT IN ('repeat', 'unresolvable', 'pending')
            UNION ALL
            SELECT id, last_online_at, 'online', 200, 'http_200', 1
              FROM n WHERE last_online_at > notified_at + interval '30 seconds'
            UNION ALL
            SELECT id, takedown_at, 'removed', 404, 'http_404', 2 FROM n WHERE takedown_at IS NOT NULL
            UNION ALL
            SELECT id, takedown_at + interval '900 seconds', 'removed', 404, 'http_404', 3
              FROM n WHERE takedown_at IS NOT NULL
        ) x ORDER BY id, k
    """

    def fetch(cursor, lo, hi):
        cursor.execute(sql, [lo, hi])
        return [
            {"notice_id": nid, "checked_at": at, "due_at": at, "outcome": outcome, "http_status": status, "reason": r}
            for nid, at, outcome, status, r in cursor.fetchall()
        ]

    with transaction.atomic():
        return _copy_chained(Check, Check.evidence_chain, fetch, const=const, head_field="check_chain_head")


def _insert_chained_attributions(now) -> int:
    const = {
        "method": "dns",
        "cname_chain": [],
        "resolved_ips": ["10.0.0.1"],
        "chosen_ip": "10.0.0.1",
        "asn": 64500,
        "asns": [64500],
        "routed_prefix": "10.0.0.0/16",
        "as_name": "BENCH-AS",
        "as_country": "NL",
        "registry": "ripencc",
        "rdap": {"cidr": "10.0.0.0/16", "name": "BENCH-NET", "abuse_emails": ["abuse@bench.test"]},
        "candidates": [{"ip": "10.0.0.1", "asn": 64500, "prefix": "10.0.0.0/16", "hoster": "bench"}],
        "cdn_id": None,
        "is_ambiguous": False,
        "decided_by_id": None,
        "reason": "registered prefix",
    }
    sql = (
        "SELECT id, host, notified_at, hoster_id FROM compliance_notice"
        " WHERE hoster_id IS NOT NULL AND id >= %s AND id < %s ORDER BY id"
    )

    def fetch(cursor, lo, hi):
        cursor.execute(sql, [lo, hi])
        return [
            {"notice_id": nid, "created_at": at, "hostname": host, "hoster_id": hoster_id}
            for nid, host, at, hoster_id in cursor.fetchall()
        ]

    with transaction.atomic():
        return _copy_chained(
            Attribution, Attribution.evidence_chain, fetch, const=const, head_field="attribution_chain_head"
        )
