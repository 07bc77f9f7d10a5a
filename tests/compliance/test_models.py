"""The domain's models: evidence is append-only in the ORM (compliance/models.py AppendOnlyModel)."""

from __future__ import annotations

import pytest
from django.utils import timezone

from compliance.models import AppendOnlyError, Check, Notice


@pytest.fixture
def check(prompt_hoster):
    now = timezone.now()
    notice = Notice.objects.create(
        url="http://a.example/",
        scheme="http",
        host="a.example",
        received_at=now,
        notified_at=now,
        deadline_s=60,
        hoster=prompt_hoster,
    )
    return Check.objects.create(notice=notice, checked_at=now, outcome="online", http_status=200)


def test_a_check_cannot_be_changed(check):
    check.outcome = "removed"
    with pytest.raises(AppendOnlyError):
        check.save()
    with pytest.raises(AppendOnlyError):
        Check.objects.filter(pk=check.pk).update(outcome="removed")
    assert Check.objects.get(pk=check.pk).outcome == "online"


def test_a_check_cannot_be_deleted(check):
    with pytest.raises(AppendOnlyError):
        check.delete()
    with pytest.raises(AppendOnlyError):
        Check.objects.all().delete()
    from django.db.models import ProtectedError

    with pytest.raises(ProtectedError):
        check.notice.delete()
    assert Check.objects.count() == 1
