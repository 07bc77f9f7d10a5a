"""The hosters' portal pages: own notices only, deadlines, checks, and the hoster's responses."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from compliance.models import AuditEvent, Dispute, Notice
from tests.compliance.portal_support import make_check, make_notice


@pytest.fixture
def pat(prompt_user):
    client = Client()
    client.force_login(prompt_user)
    return client


@pytest.fixture
def notices(prompt_hoster, slow_hoster):
    """Prompt's: two open (one near its deadline, one overdue), one removed, one not yet notified;
    Slow's: one open."""
    return {
        "near": make_notice("http://files.prompt.test/near.jpg", prompt_hoster, notified_ago_s=80000, status="online"),
        "fresh": make_notice("http://files.prompt.test/fresh.jpg", prompt_hoster, notified_ago_s=600, status="pending"),
        "overdue": make_notice(
            "http://files.prompt.test/overdue.jpg", prompt_hoster, notified_ago_s=90000, status="online"
        ),
        "removed": make_notice(
            "http://files.prompt.test/gone.jpg",
            prompt_hoster,
            notified_ago_s=50000,
            status="removed",
            takedown_at=timezone.now() - timedelta(hours=10),
        ),
        "unsent": make_notice("http://files.prompt.test/unsent.jpg", prompt_hoster, notified_ago_s=None),
        "other": make_notice("http://secret.slow.test/other.jpg", slow_hoster, notified_ago_s=3600, status="online"),
    }


def open_rows(html: str) -> list[int]:
    table = html.split('id="open-notices"', 1)[1].split("</table>", 1)[0]
    return [int(n) for n in re.findall(r'data-notice="(\d+)"', table)]


def test_a_hoster_sees_its_open_notices_nearest_deadline_first(pat, notices):
    response = pat.get("/portal/")
    assert response.status_code == 200
    html = response.content.decode()
    assert open_rows(html) == [notices["overdue"].pk, notices["near"].pk, notices["fresh"].pk]
    assert "files.prompt.test/near.jpg" in html
    assert "overdue by" in html and "left" in html
    # Closed ones come after, in their own list.
    assert html.index("gone.jpg") > html.index('id="open-notices"')


def test_a_hoster_never_sees_another_hosters_notice_or_a_notice_not_yet_sent(pat, notices):
    html = pat.get("/portal/").content.decode() + pat.get("/portal/closed/").content.decode()
    assert "secret.slow.test" not in html
    assert "unsent.jpg" not in html
    assert pat.get(f"/portal/notices/{notices['other'].pk}/").status_code == 404
    assert pat.get(f"/portal/notices/{notices['unsent'].pk}/").status_code == 404
    assert pat.get("/portal/notices/999999/").status_code == 404


@pytest.mark.parametrize("action", ["acknowledge", "removed", "dispute"])
def test_a_hoster_cannot_act_on_another_hosters_notice(pat, notices, action):
    other = notices["other"]
    before = Notice.objects.filter(pk=other.pk).values().get()
    response = pat.post(f"/portal/notices/{other.pk}/{action}/", {"reason": "other", "text": "x"})
    assert response.status_code == 404
    assert Notice.objects.filter(pk=other.pk).values().get() == before
    assert not Dispute.objects.exists()


