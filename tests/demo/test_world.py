"""The sandbox internet (demo/sandbox/world.py): its DNS and HTTP servers on loopback serve the
fictional market so that attribution and checks work through it, and its hosters act on their
own clocks as the demo promises."""

from __future__ import annotations

import asyncio
import csv
import io
import time
from datetime import UTC, datetime

import pytest
from django.core.management import call_command

from compliance.models import Hoster, Notice
from demo.sandbox import world as market
from monitor import dns
from monitor.check_client import CheckClient
from monitor.classification import classify
from tests.fixtures.http import LOOPBACK


@pytest.fixture
def world(settings):
    """The market on an ephemeral DNS port and HTTP port, with a 4-second live deadline."""
    w = market.World(http_port=0, dns=("127.53.0.1", 0), deadline_s=4).start()
    settings.MONITOR_NAMESERVERS = [(w.dns[0], w.dns_server.port)]
    settings.MONITOR_ALLOWED_PRIVATE_NETWORKS = LOOPBACK
    settings.MONITOR_DNS_TIMEOUT = 0.5
    settings.MONITOR_RDAP = False
    settings.MONITOR_TIMEOUT = 5
    dns.cache_clear()
    yield w
    w.stop()
    dns.cache_clear()


def _check(urls: list[str]):
    async def run():
        async with CheckClient.from_settings() as client:
            return await asyncio.gather(*(client.check(u) for u in urls))

    return asyncio.run(run())


def test_item_paths_carry_their_kind_and_other_paths_are_unknown():
    site = market.SITES_BY_HOST["files.prompt-hosting.test"]
    for kind in market.KINDS:
        assert market.item_kind(site, market.item_path(site, 42, kind)) == kind
    assert market.item_kind(site, "/img/42-000000.jpg") is None
    assert market.item_kind(site, "/img/42.jpg") is None
    assert market.item_kind(site, "/elsewhere/42-" + market.item_tag(site.host, 42, "live") + ".jpg") is None


def test_the_registry_csv_lists_the_registered_market_and_matches_demo_hosters_csv(settings):
    from pathlib import Path

    rows = market.hosters_csv_rows()
    assert {r["slug"] for r in rows} == {h.slug for h in market.HOSTERS if h.is_registered}
    assert "offshore-nine" not in {r["slug"] for r in rows}  # attribution must discover it
    with open(Path(settings.BASE_DIR) / "demo" / "data" / "hosters.csv", newline="") as f:
        assert list(csv.DictReader(f)) == rows


def test_every_site_address_lies_in_its_hosters_prefix():
    for site in market.SITES:
        assert market.address_in_market(site.ip).slug == site.hoster
        if site.cdn:
            assert market.address_in_market(site.edge_ip).slug == site.cdn


# runmonitor's drains manage their own transactions, as in production.
@pytest.mark.django_db(transaction=True)
def test_the_live_batch_is_attributed_through_the_sandbox_dns(world, tmp_path):
    hosters = tmp_path / "hosters.csv"
    with open(hosters, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(market.hosters_csv_rows()[0]))
        writer.writeheader()
        writer.writerows(market.hosters_csv_rows())
    call_command("load_hosters", str(hosters), stdout=io.StringIO())
    batch = world.live_batch("t1")
    notices = tmp_path / "live.csv"
    with open(notices, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["url", "reference", "content_sha256", "hoster", "deadline_s"])
        writer.writerows([i.url, i.reference, i.content_sha256, i.hoster, 600] for i in batch)
    out = io.StringIO()
    call_command("import_notices", str(notices), "--source", "demo", stdout=out)
    assert f'"imported": {len(batch)}' in out.getvalue()

    from monitor.attribution_drain import drain_attribution

    while drain_attribution():
        pass

    by_ref = {n.reference: n for n in Notice.objects.select_related("hoster", "cdn")}
    for item in batch:
        notice = by_ref[item.reference]
        assert notice.attribution_state == "done", item
        site = market.SITES_BY_HOST[item.site]
        if site.hoster == "offshore-nine":  # an AS nobody registered: an unreviewed hoster named after it
            assert notice.hoster.slug == "as64599" and not notice.hoster.is_reviewed
        else:
            assert notice.hoster.slug == site.hoster, item
        assert notice.is_behind_cdn == bool(site.cdn)
        if site.cdn:
            assert notice.cdn.slug == "shieldcdn"
    assert Hoster.objects.get(slug="as64599").name.startswith("OFFSHORE-NINE")


def _first_live(world, host: str, want_removal: bool = True) -> market.LiveItem:
    for run in range(200):
        for item in world.live_batch(f"pick{run}"):
            if item.site == host and (item.removal_fraction is not None) == want_removal:
                if not want_removal or item.removal_fraction < 0.5 or market.SITES_BY_HOST[host].vanishes_at:
                    return item
    raise AssertionError(f"no live item of {host} found")


