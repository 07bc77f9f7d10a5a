"""Back-filled history (demo/sandbox/history.py): every notice's timing is exactly what its
checks imply under the accounting rules, its checks follow the schedule, and the sandbox will go
on serving each item the way its history ended."""

from __future__ import annotations

import io
import json
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pytest

from compliance import rules, verdicts
from compliance.models import Attribution, Check, Notice
from demo.sandbox import history
from demo.sandbox import world as market
from monitor import schedule

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def small_history():
    return history.generate(now=NOW, months=3, per_month=60, http_port=8080, seed=7)


def _checks_by_notice(h):
    by = defaultdict(list)
    for c in h.checks:
        by[c[0]].append(c)
    return by


def _aware(t):
    return t.replace(tzinfo=UTC)


def test_every_notice_is_the_replay_of_its_checks(small_history):
    by = _checks_by_notice(small_history)
    assert len(small_history.notices) > 150
    for notice in small_history.notices:
        checks = [(_aware(c[1]), c[4], c[5]) for c in by[notice["_n"]]]
        replayed = rules.replay(checks, deadline_s=notice["deadline_s"])
        assert replayed.as_dict() == {k: notice[k] for k in rules.Timing.FIELDS}, notice["reference"]


def test_checks_run_on_the_schedule_until_now(small_history):
    by = _checks_by_notice(small_history)
    for notice in small_history.notices:
        checks = by[notice["_n"]]
        state = rules.Timing()
        for previous, check in zip(checks, checks[1:], strict=False):
            state = rules.apply_check(state, at=_aware(previous[1]), outcome=previous[4], reason=previous[5],
                                      deadline_s=notice["deadline_s"])  # fmt: skip
            due = schedule.next_check_at(
                now=_aware(previous[1]),
                notified_at=notice["notified_at"],
                deadline_s=notice["deadline_s"],
                status=state.status,
                takedown_at=state.takedown_at,
                offline_streak=state.offline_streak,
            )
            assert _aware(check[2]) == due  # due_at is what the schedule said
            assert timedelta(0) <= _aware(check[1]) - due < timedelta(seconds=2)  # and it ran on time
        assert _aware(checks[-1][1]) < NOW
        assert notice["next_check_at"] is None or notice["next_check_at"] >= NOW


def test_the_sandbox_keeps_serving_items_the_way_their_history_ended(small_history):
    for notice in small_history.notices:
        site = market.SITES_BY_HOST.get(notice["host"])
        if site is None:  # a vanished domain: not in the sandbox DNS, NXDOMAIN
            assert notice["status"] == "removed" and notice["removal_mechanism"] == "domain_gone"
            continue
        kind = market.item_kind(site, notice["path"])
        assert kind == (market.GONE if notice["status"] == "removed" else market.KEPT), notice["reference"]


def test_the_history_shows_each_hosters_conduct(small_history):
    counts = defaultdict(lambda: defaultdict(int))
    for notice in small_history.notices:
        deadline_at = notice["notified_at"] + timedelta(seconds=notice["deadline_s"])
        v = verdicts.verdict(
            status=notice["status"],
            notified_at=notice["notified_at"],
            deadline_at=deadline_at,
            takedown_at=notice["takedown_at"],
            offline_since=notice["offline_since"],
            unreachable_since=notice["unreachable_since"],
            now=NOW,
        )
        counts[notice["hoster"]][v] += 1

    def rate(slug):
        return verdicts.compliance_rate(counts[slug]["within"], counts[slug]["late"])

    assert rate("prompt") > 0.9
    assert rate("neveract") < 0.6
    assert rate("prompt") > rate("slowpoke")
    mechanisms = {n["removal_mechanism"] for n in small_history.notices if n["hoster"] == "pixelswap"}
    assert mechanisms <= {"replaced", ""}


@pytest.mark.django_db
def test_loading_writes_notices_checks_and_evidence(small_history):
    from django.core.management import call_command

    call_command("load_hosters", "demo/data/hosters.csv", stdout=open("/dev/null", "w"))  # noqa: SIM115
    counts = history.load(small_history, now=NOW)
    assert counts["notices"] == Notice.objects.count() == Attribution.objects.count()
    assert counts["checks"] == Check.objects.count()
    notice = Notice.objects.filter(status="removed").order_by("id").first()
    checks = list(notice.checks.order_by("checked_at").values_list("checked_at", "outcome", "reason"))
    assert rules.replay(checks, deadline_s=notice.deadline_s) == rules.Timing.of(notice)
    # And so every loaded notice (verify_measurements replays them all from the database).
    out = io.StringIO()
    call_command("verify_measurements", stdout=out)
    summary = json.loads(out.getvalue().splitlines()[-1])
    assert summary["inconsistent"] == 0 and summary["notices"] > 0
    # The history's checks and attributions are hash-chained as the monitor chains them.
    out = io.StringIO()
    call_command("verify_evidence", stdout=out)
    evidence = json.loads(out.getvalue().splitlines()[-1])
    assert evidence["ok"] is True
    assert evidence["chains"]["checks"]["rows"] == counts["checks"]
    assert evidence["chains"]["attributions"]["chains"] == counts["notices"]
    ids = list(Notice.objects.order_by("id").values_list("notified_at", flat=True))
    assert ids == sorted(ids)  # ids follow the order of notification
    Notice.objects.create(  # the id sequence goes on after the explicit ids (PostgreSQL)
        url="http://x.test/a", scheme="http", host="x.test", path="/a", received_at=NOW, deadline_s=60
    )
