"""Pages of the monitor app: its health, for analysts."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import render
from django.utils import timezone

from compliance.models import Role
from compliance.selectors import role_of
from monitor.health import monitor_health


@login_required
def health(request):
    """Is the monitor keeping up? Analysts only; for everyone else the page does not exist."""
    if role_of(request.user) != Role.ANALYST:
        raise Http404
    return render(request, "monitor/health.html", {"health": monitor_health(now=timezone.now())})
