"""dvc.yaml agrees with the code and with git: params keys, CLI calls, paths that follow the
profile, the synth stage's data folder, every dependency in git (so a fresh clone plans and a dry
run works for every profile), no checkpoints, one metrics file, the DAG, the nox report chain,
and the top-level plots. The DVC runs use a temporary copy of the working tree: `dvc exp run
--dry` per profile, a typo'd profile, and `dvc repro synth` + a fresh clone at a tiny recipe. No
training, no network."""

from __future__ import annotations

import importlib.util
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
IN_GIT = ("thtl_bench/", "report/", "params.yaml")  # where a dependency may live (dvc.yaml header)


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


def _outs(stage: dict) -> dict[str, dict]:
    return {**_paths(stage, "outs"), **_paths(stage, "metrics"), **_paths(stage, "plots")}


# ------------------------------------------------------------------------------- structure


@pytest.mark.parametrize("name", sorted(STAGES))
@pytest.mark.parametrize("profile", PROFILES)
def test_params_exist_and_cover_the_profile(name, profile):
    """Every key a stage lists is in params.yaml for every profile; every stage lists `profile`
    and the profile's overrides (`profiles.${profile}`, or all `profiles` where it reads another
    profile's), so switching or editing the profile re-runs it."""
    keys = [_render(k, profile) for k in STAGES[name].get("params", [])]
    for key in keys:
        assert isinstance(key, str) and _has(RAW_PARAMS, key), f"stage {name}: params key {key!r} not in params.yaml"
    assert "profile" in keys and ({f"profiles.{profile}", "profiles"} & set(keys)), name


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
    """dvc.yaml writes data|records|splits/${profile}: every profile's effective folders must be
    exactly those, or DVC would track folders the CLI never writes."""
    cfg = config.load(ROOT / "params.yaml", profile)
    assert cfg["data"]["root"] == f"data/{profile}"
    assert cfg["grid"]["records_dir"] == f"records/{profile}"
    assert cfg["split"]["dir"] == f"splits/{profile}"
    outs = {p for s in STAGES.values() for p in _paths(s, "outs")}
    assert {"data/${profile}", "records/${profile}", "splits/${profile}"} <= outs


def test_synth_stage_outputs_the_data_folder_and_no_hand_written_dvc_file_exists():
    synth = STAGES["synth"]
    assert _commands(synth)[0] == "thtl-bench synth --profile ${profile}"
    flags = _paths(synth, "outs")["data/${profile}"]
    assert flags.get("cache", True) is True and flags.get("persist") is True  # DVC hashes and caches it
    tracked = subprocess.run(["git", "ls-files", "*.dvc"], cwd=ROOT, capture_output=True, text=True, check=True)
    assert tracked.stdout.split() == [], "data is the synth stage's output: no .dvc file tracks it"
    assert not [p for p in ROOT.glob("*.dvc") if p.is_file()]


def test_checkpoints_are_no_stage_input_or_output():
    for name, stage in STAGES.items():
        for path in [*stage.get("deps", []), *_outs(stage)]:
            assert "checkpoint" not in path, f"stage {name}: {path} (git-ignored checkpoints: dvc.yaml header)"


def _bad_paths(stages: dict, profile: str) -> list[str]:
    """Dependencies that a checkout may lack (not tracked by git, or git-ignored), and outputs
    whose place in git contradicts their cache flag (uncached: must be trackable; cached: DVC's,
    must be git-ignored). What makes a fresh clone dirty or a dry run fail."""
    def ignored(path: str) -> bool:
        return subprocess.run(["git", "check-ignore", "-q", "--no-index", path], cwd=ROOT).returncode == 0

    def tracked(path: str) -> bool:
        out = subprocess.run(["git", "ls-files", "--", path], cwd=ROOT, capture_output=True, text=True, check=True)
        return bool(out.stdout.strip())

    bad = []
    for name, stage in stages.items():
        for dep in stage.get("deps", []):
            path = _render(dep, profile)
            if not path.startswith(IN_GIT) or ignored(path) or not tracked(path):
                bad.append(f"{name}: dependency {path}")
        for out, flags in _outs(stage).items():
            path = _render(out, profile)
            if flags.get("cache", True) != ignored(path):
                bad.append(f"{name}: output {path} (cache {flags.get('cache', True)}, git-ignored {ignored(path)})")
    return bad


