"""Docs and comments name files that exist: a path like `monitor/check_drain.py` in README.md,
docs/*.md or a module's comments is checked against the repository, so a rename that forgets the
docs fails here instead of misleading the next reader.

A path counts when it starts at one of the repository's top-level directories (`compliance/`,
`monitor/`, `docs/`, ...); paths on a server (`/etc/...`), URLs and glob patterns are not files
of this repository. A template name (`reports/scorecard.html`) counts as found when some app's
`templates/` holds it. (Markdown links between the docs: tests/e2e/test_demo_docs.py.)
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TOP_DIRS = sorted(
    p.name
    for p in ROOT.iterdir()
    if p.is_dir() and (not p.name.startswith(".") or p.name == ".ci") and p.name != "__pycache__"
)
# A path starting at a top-level directory, not preceded by a character that would make it part
# of a longer path or URL (`/srv/monitor/app`, `https://host/docs/x`).
PATH = re.compile(r"(?<![\w./:-])((?:" + "|".join(map(re.escape, TOP_DIRS)) + r")/[\w./-]*\w)")
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SKIP_DIRS = {".venv", ".git", "node_modules", "__pycache__", ".hypothesis", ".ruff_cache"}


def _python_files() -> list[Path]:
    return sorted(p for p in ROOT.rglob("*.py") if not SKIP_DIRS & set(p.relative_to(ROOT).parts))


def _exists(path: str) -> bool:
    if (ROOT / path).exists():
        return True
    return any((templates / path).exists() for templates in ROOT.glob("**/templates") if ".venv" not in templates.parts)


def _missing_paths(text: str) -> list[str]:
    return sorted({m for m in PATH.findall(text) if not _exists(m)})


def test_the_pattern_finds_paths_and_leaves_server_paths_and_urls_alone():
    text = (
        "see `monitor/check_drain.py`, (compliance/rules.py) and docs/probes.md.\n"
        "not /srv/monitor/app, https://example.org/docs/x.md, ../monitor/x.py or my-monitor/x.py"
    )
    assert PATH.findall(text) == ["monitor/check_drain.py", "compliance/rules.py", "docs/probes.md"]
    stale = "monitor/" + "recheck.py"  # spelt in two parts, or the last test would find it here
    assert _missing_paths(f"the old {stale} and monitor/check_drain.py") == [stale]
    assert _missing_paths("a template: reports/scorecard.html") == []


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_path_a_doc_names_exists(doc):
    assert _missing_paths(doc.read_text(encoding="utf-8")) == []


def test_every_python_path_a_comment_or_docstring_names_exists():
    missing = {}
    for source in _python_files():
        found = [p for p in _missing_paths(source.read_text(encoding="utf-8")) if p.endswith(".py")]
        if found:
            missing[str(source.relative_to(ROOT))] = found
    assert missing == {}
