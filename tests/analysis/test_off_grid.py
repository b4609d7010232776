"""Off-grid replicates: records whose (training seed, split seed) is not a pair of grid.replicates
are named in a warning and left out of the summary, unless told (aggregate.load_records, the
`aggregate` and `report` commands)."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import pytest
from fixtures import make_sample_records as samples

from thtl_bench.analysis import aggregate
from thtl_bench.cli import main
from thtl_bench.errors import UserError

DATA = Path(samples.__file__).resolve().parent
DESIGN = [[0, 0], [1, 1], [2, 2]]


@pytest.fixture
def folder(tmp_path) -> Path:
    """The fixture records plus one off-grid replicate: efficientnet_lite0 onestep_last at seed 1
    on split 0 (what `thtl-bench run --seed 1` without --split used to write)."""
    out = tmp_path / "records"
    shutil.copytree(DATA / "records", out)
    rec = json.loads((out / "efficientnet_lite0__onestep_last__s1__k1.json").read_text())
    rec["case"]["split"] = 0
    rec["slug"] = "efficientnet_lite0__onestep_last__s1__k0"
    (out / f"{rec['slug']}.json").write_text(json.dumps(rec))
    return out


def test_off_grid_replicates_are_named_and_left_out(folder):
    cfg = {"grid": {"replicates": DESIGN}}
    said = []
    recs = aggregate.load_records([folder], cfg, warn=said.append)
    assert len(said) == 1 and "1 record(s) of replicates outside grid.replicates (0/0, 1/1, 2/2)" in said[0]
    assert "efficientnet_lite0__onestep_last__s1__k0" in said[0] and "--include-off-grid" in said[0]
    assert "efficientnet_lite0__onestep_last__s1__k0" not in {r["slug"] for r in recs}
    everything = aggregate.load_records([folder], cfg, include_off_grid=True, warn=said.append)
    assert len(everything) == len(recs) + 1 and "counted" in said[-1]
    said.clear()
    assert aggregate.load_records([DATA / "records"], cfg, warn=said.append) and said == []  # on the grid: silent
    assert aggregate.off_grid(everything, {"stats": {}}) == []  # no design to hold records to
    with pytest.raises(UserError, match="not found"):
        aggregate.load_records([folder / "nope"], cfg)


def test_the_aggregate_command_leaves_them_out_of_the_summary(folder, tmp_path, capsys):
    cfg = copy.deepcopy(samples.GOLDEN_CFG)
    cfg["stats"].update(bootstrap=50)
    cfg["report"].update(dir=str(tmp_path / "report"), path=str(tmp_path / "REPORT.md"), speed_change=0.2)
    cfg["grid"] = {"records_dir": str(folder), "replicates": DESIGN}
    cfg["profiles"] = {"t": {}}
    params = tmp_path / "params.yaml"
    params.write_text(json.dumps(cfg))  # JSON is YAML
    base = ["aggregate", "--params", str(params), "--profile", "t"]

    def cell_n(argv: list[str]) -> int:
        assert main(argv) == 0
        summ = aggregate.load_summary(tmp_path / "report" / "summary.json")
        return next(c for c in summ["cells"] if (c["model"], c["arm"]) == ("efficientnet_lite0", "onestep_last"))["n"]

    assert cell_n(base) == 3
    assert "outside grid.replicates" in capsys.readouterr().err
    assert cell_n([*base, "--include-off-grid"]) == 4  # the extra run counted as a fourth replicate


def test_the_calibrate_command_leaves_them_out_too(folder, tmp_path, capsys, monkeypatch):
    """calibrate reads the design's records as the summary does (a pilot's replicates beside a
    confirmatory run's are not calibrated on)."""
    from thtl_bench.analysis import calibration

    seen = []
    monkeypatch.setattr(calibration, "run", lambda recs, cfg, **kw: seen.append(recs) or {"schema": "x"})
    monkeypatch.setattr(calibration, "text", lambda cal: "calibrated")
    cfg = copy.deepcopy(samples.GOLDEN_CFG)
    cfg["report"].update(dir=str(tmp_path / "report"), path=str(tmp_path / "REPORT.md"))
    cfg["grid"] = {"records_dir": str(folder), "replicates": DESIGN}
    cfg["profiles"] = {"t": {}}
    params = tmp_path / "params.yaml"
    params.write_text(json.dumps(cfg))
    (tmp_path / "report").mkdir()
    assert main(["calibrate", "--params", str(params), "--profile", "t"]) == 0
    slugs = {r["slug"] for r in seen[0]}
    assert "efficientnet_lite0__onestep_last__s1__k0" not in slugs and "efficientnet_lite0__onestep_last__s1__k1" in slugs
    assert "outside grid.replicates" in capsys.readouterr().err
