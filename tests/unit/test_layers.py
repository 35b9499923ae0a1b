"""CI runs the import contracts (pyproject.toml [tool.importlinter]) and mypy over sockscope/
(pyproject.toml [tool.mypy]) as part of the test suite: layering and types cannot drift."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _tool(name: str) -> str:
    # The venv's own tool when run from it, else whatever is on PATH.
    beside = Path(sys.executable).with_name(name)
    found = str(beside) if beside.exists() else shutil.which(name)
    assert found, f"{name} is missing: pip install -e '.[test]' installs it"
    return found


def test_import_contracts() -> None:
    r = subprocess.run([_tool("lint-imports"), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    assert "0 broken" in r.stdout


def test_mypy_is_clean(tmp_path: Path) -> None:
    # The tree's own cache when it may write there; a private one otherwise (a read-only
    # checkout, or a contributor's run as another user).
    cache = str(ROOT / ".mypy_cache") if os.access(ROOT, os.W_OK) else str(tmp_path / "mypy_cache")
    env = dict(os.environ, MYPY_CACHE_DIR=os.environ.get("MYPY_CACHE_DIR", cache))
    r = subprocess.run([_tool("mypy")], cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
