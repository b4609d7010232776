"""The claims' forest plot (C1-C6, per model): the figure's three functions as in report.figures
(build_claims_forest, claims_forest_figure, claims_forest_rows).

The x axis is set by the points, the paper's numbers, the margins and the intervals, each interval
end clipped at +-clip: an interval over 2 replicates can span hundreds of pp, and an axis that
held it would flatten every decisive row. The clip holds every point, paper number, margin and
the intervals of rows on at least MIN_UNITS replicates (rounded up to a whole pp), at least
MIN_CLIP_PP and at most CLIP_PP (a difference of two rates lies in [-100, 100]), so a
2-replicate interval of +-80 pp beside a 20-replicate one of +-5 does not flatten the latter.
A clipped end is drawn as an arrowhead at the edge, and the legend gives the clip.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from thtl_bench.report import style
from thtl_bench.report.figures import VERDICTS, _need

CLIP_PP = 100.0  # a difference of two rates lies in [-100, 100] pp: never clip beyond it
MIN_CLIP_PP = 20.0  # nor closer than this
MIN_UNITS = 3  # a t-interval on 2 replicates (1 df) is 12.7 standard errors wide: it does not set the axis


def clip_bound(claims: Sequence[dict]) -> float:
    """Where the intervals are clipped (module docstring): the points, the paper's numbers, the
    margins and the interval ends of rows on at least MIN_UNITS replicates (`n`; a row without
    `n` counts), rounded up to a whole pp, within [MIN_CLIP_PP, CLIP_PP]."""
    ends = [abs(float(v)) for c in claims for v in (c.get("diff"), c.get("paper"), c.get("margin")) if v is not None]
    ends += [abs(float(v)) for c in claims if c.get("n") is None or int(c["n"]) >= MIN_UNITS
             for key in ("ci", "adj_ci") for v in (c.get(key) or []) if v is not None]
    return min(CLIP_PP, max(MIN_CLIP_PP, float(math.ceil(max(ends, default=0.0)))))


def _claim_key(cid: str) -> tuple:
    """C2 < C10: letters, then the number."""
    m = re.fullmatch(r"([A-Za-z]*)(\d+)(.*)", str(cid))
    return (m.group(1), int(m.group(2)), m.group(3)) if m else (str(cid), 0, "")


def _clip(iv: Sequence[float], bound: float = CLIP_PP) -> list[float]:
    return [min(max(float(v), -bound), bound) for v in iv]


def _claim_rows_sorted(claims: Sequence[dict], model_order) -> list[dict]:
    for c in claims:
        _need(c, ("id", "model", "diff", "verdict", "kind"), "claims_forest claim")
        if c["verdict"] not in VERDICTS:
            raise ValueError(f"claims_forest: claim {c['id']} / {c['model']}: verdict {c['verdict']!r} "
                             f"not one of {', '.join(VERDICTS)}")
        if c["kind"] not in ("directional", "equivalence"):
            raise ValueError(f"claims_forest: claim {c['id']}: kind {c['kind']!r} (directional | equivalence)")
    models = style.model_order((c["model"] for c in claims), model_order)
    return sorted(claims, key=lambda c: (_claim_key(c["id"]), models.index(c["model"])))


def claims_forest_rows(claims: Sequence[dict], *, model_order: Sequence[str] | None = None) -> list[dict]:
    """One row per (claim, model). Columns: id, model, kind, diff_pp, ci_lo, ci_hi, adj_lo, adj_hi,
    paper_pp, margin_pp, verdict (None where absent)."""
    out = []
    for c in _claim_rows_sorted(claims, model_order):
        ci, adj = c.get("ci") or (None, None), c.get("adj_ci") or (None, None)
        out.append({"id": c["id"], "model": c["model"], "kind": c["kind"], "diff_pp": c["diff"],
                    "ci_lo": ci[0], "ci_hi": ci[1], "adj_lo": adj[0], "adj_hi": adj[1],
                    "paper_pp": c.get("paper"), "margin_pp": c.get("margin"), "verdict": c["verdict"]})
    return out


def build_claims_forest(claims: Sequence[dict], *, model_order: Sequence[str] | None = None,
                        title: str | None = None, adjusted: str = "Holm-adjusted interval"):
    """Forest plot of the claims: one row per (claim, model) under a header row with the claim's
    text; point = A - B in pp coloured by verdict, thin line = interval, wide pale bar = adjusted
    interval, diamond = the paper's number, shaded band = the equivalence margin, zero line; the
    difference and the verdict written at the right.

    `claims`: [{id, model, text, diff (pp) | None, ci: [lo, hi] | None, adj_ci: [lo, hi] | None,
    paper: pp | None, verdict (one of VERDICTS), kind: "directional" | "equivalence",
    margin: pp | None (equivalence claims)}].
    """
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    if not claims:
        raise ValueError("claims_forest: no claims to draw")
    rows = _claim_rows_sorted(claims, model_order)
    ids = list(dict.fromkeys(c["id"] for c in rows))
    layout: list[tuple[str, dict | None]] = []
    for cid in ids:
        layout += [(cid, None)] + [(cid, c) for c in rows if c["id"] == cid]
    n = len(layout)

    with style.styled():
        fig = style.new_figure(1.0 + 0.24 * n)
        ax = fig.subplots()
        right = ax.twinx()
        margins = []
        for cid in ids:
            mine = [i for i, (k, c) in enumerate(layout) if k == cid and c is not None]
            first = next(c for k, c in layout if k == cid and c is not None)
            m = first.get("margin")
            if first["kind"] == "equivalence" and m is not None:
                margins.append(float(m))
                ax.fill_betweenx([min(mine) - 0.5, max(mine) + 0.5], -m, m, color="#DCE9F5", lw=0, zorder=0)
        ax.axvline(0.0, **style.ZERO_STYLE, zorder=1)
        clipped, bound = False, clip_bound(rows)
        for y, (_, c) in enumerate(layout):
            if c is None:
                continue
            colour = style.VERDICT_COLOURS[c["verdict"]]
            for key, kw in (("adj_ci", {"lw": 7, "alpha": 0.3, "zorder": 2}), ("ci", {"lw": 1.4, "zorder": 3})):
                if not c.get(key):
                    continue
                lo_, hi_ = _clip(c[key], bound)
                ax.hlines(y, lo_, hi_, color=colour, **kw)
                for end, edge, mark in ((c[key][0], lo_, "<"), (c[key][1], hi_, ">")):
                    if end != edge:
                        clipped = True
                        ax.plot([edge], [y], mark, color=colour, ms=6, zorder=kw["zorder"] + 1)
            if c["diff"] is not None:
                ax.plot([c["diff"]], [y], "o", color=colour, ms=6, zorder=5)
            if c.get("paper") is not None:
                ax.plot([c["paper"]], [y], "D", mfc="white", mec="black", mew=1.0, ms=5, zorder=4)
        # Headers: the claim id (bold tick) and its text on the row, left-aligned on a white box.
        xs = [v for _, c in layout if c for v in [c["diff"], c.get("paper"), *_clip(c.get("ci") or [], bound),
                                                  *_clip(c.get("adj_ci") or [], bound)] if v is not None]
        xs += margins + [0.0]
        xs += [-m for m in margins]
        lo, hi = min(xs), max(xs)
        pad = 0.06 * (hi - lo or 10.0)
        ax.set_xlim(lo - pad, hi + pad)
        for y, (cid, c) in enumerate(layout):
            if c is None:
                text = next((r.get("text") for k, r in layout if k == cid and r and r.get("text")), "")
                ax.text(0.005, y, text, transform=ax.get_yaxis_transform(), va="center", ha="left",
                        fontsize=7, style="italic", zorder=6,
                        bbox={"boxstyle": "square,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.85})
        labels = [cid if c is None else c["model"] for cid, c in layout]
        ax.set_yticks(range(n), labels)
        for tick, (_, c) in zip(ax.get_yticklabels(), layout, strict=True):
            if c is None:
                tick.set_fontweight("bold")
        right.set_yticks(range(n), ["" if c is None else
                                    ("n/a" if c["diff"] is None else f"{c['diff']:+.1f} pp".replace("-", "−")) + f"  {c['verdict']}"
                                    for _, c in layout])
        for tick, (_, c) in zip(right.get_yticklabels(), layout, strict=True):
            if c is not None:
                tick.set_color(style.VERDICT_COLOURS[c["verdict"]])
        for a in (ax, right):
            a.set_ylim(n - 0.5, -0.5)
            a.tick_params(axis="y", length=0)
        right.grid(False)
        right.spines["right"].set_visible(False)
        ax.grid(axis="y", visible=False)
        ax.set_xlabel("difference arm A − arm B (percentage points)")
        handles = [Line2D([], [], marker="o", ls="-", color=style.NEUTRAL, ms=5, lw=1.4, label="difference, interval"),
                   Line2D([], [], color=style.NEUTRAL, lw=7, alpha=0.3, label=adjusted),
                   Line2D([], [], marker="D", ls="none", mfc="white", mec="black", ms=5, label="paper")]
        if clipped:
            handles.append(Line2D([], [], marker=">", ls="-", color=style.NEUTRAL, ms=5, lw=1.4,
                                  label=f"interval clipped at ±{bound:g} pp"))
        if margins:
            handles.append(Patch(fc="#DCE9F5", label="equivalence margin"))
        used = [v for v in VERDICTS if any(c["verdict"] == v for c in rows)]
        handles += [Line2D([], [], marker="o", ls="none", color=style.VERDICT_COLOURS[v], ms=5, label=v) for v in used]
        fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 5))
        if title:
            fig.suptitle(title)
    return fig


def claims_forest_figure(claims: Sequence[dict], path: Path, **kw: Any) -> Path:
    """build_claims_forest(claims, **kw) saved as a PNG at `path`."""
    return style.save(build_claims_forest(claims, **kw), path)
