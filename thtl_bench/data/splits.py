"""Leak-free train/val/test splits that depend only on the data and a split seed.

Each replicate of the grid names its split seed (grid.replicates); every split seed is its own
patient-grouped split of every domain, written to splits/<domain>/k<seed>.csv.

Units of assignment are groups: a patient (or subject), merged with every other group that
shares an image by content hash, so neither a patient nor a duplicated image can straddle two
splits. Groups are placed per class (stratified) by a greedy fill of the split furthest below
its target share. A nested size fraction of the train split is defined by a fixed per-class
order of its groups (`rank`): a fraction takes the first groups of that order, so a smaller
fraction is always a subset of a larger one.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from thtl_bench.data.errors import DataError, Problem

SPLITS = ("train", "val", "test")
COLUMNS = ["id", "label", "group", "split", "rank", "sha256"]


def _units(ids, groups, hashes) -> list[int]:
    """Union-find of groups that share an image hash -> unit index per sample."""
    parent: dict[str, str] = {}

    def find(x):
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    first_group_of_hash: dict[str, str] = {}
    for g, h in zip(groups, hashes, strict=True):
        other = first_group_of_hash.setdefault(h, g)
        a, b = find(g), find(other)
        if a != b:
            parent[max(a, b)] = min(a, b)
    roots = [find(g) for g in groups]
    order = {r: i for i, r in enumerate(sorted(set(roots)))}
    return [order[r] for r in roots]


def _key(seed: int, name: str) -> int:
    # a hash, not a shared RNG stream: a unit's draw does not depend on which other units exist
    return int.from_bytes(hashlib.sha256(f"{seed}:{name}".encode()).digest()[:8], "big")


def make_splits(ids: list[str], labels: list[str], groups: list[str], hashes: list[str],
                seed: int, val: float, test: float) -> list[dict]:
    """One row per sample: id, label, group, split, rank (nesting order within train), sha256."""
    unit = _units(ids, groups, hashes)
    members: dict[int, list[int]] = defaultdict(list)
    for i, u in enumerate(unit):
        members[u].append(i)
    unit_label = {u: Counter(labels[i] for i in m).most_common(1)[0][0] for u, m in members.items()}
    unit_name = {u: min(groups[i] for i in m) for u, m in members.items()}
    split_of: dict[int, str] = {}
    rank_of: dict[int, int] = {}
    share = {"test": test, "val": val, "train": 1.0 - val - test}
    for c in sorted(set(unit_label.values())):
        us = sorted((u for u in members if unit_label[u] == c), key=lambda u: _key(seed, unit_name[u]))
        n = sum(len(members[u]) for u in us)
        got = dict.fromkeys(SPLITS, 0)
        # with few groups, give test and val one group each before filling by deficit
        for u in us:
            empty = [s for s in ("test", "val") if got[s] == 0 and share[s] > 0]
            s = empty[0] if empty and len(us) >= 3 else max(SPLITS, key=lambda s: share[s] * n - got[s])
            split_of[u] = s
            got[s] += len(members[u])
        train = [u for u in us if split_of[u] == "train"]
        for r, u in enumerate(sorted(train, key=lambda u: _key(seed + 1, unit_name[u]))):
            rank_of[u] = r
    return [{"id": ids[i], "label": labels[i], "group": groups[i], "split": split_of[unit[i]],
             "rank": rank_of.get(unit[i], -1), "sha256": hashes[i]} for i in range(len(ids))]


def apply_fraction(rows: list[dict], fraction: float) -> np.ndarray:
    """Split labels with the train split cut to `fraction` per class (rest -> "unused")."""
    split = np.array([r["split"] for r in rows], dtype=object)
    if fraction >= 1.0:
        return split.astype(str)
    if fraction <= 0:
        raise DataError(Problem("bad_fraction", "params.yaml", f"split fraction {fraction} must be in (0, 1]",
                                "set split.target_fraction / split.intermediate_fraction in (0, 1]"))
    by_class = defaultdict(list)
    for i, r in enumerate(rows):
        if r["split"] == "train":
            by_class[r["label"]].append(i)
    for idx in by_class.values():
        idx.sort(key=lambda i: (int(rows[i]["rank"]), rows[i]["id"]))
        want, kept, last_rank = fraction * len(idx), 0, None
        for i in idx:
            rk = int(rows[i]["rank"])
            # whole groups only: stop at the first new group once the share is reached (>= 1 group)
            if kept >= want and rk != last_rank and kept > 0:
                split[i] = "unused"
                continue
            kept += 1
            last_rank = rk
    return split.astype(str)


def leaks(rows: list[dict], where: str) -> list[Problem]:
    """Same image content or same patient in two splits (unused counts as train)."""
    probs = []
    for col, code, what in (("sha256", "duplicate_across_splits", "the same image content"),
                            ("group", "patient_leak", "the same patient/group")):
        seen = defaultdict(set)
        ids = defaultdict(list)
        for r in rows:
            s = "train" if r["split"] == "unused" else r["split"]
            seen[r[col]].add(s)
            ids[r[col]].append(f"{r['id']}[{s}]")
        for key, ss in sorted(seen.items()):
            if len(ss) > 1:
                probs.append(Problem(code, where, f"{what} ({key[:16]}) is in splits {sorted(ss)}: {ids[key][:4]}",
                                     "run `thtl-bench data split` to recompute leak-free splits, or delete the duplicate"))
    return probs


def write(path: Path, rows: list[dict]) -> None:
    # Atomic with a unique temp name: shards on a fresh checkout may all write it at once.
    from thtl_bench.io import atomic_write_text

    buf = io.StringIO()
    w = csv.DictWriter(buf, COLUMNS, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(path, buf.getvalue())  # 0644, fsynced (thtl_bench.io)


def read(path: Path) -> list[dict]:
    """The rows of a split file; a hand edit that breaks its form is refused, naming each line."""
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            rows = [(reader.line_num, r) for r in reader]
            fields = reader.fieldnames or []
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(Problem("bad_splits", str(path), f"cannot read the split file ({exc})",
                                "run `thtl-bench data split` to rewrite it")) from exc
    if not set(COLUMNS) <= set(fields):
        raise DataError(Problem("bad_splits", str(path), f"columns {COLUMNS} expected (found {fields})",
                                "run `thtl-bench data split` to rewrite it"))
    probs = [Problem("bad_splits", f"{path}:{line}", why, "run `thtl-bench data split` to rewrite it")
             for line, r in rows if (why := _row_fault(r, len(fields)))]
    if probs:
        raise DataError(probs, f"{path}: {len(probs)} malformed row(s)")
    for _, r in rows:
        r["rank"] = int(r["rank"])
    return [r for _, r in rows]


def _row_fault(r: dict, width: int) -> str | None:
    if None in r or any(r[c] is None for c in COLUMNS):
        return f"row does not have the header's {width} cells"
    if r["split"] not in SPLITS:
        return f"split {r['split']!r} is not one of {list(SPLITS)}"
    if not re.fullmatch(r"-?\d+", r["rank"]):
        return f"rank {r['rank']!r} is not a whole number"
    return None


def split_path(cfg: dict, domain: str, seed: int) -> Path:
    return Path(cfg["split"].get("dir", "splits")) / domain / f"k{int(seed)}.csv"


def split_seeds(cfg: dict) -> list[int]:
    """The split seeds the grid's replicates use, in first-use order."""
    return list(dict.fromkeys(int(r[1]) for r in cfg["grid"]["replicates"]))


