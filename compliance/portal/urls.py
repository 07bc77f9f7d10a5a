"""/portal/: the hosters' pages (mounted in config/urls.py)."""

from __future__ import annotations

from django.urls import path

from compliance.portal import views

app_name = "portal"

urlpatterns = [
    path("", views.index, name="index"),
    path("closed/", views.closed, name="closed"),
    path("disputes/", views.disputes, name="disputes"),
    path("notices/<int:pk>/", views.notice_detail, name="notice"),
    path("notices/<int:pk>/acknowledge/", views.notice_acknowledge, name="acknowledge"),
    path("notices/<int:pk>/removed/", views.notice_removed, name="removed"),
    path("notices/<int:pk>/dispute/", views.notice_dispute, name="dispute"),
]
