"""Pages of the compliance app that are not the portal: the start page after login."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from compliance.models import Role
from compliance.selectors import role_of


@login_required
def home(request):
    """A start page with the places this user's role can go."""
    role = role_of(request.user)
    return render(request, "home.html", {"role": role, "role_label": Role(role).label if role else ""})
