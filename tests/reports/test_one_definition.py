"""One definition per figure: compliance_report, the metrics API (live and from rollups),
the exports' status and verdict columns, the league table (page and CSV), the scorecard, the notices
behind each figure, the hosters' portal and the admin give the same numbers for one data set that
holds every status, verdict and removal mechanism."""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from compliance.models import Notice

from .helpers import notice

FIGURES = ("notices", "removed", "within", "late", "pending", "open", "taken_down", "reappeared")
APART = ("repeats", "withdrawn", "server_gone")


@pytest.fixture
def every_case(prompt_hoster, slow_hoster):
    """Prompt holds one notice of each kind; slow a few more; one notice has no hoster at all."""
    now = timezone.now()
    old = now - timedelta(days=20)
    p = prompt_hoster
    notice(p, old, ttt_s=3600, removal_mechanism="file_gone")  # removed, within
    notice(p, old + timedelta(minutes=1), ttt_s=30 * 3600, removal_mechanism="replaced")  # removed, late
    notice(p, old + timedelta(minutes=2), ttt_s=4.5, removal_mechanism="blocked")  # removed, within, sub-second
    # Reappeared: taken down within, the content back: open, not removed; its verdict stays within.
    notice(p, old + timedelta(minutes=3), status="reappeared", ttt_s=7200, reappearance_count=1,
           removal_mechanism="file_gone")  # fmt: skip
    # Displaced by the deadline: a takedown, but no compliance: no verdict.
    notice(p, old + timedelta(minutes=4), ttt_s=1800, removal_mechanism="moved", is_displaced=True)
    # Server gone, long settled: within.
    notice(p, old + timedelta(minutes=5), ttt_s=3 * 3600, removal_mechanism="server_gone")
    notice(
        p,
        old + timedelta(minutes=6),
        ttt_s=None,
        takedown_at=None,
        status="online",
        last_checked_at=now - timedelta(hours=1),
        last_online_at=now - timedelta(hours=1),
    )  # open, late; fmt: skip
    fresh = now - timedelta(hours=1)
    notice(p, fresh, status="online", last_checked_at=now, last_online_at=now)  # open, pending
    notice(p, fresh, status="pending")  # open, pending, never checked
    # Server gone half an hour ago, within the deadline: provisional once the rules say so.
    notice(p, fresh - timedelta(minutes=30), ttt_s=600, removal_mechanism="server_gone")
    notice(p, old, status="repeat")
    notice(p, old, status="withdrawn", withdrawn_at=now, withdrawn_reason="sent in error")
    notice(p, None, status="pending")  # not notified yet: in no figure
    s = slow_hoster
    notice(s, old, ttt_s=50 * 3600, removal_mechanism="domain_gone")
    notice(s, old, status="online", last_checked_at=now, last_online_at=now)
    notice(None, old, status="unresolvable")
    notice(None, old, ttt_s=60, removal_mechanism="file_gone")
    return now


def _report() -> dict[str, dict]:
    out = io.StringIO()
    call_command("compliance_report", stdout=out)
    return {r["hoster"]: r for r in json.loads(out.getvalue())}


def _from_export(rows: list[dict]) -> dict[str, dict]:
    """The figures as a researcher would count them from the export's status and verdict columns."""
    by: dict[str, Counter] = {}
    for r in rows:
        if not r["hoster"] or not r["notified_at"]:
            continue
        c = by.setdefault(r["hoster"], Counter())
        if r["status"] == "repeat":
            c["repeats"] += 1
            continue
        if r["status"] == "withdrawn":
            c["withdrawn"] += 1
            continue
        c["notices"] += 1
        c["removed"] += r["status"] == "removed"
        c[r["verdict"]] += bool(r["verdict"])
        c["open"] += r["status"] in ("pending", "online", "reappeared")
        c["taken_down"] += bool(r["takedown_at"])
        c["reappeared"] += int(r["reappearance_count"]) > 0
        c["server_gone"] += bool(r["takedown_at"]) and r["removal_mechanism"] == "server_gone"
    return {h: {k: c[k] for k in (*FIGURES, *APART)} for h, c in by.items()}