def compute(cfg: dict, ids, labels, groups, hashes, seed: int) -> list[dict]:
    s = cfg["split"]
    return make_splits(list(ids), list(labels), list(groups), list(hashes), int(seed), float(s["val"]), float(s["test"]))


def validate(rows: list[dict], fresh: list[dict], where: str) -> list[Problem]:
    """Problems of a split file's rows against the splits computed from the data now: leaks
    first (the most specific), else any difference in images, labels, patients or contents,
    else in the assignment (other split settings, or a hand edit)."""
    bad = leaks(rows, where)
    if bad:
        return bad
    key = lambda rs: [(r["id"], r["sha256"], r["label"], r["group"]) for r in rs]  # noqa: E731
    if key(rows) != key(fresh):
        return [Problem("stale_splits", where, "the split file lists other images, labels, patients or contents "
                        "than the data folder", "run `thtl-bench data split` to recompute it")]
    if [(r["split"], r["rank"]) for r in rows] != [(r["split"], r["rank"]) for r in fresh]:
        return [Problem("stale_splits", where, "the split file was made with other split settings "
                        "(split seed / split.val / split.test) or edited by hand",
                        "run `thtl-bench data split` to recompute it")]
    return []


def resolve(cfg: dict, domain: str, ids, labels, groups, hashes, seed: int) -> list[dict]:
    """The splits of a domain for one split seed: read from splits/<domain>/k<seed>.csv, or
    computed and written when the file is missing. A file that disagrees with the data or the
    split settings is refused."""
    path = split_path(cfg, domain, seed)
    fresh = compute(cfg, ids, labels, groups, hashes, seed)
    if not path.is_file():
        write(path, fresh)
        return fresh
    rows = read(path)
    bad = validate(rows, fresh, str(path))
    if bad:
        raise DataError(bad, f"{path} leaks between splits" if bad[0].code != "stale_splits" else None)
    return rows


def counts(rows: list[dict], split: np.ndarray | None = None) -> dict[str, dict[str, int]]:
    split = split if split is not None else np.array([r["split"] for r in rows])
    out: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for r, s in zip(rows, split, strict=True):
        out[r["label"]][str(s)] += 1
    return {k: dict(v) for k, v in out.items()}
