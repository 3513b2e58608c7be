"""PR curves and the confusion matrix of an evaluation, as PNG files (matplotlib, Agg)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from training.evaluate import Report


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # files only; never a display
    import matplotlib.pyplot as plt

    return plt


def write_pr_curves(report: Report, path: Path) -> Path:
    """Precision over recall at IoU 0.5, one line per class, its operating point marked."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 5.2), dpi=120)
    try:
        for key in report.keys:
            ap = report.floor_eval.class_ap(key)
            row = report.summary["per_class"][key]
            if ap.ap50 is None:
                continue
            precision = np.where(ap.precision_at_50 > -1, ap.precision_at_50, np.nan)
            # COCOeval fills recall levels the model never reaches with 0: end the line there.
            reached = np.flatnonzero(precision > 0)
            precision[(reached[-1] + 1) if len(reached) else 0:] = np.nan
            (line,) = ax.plot(ap.recall_thresholds, precision, label=f"{key} AP50 {ap.ap50:.3f}")
            if row["precision"] is not None and row["recall"] is not None:
                ax.plot([row["recall"]], [row["precision"]], "o", color=line.get_color())
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("recall")
        ax.set_ylabel("precision")
        summary = report.summary
        ax.set_title(f"{summary['model']} on {summary['dataset']} [{summary['split']}], IoU 0.5\n"
                     "dots: operating thresholds", fontsize=9)
        ax.grid(alpha=0.3)
        if report.keys:
            ax.legend(loc="upper right", fontsize=8)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path)
    finally:
        plt.close(fig)
    return path


def write_confusion_matrix(report: Report, path: Path) -> Path:
    """Counts at the operating thresholds; rows are the truth, columns the prediction."""
    plt = _pyplot()
    matrix = np.asarray(report.confusion)
    rows, cols = report.confusion_rows, report.confusion_cols
    fig, ax = plt.subplots(figsize=(1.3 * len(cols) + 2.5, 1.0 * len(rows) + 1.8), dpi=120)
    try:
        ax.imshow(matrix, cmap="Blues")
        ax.set_xticks(range(len(cols)), cols, rotation=30, ha="right")
        ax.set_yticks(range(len(rows)), rows)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        peak = matrix.max() if matrix.size else 0
        for (r, c), value in np.ndenumerate(matrix):
            ax.text(c, r, str(int(value)), ha="center", va="center",
                    color="white" if peak and value > peak / 2 else "black", fontsize=9)
        summary = report.summary
        ax.set_title(f"{summary['model']} on {summary['dataset']} [{summary['split']}]\n"
                     "at the operating thresholds, IoU 0.5", fontsize=9)
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path)
    finally:
        plt.close(fig)
    return path


def write_plots(report: Report, folder: Path) -> list[Path]:
    return [write_pr_curves(report, folder / "pr_curves.png"),
            write_confusion_matrix(report, folder / "confusion_matrix.png")]
