"""``calibration.png``: the normal score and lesion-statistic distributions with thresholds marked.

Drawn with matplotlib's object API (``Figure``, no ``pyplot`` global state), so it is safe in
threads and never opens a window.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from medzsad.calibration.conformal import conformal_quantile, min_normals
from medzsad.calibration.profile_io import Profile
from medzsad.fileio import write_bytes

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["PLOT_ALPHAS", "write_calibration_plot"]

#: The levels marked on the plot (those a stratum has enough normals for).
PLOT_ALPHAS = (0.05, 0.1, 0.2)
_MAX_STRATA = 6
_COLOURS = {0.05: "tab:red", 0.1: "tab:orange", 0.2: "tab:green"}


def _panel(ax: Axes, values: np.ndarray, title: str, xlabel: str) -> None:
    ax.hist(values, bins=max(5, min(40, values.size // 2)), color="0.6", edgecolor="0.3")
    for alpha in PLOT_ALPHAS:
        if values.size >= min_normals(alpha):
            t = conformal_quantile(values, alpha)
            ax.axvline(t, color=_COLOURS[alpha], linestyle="--", label=f"alpha {alpha:g}: {t:.4f}")
    ax.set_title(title, fontsize=9)
    ax.set_xlabel(xlabel, fontsize=8)
    ax.set_ylabel("normal studies", fontsize=8)
    if ax.get_legend_handles_labels()[0]:  # too few normals for any alpha: no lines to name
        ax.legend(fontsize=7)


def write_calibration_plot(path: str | Path, profile: Profile) -> Path:
    """Draw the profile: one row per stratum (at most six), study scores | lesion statistics.

    The conformal thresholds for alpha 0.05, 0.1 and 0.2 are marked where the stratum has enough
    normals for them.

    Returns:
        The PNG path (written atomically).
    """
    from matplotlib.figure import Figure

    strata = sorted(profile.strata.items())[:_MAX_STRATA]
    rows = max(len(strata), 1)
    fig = Figure(figsize=(10, 0.6 + 3.0 * rows))
    axes = fig.subplots(rows, 2, squeeze=False)
    # fixed margins: tight_layout costs more than drawing the figure
    fig.subplots_adjust(
        left=0.07,
        right=0.98,
        bottom=0.45 / (0.6 + 3.0 * rows),
        top=1 - 0.5 / (0.6 + 3.0 * rows),
        hspace=0.45,
        wspace=0.22,
    )
    for row, (key, s) in zip(axes, strata, strict=False):
        _panel(row[0], s.scores, f"{key}: study score (n={s.n})", "study score")
        _panel(row[1], s.lesion_statistics, f"{key}: lesion statistic (n={s.n})", "heat threshold (tau)")
    smoke = bool(profile.extra.get("smoke_run"))
    title = f"profile {profile.name}: {profile.n_studies} normal studies"
    if smoke:
        title = f"SMOKE RUN - random weights, thresholds meaningless. {title}"
    fig.suptitle(title, fontsize=10, color="red" if smoke else "black")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    return write_bytes(path, buf.getvalue())
