"""The GPU workflow sharded into a matrix, and the grid matrix's LayerCAM checkpoints (issue 22.7):
steps are run with bash as GitHub runs them, against the real params.yaml, with a stand-in for the
container (`IN_IMAGE` runs the command here) and fake tools; no Docker, no GPU, no network."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from repo.test_ci import GPU_GOOD, ROOT, _fake_bin, _run_step, _step, _workflow

from thtl_bench import config
from thtl_bench.cam import cam_cases
from thtl_bench.engine import grid
from thtl_bench.records import Case

SHARED = ("Build the image", "Work tree without .git", "Preflight", "Phantom data", "Splits")


def _named(job: dict, prefix: str) -> dict:
    found = [s for s in job["steps"] if s.get("name", "").startswith(prefix)]
    assert len(found) == 1, prefix
    return found[0]


def _here(tmp_path: Path) -> Path:
    """IN_IMAGE that runs its command here (env prefixes too), and `python` = this interpreter."""
    _fake_bin(tmp_path / "bin", "python", f'exec {sys.executable} "$@"\n')
    return _fake_bin(tmp_path / "bin", "in-image", 'exec "$@"\n')


def _checkpoints(folder: Path, cases: list[Case]) -> None:
    for c in cases:
        (folder / c.slug).mkdir(parents=True)
        (folder / c.slug / "best.pt").write_bytes(b"x")


def _layercam_needs(cfg: dict) -> set[str]:
    c = cfg["cam"]
    seed, split = c["replicate"]
    need = {case.slug for case in cam_cases(cfg).values()}
    return need | {Case(c["model"], "thtl_step1", seed, split, d).slug for d in c["domains"]}


def _decoys(cfg: dict) -> list[Case]:
    """Cases LayerCAM does not read, in no profile's grid: another model, training seed, split seed
    (split + 10: k1 is a prefix of k11), a smaller target share."""
    c = cfg["cam"]
    seed, split = (int(x) for x in c["replicate"])
    return [Case("other", "scratch", seed, split), Case(c["model"], "scratch", seed + 100, split),
            Case(c["model"], "scratch", seed, split + 10), Case(c["model"], "scratch", seed, split, None, 0.125)]


# --------------------------------------------------------------------------------- GPU workflow

def test_gpu_jobs_share_their_preparation_steps_verbatim():
    doc = _workflow("gpu-benchmark.yml")
    grid_job, merge = doc["jobs"]["grid"], doc["jobs"]["benchmark"]
    for prefix in SHARED:
        assert _named(grid_job, prefix) == _named(merge, prefix), prefix
    for job in (grid_job, merge):
        names = [s.get("name", "") for s in job["steps"]]
        pre = next(i for i, n in enumerate(names) if n.startswith("Preflight"))
        first_work = next(i for i, n in enumerate(names) if n.startswith(("Phantom data", "Splits")))
        assert names.index(next(n for n in names if n.startswith("Work tree"))) < pre < first_work
    assert merge["needs"] == ["plan", "grid"] and grid_job["strategy"]["fail-fast"] is False
    assert grid_job["strategy"]["matrix"]["shard"] == "${{ fromJSON(needs.plan.outputs.shards) }}"


def test_gpu_preflight_fails_fast_without_cuda(tmp_path):
    doc = _workflow("gpu-benchmark.yml")
    step = _named(doc["jobs"]["grid"], "Preflight")
    env = {"IN_IMAGE": str(_here(tmp_path)), "CUDA_VISIBLE_DEVICES": ""}
    res = _run_step(doc, "grid", step, tmp_path, tmp_path, {**GPU_GOOD, "SHARD": "0", "N_SHARDS": "8"}, env)
    assert res.returncode == 2 and "CUDA did not come up" in res.stderr and "train.device=cpu" in res.stderr
    # --require-cuda: a profile on `auto` is refused on a CPU too (tests/perf/test_gpu_check.py runs it)
    assert "--require-cuda" in step["run"]


def test_gpu_shard_runs_its_part_of_the_study(tmp_path):
    doc = _workflow("gpu-benchmark.yml")
    step = _step(doc, "grid", "nox -s benchmark")
    log = tmp_path / "argv"
    in_image = _fake_bin(tmp_path / "bin", "in-image", f'printf "%s\\n" "$@" > "{log}"\n')
    res = _run_step(doc, "grid", step, tmp_path, tmp_path, {**GPU_GOOD, "SHARD": "2", "N_SHARDS": "8"},
                    {"IN_IMAGE": str(in_image)})
    assert res.returncode == 0, res.stderr
    assert log.read_text().splitlines() == ["env", "THTL_BENCH_PART=study:2/8", "nox", "-s", "benchmark", "--", "paper"]
    merge = _step(doc, "benchmark", "nox -s benchmark")
    assert "THTL_BENCH_PART=perf" in merge["run"]


def test_gpu_shard_keeps_its_json_and_layercams_checkpoints(tmp_path):
    doc = _workflow("gpu-benchmark.yml")
    step = _step(doc, "grid", "cam-checkpoints")
    assert step["if"].startswith("${{ always()")
    cfg = config.load(ROOT / "params.yaml", "paper")
    work = tmp_path / "work"
    (work / ".benchmarks").mkdir(parents=True)
    (work / ".benchmarks" / "paper-abc123.json").write_text("{}")
    _checkpoints(work / "checkpoints" / "paper", grid.cases(cfg) + _decoys(cfg))
    res = _run_step(doc, "grid", step, tmp_path, tmp_path, {**GPU_GOOD, "SHARD": "3", "N_SHARDS": "8"},
                    {"IN_IMAGE": str(_here(tmp_path)), "WORK": str(work)})
    assert res.returncode == 0, res.stderr
    assert [p.name for p in (work / ".benchmarks" / "shards").iterdir()] == ["paper-abc123-shard3.json"]
    kept = {p.name for p in (work / "cam-checkpoints").iterdir()}
    assert _layercam_needs(cfg) <= kept and not kept & {c.slug for c in _decoys(cfg)}
    upload = next(s for s in doc["jobs"]["grid"]["steps"] if s.get("uses", "").startswith("actions/upload-artifact@"))
    assert upload["if"].startswith("${{ always()") and "cam-checkpoints" in upload["with"]["path"]
    download = next(s for s in doc["jobs"]["benchmark"]["steps"]
                    if s.get("uses", "").startswith("actions/download-artifact@"))
    assert upload["with"]["name"].removesuffix("${{ matrix.shard }}") + "*" == download["with"]["pattern"]


def test_gpu_merge_reports_with_the_shards_layercam_checkpoints_then_gates():
    doc = _workflow("gpu-benchmark.yml")
    steps = doc["jobs"]["benchmark"]["steps"]
    runs = [s.get("run", "") + s.get("uses", "") for s in steps]
    order = ["actions/download-artifact@", "THTL_BENCH_PART=perf", "nox -s report", "thtl-bench compare"]
    at = [next(i for i, r in enumerate(runs) if key in r) for key in order]
    assert at == sorted(at)
    assert "grid.checkpoints_dir=cam-checkpoints" in runs[at[2]]


# --------------------------------------------------------------------------------- grid matrix

def _grid_matrix_cam_step(tmp_path: Path, profile: str, run: str | None = None) -> tuple[subprocess.CompletedProcess, set]:
    doc = _workflow("grid-matrix.yml")
    step = dict(_step(doc, "grid", "cam-$CKPT"))
    if run is not None:
        step["run"] = run
    cfg = config.load(ROOT / "params.yaml", profile)
    _checkpoints(tmp_path / "shared-checkpoints", grid.cases(cfg) + _decoys(cfg))
    _here(tmp_path)
    res = _run_step(doc, "grid", step, tmp_path, tmp_path,
                    {"PROFILE": profile, "RUNNER_LABEL": "ubuntu-latest", "SHARDS": "4", "GRID_ARGS": "", "SHARD": "0"})
    out = tmp_path / "cam-shared-checkpoints"
    return res, ({p.name for p in out.iterdir()} if out.is_dir() else set())


@pytest.mark.parametrize("profile", ["smoke", "domains", "paper"])
def test_grid_matrix_keeps_exactly_the_checkpoints_layercam_reads(tmp_path, profile):
    res, kept = _grid_matrix_cam_step(tmp_path, profile)
    assert res.returncode == 0, res.stderr
    cfg = config.load(ROOT / "params.yaml", profile)
    c = cfg["cam"]
    want = {case.slug for case in grid.cases(cfg) if case.model == c["model"]
            and [case.seed, case.split] == [int(x) for x in c["replicate"]]
            and case.target_fraction == 1.0 and case.intermediate_fraction == 1.0}
    assert kept == want and _layercam_needs(cfg) <= kept


def test_grid_matrix_cam_step_fails_on_the_old_key(tmp_path):
    """The planted defect (the step as it was): `cam["seed"]` is no key of the config."""
    doc = _workflow("grid-matrix.yml")
    old = _step(doc, "grid", "cam-$CKPT")["run"].replace('seed, split = c["replicate"]', 'seed, split = c["seed"], 0')
    res, kept = _grid_matrix_cam_step(tmp_path, "smoke", old)
    assert res.returncode != 0 and "KeyError: 'seed'" in res.stderr and not kept


def test_grid_matrix_shards_upload_also_after_a_failure():
    doc = _workflow("grid-matrix.yml")
    steps = doc["jobs"]["grid"]["steps"]
    upload = next(s for s in steps if s.get("uses", "").startswith("actions/upload-artifact@"))
    assert upload["if"] == "always()" and _step(doc, "grid", "cam-$CKPT")["if"] == "always()"
    names = [s.get("name", "") for s in steps]
    pre = next(i for i, n in enumerate(names) if n.startswith("Preflight"))
    assert pre < next(i for i, n in enumerate(names) if "data" in n.lower())
    assert "python -m thtl_bench.perf.preflight --profile \"$PROFILE\"" in steps[pre]["run"]


def test_gpu_steps_reach_python_only_through_the_image():
    """The GPU jobs run project code only inside the container ("$IN_IMAGE ..."), never on the runner."""
    doc = _workflow("gpu-benchmark.yml")
    for job in ("grid", "benchmark"):
        for step in doc["jobs"][job]["steps"]:
            for line in step.get("run", "").splitlines():
                words = line.strip().split()
                if words and words[0] in ("python", "nox", "thtl-bench", "pytest-benchmark"):
                    pytest.fail(f"{job}: {step.get('name')}: {line.strip()} runs on the runner")
