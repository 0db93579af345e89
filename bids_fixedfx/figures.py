"""Figures of the reports, drawn with nilearn.plotting on matplotlib's Agg backend.

Each function draws one figure from data already in memory, writes it atomically as
a PNG and closes it. Nothing here decides what to show or where: :mod:`.report` does.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # reports are files: no display, no interactive backend

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from . import outputs  # noqa: E402

#: Resolution of the PNG files: small files, quick to draw, readable at their own size.
DPI = 80
#: Number of axial slices of a z map (as in nilearn's first-level example).
N_CUTS = 3


def save(figure, path) -> Path:
    """Write a matplotlib figure as a PNG atomically (temporary name, then rename), and close it.

    Parameters
    ----------
    figure : matplotlib.figure.Figure
    path : Path

    Returns
    -------
    path : Path
    """
    path = Path(path)
    buffer = io.BytesIO()
    try:
        figure.savefig(buffer, format="png", dpi=DPI, facecolor=figure.get_facecolor())
    finally:
        plt.close(figure)
    return outputs.write_bytes(buffer.getvalue(), path)


def _figure(width, height, *, left=0.5, right=0.2, top=0.3, bottom=0.3):
    """A figure of ``width`` x ``height`` inches whose one axes leaves these margins (inches).

    Fixed margins instead of matplotlib's constrained layout, which costs more than the drawing.
    """
    figure, axes = plt.subplots(figsize=(width, height))
    figure.subplots_adjust(
        left=left / width, right=1 - right / width, top=1 - top / height, bottom=bottom / height
    )
    return figure, axes


def _label_inches(labels, angle_degrees=90.0) -> float:
    """How far tick labels rotated by ``angle_degrees`` reach from their axis, in inches."""
    longest = max((len(str(label)) for label in labels), default=1)
    return 0.075 * longest * abs(np.sin(np.radians(angle_degrees))) + 0.15


def design_matrix(matrix, path) -> Path:
    """Draw a run's design matrix (nilearn's ``plot_design_matrix``), columns scaled.

    Parameters
    ----------
    matrix : pandas.DataFrame
        One row per volume, one column per regressor.
    path : Path
    """
    from nilearn.plotting import plot_design_matrix

    labels = [str(c) for c in matrix.columns]
    top = _label_inches(labels, 60) + 0.1
    height = float(np.clip(1 + 0.05 * len(matrix), 3, 6)) + top
    figure, axes = _figure(max(1.2 + 0.25 * len(labels), 3.0), height, left=0.8, right=0.2 + 0.04 * len(labels[-1]),
                           top=top, bottom=0.15)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plot_design_matrix(matrix, axes=axes)
    return save(figure, path)


def design_correlation(matrix, path) -> Path | None:
    """Draw the correlations between a design's regressors (``plot_design_matrix_correlation``).

    Returns None, drawing nothing, when the design has fewer than two regressors
    besides the constant and drift terms.
    """
    from nilearn.plotting import plot_design_matrix_correlation

    kept = [str(c) for c in matrix.columns
            if c not in ("constant", "intercept") and not str(c).startswith("drift_")]
    if len(kept) < 2:
        return None
    margin = _label_inches(kept)
    side = 0.25 * len(kept) + 1.0
    figure, axes = _figure(side + margin + 1.2, side + margin + 0.3, left=margin, right=1.2, top=0.3,
                           bottom=margin)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plot_design_matrix_correlation(matrix, tri="diag", axes=axes)
    return save(figure, path)


def contrast_matrix(contrasts, matrix, path) -> Path:
    """Draw the weights of a run's contrasts over its design columns, one row per contrast.

    Parameters
    ----------
    contrasts : sequence of ContrastWeights
        ``name`` and ``vector`` (one weight per design column).
    matrix : pandas.DataFrame
        The design whose columns the weights apply to.
    path : Path
    """
    from nilearn.plotting import plot_contrast_matrix

    labels = [str(c) for c in matrix.columns]
    weights = np.vstack([np.asarray(c.vector, dtype=float) for c in contrasts])
    top = _label_inches(labels, 50)
    left = _label_inches([c.name for c in contrasts], 0) + 0.1 + 0.075 * max(len(c.name) for c in contrasts)
    width = 0.3 * len(labels) + left + 1.6
    figure, axes = _figure(width, 0.3 * len(contrasts) + top + 0.3, left=left,
                           right=1.6 + 0.05 * len(labels[-1]), top=top, bottom=0.2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plot_contrast_matrix(weights, matrix, axes=axes)
    axes.set_yticks(np.arange(len(contrasts)))
    axes.set_yticklabels([c.name for c in contrasts])
    return save(figure, path)


def cut_coords(stat_img, n_cuts=N_CUTS) -> list[float]:
    """Axial slices through the strongest effects of a map (nilearn's ``find_cut_slices``)."""
    from nilearn.plotting import find_cut_slices

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return [float(c) for c in find_cut_slices(stat_img, direction="z", n_cuts=n_cuts)]


def stat_map(stat_img, path, *, bg_img, threshold, cuts, vmax, title, colorbar=True) -> Path:
    """Draw a z map thresholded at ``|z| > threshold`` over a background, as nilearn's examples.

    Parameters
    ----------
    stat_img : Nifti1Image
    path : Path
    bg_img : Nifti1Image or None
        The mean EPI (None: no background).
    threshold : float
    cuts : list of float
        Axial slice positions in mm (the same for a subject's map and its runs').
    vmax : float
        The colour scale's end, shared by the maps being compared.
    title : str
    colorbar : bool
        Whether to draw the colour scale (maps shown beside one that has it can do without).
    """
    from nilearn.plotting import plot_stat_map

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        display = plot_stat_map(
            stat_img, bg_img=bg_img, threshold=threshold,
            display_mode="z", cut_coords=cuts, black_bg=True, title=title, vmax=vmax,
            symmetric_cbar=True, draw_cross=False, resampling_interpolation="nearest", colorbar=colorbar,
        )
    return save(display.frame_axes.figure, path)


def glass_brain(stat_img, path, *, threshold, vmax, title) -> Path:
    """Draw a z map as a glass brain (nilearn's ``plot_glass_brain``), both signs shown."""
    from nilearn.plotting import plot_glass_brain

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        display = plot_glass_brain(
            stat_img, threshold=threshold, plot_abs=False, colorbar=True, vmax=vmax,
            symmetric_cbar=True, title=title, cmap="RdBu_r",
        )
    return save(display.frame_axes.figure, path)
