"""The access matrix: every URL pattern of the URL conf and every operation of the OpenAPI schema,
for every role (analyst, ministry, researcher, hoster A, hoster B, anonymous).

Discovered, not listed: a URL or endpoint added later is walked automatically. What holds for all:

1. nothing answers 5xx;
2. nobody's response carries what is not theirs: hoster A never sees hoster B's URLs, host names,
   server addresses, name, slug, dispute texts or object ids (nor its own notices not yet sent);
   ministry users and researchers never see a URL, host name or server address (in checks,
   attributions, candidates, RDAP records, IP-literal URLs); anonymous users see no data at all.
   The world (tests/api_world.py) plants a distinctive marker in every field a leak could use, and
   every response body is searched for them (a Parquet export is read back first);
3. for hoster A, hoster B's object is indistinguishable from an object that does not exist, and
   where A sees its own object (200) B's is a 404, never a 403 (and the same the other way round);
4. anonymous users are sent to a login (302), or get 401/403/404/405, except on PUBLIC pages;
5. admin pages are for analysts only;
6. writes (page forms and API operations): nobody changes another hoster's data; an API write
   operation must have a rule in WRITE_RULES, or the test fails with "add a rule".

EXPECT pins the exact status per role for the URLs whose meaning we know. A URL whose parameters
cannot be filled in automatically fails loudly ("add a rule for this URL"), never silently skipped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest
from django.db import transaction
from django.urls import URLPattern, URLResolver, get_resolver, resolve
from django.urls.exceptions import Resolver404

from compliance.models import Dispute, Hoster, Notice, NoticeEmail
from tests.api_world import FORBIDDEN, FORBIDDEN_IDS, IDS, MORE_NOTICES_A, ROLES, World, build_world

STAFF_ROLES = ("analyst",)

# Parameters that name an object, and which kinds of object they may name.
OBJECT_PARAMS = {
    "pk": ("notice", "dispute"),
    "id": ("notice", "dispute"),
    "notice_id": ("notice",),
    "slug": ("hoster",),
}
OBJECT_PARAMS.update({"hoster": ("hoster",), "hoster_slug": ("hoster",)})
# Parameters with one fixed value (filled in `fixed_value`).
FIXED_PARAMS = {"format"}
# Route names whose objects are of one kind (narrows the variants walked).
KIND = {
    "portal:notice": "notice",
    "portal:acknowledge": "notice",
    "portal:removed": "notice",
    "portal:dispute": "notice",
    "portal-notice-detail": "notice",
    "portal-notice-acknowledge": "notice",
    "portal-notice-removed": "notice",
    "portal-notice-dispute": "notice",
    "portal-dispute-detail": "dispute",
    "notice-detail": "notice",
    "hoster-detail": "hoster",
    "reports:notice": "notice",
    "reports:scorecard": "hoster",
    "reports:notices": "hoster",
}
# Parameters of one URL that are neither objects nor generic: the value that URL needs.
ROUTE_FILLS = {"reports:plotly-js": {"version": lambda: __import__("plotly").__version__}}

# Pages anyone may open (they show no data).
PUBLIC = {"login", "set_language", "schema", "api-docs", "admin:login", "admin:logout", "admin:view_on_site"}
PUBLIC |= {"reports:plotly-js", "reports:methodology"}  # a static script; the published accounting rules

ALL = dict.fromkeys(ROLES)
_HOSTERS_OWN = {"hoster_a": 200, "hoster_b": 404}
_PORTAL_PAGE = {"anonymous": 302, "analyst": 403, "ministry": 403, "researcher": 403}
_PORTAL_API = {"anonymous": 401, "analyst": 403, "ministry": 403, "researcher": 403}
_STAFF_ONLY = {"anonymous": 302, "analyst": 200, "ministry": 302, "researcher": 302, "hoster_a": 302, "hoster_b": 302}
# The exact status per role, for hoster A's own object where the URL names one.
EXPECT: dict[str, dict[str, int]] = {
    "home": {**dict.fromkeys(ROLES, 200), "anonymous": 302},
    "login": dict.fromkeys(ROLES, 200),
    "logout": dict.fromkeys(ROLES, 405),
    # Two-factor login: the state page for the analyst (verified); the others have no device and are
    # sent to enrolment, which is theirs to choose; the forms take POST only.
    "two-factor": {**dict.fromkeys(ROLES, 302), "analyst": 200},
    "two-factor-setup": {**dict.fromkeys(ROLES, 200), "anonymous": 302},
    "two-factor-recovery": {**dict.fromkeys(ROLES, 405), "anonymous": 302},
    "two-factor-disable": {**dict.fromkeys(ROLES, 405), "anonymous": 302},
    "portal:index": {**_PORTAL_PAGE, "hoster_a": 200, "hoster_b": 200},
    "portal:closed": {**_PORTAL_PAGE, "hoster_a": 200, "hoster_b": 200},
    "portal:disputes": {**_PORTAL_PAGE, "hoster_a": 200, "hoster_b": 200},
    "portal:notice": {**_PORTAL_PAGE, **_HOSTERS_OWN},
    "portal:acknowledge": dict.fromkeys(ROLES, 405),  # POST only
    "portal:removed": dict.fromkeys(ROLES, 405),  # POST only
    "portal:dispute": dict.fromkeys(ROLES, 405),  # POST only
    "portal-notice-list": {**_PORTAL_API, "hoster_a": 200, "hoster_b": 200},
    "portal-notice-detail": {**_PORTAL_API, **_HOSTERS_OWN},
    "portal-dispute-list": {**_PORTAL_API, "hoster_a": 200, "hoster_b": 200},
    "portal-dispute-detail": {**_PORTAL_API, **_HOSTERS_OWN},
    "notice-list": {**dict.fromkeys(ROLES, 200), "anonymous": 401},
    "notice-detail": {**dict.fromkeys(ROLES, 200), "anonymous": 401, **_HOSTERS_OWN},
    "hoster-list": {**dict.fromkeys(ROLES, 200), "anonymous": 401},
    "hoster-detail": {**dict.fromkeys(ROLES, 200), "anonymous": 401, **_HOSTERS_OWN},
    "api-root": {**dict.fromkeys(ROLES, 200), "anonymous": 401},
    "admin:index": _STAFF_ONLY,
    "admin:compliance_notice_changelist": _STAFF_ONLY,
    "admin:compliance_dispute_changelist": _STAFF_ONLY,
    "admin:compliance_auditevent_changelist": _STAFF_ONLY,
    "admin:compliance_noticeemail_changelist": _STAFF_ONLY,
    "admin:compliance_deliveryevent_changelist": _STAFF_ONLY,
    "admin:compliance_notice_change": _STAFF_ONLY,
}

# API write operations (operationId) -> roles allowed to call them. Every write operation in the
# schema needs an entry: an unknown one fails the test until someone decides who may call it.
WRITE_RULES: dict[str, tuple[str, ...]] = {
    "v1_notices_create": ("analyst",),
    "v1_notices_attribution_create": ("analyst",),  # the attribution override
    "v1_portal_notices_acknowledge_create": ("hoster_a", "hoster_b"),
    "v1_portal_notices_removed_create": ("hoster_a", "hoster_b"),
    "v1_portal_notices_dispute_create": ("hoster_a", "hoster_b"),
}


# --- Discovery ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    route: str  # the combined pattern string, as Django's ResolverMatch.route shows it
    name: str  # namespaced name, or "" for an unnamed pattern
    params: tuple[str, ...]
    is_api: bool
    is_admin: bool
    is_drf: bool
    is_csrf_exempt: bool = False

    @property
    def label(self) -> str:
        return f"{self.name or '(unnamed)'} {self.route}"


def _params(pattern) -> list[str]:
    if hasattr(pattern, "converters") and pattern.converters:
        return list(pattern.converters)
    regex = getattr(pattern, "regex", None)
    return list(regex.groupindex) if regex is not None else []


def _join(prefix: str, pattern) -> str:
    """As Django joins routes for ResolverMatch.route: a leading ^ of the inner pattern is dropped."""
    text = str(pattern)
    return prefix + (text[1:] if text.startswith("^") else text)


def discover(patterns=None, prefix: str = "", namespace: str = "", params: tuple[str, ...] = ()):
    for entry in patterns if patterns is not None else get_resolver().url_patterns:
        if isinstance(entry, URLResolver):
            ns = ":".join(filter(None, [namespace, entry.namespace]))
            yield from discover(
                entry.url_patterns, _join(prefix, entry.pattern), ns, (*params, *_params(entry.pattern))
            )
        elif isinstance(entry, URLPattern):
            route = _join(prefix, entry.pattern)
            name = ":".join(filter(None, [namespace, entry.name])) if entry.name else ""
            yield Route(
                route=route,
                name=name,
                params=(*params, *_params(entry.pattern)),
                is_api=route.startswith("api/"),
                is_admin=namespace == "admin" or route.startswith("admin/"),
                is_drf=hasattr(entry.callback, "cls"),
                is_csrf_exempt=getattr(entry.callback, "csrf_exempt", False),
            )


ROUTES = list(discover())


# --- The world ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def _world(django_db_setup, django_db_blocker):
    """The world is built once for the module inside a transaction that is rolled back at its end
    (as TestCase.setUpTestData does); each test runs in a savepoint of its own (`db`)."""
    with django_db_blocker.unblock():
        outer = transaction.atomic()
        outer.__enter__()
        try:
            yield build_world()
        finally:
            transaction.set_rollback(True)
            outer.__exit__(None, None, None)


@pytest.fixture
def world(_world, db) -> World:
    return _world


# --- Building requests --------------------------------------------------------------------------


def add_a_rule(route: Route, why: str):
    pytest.fail(f"add a rule for this URL: {route.label} ({why}) in tests/test_access_matrix.py", pytrace=False)


def build_path(route: Route, values: dict[str, str]) -> str:
    """The concrete path of a pattern with its parameters filled in; checked by resolving it."""
    text = route.route
    for name, value in values.items():
        text = re.sub(r"\(\?P<" + name + r">(?:[^()]|\([^()]*\))*\)", str(value), text)  # regex groups
        text = text.replace(f"<drf_format_suffix:{name}>", f".{value}")  # DRF's suffix converter has the dot
        text = re.sub(r"<(?:\w+:)?" + name + r">", str(value), text)  # path converters
    text = text.replace("^", "").replace("$", "").replace("\\.", ".").replace("/?", "/")
    if re.search(r"[<>()\[\]*+?\\|]", text):
        add_a_rule(route, f"could not fill in {text!r}")
    path = "/" + text
    try:
        match = resolve(path)
    except Resolver404:
        add_a_rule(route, f"{path} does not resolve")
    if match.route != route.route:
        add_a_rule(route, f"{path} resolves to {match.route!r}")
    return path


@dataclass(frozen=True)
class Variant:
    owner: str  # "A", "B", "missing", "A+" (more of A's objects, searched for leaks only), or "" for none
    kind: str
    path: str


def variants(route: Route, world: World) -> list[Variant]:
    """One request per object owner (A, B, missing) and kind for URLs naming an object."""
    object_params = [p for p in route.params if p in OBJECT_PARAMS]
    if route.is_admin:
        unknown = [p for p in route.params if p not in world.fixed]
        if unknown:
            add_a_rule(route, f"unknown admin parameter(s) {unknown}")
        return [Variant("", "", build_path(route, {p: world.fixed[p] for p in route.params}))]
    fills = {p: fill() for p, fill in ROUTE_FILLS.get(route.name, {}).items()}
    unknown = [p for p in route.params if p not in OBJECT_PARAMS and p not in FIXED_PARAMS and p not in fills]
    if unknown or len(object_params) > 1:
        add_a_rule(route, f"parameter(s) {unknown or object_params} cannot be filled in automatically")
    fixed = {**fills, **{p: world.fixed[p] for p in route.params if p in FIXED_PARAMS}}
    if not object_params:
        return [Variant("", "", build_path(route, fixed))]
    param = object_params[0]
    kinds = (KIND[route.name],) if route.name in KIND else OBJECT_PARAMS[param]
    out = [
        Variant(owner, kind, build_path(route, {**fixed, param: IDS[kind][owner]}))
        for kind in kinds
        for owner in ("A", "B", "missing")
    ]
    if "notice" in kinds:  # A's other notices (IP-literal URLs, a repeat of B's notice): searched for leaks
        out += [Variant("A+", "notice", build_path(route, {**fixed, param: pk})) for pk in MORE_NOTICES_A]
    return out


def body_of(response) -> str:
    """The response as text to search; a Parquet file (compressed columns) is read back first."""
    raw = b"".join(response.streaming_content) if getattr(response, "streaming", False) else response.content
    if response.get("Content-Type", "").startswith("application/vnd.apache.parquet") and response.status_code == 200:
        import io

        import pyarrow.parquet as pq

        table = pq.read_table(io.BytesIO(raw))
        metadata = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()}
        return repr(metadata) + repr(table.to_pylist())
    return raw.decode("utf-8", "replace")


def assert_shows_nothing_forbidden(role: str, path: str, response, *, is_public: bool = False):
    text = body_of(response)
    leaked = [marker for marker in FORBIDDEN[role] if marker in text]
    assert not leaked, f"{role} GET {path} shows {leaked}"
    if is_public:
        return  # a static asset (plotly.js) holds every number there is
    # Another hoster's ids (a repeat's `repeat_of`, a dispute's notice, a link), unless the
    # request named the id itself (a page may echo its own path).
    ids = [i for i in FORBIDDEN_IDS.get(role, ()) if not re.search(rf"(?<!\d){i}(?!\d)", path)]
    shown = [i for i in ids if re.search(rf"(?<!\d){i}(?!\d)", text)]
    assert not shown, f"{role} GET {path} shows another hoster's id(s) {shown}"


def snapshot() -> dict:
    """What a forbidden write could change: every notice's response fields, disputes, e-mails."""
    return {
        "notices": list(
            Notice.objects.order_by("pk").values_list("pk", "acknowledged_at", "reported_removed_at", "next_check_at")
        ),
        "disputes": list(Dispute.objects.order_by("pk").values_list("pk", "state", "answer", "text")),
        "emails": NoticeEmail.objects.count(),
        "hosters": list(Hoster.objects.order_by("pk").values_list("pk", "name", "abuse_email")),
    }


