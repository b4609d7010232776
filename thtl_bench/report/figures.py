"""The report's figures (matplotlib object API, Agg, no pyplot state), one look (report.style).

Each figure comes as three functions over plain, explicit inputs (documented per figure):
    build_<name>(data, ...) -> Figure      the figure, for tests to inspect
    <name>_figure(data, path, ...) -> Path  the PNG (880 px wide, same bytes for the same data)
    <name>_rows(data) -> list[dict]         its plot data, long format, for `dvc plots` CSVs
Figures: arms_dot (models x arms, accuracy and malignant recall), claims_forest (report.forest),
confusion (per arm, one model), swft_steps (per replicate), size_axis (gain vs training fraction).
Inputs are sorted here (registry order for models and arms), so their order never changes a byte.
Fractions in, percent / percentage points out: the rows carry the plotted numbers.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from thtl_bench.report import style

METRIC_LABELS = {"accuracy": "test accuracy", "recall": "malignant recall (sensitivity)",
                 "specificity": "specificity", "precision": "precision", "f1": "F1", "auc": "ROC AUC"}
VERDICTS = tuple(style.VERDICT_COLOURS)
SIZE_AXES = {"target": "target (larynx) training fraction", "intermediate": "intermediate training fraction"}


def _pct(x: float | None) -> float | None:
    return None if x is None else round(100.0 * float(x), 6)


def _need(item: dict, keys: Sequence[str], what: str) -> None:
    missing = [k for k in keys if k not in item]
    if missing:
        raise ValueError(f"{what}: missing {missing} in {dict(sorted(item.items()))!r}")


def _jitter(key: str, n: int, width: float) -> np.ndarray:
    """Deterministic vertical offsets for n replicate dots (seeded by the cell, not the process)."""
    return np.random.default_rng(zlib.crc32(key.encode())).uniform(-width, width, n)


def _pct_axis(ax, axis: str = "x") -> None:
    from matplotlib.ticker import FuncFormatter

    (ax.xaxis if axis == "x" else ax.yaxis).set_major_formatter(FuncFormatter(lambda v, _: f"{v:g} %"))


# ============================================================================ 1. models x arms

def _dot_cells(cells: Sequence[dict], arm_order, model_order, domain_order) -> tuple[list, list, list, list]:
    for c in cells:
        _need(c, ("model", "arm", "metric", "mean"), "arms_dot cell")
    models = style.model_order((c["model"] for c in cells), model_order)
    arms = style.arm_order((c["arm"] for c in cells), arm_order)
    domains = style.ordered((c.get("domain", "larynx") for c in cells), list(domain_order or ["larynx"]))
    metrics = style.ordered((c["metric"] for c in cells), list(METRIC_LABELS))
    key = {(m, a, d, k): i for i, (m, a, d, k) in enumerate(
        (m, a, d, k) for m in models for a in arms for d in domains for k in metrics)}
    ordered = sorted(cells, key=lambda c: key[(c["model"], c["arm"], c.get("domain", "larynx"), c["metric"])])
    return ordered, models, arms, [(d, k) for d in domains for k in metrics]


def arms_dot_rows(cells: Sequence[dict], *, arm_order: Sequence[str] | None = None,
                  model_order: Sequence[str] | None = None) -> list[dict]:
    """One row per (model, arm, domain, metric, replicate); a cell without values gives one row
    with replicate None. Columns: model, arm, domain, metric, replicate, value_pct, mean_pct,
    lo_pct, hi_pct, n, undertrained (of that replicate; of the cell in a row without values)."""
    ordered, *_ = _dot_cells(cells, arm_order, model_order, None)
    rows = []
    for c in ordered:
        base = {"model": c["model"], "arm": c["arm"], "domain": c.get("domain", "larynx"), "metric": c["metric"]}
        stats = {"mean_pct": _pct(c["mean"]), "lo_pct": _pct(c.get("lo")), "hi_pct": _pct(c.get("hi")),
                 "n": c.get("n")}
        values = list(c.get("values") or [])
        flags = _replicate_flags(c, len(values))
        for i, v in (enumerate(values) if values else [(None, None)]):
            under = flags[i] if i is not None else bool(c.get("undertrained", False))
            rows.append({**base, "replicate": i, "value_pct": _pct(v), **stats, "undertrained": under})
    return rows


def _replicate_flags(c: dict, n: int) -> list[bool]:
    """Per replicate: under-trained? (`undertrained_replicates` when given, else the cell's flag)."""
    per = c.get("undertrained_replicates")
    if per is not None and len(per) == n:
        return [bool(x) for x in per]
    return [bool(c.get("undertrained", False))] * n


def build_arms_dot(cells: Sequence[dict], *, arm_order: Sequence[str] | None = None,
                   model_order: Sequence[str] | None = None, domain_order: Sequence[str] | None = None,
                   title: str | None = None, interval: str = "interval over replicates",
                   majority: float | None = None):
    """Dot plot of test metrics per model x arm: rows = arms (canonical order) grouped by model,
    one panel per (domain, metric) side by side, x in % with the 50 % chance line; with
    `majority` (a fraction: the test split's majority-class rate) the accuracy panels draw that
    line instead, what always predicting the commoner class scores.

    `cells`: [{model, arm, domain (default "larynx"), metric ("accuracy" | "recall" | another
    key of METRIC_LABELS), mean, lo, hi (fractions in [0, 1]; lo/hi None = no interval), n,
    values: [fraction per replicate], undertrained: bool (optional; drawn hollow)}].
    `interval` names what lo/hi are, for the legend.
    """
    from matplotlib.colors import to_rgba
    from matplotlib.lines import Line2D

    if not cells:
        raise ValueError("arms_dot: no cells to draw")
    ordered, models, arms, panels = _dot_cells(cells, arm_order, model_order, domain_order)
    present = {(c["model"], c["arm"]) for c in ordered}
    layout: list[tuple[str, str | None]] = []  # (model, None) = the model's header row
    for m in models:
        layout += [(m, None)] + [(m, a) for a in arms if (m, a) in present]
    ypos = {item: i for i, item in enumerate(layout)}
    several_domains = len({d for d, _ in panels}) > 1

    # one row of panels per domain (metrics side by side), so that titles keep their width
    doms = list(dict.fromkeys(d for d, _ in panels))
    mets = list(dict.fromkeys(m for _, m in panels))
    with style.styled():
        fig = style.new_figure((0.55 + 0.2 * len(layout)) * len(doms) + 0.4)
        grid = fig.subplots(len(doms), len(mets), sharey=True, sharex=True, squeeze=False)
        at = {(d, m): grid[i][j] for i, d in enumerate(doms) for j, m in enumerate(mets)}
        for key, ax in at.items():
            if key not in panels:
                ax.set_visible(False)
        axes = [at[p] for p in panels]
        for ax, (dom, metric) in zip(axes, panels, strict=True):
            for j, m in enumerate(models):  # shade every other model block
                if j % 2:
                    rows = [ypos[x] for x in layout if x[0] == m]
                    ax.axhspan(min(rows) - 0.5, max(rows) + 0.5, color="#F2F2F2", zorder=0, lw=0)
            at_majority = majority is not None and metric == "accuracy"
            ax.axvline(100.0 * majority if at_majority else 50.0,
                       **(style.MAJORITY_STYLE if at_majority else style.CHANCE_STYLE), zorder=1)
            for c in (c for c in ordered if (c.get("domain", "larynx"), c["metric"]) == (dom, metric)):
                y, colour = ypos[(c["model"], c["arm"])], style.arm_colour(c["arm"])
                hollow = bool(c.get("undertrained", False))  # the mean: at least one replicate under-trained
                raw = list(c.get("values") or [])
                keep = [(100.0 * v, f) for v, f in zip(raw, _replicate_flags(c, len(raw)), strict=True) if v is not None]
                if keep:
                    values = np.array([v for v, _ in keep])
                    key = f"{c['model']}|{c['arm']}|{dom}|{metric}"
                    # RGBA per dot: a global alpha would turn "none" faces into black ones
                    face = [(0.0, 0.0, 0.0, 0.0) if f else to_rgba(colour, 0.7) for _, f in keep]
                    ax.scatter(values, y + _jitter(key, len(values), 0.22), s=9, zorder=2, linewidths=0.6,
                               facecolors=face, edgecolors=to_rgba(colour, 0.7))
                if c.get("lo") is not None and c.get("hi") is not None:
                    ax.hlines(y, 100 * c["lo"], 100 * c["hi"], color=colour, lw=1.6, zorder=3)
                ax.plot([100 * c["mean"]], [y], marker="o", ms=6.5, color=colour, zorder=4, mew=1.3,
                        mfc="white" if hollow else colour, linestyle="none")
            ax.set_xlim(-3, 103)
            ax.set_xticks([0, 25, 50, 75, 100])
            _pct_axis(ax)
            ax.grid(axis="y", visible=False)
            label = METRIC_LABELS.get(metric, metric)
            # several domains: "domain: metric" (without the metric's gloss) on every panel
            ax.set_title(f"{dom}: {label.split(' (')[0]}" if several_domains else label)
        for row in grid:
            first = row[0]
            first.set_yticks(range(len(layout)))
            first.set_yticklabels([m if a is None else a for m, a in layout])
            for tick, (_, a) in zip(first.get_yticklabels(), layout, strict=True):
                if a is None:
                    tick.set_fontweight("bold")
                else:
                    tick.set_color(style.arm_colour(a))
            first.set_ylim(len(layout) - 0.5, -0.5)
            first.tick_params(axis="y", length=0)
        handles = [Line2D([], [], marker="o", color=style.NEUTRAL, ms=6, label=f"mean, bar = {interval}"),
                   Line2D([], [], marker="o", color=style.NEUTRAL, ms=3, ls="none", alpha=0.7, label="one replicate"),
                   Line2D([], [], **style.CHANCE_STYLE, label="50 % (chance)")]
        if majority is not None:
            handles.append(Line2D([], [], **style.MAJORITY_STYLE, label=f"majority class ({100 * majority:.0f} %)"))
        if any(c.get("undertrained") for c in ordered):
            handles.insert(2, Line2D([], [], marker="o", ms=6, ls="none", color=style.NEUTRAL, mfc="white",
                                     label="hollow: under-trained (mean: any replicate)"))
        fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 3))
        if title:
            fig.suptitle(title)
    return fig


