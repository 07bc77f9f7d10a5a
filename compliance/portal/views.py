"""The hosters' portal: a hoster user's own notices, their deadlines and checks, and its responses.

Every notice comes from `selectors.portal_notices(user)`: another hoster's notice is not in that
queryset, so it is a 404 like a notice that does not exist. Non-hoster roles get 403 (the portal
is the abuse desk's workplace; analysts have the admin and the dispute queue).
"""

from __future__ import annotations

from functools import wraps

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from compliance import selectors
from compliance.models import Role
from compliance.portal import services
from compliance.portal.forms import DisputeForm

PAGE_SIZE = 100
RECENT_CHECKS = 5
HISTORY_CHECKS = 500


def scorecard_url(hoster) -> str:
    """The hoster's own scorecard (reports app; a hoster user sees only its own)."""
    return reverse("reports:scorecard", kwargs={"slug": hoster.slug})


def hoster_required(view):
    @login_required
    @wraps(view)
    def wrapped(request, *args, **kwargs):
        if selectors.role_of(request.user) != Role.HOSTER:
            raise PermissionDenied(_("The portal is for hosters' abuse desks."))
        return view(request, *args, **kwargs)

    return wrapped


def _base_context(request) -> dict:
    hoster = request.user.membership.hoster
    return {
        "hoster": hoster,
        "scorecard_url": scorecard_url(hoster),
        "delivery_problems": selectors.delivery_problems_of(hoster.pk),
        "now": timezone.now(),
    }


@hoster_required
def index(request):
    """Open notices, nearest deadline first, each with its countdown and latest checks."""
    open_qs = selectors.portal_open_notices(request.user).prefetch_related(
        selectors.notice_recent_checks(RECENT_CHECKS)
    )
    page = Paginator(open_qs, PAGE_SIZE).get_page(request.GET.get("page"))
    recent_closed = list(selectors.portal_closed_notices(request.user)[:10])
    open_disputes = selectors.disputes_visible_to(request.user).filter(state="open").count()
    return render(
        request,
        "portal/index.html",
        {**_base_context(request), "page": page, "recent_closed": recent_closed, "open_disputes": open_disputes},
    )


@hoster_required
def closed(request):
    closed_qs = selectors.portal_closed_notices(request.user)
    page = Paginator(closed_qs, PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "portal/closed.html", {**_base_context(request), "page": page})


@hoster_required
def disputes(request):
    qs = selectors.disputes_visible_to(request.user).order_by("-created_at", "-id")
    page = Paginator(qs, PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "portal/disputes.html", {**_base_context(request), "page": page})


def _notice_or_404(request, pk):
    return get_object_or_404(selectors.portal_notices(request.user).select_related("hoster", "cdn"), pk=pk)


@hoster_required
def notice_detail(request, pk):
    return _render_notice(request, _notice_or_404(request, pk))


def _render_notice(request, notice, dispute_form=None, status=200):
    checks = list(notice.checks.order_by("-checked_at", "-id")[:HISTORY_CHECKS])
    disputes = list(selectors.disputes_visible_to(request.user).filter(notice=notice))
    return render(
        request,
        "portal/notice.html",
        {
            **_base_context(request),
            "notice": notice,
            "checks": checks,
            "checks_truncated": notice.check_count > len(checks),
            "disputes": disputes,
            "has_open_dispute": any(d.is_open for d in disputes),
            "emails": selectors.notice_emails_visible_to(request.user).filter(notice=notice).order_by("created_at"),
            "repeat_count": notice.repeats.count(),
            "dispute_form": dispute_form or DisputeForm(),
        },
        status=status,
    )


@require_POST
@hoster_required
def notice_acknowledge(request, pk):
    notice = _notice_or_404(request, pk)
    if services.notice_acknowledge(notice=notice, user=request.user, now=timezone.now(), request=request):
        messages.success(request, _("Notice %(id)s acknowledged.") % {"id": notice.pk})
    else:
        messages.info(request, _("Notice %(id)s was already acknowledged.") % {"id": notice.pk})
    return redirect(_next(request, notice))


@require_POST
@hoster_required
def notice_removed(request, pk):
    notice = _notice_or_404(request, pk)
    outcome = services.notice_report_removed(notice=notice, user=request.user, now=timezone.now(), request=request)
    text = {
        services.RECHECK_QUEUED: _(
            "Thank you. The monitor re-checks notice %(id)s now; it counts as removed once the checks confirm it."
        ),
        services.RECHECK_ALREADY_QUEUED: _("A re-check of notice %(id)s is already on its way."),
        services.CLAIM_CLOSED: _("Notice %(id)s is closed: nothing to re-check."),
    }[outcome]
    messages.info(request, text % {"id": notice.pk})
    return redirect(_next(request, notice))


@require_POST
@hoster_required
def notice_dispute(request, pk):
    notice = _notice_or_404(request, pk)
    form = DisputeForm(request.POST)
    if form.is_valid():
        try:
            services.dispute_raise(
                notice=notice,
                user=request.user,
                reason=form.cleaned_data["reason"],
                text=form.cleaned_data["text"],
                removed_at=form.cleaned_data["removed_at"],
                now=timezone.now(),
                request=request,
            )
        except ValidationError as exc:
            for field, errors in exc.message_dict.items():
                form.add_error(field if field in form.fields else None, errors)
        except services.ResponseError as exc:
            form.add_error(None, exc.message)
        else:
            messages.success(request, _("Your dispute of notice %(id)s is with the analysts.") % {"id": notice.pk})
            return redirect("portal:notice", pk=notice.pk)
    return _render_notice(request, notice, dispute_form=form, status=400)


def _next(request, notice) -> str:
    """Back to the list or the notice page, whichever the button was on (never an outside URL)."""
    return (
        reverse("portal:index") if request.POST.get("next") == "index" else reverse("portal:notice", args=[notice.pk])
    )
