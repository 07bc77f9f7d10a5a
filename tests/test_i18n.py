"""English and Dutch: the Dutch catalog is complete, compiled and current, and every page, as
every role, reads in Dutch without English left over; dates, numbers and Europe/Amsterdam follow.

The catalog checks parse locale/nl/LC_MESSAGES/django.po in Python (no gettext needed); the check
that the catalog covers the source runs `makemessages` on a copy of the source when GNU gettext is
installed (it is on the development and CI machines)."""

from __future__ import annotations

import ast
import gettext
import re
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.test import Client
from django.utils.formats import date_format
from django.utils.text import capfirst
from django.utils.timezone import localtime
from django.utils.translation import override

ROOT = Path(settings.BASE_DIR)
PO = ROOT / "locale" / "nl" / "LC_MESSAGES" / "django.po"
MO = PO.with_suffix(".mo")
PLACEHOLDER = re.compile(r"%\(\w+\)[sdif]|%%|%[sdif]")
PASSWORD = "correct-horse-battery-staple-42"


def parse_po(path: Path) -> list[dict]:
    """Entries of a .po file: {"msgid", "msgid_plural"?, "msgstr" or "msgstr[n]", "flags"}."""
    entries = []
    for block in path.read_text(encoding="utf-8").strip().split("\n\n"):
        entry: dict = {"flags": ""}
        key = None
        for line in block.splitlines():
            if line.startswith("#,"):
                entry["flags"] += line[2:]
            elif line.startswith("#"):
                continue
            elif line.startswith('"'):
                entry[key] += ast.literal_eval(line)
            else:
                key, _sep, rest = line.partition(" ")
                entry[key] = ast.literal_eval(rest)
        if entry.get("msgid"):
            entries.append(entry)
    return entries


def _translations(entry: dict) -> list[str]:
    return [v for k, v in entry.items() if k.startswith("msgstr")]


@pytest.fixture(scope="module")
def catalog() -> list[dict]:
    return parse_po(PO)


# --- The catalog ----------------------------------------------------------------------------------


def test_every_dutch_message_is_translated_and_none_is_fuzzy(catalog):
    assert len(catalog) > 300
    untranslated = [e["msgid"] for e in catalog if not all(_translations(e)) or not _translations(e)]
    fuzzy = [e["msgid"] for e in catalog if "fuzzy" in e["flags"]]
    assert untranslated == []
    assert fuzzy == []


def test_translations_keep_every_placeholder(catalog):
    wrong = []
    for e in catalog:
        for source, target in [(e["msgid"], e.get("msgstr"))] + [
            (e.get("msgid_plural", e["msgid"]), e[k]) for k in e if k.startswith("msgstr[")
        ]:
            if target is not None and sorted(PLACEHOLDER.findall(source)) != sorted(PLACEHOLDER.findall(target)):
                wrong.append((source, target))
    assert wrong == []


def test_the_committed_mo_is_the_compiled_po(catalog):
    """A fresh machine without gettext uses the committed .mo: it must match the .po."""
    with open(MO, "rb") as f:
        compiled = gettext.GNUTranslations(f)._catalog
    for e in catalog:
        if "msgid_plural" in e:
            assert compiled[(e["msgid"], 0)] == e["msgstr[0]"]
            assert compiled[(e["msgid"], 1)] == e["msgstr[1]"]
        else:
            assert compiled[e["msgid"]] == e["msgstr"], e["msgid"]


@pytest.mark.skipif(shutil.which("xgettext") is None, reason="GNU gettext (xgettext) is not installed")
def test_the_catalog_holds_every_message_of_the_source(tmp_path, catalog):
    """`makemessages` on a copy of the source finds no message the committed catalog lacks."""
    for name in ("compliance", "monitor", "reports", "config", "templates", "manage.py"):
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy(source, tmp_path / name)
    (tmp_path / "locale").mkdir()
    subprocess.run(
        [sys.executable, "manage.py", "makemessages", "-l", "nl", "--no-location"],
        cwd=tmp_path,
        check=True,
        capture_output=True,
        env={"PATH": "/usr/bin:/bin", "DEBUG": "on", "DJANGO_SETTINGS_MODULE": "config.settings"},
    )
    found = {(e["msgid"], e.get("msgid_plural")) for e in parse_po(tmp_path / "locale/nl/LC_MESSAGES/django.po")}
    committed = {(e["msgid"], e.get("msgid_plural")) for e in catalog}
    assert found - committed == set(), "run `manage.py makemessages -l nl`, translate, compilemessages"


