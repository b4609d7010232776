"""The reproducibility shell agrees with the code and with itself: dvc.yaml (params keys, CLI
calls, arm split, output paths), the Dockerfile and the pinned requirements, the nox sessions,
the CI workflows and the sharding scripts. Fast: no training, no network."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from thtl_bench import arms, config
from thtl_bench.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
RAW_PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())
PROFILES = sorted(RAW_PARAMS["profiles"])
DVC = yaml.safe_load((ROOT / "dvc.yaml").read_text())
STAGES = DVC["stages"]


def _tool(name: str) -> str:
    path = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    assert path, f"{name} is not installed: pip install -r requirements/dev.txt"
    return path


def _lookup(tree: dict, dotted: str):
    node = tree
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            raise KeyError(dotted)
        node = node[part]
    return node


def _has(tree: dict, dotted: str) -> bool:
    try:
        _lookup(tree, dotted)
        return True
    except KeyError:
        return False


def _render(text: str, item: dict) -> str:
    """DVC's ${...} interpolation for one matrix item (enough for our dvc.yaml)."""
    def sub(m: re.Match) -> str:
        key = m.group(1)
        return str(item[key[5:]] if key.startswith("item.") else _lookup(RAW_PARAMS, key))
    return re.sub(r"\$\{([^}]+)\}", sub, text)


def _resolve_list(value) -> list:
    """A matrix axis: a literal list, or ${name} from dvc.yaml's vars or params.yaml."""
    if isinstance(value, list):
        return value
    name = re.fullmatch(r"\$\{([^}]+)\}", value).group(1)
    local = DVC.get("vars", [{}])[0]
    return local[name] if name in local else _lookup(RAW_PARAMS, name)


def _commands(stage: dict) -> list[str]:
    cmd = stage["cmd"]
    return cmd if isinstance(cmd, list) else [cmd]


# ---------------------------------------------------------------------------------------- dvc.yaml

@pytest.mark.parametrize("name", sorted(STAGES))
def test_dvc_params_exist_in_params_yaml(name):
    for key in STAGES[name].get("params", []):
        assert isinstance(key, str), f"{name}: params entry {key!r}"
        assert _has(RAW_PARAMS, key), f"stage {name}: params key {key!r} is not in params.yaml"


@pytest.mark.parametrize("name", sorted(STAGES))
def test_dvc_params_cover_profile_overrides(name):
    """A stage reading `train` must also depend on `profiles.<p>.train` wherever a profile
    overrides it, and on `profile`: otherwise switching or editing a profile would not re-run it."""
    keys = set(STAGES[name].get("params", []))
    assert "profile" in keys, f"stage {name} does not list `profile`"
    for key in keys - {"profile"}:
        if key.startswith("profiles."):
            continue
        for prof in PROFILES:
            override = f"profiles.{prof}.{key}"
            if _has(RAW_PARAMS, override):
                assert override in keys, f"stage {name} reads {key!r} but does not list {override!r}"


def test_dvc_cli_calls_parse():
    """Every `thtl-bench ...` command of every stage instance is accepted by the real CLI parser."""
    parser = build_parser()
    seen = 0
    for name, stage in STAGES.items():
        body = stage.get("do", stage)
        items = [{}]
        for k, values in (stage.get("matrix") or {}).items():
            items = [{**it, k: v} for it in items for v in _resolve_list(values)]
        for item in items:
            for cmd in _commands(body):
                argv = shlex.split(_render(cmd, item))
                if argv[0] != "thtl-bench":
                    assert argv[:2] == ["mkdir", "-p"], f"{name}: unexpected command {cmd!r}"
                    continue
                try:
                    args = parser.parse_args(argv[1:])
                except SystemExit:
                    pytest.fail(f"stage {name}: `{cmd}` is not a valid thtl-bench command")
                assert not getattr(args, "overrides", None), f"{name}: stages use params.yaml, not -S"
                seen += 1
    assert seen > len(STAGES)


def test_dvc_arm_split_matches_registry_and_grid():
    """The arm lists of dvc.yaml split the registry by parent: step 1, its children, the rest."""
    v = DVC["vars"][0]
    assert v["thtl_arms"] == arms.children("thtl_step1")
    assert v["direct_arms"] == [a for a in arms.NAMES if arms.get(a).parent is None and a != "thtl_step1"]
    for prof in PROFILES:
        grid_arms = config.load(ROOT / "params.yaml", prof)["grid"]["arms"]
        assert sorted(grid_arms) == sorted(v["direct_arms"] + v["thtl_arms"] + ["thtl_step1"]), prof


