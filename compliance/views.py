"""Pages of the compliance app that are not the portal: the start page after login, the 404 answer."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import JsonResponse
from django.shortcuts import render
from django.views.defaults import page_not_found

from compliance.models import Role
from compliance.selectors import role_of


@login_required
def home(request):
    """A start page with the places this user's role can go."""
    role = role_of(request.user)
    return render(request, "home.html", {"role": role, "role_label": Role(role).label if role else ""})


def not_found(request, exception=None):
    """The 404 answer: JSON under /api/ (as DRF's own, `{"detail": ...}`, which the OpenAPI
    schema documents), Django's page elsewhere. Reached for a path no URL pattern matches, such as
    `/api/v1/notices/1.5/` or `/api/v1/notices/null/attribution/`."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Not found."}, status=404)
    return page_not_found(request, exception)