# --- The pages ------------------------------------------------------------------------------------


class _Text(HTMLParser):
    """Visible text of a page: text nodes outside script/style, and the attributes people read."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style"):
            self._skip += 1
        attrs = dict(attrs)
        for name in ("title", "aria-label", "placeholder", "alt"):
            if attrs.get(name):
                self.parts.append(attrs[name])
        if tag in ("input", "button") and attrs.get("type") in ("submit", "button") and attrs.get("value"):
            self.parts.append(attrs["value"])

    def handle_endtag(self, tag):
        if tag in ("script", "style"):
            self._skip -= 1

    def handle_data(self, data):
        if not self._skip and data.strip():
            self.parts.append(data.strip())


def visible_text(html: str) -> str:
    parser = _Text()
    parser.feed(html)
    return "\n".join(parser.parts)


def text_nodes(html: str) -> set[str]:
    parser = _Text()
    parser.feed(html)
    return set(parser.parts)


def english_words(catalog: list[dict]) -> set[str]:
    """Single-word messages whose Dutch differs ("removed", "pending", "late"): an untranslated
    value shows up as a text node that is exactly the English word."""
    return {
        e["msgid"]
        for e in catalog
        if " " not in e["msgid"] and len(e["msgid"]) >= 4 and e.get("msgstr") and e["msgstr"] != e["msgid"]
    } - LANGUAGE_NAMES


# An ISO 8601 date in a page's visible text: a date not formatted for the reader's language.
ISO_DATE = re.compile(r"(?<![\w/.-])\d{4}-\d{2}-\d{2}(?![\w/.-])")

# The language switch names each language in its own language ("English", "Nederlands").
LANGUAGE_NAMES = {"English", "Dutch"}


def english_probes(catalog: list[dict]) -> dict[str, re.Pattern]:
    """For every message whose Dutch differs from its English: the longest literal piece of the
    English (between placeholders), as a whole-word pattern. Short pieces that could be Dutch
    too, or part of a name, are left out."""
    probes = {}
    for e in catalog:
        for source, target in [(e["msgid"], e.get("msgstr"))] + (
            [(e["msgid_plural"], e.get("msgstr[1]"))] if "msgid_plural" in e else []
        ):
            if not target or source == target:
                continue
            piece = max((p.strip(" .,:;·()") for p in PLACEHOLDER.split(source)), key=len)
            if len(piece) < 4 or (len(piece) < 8 and " " not in piece) or piece in target:
                continue
            probes[source] = re.compile(r"(?<![\w/.-])" + re.escape(piece) + r"(?![\w/.-])")
    return probes


@pytest.fixture
def demo_data(db):
    """The sandbox market with a month of back-filled history, live-like open notices, users of
    every role, an acknowledged notice and a dispute: pages with something on them."""
    import io

    from compliance import services
    from compliance.models import Dispute, Notice
    from demo.sandbox import history

    call_command("load_hosters", str(ROOT / "demo" / "data" / "hosters.csv"), stdout=io.StringIO())
    now = datetime.now(UTC)
    history.load(history.generate(now=now, months=2, per_month=40, http_port=8080, seed=11), now=now)
    users = {}
    for username, role, hoster in (
        ("ana", "analyst", None),
        ("min", "ministry", None),
        ("res", "researcher", None),
        ("host", "hoster", "slowpoke"),
    ):
        users[role] = services.user_upsert(username=username, role=role, hoster_slug=hoster, password=PASSWORD)[0]
    slowpoke = Notice.objects.filter(hoster__slug="slowpoke").order_by("-notified_at")
    notice = slowpoke.filter(status__in=Notice.OPEN_STATUSES).first()
    if notice is None:  # the history follows the clock: at some hours all of slowpoke's are gone
        notice = slowpoke.first()
        notice.status, notice.takedown_at, notice.removal_mechanism = "online", None, ""
    notice.acknowledged_at = now - timedelta(minutes=5)
    notice.save(update_fields=["acknowledged_at", "status", "takedown_at", "removal_mechanism"])
    Dispute.objects.create(
        notice=notice, hoster=notice.hoster, reason="not_our_customer", text="moved away", created_at=now
    )
    return {"users": users, "notice": notice}


def _pages(data) -> dict[str, list[str]]:
    notice = data["notice"]
    scorecards = [
        "/scorecards/",
        "/scorecards/slowpoke/",
        "/scorecards/slowpoke/notices/?figure=late",
        f"/scorecards/notices/{notice.pk}/",
        "/methodology/",
    ]
    return {
        "analyst": ["/", *scorecards, "/below-the-bar/", "/monitor/health/"],
        "ministry": ["/", *scorecards, "/below-the-bar/"],
        "researcher": ["/", *scorecards],
        "hoster": [
            "/",
            "/portal/",
            "/portal/closed/",
            "/portal/disputes/",
            f"/portal/notices/{notice.pk}/",
            "/scorecards/slowpoke/",
            "/methodology/",
        ],
    }


def _get(client: Client, path: str, language: str) -> str:
    response = client.get(path, HTTP_ACCEPT_LANGUAGE=language, follow=True)
    assert response.status_code == 200, (path, response.status_code)
    return response.content.decode()


@pytest.mark.django_db
def test_every_page_reads_in_dutch_for_every_role(demo_data, catalog):
    probes = english_probes(catalog)
    words = english_words(catalog)
    assert len(probes) > 200 and {"removed", "pending", "late", "within"} <= words
    leftovers = {}
    for role, paths in _pages(demo_data).items():
        client = Client()
        client.force_login(demo_data["users"][role])
        for path in paths:
            html = _get(client, path, "nl")
            assert '<html lang="nl">' in html, path
            text = visible_text(html)
            found = sorted(source for source, probe in probes.items() if probe.search(text))
            found += sorted(text_nodes(html) & words)
            found += ISO_DATE.findall(text)  # dates read as Dutch dates; ISO stays in data only
            if found:
                leftovers[f"{role} {path}"] = found
    anonymous = visible_text(_get(Client(), "/accounts/login/", "nl"))
    found = sorted(source for source, probe in probes.items() if probe.search(anonymous))
    if found:
        leftovers["anonymous /accounts/login/"] = found
    assert leftovers == {}


@pytest.mark.django_db
def test_the_same_pages_in_english_are_caught_by_the_probes(demo_data, catalog):
    """The check above can fail: in English the probes find the page's messages."""
    probes = english_probes(catalog)
    client = Client()
    client.force_login(demo_data["users"]["hoster"])
    text = visible_text(_get(client, "/portal/", "en"))
    assert {"Open notices", "Latest checks", "API for abuse desks"} <= {s for s, p in probes.items() if p.search(text)}
    assert "Respond" in text_nodes(_get(client, "/portal/", "en")) & english_words(catalog)


