"""The attribution drain and services (monitor/attribution_drain.py) against the loopback DNS server."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from compliance import services
from compliance.attributions import attribution_override, notice_reattribute
from compliance.models import AppendOnlyError, Attribution, Check, Hoster, HosterASN, Notice
from monitor import attribution_drain
from monitor.attribution_drain import drain_attribution


@pytest.fixture
def internet(dns_server, prompt_hoster, slow_hoster, cdn):
    """A small fictional internet: routing data for the cast's networks and a few host names."""
    dns_server.add_origin("127.10.0.0/16", 64500, cc="NL")
    dns_server.add_origin("2001:db8:10::/48", 64500, cc="NL")
    dns_server.add_origin("127.20.0.0/16", 64501, cc="NL")
    dns_server.add_origin("127.50.0.0/16", 64510, cc="US", registry="arin")
    dns_server.add_origin("127.99.0.0/16", 64999, cc="SC", registry="afrinic")
    dns_server.add_as_name(64500, "PROMPT-AS Prompt Hosting, NL", cc="NL")
    dns_server.add_as_name(64501, "SLOW-AS Slow Hosting, NL", cc="NL")
    dns_server.add_as_name(64510, "SHIELD Shield CDN, US", cc="US", registry="arin")
    dns_server.add_as_name(64999, "FARAWAY-AS Far Away Hosting, SC", cc="SC", registry="afrinic")
    dns_server.add_host("files.prompt.example", "127.10.0.5", "2001:db8:10::5")
    dns_server.add_host("img.slow.example", "127.20.0.9")
    dns_server.set_cname("www.shop.example", "shop.shieldcdn.example")
    dns_server.add_host("shop.shieldcdn.example", "127.50.0.7")
    dns_server.add_host("far.example", "127.99.0.3")
    return dns_server


def notice(url, *, hoster="", deadline_s=None, now=None):
    now = now or timezone.now()
    data = services.notice_input_parse(url=url, hoster=hoster, deadline_s=deadline_s, now=now)
    return services.notice_create(data=data, source="test", now=now)[0]


def drain(**kwargs):
    while drain_attribution(**kwargs):
        pass


def test_a_notice_is_attributed_by_its_registered_prefix_with_the_evidence(internet, prompt_hoster):
    n = notice("https://files.prompt.example/a/1.jpg")

    drain()

    n.refresh_from_db()
    assert n.hoster == prompt_hoster and n.hoster_source == "attribution"
    assert n.attribution_state == "done" and n.next_attribution_at is None
    assert not n.is_behind_cdn and not n.is_ambiguous and n.cdn is None
    row = n.attributions.get()
    assert row.method == "dns" and row.hostname == "files.prompt.example"
    assert row.resolved_ips == ["127.10.0.5", "2001:db8:10::5"] and row.chosen_ip == "127.10.0.5"
    assert row.asn == 64500 and row.asns == [64500] and row.routed_prefix == "127.10.0.0/16"
    assert row.as_name == "PROMPT-AS Prompt Hosting, NL" and row.as_country == "NL" and row.registry == "ripencc"
    assert row.hoster == prompt_hoster and row.cname_chain == []
    assert [c["ip"] for c in row.candidates] == ["127.10.0.5", "2001:db8:10::5"]
    assert {c["hoster"] for c in row.candidates} == {"prompt"}
    assert row.created_at is not None


def test_a_notice_behind_a_cdn_records_the_cdn_as_intermediary_not_as_hoster(internet, cdn):
    n = notice("https://www.shop.example/item/9")

    drain()

    n.refresh_from_db()
    assert n.is_behind_cdn and n.cdn == cdn and n.hoster is None
    row = n.attributions.get()
    assert row.cdn == cdn and row.hoster is None
    assert row.cname_chain == ["shop.shieldcdn.example"] and row.chosen_ip == "127.50.0.7"


