"""The daily digest of the evidence chains (a runmonitor drain), its RFC 3161 stamp from a TSA on
loopback, its section on /monitor/health/, and a notice's signed evidence file (compliance/evidence_files.py)."""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import subprocess
import zipfile
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from compliance import evidence, evidence_files, tsa
from compliance.models import AuditEvent, Check, Notice
from monitor import evidence_digest as monitor_evidence
from monitor import jobs
from tests.compliance.test_evidence import _check, _notice, _tamper, verify

SIGNING_KEY = base64.b64encode(bytes(range(32))).decode()


@pytest.fixture
def notice_with_checks(prompt_hoster):
    notice = _notice(prompt_hoster, 7)
    for minutes in (0, 5, 10):
        _check(notice, minutes)
    return notice


def test_the_digest_is_a_drain_of_the_monitor():
    assert "monitor.evidence_digest.drain_digest" in [d.path for d in jobs.DRAINS]


def test_the_digest_drain_records_one_digest_a_day_in_the_audit_trail(notice_with_checks, settings):
    settings.EVIDENCE_TSA_URL = ""
    now = timezone.now()
    assert monitor_evidence.drain_digest(now=now) is False
    events = AuditEvent.objects.filter(action="evidence.digest")
    assert events.count() == 1
    detail = events.get().detail
    assert detail["parts"]["checks"]["rows"] == 3
    assert detail["parts"]["checks"]["chains"] == 1
    assert detail["digest"] == evidence.digest_of(detail["parts"])
    assert detail["tsa"] is None
    monitor_evidence.drain_digest(now=now + timedelta(hours=1))
    assert events.count() == 1  # not again within the day
    monitor_evidence.drain_digest(now=now + timedelta(hours=25))
    assert events.count() == 2