@pytest.mark.django_db
def test_dutch_pages_format_numbers_and_dates_the_dutch_way(demo_data):
    client = Client()
    client.force_login(demo_data["users"]["ministry"])
    text = visible_text(_get(client, "/scorecards/", "nl"))
    assert re.search(r"\b\d{1,3},\d%", text)  # 98,9%
    assert not re.search(r"\b\d{1,3}\.\d%", text)
    assert re.search(r"\b\d+,\d u\b", text)  # 2,1 u (hours)
    assert "Europe/Amsterdam" in text
    assert re.search(r"cijfers van \d{1,2}-\d{1,2}-\d{4} \d{2}:\d{2}\b", text)  # 22-11-2026 14:24
    months = "januari|februari|maart|april|mei|juni|juli|augustus|september|oktober|november|december"
    assert re.search(rf"\b({months}) \d{{4}}\b", text)  # national totals per month: november 2026
    assert not re.search(r"(?<![\w/=.-])\d{4}-\d{2}(?![\w/.-])", text)  # no month keys (2026-11) in the text
    month = visible_text(_get(client, "/scorecards/?period=2026-03", "nl"))
    assert "maart 2026 · meldingen naar tijdstip van melden" in month
    english = visible_text(_get(client, "/scorecards/", "en"))
    assert re.search(r"\b\d{1,3}\.\d%", english) and re.search(r"\b\d+\.\d h\b", english)
    assert re.search(r"figures as of \d{1,2} [A-Z][a-z]{2} \d{4}, \d{2}:\d{2}\b", english)  # 22 Nov 2026, 14:24
    notice = demo_data["notice"]
    dutch_notice = visible_text(_get(client, f"/scorecards/notices/{notice.pk}/", "nl"))
    with override("nl"):
        assert date_format(localtime(notice.notified_at), "j F Y H:i:s") in dutch_notice  # 6 oktober 2026 07:24:14
    assert not ISO_DATE.search(dutch_notice + english)


def test_the_language_switch_offers_english_and_dutch(client):
    html = client.get("/accounts/login/", HTTP_ACCEPT_LANGUAGE="nl").content.decode()
    assert 'action="/i18n/setlang/"' in html
    assert 'value="nl"' in html and "Nederlands" in html and 'value="en"' in html
    response = client.post("/i18n/setlang/", {"language": "nl", "next": "/accounts/login/"}, follow=True)
    assert "Aanmelden" in response.content.decode()


