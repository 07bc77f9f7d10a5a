"""The research API (reports/apis.py): the metrics rows and the notice exports over HTTP, scoping by
role, pseudonyms, filters, metadata and schema."""

from __future__ import annotations

import io
import json
from datetime import timedelta

import pyarrow.parquet as pq
import pytest
from django.core.management import call_command

from compliance.models import Notice
from compliance.pseudonym import pseudonymise
from reports import exports

from .helpers import body_of, csv_rows

METRICS = "/api/v1/metrics/hosters/"


CSV = "/api/v1/export/notices.csv"


@pytest.mark.parametrize("role", ["analyst", "ministry", "researcher"])
def test_metrics_are_the_rows_of_compliance_report(api, market, role, request):
    rows = api.as_user(request.getfixturevalue(role)).get(METRICS).json()
    out = io.StringIO()
    call_command("compliance_report", "--all-columns", stdout=out)
    assert rows == json.loads(out.getvalue())
    assert [r["hoster"] for r in rows] == ["prompt", "slow"]


def test_metrics_take_from_to_and_named_periods(api, market, analyst, settings):
    client = api.as_user(analyst)
    response = client.get(METRICS, {"from": "2000-01-01", "to": "2000-02-01"})
    assert response.status_code == 200 and response.json() == []
    assert response["X-Methodology-Version"] == settings.METHODOLOGY_VERSION
    named = client.get(METRICS, {"period": "365d"})
    assert [r["notices"] for r in named.json()] == [40, 35]
    assert "X-Computed-At" in named
    assert client.get(METRICS, {"period": "someday"}).status_code == 400
    assert client.get(METRICS, {"from": "nonsense"}).status_code == 400


def test_a_hoster_user_gets_only_its_own_metrics_row(api, market, slow_user):
    rows = api.as_user(slow_user).get(METRICS).json()
    assert [r["hoster"] for r in rows] == ["slow"]


def test_anonymous_and_role_less_requests_are_refused(api, market, client):
    assert api.get(METRICS).status_code in (401, 403)
    assert api.get(CSV).status_code in (401, 403)


def test_the_csv_export_has_the_contract_columns_and_every_visible_notice(api, market, analyst, settings):
    response = api.as_user(analyst).get(CSV)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert response["X-Methodology-Version"] == settings.METHODOLOGY_VERSION and response["X-Exported-At"]
    assert 'filename="notices-' in response["Content-Disposition"]
    rows = csv_rows(response)
    assert list(rows[0]) == exports.COLUMNS
    assert len(rows) == Notice.objects.count()
    by_id = {int(r["id"]): r for r in rows}
    online = Notice.objects.filter(hoster__slug="slow", status="online").first()
    taken = Notice.objects.filter(hoster__slug="prompt").order_by("id").first()
    assert by_id[online.pk]["verdict"] == "late" and by_id[online.pk]["takedown_at"] == ""
    row = by_id[taken.pk]
    assert row["url"] == taken.url and row["host"] == taken.host
    assert row["verdict"] == "within"
    assert (row["ttt_s"], row["precision_s"]) == (f"{taken.ttt_s:.3f}", f"{taken.precision_s:.3f}")
    assert row["notified_at"] == taken.notified_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert row["methodology_version"] == settings.METHODOLOGY_VERSION


@pytest.mark.parametrize("role", ["researcher", "ministry"])
def test_researchers_and_ministry_get_keyed_pseudonyms_instead_of_urls(api, market, role, request):
    rows = csv_rows(api.as_user(request.getfixturevalue(role)).get(CSV))
    notice = Notice.objects.order_by("id").first()
    first = rows[0]
    assert first["url"] == pseudonymise(notice.url) and first["host"] == pseudonymise(notice.host)
    text = "".join(r["url"] + r["host"] for r in rows)
    assert "example" not in text and "http" not in text


def test_a_hoster_user_exports_only_its_own_notices(api, market, prompt_user):
    rows = csv_rows(api.as_user(prompt_user).get(CSV))
    assert len(rows) == 40 and {r["hoster"] for r in rows} == {"prompt"}
    assert csv_rows(api.as_user(prompt_user).get(CSV, {"hoster": "slow"})) == []


