"""The reproducibility shell agrees with the code and with itself: the Dockerfile and the pinned
requirements, the nox sessions, the CI workflows and the sharding scripts (dvc.yaml:
test_dvc.py). Fast: no training, no network."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def _tool(name: str) -> str:
    path = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    assert path, f"{name} is not installed: pip install -r requirements/dev.txt"
    return path


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


def _readme_command(heading: str) -> str:
    """The one command of README.md's fenced block under the bold `heading`."""
    text = (ROOT / "README.md").read_text()
    m = re.search(re.escape(f"**{heading}") + r".*?```bash\n(.+?)\n```", text, flags=re.S)
    assert m, f"README.md has no ```bash block under **{heading}"
    lines = [x for x in m.group(1).splitlines() if x.strip() and not x.startswith("#")]
    assert len(lines) == 1, f"README.md's {heading} block must be one command, not {lines}"
    return lines[0].strip()


def test_ci_runs_readme_test_command_verbatim():
    cmd = _readme_command("Run the tests")
    run = (ROOT / ".ci" / "run").read_text()
    assert cmd in [x.strip() for x in run.splitlines()], f".ci/run must run README's test command `{cmd}`"
    assert cmd.startswith("bash scripts/env.sh ") and _readme_command("Run the main job").startswith("bash scripts/env.sh ")
    assert not re.search(r"torch(vision)?\s*[=<>]=", run), ".ci/run must not pin torch itself"


def _fake_python(tmp_path: Path) -> tuple[Path, Path]:
    """A checkout with scripts/env.sh and the requirements, and a venv whose python logs calls."""
    root = tmp_path / "repo"
    (root / "scripts").mkdir(parents=True)
    shutil.copy(ROOT / "scripts" / "env.sh", root / "scripts" / "env.sh")
    shutil.copytree(ROOT / "requirements", root / "requirements")
    shutil.copy(ROOT / "pyproject.toml", root / "pyproject.toml")
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    log = tmp_path / "calls.log"
    (venv / "bin" / "python").write_text(f'#!/bin/sh\necho "$@" >> {log}\n')
    (venv / "bin" / "python").chmod(0o755)
    return root, log


