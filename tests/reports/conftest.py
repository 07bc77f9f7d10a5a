from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from .helpers import checks_for, notice


@pytest.fixture
def market(prompt_hoster, slow_hoster):
    """40 prompt notices (all within a day), 35 slow ones (most late, some still online), one
    unattributed; each with the checks behind its figures."""
    now = timezone.now()
    made = []
    for i in range(40):
        made.append(
            notice(
                prompt_hoster, now - timedelta(days=20, hours=i), ttt_s=1800 + 600 * i, removal_mechanism="file_gone"
            )
        )
    for i in range(30):
        made.append(
            notice(
                slow_hoster, now - timedelta(days=15, hours=i), ttt_s=90000 + 3600 * i, removal_mechanism="server_gone"
            )
        )
    for i in range(5):
        made.append(
            notice(
                slow_hoster,
                now - timedelta(days=10, hours=i),
                status="online",
                last_checked_at=now - timedelta(hours=2),
                last_online_at=now - timedelta(hours=2),
            )
        )
    made.append(notice(None, now - timedelta(days=5), ttt_s=100))
    for n in made[:3] + made[40:42] + made[70:71]:
        checks_for(n)
    return now


@pytest.fixture(autouse=True)
def _rollups_without_lag(settings):
    """Pages catch up with every change before they read (in production they may lag by
    SCORECARD_ROLLUP_MAX_AGE, 60 s): tests change notices and look at once."""
    settings.SCORECARD_ROLLUP_MAX_AGE = 0
