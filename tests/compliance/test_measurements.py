"""compliance/measurements.py: recomputing measurements under the current methodology, withdrawing
notices, and the methodology versions (recompute_measurements, verify_measurements, /methodology/)."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from compliance import measurements, methodology, rules
from compliance.models import AuditEvent, MethodologyRecord, Notice
from monitor.models import Check

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
D = 3600


def _notice(hoster, n: int, **fields) -> Notice:
    values = dict(
        url=f"http://old{n}.example/x.jpg",
        scheme="http",
        host=f"old{n}.example",
        path="/x.jpg",
        received_at=T0,
        notified_at=T0,
        deadline_s=D,
        hoster=hoster,
        status="online",
    )
    values.update(fields)
    return Notice.objects.create(**values)


def _checks(notice: Notice, *observations) -> None:
    """observations: (seconds after T0, outcome, reason) as an earlier methodology recorded them."""
    for seconds, outcome, reason in observations:
        Check.objects.create(notice=notice, checked_at=T0 + timedelta(seconds=seconds), outcome=outcome, reason=reason)


def _apply_v1(notice: Notice) -> None:
    """Store what methodology 1.0 made of the checks: a server-gone takedown from 503s."""
    first = notice.checks.order_by("checked_at").first().checked_at
    last = notice.checks.order_by("checked_at").last().checked_at
    Notice.objects.filter(pk=notice.pk).update(
        status="removed",
        takedown_at=first,
        removal_mechanism="server_gone",
        check_count=notice.checks.count(),
        last_checked_at=last,
        next_check_at=None,
    )


def run(command: str, *args) -> tuple[dict, str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command(command, *args, stdout=out, stderr=err)
        code = 0
    except SystemExit as exc:
        code = exc.code
    return json.loads(out.getvalue().strip().splitlines()[-1]), code


@pytest.mark.django_db
def test_recompute_brings_an_older_database_to_the_current_methodology(prompt_hoster):
    # 1.0 counted 503s as unreachable: this hoster "took down" content it kept serving.
    flapper = _notice(prompt_hoster, 1)
    _checks(flapper, (60, "online", "online"), *[(600 + 600 * i, "transient", "http_503") for i in range(4)])
    _apply_v1(flapper)
    # 1.0 closed a named hoster's notice whose name never resolved as unresolvable: no measurement.
    vanished = _notice(prompt_hoster, 2, status="unresolvable")
    _checks(vanished, (10, "transient", "never_resolved"), (40, "transient", "never_resolved"))
    Notice.objects.filter(pk=vanished.pk).update(check_count=2, last_checked_at=T0 + timedelta(seconds=40))
    # A notice still online after 30 deadlines: 1.0 stopped checking it.
    forgotten = _notice(prompt_hoster, 3)
    _checks(forgotten, (60, "online", "online"))
    Notice.objects.filter(pk=forgotten.pk).update(
        check_count=1, last_checked_at=T0 + timedelta(seconds=60), last_online_at=T0 + timedelta(seconds=60)
    )

    before, code = run("verify_measurements")
    # The flapper and the unresolvable one; and since 2.1 the forgotten one as well, whose stored
    # state lacks the last check's vantage and evidence class that 2.1 keeps.
    assert code == 1 and before["inconsistent"] == 3

    summary, code = run("recompute_measurements")
    assert code == 0
    assert summary["changed"] == 3 and summary["rescheduled"] >= 2
    assert summary["methodology_version"] == methodology.CURRENT

    flapper.refresh_from_db()
    assert flapper.status == "online" and flapper.takedown_at is None and flapper.removal_mechanism == ""
    assert flapper.verdict(timezone.now()) == "late" and flapper.next_check_at is not None
    vanished.refresh_from_db()
    assert vanished.status == "removed" and vanished.takedown_at == T0 + timedelta(seconds=10)
    assert vanished.removal_mechanism == "domain_gone" and vanished.verdict(timezone.now()) == "within"
    forgotten.refresh_from_db()
    assert forgotten.next_check_at is not None

    events = AuditEvent.objects.filter(action="notice.remeasure")
    assert {e.notice_id for e in events} == {flapper.pk, vanished.pk, forgotten.pk}  # see above
    flapper_event = events.get(notice_id=flapper.pk)
    assert flapper_event.detail["changes"]["removal_mechanism"] == ["server_gone", ""]
    assert flapper_event.detail["methodology_version"] == methodology.CURRENT
    assert MethodologyRecord.objects.filter(version=methodology.CURRENT).count() == 1

    after, code = run("verify_measurements")
    assert code == 0 and after["inconsistent"] == 0
    again, _code = run("recompute_measurements")
    assert again["changed"] == 0  # idempotent


@pytest.mark.django_db
def test_recompute_reaches_the_rollups_at_once(prompt_hoster, settings):
    """The rewritten notices are stamped; the hook makes the next page catch up with them (reports
    recompute only the days they touch: reports/rollups.py)."""
    from compliance.models import Hoster, Notice
    from reports import periods, rollups

    settings.SCORECARD_ROLLUP_MAX_AGE = 60
    flapper = _notice(prompt_hoster, 1)
    _checks(flapper, (60, "online", "online"), *[(600 + 600 * i, "transient", "http_503") for i in range(4)])
    _apply_v1(flapper)
    rollups.drain()  # the monitor's last pass: the figures hold the old takedown

    def prompt_figures():
        now = timezone.now()
        period = periods.resolve("all", now)
        found = rollups.figures(period, now=now, hosters=Hoster.objects.all(), notices=Notice.objects.all())
        return next(m for m in found.hosters if m.hoster == "prompt")

    assert prompt_figures().taken_down == 1
    measurements.notices_remeasure(reason="test")
    assert prompt_figures().taken_down == 0


@pytest.mark.django_db
def test_an_analyst_withdraws_a_notice_sent_in_error_and_it_leaves_every_rate(client, analyst, prompt_hoster):
    notice = _notice(prompt_hoster, 1, next_check_at=T0)
    kept = _notice(prompt_hoster, 2)
    client.force_login(analyst)
    url = "/admin/compliance/notice/"
    page = client.post(url, {"action": "withdraw", "_selected_action": [notice.pk]})
    assert page.status_code == 200 and b"reason" in page.content.lower()
    refused = client.post(url, {"action": "withdraw", "_selected_action": [notice.pk], "apply": "1", "reason": ""})
    assert refused.status_code == 200
    notice.refresh_from_db()
    assert notice.status == "online"
    done = client.post(
        url, {"action": "withdraw", "_selected_action": [notice.pk], "apply": "1", "reason": "wrong URL typed"}
    )
    assert done.status_code == 302
    notice.refresh_from_db()
    assert notice.status == "withdrawn" and notice.withdrawn_reason == "wrong URL typed"
    assert notice.next_check_at is None and notice.verdict(timezone.now()) is None
    event = AuditEvent.objects.get(action="notice.withdraw")
    assert event.notice_id == notice.pk and event.actor == analyst and event.detail["reason"] == "wrong URL typed"

    out = io.StringIO()
    call_command("compliance_report", "--from", "2026-01-01", stdout=out)
    (row,) = json.loads(out.getvalue())
    assert row["notices"] == 1 and row["late"] == 1  # only `kept`
    assert kept.verdict(timezone.now()) == "late"


@pytest.mark.django_db
def test_withdrawing_needs_a_reason():
    with pytest.raises(measurements.WithdrawError):
        measurements.notice_withdraw(notice_ids=[], reason=" ", user=None)


@pytest.mark.django_db
@pytest.mark.parametrize(("language", "heading"), [("en", "Methodology versions"), ("nl", "Methodeversies")])
def test_the_methodology_page_lists_the_versions_and_the_settings_in_use(client, language, heading):
    measurements.methodology_record()
    html = client.get("/methodology/", HTTP_ACCEPT_LANGUAGE=language).content.decode()
    assert heading in html
    for version in methodology.VERSIONS:
        assert version.number in html
    assert f"confirmations={rules.Rules.from_settings().confirmations}" in html
