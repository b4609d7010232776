"""`thtl-bench references`: one entry per (domain, split seed) with the references of that split,
the documented schema, the same file twice, and no ceiling (with a note) on real data."""

from __future__ import annotations

import argparse
import copy
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from thtl_bench import config
from thtl_bench.cli import studies as studies_cli
from thtl_bench.data import references
from thtl_bench.data.cache import load_domain
from thtl_bench.io import json_text

ROOT = Path(__file__).resolve().parents[2]
ENTRY_KEYS = {"domain", "split_seed", "classes", "n_train", "n_test", "test_groups", "confidence", "n_boot",
              "majority_class", "majority", "shortcut", "ceiling", "ceiling_columns", "note"}


def _overrides(tmp: Path) -> list[str]:
    return [f"data.root={tmp}/data", f"data.cache_dir={tmp}/cache", f"data.fundus.root={tmp}/data/fundus",
            f"data.larynx.root={tmp}/data/larynx", f"split.dir={tmp}/splits", f"report.dir={tmp}/report",
            "synth.image_size=32", "data.image_size=16", "synth.fundus.per_grade=[4,4,4,4,4]",
            "synth.larynx.patients={benign: 5, malignant: 5}", "synth.larynx.images_per_patient=[2,2]",
            "grid.replicates=[[0, 0], [1, 1]]", "grid.domains=[fundus]", "stats.bootstrap=40"]


@pytest.fixture(scope="module")
def phantom_cfg(tmp_path_factory):
    from thtl_bench.data import phantoms

    tmp = tmp_path_factory.mktemp("refpoints")
    over = _overrides(tmp)
    cfg = config.load(ROOT / "params.yaml", "smoke", over)
    phantoms.synth(tmp / "data", cfg["synth"], ["larynx", "fundus"])
    return tmp, over, cfg


def test_one_entry_per_domain_and_split_seed_in_the_documented_schema(phantom_cfg):
    _, _, cfg = phantom_cfg
    doc = references.for_config(cfg)
    assert doc["schema"] == references.SCHEMA == "thtl-bench/references/v1"
    assert set(doc) == {"schema", "settings", "data", "entries"}
    assert doc["settings"] == {"n_boot": 40, "bootstrap_seed": 0, "confidence": 0.95, "image_size": 16, "bins": 16}
    assert [(e["domain"], e["split_seed"]) for e in doc["entries"]] == [("larynx", 0), ("larynx", 1),
                                                                      ("fundus", 0), ("fundus", 1)]
    for e in doc["entries"]:
        assert set(e) == ENTRY_KEYS
        assert e["note"] is None and e["ceiling"] is not None
        assert e["ceiling_columns"] == doc["data"][e["domain"]]["ceiling_columns"]
        for point in ("majority", "shortcut", "ceiling"):
            lo, hi = e[point]["accuracy_ci"]
            assert 0.0 <= lo <= hi <= 1.0 and 0.0 <= e[point]["accuracy"] <= 1.0
            assert ("qwk" in e[point]) == (len(e["classes"]) > 2)  # kappa for the 5 fundus grades only
    for d, meta in doc["data"].items():
        assert meta["kind"] == "phantom" and meta["generator"]["generator"] == "thtl-bench synth"
        assert meta["classes"] == cfg["data"][d]["classes"]
    assert "dm" in doc["data"]["larynx"]["ceiling_columns"]
    json.loads(json_text(doc))  # plain JSON, no numpy values left


def test_each_entry_is_the_references_of_its_own_split(phantom_cfg):
    # The plumbing: split seed k means splits/<domain>/k<k>.csv, the generator truth of the same
    # images in the same order, and the stats: bootstrap settings.
    _, _, cfg = phantom_cfg
    doc = references.for_config(cfg)
    seen = set()
    for e in doc["entries"]:
        dt = load_domain(cfg, e["domain"], split_seed=e["split_seed"])
        ind, cols = references.load_indices(dt.root, dt.ids)
        want = references.references(np.asarray(dt.images), dt.labels, dt.groups, dt.split, dt.classes, ind,
                                     seed=0, n_boot=40, confidence=0.95)
        assert {k: e[k] for k in want} == want and e["ceiling_columns"] == cols
        seen.add((e["domain"], tuple(dt.split)))
    assert len(seen) == 4  # split seeds 0 and 1 are different splits of each domain