def _pick(row: dict | object) -> dict:
    get = row.get if isinstance(row, dict) else lambda k: getattr(row, k)
    return {k: int(get(k)) for k in (*FIGURES, *APART)}


def test_every_surface_gives_the_same_figures(every_case, client, api, analyst, researcher, prompt_user):
    report = {h: _pick(r) for h, r in _report().items()}
    # Hand-checked where the rules of this branch and the lead's agree (the provisional server-gone
    # notice is within or pending depending on them; every surface must agree either way).
    prompt = report["prompt"]
    assert (prompt["notices"], prompt["removed"], prompt["taken_down"], prompt["reappeared"]) == (10, 6, 7, 1)
    assert (prompt["open"], prompt["late"], prompt["repeats"], prompt["withdrawn"]) == (4, 2, 1, 1)
    assert prompt["within"] + prompt["pending"] == 7 and prompt["server_gone"] == 2
    assert prompt["within"] + prompt["late"] + prompt["pending"] == prompt["notices"] - 1  # the displaced one

    surfaces = {"export": _from_export(list(csv.DictReader(io.StringIO(_stream(api, researcher)))))}
    metrics = api.as_user(researcher).get("/api/v1/metrics/hosters/").json()
    surfaces["metrics_api_live"] = {r["hoster"]: _pick(r) for r in metrics}
    rolled = api.as_user(researcher).get("/api/v1/metrics/hosters/", {"period": "all"}).json()
    surfaces["metrics_api_rollup"] = {r["hoster"]: _pick(r) for r in rolled}
    client.force_login(analyst)
    league = client.get("/scorecards/", {"period": "all"})
    surfaces["league_table"] = {m.hoster: _pick(m) for m in league.context["rows"]}
    league_csv = client.get("/scorecards/", {"period": "all", "format": "csv"}).content.decode()
    surfaces["league_csv"] = {r["hoster"]: _pick(r) for r in csv.DictReader(io.StringIO(league_csv))}
    surfaces["scorecards"] = {
        slug: _pick(client.get(f"/scorecards/{slug}/", {"period": "all"}).context["m"]) for slug in report
    }
    for name, figures in surfaces.items():
        assert figures == report, name

    # The notices behind each figure of the scorecard: as many as the figure says.
    for figure in (*FIGURES, "server_gone"):
        page = client.get("/scorecards/prompt/notices/", {"period": "all", "figure": figure}).context["page"]
        assert page.paginator.count == report["prompt"][figure], figure

    # The admin's notice list, filtered by hoster and status, and the hosters' portal.
    admin = client.get("/admin/compliance/notice/", {"hoster__id__exact": prompt_user.membership.hoster_id})
    by_status = Counter(n.status for n in admin.context["cl"].queryset if n.notified_at is not None)
    assert by_status["removed"] == report["prompt"]["removed"]
    assert sum(by_status[s] for s in Notice.OPEN_STATUSES) == report["prompt"]["open"]
    assert (by_status["repeat"], by_status["withdrawn"]) == (report["prompt"]["repeats"], report["prompt"]["withdrawn"])
    client.force_login(prompt_user)
    portal = client.get("/portal/")
    assert portal.context["page"].paginator.count == report["prompt"]["open"]


def _stream(api, user) -> str:
    response = api.as_user(user).get("/api/v1/export/notices.csv")
    return b"".join(response.streaming_content).decode()


@pytest.mark.django_db
def test_served_selectively_is_the_same_live_and_from_the_rollups(api, researcher, prompt_hoster):
    """A figure the rollup cells did not carry read 0 on the league table while the live API counted it."""
    old = timezone.now() - timedelta(days=20)
    notice(prompt_hoster, old, status="online", served_selectively_count=2, served_selectively_at=old)
    notice(prompt_hoster, old, status="online")
    client = api.as_user(researcher)
    live = {r["hoster"]: r["served_selectively"] for r in client.get("/api/v1/metrics/hosters/").json()}
    rolled = {
        r["hoster"]: r["served_selectively"] for r in client.get("/api/v1/metrics/hosters/", {"period": "all"}).json()
    }
    assert live == rolled == {"prompt": 1}
