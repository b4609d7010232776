"""nox sessions: tests, benchmark, report, compare, lint (thin shells over pytest and the CLI).

Sessions reuse the current environment (`venv_backend="none"`): torch is about 5 GB and is
installed once, from requirements/*.txt, by `.ci/run` or the Docker image; a fresh virtualenv per
session would download or copy it again every time. For an isolated run set THTL_NOX_VENV=1: each
session then gets its own virtualenv with the system site packages visible (torch and the pinned
requirements are reused from there) and this package installed into it.

    nox -s tests                         # fast tests, benchmarks skipped; args go to pytest
    nox -s benchmark -- paper            # profile: first argument, else $THTL_PROFILE, else params.yaml
    nox -s report -- paper               # aggregate + LayerCAM figures + REPORT.md (params.yaml's
                                         # profile: `dvc repro`, so dvc.lock stays the pipeline's)
    nox -s compare -- A B                # thtl-bench compare A B
    nox -s lint
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import nox

ROOT = Path(__file__).resolve().parent
FRESH_VENV = os.environ.get("THTL_NOX_VENV") == "1"
BACKEND = "virtualenv" if FRESH_VENV else "none"
VENV_PARAMS = ["--system-site-packages"] if FRESH_VENV else []

nox.options.sessions = ["lint", "tests"]


def _prepare(session: nox.Session) -> None:
    """In a fresh virtualenv, install this package (dependencies come from the system site)."""
    if FRESH_VENV:
        session.install("--no-deps", "-e", str(ROOT))


def _default_profile() -> str:
    import yaml

    params = Path(os.environ.get("THTL_PARAMS", ROOT / "params.yaml"))
    return str((yaml.safe_load(params.read_text()) or {}).get("profile", "smoke"))


def _split_profile(posargs: list[str]) -> tuple[str, list[str]]:
    """(profile, remaining args): the first argument if it is not an option, else
    $THTL_PROFILE, else params.yaml's `profile` key."""
    if posargs and not posargs[0].startswith("-"):
        return posargs[0], list(posargs[1:])
    return os.environ.get("THTL_PROFILE") or _default_profile(), list(posargs)


def _commit() -> str:
    """Short commit of the checkout (with -dirty when code or parameters changed: the one meaning,
    thtl_bench.io.git_describe), for naming benchmark files; CI images without .git pass it as
    $THTL_GIT_COMMIT or $GITHUB_SHA."""
    from thtl_bench.io import git_describe

    d = git_describe(str(ROOT))
    return (d["short"] or "nogit") + ("-dirty" if d["dirty"] else "")


@nox.session(venv_backend=BACKEND, venv_params=VENV_PARAMS)
def tests(session: nox.Session) -> None:
    """Unit and integration tests; benchmark cases are skipped. Extra args go to pytest."""
    _prepare(session)
    session.run("pytest", "--benchmark-skip", *session.posargs)


@nox.session(venv_backend=BACKEND, venv_params=VENV_PARAMS)
def benchmark(session: nox.Session) -> None:
    """The benchmark cases of one profile. The JSON goes to .benchmarks/<profile>-<commit>.json
    and is also saved in pytest-benchmark's storage (.benchmarks/<machine>/NNNN_<profile>-<commit>.json),
    so later runs can use --benchmark-compare."""
    _prepare(session)
    profile, rest = _split_profile(session.posargs)
    name = f"{profile}-{_commit()}"
    (ROOT / ".benchmarks").mkdir(exist_ok=True)  # pytest-benchmark does not create the JSON's folder
    if _dvc_runs(profile, []):
        # The data through DVC's own synth stage (regenerated, checked, cached): the report
        # session's `dvc repro` then finds it up to date instead of making it a second time.
        dvc = shutil.which("dvc")
        session.run(*([dvc] if dvc else ["python", "-m", "dvc"]), "repro", "synth")
    session.run(
        "pytest", "benchmarks", "--benchmark-only",
        f"--benchmark-json=.benchmarks/{name}.json", f"--benchmark-save={name}",
        *rest, env={"THTL_PROFILE": profile},
    )


# The report chain without DVC: dvc.yaml's stages after `grid`, in its order (tests/repo/test_dvc.py
# checks the two agree).
REPORT_COMMANDS = ("flops", "references", "transfer", "calibrate", "aggregate", "cam", "report")


def _dvc_runs(profile: str, rest: list[str]) -> bool:
    """Whether `dvc repro` makes this report: the profile is the one dvc.yaml runs (params.yaml's
    `profile`, the file DVC reads), no CLI arguments are added, and this is a DVC checkout in git."""
    return (profile == _default_profile() and not rest and "THTL_PARAMS" not in os.environ
            and (ROOT / ".dvc").is_dir() and (ROOT / ".git").exists())


@nox.session(venv_backend=BACKEND, venv_params=VENV_PARAMS)
def report(session: nox.Session) -> None:
    """Count FLOPs for the projection, the reference points and transferability scores, the rule's
    calibration at this design (reused from the benchmark session when the records are unchanged),
    aggregate the profile's records, render the LayerCAM figures, write REPORT.md.

    For the profile dvc.yaml runs this is `dvc repro`: the stages whose inputs changed run (the
    records `nox -s benchmark` wrote are the grid stage's output, and its re-run trains nothing
    they already hold), so `nox -s benchmark report` leaves the dvc.lock that `dvc repro` leaves and
    `dvc status` is clean after it. `dvc commit` after the same commands run by hand would record
    whatever the workspace holds, stale records included. Any other profile, or extra arguments
    (e.g. -S grid.checkpoints_dir=...): the CLI commands below, without DVC; dvc.lock, which
    describes params.yaml's profile, is left alone."""
    _prepare(session)
    profile, rest = _split_profile(session.posargs)
    if _dvc_runs(profile, rest):
        dvc = shutil.which("dvc")
        session.run(*([dvc] if dvc else ["python", "-m", "dvc"]), "repro")
        return
    for command in REPORT_COMMANDS:
        session.run("thtl-bench", command, "--profile", profile, *rest)


@nox.session(venv_backend=BACKEND, venv_params=VENV_PARAMS)
def compare(session: nox.Session) -> None:
    """`thtl-bench compare A B` (record folders, report JSONs or git revisions)."""
    _prepare(session)
    if len(session.posargs) < 2:
        session.error("usage: nox -s compare -- A B [options]")
    session.run("thtl-bench", "compare", *session.posargs)


@nox.session(venv_backend=BACKEND, venv_params=VENV_PARAMS)
def lint(session: nox.Session) -> None:
    """ruff on the Python sources, the import contracts (lint-imports), hadolint on the Dockerfile,
    zizmor (offline) on the GitHub workflows."""
    if FRESH_VENV:
        session.install("-r", str(ROOT / "requirements" / "dev.txt"))
    session.run("ruff", "check", ".", *session.posargs)
    session.run("lint-imports")
    session.run("hadolint", "Dockerfile")
    session.run("zizmor", "--offline", "--no-progress", ".github/workflows")
