"""dvc.yaml agrees with the code: params keys, CLI calls, paths that follow the profile, flags,
the DAG, and the top-level plots (each plot-data file declared with axes its CSV has, rendered
by `dvc plots show`). Fast: no training, no network."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from thtl_bench import config
from thtl_bench.cli import build_parser
from thtl_bench.report import plots as plots_mod

ROOT = Path(__file__).resolve().parents[2]
RAW_PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())
PROFILES = sorted(RAW_PARAMS["profiles"])
DVC = yaml.safe_load((ROOT / "dvc.yaml").read_text())
STAGES = DVC["stages"]
VARS = {k: v for d in DVC.get("vars", []) for k, v in d.items()}
PINNED = {"report.dir", "report.path"}  # the only -S a stage may pass (dvc.yaml header)


@pytest.fixture(scope="module")
def sample_summary() -> dict:
    from fixtures import make_sample_records as samples

    return samples.golden_outputs()[0]


def _dvc() -> str:
    path = shutil.which("dvc") or shutil.which("dvc", path=str(Path(sys.executable).parent))
    assert path, "dvc is not installed: pip install -r requirements/dev.txt"
    return path


def _has(tree: dict, dotted: str) -> bool:
    node = tree
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def _render(text: str, profile: str) -> str:
    """DVC's ${...} interpolation as our dvc.yaml uses it: `profile` and dvc.yaml's vars only."""
    def sub(m: re.Match) -> str:
        key = m.group(1)
        if key == "profile":
            return profile
        assert key in VARS, f"dvc.yaml interpolates ${{{key}}}: only ${{profile}} and vars follow a profile switch"
        return str(VARS[key])
    return re.sub(r"\$\{([^}]+)\}", sub, text)


def _commands(stage: dict) -> list[str]:
    cmd = stage["cmd"]
    return cmd if isinstance(cmd, list) else [cmd]


def _paths(stage: dict, section: str) -> dict[str, dict]:
    out = {}
    for entry in stage.get(section, []):
        if isinstance(entry, str):
            out[entry] = {}
        else:
            out.update(entry)
    return out


@pytest.mark.parametrize("name", sorted(STAGES))
def test_params_exist_and_cover_the_profiles(name):
    """Every key a stage lists is in params.yaml; every stage lists `profile` and `profiles`, so
    switching or editing a profile re-runs it."""
    keys = STAGES[name].get("params", [])
    for key in keys:
        assert isinstance(key, str) and _has(RAW_PARAMS, key), f"stage {name}: params key {key!r} not in params.yaml"
    assert {"profile", "profiles"} <= set(keys), f"stage {name} must list `profile` and `profiles`"


def test_only_the_profile_is_interpolated():
    """A profile switch needs nothing but `-S profile=<p>`: DVC sees params.yaml's top level only,
    so any other ${params key} would keep the default profile's value."""
    text = (ROOT / "dvc.yaml").read_text()
    used = set(re.findall(r"\$\{([^}]+)\}", text))
    assert used <= {"profile"} | set(VARS), used


@pytest.mark.parametrize("profile", PROFILES)
def test_cli_calls_parse_for_every_profile(profile):
    parser = build_parser()
    seen = 0
    for name, stage in STAGES.items():
        for cmd in _commands(stage):
            argv = shlex.split(_render(cmd, profile))
            assert argv[0] == "thtl-bench", f"{name}: unexpected command {cmd!r}"
            try:
                args = parser.parse_args(argv[1:])
            except SystemExit:
                pytest.fail(f"stage {name}: `{cmd}` is not a valid thtl-bench command")
            assert args.profile == profile
            over = {o.split("=", 1)[0] for o in getattr(args, "overrides", []) or []}
            assert over <= PINNED, f"{name}: stages read params.yaml; only {PINNED} are pinned, not {over - PINNED}"
            seen += 1
    assert seen >= len(STAGES)


@pytest.mark.parametrize("profile", PROFILES)
def test_output_paths_follow_the_profile(profile):
    """dvc.yaml writes records|checkpoints|splits/${profile}: every profile's effective folders
    must be exactly those, or DVC would track folders the engine never writes."""
    cfg = config.load(ROOT / "params.yaml", profile)
    assert cfg["grid"]["records_dir"] == f"records/{profile}"
    assert cfg["grid"]["checkpoints_dir"] == f"checkpoints/{profile}"
    assert cfg["split"]["dir"] == f"splits/{profile}"
    outs = {p for s in STAGES.values() for p in _paths(s, "outs")}
    assert {"records/${profile}", "checkpoints/${profile}", "splits/${profile}"} <= outs


