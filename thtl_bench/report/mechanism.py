"""The mechanism figure: the 2 x 2 factorial's effects (C6 and its simple effects, accuracy) beside
the mediator the LayerCAM maps show (the tortuous-segment lift per intermediate domain,
thtl_bench.analysis.mediator), from the summary and cam.json only."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from thtl_bench import domains as domain_registry
from thtl_bench.report import style

EFFECTS = ("C6", "C6v", "C6l", "C6r")  # the interaction first, then the simple effects, then recall
LABELS = {"C6": "C6 interaction\n(vessel - lesion labels)", "C6v": "C6v tortuous - radial\n(vessel labels)",
          "C6l": "C6l tortuous - radial\n(lesion labels)", "C6r": "C6r interaction,\nmalignant recall"}


def effect_rows(claims: Sequence[dict], model: str) -> list[dict]:
    """The factorial's claim rows of `model` in EFFECTS order (estimate, 95 % and deciding interval)."""
    by = {r["claim"]: r for r in claims if r.get("model") == model and r.get("claim") in EFFECTS}
    return [by[c] for c in EFFECTS if c in by and by[c].get("diff_pp") is not None]


def factorial_order() -> list[str]:
    """The factorial's domains, (radial, lesion), (tortuous, lesion), (radial, vessel), (tortuous, vessel)."""
    cells = domain_registry.factorial()
    return [cells[(p, lab)] for lab in ("lesion", "vessel") for p in ("radial", "tortuous") if (p, lab) in cells]


def build_mechanism(effects: Sequence[dict], lifts: Sequence[dict], *, title: str | None = None):
    """Left: each effect's estimate with its 95 % interval (thin) and deciding interval (thick),
    coloured by verdict, and the effect a claim was registered at (hollow diamond). Right: per
    intermediate domain of the factorial, the THTL last-layer maps' tortuous-segment lift (pp, mean
    over patients with a 95 % t-interval), the one-step maps' as the reference line."""
    if not effects and not lifts:
        raise ValueError("mechanism: no effects and no CAM lifts to draw")
    with style.styled():
        fig = style.new_figure(3.4)
        ax1, ax2 = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.1, 1.0]})
        ax1.axvline(0.0, **style.ZERO_STYLE)
        registered = False
        for i, r in enumerate(effects):
            y = len(effects) - 1 - i
            colour = style.VERDICT_COLOURS.get(r["verdict"], style.NEUTRAL)
            if r.get("ci_pp"):
                ax1.hlines(y, *r["ci_pp"], color=colour, lw=1.0)
            if r.get("adj_ci_pp"):
                ax1.hlines(y, *r["adj_ci_pp"], color=colour, lw=4.0, alpha=0.35)
            ax1.plot([r["diff_pp"]], [y], "o", color=colour, ms=5)
            ax1.annotate(r["verdict"], (r["diff_pp"], y), xytext=(0, 6), textcoords="offset points", ha="center",
                         fontsize=6.5, color=colour)
            if r.get("design_effect_pp") is not None:  # the effect the claim was registered (and powered) at
                sign = 1.0 if int(r.get("direction") or 1) > 0 else -1.0
                ax1.plot([sign * float(r["design_effect_pp"])], [y], "D", mfc="none", color=style.NEUTRAL, ms=6,
                         label=None if registered else "registered effect")
                registered = True
        ax1.set_yticks(range(len(effects)), [LABELS.get(r["claim"], r["claim"]) for r in effects][::-1])
        ax1.set_xlabel("THTL last-layer difference (pp)")
        ax1.set_title("the factorial's effects")
        if registered:  # in a strip of its own above the top row, not over a row's interval
            ax1.set_ylim(-0.6, len(effects) - 0.4 + 0.6)
            ax1.legend(loc="upper right", fontsize=6.5, borderpad=0.3, handletextpad=0.3)
        order = factorial_order()
        thtl = {r["via"]: r for r in lifts if r["arm"] == "thtl_last"}
        ref = [r for r in lifts if r["arm"] == "onestep_last" and r.get("lift_pp") is not None]
        ax2.axhline(0.0, **style.ZERO_STYLE)
        if ref:
            ax2.axhline(ref[0]["lift_pp"], color=style.arm_colour("onestep_last"), ls="--", lw=1.0,
                        label="one-step last-layer")
        xs = [d for d in order if d in thtl]
        for x, d in enumerate(xs):
            r = thtl[d]
            if r.get("lo_pp") is not None:
                ax2.vlines(x, r["lo_pp"], r["hi_pp"], color=style.arm_colour("thtl_last"), lw=1.2)
            if r.get("lift_pp") is not None:
                ax2.plot([x], [r["lift_pp"]], "s", color=style.arm_colour("thtl_last"), ms=5,
                         label="THTL last-layer" if x == 0 else None)
        ax2.set_xticks(range(len(xs)), [d.replace("fundus_", "").replace("_", "\n") for d in xs])
        ax2.set_xlim(-0.6, max(len(xs), 1) - 0.4)
        ax2.set_ylabel("CAM mass on tortuous segments\nabove chance (pp)")
        ax2.set_title("where the maps look (larynx test images)")
        ax2.legend(loc="best")
        if title:
            fig.suptitle(title)
    return fig