@pytest.mark.parametrize("profile", PROFILES)
def test_every_dependency_is_in_git_and_cached_outputs_are_dvcs(profile):
    assert _bad_paths(STAGES, profile) == []


def test_the_git_check_catches_a_checkpoints_dependency_and_a_data_dependency():
    planted = {"transfer": {"deps": ["checkpoints/${profile}", "records/${profile}", "data/${profile}"],
                            "outs": [{"report/transfer.json": {"cache": False}}, "checkpoints/${profile}"]}}
    assert _bad_paths(planted, "paper") == ["transfer: dependency checkpoints/paper", "transfer: dependency records/paper",
                                           "transfer: dependency data/paper"]
    planted = {"grid": {"outs": [{"records/${profile}": {"persist": True}}]}}  # cached records: git's and DVC's
    assert _bad_paths(planted, "smoke") == ["grid: output records/smoke (cache True, git-ignored False)"]


def test_stand_ins_carry_what_they_stand_for():
    """report/data_check.json (data fingerprints, split digests) and report/records.json (record
    hashes) stand for folders a checkout may lack: each is written by the stage that writes them."""
    assert {"report/data_check.json", "splits/${profile}", "data/${profile}"} <= set(_paths(STAGES["synth"], "outs"))
    assert {"report/records.json", "records/${profile}"} <= set(_paths(STAGES["grid"], "outs"))
    assert "thtl-bench index --profile ${profile} ${pin}" in _commands(STAGES["grid"])
    check = json.loads((ROOT / "report" / "data_check.json").read_text())
    for domain, rep in check.items():
        assert rep["fingerprint"] and rep["split_digests"], domain


def test_records_and_report_outputs_are_uncached_and_headline_is_the_one_metric():
    outs = _paths(STAGES["grid"], "outs")
    assert outs["records/${profile}"] == {"cache": False, "persist": True}
    for name in ("flops", "references", "transfer", "aggregate", "report"):
        for path, flags in _outs(STAGES[name]).items():
            assert flags.get("cache") is False, f"{name}: {path} must be uncached (in git)"
    metrics = {p for s in STAGES.values() for p in _paths(s, "metrics")}
    assert metrics == {"report/headline.json"}
    assert "report/metrics.json" in _paths(STAGES["report"], "outs")
    assert not any(s.get("always_changed") for s in STAGES.values())  # `dvc status` can be clean


def test_every_artefact_the_aggregate_reads_is_a_dependency():
    """The summary depends on the records (their index) and the running side's artefacts only
    (aggregate.ARTEFACTS)."""
    from thtl_bench.analysis import aggregate

    deps = set(STAGES["aggregate"]["deps"])
    assert "report/records.json" in deps
    for name in aggregate.ARTEFACTS.values():
        assert f"report/{name}" in deps, name
        assert any(f"report/{name}" in _paths(s, "outs") for s in STAGES.values()), f"no stage writes {name}"


def test_nox_report_chain_is_dvc_yamls_and_the_dvc_profile_runs_dvc_repro(monkeypatch):
    spec = importlib.util.spec_from_file_location("noxfile_under_test", ROOT / "noxfile.py")
    nox_mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(nox_mod)
    chain = [shlex.split(c)[1] for name in list(STAGES)[list(STAGES).index("grid") + 1:]
             for c in _commands(STAGES[name])]
    assert list(nox_mod.REPORT_COMMANDS) == chain

    class Session:
        posargs: list[str] = []

        def __init__(self):
            self.calls = []

        def run(self, *args, **kwargs):
            self.calls.append(args)

    monkeypatch.delenv("THTL_PROFILE", raising=False)
    monkeypatch.delenv("THTL_PARAMS", raising=False)
    report = getattr(nox_mod.report, "func", nox_mod.report)
    for posargs, want in ((["smoke"], "dvc"), ([], "dvc"), (["paper"], "chain"),
                          (["smoke", "-S", "grid.checkpoints_dir=x"], "chain")):
        s = Session()
        s.posargs = posargs
        report(s)
        if want == "dvc":
            assert len(s.calls) == 1 and s.calls[0][-1] == "repro" and "dvc" in " ".join(s.calls[0]), s.calls
        else:
            assert [c[1] for c in s.calls] == chain and all(c[2:4] == ("--profile", posargs[0]) for c in s.calls)


# ------------------------------------------------------------------------------- plots


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