def test_export_filters_by_hoster_status_verdict_and_period(api, market, analyst):
    client = api.as_user(analyst)
    assert len(csv_rows(client.get(CSV, {"hoster": "slow"}))) == 35
    assert len(csv_rows(client.get(CSV, {"hoster": "slow", "status": "online"}))) == 5
    assert len(csv_rows(client.get(CSV, {"status": "online,removed"}))) == 76
    assert len(csv_rows(client.get(CSV, {"verdict": "late"}))) == 35
    assert len(csv_rows(client.get(CSV, {"from": "2000-01-01", "to": "2000-02-01"}))) == 0
    assert client.get(CSV, {"status": "gone"}).status_code == 400
    assert client.get(CSV, {"verdict": "maybe"}).status_code == 400


def test_json_lines_and_parquet_hold_the_same_rows(api, market, researcher):
    client = api.as_user(researcher)
    from_csv = csv_rows(client.get(CSV, {"hoster": "prompt"}))
    lines = body_of(client.get("/api/v1/export/notices.jsonl", {"hoster": "prompt"})).decode().splitlines()
    from_jsonl = [json.loads(line) for line in lines]
    assert len(from_jsonl) == len(from_csv) == 40
    assert [r["url"] for r in from_jsonl] == [r["url"] for r in from_csv]
    # Booleans and seconds print differently (true/True, 1800.000/1800.0); the export time.
    differ = ("is_displaced", "is_behind_cdn", "exported_at", "ttt_s", "precision_s")
    assert {k: ("" if v is None else str(v)) for k, v in from_jsonl[0].items() if k not in differ} == {
        k: v for k, v in from_csv[0].items() if k not in differ
    }
    for key in ("ttt_s", "precision_s"):
        assert [r[key] for r in from_jsonl] == [float(r[key]) if r[key] else None for r in from_csv]
    response = client.get("/api/v1/export/notices.parquet", {"hoster": "prompt"})
    assert response["Content-Type"] == "application/vnd.apache.parquet"
    table = pq.read_table(io.BytesIO(body_of(response)))
    assert table.num_rows == 40 and table.column_names == exports.COLUMNS
    assert table.column("url").to_pylist() == [r["url"] for r in from_csv]
    assert table.column("ttt_s").to_pylist() == [float(r["ttt_s"]) for r in from_csv]
    meta = table.schema.metadata
    assert meta[b"methodology_version"] and meta[b"exported_at"] and meta[b"filter_hoster"] == b"prompt"
    first_time = table.column("notified_at")[0].as_py()
    assert first_time.isoformat().replace("+00:00", "Z").startswith(from_csv[0]["notified_at"][:19])


def test_the_export_ignores_the_accept_header(api, market, analyst):
    response = api.as_user(analyst).get(CSV, HTTP_ACCEPT="text/csv")
    assert response.status_code == 200


def test_the_openapi_schema_documents_the_metrics_and_exports_with_their_filters(api, analyst):
    schema = api.as_user(analyst).get("/api/schema/", {"format": "json"}).json()
    paths = schema["paths"]
    for path in (METRICS, CSV, "/api/v1/export/notices.jsonl", "/api/v1/export/notices.parquet"):
        assert path in paths, path
    names = {p["name"] for p in paths[CSV]["get"]["parameters"]}
    assert {"from", "to", "period", "hoster", "status", "verdict"} <= names
    assert {"from", "to", "period"} <= {p["name"] for p in paths[METRICS]["get"]["parameters"]}


def test_the_export_filters_by_regime_and_carries_it(api, prompt_hoster, analyst):
    from django.utils import timezone

    from .helpers import notice

    at = timezone.now() - timedelta(days=1)
    order = notice(prompt_hoster, at, ttt_s=60, deadline_s=180, regime="order")
    notice(prompt_hoster, at, ttt_s=60, regime="covenant")
    rows = csv_rows(api.as_user(analyst).get(CSV, {"regime": "order"}))
    assert [(int(r["id"]), r["regime"]) for r in rows] == [(order.pk, "order")]
    assert api.as_user(analyst).get(CSV, {"regime": "nonsense"}).status_code == 400
