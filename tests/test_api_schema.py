"""The API matches its OpenAPI schema (`/api/schema/`): schemathesis generates requests for every
operation, valid and invalid (positive and negative modes), and sends each with an analyst's and
a hoster user's token (and a researcher's, whose fields are pseudonymised) to the WSGI application
in this process (config.wsgi): the real URL conf, middleware and database, no network.

Every response must be no 5xx, carry a status code the operation documents, the documented
content type and headers, and a body that validates against the documented schema (nullable and
blank fields declared). Path parameters are drawn from generated values and from the ids of real
objects (tests/api_world.py), so that detail responses with checks, attributions and RDAP data are
validated, not only 404s.

Bounded: MAX_EXAMPLES per operation and mode, deterministic (the same cases on every run), no
example database. A line of the test run's output reports the operations and cases tested.
"""

from __future__ import annotations

import os
import re
from collections import Counter

import pytest
import schemathesis
from django.core import signals
from django.db import close_old_connections, transaction
from django.test import override_settings
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.api_world import IDS, MORE_NOTICES_A, UNSENT_NOTICE_A, World, build_world

# Per operation and mode. CI runs 40 (about a minute of CPU per database); raise it for a deeper
# run: SCHEMATHESIS_MAX_EXAMPLES=500 pytest tests/test_api_schema.py
MAX_EXAMPLES = int(os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "40"))
ROLES = ("analyst", "hoster_a", "researcher")
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
# Real object ids for path parameters, mixed into the generated ones.
REAL_IDS = {
    "id": [IDS["notice"]["A"], IDS["notice"]["B"], UNSENT_NOTICE_A, *MORE_NOTICES_A, IDS["dispute"]["A"]],
    "slug": [IDS["hoster"]["A"], IDS["hoster"]["B"]],
}

TESTED: Counter = Counter()


