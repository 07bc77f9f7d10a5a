"""The layers of the house (README "Development"): an import contract (pyproject.toml
[tool.importlinter]) run by `make lint` and CI. It holds on the code as it is, and it catches a
back-arrow, even one inside a function."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINT = str(Path(sys.executable).parent / "lint-imports")
PACKAGES = ("config", "compliance", "monitor", "reports", "demo")


def _copy(tmp_path: Path) -> Path:
    for name in PACKAGES:
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def _lint(cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([LINT, "--no-cache"], cwd=cwd, capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"})


def test_the_layers_hold(tmp_path):
    result = _lint(_copy(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_back_arrow_inside_a_function_breaks_the_contract(tmp_path):
    root = _copy(tmp_path)
    with open(root / "compliance" / "rules.py", "a") as f:
        f.write("\n\ndef _sneaky():\n    from monitor import schedule  # noqa: F401\n")
    result = _lint(root)
    assert result.returncode == 1
    assert "compliance.rules -> monitor.schedule" in result.stdout