@pytest.mark.django_db
@pytest.mark.parametrize("kind", ["notice", "reminder", "repeat"])
def test_notice_emails_are_sent_in_dutch_when_the_deployment_speaks_dutch(settings, prompt_hoster, catalog, kind):
    from compliance.models import Notice, NoticeEmail
    from compliance.notifications import build_message

    now = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
    notice = Notice.objects.create(
        url="http://files.prompt-hosting.test/img/1.jpg",
        scheme="http",
        host="files.prompt-hosting.test",
        path="/img/1.jpg",
        received_at=now,
        notified_at=now,
        deadline_s=86400,
        hoster=prompt_hoster,
        status="online",
        last_online_at=now + timedelta(hours=25),
    )
    row = NoticeEmail.objects.create(notice=notice, kind=kind, seq=1 if kind == "repeat" else 0, created_at=now)
    probes, words = english_probes(catalog), english_words(catalog)

    settings.LANGUAGE_CODE = "en"
    english = build_message(row, notice)
    assert [s for s, p in probes.items() if p.search(english.subject + "\n" + english.body)]  # the probes bite

    settings.LANGUAGE_CODE = "nl"
    dutch = build_message(row, notice)
    text = dutch.subject + "\n" + dutch.body
    assert [s for s, p in probes.items() if p.search(text)] == []
    assert set(re.findall(r"[A-Za-z]+", re.sub(r"https?://\S+", "", text))) & words == set()
    assert ("Verwijderverzoek" in dutch.subject) or ("verwijderverzoek" in dutch.subject)


def test_language_code_is_english_or_dutch_only(monkeypatch):
    monkeypatch.setenv("LANGUAGE_CODE", "de")
    result = subprocess.run(
        [sys.executable, "-c", "import config.settings"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "LANGUAGE_CODE": "de", "DEBUG": "on"},
    )
    assert result.returncode != 0 and "LANGUAGE_CODE must be one of en, nl" in result.stderr


# --- The admin (the analysts' workbench) ----------------------------------------------------------


@pytest.fixture
def admin_notice(prompt_hoster):
    """A taken-down notice with a check and an attribution: every inline of the change form filled."""
    from compliance.models import Notice
    from monitor.models import Attribution, Check

    notified = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)  # 10:30 in Amsterdam (CET)
    notice = Notice.objects.create(
        url="http://files.prompt-hosting.test/img/1.jpg",
        scheme="http",
        host="files.prompt-hosting.test",
        path="/img/1.jpg",
        received_at=notified,
        notified_at=notified,
        deadline_s=86400,
        hoster=prompt_hoster,
        hoster_source="hotline",
        attribution_state="done",
        status="removed",
        last_online_at=notified + timedelta(hours=1),
        takedown_at=notified + timedelta(hours=2),
        removal_mechanism="file_gone",
    )
    Check.objects.create(
        notice=notice, checked_at=notified + timedelta(hours=2), outcome="removed", http_status=404, reason="http_404"
    )
    Attribution.objects.create(notice=notice, created_at=notified, method="hotline", hoster=prompt_hoster)
    return notice


def _labels(model, language: str) -> dict[str, str]:
    with override(language):
        return {f.name: str(capfirst(f.verbose_name)) for f in model._meta.fields}


