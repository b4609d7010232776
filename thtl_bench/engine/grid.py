"""The grid of cases (models x seeds x arms), deterministic shards, and a progress-bar runner.

Sharding: the unit of work is a case, except that a (model, seed)'s THTL arms travel with its
`thtl_step1` case, so the shard that trains step 1 also runs its children and nothing is trained
twice. Units are assigned longest-first to the least-loaded shard (ties: lowest shard index), a
deterministic partition in which every case lands in exactly one shard. When there are fewer
units than shards, THTL units are split into single cases to keep every shard busy; a shard that
then runs a THTL arm without its step 1 finds step 1's record and `best.pt` (checked by case_id)
in the shared `grid.records_dir` and `grid.checkpoints_dir`, waits for the shard that is training
it (engine.case.case_lock), or trains it itself when nobody has: with shared folders, step 1 is
trained once per (model, seed) however the shards fall.
"""

from __future__ import annotations

import time

from thtl_bench import arms
from thtl_bench.errors import UserError


def case_cost(case: tuple[str, str, int]) -> float:
    """Relative cost of one case (all-layer case = 1, arms.Arm.cost): shard balance and ETAs."""
    return arms.get(case[1]).cost


def cases(cfg: dict) -> list[tuple[str, str, int]]:
    """(model, arm, seed) in canonical order: models, then seeds, then arms in ARMS order."""
    g = cfg["grid"]
    chosen = [arms.get(a).name for a in g["arms"]]  # unknown names fail loudly
    ordered = [a for a in arms.NAMES if a in chosen]
    return [(m, a, int(s)) for m in g["models"] for s in g["seeds"] for a in ordered]


def _units(cs: list[tuple[str, str, int]], keep_groups: bool) -> list[list[tuple[str, str, int]]]:
    units: list[list] = []
    thtl: dict[tuple[str, int], list] = {}
    for c in cs:
        model, arm, seed = c
        a = arms.get(arm)
        family = arm if arm == "thtl_step1" else a.parent
        if keep_groups and family == "thtl_step1":
            key = (model, seed)
            if key not in thtl:
                thtl[key] = []
                units.append(thtl[key])
            thtl[key].append(c)
        else:
            units.append([c])
    return units


def shard(cs: list[tuple[str, str, int]], i: int, n: int) -> list[tuple[str, str, int]]:
    """The cases of shard `i` of `n` (0-based), in canonical order."""
    if n < 1 or not 0 <= i < n:
        raise UserError(f"shard {i}/{n}: need 0 <= i < n (shards are numbered from 0)")
    units = _units(cs, keep_groups=True)
    if len(units) < n:
        units = _units(cs, keep_groups=False)
    load = [0.0] * n
    owner: dict[tuple, int] = {}
    order = sorted(range(len(units)), key=lambda u: (-sum(case_cost(c) for c in units[u]), u))
    for u in order:
        k = min(range(n), key=lambda j: (load[j], j))
        load[k] += sum(case_cost(c) for c in units[u])
        for c in units[u]:
            owner[c] = k
    return [c for c in cs if owner[c] == i]


def run_grid(cfg: dict, shard: tuple[int, int] | None = None, progress: bool = True,
             ensure_checkpoint: bool = False) -> list[dict]:
    """Run every case of the grid (or of one shard); finished cases are skipped by run_case.

    A case that fails with a UserError (e.g. divergence) does not stop the others; the failures
    are raised together at the end.
    """
    from tqdm.auto import tqdm

    from thtl_bench.engine import run_case

    todo = cases(cfg)
    if shard is not None:
        todo = globals()["shard"](todo, *shard)
    out, failed = [], []
    bar = tqdm(total=len(todo), unit="case", disable=not progress, dynamic_ncols=True)

    def on_epoch(ev: dict) -> None:
        bar.set_postfix_str(f"{ev['case']} {ev['stage']} epoch {ev['epoch']}/{ev['max_epochs']}")

    try:
        for model, arm, seed in todo:
            bar.set_postfix_str(f"{model}__{arm}__s{seed}")
            t0 = time.perf_counter()
            try:
                rec = run_case(cfg, model, arm, seed, progress=on_epoch, ensure_checkpoint=ensure_checkpoint)
            except UserError as exc:
                failed.append(f"{model}__{arm}__s{seed}: {exc}")
                bar.write(f"FAILED {model}__{arm}__s{seed}: {exc}")
                bar.update(1)
                continue
            out.append(rec)
            acc = (rec.get("metrics") or {}).get("test", {}).get("accuracy")
            bar.write(f"{rec['slug']:<40} {rec['status']:<8} test acc "
                      f"{'-' if acc is None else f'{acc:.3f}'}  {time.perf_counter() - t0:6.1f}s")
            bar.update(1)
    finally:
        bar.close()
    if failed:
        raise UserError(f"{len(failed)} case(s) failed:\n" + "\n".join(failed))
    return out
