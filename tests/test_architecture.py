"""The house rules that keep the code easy to live in: import contracts (no cycles, no Qt in the core, the
CLIs are not an API; see [tool.importlinter] in pyproject.toml) and no module over 600 lines."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("linop_core", "linop_gui", "trainer")
MAX_LINES = 600


def test_import_contracts_hold() -> None:
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.skip("import-linter is not installed (pip install -e '.[dev]')")
    result = subprocess.run([exe, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "Contracts: 4 kept, 0 broken" in result.stdout, result.stdout[-2000:]


def test_no_module_is_over_600_lines() -> None:
    sizes = {path.relative_to(ROOT).as_posix(): len(path.read_text(encoding="utf-8").splitlines())
             for package in PACKAGES for path in (ROOT / package).rglob("*.py")}
    assert sizes, "no modules found"
    too_big = {name: n for name, n in sizes.items() if n > MAX_LINES}
    assert not too_big, f"split these by job: {too_big}"
