"""The LayerCAM figure: one row per arm, the input then one overlay per layer group."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")


def _rel(path: Path) -> str:
    """Path as written into cam.json: relative to the repository root (the working directory the
    CLI runs in) when inside it, so REPORT.md at the root can link it."""
    try:
        return path.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return path.resolve().as_posix()


CAM_CMAP = "jet"  # LayerCAM's usual map colours; the colour bar states the scale
SCALE_NOTE = "each map min-max scaled to [0, 1]"


def build_figure(title: str, rows: list[dict], groups: list[str]):
    """The LayerCAM grid as a Figure: one row per entry of `rows`, columns the input, then one jet
    overlay per layer group; a colour bar (0-1) saying each map is min-max scaled on its own.

    A row is {label: arm, image: uint8 HWC, mask: vessel mask or None, maps: {group: map in
    [0, 1]}, shares: {group: vessel-mass share or None}, true: class name, pred: predicted class
    name or None, prob: its softmax probability or None, note: text or None, same_as: arm or
    None}. A row with a note (SWFT that kept its step-1 weights) is framed and has the note under
    its input; the frame takes the colour of the arm `same_as` whose weights the row's equal.
    """
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    from thtl_bench.report import style

    ncol = 1 + len(groups)
    panel = (style.FULL_WIDTH_IN - 1.2) / ncol  # inches per image; the rest: colour bar, row labels
    with style.styled():
        fig = style.new_figure(0.45 + len(rows) * (panel + 0.55))
        axes = fig.subplots(len(rows), ncol, squeeze=False)
        for r, row in enumerate(rows):
            ax = axes[r, 0]
            ax.imshow(row["image"])
            if row["mask"] is not None:  # vessel outline, so the mass share can be read off the picture
                ax.contour(np.asarray(row["mask"]) > 0, levels=[0.5], colors="white", linewidths=0.4)
            pred = "pred n/a" if row.get("pred") is None else (
                f"pred {row['pred']}" + ("" if row.get("prob") is None else f" ({row['prob']:.2f})"))
            ax.set_title(f"true {row.get('true', '?')}\n{pred}", fontsize=7)
            ax.set_ylabel(row["label"], fontsize=8, fontweight="bold", color=style.arm_colour(row["label"].split(" [")[0]))
            mark = style.arm_colour(row["same_as"].split(" [")[0]) if row.get("same_as") else style.NEUTRAL
            if row.get("note"):
                ax.set_xlabel(row["note"], fontsize=6.5, fontweight="bold")
            for c, group in enumerate(groups, start=1):
                ax = axes[r, c]
                ax.imshow(row["image"])
                ax.imshow(row["maps"][group], cmap=CAM_CMAP, alpha=0.5, vmin=0.0, vmax=1.0)
                share = row["shares"][group]
                txt = "n/a" if share is None else f"{share:.0%}"
                ax.set_title(f"{group}\nvessel mass {txt}", fontsize=7)
            for ax in axes[r]:
                ax.set_xticks([])
                ax.set_yticks([])
                ax.grid(False)
                for spine in ax.spines.values():
                    spine.set_visible(True)
                    if row.get("note"):
                        spine.set_color(mark)
                        spine.set_linewidth(2.2)
        bar = fig.colorbar(ScalarMappable(norm=Normalize(0.0, 1.0), cmap=CAM_CMAP), ax=axes[:, 1:],
                           shrink=0.9, aspect=12 * len(rows) ** 0.5, pad=0.02)
        # three short lines: the label must fit beside the bar of a one-row figure
        bar.set_label("LayerCAM,\n" + SCALE_NOTE.replace(" scaled", "\nscaled"), fontsize=7)
        bar.ax.tick_params(labelsize=7)
        fig.suptitle(title, fontsize=8)
    return fig


def _figure(path: Path, title: str, rows: list[dict], groups: list[str]) -> None:
    """build_figure(title, rows, groups) saved as a PNG (same bytes for the same rows)."""
    from thtl_bench.report import style

    style.save(build_figure(title, rows, groups), path)
