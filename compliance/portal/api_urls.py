"""/api/v1/portal/: the hoster API (mounted in config/urls.py)."""

from __future__ import annotations

from rest_framework.routers import SimpleRouter

from compliance.portal import apis

router = SimpleRouter()
router.register("notices", apis.PortalNoticeViewSet, basename="portal-notice")
router.register("disputes", apis.PortalDisputeViewSet, basename="portal-dispute")

urlpatterns = router.urls
