from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.http import HttpResponsePermanentRedirect
from django.urls import include, path, register_converter
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from compliance import views


class MovedEvidenceConverter:
    regex = "check|attribution|rdaprecord"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(MovedEvidenceConverter, "moved_evidence")


@admin.site.admin_view
def _moved_evidence(request, model: str, rest: str = ""):
    query = f"?{request.META['QUERY_STRING']}" if request.META.get("QUERY_STRING") else ""
    return HttpResponsePermanentRedirect(f"/admin/compliance/{model}/{rest}{query}")


urlpatterns = [
    path("", views.home, name="home"),
    path("i18n/", include("django.conf.urls.i18n")),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/two-factor/", views.two_factor, name="two-factor"),
    path("accounts/two-factor/setup/", views.two_factor_setup, name="two-factor-setup"),
    path("accounts/two-factor/recovery-codes/", views.two_factor_recovery, name="two-factor-recovery"),
    path("accounts/two-factor/disable/", views.two_factor_disable, name="two-factor-disable"),
    # Checks, attributions and RDAP records moved from the monitor app to compliance: their old admin
    # addresses (bookmarks, links in notes) lead to the new ones, for analysts.
    path("admin/monitor/<moved_evidence:model>/", _moved_evidence),
    path("admin/monitor/<moved_evidence:model>/<path:rest>", _moved_evidence),
    path("admin/", admin.site.urls),
    path("portal/", include("compliance.portal.urls")),
    path("monitor/", include("monitor.urls")),
    path("api/v1/portal/", include("compliance.portal.api_urls")),
    path("api/v1/", include("compliance.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves Swagger UI's own script as a file: no inline script (CSP).
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="api-docs"),
    path("", include("reports.urls")),
]

# A path no pattern matches under /api/ answers JSON like the API's other 404s (compliance/views.py).
handler404 = "compliance.views.not_found"