def test_an_unknown_asn_creates_an_unreviewed_hoster_named_after_the_as_once(internet):
    first = notice("https://far.example/1")
    second = notice("https://far.example/2")

    drain()

    hoster = Hoster.objects.get(slug="as64999")
    assert hoster.name == "FARAWAY-AS Far Away Hosting, SC" and not hoster.is_reviewed and hoster.country == "SC"
    assert HosterASN.objects.get(asn=64999).hoster == hoster
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.hoster == hoster == second.hoster

    # The next notice on that AS finds the hoster by its ASN: no second hoster.
    internet.add_host("other.far.example", "127.99.0.4")
    third = notice("https://other.far.example/3")
    drain()
    third.refresh_from_db()
    assert third.hoster == hoster and Hoster.objects.filter(slug__startswith="as").count() == 1


def test_addresses_of_different_hosters_make_the_notice_ambiguous_majority_wins(internet, slow_hoster):
    internet.add_host("mixed.example", "127.20.0.1", "127.10.0.1", "127.20.0.2")
    n = notice("https://mixed.example/x")

    drain()

    n.refresh_from_db()
    assert n.hoster == slow_hoster and n.is_ambiguous
    row = n.attributions.get()
    assert row.is_ambiguous and [c["hoster"] for c in row.candidates] == ["slow", "prompt", "slow"]


def test_a_hoster_given_by_the_hotline_is_kept_and_a_disagreement_recorded(internet, slow_hoster, prompt_hoster):
    n = notice("https://files.prompt.example/b", hoster="slow")

    drain()

    n.refresh_from_db()
    assert n.hoster == slow_hoster and n.hoster_source == "hotline" and n.attribution_state == "done"
    row = n.attributions.get()
    assert row.hoster == prompt_hoster  # what DNS says, recorded beside the hotline's hoster
    assert "disagreement" in row.reason and "slow" in row.reason


def test_a_hotline_hoster_that_dns_confirms_has_no_disagreement(internet):
    n = notice("https://files.prompt.example/c", hoster="prompt")
    drain()
    assert "disagreement" not in n.attributions.get().reason


def test_urls_on_one_host_name_cost_one_lookup(internet):
    for i in range(40):
        notice(f"https://files.prompt.example/p/{i}.jpg")
    for i in range(20):
        notice(f"https://img.slow.example/p/{i}.jpg")

    drain(batch_size=25)  # several batches: the cache carries the answers over

    assert Notice.objects.filter(attribution_state="done").count() == 60
    assert Attribution.objects.count() == 60
    assert internet.queried("files.prompt.example", "A") == 1
    assert internet.queried("img.slow.example", "A") == 1


def test_a_name_that_does_not_resolve_is_retried_then_unresolvable_at_the_deadline(internet):
    n = notice("https://never.example/x")
    start = timezone.now()

    drain(now=start)

    n.refresh_from_db()
    assert n.attribution_state == "retry" and n.hoster is None and n.status == "pending"
    assert start + timedelta(minutes=14) < n.next_attribution_at <= start + timedelta(minutes=16)  # 24 h / 96
    assert not n.attributions.exists()  # a retry is not evidence

    drain(now=n.next_attribution_at)
    n.refresh_from_db()
    assert n.attribution_state == "retry"

    drain(now=n.deadline_at)
    n.refresh_from_db()
    assert n.attribution_state == "unresolvable"
    assert n.status == "unresolvable" and n.next_check_at is None and n.takedown_at is None
    row = n.attributions.get()
    assert row.resolved_ips == [] and "unresolvable at notice time" in row.reason and "nxdomain" in row.reason


def test_a_name_that_resolves_on_a_retry_is_attributed(internet, prompt_hoster):
    n = notice("https://late.example/x")
    drain()
    internet.add_host("late.example", "127.10.0.77")
    n.refresh_from_db()

    drain(now=n.next_attribution_at)  # a retry asks the DNS again, not the cache

    n.refresh_from_db()
    assert n.attribution_state == "done" and n.hoster == prompt_hoster


