"""The house rules (pyproject.toml [tool.importlinter]): analysis and report import no torch and
nothing of the running side, nothing imports the CLI, no import cycles; and in a fresh process
the reporting side really loads without torch."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(shutil.which("lint-imports") is None, reason="import-linter not installed")
def test_import_contracts_hold():
    out = subprocess.run(["lint-imports", "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "0 broken" in out.stdout


def test_reporting_side_loads_without_torch():
    code = ("import sys\n"
            "import thtl_bench.analysis.aggregate, thtl_bench.analysis.compare, thtl_bench.report, thtl_bench.cli\n"
            "from thtl_bench.cli import build_parser\n"
            "build_parser()\n"
            "bad = sorted(m for m in ('torch', 'torchvision', 'timm', 'thtl_bench.engine', 'thtl_bench.models',"
            " 'thtl_bench.data') if m in sys.modules)\n"
            "print(bad)\n"
            "sys.exit(1 if bad else 0)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr


def test_the_cli_is_imported_by_nothing_in_the_package():
    # A text check beside import-linter's graph: lazy imports inside functions count too.
    offenders = [str(p.relative_to(ROOT)) for p in (ROOT / "thtl_bench").rglob("*.py")
                 if "cli" not in p.relative_to(ROOT / "thtl_bench").parts
                 and "thtl_bench.cli" in p.read_text()]
    assert not offenders, offenders