# --- The matrix: every URL pattern, every role --------------------------------------------------


@pytest.mark.parametrize("route", ROUTES, ids=[r.label for r in ROUTES])
def test_every_url_for_every_role(route: Route, world: World):
    statuses: dict[tuple[str, str, str], int] = {}
    for variant in variants(route, world):
        for role in ROLES:
            response = world.clients[role].get(variant.path)
            status = response.status_code
            statuses[(role, variant.owner, variant.kind)] = status
            where = f"{role} GET {variant.path} ({route.label})"
            assert status < 500, f"{where}: {status}"
            assert_shows_nothing_forbidden(role, variant.path, response, is_public=route.name in PUBLIC)

            if role == "anonymous" and route.name not in PUBLIC:
                assert status in (302, 401, 403, 404, 405), f"{where}: {status}"
                if status == 302:
                    assert "login" in response["Location"], f"{where}: redirects to {response['Location']}"
            if route.is_admin and role not in STAFF_ROLES and route.name not in PUBLIC:
                assert status in (302, 404, 405), f"{where}: admin pages are for analysts ({status})"
                if status == 302:
                    assert "/admin/login/" in response["Location"], where
            expected = EXPECT.get(route.name, {}).get(role)
            if expected is not None and variant.owner in ("", "A"):
                assert status == expected, f"{where}: expected {expected}, got {status}"

    # Another hoster's object is indistinguishable from one that does not exist; visible own
    # objects make the other's a 404 (never 403).
    for me, theirs in (("hoster_a", "B"), ("hoster_b", "A")):
        mine = "A" if theirs == "B" else "B"
        for role, owner, kind in list(statuses):
            if role != me or owner != theirs:
                continue
            other = statuses[(me, theirs, kind)]
            missing = statuses[(me, "missing", kind)]
            assert other == missing, (
                f"{me}: {route.label} answers {other} for the other hoster's {kind}, {missing} for none"
            )
            if statuses[(me, mine, kind)] == 200:
                assert other == 404, f"{me}: {route.label} gives {other}, not 404, for the other hoster's {kind}"


