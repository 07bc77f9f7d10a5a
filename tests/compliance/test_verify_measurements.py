"""verify_measurements: every measured notice's stored timing is the replay of its checks."""

from __future__ import annotations

import io
import json
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from compliance import services
from compliance.models import Notice
from demo.sandbox.httpserver import ok, status
from monitor import check_drain


def _notice(url: str, reference: str) -> Notice:
    now = timezone.now()
    data = services.notice_input_parse(url=url, notified_at=now, deadline_s=3600, reference=reference, now=now)
    return services.notice_create(data=data, source="verify", now=now)[0]


def _verify(*args) -> tuple[int, dict, str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("verify_measurements", *args, stdout=out, stderr=err)
        code = 0
    except SystemExit as exit_:
        code = exit_.code
    return code, json.loads(out.getvalue().strip().splitlines()[-1]), err.getvalue()


@pytest.fixture
def measured(db, http_server):
    """Three notices measured by the real check drain: one removed (404 twice), one still online,
    one removed and then back online (reappeared)."""
    http_server.set("/gone.jpg", status(404))
    http_server.set("/kept.jpg", ok(b"still here"))
    http_server.set("/back.jpg", status(404))
    notices = [_notice(http_server.url(f"/{name}.jpg"), name) for name in ("gone", "kept", "back")]
    later = timezone.now()
    for _ in range(3):
        later += timedelta(hours=2)
        check_drain.run_batch(now=later)
    http_server.set("/back.jpg", ok(b"back again"))
    for _ in range(2):
        later += timedelta(days=3)
        check_drain.run_batch(now=later)
    for n in notices:
        n.refresh_from_db()
    assert [n.status for n in notices] == ["removed", "online", "reappeared"]
    return notices


def test_notices_measured_by_the_monitor_are_the_replay_of_their_checks(measured):
    code, summary, err = _verify()
    assert (code, summary, err) == (0, {"notices": 3, "consistent": 3, "inconsistent": 0}, "")


def test_a_timing_field_that_its_checks_do_not_give_is_reported(measured):
    gone = measured[0]
    Notice.objects.filter(pk=gone.pk).update(takedown_at=gone.takedown_at - timedelta(hours=1))
    code, summary, err = _verify()
    assert code == 1 and summary == {"notices": 3, "consistent": 2, "inconsistent": 1}
    assert err.startswith(f"notice {gone.pk}: takedown_at is ") and "its checks give" in err


def test_a_check_count_without_its_checks_is_reported(measured):
    kept = measured[1]
    Notice.objects.filter(pk=kept.pk).update(check_count=kept.check_count + 1)
    code, summary, err = _verify()
    assert code == 1 and f"notice {kept.pk}: check_count" in err


def test_scoped_to_a_hoster(measured, slow_hoster):
    assert _verify("--hoster", "slow")[1] == {"notices": 0, "consistent": 0, "inconsistent": 0}
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="no hoster"):
        call_command("verify_measurements", "--hoster", "nobody")