def test_the_digest_is_stamped_by_the_time_stamping_authority(notice_with_checks, settings, tsa_server):
    settings.EVIDENCE_TSA_URL = tsa_server.url
    event = monitor_evidence.record_digest()
    stamp = event.detail["tsa"]
    assert len(tsa_server.requests) == 1
    assert stamp["authority"] == "Common Name: Loopback Test TSA"
    token = base64.b64decode(stamp["token"])
    # The token verifies against the digest, and against no other.
    assert tsa.verify_token(token, event.detail["digest"]).serial == 1
    with pytest.raises(tsa.TimestampError, match="another digest"):
        tsa.verify_token(token, "0" * 64)
    code, summary, err = verify()
    assert code == 0, err
    assert summary["digest"]["matches"] is True
    assert summary["digest"]["stamped_at"] == stamp["gen_time"]


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_openssl_accepts_the_stored_time_stamp_token(notice_with_checks, settings, tsa_server, tmp_path):
    settings.EVIDENCE_TSA_URL = tsa_server.url
    event = monitor_evidence.record_digest()
    (tmp_path / "token.der").write_bytes(base64.b64decode(event.detail["tsa"]["token"]))
    (tmp_path / "tsa.pem").write_bytes(tsa_server.ca_pem)
    result = subprocess.run(
        ["openssl", "ts", "-verify", "-digest", event.detail["digest"], "-token_in", "-in", "token.der"]
        + ["-CAfile", "tsa.pem"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert "Verification: OK" in result.stdout, result.stderr


def test_a_refusing_authority_leaves_an_unstamped_digest_and_says_why(notice_with_checks, settings, tsa_server):
    settings.EVIDENCE_TSA_URL = tsa_server.url
    tsa_server.refuse = True
    event = monitor_evidence.record_digest()
    assert "refused" in event.detail["tsa"]["error"]
    assert "token" not in event.detail["tsa"]


def test_a_check_altered_before_the_digest_no_longer_matches_it(notice_with_checks, settings):
    settings.EVIDENCE_TSA_URL = ""
    monitor_evidence.record_digest()
    last = Check.objects.filter(notice=notice_with_checks).order_by("-id").first()
    # Delete the newest check and put the head back on the previous one: the chain itself is
    # consistent again; only the digest made before knows.
    previous = Check.objects.filter(notice=notice_with_checks).exclude(pk=last.pk).order_by("-id").first()
    _tamper("DELETE FROM monitor_check WHERE id = %s", [last.pk])
    Notice.objects.filter(pk=notice_with_checks.pk).update(check_chain_head=previous.chain_hash)
    code, summary, err = verify()
    assert code == 1
    assert summary["chains"]["checks"]["broken"] == 0
    assert summary["digest"]["matches"] is False
    assert "checks: the rows up to id" in err


def test_the_health_page_shows_the_latest_digest(client, analyst, notice_with_checks, settings, tsa_server):
    settings.EVIDENCE_TSA_URL = tsa_server.url
    client.force_login(analyst)
    assert "No digest yet" in client.get("/monitor/health/").content.decode()
    event = monitor_evidence.record_digest()
    page = client.get("/monitor/health/").content.decode()
    assert event.detail["digest"] in page
    assert "Loopback Test TSA" in page


# --- The signed evidence file ------------------------------------------------------------------


def _download(client, notice):
    return client.post(
        "/admin/compliance/notice/", {"action": "download_evidence", "_selected_action": [str(notice.pk)]}
    )


def test_an_analyst_downloads_a_notices_signed_evidence(client, analyst, notice_with_checks, settings, tmp_path):
    settings.EVIDENCE_SIGNING_KEY = SIGNING_KEY
    monitor_evidence.record_digest()
    client.force_login(analyst)
    response = _download(client, notice_with_checks)
    assert response.status_code == 200
    assert response["Content-Disposition"] == f'attachment; filename="notice-{notice_with_checks.pk}-evidence.zip"'
    data = response.content
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert set(zf.namelist()) == {"evidence.json", "evidence.json.sig", "public_key.pem", "README.txt"}
        doc = json.loads(zf.read("evidence.json"))
        zf.extractall(tmp_path)
    assert [c["id"] for c in doc["checks"]] == list(
        Check.objects.filter(notice=notice_with_checks).order_by("id").values_list("id", flat=True)
    )
    proof = doc["chain_proof"]["checks"]
    assert proof["intact"] is True
    assert proof["head"] == Notice.objects.get(pk=notice_with_checks.pk).check_chain_head
    assert doc["chain_proof"]["latest_digest"]["digest"]
    # The export is itself in the audit trail.
    assert AuditEvent.objects.filter(action="notice.evidence_export", notice=notice_with_checks).exists()
    # Verified by our command, and by OpenSSL as the README says.
    (tmp_path / "bundle.zip").write_bytes(data)
    out = io.StringIO()
    call_command("verify_evidence", "--bundle", str(tmp_path / "bundle.zip"), stdout=out)
    assert json.loads(out.getvalue())["ok"] is True
    if shutil.which("openssl"):
        result = subprocess.run(
            ["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", "public_key.pem", "-rawin"]
            + ["-in", "evidence.json", "-sigfile", "evidence.json.sig"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
        )
        assert "Signature Verified Successfully" in result.stdout, result.stderr


def test_a_changed_evidence_file_fails_verification(client, analyst, notice_with_checks, settings, tmp_path):
    settings.EVIDENCE_SIGNING_KEY = SIGNING_KEY
    client.force_login(analyst)
    data = _download(client, notice_with_checks).content
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        files = {name: zf.read(name) for name in zf.namelist()}
    files["evidence.json"] = files["evidence.json"].replace(b'"http_status": 200', b'"http_status": 404', 1)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, content in files.items():
            zf.writestr(name, content)
    path = tmp_path / "changed.zip"
    path.write_bytes(buf.getvalue())
    out = io.StringIO()
    with pytest.raises(SystemExit) as exc:
        call_command("verify_evidence", "--bundle", str(path), stdout=out)
    assert exc.value.code == 1
    assert json.loads(out.getvalue())["signature"] is False


def test_without_a_signing_key_the_download_is_refused_with_a_reason(client, analyst, notice_with_checks, settings):
    settings.EVIDENCE_SIGNING_KEY = ""
    client.force_login(analyst)
    response = _download(client, notice_with_checks)
    assert response.status_code == 302
    messages = [m.message for m in response.wsgi_request._messages]
    assert any("EVIDENCE_SIGNING_KEY" in m for m in messages)


def test_the_readme_command_is_the_one_documented():
    assert "openssl pkeyutl -verify" in evidence_files.BUNDLE_README
    assert os.path.exists("docs/operations.md")
