"""The layers inside reports (pyproject.toml, the "reports: ..." contract): pages, API, template
tags and commands on top, the figures below them, periods and statistics at the bottom; the old
loop between charts, template tags and views cannot come back."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINT = str(Path(sys.executable).parent / "lint-imports")


def _copy(tmp_path: Path) -> Path:
    for name in ("config", "compliance", "monitor", "reports", "demo"):
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def _lint(cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([LINT, "--no-cache"], cwd=cwd, capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"})


def test_the_template_tags_may_not_import_the_views_even_inside_a_function(tmp_path):
    root = _copy(tmp_path)
    with open(root / "reports" / "templatetags" / "reports_tags.py", "a") as f:
        f.write("\n\ndef _url():\n    from reports.views import league_table  # noqa: F401\n")
    result = _lint(root)
    assert result.returncode == 1
    assert "reports.templatetags.reports_tags -> reports.views" in result.stdout


def test_the_charts_may_not_import_the_template_tags(tmp_path):
    root = _copy(tmp_path)
    with open(root / "reports" / "charts.py", "a") as f:
        f.write("\n\nfrom reports.templatetags import reports_tags  # noqa: E402, F401\n")
    result = _lint(root)
    assert result.returncode == 1
    assert "reports.charts -> reports.templatetags.reports_tags" in result.stdout
