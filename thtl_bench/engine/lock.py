"""One process at a time per case, across processes sharing `grid.checkpoints_dir`.

Shards, one worker per GPU and Slurm array tasks may reach the same case (THTL step 1 in
particular); a second process waits here, then finds the record and reuses it, so no case is
trained twice or written by two at once.

POSIX flock on `<slug>/case.lock` (ignored by DVC, .dvcignore). Across machines this holds only
where the shared file system implements flock (local disks, NFSv4, Lustre with -o flock); where
it refuses (ENOSYS, ENOLCK, EOPNOTSUPP) the case runs unlocked with a warning, and where locks
are node-local (NFS `local_lock`, BeeGFS default) two nodes are not kept apart.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import sys
import threading

from thtl_bench.engine.identity import checkpoint_dir
from thtl_bench.records import Case

try:
    import fcntl
except ImportError:  # not POSIX: cases are not locked against other processes
    fcntl = None

LOCK_NAME = "case.lock"

_HELD = threading.local()  # case locks this thread holds: flock would deadlock on re-entry
_NO_FLOCK = (errno.ENOSYS, errno.ENOLCK, errno.EOPNOTSUPP)


@contextlib.contextmanager
def case_lock(cfg: dict, case: Case):
    """Hold one case exclusively (see the module docstring); taking it twice in one thread is an
    error rather than a deadlock."""
    path = checkpoint_dir(cfg, case) / LOCK_NAME
    key = str(path.resolve())
    held = _HELD.__dict__.setdefault("paths", set())
    if key in held:
        raise RuntimeError(f"case lock {path} taken twice by one thread (a case that runs itself?)")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        locked = fcntl is not None
        if locked:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                print(f"{case.slug}: another process is running this case; waiting for "
                      f"it ({path})", file=sys.stderr, flush=True)
                fcntl.flock(fh, fcntl.LOCK_EX)
            except OSError as exc:
                if exc.errno not in _NO_FLOCK:
                    raise
                locked = False
                _warn_once(str(path.parent.parent), exc.strerror or str(exc))
        held.add(key)
        try:
            yield
        finally:
            held.discard(key)
            if locked:
                fcntl.flock(fh, fcntl.LOCK_UN)


@functools.cache
def _warn_once(folder: str, why: str) -> None:
    print(f"warning: the file system of {folder} does not lock files ({why}); cases run unlocked, so "
          "shards sharing it may train the same case twice", file=sys.stderr, flush=True)
