"""The report's figures, each drawn into one image and returned as PNG bytes.

Brain maps are rows of axial slices (left is left, anterior at the top) with a labelled
colour bar; in a template space (MNI) they add three maximum-intensity projections, the
information of a glass brain, and say "MNI". Design figures show the design matrix with
the contrast weights above its columns, the correlations of its regressors and their
variance inflation. Nothing here reads or writes files: :mod:`.pages` names and writes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from . import slices
from .draw import ACCENT, GRID, INK, MUTED, WARN, Canvas, colour_bar, diverging, fit_label
from .quality import FD_LIMIT, VIF_LIMIT

GAP = 6
TITLE = 22
BAR = 42  # height of the colour bar and its labels


def draw_title(canvas: Canvas, text: str) -> None:
    """The figure's title, on its first line (shortened to fit)."""
    canvas.text((GAP, 5), fit_label(canvas, text, canvas.size[0] - 2 * GAP, 13), size=13, fill=INK)


@dataclass(frozen=True, eq=False)
class MapView:
    """What the map figures of one page share: the background, the part shown, the scale.

    Attributes
    ----------
    background : numpy.ndarray or None
        Grey levels in [0, 1] on the maps' grid (:func:`.slices.grey`); None: black.
    mask : numpy.ndarray
        The voxels of the maps (their box is what is shown; projections outline it).
    grid : slices.Volume
        A volume on the maps' grid (voxel sizes and slice coordinates).
    threshold, vmax : float
        Values with ``|z| <= threshold`` are not shown; the colours end at ``vmax``.
    template : bool
        A template (MNI) space: projections are drawn and coordinates say MNI.
    tile : int
        Width of an axial tile in pixels.
    """

    background: np.ndarray | None
    mask: np.ndarray
    grid: slices.Volume
    threshold: float
    vmax: float
    template: bool
    tile: int = 150

    @cached_property
    def box(self):
        """The part of the grid shown: the mask's bounding box (:func:`.slices.extent`)."""
        return slices.extent(self.mask)

    @cached_property
    def per_mm(self) -> float:
        """Pixels per mm that make an axial tile ``tile`` pixels wide."""
        width_mm = (self.box[0].stop - self.box[0].start) * self.grid.zooms[0]
        return self.tile / max(width_mm, 1e-6)

    def repeats(self, row_axis, column_axis, scale=1.0) -> tuple[int, int]:
        """Pixel repeats of a voxel along the rows and columns of a tile (nearest neighbour)."""
        zooms = self.grid.zooms
        return (max(1, round(float(zooms[row_axis]) * self.per_mm * scale)),
                max(1, round(float(zooms[column_axis]) * self.per_mm * scale)))

    def axial_tile(self, data, k, scale=1.0) -> np.ndarray:
        """Axial slice ``k`` of a map over the background, as an RGB tile."""
        grey = None if self.background is None else slices.axial(self.background, k, self.box)
        rgb = slices.overlay(grey, slices.axial(data, k, self.box), self.threshold, self.vmax)
        return slices.upscale(rgb, *self.repeats(1, 0, scale))

    def projection_tile(self, data, axis) -> np.ndarray:
        """The signed maximum projection of a map along ``axis`` over the mask's outline, as an RGB tile."""
        silhouette = slices.projection(self.mask.astype(np.float32), axis, self.box) > 0
        grey = np.where(silhouette, 0.22, 0.0)
        rgb = slices.overlay(grey, slices.projection(data, axis, self.box), self.threshold, self.vmax)
        rows, columns = {0: (2, 1), 1: (2, 0), 2: (1, 0)}[axis]
        return slices.upscale(rgb, *self.repeats(rows, columns))

    def cut_label(self, k) -> str:
        """``z = 12``: the slice's world coordinate at the grid's precision."""
        decimals = slices.voxel_decimals(self.grid.zooms)
        return f"z = {slices.round_to_voxels(self.grid.world(2, k), decimals)}"