# ------------------------------------------------------------------------------- DVC runs


def test_dag_runs_and_orders_the_stages():
    dvc = _dvc()
    dag = subprocess.run([dvc, "dag", "--dot"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert dag.returncode == 0, dag.stderr
    edges = set(re.findall(r'"?(\w+)"?\s*->\s*"?(\w+)"?', dag.stdout))
    for a, b in [("synth", "grid"), ("grid", "flops"), ("grid", "transfer"), ("synth", "references"),
                 ("synth", "transfer"), ("flops", "aggregate"), ("references", "aggregate"),
                 ("transfer", "aggregate"), ("aggregate", "report"), ("grid", "report")]:
        assert (a, b) in edges, f"missing edge {a} -> {b} in {sorted(edges)}"


def _run(args: list[str], cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**__import__("os").environ, "PYTHONPATH": str(ROOT), "DVC_NO_ANALYTICS": "1"}
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"  # thtl-bench of this interpreter
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)


def _snapshot(dest: Path, edit_params=None) -> Path:
    """The working tree's files (tracked and new, not ignored) committed into a new git repo at
    dest: what a clone of this state holds, without its git history."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True,
                           check=True).stdout.decode().split("\0")
    for f in filter(None, files):
        src = ROOT / f
        if src.is_file():
            (dest / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / f)
    if edit_params:
        p = yaml.safe_load((dest / "params.yaml").read_text())
        edit_params(p)
        (dest / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"],
                ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "snapshot"]):
        subprocess.run(cmd, cwd=dest, check=True)
    return dest


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory) -> Path:
    return _snapshot(tmp_path_factory.mktemp("snapshot"))


@pytest.mark.parametrize("profile", PROFILES)
def test_dvc_exp_run_dry_plans_every_profile(snapshot, profile):
    """What `dvc exp run --queue -S profile=<p>` will do, from a checkout without any data,
    checkpoints or DVC cache: every stage planned, nothing run, no error."""
    res = _run([_dvc(), "exp", "run", "--dry", "-S", f"profile={profile}"], snapshot)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    assert f"> thtl-bench synth --profile {profile}" in res.stdout and "ERROR" not in res.stdout + res.stderr


def test_a_typo_in_the_profile_fails_at_once(snapshot):
    res = _run([_dvc(), "exp", "run", "--dry", "-S", "profile=domain"], snapshot)
    assert res.returncode != 0 and "Parameters 'profiles.domain' are missing from 'params.yaml'" in res.stderr
    assert "> thtl-bench" not in res.stdout  # before any stage
    res = _run([sys.executable, "-m", "thtl_bench.cli", "synth", "--profile", "domain"], snapshot)
    assert res.returncode == 2 and "has no profile 'domain'" in res.stderr and "['domains', 'paper', 'smoke']" in res.stderr


def _tiny(p: dict) -> None:
    p["synth"].update(image_size=16, fundus={"per_grade": [3, 3, 3, 3, 3]})
    p["synth"]["larynx"].update(patients={"benign": 6, "malignant": 6})
    p["data"]["image_size"] = 16


def test_fresh_clone_reproduces_synth_and_status_is_clean(tmp_path):
    """At a tiny recipe: `dvc repro synth` records the data folder; a fresh clone of that commit
    regenerates the same bytes, `dvc status synth` is clean and dvc.lock is unchanged. A planted
    edit of the data is then seen by `dvc status`."""
    repo = _snapshot(tmp_path / "a", _tiny)
    res = _run([_dvc(), "repro", "synth"], repo)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]["synth"]
    assert [o["path"] for o in lock["outs"]][0] == "data/smoke" and lock["outs"][0]["md5"].endswith(".dir")
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "lock"], cwd=repo, check=True)
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(repo), str(clone)], check=True)
    assert "not in cache" in _run([_dvc(), "status", "synth"], clone).stdout
    res = _run([_dvc(), "repro", "synth"], clone)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    status = _run([_dvc(), "status", "synth"], clone)
    assert "Data and pipelines are up to date" in status.stdout, status.stdout
    assert subprocess.run(["git", "diff", "--exit-code", "--stat"], cwd=clone).returncode == 0  # same lock, splits, check
    (clone / "data" / "smoke" / "larynx" / "manifest.csv").write_text("path,label\n")
    assert "modified:" in _run([_dvc(), "status", "synth"], clone).stdout