def test_dvc_output_paths_follow_the_profile():
    """dvc.yaml writes records/${profile} and checkpoints/${profile}: every profile's effective
    grid folders must be exactly those, or DVC would track folders the engine never writes."""
    for prof in PROFILES:
        g = config.load(ROOT / "params.yaml", prof)["grid"]
        assert g["records_dir"] == f"records/{prof}"
        assert g["checkpoints_dir"] == f"checkpoints/{prof}"


def test_dvc_records_are_persistent_and_uncached_checkpoints_cached():
    for name in ("step1", "direct", "target"):
        outs = {k: v for o in STAGES[name]["outs"] for k, v in o.items()}
        rec = [v for k, v in outs.items() if k.startswith("records/")]
        ck = [v for k, v in outs.items() if k.startswith("checkpoints/")]
        assert rec == [{"cache": False, "persist": True}], name
        assert ck == [{"persist": True}], name
    for name in ("aggregate", "report"):
        for section in ("outs", "metrics", "plots"):
            for o in STAGES[name].get(section, []):
                (path, flags), = o.items()
                assert flags.get("cache") is False, f"{name}: {path} must be uncached (in git)"


def test_dvc_dag_and_status_run():
    dvc = _tool("dvc")
    dag = subprocess.run([dvc, "dag", "--md"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert dag.returncode == 0, dag.stderr
    for stage in ("check", "step1@", "direct@", "target@", "aggregate", "report"):
        assert stage in dag.stdout
    # target@M-A-S depends on step1@M-S (the checkpoint it starts from)
    model, seed = RAW_PARAMS["grid"]["models"][0], RAW_PARAMS["grid"]["seeds"][0]
    edges = subprocess.run([dvc, "dag", "--dot", f"target@{model}-thtl_last-{seed}"], cwd=ROOT,
                           capture_output=True, text=True, timeout=120)
    assert edges.returncode == 0, edges.stderr
    assert f"step1@{model}-{seed}" in edges.stdout and "check" in edges.stdout
    status = subprocess.run([dvc, "status", "--quiet"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert status.returncode in (0, 1), status.stderr  # 1 = something changed; errors are >= 2
    assert "ERROR" not in status.stderr, status.stderr


# ------------------------------------------------------------------------ Docker and requirements

def _pins(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            m = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([A-Za-z0-9_.+\-]+)", line)
            assert m, f"{path.name}: {line!r} is not pinned exactly"
            out[m.group(1).lower()] = m.group(2)
    return out


def test_torch_pins_are_exact():
    assert _pins(ROOT / "requirements" / "torch.txt") == {"torch": "2.14.1", "torchvision": "0.29.1"}


def test_base_requirements_pin_every_runtime_dependency():
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    deps = [re.split(r"[<>=!~ \[]", d, maxsplit=1)[0].lower() for d in project["dependencies"]]
    extras = [re.split(r"[<>=!~ \[]", d, maxsplit=1)[0].lower() for d in project["optional-dependencies"]["dev"]]
    torch_pins, base, dev = (_pins(ROOT / "requirements" / f) for f in ("torch.txt", "base.txt", "dev.txt"))
    for d in deps:
        assert d in torch_pins or d in base, f"runtime dependency {d} is not pinned in requirements/"
    for d in extras:
        assert d in dev, f"dev dependency {d} is not pinned in requirements/dev.txt"
    assert not set(torch_pins) & set(base) and not set(torch_pins) & set(dev), "torch is pinned in torch.txt only"


def test_ci_installs_the_torch_pins_from_requirements():
    run = (ROOT / ".ci" / "run").read_text()
    assert "requirements/torch.txt" in run
    assert not re.search(r"torch(vision)?\s*[=<>]=", run), ".ci/run must not pin torch itself"


def test_dockerfile_base_and_requirements_agree_with_pins():
    text = (ROOT / "Dockerfile").read_text()
    froms = re.findall(r"^FROM\s+(\S+)", text, flags=re.M)
    assert len(froms) == 1
    m = re.fullmatch(r"pytorch/pytorch:(\d+\.\d+\.\d+)-cuda[\d.]+-cudnn\d+-runtime", froms[0])
    assert m, f"base {froms[0]} is not an official PyTorch CUDA runtime tag"
    assert m.group(1) == _pins(ROOT / "requirements" / "torch.txt")["torch"]
    installs = re.findall(r"-r\s+\S*?(requirements/[\w.]+\.txt)", text)
    assert installs[:3] == ["requirements/torch.txt", "requirements/base.txt", "requirements/dev.txt"]
    # The weights layer itself (before the source, into the resolver's caches) is tests/repo/test_ci.py's.
    for key in ("HF_HUB_OFFLINE=1", "TIMM_OFFLINE=1", "THTL_WEIGHTS_DIR=", "ARG FETCH_WEIGHTS",
                'CMD ["nox", "-s", "benchmark"]'):
        assert key in text, key
    users = re.findall(r"^USER\s+(\S+)", text, flags=re.M)
    assert users and users[-1].split(":")[0] not in ("0", "root"), "the image must not run as root"


def test_hadolint_passes():
    out = subprocess.run([_tool("hadolint"), "Dockerfile"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


def test_hadolint_config_is_strict():
    """Guard against a config that silences hadolint: a root USER is flagged."""
    out = subprocess.run([_tool("hadolint"), "-"], cwd=ROOT, input="FROM pytorch/pytorch:2.14.1\nUSER thtl\n",
                         capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and "DL3066" in out.stdout


# ------------------------------------------------------------------------------------ nox and CI

def test_nox_sessions_exist():
    out = subprocess.run([_tool("nox"), "-l"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    names = set(re.findall(r"^[*-] (\w+)", out.stdout, flags=re.M))
    assert {"tests", "benchmark", "report", "compare", "lint"} <= names


def _workflow(name: str) -> dict:
    doc = yaml.safe_load((ROOT / ".github" / "workflows" / name).read_text())
    assert doc.get(True) or doc.get("on"), f"{name}: no triggers"  # YAML 1.1 reads `on` as True
    assert doc["jobs"], name
    for job_name, job in doc["jobs"].items():
        assert "runs-on" in job and job.get("steps"), f"{name}: job {job_name}"
        for step in job["steps"]:
            assert ("run" in step) != ("uses" in step), f"{name}: {job_name}: step needs run or uses"
    return doc


def _runs(doc: dict) -> str:
    return "\n".join(s.get("run", "") for j in doc["jobs"].values() for s in j["steps"])


def test_ci_workflow_runs_the_ci_entry_point():
    doc = _workflow("ci.yml")
    assert "bash .ci/run" in _runs(doc) and "nox -s lint" in _runs(doc)


def test_gpu_workflow():
    doc = _workflow("gpu-benchmark.yml")
    job = doc["jobs"]["benchmark"]
    assert "self-hosted" in job["runs-on"] and "gpu" in job["runs-on"]
    runs = _runs(doc)
    assert "docker build" in runs and "--gpus all" in runs
    assert "nox -s benchmark" in runs and "thtl-bench compare" in runs
    upload = [s for s in job["steps"] if s.get("uses", "").startswith("actions/upload-artifact")]
    assert upload and "REPORT.md" in upload[0]["with"]["path"] and ".benchmarks/" in upload[0]["with"]["path"]


def test_grid_matrix_workflow():
    doc = _workflow("grid-matrix.yml")
    grid = doc["jobs"]["grid"]
    assert "matrix.shard" in grid["strategy"]["matrix"]["shard"] or "fromJSON" in grid["strategy"]["matrix"]["shard"]
    runs = _runs(doc)
    assert re.search(r"thtl-bench grid .*--shard", runs.replace("\\\n", " "))
    assert "grid.checkpoints_dir" in runs
    assert "grid" in doc["jobs"]["merge"]["needs"] and "nox -s report" in runs


# ---------------------------------------------------------------------------------------- scripts

SCRIPTS = [ROOT / "scripts" / "multi_gpu.sh", ROOT / "scripts" / "slurm_grid.sbatch"]


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_scripts_pass_shellcheck(script):
    out = subprocess.run([_tool("shellcheck"), "-s", "bash", str(script)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout


def _fake_bin(tmp_path: Path, name: str, body: str) -> None:
    tool = tmp_path / "bin" / name
    tool.parent.mkdir(exist_ok=True)
    tool.write_text("#!/usr/bin/env bash\n" + body)
    tool.chmod(0o755)


def _env(tmp_path: Path, **extra) -> dict:
    env = {**os.environ, "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}", "LOG": str(tmp_path / "calls.log"),
           "PYTHONPATH": str(ROOT)}
    env.pop("THTL_PROFILE", None)
    env.pop("SLURM_JOB_ID", None)
    env.update(extra)
    return env


def _calls(tmp_path: Path) -> list[str]:
    return (tmp_path / "calls.log").read_text().splitlines()


def test_multi_gpu_one_worker_per_gpu_sharing_checkpoints(tmp_path):
    _fake_bin(tmp_path, "thtl-bench", 'echo "CUDA=${CUDA_VISIBLE_DEVICES:-} $*" >> "$LOG"\n')
    ck = tmp_path / "ck"
    out = subprocess.run(["bash", str(SCRIPTS[0]), "--models", "resnet18"], capture_output=True, text=True,
                         timeout=60, env=_env(tmp_path, NGPUS="3", CHECKPOINTS_DIR=str(ck),
                                              RECORDS_DIR=str(tmp_path / "rec"), LOG_DIR=str(tmp_path / "logs")))
    assert out.returncode == 0, out.stderr
    calls = _calls(tmp_path)
    grid = [c for c in calls if " grid " in f" {c} "]
    assert len(grid) == 6 and calls[-1].split(" ", 1)[1].startswith("aggregate")
    step1, full = grid[:3], grid[3:]
    for phase in (step1, full):
        assert sorted(re.search(r"--shard (\S+)", c).group(1) for c in phase) == ["0/3", "1/3", "2/3"]
        for c in phase:
            i = re.search(r"--shard (\d)/3", c).group(1)
            assert c.startswith(f"CUDA={i} ")  # worker i sees only GPU i
            assert f"grid.checkpoints_dir={ck}" in c and "--profile smoke" in c and "--models resnet18" in c
    assert all(c.endswith("--arms thtl_step1") for c in step1)
    assert not any("--arms" in c for c in full)


def test_multi_gpu_reports_a_failed_worker(tmp_path):
    _fake_bin(tmp_path, "thtl-bench", '[[ "$*" == *"--shard 1/2"* ]] && exit 3\necho "$*" >> "$LOG"\n')
    out = subprocess.run(["bash", str(SCRIPTS[0])], capture_output=True, text=True, timeout=60,
                         env=_env(tmp_path, NGPUS="2", CHECKPOINTS_DIR=str(tmp_path / "ck"),
                                  RECORDS_DIR=str(tmp_path / "rec"), LOG_DIR=str(tmp_path / "logs")))
    assert out.returncode != 0 and "worker 1/2 failed" in out.stderr
    assert not any(c.startswith("aggregate") for c in _calls(tmp_path))


def test_slurm_submits_chained_arrays(tmp_path):
    _fake_bin(tmp_path, "sbatch", 'echo "$*" >> "$LOG"\necho $((100 + $(wc -l < "$LOG")))\n')
    script = tmp_path / "repo" / "scripts" / SCRIPTS[1].name  # submit mode makes logs/slurm beside it
    script.parent.mkdir(parents=True)
    shutil.copy(SCRIPTS[1], script)
    out = subprocess.run(["bash", str(script), "--models", "resnet18"], capture_output=True, text=True,
                         timeout=60, env=_env(tmp_path, SHARDS="4", THTL_PROFILE="paper",
                                              CHECKPOINTS_DIR=str(tmp_path / "ck"), RECORDS_DIR=str(tmp_path / "rec")))
    assert out.returncode == 0, out.stderr
    step1, grid, merge = _calls(tmp_path)
    assert "--array=0-3" in step1 and "PHASE=step1" in step1
    assert "--array=0-3" in grid and "PHASE=grid" in grid and "--dependency=afterok:101" in grid
    assert "--array" not in merge and "PHASE=merge" in merge and "--dependency=afterok:102" in merge
    assert all(c.endswith("slurm_grid.sbatch --models resnet18") for c in (step1, grid, merge))


@pytest.mark.parametrize("phase", ["step1", "grid"])
def test_slurm_task_runs_its_shard(tmp_path, phase):
    _fake_bin(tmp_path, "thtl-bench", 'echo "$*" >> "$LOG"\n')
    ck = tmp_path / "ck"
    env = _env(tmp_path, SLURM_JOB_ID="7", SLURM_SUBMIT_DIR=str(ROOT), SLURM_ARRAY_TASK_ID="12",
               SLURM_ARRAY_TASK_MIN="10", SLURM_ARRAY_TASK_COUNT="5", PHASE=phase, THTL_PROFILE="smoke",
               CHECKPOINTS_DIR=str(ck), RECORDS_DIR=str(tmp_path / "rec"))
    out = subprocess.run(["bash", str(SCRIPTS[1]), "--seeds", "0"], capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 0, out.stderr
    (call,) = _calls(tmp_path)
    assert call.startswith("grid --profile smoke") and "--shard 2/5" in call and f"grid.checkpoints_dir={ck}" in call
    assert call.endswith("--seeds 0 --arms thtl_step1") if phase == "step1" else call.endswith("--seeds 0")