def test_same_data_and_settings_give_the_same_file_through_the_cli(phantom_cfg, capsys):
    tmp, over, cfg = phantom_cfg
    parser = argparse.ArgumentParser()
    studies_cli.add_cli(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["references", "--params", str(ROOT / "params.yaml"), "--profile", "smoke",
                              *[a for o in over for a in ("-S", o)]])
    out = tmp / "report" / "references.json"
    assert args.func(args) == 0
    first = out.read_bytes()
    assert args.func(args) == 0
    assert out.read_bytes() == first
    assert json.loads(first) == json.loads(json_text(references.for_config(cfg)))
    text = capsys.readouterr().out
    assert "4 entries (domain x split seed)" in text and "references.json" in text


def test_a_changed_bootstrap_setting_changes_the_intervals(phantom_cfg):
    _, _, cfg = phantom_cfg
    other = copy.deepcopy(cfg)
    other["stats"]["bootstrap_seed"] = 1
    a, b = references.for_config(cfg), references.for_config(other)
    assert [e["majority"]["accuracy"] for e in a["entries"]] == [e["majority"]["accuracy"] for e in b["entries"]]
    assert [e["shortcut"]["accuracy_ci"] for e in a["entries"]] != [e["shortcut"]["accuracy_ci"] for e in b["entries"]]


def test_real_layout_without_generator_truth_has_no_ceiling(phantom_cfg, tmp_path):
    # The phantom larynx folder stripped to what a real manifest-layout folder holds: images and
    # manifest.csv, no phantom_stats.json / phantom_indices.csv, no vessel masks.
    src, _, cfg = phantom_cfg
    real = tmp_path / "larynx"
    shutil.copytree(src / "data" / "larynx", real, ignore=shutil.ignore_patterns("phantom_*", "masks"))
    cfg = copy.deepcopy(cfg)
    cfg["data"]["larynx"]["root"] = str(real)
    cfg["data"]["cache_dir"] = str(tmp_path / "cache")
    cfg["split"]["dir"] = str(tmp_path / "splits")
    doc = references.for_config(cfg, domains=["larynx"])
    assert doc["data"]["larynx"]["kind"] == "real" and doc["data"]["larynx"]["ceiling_columns"] is None
    assert doc["data"]["larynx"]["generator"] is None
    assert len(doc["entries"]) == 2
    for e in doc["entries"]:
        assert e["ceiling"] is None and e["ceiling_columns"] is None
        assert "phantom_indices.csv" in e["note"]
        assert 0.0 <= e["majority"]["accuracy"] <= 1.0 and 0.0 <= e["shortcut"]["accuracy"] <= 1.0


def test_phantom_truth_without_its_column_list_is_refused(phantom_cfg, tmp_path):
    # phantom_indices.csv present but phantom_stats.json gone: which columns are the truth is
    # unknown, so the ceiling is refused loudly rather than fitted on every column.
    src, _, cfg = phantom_cfg
    root = tmp_path / "larynx"
    shutil.copytree(src / "data" / "larynx", root, ignore=shutil.ignore_patterns("phantom_stats.json"))
    cfg = copy.deepcopy(cfg)
    cfg["data"]["larynx"]["root"] = str(root)
    cfg["data"]["cache_dir"] = str(tmp_path / "cache")
    cfg["split"]["dir"] = str(tmp_path / "splits")
    with pytest.raises(references.ReferencePointError, match="phantom_stats.json is missing"):
        references.for_config(cfg, domains=["larynx"], split_seeds=[0])
