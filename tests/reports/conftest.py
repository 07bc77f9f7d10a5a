from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from .helpers import BASE, checks_for, notice


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


@pytest.fixture
def case(prompt_hoster, slow_hoster):
    """Prompt: 7 measured notices; slow: 3; one unattributed; plus notices that must not count."""
    now = timezone.now()
    p, s = prompt_hoster, slow_hoster
    notice(p, BASE, ttt_s=3600, removal_mechanism="file_gone")
    notice(p, BASE + timedelta(hours=1), ttt_s=7200, removal_mechanism="file_gone")
    notice(p, BASE + timedelta(hours=2), ttt_s=86400, removal_mechanism="replaced")  # exactly at the deadline
    notice(p, BASE + timedelta(hours=3), ttt_s=90000, removal_mechanism="file_gone")
    notice(
        p,
        BASE + timedelta(hours=4),
        status="reappeared",
        ttt_s=1800,
        reappearance_count=1,
        removal_mechanism="file_gone",
    )
    notice(p, BASE + timedelta(hours=5), status="online", last_checked_at=BASE + timedelta(hours=5, seconds=200000))
    notice(
        p, now - timedelta(hours=1), status="online", last_checked_at=now - timedelta(hours=1) + timedelta(seconds=1800)
    )
    notice(p, BASE, status="repeat")
    notice(None, BASE, status="unresolvable")  # only a notice without hoster may be unresolvable
    notice(p, None, status="pending")
    notice(p, BASE - timedelta(seconds=1), ttt_s=10)  # before --from
    notice(s, BASE, ttt_s=172800, removal_mechanism="server_gone")
    notice(s, BASE, status="online", last_checked_at=BASE + timedelta(seconds=100000), is_displaced=False)
    notice(s, BASE + timedelta(days=1), ttt_s=60, deadline_s=3600, removal_mechanism="moved", is_displaced=True)
    notice(None, BASE, ttt_s=100)
    return now