def arms_dot_figure(cells: Sequence[dict], path: Path, **kw: Any) -> Path:
    """build_arms_dot(cells, **kw) saved as a PNG at `path`."""
    return style.save(build_arms_dot(cells, **kw), path)


# ============================================================================ 3. confusion

def _confusion_arms(data: dict, arm_order) -> list[dict]:
    _need(data, ("model", "classes", "arms"), "confusion data")
    k = len(data["classes"])
    for a in data["arms"]:
        _need(a, ("arm", "matrix"), "confusion arm")
        mat = np.asarray(a["matrix"])
        if mat.shape != (k, k) or (mat < 0).any():
            raise ValueError(f"confusion: arm {a['arm']}: matrix shape {mat.shape}, expected ({k}, {k}) "
                             f"non-negative counts (rows = true {data['classes']}, columns = predicted)")
    order = style.arm_order((a["arm"] for a in data["arms"]), arm_order)
    return sorted(data["arms"], key=lambda a: order.index(a["arm"]))


def _row_pct(mat: np.ndarray) -> np.ndarray:
    tot = mat.sum(axis=1, keepdims=True).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(tot > 0, 100.0 * mat / np.where(tot > 0, tot, 1.0), np.nan)


def confusion_rows(data: dict, *, arm_order: Sequence[str] | None = None) -> list[dict]:
    """One row per (arm, true class, predicted class). Columns: model, arm, true, predicted,
    count, row_pct (None for a class with no images), n_replicates."""
    out = []
    for a in _confusion_arms(data, arm_order):
        mat = np.asarray(a["matrix"], dtype=np.int64)
        pct = _row_pct(mat)
        for i, t in enumerate(data["classes"]):
            for j, p in enumerate(data["classes"]):
                out.append({"model": data["model"], "arm": a["arm"], "true": t, "predicted": p,
                            "count": int(mat[i, j]), "row_pct": None if np.isnan(pct[i, j]) else round(float(pct[i, j]), 6),
                            "n_replicates": a.get("n_replicates")})
    return out