def stat_map(view: MapView, data: np.ndarray, cuts, title: str) -> bytes:
    """A z map as axial slices (and, in a template space, three projections), with a colour bar.

    Parameters
    ----------
    view : MapView
    data : numpy.ndarray
        The z map, on the view's grid.
    cuts : list of int
        Axial slices.
    title : str
    """
    tiles = [(view.axial_tile(data, k), view.cut_label(k)) for k in cuts]
    if view.template:
        names = ("sagittal", "coronal", "axial")
        tiles += [(view.projection_tile(data, axis), f"{names[axis]} projection") for axis in range(3)]
    width = sum(t.shape[1] for t, _ in tiles) + GAP * (len(tiles) + 1)
    height = TITLE + max(t.shape[0] for t, _ in tiles) + GAP + BAR
    canvas = Canvas(max(width, 330), height)
    draw_title(canvas, title)
    x = GAP
    for index, (tile, label) in enumerate(tiles):
        canvas.paste(tile, (x, TITLE))
        canvas.text((x + 3, TITLE + 2), label, size=10, fill=(255, 255, 255))
        if index == 0:
            canvas.text((x + 3, TITLE + tile.shape[0] - 3), "L", size=10, fill=(255, 255, 255), anchor="lb")
            canvas.text((x + tile.shape[1] - 3, TITLE + tile.shape[0] - 3), "R", size=10, fill=(255, 255, 255),
                        anchor="rb")
        x += tile.shape[1] + GAP
    frame = "MNI coordinates" if view.template else "coordinates of the image (mm)"
    bar_y = height - BAR + 8
    colour_bar(canvas, (40, bar_y), 220, view.threshold, view.vmax, label="z")
    canvas.text((280, bar_y), f"|z| > {view.threshold:.3g} shown; {frame}", size=10, fill=MUTED)
    return canvas.png()


def map_grid(view: MapView, rows, cuts, title: str, label: str = "z", signed: bool = True,
             scale: float = 0.6) -> bytes:
    """Several maps on the same slices and colour scale: one row per map, one column per slice.

    Parameters
    ----------
    view : MapView
    rows : list of (str, numpy.ndarray)
        A label and a z map on the view's grid.
    cuts : list of int
    title : str
    label : str
        The statistic, under the colour bar.
    signed : bool
        False: maps of positive values (``-log10 p``), the colour bar from 0.
    scale : float
        Size of the tiles, relative to the view's.
    """
    sample = view.axial_tile(rows[0][1], cuts[0], scale)
    tile_h, tile_w = sample.shape[:2]
    probe = Canvas(1, 1)
    label_w = min(max(probe.text_width(name, 11) for name, _ in rows) + 2 * GAP, 180)
    width = int(label_w + len(cuts) * (tile_w + GAP) + GAP)
    height = TITLE + 14 + len(rows) * (tile_h + GAP) + BAR
    canvas = Canvas(max(width, 330), height)
    draw_title(canvas, title)
    for j, k in enumerate(cuts):
        canvas.text((label_w + j * (tile_w + GAP) + tile_w / 2, TITLE), view.cut_label(k), size=10, fill=MUTED,
                    anchor="ma")
    for i, (name, data) in enumerate(rows):
        y = TITLE + 14 + i * (tile_h + GAP)
        canvas.text((label_w - GAP, y + tile_h / 2), fit_label(canvas, name, label_w - 2 * GAP), size=11,
                    anchor="rm")
        for j, k in enumerate(cuts):
            canvas.paste(view.axial_tile(data, k, scale), (label_w + j * (tile_w + GAP), y))
    colour_bar(canvas, (max(40, probe.text_width(label, 12) + 14), height - BAR + 8), 220, view.threshold, view.vmax,
               label=label, signed=signed)
    return canvas.png()


def _slice_row(view: MapView, tiles, cuts, title: str, below: int, min_width: int) -> Canvas:
    """A canvas with a title and a row of axial tiles, each labelled with its cut, ``below`` pixels
    left under them."""
    width = sum(t.shape[1] for t in tiles) + GAP * (len(tiles) + 1)
    canvas = Canvas(max(width, min_width), TITLE + max(t.shape[0] for t in tiles) + below)
    draw_title(canvas, title)
    x = GAP
    for k, tile in zip(cuts, tiles):
        canvas.paste(tile, (x, TITLE))
        canvas.text((x + 3, TITLE + 2), view.cut_label(k), size=10, fill=(255, 255, 255))
        x += tile.shape[1] + GAP
    return canvas


