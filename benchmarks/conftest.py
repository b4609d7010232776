"""Benchmark harness: the profile's config, its data, progress lines and the session budget.

`nox -s benchmark [-- PROFILE]` runs `pytest benchmarks --benchmark-only`. The study cases
(test_study.py) come first, then the performance cases (test_perf.py), which read what the study
measured. At the end the session's wall time and peak memory are written to
`<report.dir>/bench_session.json` (only by a whole, clean session) and `bench_last_run.json`
(always), which REPORT.md's speed section shows (thtl_bench.perf.session).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from thtl_bench.perf.session import ORDER, eta_s

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # timm never waits on the hub
os.environ.setdefault("TIMM_OFFLINE", "1")

_T0 = time.perf_counter()
_STUDY_COUNTS: dict = {}  # the progress fixture's state: study cases trained / reused this session
_DESELECTED: list = []  # items dropped by -k / -m: such a session is not the benchmark session
_ERRORS: list = []  # failed or errored cases of this session


def _cfg() -> dict:
    from thtl_bench import config

    return config.load()  # profile: $THTL_PROFILE (set by nox) or params.yaml's `profile`


@pytest.fixture(scope="session")
def cfg() -> dict:
    """The effective config with the profile's own data folder present and verified against the
    hash dvc.lock records for it (phantoms are regenerated from the recipe when missing; a folder
    the lock does not record for this recipe is used as found; data made for another profile or
    image size is refused: thtl_bench.data.check.verify)."""
    from thtl_bench.data.check import verify

    c = _cfg()
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


PART_ENV = "THTL_BENCH_PART"  # study:I/N (shard I of N of the study cases) | perf (the performance cases)


def part_filter(part: str, cfg: dict):
    """Whether an item belongs to `part` ($THTL_BENCH_PART) of a sharded benchmark run (the GPU
    workflow): `study:I/N` keeps the study cases of the engine's shard I of N (grid.shard keeps
    every THTL step 1 with its children), `perf` keeps the performance cases (run after the
    shards, on their merged records). Anything else is a UserError naming the variable."""
    from thtl_bench.engine import grid
    from thtl_bench.errors import UserError

    if part == "perf":
        return lambda item: Path(str(item.fspath)).name != "test_study.py"
    kind, _, spec = part.partition(":")
    try:
        if kind != "study":
            raise ValueError(kind)
        i, n = (int(x) for x in spec.split("/"))
        slugs = {c.slug for c in grid.shard(grid.cases(cfg), i, n)}
    except (ValueError, UserError):
        raise UserError(f"{PART_ENV}={part!r}: use study:I/N (0 <= I < N) or perf") from None

    def keep(item) -> bool:
        case = getattr(getattr(item, "callspec", None), "params", {}).get("case")
        return case is not None and case.slug in slugs

    return keep


def pytest_collection_modifyitems(session, config, items):
    # Study cases first: the performance cases and the cost projection read their records.
    def rank(item) -> int:
        name = Path(str(item.fspath)).name
        return ORDER.index(name) if name in ORDER else len(ORDER)

    items.sort(key=rank)  # stable: keeps the canonical case order within a file
    part = os.environ.get(PART_ENV)
    if part:  # a part of a sharded run: the rest is deselected (and the session is partial)
        keep = part_filter(part, _cfg())
        dropped = [it for it in items if not keep(it)]
        items[:] = [it for it in items if keep(it)]
        if dropped:
            config.hook.pytest_deselected(items=dropped)


def pytest_deselected(items):
    _DESELECTED.extend(items)


def _items_by_file(session) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in session.items:
        name = Path(str(item.fspath)).name
        out[name] = out.get(name, 0) + 1
    return out


def _expected_items(session) -> dict[str, int | None]:
    """Cases each file holds when nothing is selected away (node ids select without deselecting)."""
    from thtl_bench.engine import grid

    out: dict[str, int | None] = {"test_study.py": len(grid.cases(_cfg())) + 1}  # + test_grid
    for item in session.items:
        name = Path(str(item.fspath)).name
        module = getattr(item, "module", None)
        if name != "test_study.py" and module is not None:
            out[name] = sum(1 for k in vars(module) if k.startswith("test_") and callable(getattr(module, k)))
    return out


def _record_failure(report, when: str) -> None:
    lines = str(report.longrepr).strip().splitlines() or ["?"]
    _ERRORS.append(f"{report.nodeid or 'collection'} ({when}): {lines[-1][:300]}")


def pytest_runtest_logreport(report):
    if report.failed:
        _record_failure(report, report.when)


def pytest_collectreport(report):
    if report.failed:  # an import error in a benchmark file: the whole run failed
        _record_failure(report, "collect")


def pytest_sessionfinish(session, exitstatus):
    if session.config.getoption("benchmark_skip", False) or session.config.getoption("collectonly", False) \
            or (not session.items and not _ERRORS):
        return  # nothing was benchmarked (skipped, only collected, or nothing selected)
    from thtl_bench.engine import env
    from thtl_bench.perf import session as bench_session

    cfg = _cfg()
    wall = time.perf_counter() - _T0
    stopped = (int(exitstatus) == int(pytest.ExitCode.INTERRUPTED) or bool(session.shouldstop)
               or bool(session.shouldfail))
    partial = bench_session.partial_reason(_items_by_file(session), _expected_items(session),
                                           len(_DESELECTED), stopped)
    if partial and os.environ.get(PART_ENV):
        partial = f"{PART_ENV}={os.environ[PART_ENV]}, one part of a sharded run: {partial}"
    st = _STUDY_COUNTS.get("state") or {}
    written, last = bench_session.finish(
        cfg, wall_s=wall, cases=len(session.items), failed=session.testsfailed, errors=list(_ERRORS),
        exitstatus=int(exitstatus), partial=partial, device=env.device_name("cuda" if _cuda() else "cpu"),
        counts=st)
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        if written:
            reporter.write_line(f"benchmark session: {wall:.0f} s, peak RSS {bench_session.peak_rss_gib():.2f} GiB "
                                f"-> {written}")
        else:
            reporter.write_line(f"benchmark session not whole or not clean ({partial or 'failures'}): "
                                f"measured figures left as they were; this run is described in {last}")


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()