def build_confusion(data: dict, *, arm_order: Sequence[str] | None = None, title: str | None = None):
    """Confusion matrices of one model, one small panel per arm (canonical order): counts summed
    over replicates and the row-normalised % in each cell, one shared colour scale (0-100 % of
    the true class) with its colour bar. Rows = true class, columns = predicted.

    `data`: {model, classes: ["benign", "malignant"], arms: [{arm, matrix: [[TN, FP], [FN, TP]]
    (rows true, columns predicted, in `classes` order), n_replicates}], positive: class name
    (optional, default the last class)}.
    """
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    arms = _confusion_arms(data, arm_order)
    if not arms:
        raise ValueError(f"confusion: no arms for model {data['model']}")
    classes = list(data["classes"])
    ncol = len(arms) if len(arms) <= 4 else -(-len(arms) // 2)
    nrow = -(-len(arms) // ncol)
    norm, cmap = Normalize(0.0, 100.0), "Blues"
    with style.styled():
        fig = style.new_figure(0.75 + 2.05 * nrow)
        axes = fig.subplots(nrow, ncol, squeeze=False)
        for ax in axes.flat[len(arms):]:
            ax.set_visible(False)
        for ax, a in zip(axes.flat, arms, strict=False):
            mat = np.asarray(a["matrix"], dtype=np.int64)
            pct = _row_pct(mat)
            ax.imshow(np.nan_to_num(pct, nan=0.0), cmap=cmap, norm=norm, aspect="equal")
            for i in range(len(classes)):
                for j in range(len(classes)):
                    txt = f"{mat[i, j]}\n" + ("–" if np.isnan(pct[i, j]) else f"{pct[i, j]:.0f} %")
                    dark = not np.isnan(pct[i, j]) and pct[i, j] > 55
                    ax.text(j, i, txt, ha="center", va="center", fontsize=7.5, color="white" if dark else "black")
            ax.set_xticks(range(len(classes)), classes)
            ax.set_yticks(range(len(classes)), classes, rotation=90, va="center")
            ax.tick_params(length=0)
            ax.grid(False)
            for s in ax.spines.values():
                s.set_visible(False)
            reps = a.get("n_replicates")
            ax.set_title(a["arm"] + ("" if reps is None else f"  ({reps} replicate{'' if reps == 1 else 's'})"), color=style.arm_colour(a["arm"]),
                         fontweight="bold")
            ax.set_xlabel("predicted")
            ax.set_ylabel("true")
        bar = fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=axes, shrink=0.8, aspect=25, pad=0.02)
        bar.set_label("% of the true class (row-normalised)")
        positive = data.get("positive") or classes[-1]
        fig.suptitle(title or f"Confusion matrices · {data['model']} · counts summed over replicates; "
                              f"positive class = {positive}")
    return fig


def confusion_figure(data: dict, path: Path, **kw: Any) -> Path:
    """build_confusion(data, **kw) saved as a PNG at `path`."""
    return style.save(build_confusion(data, **kw), path)


# ============================================================================ 4. SWFT steps

def _swft_check(data: dict) -> tuple[list[int], list[dict]]:
    _need(data, ("model", "steps", "replicates"), "swft_steps data")
    steps = sorted(int(s["step"]) for s in data["steps"])
    for r in data["replicates"]:
        _need(r, ("key", "val", "test", "selected"), "swft_steps replicate")
        if len(r["val"]) > len(steps) or len(r["test"]) > len(steps):
            raise ValueError(f"swft_steps: replicate {r['key']} has more values than the {len(steps)} steps")
        if r["selected"] is not None and int(r["selected"]) not in steps:
            raise ValueError(f"swft_steps: replicate {r['key']} selected step {r['selected']}, not in {steps}")
    return steps, sorted(data["replicates"], key=lambda r: str(r["key"]))


def _curve(values: Sequence[float | None], n: int) -> np.ndarray:
    out = np.full(n, np.nan)
    for i, v in enumerate(values):
        out[i] = np.nan if v is None else 100.0 * float(v)
    return out


def swft_steps_rows(data: dict) -> list[dict]:
    """One row per (replicate or "mean", split, step). Columns: model, replicate, split ("val" |
    "test"), step, group, accuracy_pct (None where absent), selected (this replicate chose this
    step; for "mean": how many replicates did)."""
    steps, reps = _swft_check(data)
    group = {int(s["step"]): s.get("group") for s in data["steps"]}
    out = []
    for split in ("val", "test"):
        curves = [_curve(r[split], len(steps)) for r in reps]
        for r, c in zip(reps, curves, strict=True):
            for i, s in enumerate(steps):
                out.append({"model": data["model"], "replicate": str(r["key"]), "split": split, "step": s,
                            "group": group[s], "accuracy_pct": None if np.isnan(c[i]) else round(float(c[i]), 6),
                            "selected": r["selected"] is not None and int(r["selected"]) == s})
        mean = _nanmean(curves, len(steps))
        for i, s in enumerate(steps):
            out.append({"model": data["model"], "replicate": "mean", "split": split, "step": s, "group": group[s],
                        "accuracy_pct": None if np.isnan(mean[i]) else round(float(mean[i]), 6),
                        "selected": sum(1 for r in reps if r["selected"] is not None and int(r["selected"]) == s)})
    return out


def _nanmean(curves: list[np.ndarray], n: int) -> np.ndarray:
    if not curves:
        return np.full(n, np.nan)
    arr = np.vstack(curves)
    counts = (~np.isnan(arr)).sum(axis=0)
    return np.where(counts > 0, np.nansum(arr, axis=0) / np.maximum(counts, 1), np.nan)


def build_swft_steps(data: dict, *, title: str | None = None, selected_by: str = "lowest validation loss"):
    """SWFT accuracy per step: validation (solid; it chose the step) and test (dashed; diagnostic
    only), one thin line per replicate and the mean in bold; a ring on each replicate's val curve
    at the step it selected, and below a strip counting the replicates that selected each step.

    `data`: {model, steps: [{step: 1..K, group: the layer group added at that step}],
    replicates: [{key: e.g. "s0/split0", val: [fraction per step], test: [fraction per step]
    (None = absent), selected: the step number chosen on validation (or None)}]}.
    `selected_by` says how the engine chose (the ring need not sit on the val-accuracy maximum).
    """
    from matplotlib.lines import Line2D

    steps, reps = _swft_check(data)
    group = {int(s["step"]): s.get("group") for s in data["steps"]}
    x = np.asarray(steps, dtype=float)
    colour, test_colour = style.arm_colour("swft"), style.NEUTRAL
    with style.styled():
        fig = style.new_figure(3.9)
        ax, strip = fig.subplots(2, 1, sharex=True, height_ratios=[4, 1])
        for split, c, ls in (("val", colour, "-"), ("test", test_colour, "--")):
            curves = [_curve(r[split], len(steps)) for r in reps]
            for cv in curves:
                ax.plot(x, cv, color=c, ls=ls, lw=0.8, alpha=0.35)
            ax.plot(x, _nanmean(curves, len(steps)), color=c, ls=ls, lw=2.2, marker="o", ms=4)
        for r in reps:
            if r["selected"] is not None:
                s = int(r["selected"])
                v = _curve(r["val"], len(steps))[steps.index(s)]
                if not np.isnan(v):
                    ax.plot([s], [v], "o", ms=9, mfc="none", mec="black", mew=1.1, zorder=5)
        _pct_axis(ax, "y")
        ax.set_ylabel("accuracy")
        handles = [Line2D([], [], color=colour, lw=2.2, marker="o", ms=4, label="validation, mean"),
                   Line2D([], [], color=test_colour, lw=2.2, ls="--", marker="o", ms=4, label="test (diagnostic), mean"),
                   Line2D([], [], color=style.NEUTRAL, lw=0.8, alpha=0.5, label="one replicate"),
                   Line2D([], [], marker="o", ls="none", ms=9, mfc="none", mec="black",
                          label=f"step it selected\n({selected_by})")]
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0),
                  borderaxespad=0.0)
        counts = [sum(1 for r in reps if r["selected"] is not None and int(r["selected"]) == s) for s in steps]
        strip.bar(x, counts, width=0.5, color=colour, alpha=0.8)
        for s, k in zip(steps, counts, strict=True):
            strip.text(s, k, str(k), ha="center", va="bottom", fontsize=7)
        strip.set_ylim(0, max(max(counts, default=0), 1) * 1.45)
        strip.set_yticks([])
        strip.grid(False)
        strip.set_ylabel("selected\n(replicates)", rotation=0, ha="right", va="center")
        strip.set_xticks(x, [f"{s}\n+{group[s] or '?'}" for s in steps])
        strip.set_xlabel("SWFT step (layer group added)")
        strip.set_xlim(x.min() - 0.4, x.max() + 0.4)
        fig.suptitle(title or f"SWFT steps · {data['model']} · {len(reps)} replicate(s)")
    return fig