def test_the_matrix_walks_the_urls_it_must(world):
    """The walk is not vacuous: it finds the pages and endpoints of every part of the product."""
    names = {r.name for r in ROUTES}
    for name in ("home", "portal:notice", "portal-notice-detail", "notice-detail", "hoster-detail", "admin:index"):
        assert name in names
    assert len(ROUTES) > 50


# --- Writes through pages -----------------------------------------------------------------------


PAGE_WRITES = [r for r in ROUTES if not r.is_api and not r.is_admin and any(p in OBJECT_PARAMS for p in r.params)]


@pytest.mark.parametrize("route", PAGE_WRITES, ids=[r.label for r in PAGE_WRITES])
def test_no_page_form_changes_what_is_not_yours(route: Route, world: World):
    form = {"reason": "other", "text": "matrix", "csrfmiddlewaretoken": "x"}
    before = snapshot()
    for variant in variants(route, world):
        for role in ROLES:
            if role == "analyst" or (role == "hoster_a" and variant.owner in ("A", "A+")):
                continue  # allowed writers on their own data: their functional tests cover them
            if role == "hoster_b" and variant.owner == "B":
                continue
            response = world.clients[role].post(variant.path, form)
            assert response.status_code < 500
            assert response.status_code not in (200, 201, 202, 204) or route.name == "login", (
                f"{role} POST {variant.path}: {response.status_code}"
            )
    assert snapshot() == before, f"a POST to {route.label} changed another hoster's data"


