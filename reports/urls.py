"""Scorecards, methodology, the research API and exports (reports app)."""

from __future__ import annotations

from django.urls import path

from reports import apis, views

app_name = "reports"

urlpatterns = [
    path("scorecards/", views.league_table, name="league-table"),
    path("scorecards/assets/plotly-<str:version>.min.js", views.plotly_js, name="plotly-js"),
    path("scorecards/notices/<int:pk>/", views.notice_evidence, name="notice"),
    path("scorecards/<slug:slug>/", views.scorecard, name="scorecard"),
    path("scorecards/<slug:slug>/notices/", views.notices, name="notices"),
    path("below-the-bar/", views.below_the_bar, name="below-the-bar"),
    path("methodology/", views.methodology, name="methodology"),
    path("api/v1/metrics/hosters/", apis.HosterMetricsView.as_view(), name="metrics-hosters"),
    path("api/v1/export/notices.csv", apis.export_view("csv"), name="export-csv"),
    path("api/v1/export/notices.jsonl", apis.export_view("jsonl"), name="export-jsonl"),
    path("api/v1/export/notices.parquet", apis.export_view("parquet"), name="export-parquet"),
]