def test_env_sh_installs_once_torch_first_then_nothing(tmp_path):
    root, log = _fake_python(tmp_path)
    env = {**os.environ, "THTL_VENV": str(tmp_path / "venv")}
    first = subprocess.run(["bash", str(root / "scripts" / "env.sh"), "true"], env=env, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    calls = log.read_text().splitlines()
    assert len(calls) == 3 and "requirements/torch.txt" in calls[0] and "-e" in calls[2], calls
    assert all("-m pip install" in c for c in calls)
    second = subprocess.run(["bash", str(root / "scripts" / "env.sh"), "true"], env=env, capture_output=True, text=True)
    assert second.returncode == 0 and log.read_text().splitlines() == calls, "a second run must install nothing"
    (root / "requirements" / "base.txt").write_text((root / "requirements" / "base.txt").read_text() + "\n# changed\n")
    subprocess.run(["bash", str(root / "scripts" / "env.sh"), "true"], env=env, check=True, capture_output=True)
    assert len(log.read_text().splitlines()) == 6, "changed requirements must be installed again"


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
    """The scripts' environment: fake tools first; THTL_PYTHON logs the preflight (`-m ...`, exit
    status $PREFLIGHT_RC) and runs this interpreter for anything else (the config queries)."""
    _fake_bin(tmp_path, "python-shim", 'if [ "$1" = -m ]; then echo "PREFLIGHT CUDA=${CUDA_VISIBLE_DEVICES-unset} $*" '
              f'>> "$LOG"; exit "${{PREFLIGHT_RC:-0}}"; fi\nexec {sys.executable} "$@"\n')
    env = {**os.environ, "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}", "LOG": str(tmp_path / "calls.log"),
           "PYTHONPATH": str(ROOT), "THTL_PYTHON": str(tmp_path / "bin" / "python-shim")}
    for key in ("THTL_PROFILE", "SLURM_JOB_ID", "SLURM_CPUS_PER_TASK", "CUDA_VISIBLE_DEVICES", "NGPUS", "THREADS"):
        env.pop(key, None)
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
    out = subprocess.run(["bash", str(SCRIPTS[1]), "--replicates", "0/0"], capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 0, out.stderr
    preflight, call = _calls(tmp_path)
    assert preflight == "PREFLIGHT CUDA=unset -m thtl_bench.perf.preflight --profile smoke"  # before any work
    assert call.startswith("grid --profile smoke") and "--shard 2/5" in call and f"grid.checkpoints_dir={ck}" in call
    assert call.endswith("--replicates 0/0 --arms thtl_step1") if phase == "step1" else call.endswith("--replicates 0/0")
    assert "train.num_threads" not in call  # no CPU count given: torch's default


def test_slurm_task_uses_its_cpus_and_stops_when_the_gpu_does_not_come_up(tmp_path):
    _fake_bin(tmp_path, "thtl-bench", 'echo "OMP=${OMP_NUM_THREADS:-} $*" >> "$LOG"\n')
    base = dict(SLURM_JOB_ID="7", SLURM_SUBMIT_DIR=str(ROOT), SLURM_ARRAY_TASK_ID="0", SLURM_ARRAY_TASK_MIN="0",
                SLURM_ARRAY_TASK_COUNT="2", PHASE="grid", THTL_PROFILE="paper", CHECKPOINTS_DIR=str(tmp_path / "ck"),
                RECORDS_DIR=str(tmp_path / "rec"), SLURM_CPUS_PER_TASK="6", CUDA_VISIBLE_DEVICES="3")
    out = subprocess.run(["bash", str(SCRIPTS[1])], capture_output=True, text=True, timeout=60, env=_env(tmp_path, **base))
    assert out.returncode == 0, out.stderr
    preflight, call = _calls(tmp_path)
    assert preflight.startswith("PREFLIGHT CUDA=3 ")  # Slurm's mask, untouched
    assert call.startswith("OMP=6 grid --profile paper") and "-S train.num_threads=6" in call
    (tmp_path / "calls.log").unlink()
    out = subprocess.run(["bash", str(SCRIPTS[1])], capture_output=True, text=True, timeout=60,
                         env=_env(tmp_path, **base, PREFLIGHT_RC="2"))
    assert out.returncode == 2 and not [c for c in _calls(tmp_path) if not c.startswith("PREFLIGHT")]


def _multi_gpu(tmp_path: Path, **extra) -> tuple[subprocess.CompletedProcess, list[str]]:
    _fake_bin(tmp_path, "thtl-bench", 'echo "CUDA=${CUDA_VISIBLE_DEVICES:-} OMP=${OMP_NUM_THREADS:-} $*" >> "$LOG"\n')
    _fake_bin(tmp_path, "nproc", 'echo 16\n')
    out = subprocess.run(["bash", str(SCRIPTS[0])], capture_output=True, text=True, timeout=60,
                         env=_env(tmp_path, CHECKPOINTS_DIR=str(tmp_path / "ck"), RECORDS_DIR=str(tmp_path / "rec"),
                                  LOG_DIR=str(tmp_path / "logs"), STEP1_PHASE="0", **extra))
    log = tmp_path / "calls.log"
    return out, (log.read_text().splitlines() if log.is_file() else [])


def test_multi_gpu_respects_an_existing_mask_and_divides_the_cores(tmp_path):
    out, calls = _multi_gpu(tmp_path, CUDA_VISIBLE_DEVICES="3,GPU-5f2e,7")
    assert out.returncode == 0, out.stderr
    assert calls[0].startswith("PREFLIGHT CUDA=3 -m thtl_bench.perf.preflight")
    workers = sorted(c for c in calls if " grid " in c)
    assert [(re.search(r"CUDA=(\S+)", c).group(1), re.search(r"--shard (\S+)", c).group(1)) for c in workers] == \
        [("3", "0/3"), ("7", "2/3"), ("GPU-5f2e", "1/3")]  # each worker one entry of the mask, never another GPU
    assert all(" OMP=5 " in c and "-S train.num_threads=5" in c for c in workers)  # 16 cores / 3 workers


@pytest.mark.parametrize("extra,error", [
    ({"CUDA_VISIBLE_DEVICES": "0,1", "NGPUS": "3"}, "allows 2"),
    ({"CUDA_VISIBLE_DEVICES": ""}, "hides every GPU"),
    ({"CUDA_VISIBLE_DEVICES": "-1"}, "hides every GPU"),
])
def test_multi_gpu_refuses_more_workers_than_the_mask_allows(tmp_path, extra, error):
    out, calls = _multi_gpu(tmp_path, **extra)
    assert out.returncode == 2 and error in out.stderr and not calls


def test_multi_gpu_stops_before_any_worker_when_the_gpu_does_not_come_up(tmp_path):
    out, calls = _multi_gpu(tmp_path, NGPUS="2", PREFLIGHT_RC="2", THREADS="2")
    assert out.returncode == 2 and calls == ["PREFLIGHT CUDA=0 -m thtl_bench.perf.preflight --profile smoke"]
