"""Everything REPORT.md shows besides the summary, read in one place: LayerCAM entries (cam.json),
benchmark figures (perf.json, bench_session.json, bench_last_run.json), the data version (the data folder's DVC
hash in dvc.lock), the report code's commit and library versions. The running side wrote each of them."""

from __future__ import annotations

import json
import platform
from pathlib import Path

from thtl_bench.errors import UserError
from thtl_bench.io import CODE_PATHS, dvc_lock_output, git_describe


def repo_commit() -> str:
    """The commit that renders the report. Dirty means code or parameters (io.CODE_PATHS);
    outputs (summary.json, dvc.lock, REPORT.md) change while `dvc repro` runs and do not count."""
    d = git_describe()
    if d["commit"] is None:
        return "unknown (not a git checkout)"
    return d["short"] + (f" + uncommitted changes to {', '.join(CODE_PATHS)}" if d["dirty"] else "")


def data_version(cfg: dict) -> str:
    """The DVC hash of the profile's data folder as dvc.lock (beside params.yaml) records it: the
    output of dvc.yaml's synth stage, or of whichever stage records that folder."""
    lock = Path(cfg.get("_params_file") or "params.yaml").parent / "dvc.lock"
    root = cfg["data"]["root"]
    try:
        found = dvc_lock_output(lock, root)
    except ValueError as exc:
        raise UserError(str(exc)) from exc
    if found is None:
        where = f"{lock} records no stage output {root}" if lock.is_file() else f"{lock} not found"
        return f"{where} (data not versioned by DVC in this checkout: `dvc repro synth` records it)"
    stage, out, _ = found
    return f"md5 {out.get('md5')} ({lock}, stage {stage})"


def lib_versions() -> str:
    import matplotlib
    import numpy
    import scipy
    import tabulate as tb

    return (f"python {platform.python_version()}, numpy {numpy.__version__}, scipy {scipy.__version__}, "
            f"tabulate {tb.__version__}, matplotlib {matplotlib.__version__}")


def read_cam(path: Path) -> list[dict] | None:
    """cam.json as written by thtl_bench.cam; None when absent."""
    if not path.is_file():
        return None
    try:
        entries = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: not valid JSON ({exc}); re-run `thtl-bench cam`") from exc
    need = ("model", "arm", "figure", "vessel_mass")
    if not isinstance(entries, list) or any(not isinstance(e, dict) or any(k not in e for k in need)
                                            for e in entries):
        raise UserError(f"{path}: expected a list of {{{', '.join(need)}, ...}}; re-run `thtl-bench cam`")
    return entries


def _json_or_note(path: Path) -> tuple[dict | None, str | None]:
    if not path.is_file():
        return None, None
    try:
        return json.loads(path.read_text()), None
    except json.JSONDecodeError as exc:
        return None, f"{path} is not valid JSON ({exc}): re-run `nox -s benchmark`."


def gather(cfg: dict) -> dict:
    """The report's inputs besides the summary (paths from `report:` and `data:`)."""
    rdir = Path(cfg["report"]["dir"])
    perf, perf_note = _json_or_note(rdir / "perf.json")
    session, session_note = _json_or_note(rdir / "bench_session.json")
    last_run, last_note = _json_or_note(rdir / "bench_last_run.json")
    return {
        "report_dir": rdir,
        "cam_path": rdir / "cam.json",
        "cam": read_cam(rdir / "cam.json"),
        "perf": perf, "session": session, "last_run": last_run,
        "bench_notes": [n for n in (perf_note, session_note, last_note) if n],
        "repo_commit": repo_commit(),
        "data_version": data_version(cfg),
        "libraries": lib_versions(),
    }
