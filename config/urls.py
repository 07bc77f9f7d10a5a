from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from compliance import views

urlpatterns = [
    path("", views.home, name="home"),
    path("i18n/", include("django.conf.urls.i18n")),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/two-factor/", views.two_factor, name="two-factor"),
    path("accounts/two-factor/setup/", views.two_factor_setup, name="two-factor-setup"),
    path("accounts/two-factor/recovery-codes/", views.two_factor_recovery, name="two-factor-recovery"),
    path("accounts/two-factor/disable/", views.two_factor_disable, name="two-factor-disable"),
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
