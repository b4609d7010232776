"""The one look of every report figure: sizes, fonts, colours, and how a figure is made and saved.

Every figure is `new_figure(height)` (fixed width FULL_WIDTH_IN at DPI: ~880 px, GitHub's column)
built and saved under `styled()`, so font sizes and grid are the same everywhere. Colours:
- arms: Okabe-Ito (colour-blind safe), one fixed colour per arm in every figure (`arm_colour`);
  one-step arms blue, THTL arms orange/vermillion, SWFT green, scratch black;
- models: a fixed palette by catalog order (`model_colour`), for figures whose lines are models;
- verdicts: `VERDICT_COLOURS`.
Object API only (Figure + FigureCanvasAgg): no pyplot, no GUI backend. `styled()` sets matplotlib's
rcParams for the duration of a `with` block only (fonts are resolved when an artist is created).
"""

from __future__ import annotations

import contextlib
import zlib
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from thtl_bench import arms as arms_registry
from thtl_bench import catalog

DPI = 110
FULL_WIDTH_IN = 8.0  # 880 px at DPI: shown 1:1 in a GitHub markdown column (~900 px)

RC = {
    "font.family": "DejaVu Sans",  # shipped with matplotlib: the same glyphs on every machine
    "font.size": 8,
    "axes.titlesize": 8.5,
    "axes.labelsize": 8,
    "xtick.labelsize": 7.5,
    "ytick.labelsize": 7.5,
    "legend.fontsize": 7.5,
    "figure.titlesize": 9.5,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linewidth": 0.6,
    "axes.axisbelow": True,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.linewidth": 0.8,
    "lines.linewidth": 1.4,
    "legend.frameon": False,
    "figure.dpi": DPI,
    "savefig.dpi": DPI,
    "figure.facecolor": "white",
    "savefig.facecolor": "white",
    "image.interpolation": "nearest",
}

# Okabe & Ito (2008), "Color universal design": distinguishable under the common colour-vision
# deficiencies. Yellow is left out of the arms: it is unreadable as a line on white.
OKABE_ITO = {"black": "#000000", "orange": "#E69F00", "sky_blue": "#56B4E9", "green": "#009E73",
             "yellow": "#F0E442", "blue": "#0072B2", "vermillion": "#D55E00", "purple": "#CC79A7"}
ARM_COLOURS = {
    "scratch": OKABE_ITO["black"],
    "onestep_last": OKABE_ITO["sky_blue"],
    "onestep_all": OKABE_ITO["blue"],
    "thtl_step1": OKABE_ITO["purple"],
    "thtl_last": OKABE_ITO["orange"],
    "thtl_all": OKABE_ITO["vermillion"],
    "swft": OKABE_ITO["green"],
}
# Arms the registry does not know (a user's own): greys and yellow-brown, fixed by name.
EXTRA_COLOURS = ("#7F7F7F", "#A6761D", "#4D4D4D", "#B3B3B3")
# tab10 minus its grey: the models' colours in figures whose lines are models (size axis).
MODEL_PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
                 "#bcbd22", "#17becf")
VERDICT_COLOURS = {
    "reproduced": OKABE_ITO["green"],
    "contradicted": OKABE_ITO["vermillion"],
    "inconclusive": "#6E6E6E",
    "underpowered": OKABE_ITO["orange"],
    "not decided": "#999999",
}
NEUTRAL = "#4D4D4D"  # reference lines (chance, zero), test curves
CHANCE_STYLE = {"color": NEUTRAL, "linestyle": ":", "linewidth": 1.0}
MAJORITY_STYLE = {"color": NEUTRAL, "linestyle": "--", "linewidth": 1.0}
ZERO_STYLE = {"color": NEUTRAL, "linestyle": "-", "linewidth": 0.8}


def _stable_index(name: str, n: int) -> int:
    return zlib.crc32(name.encode()) % n  # not hash(): that is salted per process


def arm_colour(arm: str) -> str:
    """The arm's colour, the same in every figure (a fixed grey/brown for unregistered arms)."""
    return ARM_COLOURS.get(arm) or EXTRA_COLOURS[_stable_index(arm, len(EXTRA_COLOURS))]


def model_colour(model: str) -> str:
    """A model's colour by its catalog position (registry prefixes tv:/timm: ignored)."""
    base = model.split(":", 1)[-1]
    if base in catalog.MODELS:
        return MODEL_PALETTE[list(catalog.MODELS).index(base) % len(MODEL_PALETTE)]
    return MODEL_PALETTE[_stable_index(base, len(MODEL_PALETTE))]


def ordered(names: Iterable[str], reference: Sequence[str]) -> list[str]:
    """Distinct names in `reference` order; names it lacks follow, sorted (input order never counts)."""
    seen = set(names)
    return [n for n in reference if n in seen] + sorted(seen - set(reference))


def arm_order(names: Iterable[str], order: Sequence[str] | None = None) -> list[str]:
    return ordered(names, list(order) if order is not None else list(arms_registry.NAMES))


def model_order(names: Iterable[str], order: Sequence[str] | None = None) -> list[str]:
    if order is not None:
        return ordered(names, list(order))
    names = list(names)
    ref = [n for m in catalog.MODELS for n in names if n.split(":", 1)[-1] == m]
    return ordered(names, list(dict.fromkeys(ref)))


@contextlib.contextmanager
def styled() -> Iterator[None]:
    """RC in force for the block: build and save a figure inside it."""
    import matplotlib

    with matplotlib.rc_context(RC):
        yield


def new_figure(height_in: float, width_in: float = FULL_WIDTH_IN):
    """A Figure with an Agg canvas and constrained layout, at DPI; call inside `styled()`."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    # Whole pixels: matplotlib truncates figsize x dpi, so 6.08 in would give 668.8 -> 668 px;
    # the +0.01 px keeps px / DPI * DPI from landing a hair below the integer.
    w_px, h_px = round(width_in * DPI), round(height_in * DPI)
    fig = Figure(figsize=((w_px + 0.01) / DPI, (h_px + 0.01) / DPI), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save(fig, path: Path) -> Path:
    """PNG of exactly figsize x DPI pixels (no tight bbox), no software/date stamp: same bytes
    for the same figure."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with styled():
        fig.savefig(path, dpi=DPI, format="png", metadata={"Software": None})
    return path


def pixel_size(height_in: float, width_in: float = FULL_WIDTH_IN) -> tuple[int, int]:
    """(width, height) in pixels of the PNG of `new_figure(height_in, width_in)`."""
    return round(width_in * DPI), round(height_in * DPI)