# --- The OpenAPI schema -------------------------------------------------------------------------


@pytest.fixture
def schema(world):
    response = world.clients["analyst"].get("/api/schema/?format=json")
    assert response.status_code == 200
    return response.json()


def _schema_path(template: str, values: dict[str, object]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: str(values[m.group(1)]), template)


def test_every_api_url_is_in_the_openapi_schema(schema):
    documented = {re.sub(r"\{\w+\}", "{}", p) for p in schema["paths"]}
    for route in ROUTES:
        if not route.is_api or "format" in route.params or route.name in ("api-root", "schema", "api-docs"):
            continue
        template = "/" + re.sub(r"\(\?P<\w+>[^)]*\)|<(?:\w+:)?\w+>", "{}", route.route).replace("^", "").replace(
            "$", ""
        )
        assert template in documented, f"{route.label} is not in the OpenAPI schema (extend_schema it)"


def test_every_api_operation_for_every_role(schema, world):
    """Every operation of the schema resolves to a URL the matrix walks; reads follow the same rules
    there; every write operation has a rule, and nobody writes what is not theirs."""
    walked = {r.route for r in ROUTES}
    before = snapshot()
    writes = 0
    for template, operations in schema["paths"].items():
        params = re.findall(r"\{(\w+)\}", template)
        for method, operation in operations.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            op_id = operation["operationId"]
            kinds = (
                [KIND.get(resolve(_schema_path(template, dict.fromkeys(params, 1))).view_name)] if params else [None]
            )
            owners = ("A", "B", "missing") if params else ("",)
            for kind in kinds:
                if params and kind is None:
                    kind = "hoster" if "slug" in params else "notice"
                for owner in owners:
                    values = {p: IDS[kind][owner] for p in params}
                    path = _schema_path(template, values)
                    assert resolve(path).route in walked, f"{op_id}: {path} is not in the URL conf walk"
                    if method == "get":
                        continue  # the URL walk above checks every read for every role
                    if op_id not in WRITE_RULES:
                        pytest.fail(f"add a rule for this API operation: {op_id} ({method.upper()} {template})")
                    writes += 1
                    for role in ROLES:
                        allowed = role in WRITE_RULES[op_id]
                        own = (role, owner) in (("hoster_a", "A"), ("hoster_b", "B")) or not params
                        if allowed and (own or role == "analyst"):
                            continue  # the functional tests exercise permitted writes
                        response = getattr(world.clients[role], method)(path, {}, content_type="application/json")
                        status = response.status_code
                        where = f"{role} {method.upper()} {path} ({op_id})"
                        assert status in (400, 401, 403, 404, 405), f"{where}: {status}"
                        if role == "anonymous":
                            assert status == 401, where
                        elif allowed:
                            assert status == 404, f"{where}: another hoster's object must be 404, got {status}"
                        elif not allowed and owner in ("", "A"):
                            assert status == 403, f"{where}: {status}"
    assert writes, "the schema has no write operations: the walk found nothing"
    assert snapshot() == before