def r_square(view: MapView, data: np.ndarray, cuts, title: str) -> bytes:
    """A run's R² map as a row of small axial slices, from 0 to ``view.vmax``, with its colour bar.

    Parameters
    ----------
    view : MapView
        Its ``threshold`` is 0 and ``vmax`` the top of the scale (shared by a subject's runs).
    data : numpy.ndarray
        The R² map, on the view's grid.
    cuts : list of int
    title : str
    """
    canvas = _slice_row(view, [view.axial_tile(data, k, 0.6) for k in cuts], cuts, title, GAP + BAR, 330)
    height = canvas.size[1]
    colour_bar(canvas, (40, height - BAR + 8), 220, view.threshold, view.vmax, label="R2", signed=False)  # the font has no ²
    return canvas.png()


def tiles_grid(view: MapView, items, cut: int, title: str, columns: int = 8) -> bytes:
    """One slice of many maps, in a grid with a label under each (a small map per subject).

    Parameters
    ----------
    view : MapView
    items : list of (str, numpy.ndarray)
    cut : int
        The axial slice shown for every map.
    title : str
    columns : int
    """
    scale = 0.6
    sample = view.axial_tile(items[0][1], cut, scale)
    tile_h, tile_w = sample.shape[:2]
    columns = max(1, min(columns, len(items)))
    n_rows = -(-len(items) // columns)
    width = columns * (tile_w + GAP) + GAP
    height = TITLE + n_rows * (tile_h + 16 + GAP) + BAR
    canvas = Canvas(max(width, 330), height)
    draw_title(canvas, f"{title} ({view.cut_label(cut)})")
    for index, (label, data) in enumerate(items):
        x = GAP + (index % columns) * (tile_w + GAP)
        y = TITLE + (index // columns) * (tile_h + 16 + GAP)
        canvas.paste(view.axial_tile(data, cut, scale), (x, y))
        canvas.text((x + tile_w / 2, y + tile_h + 2), fit_label(canvas, label, tile_w), size=10, anchor="ma")
    colour_bar(canvas, (40, height - BAR + 8), 220, view.threshold, view.vmax, label="z")
    return canvas.png()


def coverage(view: MapView, count: np.ndarray, n_runs: int, cuts, title: str) -> bytes:
    """How many runs' masks cover each voxel: all of them (the subject's mask) or only some.

    Parameters
    ----------
    view : MapView
    count : numpy.ndarray
        Number of run masks that hold each voxel.
    n_runs : int
    cuts : list of int
    title : str
    """
    all_runs = np.array([60, 170, 90], dtype=float)
    some_runs = np.array([[230, 40, 30], [250, 170, 40]], dtype=float)  # one run .. all but one
    tiles = []
    for k in cuts:
        grey = slices.axial(view.background, k, view.box) if view.background is not None else None
        base = np.zeros(slices.axial(count, k, view.box).shape + (3,)) if grey is None else \
            np.repeat(grey[..., None] * 255.0, 3, axis=2)
        runs = slices.axial(count, k, view.box)
        partial = (runs > 0) & (runs < n_runs)
        fraction = ((runs - 1) / max(n_runs - 2, 1))[..., None]
        base[partial] = (some_runs[0] * (1 - fraction) + some_runs[1] * fraction)[partial]
        base[runs >= n_runs] = 0.45 * base[runs >= n_runs] + 0.55 * all_runs
        tiles.append(slices.upscale(base.astype(np.uint8), *view.repeats(1, 0, 0.8)))
    canvas = _slice_row(view, tiles, cuts, title, 30, 420)
    y = TITLE + tiles[0].shape[0] + 9
    x = GAP
    legend = [(all_runs, f"all {n_runs} runs (the subject's mask)"), (some_runs[1], "all but one run")]
    if n_runs >= 4:  # the colours between the two: 2 to n - 2 runs
        legend.append((some_runs.mean(axis=0), f"2 to {n_runs - 2} runs" if n_runs > 4 else "2 runs"))
    for colour, text in (*legend, (some_runs[0], "one run")):
        canvas.rectangle((x, y, x + 12, y + 12), fill=tuple(int(c) for c in colour))
        canvas.text((x + 17, y), text, size=11)
        x += 30 + canvas.text_width(text, 11)
    return canvas.png()


def design(matrix, conditions, confounds, contrasts, vif, correlations, censored, title: str) -> bytes:
    """A run's design: the matrix (columns scaled to their largest value) with each contrast's
    weights above its columns, the correlations of its conditions and confounds, and their
    variance inflation factors.

    Parameters
    ----------
    matrix : pandas.DataFrame
        One row per volume.
    conditions, confounds : sequence of str
    contrasts : sequence of (str, numpy.ndarray)
        Name and weights over the matrix's columns.
    vif : dict
        Column -> variance inflation factor.
    correlations : (list of str, numpy.ndarray)
        As :func:`.quality.regressor_correlations` gives them.
    censored : numpy.ndarray
        Boolean, volumes left out of the fit.
    title : str
    """
    probe = Canvas(1, 1)
    columns = [str(c) for c in matrix.columns]
    n_columns = len(columns)
    cell = int(np.clip(520 // max(n_columns, 1), 5, 16))
    left = int(min(max([probe.text_width(n, 11) for n, _ in contrasts] + [40]) + 2 * GAP, 150))
    labels_h = int(min(max(probe.text_width(c, 10) for c in columns) + 6, 110)) if cell >= 9 else 14
    strip = 14 * len(contrasts)
    matrix_h = 200
    names, corr = correlations
    # labelled rows (9 px or more) up to LABELLED_CORRELATIONS regressors, however wide it makes the matrix
    corr_cell = int(np.clip(240 // max(len(names), 1), 9 if len(names) <= LABELLED_CORRELATIONS else 6, 16))
    corr_left = int(min(max([probe.text_width(n, 10) for n in names] + [30]) + GAP, 120))
    corr_w = corr_left + corr_cell * len(names) + 48 if names else 0
    width = left + n_columns * cell + 3 * GAP + corr_w + GAP
    height = TITLE + strip + 4 + matrix_h + labels_h + GAP
    canvas = Canvas(max(width, 360), max(height, TITLE + 40 + corr_cell * len(names) + 60))
    draw_title(canvas, title)
    # contrast weights above the columns
    y = TITLE
    for name, weights in contrasts:
        largest = float(np.max(np.abs(weights))) or 1.0
        canvas.text((left - GAP, y + 7), fit_label(canvas, name, left - 2 * GAP), size=11, anchor="rm")
        for j, weight in enumerate(weights):
            x = left + j * cell
            canvas.rectangle((x, y, x + cell - 1, y + 12), fill=diverging(weight / largest), outline=GRID)
            if weight and cell >= 14:
                canvas.text((x + cell / 2, y + 6), f"{weight:g}", size=8, anchor="mm")
        y += 14
    # the matrix, each column scaled to its largest absolute value
    values = matrix.to_numpy(dtype=float)
    scale = np.max(np.abs(values), axis=0)
    scaled = values / np.where(scale > 0, scale, 1.0)
    rows = np.linspace(0, len(values) - 1, matrix_h).round().astype(int)
    grey = (127.5 * (1 + scaled[rows])).astype(np.uint8)
    image = np.repeat(np.repeat(grey, cell, axis=1)[..., None], 3, axis=2)
    top = TITLE + strip + 4
    canvas.paste(image, (left, top))
    canvas.rectangle((left - 1, top - 1, left + n_columns * cell, top + matrix_h), outline=MUTED)
    if censored is not None and np.any(censored):
        for row in np.nonzero(censored[rows])[0]:
            canvas.line([(left - 5, top + row), (left - 2, top + row)], fill=WARN)
    canvas.text((left - GAP, top), "vol 1", size=9, fill=MUTED, anchor="ra")
    canvas.text((left - GAP, top + matrix_h), f"{len(values)}", size=9, fill=MUTED, anchor="rd")
    if cell >= 9:
        for j, column in enumerate(columns):
            colour = ACCENT if column in conditions else INK if column in confounds else MUTED
            label = fit_label(canvas, column, labels_h - 6, 10)
            canvas.vertical_text((left + j * cell + cell / 2, top + matrix_h + 4 + canvas.text_width(label, 10)),
                                 label, size=10, fill=colour)
    else:
        canvas.text((left, top + matrix_h + 2), f"{n_columns} columns", size=10, fill=MUTED)
    if names:
        _correlations(canvas, left + n_columns * cell + 3 * GAP, TITLE, names, corr, corr_cell, corr_left, vif)
    return canvas.png()


#: The most regressors whose correlation matrix names its rows and gives their VIFs (beyond, its
#: cells are too small for text: 240 px over the regressors, at least 6 px each).
LABELLED_CORRELATIONS = 48


def _correlations(canvas, x0, y0, names, corr, cell, left, vif):
    canvas.text((x0 + left, y0), "correlations", size=10, fill=MUTED)
    if cell >= 9:  # the VIFs are written only in rows tall enough for text
        canvas.text((x0 + left + cell * len(names) + 6, y0), "VIF", size=10, fill=MUTED)
    top = y0 + 14
    for i, name in enumerate(names):
        y = top + i * cell
        if cell >= 9:
            canvas.text((x0 + left - 4, y + cell / 2), fit_label(canvas, name, left - 6, 10), size=10, anchor="rm")
        for j in range(len(names)):
            value = corr[i, j]
            fill = (235, 235, 235) if not np.isfinite(value) else diverging(value)
            canvas.rectangle((x0 + left + j * cell, y, x0 + left + (j + 1) * cell - 1, y + cell - 1), fill=fill)
        factor = vif.get(name)
        if factor is not None and cell >= 9:
            text = "inf" if not np.isfinite(factor) else f"{factor:.1f}"
            canvas.text((x0 + left + cell * len(names) + 6, y + cell / 2), text, size=10,
                        fill=WARN if factor > VIF_LIMIT else INK, anchor="lm")


def motion(rows, title: str) -> bytes:
    """Framewise displacement over time, one line per run, with its mean at the right.

    Parameters
    ----------
    rows : list of (str, quality.Motion or None, numpy.ndarray or None)
        Run label, its motion, and the volumes left out of its fit (boolean).
    title : str
    """
    probe = Canvas(1, 1)
    label_w = int(min(max(probe.text_width(label, 11) for label, _, _ in rows) + 2 * GAP, 170))
    plot_w, row_h, mean_w = 560, 30, 150
    known = [m for _, m, _ in rows if m is not None]
    top_fd = max([FD_LIMIT * 1.25] + [m.max for m in known if np.isfinite(m.max)])
    longest = max([len(m.fd) for m in known] or [1])
    height = TITLE + 16 + len(rows) * row_h + 22
    canvas = Canvas(label_w + plot_w + mean_w + 2 * GAP, height)
    draw_title(canvas, title)
    canvas.text((label_w, TITLE), f"FD (mm) per volume, each row 0 to {top_fd:.2g} mm; red line {FD_LIMIT:g} mm",
                size=10, fill=MUTED)
    canvas.text((label_w + plot_w + 2 * GAP, TITLE), "mean FD (mm)", size=10, fill=MUTED)
    for i, (label, found, censored) in enumerate(rows):
        y = TITLE + 16 + i * row_h
        base = y + row_h - 4
        canvas.text((label_w - GAP, y + row_h / 2), fit_label(canvas, label, label_w - 2 * GAP), size=11, anchor="rm")
        canvas.line([(label_w, base), (label_w + plot_w, base)], fill=GRID)
        limit_y = base - FD_LIMIT / top_fd * (row_h - 6)
        canvas.line([(label_w, limit_y), (label_w + plot_w, limit_y)], fill=(240, 170, 170))
        if found is None:
            canvas.text((label_w + 4, y + row_h / 2), "no confounds file: no motion estimates", size=10, fill=MUTED,
                        anchor="lm")
            continue
        fd = np.nan_to_num(found.fd)
        xs = label_w + np.arange(len(fd)) / max(longest - 1, 1) * plot_w
        ys = base - np.clip(fd / top_fd, 0, 1) * (row_h - 6)
        canvas.line(list(zip(xs, ys)), fill=ACCENT)
        if censored is not None:
            for index in np.nonzero(censored)[0]:
                canvas.line([(xs[index], base), (xs[index], base + 3)], fill=WARN)
        mean = found.mean
        bar = 0 if not np.isfinite(mean) else min(mean / top_fd, 1) * (mean_w - 50)
        x = label_w + plot_w + 2 * GAP
        canvas.rectangle((x, y + 9, x + max(bar, 1), y + row_h - 9), fill=WARN if mean > FD_LIMIT else ACCENT)
        canvas.text((x + bar + 4, y + row_h / 2), f"{mean:.2f}", size=10, anchor="lm")
    y = TITLE + 16 + len(rows) * row_h + 4
    for fraction in (0, 0.25, 0.5, 0.75, 1):
        x = label_w + fraction * plot_w
        canvas.line([(x, y - 4), (x, y)], fill=MUTED)
        canvas.text((x, y + 1), f"{round(1 + fraction * (longest - 1))}", size=9, fill=MUTED, anchor="ma")
    return canvas.png()
