"""A small world for the access matrix and the schemathesis run: two hosters, a CDN, one user per
role, and notices whose every field a leak could carry holds a distinctive marker.

Planted where a leak would show (each string occurs nowhere else in the product):
- host names in URLs, CNAME chains, redirect targets and DNS error texts;
- server addresses, IPv4 and IPv6, in checks, attributions (resolved, chosen, candidates, narrow
  prefixes), RDAP records (a /32 network whose handle, name and range spell the address) and in
  IP-literal URLs, where the address *is* the host;
- the other hoster's notice id, as the notice a repeat repeats (the URL moved between hosters).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from django.contrib.contenttypes.models import ContentType
from django.test import Client
from django.utils import timezone
from rest_framework.authtoken.models import Token

from compliance import services
from compliance.models import Dispute, Hoster, HosterPrefix, Notice, NoticeEmail
from monitor.models import Attribution, Check, RdapRecord
from tests.conftest import verify_second_factor

ROLES = ("anonymous", "analyst", "ministry", "researcher", "hoster_a", "hoster_b")

# Fixed ids, distinct across kinds, so that an id of one kind never hits an object of another.
IDS = {
    "notice": {"A": 7001, "B": 7002, "missing": 7999},
    "dispute": {"A": 8001, "B": 8002, "missing": 8999},
    "hoster": {"A": "alpha-zq", "B": "bravo-zq", "missing": "no-such-hoster"},
}
UNSENT_NOTICE_A = 7003
# More of hoster A's notices, walked like A's own object wherever a URL names a notice.
LITERAL_NOTICE_A = 7004  # http://203.0.113.77/...: the address is the host
LITERAL6_NOTICE_A = 7005  # http://[2001:db8:77::77]/...
REPEAT_NOTICE_A = 7006  # a repeat of hoster B's notice 7002 (the URL moved from B to A)
MORE_NOTICES_A = (LITERAL_NOTICE_A, LITERAL6_NOTICE_A, REPEAT_NOTICE_A)

# What identifies hoster A's and hoster B's notices: host names and server addresses.
A_ADDRESSES = ("198.51.100.71", "2001:db8:71::71", "203.0.113.77", "2001:db8:77::77", "198-51-100-71")
B_ADDRESSES = ("192.0.2.88", "2001:db8:88::88", "192-0-2-88")
A_HOSTS = ("alpha-secret.example", "alpha-cname.example", "alpha-redirect.example", "alpha-unsent.example")
B_HOSTS = ("bravo-secret.example", "bravo-cname.example")
A_MARKERS = ("Alphazq Hosting", "alpha-zq", "alpha-dispute-text", "abuse@alpha.test", *A_HOSTS, *A_ADDRESSES)
B_MARKERS = ("Bravozq Hosting", "bravo-zq", "bravo-dispute-text", "abuse@bravo.test", *B_HOSTS, *B_ADDRESSES)
# No URL, host name or server address for these roles (nor anything at all for anonymous users).
URL_MARKERS = (*A_HOSTS, *B_HOSTS, *A_ADDRESSES, *B_ADDRESSES)
FORBIDDEN = {
    "anonymous": (*A_MARKERS, *B_MARKERS),
    "hoster_a": (*B_MARKERS, "alpha-unsent.example"),
    "hoster_b": (*A_MARKERS,),
    "ministry": URL_MARKERS,
    "researcher": URL_MARKERS,
    "analyst": (),
}
# Another hoster's object ids (notices, disputes): never in a hoster user's responses.
FORBIDDEN_IDS = {
    "hoster_a": (IDS["notice"]["B"], IDS["dispute"]["B"]),
    "hoster_b": (IDS["notice"]["A"], UNSENT_NOTICE_A, *MORE_NOTICES_A, IDS["dispute"]["A"]),
}


@dataclass
class World:
    clients: dict[str, Client]
    users: dict
    tokens: dict[str, str] = field(default_factory=dict)
    fixed: dict[str, str] = field(default_factory=dict)


def _notice(pk, url, hoster, *, notified=True, **extra):
    now = timezone.now()
    host = url.split("/")[2].strip("[]")
    values = {
        "pk": pk,
        "url": url,
        "scheme": "http",
        "host": host,
        "path": "/" + url.split("/", 3)[3],
        "received_at": now - timedelta(hours=2),
        "notified_at": now - timedelta(hours=2) if notified else None,
        "deadline_s": 86400,
        "hoster": hoster,
        "hoster_source": "hotline",
        "attribution_state": "done",
        "status": "online",
        "last_online_at": now - timedelta(minutes=5),
        "next_check_at": now + timedelta(hours=1),
        **extra,
    }
    return Notice.objects.create(**values)


def _check(notice, ip, **extra):
    values = {
        "checked_at": timezone.now() - timedelta(minutes=5),
        "outcome": "online",
        "http_status": 200,
        "byte_count": 1234,
        "duration_ms": 21,
        **extra,
    }
    return Check.objects.create(notice=notice, resolved_ip=ip, **values)


def _attribution(notice, *, hostname, ips, cname=(), rdap=None, reason="1 of 1 address(es) name the hoster"):
    ip = ips[0] if ips else None
    return Attribution.objects.create(
        notice=notice,
        created_at=timezone.now() - timedelta(hours=2),
        method="dns",
        hostname=hostname,
        cname_chain=list(cname),
        resolved_ips=list(ips),
        chosen_ip=ip,
        asn=64496,
        asns=[64496],
        routed_prefix=f"{ip}/32" if ip and ":" not in ip else (f"{ip}/128" if ip else ""),
        as_name="EXAMPLE-AS",
        as_country="NL",
        registry="ripencc",
        rdap=rdap if rdap is not None else {},
        candidates=[
            {
                "ip": a,
                "hoster": notice.hoster.slug,
                "is_cdn": False,
                "matched_by": "prefix",
                "registered_prefix": f"{a}/32" if ":" not in a else f"{a}/128",
                "asn": 64496,
                "asns": [64496],
                "routed_prefix": f"{a}/32" if ":" not in a else f"{a}/128",
                "as_name": "EXAMPLE-AS",
                "as_country": "NL",
                "registry": "ripencc",
                "lookup": "found",
                "asn_hosters": [],
                "is_ambiguous": False,
            }
            for a in ips
        ],
        hoster=notice.hoster,
        reason=reason,
    )


def _narrow_rdap(ip: str, dashed: str) -> dict:
    """A registered network of one address: its handle, name and range spell the address."""
    return {
        "cidr": f"{ip}/32",
        "name": f"HOST-{dashed}",
        "handle": f"{ip} - {ip}",
        "parent_handle": "198.51.0.0 - 198.51.255.255",
        "country": "NL",
        "type": "ASSIGNED PA",
        "start_address": ip,
        "end_address": ip,
        "abuse_emails": ["abuse@registry.test"],
        "abuse_source": "entity",
    }


def build_world() -> World:
    now = timezone.now()
    alpha = Hoster.objects.create(slug="alpha-zq", name="Alphazq Hosting", abuse_email="abuse@alpha.test")
    bravo = Hoster.objects.create(slug="bravo-zq", name="Bravozq Hosting", abuse_email="abuse@bravo.test")
    HosterPrefix.objects.create(hoster=alpha, prefix="198.51.100.0/24")
    users = {
        "analyst": services.user_upsert(username="m-analyst", role="analyst", with_token=True)[0],
        "ministry": services.user_upsert(username="m-ministry", role="ministry", with_token=True)[0],
        "researcher": services.user_upsert(username="m-researcher", role="researcher", with_token=True)[0],
        "hoster_a": services.user_upsert(username="m-alpha", role="hoster", hoster_slug="alpha-zq", with_token=True)[0],
        "hoster_b": services.user_upsert(username="m-bravo", role="hoster", hoster_slug="bravo-zq", with_token=True)[0],
    }
    notice_a = _notice(IDS["notice"]["A"], "http://alpha-secret.example/a.jpg", alpha)
    notice_b = _notice(IDS["notice"]["B"], "http://bravo-secret.example/b.jpg", bravo)
    _notice(UNSENT_NOTICE_A, "http://alpha-unsent.example/u.jpg", alpha, notified=False)
    literal = _notice(
        LITERAL_NOTICE_A,
        "http://203.0.113.77/lit.jpg",
        alpha,
        status="removed",
        takedown_at=now - timedelta(minutes=30),
        removal_mechanism="file_gone",
    )
    literal6 = _notice(LITERAL6_NOTICE_A, "http://[2001:db8:77::77]/v6.jpg", alpha)
    # A repeat of B's notice attributed to A (the content moved from B to A): the database links
    # it to B's notice, whose id A must not learn. (Its URL differs here only so that B's host
    # name stays a marker of B's data.)
    _notice(REPEAT_NOTICE_A, "http://alpha-secret.example/moved.jpg", alpha, status="repeat", repeat_of=notice_b)

    _check(notice_a, "198.51.100.71", final_url="http://alpha-redirect.example/gone.png", redirect_count=1)
    _check(notice_a, "2001:db8:71::71", vantage="ams")
    _check(notice_b, "192.0.2.88")
    _check(literal, "203.0.113.77", outcome="removed", http_status=404)
    _check(literal6, "2001:db8:77::77")
    # A's first attribution was made while RDAP was pending; the record looked up later is joined in.
    _attribution(
        notice_a,
        hostname="alpha-secret.example",
        cname=["alpha-cname.example"],
        ips=["198.51.100.71", "2001:db8:71::71"],
        rdap={"status": "pending"},
    )
    RdapRecord.objects.create(
        ip="198.51.100.71",
        looked_up_at=now - timedelta(minutes=90),
        registry="ripencc",
        status="found",
        network=_narrow_rdap("198.51.100.71", "198-51-100-71"),
        url="https://rdap.test/ip/198.51.100.71",
    )
    # A later re-attribution: DNS did not answer; its error text names the host.
    _attribution(
        notice_a,
        hostname="alpha-secret.example",
        ips=[],
        reason="unresolvable at notice time: last answer nxdomain "
        "(The DNS query name does not exist: alpha-secret.example.)",
    )
    _attribution(
        notice_b,
        hostname="bravo-secret.example",
        cname=["bravo-cname.example"],
        ips=["192.0.2.88", "2001:db8:88::88"],
        rdap={"status": "found", **_narrow_rdap("192.0.2.88", "192-0-2-88")},
    )
    _attribution(
        literal,
        hostname="203.0.113.77",
        ips=["203.0.113.77"],
        rdap={
            "status": "not_applicable",
            "reason": "IPv4 address 203.0.113.77 is already defined as TEST-NET-3 via RFC 5737.",
        },
    )
    _attribution(literal6, hostname="2001:db8:77::77", ips=["2001:db8:77::77"])
    Attribution.objects.create(
        notice=literal6,
        created_at=now - timedelta(hours=1),
        method="analyst",
        hoster=alpha,
        decided_by=users["analyst"],
        reason="the CDN named Alphazq as origin of 2001:db8:77::77 (see alpha-cname.example)",
    )

    for notice in (notice_a, notice_b):
        NoticeEmail.objects.create(
            notice=notice,
            kind="notice",
            hoster=notice.hoster,
            to_address=notice.hoster.abuse_email,
            state="sent",
            created_at=now,
            sent_at=notice.notified_at,
        )
    for side, notice, user in (("A", notice_a, users["hoster_a"]), ("B", notice_b, users["hoster_b"])):
        Dispute.objects.create(
            pk=IDS["dispute"][side],
            notice=notice,
            hoster=notice.hoster,
            raised_by=user,
            reason="other",
            text=f"{'alpha' if side == 'A' else 'bravo'}-dispute-text",
            created_at=now,
        )
    clients = {"anonymous": Client()}
    tokens = {}
    for role, user in users.items():
        tokens[role] = Token.objects.get(user=user).key
        client = Client(HTTP_AUTHORIZATION=f"Token {tokens[role]}")
        client.force_login(user)
        if role == "analyst":  # built outside the tests: conftest's force_login gives no second factor here
            verify_second_factor(client, user)
        clients[role] = client
    fixed = {
        "format": "json",
        "app_label": "compliance",
        "content_type_id": str(ContentType.objects.get_for_model(Notice).pk),
        "object_id": str(IDS["notice"]["A"]),
        "id": str(users["hoster_a"].pk),
        "url": "no-such-page/",
    }
    return World(clients=clients, users=users, tokens=tokens, fixed=fixed)
