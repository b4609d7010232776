"""The report's figures (matplotlib, Agg, no pyplot state), each drawn from the summary only."""

from __future__ import annotations

from pathlib import Path


def swft_figure(curve: dict, path: Path) -> Path:
    """Val/test accuracy per SWFT step (mean over seeds, std band), one PNG per model."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    steps = [s["step"] for s in curve["steps"]]
    fig = Figure(figsize=(5.5, 3.6))
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    for split, colour in (("val", "tab:blue"), ("test", "tab:orange")):
        mean = [100 * (s[f"{split}_mean"] or 0) for s in curve["steps"]]
        std = [100 * (s[f"{split}_std"] or 0) for s in curve["steps"]]
        ax.plot(steps, mean, marker="o", color=colour, label=f"{split} accuracy")
        ax.fill_between(steps, [m - d for m, d in zip(mean, std, strict=True)], [m + d for m, d in zip(mean, std, strict=True)],
                        color=colour, alpha=0.15)
    ax.set_xticks(steps)
    ax.set_xticklabels([f"{s['step']}\n+{(s['groups'] or ['?'])[-1]}" for s in curve["steps"]], fontsize=7)
    ax.set_xlabel("SWFT step (group added)")
    ax.set_ylabel("accuracy % (mean ± std over seeds)")
    ax.set_title(f"SWFT steps: {curve['model']}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, metadata={"Software": None})
    return path
