"""API routes of the compliance app: notices and hosters."""

from __future__ import annotations

from django.urls import path
from rest_framework.routers import DefaultRouter

from compliance import apis

router = DefaultRouter()
router.register("notices", apis.NoticeViewSet, basename="notice")
router.register("hosters", apis.HosterViewSet, basename="hoster")

urlpatterns = [
    # An analyst sets a notice's origin hoster / CDN with a reason.
    path("notices/<int:pk>/attribution/", apis.AttributionOverrideView.as_view(), name="notice-attribution"),
    *router.urls,
]
