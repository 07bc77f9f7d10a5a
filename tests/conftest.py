"""The fixed cast of the test suite, and the rules for tests that need PostgreSQL or a browser.

Cast (as healthchecks' alice/bob/charlie): a prompt hoster, a slow hoster, a CDN; an analyst,
a ministry user, a researcher, and one user for each of the two hosters.
"""

from __future__ import annotations

import os
import shutil

import pytest
from django.db import connection
from rest_framework.test import APIClient

from compliance import services
from compliance.models import Hoster, HosterASN, HosterPrefix

# Server fixtures of tests/fixtures/ (one line each).
pytest_plugins = [
    "tests.fixtures.dns",
    "tests.fixtures.http",
    "tests.fixtures.smtp",
    "tests.fixtures.postgres",
    "tests.fixtures.rdap",
    "tests.fixtures.rabbitmq",
    "tests.fixtures.tsa",
]

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def _flush_with_evidence_maintenance():
    """Transactional tests end with Django's flush of every table. On PostgreSQL that is TRUNCATE,
    which the evidence tables' row triggers don't see; on SQLite it is `DELETE FROM`, which they
    refuse (compliance/triggers.py). The flush alone runs with maintenance on, on this process's
    own connections: nothing a test does itself is exempt."""
    from django.test import TransactionTestCase

    from compliance import triggers

    teardown = TransactionTestCase._fixture_teardown

    def _fixture_teardown(self):
        with triggers.maintenance():
            return teardown(self)

    TransactionTestCase._fixture_teardown = _fixture_teardown


_flush_with_evidence_maintenance()
CHROMIUM = "/usr/bin/chromium"


def _database_is_postgres() -> bool:
    return os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://", "pgsql://"))


def pytest_collection_modifyitems(config, items):
    """PostgreSQL-only tests run in the PostgreSQL pass. On SQLite they are deselected, not skipped,
    so that under CI=true no test that needs PostgreSQL is ever reported as a silent skip. Tests of
    SQLite itself (their own SQLite file, whatever the test database) run in the SQLite pass only."""
    other = "sqlite" if _database_is_postgres() else "postgres"
    selected, deselected = [], []
    for item in items:
        (deselected if item.get_closest_marker(other) else selected).append(item)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = selected


def pytest_sessionstart(session):
    """Under CI=true an unreachable PostgreSQL fails the run at once instead of skipping tests."""
    if not (IN_CI and _database_is_postgres()):
        return
    import psycopg

    url = os.environ["DATABASE_URL"].replace("pgsql://", "postgresql://")
    try:
        psycopg.connect(url, connect_timeout=5).close()
    except psycopg.OperationalError as exc:
        pytest.exit(f"CI=true and PostgreSQL at DATABASE_URL is unreachable: {exc}", returncode=1)


def pytest_runtest_setup(item):
    if item.get_closest_marker("browser") and not os.access(CHROMIUM, os.X_OK):
        if IN_CI:
            pytest.fail(f"CI=true and {CHROMIUM} is missing: browser tests must run in CI")
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    """PBKDF2 at full strength costs ~0.3 s per user; tests don't need that."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _monitor_not_stopping():
    """A test that runs `runmonitor` in this process and stops it by a signal (test_scenario on
    PostgreSQL) leaves the monitor's stopping flag set; every later drain would then do nothing."""
    yield
    from monitor import jobs

    jobs.stopping.clear()


def verify_second_factor(client, user):
    """Mark `client`'s session as verified by the user's authenticator (made if missing), as a real
    login with a code would (tests/compliance/test_two_factor.py does that with real codes)."""
    from django_otp import DEVICE_ID_SESSION_KEY
    from django_otp.plugins.otp_totp.models import TOTPDevice

    device = TOTPDevice.objects.filter(user=user, confirmed=True).first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, name="authenticator", confirmed=True)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()
    return device


@pytest.fixture(autouse=True)
def _force_login_gives_the_second_factor(monkeypatch):
    """`client.force_login(user)` logs a user in as they are after the whole login: for analysts
    (and anyone who turned two-factor login on) that includes the second factor, so that tests of
    pages need not repeat it. The password and code steps themselves are tested with `client.login`
    / the login form and real TOTP codes (tests/compliance/test_two_factor.py, tests/e2e)."""
    from django.test import Client

    from compliance import twofactor

    force_login = Client.force_login

    def force_login_verified(self, user, backend=None):
        force_login(self, user, backend)
        if twofactor.is_required_by_role(user) or twofactor.has_authenticator(user):
            verify_second_factor(self, user)

    monkeypatch.setattr(Client, "force_login", force_login_verified)


@pytest.fixture
def is_postgres() -> bool:
    return connection.vendor == "postgresql"


# --- The cast -----------------------------------------------------------------------------------


def _hoster(slug, name, kind="hoster", asns=(), prefixes=(), abuse_email=""):
    hoster = Hoster.objects.create(
        slug=slug,
        name=name,
        country="NL",
        kind=kind,
        is_reviewed=True,
        abuse_email=abuse_email or f"abuse@{slug}.test",
    )
    for asn in asns:
        HosterASN.objects.create(hoster=hoster, asn=asn)
    for prefix in prefixes:
        HosterPrefix.objects.create(hoster=hoster, prefix=prefix)
    return hoster


@pytest.fixture
def prompt_hoster(db):
    return _hoster("prompt", "Prompt Hosting", asns=[64500], prefixes=["127.10.0.0/16", "2001:db8:10::/48"])


@pytest.fixture
def slow_hoster(db):
    return _hoster("slow", "Slow Hosting", asns=[64501], prefixes=["127.20.0.0/16"])


@pytest.fixture
def cdn(db):
    return _hoster("shieldcdn", "Shield CDN", kind="cdn", asns=[64510], prefixes=["127.50.0.0/16"])


STRONG_PASSWORD = "correct-horse-battery-staple-42"


def _user(username, role, hoster=None):
    user, _created, _token = services.user_upsert(
        username=username, role=role, hoster_slug=hoster.slug if hoster else None, password=STRONG_PASSWORD
    )
    return user


@pytest.fixture
def analyst(db):
    return _user("alice", "analyst")


@pytest.fixture
def ministry(db):
    return _user("mira", "ministry")


@pytest.fixture
def researcher(db):
    return _user("rob", "researcher")


@pytest.fixture
def prompt_user(prompt_hoster):
    return _user("pat", "hoster", prompt_hoster)


@pytest.fixture
def slow_user(slow_hoster):
    return _user("sam", "hoster", slow_hoster)


@pytest.fixture
def api():
    """An API client; `api.as_user(user)` authenticates with the user's token."""

    class Client(APIClient):
        def as_user(self, user):
            from rest_framework.authtoken.models import Token

            self.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}")
            return self

    return Client()


# Headless Chromium as root on a machine with no internet: without the background-networking
# flags it keeps trying to reach Google's hosts.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def chromium_path() -> str:
    return shutil.which("chromium") or CHROMIUM


def launch_chromium(playwright, executable_path: str = CHROMIUM):
    """Debian's Chromium through Playwright (never a browser Playwright downloads)."""
    return playwright.chromium.launch(executable_path=executable_path, args=CHROMIUM_ARGS)


@pytest.fixture
def browser(chromium_path):
    """A Chromium for one test (tests marked `browser`)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = launch_chromium(playwright, chromium_path)
        yield browser
        browser.close()
