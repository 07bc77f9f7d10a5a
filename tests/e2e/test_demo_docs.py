"""The README stays true: two set-up commands, every setting in its configuration table, and
every link in it and in docs/ leads to a file that exists."""

from __future__ import annotations

import re
from pathlib import Path

from django.conf import settings

ROOT = Path(settings.BASE_DIR)
README = ROOT / "README.md"
LINK = re.compile(r"\]\(([^)#\s]+)(#[^)]*)?\)")


def test_the_readme_gives_exactly_two_set_up_commands():
    text = README.read_text()
    block = text.split("## Two commands", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    commands = [line.split("#")[0].strip() for line in block.strip().splitlines()]
    assert commands == ["make demo", "make test"]


def test_every_setting_read_from_the_environment_is_in_the_readme_table():
    source = (ROOT / "config" / "settings.py").read_text()
    names = set(
        re.findall(
            r'env(?:_bool|_int|_float|_list|_networks|_nameservers|\.str|\.db_url|\.email_url)\("([A-Z_]+)"', source
        )
    )
    table = README.read_text().split("## Configuration", 1)[1]
    documented = set(re.findall(r"^\| `([A-Z_]+)`", table, re.MULTILINE)) | set(re.findall(r"`([A-Z_]+)`", table))
    assert len(names) > 30
    assert sorted(names - documented) == []


def test_every_local_link_of_the_readme_and_the_docs_exists():
    broken = []
    for doc in [README, *sorted((ROOT / "docs").glob("*.md"))]:
        for target, _anchor in LINK.findall(doc.read_text()):
            if re.match(r"[a-z]+:", target):
                continue  # http(s), mailto: not ours to check offline
            if not (doc.parent / target).resolve().exists():
                broken.append(f"{doc.relative_to(ROOT)} -> {target}")
    assert broken == []


def test_the_docs_index_and_the_role_guides_are_linked_from_the_readme():
    text = README.read_text()
    for name in ("index", "demo", "api", "operations", "methodology", "guide-analyst", "guide-ministry",
                 "guide-researcher", "guide-hoster"):  # fmt: skip
        assert f"(docs/{name}.md" in text, name