@pytest.mark.django_db
def test_hosters_act_on_their_own_clock(world):
    """A prompt item goes 404, a Pixelswap item turns into the placeholder, a Steady item 410,
    a Never Acts item stays, and a vanishing domain turns NXDOMAIN, each after its removal time."""
    items = {
        "prompt": _first_live(world, "files.prompt-hosting.test"),
        "pixelswap": _first_live(world, "img.pixelswap.test"),
        "steady": _first_live(world, "cdn.steady-servers.test"),
        "cdn": _first_live(world, "gallery.cdnfront.test"),
        "never": _first_live(world, "neveract.test", want_removal=False),
        "vanish": _first_live(world, "quickdrop.test"),
    }
    urls = [i.url for i in items.values()]
    before = dict(zip(items, _check(urls), strict=True))
    for name, obs in before.items():
        result = classify(obs, content_sha256=items[name].content_sha256)
        assert (result.outcome, result.reason) == ("online", "online"), (name, obs)

    latest = max(i.removal_fraction for k, i in items.items() if k != "never") * world.deadline_s
    time.sleep(latest + 0.3)
    dns.cache_clear()  # the demo's monitor waits out the 5-second TTL; the test does not
    after = dict(zip(items, _check(urls), strict=True))
    reasons = {name: classify(obs, content_sha256=items[name].content_sha256).reason for name, obs in after.items()}
    assert reasons == {
        "prompt": "http_404",
        "pixelswap": "content_changed",
        "steady": "http_410",
        "cdn": "http_410",
        "never": "online",
        "vanish": "nxdomain",
    }
    assert after["pixelswap"].body_sha256 == market.PLACEHOLDER_SHA256


@pytest.mark.django_db
def test_the_flaky_hoster_fails_in_short_spells_only(world):
    world.flaky_spell_s = 0.1
    site = market.SITES_BY_HOST["flaky-cloud.test"]
    kept = market.url_of(site, market.item_path(site, 7, market.KEPT), world.http_port)
    outcomes = []
    for _ in range(40):
        outcomes.append(classify(_check([kept])[0], content_sha256="").outcome)
        time.sleep(0.05)
    # 503s (no evidence) and resets (unreachable) happen, and pass
    assert "online" in outcomes and {"transient", "no_evidence"} & set(outcomes)
    assert set(outcomes) <= {"online", "transient", "no_evidence"}
    runs = "".join("." if o == "online" else "x" for o in outcomes).split(".")
    assert max(len(r) for r in runs) <= 4  # a spell of 0.1 s, checks every ~0.05 s or more


def test_history_items_are_stable_whatever_the_clock(world):
    """Back-filled history: `kept` items are always served, `gone` ones always removed."""
    site = market.SITES_BY_HOST["slowpoke.test"]
    kept = market.url_of(site, market.item_path(site, 3, market.KEPT), world.http_port)
    gone = market.url_of(site, market.item_path(site, 3, market.GONE), world.http_port)
    unknown = market.url_of(site, "/gallery/3-abcdef", world.http_port)
    obs = _check([kept, gone, unknown])
    assert [o.http_status for o in obs] == [200, 404, 404]
    assert obs[0].body_sha256 == market.item_sha256(site.host, market.item_path(site, 3, market.KEPT))


@pytest.mark.django_db
def test_with_a_mail_server_the_clock_starts_at_the_notice_email(settings, prompt_hoster):
    """With the hosters' mail server, fetching does not start a hoster's clock: the product's
    notice e-mail does (NOTIFY_BY_EMAIL=on, EMAIL_URL pointing at the sandbox)."""
    import socket

    from django.core.mail import get_connection

    from compliance.models import Notice, NoticeEmail
    from compliance.notifications import build_message

    with socket.socket() as s:
        s.bind(("127.53.0.1", 0))
        smtp_port = s.getsockname()[1]
    w = market.World(http_port=0, dns=("127.53.0.1", 0), deadline_s=2, smtp=("127.53.0.1", smtp_port)).start()
    try:
        settings.MONITOR_NAMESERVERS = [(w.dns[0], w.dns_server.port)]
        settings.MONITOR_ALLOWED_PRIVATE_NETWORKS = LOOPBACK
        settings.MONITOR_TIMEOUT = 5
        dns.cache_clear()
        item = _first_live(w, "files.prompt-hosting.test")
        assert _check([item.url])[0].http_status == 200
        time.sleep(item.removal_fraction * w.deadline_s + 0.3)
        assert _check([item.url])[0].http_status == 200  # fetched, but nobody told the hoster yet

        now = datetime.now(UTC)
        notice = Notice.objects.create(
            url=item.url, scheme="http", host="files.prompt-hosting.test", path="/", received_at=now,
            deadline_s=2, hoster=prompt_hoster,
        )  # fmt: skip
        row = NoticeEmail.objects.create(notice=notice, kind="notice", created_at=now)
        message = build_message(row, notice)
        message.connection = get_connection("django.core.mail.backends.smtp.EmailBackend", host="127.53.0.1",
                                            port=smtp_port)  # fmt: skip
        assert message.send() == 1
        assert [url for _at, _to, url in w.mail_log] == [item.url]
        assert _check([item.url])[0].http_status == 200  # the clock has just started
        time.sleep(item.removal_fraction * w.deadline_s + 0.3)
        assert _check([item.url])[0].http_status == 404
    finally:
        w.stop()
        dns.cache_clear()


def test_the_cloakroom_hides_half_its_items_from_the_second_vantage_point(world):
    from monitor import vantages

    site = market.SITES_BY_HOST["cloakroom.test"]
    urls = [market.url_of(site, market.item_path(site, i, market.KEPT), world.http_port) for i in range(40)]

    def check_from(source: str):
        async def run():
            async with CheckClient.for_vantage(vantages.Vantage("v", source=source)) as client:
                return await asyncio.gather(*(client.check(u) for u in urls))

        return [o.http_status for o in asyncio.run(run())]

    first, second = check_from("127.0.0.1"), check_from("127.0.0.2")
    assert set(first) == {200}  # the first vantage point sees every item
    hidden = [i for i, status in enumerate(second) if status == 404]
    assert 10 <= len(hidden) <= 30 and set(second) == {200, 404}  # about half hidden from the second
    assert check_from("127.0.0.2") == second  # the same items each time
