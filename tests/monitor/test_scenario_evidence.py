"""End to end: only evidence of absence is a takedown, whatever a hoster's servers answer.

A compressed deadline (D = 30 s; a provisional server-gone takedown settles at 2 D), a real DNS
server and scripted HTTP servers on loopback, the real check drain (the check process included).
One hoster per behaviour, each named by the hotline, with a known fate on a known clock:

- `flapper`: the content, then 503 from 0.2 D to 0.5 D, then the content again: late;
- `resetter`: resets from 0.3 D to 1.4 D (across the deadline), then the content again: the
  server-gone takedown is annulled: late;
- `blocker`: 403 to the monitor from 0.2 D to 0.7 D, then the content again: late;
- `unplugged`: connections refused from 0.3 D for good: server gone at 0.3 D, within once settled;
- `vanished`: the host name does not resolve at the first check: counted, within;
- `prompt`: 404 at a sub-second moment: a time to takedown never below what was observed.
"""

from __future__ import annotations

import io
import json
import threading
import time
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from compliance import rules, services
from compliance.models import Check, Hoster, Notice
from demo.sandbox.httpserver import ok, reset, status
from monitor import check_drain, jobs

D = 30
ITEM = b"the reported item"
BEHAVIOURS = ("flapper", "resetter", "blocker", "unplugged", "vanished", "prompt")


def _notice(url: str, hoster: str, *, notified_at) -> Notice:
    data = services.notice_input_parse(
        url=url, notified_at=notified_at, reference=hoster, hoster=hoster, deadline_s=D, now=notified_at
    )
    return services.notice_create(data=data, source="evidence-scenario", now=notified_at)[0]


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_flapping_blocking_and_stalling_hosters_are_late_and_only_absence_is_a_takedown(
    http_server, http_server_factory, dns_server, settings
):
    settings.MONITOR_TIMEOUT = 1.0
    settings.MONITOR_DNS_NEGATIVE_TTL = 0
    settings.MONITOR_BATCH = 50
    for slug in BEHAVIOURS:
        Hoster.objects.create(slug=slug, name=slug.title(), is_reviewed=True)
    unplugged = http_server_factory(host="127.0.0.3")
    port = http_server.port
    for slug in BEHAVIOURS:
        dns_server.add_a(f"{slug}.example", "127.0.0.1", ttl=0)
        http_server.set(f"/{slug}", ok(ITEM))
    dns_server.add_a("unplugged.example", "127.0.0.3", ttl=0)
    unplugged.set("/unplugged", ok(ITEM))
    dns_server.nxdomain("vanished.example")

    t0 = timezone.now()
    notices = {
        slug: _notice(
            f"http://{slug}.example:{unplugged.port if slug == 'unplugged' else port}/{slug}", slug, notified_at=t0
        )
        for slug in BEHAVIOURS
    }
    removed_at = {}
    script = [
        (0.2 * D, "flapper", lambda: http_server.set("/flapper", status(503))),
        (0.2 * D, "blocker", lambda: http_server.set("/blocker", status(403))),
        (0.3 * D, "resetter", lambda: http_server.set("/resetter", reset())),
        (0.3 * D, "unplugged", unplugged.stop),
        (4.5, "prompt", lambda: http_server.set("/prompt", status(404))),
        (0.5 * D, "flapper", lambda: http_server.set("/flapper", ok(ITEM))),
        (0.7 * D, "blocker", lambda: http_server.set("/blocker", ok(ITEM))),
        (1.4 * D, "resetter", lambda: http_server.set("/resetter", ok(ITEM))),
    ]
    end_at = 2 * D + 3
    stop = threading.Event()

    def play():
        start = time.monotonic() - (timezone.now() - t0).total_seconds()
        for at, key, action in sorted(script, key=lambda s: s[0]):
            time.sleep(max(0.0, start + at - time.monotonic()))
            removed_at.setdefault(key, timezone.now())
            action()
        time.sleep(max(0.0, start + end_at - time.monotonic()))
        stop.set()

    player = threading.Thread(target=play, daemon=True)
    player.start()
    while not stop.is_set():
        while check_drain.drain_checks():
            pass
        stop.wait(0.25)
    player.join(5)
    jobs.stopping.clear()

    now = timezone.now()
    got = {k: Notice.objects.get(pk=n.pk) for k, n in notices.items()}
    states = {
        k: (n.status, n.removal_mechanism, list(n.checks.values_list("reason", flat=True))) for k, n in got.items()
    }
    verdicts = {k: n.verdict(now) for k, n in got.items()}
    assert verdicts == {
        "flapper": "late",
        "resetter": "late",
        "blocker": "late",
        "unplugged": "within",
        "vanished": "within",
        "prompt": "within",
    }, states

    # 503 and 403 are no evidence: never a takedown, not even a provisional one.
    for key in ("flapper", "blocker"):
        n = got[key]
        assert n.takedown_at is None and n.annulled_takedowns == 0 and n.status == "online", states[key]
        assert n.checks.filter(outcome="no_evidence").exists()
    # The resets added up to "server gone", annulled when the content came back before it settled.
    resetter = got["resetter"]
    assert resetter.annulled_takedowns == 1 and resetter.takedown_at is None and resetter.status == "online"
    # Refused for good: server gone, timed at the first refused observation, precision stated.
    gone = got["unplugged"]
    assert gone.removal_mechanism == "server_gone" and not gone.annulled_takedowns
    assert gone.last_online_at <= removed_at["unplugged"] <= gone.takedown_at + timedelta(seconds=0.5)
    assert 0 < gone.precision_s <= 2
    # A named hoster's notice whose host never resolved counts, decided as a 404 at its first check.
    vanished = got["vanished"]
    first = vanished.checks.order_by("checked_at").first()
    assert vanished.status == "removed" and vanished.takedown_at == first.checked_at
    assert vanished.removal_mechanism == "domain_gone" and first.reason == "never_resolved"
    # Times are upper bounds: never below the observation, with sub-second precision.
    prompt = got["prompt"]
    exact = (prompt.takedown_at - prompt.notified_at).total_seconds()
    assert exact <= prompt.ttt_s < exact + 0.001
    assert prompt.ttt_s >= 4.5 - 0.5  # the true removal, less the check's own duration at most

    # Every notice counts for its hoster, in the report as on the notice.
    out = io.StringIO()
    call_command("compliance_report", "--from", (t0 - timedelta(days=1)).isoformat(), stdout=out)
    rows = {row["hoster"]: row for row in json.loads(out.getvalue())}
    assert {k: rows[k]["notices"] for k in BEHAVIOURS} == dict.fromkeys(BEHAVIOURS, 1)
    assert {k: (rows[k]["within"], rows[k]["late"]) for k in BEHAVIOURS} == {
        k: (1, 0) if verdicts[k] == "within" else (0, 1) for k in BEHAVIOURS
    }

    # Every stored timing is the replay of its checks, and the checks carry the evidence.
    for n in got.values():
        checks = list(n.checks.order_by("checked_at", "id"))
        replayed = rules.replay(
            [(c.checked_at, c.outcome, c.reason) for c in checks], deadline_s=D, notified_at=t0, has_hoster=True
        )
        assert replayed == rules.Timing.of(n), n.reference
    assert Check.objects.filter(notice=got["resetter"], reason="reset").count() >= 3
    out = io.StringIO()
    call_command("verify_measurements", stdout=out)
    assert json.loads(out.getvalue().splitlines()[-1])["inconsistent"] == 0
