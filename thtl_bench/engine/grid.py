"""The grid of cases, deterministic shards, and a progress-bar runner.

A profile's grid: models x replicates (training seed, split seed) x arms, with the THTL arms
once per intermediate domain (`grid.domains`) and the size axes `grid.target_fractions` /
`grid.intermediate_fractions`. The size axes vary one at a time, the other at its largest value
(a THTL child at target share t and intermediate share i runs when t or i is the largest), so
each axis gets its curve without crossing every pair. Target-only arms (scratch, one-step) are
shared by every domain; THTL step 1 by every target share.

Sharding: the unit of work is a case, except that the THTL children of one step 1 travel with
it, so the shard that trains step 1 also runs its children and nothing is trained twice. Units
are assigned longest-first to the least-loaded shard (ties: lowest shard index), a deterministic
partition in which every case lands in exactly one shard. When there are fewer units than
shards, THTL units are split into single cases to keep every shard busy; a shard that then runs
a THTL child without its step 1 finds step 1's record and `best.pt` (checked by case_id and
sha256) in the shared folders, waits for the shard training it (engine.lock), or trains it
itself when nobody has: step 1 is trained once per (model, replicate, domain, share) however the
shards fall.
"""

from __future__ import annotations

import time

from thtl_bench import arms, domains
from thtl_bench.engine.identity import parent_case
from thtl_bench.errors import UserError
from thtl_bench.records import Case


def case_cost(case: Case) -> float:
    """Relative cost of one case (all-layer case = 1, arms.Arm.cost): shard balance and ETAs."""
    return arms.get(case.arm).cost


def arm_replicates(g: dict, arm: str) -> list[tuple[int, int]]:
    """The replicates an arm runs: the first `grid.arm_replicates[arm]` of `grid.replicates`, or all
    of them. THTL step 1 runs wherever one of its children (or itself) is listed: a child never
    lacks its parent."""
    reps = [(int(s), int(k)) for s, k in g["replicates"]]
    counts = g.get("arm_replicates") or {}
    chosen = set(g["arms"])

    def first(name: str) -> int:
        return len(reps) if name not in counts else int(counts[name])

    n = first(arm)
    if arms.get(arm).trains_on == "intermediate":
        kids = [a.name for a in arms.ARMS.values() if a.parent == arm and a.name in chosen]
        n = max([n if arm in counts else 0] + [first(k) for k in kids]) if kids else n
    return reps[:n]


def cases(cfg: dict) -> list[Case]:
    """Every case of the grid in canonical order: models, replicates, then the target-only arms
    (per target share), then per intermediate domain step 1 (per intermediate share) and its
    children (per share pair, one axis at a time). An arm with `grid.arm_replicates` runs only its
    first replicates (arm_replicates(); counts of arms outside grid.arms change nothing), and a
    model with `grid.model_replicates` only its first ones."""
    g = cfg["grid"]
    chosen = [arms.get(a).name for a in g["arms"]]  # unknown names fail loudly
    ordered = [a for a in arms.NAMES if a in chosen]
    runs = {a: set(arm_replicates(g, a)) for a in ordered}
    per_model = g.get("model_replicates") or {}
    doms = [domains.intermediate(d).name for d in g["domains"]]
    tf = sorted({float(x) for x in g["target_fractions"]})
    inf = sorted({float(x) for x in g["intermediate_fractions"]})
    pairs = [(t, i) for t in tf for i in inf if t == tf[-1] or i == inf[-1]]
    out: list[Case] = []
    for m in g["models"]:
        mine = g["replicates"][:int(per_model[m])] if m in per_model else g["replicates"]
        for seed, split in mine:
            seed, split = int(seed), int(split)
            here = [a for a in ordered if (seed, split) in runs[a]]
            for a in here:
                if not arms.get(a).via_intermediate:
                    out += [Case(m, a, seed, split, None, t) for t in tf]
            for d in doms:
                for a in here:
                    arm = arms.get(a)
                    if arm.trains_on == "intermediate":
                        out += [Case(m, a, seed, split, d, 1.0, i) for i in inf]
                    elif arm.via_intermediate:
                        out += [Case(m, a, seed, split, d, t, i) for t, i in pairs]
    return out


def _units(cs: list[Case], keep_groups: bool) -> list[list[Case]]:
    units: list[list[Case]] = []
    families: dict[Case, list[Case]] = {}
    for c in cs:
        root = c if arms.get(c.arm).trains_on == "intermediate" else parent_case(c)
        if keep_groups and root is not None:
            if root not in families:
                families[root] = []
                units.append(families[root])
            families[root].append(c)
        else:
            units.append([c])
    return units


def shard(cs: list[Case], i: int, n: int) -> list[Case]:
    """The cases of shard `i` of `n` (0-based), in canonical order."""
    if n < 1 or not 0 <= i < n:
        raise UserError(f"shard {i}/{n}: need 0 <= i < n (shards are numbered from 0)")
    units = _units(cs, keep_groups=True)
    if len(units) < n:
        units = _units(cs, keep_groups=False)
    load = [0.0] * n
    owner: dict[Case, int] = {}
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

    A case that fails with a UserError (e.g. divergence, a damaged parent) does not stop the
    others; the failures are raised together at the end.
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
        for case in todo:
            bar.set_postfix_str(case.slug)
            t0 = time.perf_counter()
            try:
                rec = run_case(cfg, case, progress=on_epoch, ensure_checkpoint=ensure_checkpoint)
            except UserError as exc:
                failed.append(f"{case.slug}: {exc}")
                bar.write(f"FAILED {case.slug}: {exc}")
                bar.update(1)
                continue
            out.append(rec)
            acc = (rec.get("metrics") or {}).get("test", {}).get("accuracy")
            bar.write(f"{rec['slug']:<48} {rec['status']:<8} test acc "
                      f"{'-' if acc is None else f'{acc:.3f}'}  {time.perf_counter() - t0:6.1f}s")
            bar.update(1)
    finally:
        bar.close()
    if failed:
        raise UserError(f"{len(failed)} case(s) failed:\n" + "\n".join(failed))
    return out