def test_transient_failures_are_no_evidence_and_get_longer_than_the_deadline(internet):
    internet.add_host("flaky.example", "127.10.0.5")
    internet.servfail("flaky.example")
    n = notice("https://flaky.example/x", deadline_s=3600)

    drain()
    n.refresh_from_db()
    assert n.attribution_state == "retry" and not n.attributions.exists()

    drain(now=n.deadline_at)
    n.refresh_from_db()
    assert n.attribution_state == "retry" and n.status == "pending"

    drain(now=n.deadline_at + timedelta(seconds=3600))
    n.refresh_from_db()
    assert n.attribution_state == "unresolvable" and "servfail" in n.attributions.get().reason


def test_an_unresolvable_notice_that_a_check_saw_online_keeps_its_status(internet):
    n = notice("https://gone-later.example/x", deadline_s=60)
    Check.objects.create(notice=n, checked_at=timezone.now(), outcome="online", resolved_ip="127.10.0.5")
    drain(now=n.deadline_at)
    n.refresh_from_db()
    assert n.attribution_state == "unresolvable" and n.status == "pending"


def test_a_failing_origin_lookup_waits_for_a_retry_before_the_deadline(internet, settings, prompt_hoster):
    internet.add_host("routed-later.example", "127.10.0.99")
    internet.servfail(settings.MONITOR_ASN_ZONE, subtree=True)
    n = notice("https://routed-later.example/x")
    drain()
    n.refresh_from_db()
    # The registered prefix decides without the origin: no retry needed for it.
    assert n.attribution_state == "done" and n.hoster == prompt_hoster

    internet.add_host("unregistered.example", "203.0.113.5")
    m = notice("https://unregistered.example/x")
    drain()
    m.refresh_from_db()
    assert m.attribution_state == "retry" and not m.attributions.exists()


def test_reattribution_adds_a_row_and_keeps_the_old_one(internet, prompt_hoster, slow_hoster):
    n = notice("https://files.prompt.example/moving")
    drain()
    first = n.attributions.get()

    internet.set("files.prompt.example", "A", ["127.20.0.5"])
    internet.remove("files.prompt.example", "AAAA")
    from monitor import dns

    dns.cache_clear()
    assert notice_reattribute(notice_ids=[n.pk]) == 1
    drain()

    n.refresh_from_db()
    assert n.hoster == slow_hoster
    rows = list(n.attributions.order_by("id"))
    assert len(rows) == 2 and rows[0].pk == first.pk and rows[0].hoster == prompt_hoster
    assert rows[1].hoster == slow_hoster
    with pytest.raises(AppendOnlyError):
        rows[0].save()


def test_reattribution_of_a_name_that_stopped_resolving_keeps_the_earlier_hoster(internet, prompt_hoster):
    n = notice("https://files.prompt.example/taken-down")
    drain()
    internet.nxdomain("files.prompt.example")
    from monitor import dns

    dns.cache_clear()
    notice_reattribute(notice_ids=[n.pk])
    drain()

    n.refresh_from_db()
    assert n.hoster == prompt_hoster and n.attribution_state == "done" and n.status == "pending"
    latest = n.attributions.order_by("-id").first()
    assert "does not resolve now" in latest.reason


def test_an_analyst_override_records_who_when_and_why_and_dns_keeps_it(internet, analyst, slow_hoster, cdn):
    n = notice("https://www.shop.example/item/1")
    drain()

    row = attribution_override(notice=n, hoster=slow_hoster, cdn=cdn, reason="Shield named the origin", user=analyst)

    n.refresh_from_db()
    assert n.hoster == slow_hoster and n.hoster_source == "analyst" and n.cdn == cdn and n.is_behind_cdn
    assert row.method == "analyst" and row.decided_by == analyst and row.reason == "Shield named the origin"
    notice_reattribute(notice_ids=[n.pk])
    drain()
    n.refresh_from_db()
    assert n.hoster == slow_hoster and n.attributions.count() == 3