def test_records_persist_uncached_checkpoints_cached_report_in_git():
    outs = _paths(STAGES["grid"], "outs")
    assert outs["records/${profile}"] == {"cache": False, "persist": True}
    assert outs["checkpoints/${profile}"] == {"persist": True}
    for name in ("data", "flops", "references", "transfer", "aggregate", "report"):
        for section in ("outs", "metrics"):
            for path, flags in _paths(STAGES[name], section).items():
                assert flags.get("cache") is False, f"{name}: {path} must be uncached (in git)"
    assert STAGES["data"].get("always_changed") is True


def test_every_artefact_the_aggregate_reads_is_a_dependency():
    """The summary depends on the records and the running side's artefacts only (aggregate.ARTEFACTS)."""
    from thtl_bench.analysis import aggregate

    deps = set(STAGES["aggregate"]["deps"])
    assert "records/${profile}" in deps
    for name in aggregate.ARTEFACTS.values():
        assert f"report/{name}" in deps, name
        assert any(f"report/{name}" in _paths(s, "outs") for s in STAGES.values()), f"no stage writes {name}"


def test_top_level_plots_name_the_columns_report_plots_writes():
    declared = {}
    for entry in DVC["plots"]:
        if isinstance(entry, str):
            declared[entry] = {}
        else:
            declared.update(entry)
    images = [p for p, spec in declared.items() if not spec]
    assert "report/figures" in images
    for name, (columns, x, y) in plots_mod.CSV.items():
        path = f"report/plots/{name}.csv"
        assert path in declared, f"{path} is not declared in dvc.yaml's top-level plots"
        spec = declared[path]
        assert (spec["x"], spec["y"]) == (x, y) or (spec["x"] in columns and spec["y"] in columns), path
        assert spec["x"] in columns and str(spec["y"]) in columns, f"{path}: axes {spec['x']}/{spec['y']} not in {columns}"
        template = ROOT / ".dvc" / "plots" / f"{spec['template']}.json"
        assert template.is_file(), f"{path}: template {template} missing"
        body = template.read_text()
        assert "<DVC_METRIC_DATA>" in body and "<DVC_METRIC_X>" in body, template
        for field in re.findall(r'"field": "([a-z_]+)"', body):
            assert field in columns + ["rev"], f"{template.name} groups by {field!r}, which {path} lacks"


def test_dvc_plots_show_renders_every_plot_file(tmp_path, sample_summary):
    """`dvc plots show --json` on plot data written from the fixture summary: each file renders
    with its x and y fields (a hermetic DVC repo: dvc.yaml, params.yaml, the templates)."""
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    subprocess.run([_dvc(), "init", "-q"], cwd=repo, check=True, capture_output=True)
    for f in ("dvc.yaml", "params.yaml"):
        shutil.copy(ROOT / f, repo / f)
    shutil.copytree(ROOT / ".dvc" / "plots", repo / ".dvc" / "plots")
    plots_mod.write(sample_summary, repo / "report")
    res = subprocess.run([_dvc(), "plots", "show", "--json"], cwd=repo, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)["data"]
    declared = {k: v for e in DVC["plots"] if isinstance(e, dict) for k, v in e.items()}
    for path, spec in declared.items():
        rows = next(iter(data[path]), None) if data.get(path) else None
        if path.endswith("size_axis.csv"):
            continue  # no size axis in the fixture: header only, nothing to draw
        assert rows and rows["type"] == "vega", path
        values = rows["content"]["data"]["values"]
        assert values and spec["x"] in values[0] and str(spec["y"]) in values[0], path
        assert f'"{spec["x"]}"' in json.dumps(rows["content"]), f"{path}: template does not use x"
    assert any(k.startswith("report/figures/") and v[0]["type"] == "image" for k, v in data.items())


def test_dag_runs_and_orders_the_stages():
    dvc = _dvc()
    dag = subprocess.run([dvc, "dag", "--dot"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert dag.returncode == 0, dag.stderr
    edges = set(re.findall(r'"?(\w+)"?\s*->\s*"?(\w+)"?', dag.stdout))
    for a, b in [("data", "grid"), ("grid", "flops"), ("grid", "transfer"), ("data", "references"),
                 ("flops", "aggregate"), ("references", "aggregate"), ("transfer", "aggregate"),
                 ("aggregate", "report"), ("grid", "report")]:
        assert (a, b) in edges, f"missing edge {a} -> {b} in {sorted(edges)}"
    status = subprocess.run([dvc, "status", "--quiet"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert status.returncode in (0, 1), status.stderr  # 1 = something changed; errors are >= 2
    assert "ERROR" not in status.stderr, status.stderr