def mechanism_rows(effects: Sequence[dict], lifts: Sequence[dict]) -> list[dict]:
    """The figure's numbers in long format (plot data)."""
    out = [{"series": "effect", "name": r["claim"], "value_pp": r["diff_pp"],
            "lo_pp": (r.get("ci_pp") or [None, None])[0], "hi_pp": (r.get("ci_pp") or [None, None])[1],
            "verdict": r["verdict"], "n": r.get("n_pairs")} for r in effects]
    out += [{"series": f"cam_lift {r['arm']}", "name": r["via"] or "-", "value_pp": r["lift_pp"], "lo_pp": r["lo_pp"],
             "hi_pp": r["hi_pp"], "verdict": None, "n": r["patients"]} for r in lifts]
    return out


def mechanism_figure(effects: Sequence[dict], lifts: Sequence[dict], path: Path, **kw) -> Path:
    return style.save(build_mechanism(effects, lifts, **kw), path)


def lift_table(lifts: Sequence[dict]) -> tuple[list[str], list[list[str]]]:
    def f(x: float | None) -> str:
        return "n/a" if x is None or not np.isfinite(x) else f"{x:+.1f}"

    rows = [[r["arm"], r["via"] or "-", r["group"], str(r["patients"]), str(r["images"]),
             f"{f(r['lift_pp'])} [{f(r['lo_pp'])}, {f(r['hi_pp'])}]",
             "n/a" if r["chance_pp"] is None else f"{r['chance_pp']:.1f}"] for r in lifts]
    return ["arm", "via", "layer group", "patients", "images", "tortuous lift pp [95 % CI]", "chance share %"], rows


def section(summary: dict, g: dict, base: Path) -> list[str]:
    """REPORT.md's mechanism section, when the records hold the factorial's claims: the effects
    beside the CAM mediator (figure and table); nothing otherwise."""
    import os

    from thtl_bench.analysis import mediator
    from thtl_bench.report.sections import _table

    models = [m for m in summary["models"] if effect_rows(summary["claims"], m)]
    if not models:
        return []
    model = models[0]
    effects = effect_rows(summary["claims"], model)
    cam = [e for e in (g.get("cam") or []) if e.get("model") == model]
    lifts = mediator.segment_lift(cam, float(summary["stats_params"]["confidence"]))
    fig = mechanism_figure(effects, lifts, g["report_dir"] / "figures" / "mechanism.png",
                           title=f"The mechanism, {model}: accuracy effects and where the maps look")
    out = ["## The mechanism: a 2 x 2 factorial", "",
           "What step 1 sees (radial vs tortuous vessel trees) x what it must learn (lesion-graded vs vessel-graded "
           "labels of the same images). The paper's explanation predicts the interaction C6 > 0: tortuous trees help "
           "THTL last-layer more when step 1 must learn the vessels. Left: the effects (thin = 95 % interval, thick = "
           "deciding interval). Right: the mediator, how much more of the LayerCAM mass of the THTL last-layer "
           "maps (deepest layer group) lies on the phantoms' tortuous vessel segments than chance, per intermediate "
           "domain (the replicate `cam.replicate`; mean over patients, 95 % t-interval; descriptive).",
           "", f"![mechanism]({os.path.relpath(fig, base)})", ""]
    if lifts:
        head, rows = lift_table(lifts)
        out += [_table(rows, head)]
    else:
        out += ["No segment masses in cam.json (`thtl-bench cam` on phantom larynx images writes them)."]
    return out
