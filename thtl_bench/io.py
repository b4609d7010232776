"""The one place for file writes, file digests and git facts.

- `atomic_write(path, write)`: every file the suite writes (records, checkpoints, splits, caches,
  reports) goes through a temporary file in the same folder, fsync and os.replace, so a reader
  never sees a partial file and a crash keeps the previous version. Files are 0644 (a shared
  Slurm or container folder: others must read them; mkstemp alone gives 0600), whatever the umask.
- `file_digest(path, "sha256" | "md5")`: streamed; the data fingerprints, weights checksums and
  checkpoint hashes use it.
- `dvc_lock_output(lock, path)`: what dvc.lock records for one stage output (the data folder's
  DVC hash, read by `data verify` and REPORT.md's provenance).
- `git_describe()`: the commit of this checkout and whether the code or parameters differ from it
  (the only meaning of "dirty" here: tracked changes under the package or to params.yaml; outputs
  such as records or REPORT.md do not count).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

FILE_MODE = 0o644
# What "dirty" means: the code and the parameters that make results (not the outputs).
CODE_PATHS = ("thtl_bench", "params.yaml", "pyproject.toml", "requirements")


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], None]) -> Path:
    """Call `write(fh)` on a temporary binary file next to `path`, fsync it, then rename it over
    `path` (mode 0644). On any error the temporary file is removed and `path` is untouched."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    return atomic_write(path, lambda fh: fh.write(data))


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def to_jsonable(x: Any) -> Any:
    """numpy scalars/arrays, paths and dataclasses as plain JSON values."""
    if hasattr(x, "tolist"):
        return x.tolist()
    if isinstance(x, Path):
        return str(x)
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return dataclasses.asdict(x)
    raise TypeError(f"not JSON-serialisable: {type(x).__name__}")


def json_text(obj: Any) -> str:
    """The suite's JSON files: indented, sorted keys, newline-terminated (stable diffs in git)."""
    return json.dumps(obj, indent=1, sort_keys=True, default=to_jsonable) + "\n"


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(path, json_text(obj))


def file_digest(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    """Hex digest of a file's bytes, read in 1 MiB blocks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def sha256_file(path: str | os.PathLike) -> str:
    return file_digest(path, "sha256")


# ----------------------------------------------------------------------------- git

def repo_root() -> Path:
    """The checkout holding this package (the package lives at <root>/thtl_bench)."""
    return Path(__file__).resolve().parent.parent


def git(*args: str, binary: bool = False, cwd: str | os.PathLike | None = None,
        timeout: float = 120) -> subprocess.CompletedProcess | None:
    """`git ARGS` in `cwd` (default: the current folder); None when git cannot run at all."""
    try:
        return subprocess.run(["git", *args], capture_output=True, text=not binary, timeout=timeout,
                              cwd=cwd)
    except (OSError, subprocess.SubprocessError):
        return None


@functools.lru_cache(maxsize=4)
def git_describe(root: str | None = None) -> dict:
    """{commit, short, dirty} of the checkout at `root` (default: this package's checkout);
    outside a git checkout the commit is $THTL_GIT_COMMIT / $GITHUB_SHA (None when unset) and
    dirty is None (unknown). `dirty`: tracked changes to CODE_PATHS."""
    cwd = Path(root) if root else repo_root()
    head = git("rev-parse", "HEAD", cwd=cwd, timeout=20)
    if head is None or head.returncode != 0 or not head.stdout.strip():
        # A container or archive without .git: the commit the workflow passes in, if any.
        env = os.environ.get("THTL_GIT_COMMIT") or os.environ.get("GITHUB_SHA")
        return {"commit": env, "short": env[:12] if env else None, "dirty": None}
    status = git("status", "--porcelain", "--untracked-files=no", "--",
                 *(f":(top){p}" for p in CODE_PATHS), cwd=cwd, timeout=20)
    sha = head.stdout.strip()
    dirty = bool(status is not None and status.stdout.strip())
    return {"commit": sha, "short": sha[:12], "dirty": dirty}


def git_label(root: str | None = None) -> str | None:
    """'<sha>' or '<sha>+dirty' (records' env.git_commit), None outside git."""
    d = git_describe(root)
    if d["commit"] is None:
        return None
    return d["commit"] + ("+dirty" if d["dirty"] else "")


def dvc_lock_output(lock: str | os.PathLike, path: str | os.PathLike) -> tuple[str, dict, dict] | None:
    """(stage name, its `outs` entry, its params.yaml values) of the dvc.lock output at `path`
    (outputs are relative to the lock's folder; both sides are resolved), or None when the lock
    is absent or records no such output. A lock that is not YAML raises ValueError."""
    import yaml

    lock = Path(lock)
    if not lock.is_file():
        return None
    try:
        doc = yaml.safe_load(lock.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ValueError(f"{lock} is not valid YAML ({exc}); restore it (`git checkout {lock.name}`) or "
                         "rewrite it with `dvc repro`") from exc
    want = Path(path).resolve()
    for name, stage in (doc.get("stages") or {}).items():
        for out in (stage or {}).get("outs") or []:
            if (lock.parent / str(out.get("path", ""))).resolve() == want:
                return str(name), out, (stage.get("params") or {}).get("params.yaml") or {}
    return None
