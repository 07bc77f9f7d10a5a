"""The RDAP drain (monitor/rdap_drain.py): attribution queues RDAP look-ups and never waits for
them; drain_rdap looks them up against the loopback RDAP server, backs off and retries."""

from __future__ import annotations

import pytest


@pytest.fixture
def rdap_on(settings, rdap_server, dns_server, db):
    from monitor import rdap_drain

    settings.MONITOR_RDAP = True
    rdap_drain._rdap_backoff.clear()
    dns_server.add_origin("62.239.0.0/16", 2856, cc="GB", registry="ripencc")
    dns_server.add_as_name(2856, "BT-UK-AS BTnet UK Regional network, GB", cc="GB")
    dns_server.add_origin("200.57.128.0/20", 19373, cc="MX", registry="lacnic")
    dns_server.add_host("bt.example", "62.239.237.1")
    dns_server.add_host("triara.example", "200.57.141.161")
    dns_server.add_host("loop.example", "127.10.0.5")
    dns_server.add_origin("127.10.0.0/16", 64500, cc="NL")
    yield rdap_server
    rdap_drain._rdap_backoff.clear()


def _notice(url):
    from django.utils import timezone

    from compliance import services

    now = timezone.now()
    return services.notice_create(data=services.notice_input_parse(url=url, now=now), source="t", now=now)[0]


def test_attribution_does_not_wait_for_rdap_and_the_record_follows(rdap_on):
    from compliance.attributions import notice_reattribute, rdap_records_after
    from compliance.models import RdapRecord
    from monitor.attribution_drain import drain_attribution
    from monitor.models import RdapQueue
    from monitor.rdap_drain import drain_rdap

    n = _notice("https://bt.example/x")
    drain_attribution()
    first = n.attributions.get()
    assert first.rdap == {"status": "pending"} and first.hoster.slug == "as2856"
    assert rdap_on.requests == []  # attribution made no RDAP request
    assert list(RdapQueue.objects.values_list("ip", "registry")) == [("62.239.237.1", "ripencc")]

    assert drain_rdap() is False  # one address: the batch was not full
    record = RdapRecord.objects.get()
    assert record.status == "found" and record.network["cidr"] == "62.239.237.0/24"
    assert record.network["abuse_emails"][0] == "zzdnsr@bt.com" and not RdapQueue.objects.exists()
    assert rdap_records_after([first]) == {first.pk: record}  # the evidence row itself is unchanged
    first.refresh_from_db()
    assert first.rdap == {"status": "pending"}

    # The next attribution carries it inline.
    notice_reattribute(notice_ids=[n.pk])
    drain_attribution()
    latest = n.attributions.order_by("-id").first()
    assert latest.rdap["status"] == "found" and latest.rdap["name"] == "BT-CORPORATE"
    assert latest.rdap["record_id"] == record.pk
    assert len(rdap_on.requests) == 1


def test_a_loopback_address_is_recorded_as_having_no_rdap(rdap_on):
    from monitor.attribution_drain import drain_attribution
    from monitor.models import RdapQueue

    n = _notice("https://loop.example/x")
    drain_attribution()
    evidence = n.attributions.get().rdap
    assert evidence["status"] == "not_applicable" and "127.10.0.5" in evidence["reason"]
    assert not RdapQueue.objects.exists() and rdap_on.requests == []


def test_a_rate_limited_registry_backs_off_without_stalling_anything(rdap_on):
    import time

    from django.utils import timezone

    from compliance.models import RdapRecord
    from monitor.attribution_drain import drain_attribution
    from monitor.models import RdapQueue
    from monitor.rdap_drain import drain_rdap

    _notice("https://bt.example/x")
    _notice("https://triara.example/y")
    drain_attribution()
    rdap_on.status = 429
    started = time.monotonic()

    drain_rdap()

    assert time.monotonic() - started < 10  # never the 120 s sleep
    assert not RdapRecord.objects.exists()
    now = timezone.now()
    waiting = dict(RdapQueue.objects.values_list("ip", "next_attempt_at"))
    assert all(at > now + timezone.timedelta(seconds=50) for at in waiting.values())
    assert drain_rdap() is False  # both registries back off: nothing is due
    requests = len(rdap_on.requests)

    # Later the registries answer again.
    rdap_on.status = 200
    drain_rdap(now=now + timezone.timedelta(seconds=61))
    assert RdapRecord.objects.count() == 2 and not RdapQueue.objects.exists()
    assert len(rdap_on.requests) == requests + 2


def test_a_failing_lookup_is_retried_later_then_given_up(rdap_on, settings):
    from django.utils import timezone

    from compliance.models import RdapRecord
    from monitor.attribution_drain import drain_attribution
    from monitor.models import RdapQueue
    from monitor.rdap_drain import drain_rdap

    settings.MONITOR_RDAP_ATTEMPTS = 2
    _notice("https://bt.example/x")
    drain_attribution()
    rdap_on.status = 500
    now = timezone.now()
    drain_rdap(now=now)
    entry = RdapQueue.objects.get()
    assert entry.attempts == 1 and "500" in entry.last_error and entry.next_attempt_at > now
    drain_rdap(now=entry.next_attempt_at)
    assert not RdapQueue.objects.exists() and not RdapRecord.objects.exists()


def test_with_rdap_off_nothing_is_queued_or_looked_up(rdap_on, settings):
    from monitor.attribution_drain import drain_attribution
    from monitor.models import RdapQueue
    from monitor.rdap_drain import drain_rdap

    settings.MONITOR_RDAP = False
    n = _notice("https://bt.example/x")
    drain_attribution()
    assert n.attributions.get().rdap == {} and not RdapQueue.objects.exists()
    assert drain_rdap() is False and rdap_on.requests == []