def test_the_deadline_is_shown_in_amsterdam_time(pat, prompt_hoster):
    from datetime import UTC, datetime

    notice = make_notice("http://files.prompt.test/tz.jpg", prompt_hoster, notified_ago_s=None, status="online")
    Notice.objects.filter(pk=notice.pk).update(
        notified_at=datetime(2026, 7, 1, 10, 0, tzinfo=UTC), deadline_at=datetime(2026, 7, 2, 10, 0, tzinfo=UTC)
    )
    html = pat.get(f"/portal/notices/{notice.pk}/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "1 Jul 2026, 12:00:00" in html  # CEST = UTC+2
    assert "2 Jul 2026, 12:00:00" in html
    dutch = pat.get(f"/portal/notices/{notice.pk}/", HTTP_ACCEPT_LANGUAGE="nl").content.decode()
    assert "1 juli 2026 12:00:00" in dutch and "2 juli 2026 12:00:00" in dutch
    assert "2026-07-01" not in html + dutch  # no ISO dates in the text; data-deadline keeps the offset
    assert 'data-deadline="2026-07-02T10:00:00+00:00"' in html


def test_the_notice_page_shows_the_check_history_without_content(pat, notices):
    notice = notices["near"]
    make_check(notice, ago_s=7200, outcome="online", http_status=200)
    make_check(notice, ago_s=60, outcome="no_evidence", http_status=503)
    html = pat.get(f"/portal/notices/{notice.pk}/").content.decode()
    checks = html.split('id="checks"', 1)[1].split("</table>", 1)[0]
    assert checks.count("<tr>") == 3  # header + two checks
    assert "503" in checks and "no evidence" in checks and "online" in checks
    assert "ab" * 32 not in html  # no body hash, let alone a body


def test_the_list_shows_each_notices_latest_checks(pat, notices):
    make_check(notices["near"], ago_s=100, outcome="online", http_status=200)
    html = pat.get("/portal/").content.decode()
    row = html.split(f'data-notice="{notices["near"].pk}"', 1)[1].split("</tr>", 1)[0]
    assert 'class="check online"' in row


def test_the_portal_list_costs_the_same_queries_for_many_notices(pat, prompt_hoster, django_assert_max_num_queries):
    for i in range(30):
        notice = make_notice(f"http://files.prompt.test/{i}.jpg", prompt_hoster, status="online")
        make_check(notice, ago_s=10 + i)
    with django_assert_max_num_queries(12):
        assert pat.get("/portal/").status_code == 200


def test_acknowledging_records_the_first_time_only(pat, notices, prompt_user):
    notice = notices["near"]
    pat.post(f"/portal/notices/{notice.pk}/acknowledge/")
    first = Notice.objects.get(pk=notice.pk).acknowledged_at
    assert first is not None
    pat.post(f"/portal/notices/{notice.pk}/acknowledge/")
    assert Notice.objects.get(pk=notice.pk).acknowledged_at == first
    events = AuditEvent.objects.filter(action="notice.acknowledge", notice=notice)
    assert [e.detail["first"] for e in events.order_by("id")] == [True, False]
    assert {e.actor for e in events} == {prompt_user}


def test_reporting_removed_asks_for_an_immediate_recheck_and_changes_no_verdict(pat, notices):
    notice = notices["overdue"]
    before = Notice.objects.get(pk=notice.pk)
    response = pat.post(f"/portal/notices/{notice.pk}/removed/", follow=True)
    assert "re-checks notice" in response.content.decode()
    after = Notice.objects.get(pk=notice.pk)
    assert after.reported_removed_at is not None
    assert after.next_check_at == after.reported_removed_at <= timezone.now()
    # Verify, don't trust: nothing about the measurement moved.
    for field in ("status", "takedown_at", "last_online_at", "offline_since", "notified_at", "deadline_at"):
        assert getattr(after, field) == getattr(before, field), field
    assert after.verdict(timezone.now()) == "late"


def test_repeated_removal_reports_wait_for_the_check_they_asked_for(pat, notices):
    notice = notices["near"]
    pat.post(f"/portal/notices/{notice.pk}/removed/")
    first = Notice.objects.get(pk=notice.pk)
    Notice.objects.filter(pk=notice.pk).update(next_check_at=timezone.now() + timedelta(hours=1))
    response = pat.post(f"/portal/notices/{notice.pk}/removed/", follow=True)
    assert "already on its way" in response.content.decode()
    assert Notice.objects.get(pk=notice.pk).reported_removed_at == first.reported_removed_at
    # Once a check has started after the report, a new report is a new request.
    Notice.objects.filter(pk=notice.pk).update(last_checked_at=timezone.now())
    pat.post(f"/portal/notices/{notice.pk}/removed/")
    assert Notice.objects.get(pk=notice.pk).reported_removed_at > first.reported_removed_at


def test_a_removal_report_never_moves_a_check_in_flight(pat, notices):
    notice = notices["near"]
    lease_until = timezone.now() + timedelta(seconds=30)
    Notice.objects.filter(pk=notice.pk).update(lease_token=uuid.uuid4(), next_check_at=lease_until)
    pat.post(f"/portal/notices/{notice.pk}/removed/")
    after = Notice.objects.get(pk=notice.pk)
    assert after.reported_removed_at is not None
    assert after.next_check_at == lease_until  # the lease holder's; a second claim would double-check


def test_a_closed_notice_cannot_be_reported_removed(pat, notices):
    notice = notices["removed"]
    response = pat.post(f"/portal/notices/{notice.pk}/removed/", follow=True)
    assert "is closed" in response.content.decode()
    assert Notice.objects.get(pk=notice.pk).reported_removed_at is None


def test_a_dispute_lands_in_the_analysts_queue_and_the_answer_reaches_the_hoster(pat, notices, analyst):
    notice = notices["near"]
    response = pat.post(
        f"/portal/notices/{notice.pk}/dispute/", {"reason": "not_our_customer", "text": "Reseller X's customer."}
    )
    assert response.status_code == 302
    dispute = Dispute.objects.get()
    assert (dispute.reason, dispute.state, dispute.hoster, dispute.text) == (
        "not_our_customer",
        "open",
        notice.hoster,
        "Reseller X's customer.",
    )

    admin = Client()
    admin.force_login(analyst)
    queue = admin.get("/admin/compliance/dispute/").content.decode()
    assert f"#{notice.pk}" in queue
    answer = admin.post(
        f"/admin/compliance/dispute/{dispute.pk}/change/",
        {"state": "rejected", "answer": "Our records show AS64500 announces it and you own the block."},
    )
    assert answer.status_code == 302
    dispute.refresh_from_db()
    assert dispute.state == "rejected" and dispute.answered_by == analyst and dispute.answered_at
    assert AuditEvent.objects.filter(action="dispute.answer", actor=analyst).exists()
    # Answered disputes leave the queue (its default filter is "open").
    assert f"#{notice.pk}" not in admin.get("/admin/compliance/dispute/").content.decode()

    page = pat.get(f"/portal/notices/{notice.pk}/").content.decode()
    assert "you own the block" in page and "rejected" in page
    assert "you own the block" in pat.get("/portal/disputes/").content.decode()


def test_already_removed_needs_the_time_and_other_needs_an_explanation(pat, notices):
    notice = notices["near"]
    response = pat.post(f"/portal/notices/{notice.pk}/dispute/", {"reason": "already_removed"})
    assert response.status_code == 400
    assert "Say when the content was removed" in response.content.decode()
    response = pat.post(f"/portal/notices/{notice.pk}/dispute/", {"reason": "other", "text": " "})
    assert response.status_code == 400
    assert "Explain the dispute" in response.content.decode()
    assert not Dispute.objects.exists()
    ok = pat.post(
        f"/portal/notices/{notice.pk}/dispute/", {"reason": "already_removed", "removed_at": "2026-01-05 09:30"}
    )
    assert ok.status_code == 302
    dispute = Dispute.objects.get()
    assert dispute.removed_at.isoformat() == "2026-01-05T08:30:00+00:00"  # entered in Amsterdam time


def test_one_open_dispute_per_notice(pat, notices):
    notice = notices["near"]
    pat.post(f"/portal/notices/{notice.pk}/dispute/", {"reason": "behind_cdn"})
    again = pat.post(f"/portal/notices/{notice.pk}/dispute/", {"reason": "behind_cdn"})
    assert again.status_code == 400
    assert "already has an open dispute" in again.content.decode()
    assert Dispute.objects.count() == 1


def test_the_portal_is_for_hoster_users(client, analyst, ministry, researcher, notices):
    assert client.get("/portal/").status_code == 302  # anonymous: to the login page
    assert client.get("/portal/")["Location"].startswith("/accounts/login/")
    for user in (analyst, ministry, researcher):
        client.force_login(user)
        assert client.get("/portal/").status_code == 403
        assert client.get(f"/portal/notices/{notices['near'].pk}/").status_code == 403


def test_the_portals_forms_need_the_csrf_token(prompt_user, notices):
    client = Client(enforce_csrf_checks=True)
    client.force_login(prompt_user)
    notice = notices["near"]
    assert client.post(f"/portal/notices/{notice.pk}/acknowledge/").status_code == 403
    assert Notice.objects.get(pk=notice.pk).acknowledged_at is None
    page = client.get(f"/portal/notices/{notice.pk}/").content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    assert client.post(f"/portal/notices/{notice.pk}/acknowledge/", {"csrfmiddlewaretoken": token}).status_code == 302
    assert Notice.objects.get(pk=notice.pk).acknowledged_at is not None


def test_actions_are_post_only(pat, notices):
    notice = notices["near"]
    assert pat.get(f"/portal/notices/{notice.pk}/acknowledge/").status_code == 405
    assert Notice.objects.get(pk=notice.pk).acknowledged_at is None


def test_a_hoster_whose_mail_bounces_is_told_in_the_portal(pat, notices, prompt_hoster):
    from compliance.models import DeliveryEvent, NoticeEmail

    email = NoticeEmail.objects.create(
        notice=notices["near"], kind="notice", hoster=prompt_hoster, state="bounced", created_at=timezone.now()
    )
    DeliveryEvent.objects.create(
        email=email, hoster=prompt_hoster, at=timezone.now(), outcome="bounced", to_address="abuse@prompt.test"
    )
    html = pat.get("/portal/").content.decode()
    assert "do not reach you" in html and "abuse@prompt.test" in html


def test_the_nav_links_hosters_to_the_portal(pat, client, analyst):
    assert 'href="/portal/"' in pat.get("/").content.decode()
    client.force_login(analyst)
    assert 'href="/portal/"' not in client.get("/").content.decode()


def test_the_portal_links_to_the_hosters_own_scorecard(pat, prompt_hoster, notices):
    html = pat.get("/portal/").content.decode()
    assert f'href="/scorecards/{prompt_hoster.slug}/"' in html
    assert pat.get(f"/scorecards/{prompt_hoster.slug}/").status_code == 200


def test_the_dispute_form_is_offered_only_while_no_dispute_is_open(pat, notices):
    notice = notices["near"]
    assert 'id="dispute-form"' in pat.get(f"/portal/notices/{notice.pk}/").content.decode()
    pat.post(f"/portal/notices/{notice.pk}/dispute/", {"reason": "behind_cdn"})
    assert 'id="dispute-form"' not in pat.get(f"/portal/notices/{notice.pk}/").content.decode()


def test_a_closed_notice_offers_no_acknowledgement(pat, notices):
    html = pat.get(f"/portal/notices/{notices['removed'].pk}/").content.decode()
    assert "/acknowledge/" not in html and "report-removed" not in html
    assert "/acknowledge/" in pat.get(f"/portal/notices/{notices['near'].pk}/").content.decode()


def test_an_open_notice_no_longer_checked_says_so(pat, notices):
    """After 30 deadlines the schedule stops (monitor/schedule.py): the hoster is told, not left
    to think the monitor still looks, and a removal report asks for a check again."""
    near = notices["near"]
    assert "not-checked-anymore" not in pat.get(f"/portal/notices/{near.pk}/").content.decode()
    Notice.objects.filter(pk=near.pk).update(next_check_at=None, last_checked_at=timezone.now() - timedelta(days=2))
    assert 'id="not-checked-anymore"' in pat.get(f"/portal/notices/{near.pk}/").content.decode()
    assert "scheduled checks ended" in pat.get("/portal/").content.decode()
    pat.post(f"/portal/notices/{near.pk}/removed/")
    assert Notice.objects.get(pk=near.pk).next_check_at is not None
