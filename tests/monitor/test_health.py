"""The monitor's health page (monitor/health.py, /monitor/health/): figures and who may see them."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from compliance import services
from compliance.models import Check, Notice
from demo.sandbox.httpserver import ok, reset, status
from monitor import check_drain
from monitor.health import monitor_health


def make_notice(url: str, *, deadline_s: int = 3600):
    now = timezone.now()
    data = services.notice_input_parse(url=url, notified_at=now, deadline_s=deadline_s, now=now)
    return services.notice_create(data=data, source="health", now=now)[0]


def test_health_counts_the_queue_leases_throughput_lag_and_errors(db, http_server):
    http_server.set("/ok", ok(b"x"))
    http_server.set("/gone", status(404))
    http_server.set("/reset", reset())
    for path in ("/ok", "/gone", "/reset"):
        make_notice(http_server.url(path))
    check_drain.run_batch()  # three checks, due at intake: small lag

    now = timezone.now()
    due = make_notice(http_server.url("/due"))
    Notice.objects.filter(pk=due.pk).update(next_check_at=now - timedelta(seconds=30))
    held = make_notice(http_server.url("/held"))
    Notice.objects.filter(pk=held.pk).update(next_check_at=now + timedelta(seconds=60), lease_token=uuid.uuid4())
    dead = make_notice(http_server.url("/dead"))
    Notice.objects.filter(pk=dead.pk).update(next_check_at=now - timedelta(seconds=5), lease_token=uuid.uuid4())

    h = monitor_health(now=timezone.now())
    assert h.due_now == 2 and h.leases_expired == 1 and h.leases_held == 1
    assert 30 <= h.oldest_due_s < 60
    assert h.checks_last_minute == 3 and h.checks_per_minute_60 == pytest.approx(3 / 60)
    assert h.outcomes == {"online": 1, "removed": 1, "transient": 1}
    assert [kind for kind, _n in h.errors] in (["reset"], ["disconnected"])
    assert h.lag_sample == 3 and h.lag_within_tolerance == 1.0 and h.lag_max_s < 2
    assert h.is_keeping_up
    assert [w["worker"] for w in h.workers] == [check_drain.WORKER]


def test_a_monitor_falling_behind_shows_it(db, http_server):
    http_server.set("/late", ok(b"x"))
    notice = make_notice(http_server.url("/late"), deadline_s=600)
    Notice.objects.filter(pk=notice.pk).update(next_check_at=timezone.now() - timedelta(seconds=20))
    check_drain.run_batch()
    h = monitor_health(now=timezone.now())
    assert h.lag_median_s >= 20  # the tolerance for a 10-minute deadline is 2 s
    assert h.lag_within_tolerance == 0.0 and not h.is_keeping_up


def test_analysts_see_the_health_page_linked_from_the_navigation(
    client, analyst, http_server, django_assert_max_num_queries
):
    http_server.set("/ok", ok(b"x"))
    make_notice(http_server.url("/ok"))
    check_drain.run_batch()
    client.force_login(analyst)
    with django_assert_max_num_queries(20):
        response = client.get(reverse("monitor:health"))
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="checks-1m">1<' in html and "keeping up" in html
    assert reverse("monitor:health") in client.get(reverse("home")).content.decode()


@pytest.mark.parametrize("who", ["ministry", "researcher", "prompt_user"])
def test_the_health_page_does_not_exist_for_other_roles(client, request, who):
    user = request.getfixturevalue(who)
    client.force_login(user)
    assert client.get(reverse("monitor:health")).status_code == 404
    assert reverse("monitor:health") not in client.get(reverse("home")).content.decode()


def test_the_health_page_asks_strangers_to_log_in(client, db):
    response = client.get(reverse("monitor:health"))
    assert response.status_code == 302 and reverse("login") in response["Location"]


def test_a_killed_monitors_claims_count_from_their_first_due_time(db, http_server):
    """A monitor that claims and dies leaves its notices leased; the next claim must not take the
    lease's end for the due time (105 s of waiting would show as a 2 s lag)."""
    http_server.set("/stranded", ok(b"x"))
    notice = make_notice(http_server.url("/stranded"), deadline_s=600)
    due_at = timezone.now() - timedelta(seconds=91)  # so that the re-check (timed by the clock) is 91 s late
    Notice.objects.filter(pk=notice.pk).update(next_check_at=due_at)

    # The monitor that dies: it claims (75 s lease) and never records.
    claimed = check_drain.claim(now=due_at + timedelta(seconds=1), limit=10, token=uuid.uuid4(), lease_s=75)
    assert [c.id for c in claimed] == [notice.pk] and claimed[0].due_at == due_at

    while_held = monitor_health(now=due_at + timedelta(seconds=31))
    assert while_held.leases_held == 1 and while_held.oldest_held_s == pytest.approx(31)
    after_expiry = monitor_health(now=due_at + timedelta(seconds=90))
    assert after_expiry.leases_expired == 1 and after_expiry.oldest_due_s == pytest.approx(90)

    # Another monitor takes the expired lease over: the check's due time is still the first one.
    assert check_drain.run_batch().recorded == 1
    check = Check.objects.get(notice=notice)
    assert check.due_at == due_at and check.trigger == Check.Trigger.SCHEDULE
    h = monitor_health(now=check.checked_at + timedelta(seconds=1))
    assert h.lag_max_s >= 89 and not h.is_keeping_up


def test_a_released_check_counts_from_its_own_due_time_again(db, http_server):
    """After a recorded check the next claim takes the new next_check_at, not the old first due."""
    http_server.set("/twice", ok(b"x"))
    notice = make_notice(http_server.url("/twice"))
    check_drain.run_batch()
    notice.refresh_from_db()
    first_due, next_due = notice.first_due_at, notice.next_check_at
    assert first_due is not None and next_due > first_due
    claimed = check_drain.claim(now=next_due + timedelta(seconds=1), limit=10, token=uuid.uuid4(), lease_s=75)
    assert [c.due_at for c in claimed] == [next_due]