def swft_steps_figure(data: dict, path: Path, **kw: Any) -> Path:
    """build_swft_steps(data, **kw) saved as a PNG at `path`."""
    return style.save(build_swft_steps(data, **kw), path)


# ============================================================================ 6. size axis

def _size_points(points: Sequence[dict], model_order) -> list[dict]:
    for p in points:
        _need(p, ("model", "domain", "axis", "fraction", "gain"), "size_axis point")
        if p["axis"] not in SIZE_AXES:
            raise ValueError(f"size_axis: axis {p['axis']!r} not one of {', '.join(SIZE_AXES)}")
        if not 0 < float(p["fraction"]) <= 1:
            raise ValueError(f"size_axis: fraction {p['fraction']!r} outside (0, 1]")
    models = style.model_order((p["model"] for p in points), model_order)
    return sorted(points, key=lambda p: (list(SIZE_AXES).index(p["axis"]), models.index(p["model"]),
                                         str(p["domain"]), float(p["fraction"])))


def size_axis_rows(points: Sequence[dict], *, model_order: Sequence[str] | None = None) -> list[dict]:
    """One row per point. Columns: model, domain, axis, fraction, gain_pp, lo_pp, hi_pp, undertrained."""
    return [{"model": p["model"], "domain": p["domain"], "axis": p["axis"], "fraction": float(p["fraction"]),
             "gain_pp": p["gain"], "lo_pp": p.get("lo"), "hi_pp": p.get("hi"),
             "undertrained": bool(p.get("undertrained", False))}
            for p in _size_points(points, model_order)]


