"""The scorecard pages (reports/views.py): what each role sees, the figures behind them, and the
queries they cost."""

from __future__ import annotations

import csv
import io

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from compliance.models import Notice
from compliance.pseudonym import pseudonymise
from reports.models import Rollup

from .helpers import LEAGUE, page


@pytest.mark.parametrize("role", ["analyst", "ministry", "researcher"])
def test_all_hoster_roles_see_every_hoster_and_the_national_totals(client, market, role, request):
    user = request.getfixturevalue(role)
    body = page(client, user, LEAGUE).content.decode()
    assert "Prompt Hosting" in body and "Slow Hosting" in body
    assert "All notices (national)" in body
    assert 'id="national-chart"' in body


def test_a_hoster_user_sees_a_league_table_of_itself_only(client, market, prompt_user):
    body = page(client, prompt_user, LEAGUE).content.decode()
    assert "Prompt Hosting" in body
    assert "Slow Hosting" not in body and "/scorecards/slow/" not in body
    assert "All notices (national)" not in body and "national-chart" not in body


def test_a_hoster_user_gets_404_for_another_hosters_scorecard_and_its_notices(client, market, prompt_user, slow_hoster):
    page(client, prompt_user, "/scorecards/prompt/")
    page(client, prompt_user, "/scorecards/slow/", 404)
    page(client, prompt_user, "/scorecards/slow/notices/?figure=late", 404)
    slow_notice = Notice.objects.filter(hoster=slow_hoster).first()
    page(client, prompt_user, f"/scorecards/notices/{slow_notice.pk}/", 404)
    page(client, prompt_user, "/below-the-bar/", 404)


def test_anonymous_users_are_sent_to_login_and_role_less_users_refused(client, market):
    for url in (LEAGUE, "/scorecards/prompt/", "/below-the-bar/", "/scorecards/prompt/notices/"):
        response = client.get(url)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    nobody = get_user_model().objects.create_user("nobody", password="x-long-password-1")
    for url in (LEAGUE, "/scorecards/prompt/", "/below-the-bar/"):
        page(client, nobody, url, 403)


def test_the_league_table_ranks_by_rate_and_sorts_by_any_column(client, market, analyst):
    rows = page(client, analyst, LEAGUE).context["rows"]
    assert [(m.hoster, m.rank, m.compliance_rate) for m in rows] == [("prompt", 1, 1.0), ("slow", 2, 0.0)]
    rows = page(client, analyst, LEAGUE + "?sort=rate&dir=asc").context["rows"]
    assert [m.hoster for m in rows] == ["slow", "prompt"]
    rows = page(client, analyst, LEAGUE + "?sort=notices&dir=desc").context["rows"]
    assert [m.hoster for m in rows] == ["prompt", "slow"]


def test_hosters_with_few_notices_are_marked_and_not_ranked(client, market, analyst, settings):
    settings.SCORECARD_MIN_NOTICES = 36  # slow has 35 decided notices
    settings.SCORECARD_ROLLUP_MAX_AGE = 0
    response = page(client, analyst, LEAGUE)
    ranks = {m.hoster: m.rank for m in response.context["rows"]}
    assert ranks == {"prompt": 1, "slow": None}
    assert "few notices" in response.content.decode()


def test_the_league_table_downloads_as_csv_with_methodology(client, market, analyst, settings):
    response = page(client, analyst, LEAGUE + "?format=csv")
    assert response["Content-Type"].startswith("text/csv")
    assert response["X-Methodology-Version"] == settings.METHODOLOGY_VERSION
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert [(r["hoster"], r["rank"], r["within"], r["late"]) for r in rows] == [
        ("prompt", "1", "40", "0"),
        ("slow", "2", "0", "35"),
    ]
    assert rows[0]["methodology_version"] == settings.METHODOLOGY_VERSION


def test_a_bad_period_is_a_clear_400(client, market, analyst):
    response = page(client, analyst, LEAGUE + "?period=last-tuesday", 400)
    assert b"unknown period" in response.content
    response = page(client, analyst, LEAGUE + "?from=2026-13-45", 400)


def test_a_custom_period_is_computed_on_the_spot(client, market, analyst):
    rows = page(client, analyst, LEAGUE + "?from=2000-01-01&to=2000-02-01").context["rows"]
    assert rows == []
    assert not Rollup.objects.filter(key="custom").exists()


def test_the_scorecard_shows_figures_charts_and_the_methodology_link(client, market, analyst):
    response = page(client, analyst, "/scorecards/slow/")
    m = response.context["m"]
    assert (m.notices, m.within, m.late, m.open, m.open_past_deadline) == (35, 0, 35, 5, 5)
    body = response.content.decode()
    for chart in ("survival-chart", "histogram-chart", "monthly-chart", "mechanisms-chart"):
        assert f'id="{chart}"' in body
    assert reverse("reports:methodology") in body
    assert "/scorecards/assets/plotly-" in body