@pytest.fixture(scope="module")
def _world(django_db_setup, django_db_blocker):
    """The world, built once inside a transaction rolled back at the end (as in the matrix).

    The WSGI handler sends request_started/request_finished, whose close_old_connections would
    close the test's connection (and its transaction) on PostgreSQL after every request. Django's
    test client disconnects it while it runs a request; here it is disconnected for the module."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        with django_db_blocker.unblock():
            outer = transaction.atomic()
            outer.__enter__()
            try:
                yield build_world()
            finally:
                transaction.set_rollback(True)
                outer.__exit__(None, None, None)
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


@pytest.fixture
def world(_world, db) -> World:
    return _world


@pytest.fixture(scope="module")
def _report(request):
    yield
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None and TESTED["cases"]:
        operations = len([k for k in TESTED if k not in ("cases", "requests")])
        with capture.global_and_fixture_disabled():
            reporter.write_line(
                f"\nschemathesis: {operations} operations, {TESTED['cases']} cases, {TESTED['requests']} requests "
                f"({', '.join(ROLES)}; positive and negative)"
            )


def _operation_labels() -> list[str]:
    """The operations of the schema, read at collection (drf-spectacular, no request needed)."""
    from drf_spectacular.generators import SchemaGenerator

    paths = SchemaGenerator().get_schema(request=None, public=True)["paths"]
    return [f"{method.upper()} {path}" for path, ops in paths.items() for method in ops]


LABELS = _operation_labels()


@pytest.fixture(scope="module")
def api_schema(_world, django_db_blocker):
    from config.wsgi import application

    with override_settings(ALLOWED_HOSTS=["testserver", "localhost"]), django_db_blocker.unblock():
        return schemathesis.openapi.from_wsgi("/api/schema/?format=json", application)


def _strategy(operation, mode: GenerationMode):
    """Generated cases, and as many again whose path names a real object of the world."""
    generated = operation.as_strategy(generation_mode=mode)
    names = [n for n in re.findall(r"\{(\w+)\}", operation.path) if n in REAL_IDS]
    if not names or mode is GenerationMode.NEGATIVE:  # a fixed path leaves nothing to negate
        return generated
    real = [operation.as_strategy(generation_mode=mode, path_parameters={names[0]: v}) for v in REAL_IDS[names[0]]]
    return st.one_of(generated, st.one_of(real))


@pytest.mark.parametrize("label", LABELS)
@pytest.mark.usefixtures("_report")
def test_the_api_matches_its_schema(label, api_schema, world, settings):
    """No 5xx, no undocumented status code, no body the schema does not describe, for each role."""
    settings.ALLOWED_HOSTS = ["testserver", "localhost"]  # schemathesis' WSGI client's host
    operation = api_schema.find_operation_by_label(label)
    assert operation is not None, f"{label} is not in the schema served at /api/schema/"
    failures = []
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

        @given(case=_strategy(operation, mode))
        @hypothesis_settings(
            max_examples=MAX_EXAMPLES,
            derandomize=True,
            database=None,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            print_blob=False,
        )
        def run(case):
            TESTED["cases"] += 1
            TESTED[label] += 1
            for role in ROLES:
                TESTED["requests"] += 1
                case.call_and_validate(headers={"Authorization": f"Token {world.tokens[role]}"}, checks=CHECKS)

        try:
            run()
        except Unsatisfiable:
            # Nothing of this operation can be made invalid (e.g. a free-text path parameter).
            assert mode is GenerationMode.NEGATIVE, f"{label}: no valid case could be generated"
        except Exception as exc:  # every mode's failure is reported, not only the first
            failures.append(f"{mode.value}: {exc}")
    assert not failures, "\n\n".join(failures)


def test_an_unknown_api_path_answers_json_like_the_apis_other_404s(client, db):
    response = client.get("/api/v1/notices/1.5/")
    assert response.status_code == 404 and response.json() == {"detail": "Not found."}
    page = client.get("/no-such-page/")
    assert page.status_code == 404 and page["Content-Type"].startswith("text/html")


def test_every_operation_documents_the_shared_error_answers(world):
    """401 and 403 everywhere; 404 where a path names an object or a list is paged; 400 for filters."""
    paths = world.clients["analyst"].get("/api/schema/?format=json").json()["paths"]
    for path, operations in paths.items():
        for method, operation in operations.items():
            codes = set(operation["responses"])
            assert {"401", "403"} <= codes, f"{method} {path}"
            if "{" in path:
                assert "404" in codes, f"{method} {path}"
            for code, response in operation["responses"].items():
                if code.startswith("4"):
                    assert "application/json" in response.get("content", {}), f"{method} {path} {code}"
    assert "400" in paths["/api/v1/notices/"]["get"]["responses"]  # ?status=nonsense
    assert "404" in paths["/api/v1/notices/"]["get"]["responses"]  # ?page=0


@pytest.mark.parametrize(
    "query",
    [
        "/api/v1/notices/?notified_before=1062-05-25T22:02:40.451200%2B23:41",
        "/api/v1/notices/?notified_after=0001-01-01T00:00:00%2B05:00",
        "/api/v1/metrics/hosters/?from=1062-05-25T22:02:40%2B23:41",
        "/api/v1/metrics/hosters/?to=0001-01-01T00:00:00%2B05:00",
        "/api/v1/export/notices.csv?from=0001-01-01",
        "/api/v1/export/notices.csv?to=9999-12-31T23:59:59-23:00",
        "/api/v1/export/notices.csv?hoster=alpha%00",  # a NUL byte would reach PostgreSQL mid-stream
        "/api/v1/notices/?hoster=alpha%00",
    ],
)
def test_a_filter_at_the_edge_is_a_400_or_an_answer_never_a_500(world, query):
    """Found by schemathesis on PostgreSQL: an offset beyond ±15:59, a NUL byte sent to the database."""
    response = world.clients["analyst"].get(query)
    assert response.status_code in (200, 400), (query, response.status_code)
    body = b"".join(response.streaming_content) if response.streaming else response.content
    assert body