# --- CSRF on every form -------------------------------------------------------------------------


def test_no_page_is_exempt_from_csrf():
    """Only DRF views are csrf_exempt: DRF enforces CSRF itself for session-authenticated requests
    (token requests carry no cookie to forge)."""
    exempt = [r.label for r in ROUTES if r.is_csrf_exempt and not r.is_drf]
    assert not exempt, f"CSRF-exempt pages: {exempt}"


def test_every_post_form_in_every_template_carries_the_csrf_token():
    from pathlib import Path

    from django.apps import apps
    from django.conf import settings

    base = Path(settings.BASE_DIR)
    dirs = [Path(d) for t in settings.TEMPLATES for d in t["DIRS"]]
    # Our own apps sit at the top of the project; installed packages (even a .venv inside it) do not.
    dirs += [Path(c.path) / "templates" for c in apps.get_app_configs() if Path(c.path).parent == base]
    files = [f for d in dirs if d.is_dir() for f in d.rglob("*.html")]
    assert any(f.name == "notice.html" for f in files)  # the walk finds the portal's templates
    missing = []
    for path in files:
        text = path.read_text()
        for form in re.findall(r"<form\b[^>]*>.*?</form>", text, flags=re.S | re.I):
            if re.search(r"method=[\"']?post", form, flags=re.I) and "{% csrf_token %}" not in form:
                missing.append(f"{path.relative_to(base)}: {form[:80]}")
    assert not missing, missing
