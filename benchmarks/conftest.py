"""Benchmark harness: the profile's config, its data, progress lines and the session budget.

`nox -s benchmark [-- PROFILE]` runs `pytest benchmarks --benchmark-only`. The study cases
(test_study.py) come first, then the performance cases (test_perf.py), which read what the study
measured. At the end the session's wall time and peak memory are written to
`<report.dir>/bench_session.json` (issue 6, target 5), which REPORT.md's speed section shows.
"""

from __future__ import annotations

import os
import resource
import sys
import time
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # timm never waits on the hub
os.environ.setdefault("TIMM_OFFLINE", "1")

_T0 = time.perf_counter()
_ORDER = ("test_study.py", "test_perf.py")
_STUDY_COUNTS: dict = {}  # the progress fixture's state: study cases trained / reused this session
_DESELECTED: list = []  # items dropped by -k / -m: such a session is not the benchmark session


def _cfg() -> dict:
    from thtl_bench import config

    return config.load()  # profile: $THTL_PROFILE (set by nox) or params.yaml's `profile`


@pytest.fixture(scope="session")
def cfg() -> dict:
    """The effective config with its data folder present and verified (phantoms are regenerated
    from data.dvc's recipe when missing; real data must be in place)."""
    from thtl_bench.data.check import verify

    c = _cfg()
    if Path("data.dvc").is_file():
        for line in verify(c, regenerate=True):
            print(line)
    return c


@pytest.fixture(scope="session")
def progress(request):
    """A callback for the engine that prints one line per epoch past pytest's capture: the case
    count, elapsed time and ETA come from the study's own counter (see test_study.py)."""
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capman = request.config.pluginmanager.get_plugin("capturemanager")
    state = {"done": 0, "total": 0, "t0": time.perf_counter(), "last": 0.0}
    _STUDY_COUNTS.update(state=state)

    def write(text: str) -> None:
        if reporter is None or capman is None:
            print(text, file=sys.stderr)
            return
        with capman.global_and_fixture_disabled():  # past pytest's capture, on the terminal
            reporter.write_line(text)

    def show(ev: dict) -> None:
        now = time.perf_counter()
        if now - state["last"] < 2.0 and ev["epoch"] != ev["max_epochs"]:
            return  # at most one line every 2 s
        state["last"] = now
        done, total = state["done"], max(state["total"], 1)
        elapsed = now - state["t0"]
        eta = f"{eta_s(elapsed, state.get('done_cost', 0.0), state.get('total_cost', 0.0)):5.0f} s" \
            if state.get("done_cost") else "    -"
        write(f"  [{done}/{total} cases, {elapsed:5.0f} s, ETA {eta}] {ev['case']} "
              f"{ev['stage']} epoch {ev['epoch']}/{ev['max_epochs']} val_loss {ev['val_loss']:.3f}")

    show.state = state
    show.write = write
    return show


def eta_s(elapsed: float, done_cost: float, total_cost: float) -> float:
    """Seconds left, from the time so far per unit of work done (cases weighted by their arm's
    relative cost, grid.case_cost: an all-layer case weighs five head-only ones)."""
    return elapsed / done_cost * max(total_cost - done_cost, 0.0)


def pytest_collection_modifyitems(session, config, items):
    # Study cases first: the performance cases and the cost projection read their records.
    def rank(item) -> int:
        name = Path(str(item.fspath)).name
        return _ORDER.index(name) if name in _ORDER else len(_ORDER)

    items.sort(key=rank)  # stable: keeps the canonical case order within a file


def pytest_deselected(items):
    _DESELECTED.extend(items)


def _partial(session, exitstatus: int = 0) -> str | None:
    """Why this run is not the whole suite (then its wall time says nothing about target 5): a
    -k/-m selection, node ids or one file, an interrupted run or one stopped by -x/--maxfail."""
    if _DESELECTED:
        return f"{len(_DESELECTED)} case(s) deselected"
    if int(exitstatus) == int(pytest.ExitCode.INTERRUPTED) or session.shouldstop or session.shouldfail:
        return "the run was stopped before the end"
    by_file: dict[str, list] = {}
    for item in session.items:
        by_file.setdefault(Path(str(item.fspath)).name, []).append(item)
    missing = [f for f in _ORDER if f not in by_file]
    if missing:
        return f"{', '.join(missing)} not run"
    for name, items in by_file.items():
        module = getattr(items[0], "module", None)
        # Node ids select items without deselecting: compare with what the file holds.
        want = _expected_items(name, module)
        if want is not None and len(items) < want:
            return f"{len(items)} of {want} cases of {name} selected"
    return None


def _expected_items(name: str, module) -> int | None:
    if name == "test_study.py":
        from thtl_bench import grid

        return len(grid.cases(_cfg()))
    if module is not None:
        return sum(1 for k in vars(module) if k.startswith("test_") and callable(getattr(module, k)))
    return None


def _peak_rss_gib() -> float:
    # ru_maxrss is KiB on Linux; children cover any worker processes.
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, kids) / 2**20


def pytest_sessionfinish(session, exitstatus):
    if session.config.getoption("benchmark_skip", False) or not session.items:
        return
    from thtl_bench import envinfo
    from thtl_bench.records import atomic_write_json

    cfg = _cfg()
    wall = time.perf_counter() - _T0
    out = Path(cfg["report"]["dir"]) / "bench_session.json"
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    why = _partial(session, exitstatus)
    if why:
        if reporter is not None:
            reporter.write_line(f"partial benchmark session ({why}): {out} left as it was")
        return
    budget = cfg.get("bench", {})
    doc = {
        "profile": cfg["profile"],
        "wall_s": round(wall, 1),
        "peak_rss_gib": round(_peak_rss_gib(), 3),
        "cases": len(session.items),
        "failed": session.testsfailed,
        "exitstatus": int(exitstatus),
        "device": envinfo.device_name("cuda" if _cuda() else "cpu"),
        "cpu_count": os.cpu_count(),
        "targets": {"wall_s": budget.get("session_wall_s"), "peak_rss_gib": budget.get("session_peak_gib")},
    }
    st = _STUDY_COUNTS.get("state") or {}
    for key in ("study_cases_trained", "study_cases_reused"):
        doc[key] = st.get(key, 0)
    atomic_write_json(out, doc)
    if reporter is not None:
        reporter.write_line(f"benchmark session: {wall:.0f} s, peak RSS {doc['peak_rss_gib']:.2f} GiB "
                            f"(targets {doc['targets']}) -> {out}")


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()