@pytest.mark.django_db
def test_the_notice_admin_reads_in_dutch_for_an_analyst(analyst, admin_notice, catalog):
    """Column headers, filters, field labels, inline headers and dates of the notice admin follow the
    language (the labels are the models' verbose names); no English label is left."""
    from compliance.models import Notice
    from monitor.models import Check

    client = Client()
    client.force_login(analyst)
    pages = {
        "changelist": _get(client, "/admin/compliance/notice/", "nl"),
        "change": _get(client, f"/admin/compliance/notice/{admin_notice.pk}/change/", "nl"),
        "add": _get(client, "/admin/compliance/notice/add/", "nl"),
        "index": _get(client, "/admin/", "nl"),
    }
    english, dutch = _labels(Notice, "en"), _labels(Notice, "nl")
    nodes = {name: {n.rstrip(":") for n in text_nodes(html)} for name, html in pages.items()}

    # The change list: column headers and filter titles are Dutch.
    headers = {"Hostnaam", "Hoster", "Status", "Gemeld", "Termijn", "Verwijdering", "Achter een CDN", "Bron"}
    assert headers <= nodes["changelist"]
    assert {"Op toewijzing", "Op wijze van verwijdering", "Op achter een CDN"} <= nodes["changelist"]  # filters
    assert "Meldingen" in nodes["changelist"]  # the model's plural
    # The header names the product, not Django.
    assert {"Monitor naleving verwijderverzoeken", "Werkbank van de analisten"} <= nodes["index"]
    assert not any("Django" in node for node in nodes["index"])
    # The change form: every field's label, and the check inline's column headers.
    shown = {name for name in dutch if name != "id"}
    assert {dutch[name] for name in shown} <= nodes["change"]
    assert {_labels(Check, "nl")[name] for name in ("checked_at", "outcome", "http_status")} <= nodes["change"]
    assert f"melding {admin_notice.pk} (files.prompt-hosting.test)" in nodes["change"]  # the notice's name
    # The add form's own fields, and the headers Django's Dutch catalog lacks (ours supplies them).
    assert {"URL", "Gemeld", "Hoster (indien bekend)", "Termijn (seconden)", "Kenmerk", "Bron"} <= nodes["add"]
    assert "Modelnaam" in nodes["index"] and not {"Model name", "Add link"} & nodes["index"]
    # No English label anywhere, and no English message of our catalog.
    translated = {english[name] for name in english if english[name] != dutch[name]}
    assert len(translated) > 30
    probes = english_probes(catalog)
    for name, html in pages.items():
        assert nodes[name] & translated == set(), name
        assert [s for s, p in probes.items() if p.search(visible_text(html))] == [], name
    # Dates in Dutch, in Europe/Amsterdam; the English page has its own format.
    assert "2 maart 2026 10:30:00" in nodes["change"]
    english_page = _get(client, f"/admin/compliance/notice/{admin_notice.pk}/change/", "en")
    assert "Last seen online:" in english_page and "2 Mar 2026, 11:30:00" in english_page


@pytest.mark.django_db
def test_every_admin_change_list_names_its_columns_and_filters_in_dutch(analyst, admin_notice):
    """Every model of the project's apps in the admin: its name and column headers are Dutch, and
    no English verbose name of its fields is left on the page."""
    from django.contrib import admin

    client = Client()
    client.force_login(analyst)
    checked = []
    for model in admin.site._registry:
        if model._meta.app_label not in ("compliance", "monitor", "reports"):
            continue
        opts = model._meta
        html = _get(client, f"/admin/{opts.app_label}/{opts.model_name}/", "nl")
        nodes = {n.rstrip(":") for n in text_nodes(html)}
        english, dutch = _labels(model, "en"), _labels(model, "nl")
        translated = {english[name] for name in english if english[name] != dutch[name]}
        assert nodes & translated == set(), opts.label
        with override("nl"):
            assert capfirst(opts.verbose_name_plural) in nodes, opts.label
        checked.append(opts.label)
    assert len(checked) >= 10


@pytest.mark.django_db
def test_dutch_scorecards_localise_the_size_figure_the_check_reasons_and_the_chart_labels(demo_data):
    client = Client()
    client.force_login(demo_data["users"]["analyst"])
    league = client.get("/scorecards/", HTTP_ACCEPT_LANGUAGE="nl")
    per_10k = [row["cells"][1][1] for row in league.context["table"]]
    assert per_10k and all(re.fullmatch(r"\d+(,\d+)?|–", text) for text in per_10k), per_10k
    assert any("," in text for text in per_10k)  # 54,47 (Dutch), not 54.47
    national = league.context["national_chart"]
    assert not any(re.fullmatch(r"\d{4}-\d{2}", str(x)) for x in national["data"][0]["x"])  # "maart 2026"
    assert national["data"][1]["yaxis"] == "y2"  # the rate line is drawn over the bars, not under them

    scorecard = client.get("/scorecards/slowpoke/", HTTP_ACCEPT_LANGUAGE="nl")
    labels = [a["text"] for a in scorecard.context["survival_chart"]["layout"]["annotations"]]
    assert labels and all(label.startswith("termijn ") for label in labels), labels

    notice = demo_data["notice"]
    text = visible_text(_get(client, f"/scorecards/notices/{notice.pk}/", "nl"))
    assert "het item wordt aangeboden" in text  # reason "online" in words
    client.force_login(demo_data["users"]["hoster"])
    portal = visible_text(_get(client, f"/portal/notices/{notice.pk}/", "nl"))
    assert "het item wordt aangeboden" in portal