def build_size_axis(points: Sequence[dict], *, model_order: Sequence[str] | None = None,
                    gain: str = "THTL gain (pp)", title: str | None = None, dodge: float = 0.02):
    """THTL gain against the training fraction (log x), one panel per axis present (target,
    intermediate), one line per (model, domain): colour = model (= domain when there is one
    model), line style and marker = domain; error bars = interval; hollow = a point with an
    under-trained replicate; zero line.

    `points`: [{model, domain, axis: "target" | "intermediate", fraction in (0, 1], gain (pp),
    lo, hi (pp; None = no interval), undertrained (optional)}]. `gain` is the y label (say what
    minus what); `dodge`: the
    sideways shift between lines, in decades of the log axis (the rows keep the true fractions).
    """
    from matplotlib.ticker import NullFormatter

    if not points:
        raise ValueError("size_axis: no points to draw")
    pts = _size_points(points, model_order)
    axes_present = [a for a in SIZE_AXES if any(p["axis"] == a for p in pts)]
    domains = sorted({str(p["domain"]) for p in pts})
    models = list(dict.fromkeys(p["model"] for p in pts))
    styles = [("-", "o"), ("--", "s"), ("-.", "^"), (":", "D")]
    with style.styled():
        fig = style.new_figure(3.6)
        axes = fig.subplots(1, len(axes_present), sharey=True, squeeze=False)[0]
        for ax, axis in zip(axes, axes_present, strict=True):
            mine = [p for p in pts if p["axis"] == axis]
            ax.axhline(0.0, **style.ZERO_STYLE)
            lines = list(dict.fromkeys((p["model"], str(p["domain"])) for p in mine))
            for k, (m, d) in enumerate(lines):
                sel = [p for p in mine if (p["model"], str(p["domain"])) == (m, d)]
                # dodge the lines sideways (a few thousandths of a decade) so error bars do not overlap
                shift = 10 ** (dodge * (k - (len(lines) - 1) / 2))
                fx = np.array([float(p["fraction"]) for p in sel]) * shift
                g = np.array([float(p["gain"]) for p in sel])
                ls, mk = styles[domains.index(d) % len(styles)]
                colour = style.model_colour(m) if len(models) > 1 else style.MODEL_PALETTE[domains.index(d)
                                                                                         % len(style.MODEL_PALETTE)]
                ax.plot(fx, g, color=colour, ls=ls, marker=mk, ms=4.5, label=f"{m} · {d}")
                for p, x in zip(sel, fx, strict=True):
                    if p.get("lo") is not None and p.get("hi") is not None:
                        ax.vlines(x, p["lo"], p["hi"], color=colour, lw=1.0, alpha=0.8)
                    if p.get("undertrained"):
                        ax.plot([x], [p["gain"]], marker=mk, ms=4.5, color=colour, mfc="white", ls="none", zorder=4)
            ax.set_xscale("log")
            ticks = sorted({float(p["fraction"]) for p in mine})
            labels = [f"{100 * t:g} %" for t in ticks]
            for i in range(1, len(ticks)):  # 90 % and 100 % sit close on a log axis: one line lower
                if np.log10(ticks[i] / ticks[i - 1]) < 0.15 and not labels[i - 1].startswith("\n"):
                    labels[i] = "\n" + labels[i]
            ax.set_xticks(ticks, labels)
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.set_xlim(min(ticks) / 1.35, max(ticks) * 1.35)
            ax.set_xlabel(SIZE_AXES[axis] + " (log)")
        axes[0].set_ylabel(gain)
        handles, labels = axes[0].get_legend_handles_labels()
        for ax in axes[1:]:
            for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
                if lab not in labels:
                    handles.append(h)
                    labels.append(lab)
        if any(p.get("undertrained") for p in pts):
            from matplotlib.lines import Line2D

            handles.append(Line2D([], [], marker="o", ms=4.5, ls="none", color=style.NEUTRAL, mfc="white"))
            labels.append("hollow: an under-\ntrained replicate")
        fig.legend(handles, labels, loc="outside right upper")
        if title:
            fig.suptitle(title)
    return fig


def size_axis_figure(points: Sequence[dict], path: Path, **kw: Any) -> Path:
    """build_size_axis(points, **kw) saved as a PNG at `path`."""
    return style.save(build_size_axis(points, **kw), path)