def test_an_override_must_say_why_and_never_names_a_cdn_as_hoster(internet, analyst, cdn, prompt_hoster):
    n = notice("https://files.prompt.example/z")
    with pytest.raises(ValidationError) as excinfo:
        attribution_override(notice=n, hoster=cdn, cdn=prompt_hoster, reason=" ", user=analyst)
    assert set(excinfo.value.message_dict) == {"reason", "hoster", "cdn"}
    assert not n.attributions.exists()


def test_a_claim_whose_lease_was_taken_over_writes_nothing(internet):
    n = notice("https://files.prompt.example/lease")
    now = timezone.now()
    claimed, lease = attribution_drain._claim(now=now, batch_size=10)
    assert [c.id for c in claimed] == [n.pk]
    # The lease ran out and another process claimed the notice again.
    again, other_lease = attribution_drain._claim(now=lease + timedelta(seconds=1), batch_size=10)
    assert [c.id for c in again] == [n.pk] and other_lease != lease

    import asyncio

    lookups = asyncio.run(attribution_drain.gather_lookups([n.host], concurrency=2))
    attribution_drain._write({n.host: claimed}, lookups, attribution_drain.load_registry(), now=now, lease_until=lease)

    n.refresh_from_db()
    assert not n.attributions.exists() and n.attribution_state == "pending"


def test_a_batch_that_is_not_due_is_not_claimed(internet):
    n = notice("https://files.prompt.example/later")
    Notice.objects.filter(pk=n.pk).update(next_attribution_at=timezone.now() + timedelta(hours=1))
    assert drain_attribution() is False
    assert not Attribution.objects.exists()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_monitors_claiming_at_once_never_take_the_same_notice(dns_server):
    import threading

    from django.db import connection

    for i in range(120):
        notice(f"https://files{i % 7}.example/{i}")
    now = timezone.now()
    barrier = threading.Barrier(3)
    claims: list[list[int]] = []

    def claim():
        try:
            barrier.wait()
            for _ in range(3):
                claimed, _lease = attribution_drain._claim(now=now, batch_size=25)
                claims.append([c.id for c in claimed])
        finally:
            connection.close()

    threads = [threading.Thread(target=claim) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    ids = [i for claim_ids in claims for i in claim_ids]
    assert len(ids) == len(set(ids)) and len(ids) <= 120
    assert len(ids) >= 100  # nine claims of 25: the queue is drained, not starved by locks


def test_the_attribution_deadline_of_a_notice_not_yet_notified_runs_from_its_receipt():
    t0 = timezone.now()

    def claimed(notified_at):
        return attribution_drain._Claimed(
            id=1,
            host="a.example",
            hoster_id=None,
            hoster_source="",
            notified_at=notified_at,
            received_at=t0,
            deadline_s=3600,
            status="pending",
            attribution_state="pending",
        )

    assert claimed(None).deadline_at == t0 + timedelta(hours=1)
    assert claimed(t0 + timedelta(hours=2)).deadline_at == t0 + timedelta(hours=3)


def test_the_drains_attributions_are_chained_and_the_heads_written_with_the_notices(internet, prompt_hoster, analyst):
    """Re-attribution and an analyst's override append to the same per-notice chain."""
    import io
    import json

    from django.core.management import call_command

    from compliance import evidence

    notices = [notice(f"https://files.prompt.example/c/{i}.jpg") for i in range(3)]
    drain()
    notice_reattribute(notice_ids=[n.pk for n in notices])
    drain()
    attribution_override(notice=notices[0], hoster=prompt_hoster, reason="seen in the abuse desk's reply", user=analyst)
    for n in notices:
        n.refresh_from_db()
        rows = list(n.attributions.order_by("id"))
        prev = evidence.GENESIS
        for row in rows:
            assert row.chain_hash == Attribution.evidence_chain.link(prev, Attribution.evidence_chain.values_of(row))
            prev = row.chain_hash
        assert n.attribution_chain_head == prev
    out = io.StringIO()
    call_command("verify_evidence", stdout=out)
    summary = json.loads(out.getvalue().splitlines()[-1])
    assert summary["chains"]["attributions"] == {"rows": 7, "chains": 3, "broken": 0}