def test_open_notices_past_deadline_with_urls_are_for_analysts_only(client, market, analyst, ministry, researcher):
    overdue_url = Notice.objects.filter(hoster__slug="slow", status="online").first().url
    body = page(client, analyst, "/scorecards/slow/").content.decode()
    assert "Open notices past their deadline" in body and overdue_url in body
    for user in (ministry, researcher):
        body = page(client, user, "/scorecards/slow/").content.decode()
        assert "Open notices past their deadline" not in body
        assert "http://files" not in body


def test_each_figure_links_to_the_notices_behind_it(client, market, ministry):
    m = page(client, ministry, "/scorecards/slow/").context["m"]
    for figure, expected in (("late", m.late), ("past", m.open_past_deadline), ("within", 0), ("notices", m.notices)):
        response = page(client, ministry, f"/scorecards/slow/notices/?figure={figure}")
        assert response.context["page"].paginator.count == expected, figure
    body = response.content.decode()
    assert "http://files" not in body  # ministry users never see notice URLs
    one = Notice.objects.filter(hoster__slug="slow").order_by("notified_at", "id").first()
    assert pseudonymise(one.url) in body
    page(client, ministry, "/scorecards/slow/notices/?figure=nonsense", 404)


def test_a_notice_page_shows_its_checks_and_the_url_only_to_those_who_may(client, market, analyst, ministry, slow_user):
    notice = (
        Notice.objects.filter(hoster__slug="slow", checks__isnull=False, takedown_at__isnull=False).distinct().first()
    )
    assert notice.checks.count() >= 3
    url = f"/scorecards/notices/{notice.pk}/"
    analyst_page = page(client, analyst, url)
    assert notice.url in analyst_page.content.decode()
    assert len(analyst_page.context["checks"]) == notice.checks.count()
    ministry_body = page(client, ministry, url).content.decode()
    assert notice.url not in ministry_body and "404" in ministry_body  # the checks' HTTP statuses are there
    assert notice.url in page(client, slow_user, url).content.decode()


def test_below_the_bar_lists_hosters_under_the_threshold_with_enough_notices(client, market, ministry, settings):
    response = page(client, ministry, "/below-the-bar/")
    assert [m.hoster for m in response.context["rows"]] == ["slow"]
    response = page(client, ministry, "/below-the-bar/?min=36")
    assert response.context["rows"] == []
    response = page(client, ministry, "/below-the-bar/?format=csv")
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert [r["hoster"] for r in rows] == ["slow"] and rows[0]["compliance_rate"] == "0.0"


@pytest.mark.django_db  # the page lists the methodology settings recorded in use
def test_the_methodology_is_public_and_plotly_is_served_locally(client):
    assert client.get("/methodology/").status_code == 200
    import plotly

    response = client.get(f"/scorecards/assets/plotly-{plotly.__version__}.min.js")
    assert response.status_code == 200 and "immutable" in response["Cache-Control"]
    assert b"plotly" in b"".join(response.streaming_content)[:2000].lower()
    assert client.get("/scorecards/assets/plotly-0.0.min.js").status_code == 404


def test_the_pages_cost_a_fixed_number_of_queries(
    client, market, analyst, ministry, django_assert_num_queries, settings
):
    """With fresh rollups (the drain ran a moment ago): session, user, membership (and for analysts
    the second factor's device that verified the session), then the page's own reads, each
    time-dependent read also asking when the drain last ran."""
    settings.SCORECARD_ROLLUP_MAX_AGE = 60
    from reports import rollups

    rollups.drain()
    client.force_login(analyst)
    client.get(LEAGUE)
    client.get("/scorecards/slow/")  # computes the rollups
    # + drain's last pass, the period's rollup and rows; the same for the 12 months' rollups and rows
    with django_assert_num_queries(10):
        assert client.get(LEAGUE).status_code == 200
    with django_assert_num_queries(12):  # + hoster, 2 x (last pass, rollup, rows), overdue notices
        assert client.get("/scorecards/slow/").status_code == 200
    with django_assert_num_queries(7):  # + hoster, count, page of notices
        assert client.get("/scorecards/slow/notices/?figure=late").status_code == 200
    client.force_login(ministry)
    with django_assert_num_queries(6):  # + last pass, rollup, rows
        assert client.get("/below-the-bar/").status_code == 200


def test_pages_work_without_any_notice(client, analyst, cdn, prompt_hoster):
    assert "No notices in this period." in page(client, analyst, LEAGUE).content.decode()
    assert "No notices of this hoster in this period." in page(client, analyst, "/scorecards/prompt/").content.decode()
    assert page(client, analyst, "/below-the-bar/").context["rows"] == []
    assert page(client, analyst, LEAGUE + "?format=csv").content.decode().count("\n") == 1


def test_monthly_rates_in_the_tables_carry_their_95_percent_interval(client, market, analyst):
    import re

    scorecard = page(client, analyst, "/scorecards/slow/").content.decode().split("Per month, last 12 months")[1]
    national = page(client, analyst, LEAGUE).content.decode().split("National totals per month")[1]
    for table in (scorecard, national):
        assert "95% interval" in table
        assert re.search(r'<td class="num">\d+%–\d+%</td>', table)
