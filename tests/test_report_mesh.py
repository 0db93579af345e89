"""Surface figures: the mesh rasteriser (which face each pixel shows) and the figures drawn with it."""

from __future__ import annotations

import io

import numpy as np
import pytest

from bids_fixedfx.report import mesh

# ----------------------------------------------------------------------------
# the rasteriser, on meshes whose pixels can be counted


def test_a_triangle_covers_the_pixel_centres_inside_it():
    xy = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    face = mesh.rasterise(xy, np.zeros(3), np.array([[0, 1, 2]]), (12, 12))
    rows, columns = np.nonzero(face == 0)
    # centre (c + 0.5, r + 0.5) inside x + y <= 10: r + c <= 9
    assert np.all(rows + columns <= 9) and face[face >= 0].size == 55
    assert np.all(face[(np.add.outer(np.arange(12), np.arange(12)) > 9)] == -1)


def test_either_winding_and_big_faces_beside_small_ones():
    small = np.array([[20.0, 20.0], [21.5, 20.0], [20.0, 21.5]])
    big = np.array([[0.0, 0.0], [0.0, 16.0], [16.0, 0.0]])  # clockwise, as drawn here
    xy = np.vstack([small, big])
    face = mesh.rasterise(xy, np.zeros(6), np.array([[0, 1, 2], [3, 4, 5]]), (24, 24))
    assert (face == 1).sum() == sum(range(1, 17))  # r + c <= 15
    assert (face == 0).sum() == 1 and face[20, 20] == 0


def test_the_nearest_face_is_shown_where_faces_overlap():
    square = np.array([[1.0, 1.0], [9.0, 1.0], [9.0, 9.0], [1.0, 9.0]])
    xy = np.vstack([square, square + 2])
    depth = np.array([5.0] * 4 + [1.0] * 4)  # the second square is nearer
    faces = np.array([[0, 1, 2], [0, 2, 3], [4, 5, 6], [4, 6, 7]])
    face = mesh.rasterise(xy, depth, faces, (12, 12))
    assert set(np.unique(face[3:10, 3:10])) <= {2, 3}  # where both cover: the nearer
    assert set(np.unique(face[1:3, 1:9])) <= {0, 1} and face[1, 1] in (0, 1)
    reordered = mesh.rasterise(xy, depth, faces[::-1], (12, 12))  # the same square wins, in any order
    square_of = lambda f: np.where(f >= 0, f // 2, -1)  # noqa: E731
    assert np.array_equal(square_of(np.where(reordered >= 0, 3 - reordered, -1)), square_of(face))


def test_depth_is_interpolated_across_a_face():
    # two faces crossing: one nearer on the left, the other nearer on the right
    xy = np.array([[0.0, 0.0], [10.0, 0.0], [10.0, 10.0], [0.0, 10.0]])
    xy = np.vstack([xy, xy])
    depth = np.array([0.0, 10.0, 10.0, 0.0, 10.0, 0.0, 0.0, 10.0])
    faces = np.array([[0, 1, 2], [0, 2, 3], [4, 5, 6], [4, 6, 7]])
    face = mesh.rasterise(xy, depth, faces, (10, 10))
    assert set(np.unique(face[:, :4])) <= {0, 1} and set(np.unique(face[:, 6:])) <= {2, 3}


def test_paint_and_downsample():
    view = mesh.MeshView(np.array([[0, 1], [-1, 1]]), np.ones((2, 2)))
    assert np.array_equal(view.paint(np.array([5.0, 7.0]), fill=0.0), [[5.0, 7.0], [0.0, 7.0]])
    colours = view.paint(np.array([[1, 2, 3], [4, 5, 6]]), fill=0)
    assert colours.shape == (2, 2, 3) and colours[1, 0].tolist() == [0, 0, 0]
    assert mesh.downsample(np.arange(16.0).reshape(4, 4), 2).tolist() == [[2.5, 4.5], [10.5, 12.5]]


# ----------------------------------------------------------------------------
# views of nilearn's fsaverage5, as nilearn's plot_surf shows them


@pytest.fixture(scope="module")
def fsaverage5():
    from nilearn.datasets import load_fsaverage

    inflated = load_fsaverage("fsaverage5")["inflated"]
    return {h: np.asarray(inflated.parts[h].coordinates) for h in ("left", "right")}


def _shown_centroids(views, coords, key):
    shown = views.views[key]
    faces = views.faces[key[0]][np.unique(shown.face[shown.covered])]
    return coords[key[0]][faces].mean(axis=1)


def test_lateral_views_show_the_outer_side_and_medial_views_the_inner(fsaverage5):
    views = mesh.hemisphere_views("fsaverage5", 120)
    for hemi, outward in (("left", -1), ("right", 1)):
        lateral = _shown_centroids(views, fsaverage5, (hemi, "lateral"))[:, 0].mean()
        medial = _shown_centroids(views, fsaverage5, (hemi, "medial"))[:, 0].mean()
        assert outward * lateral > 0 > outward * medial
    sizes = {v.face.shape for v in views.views.values()}
    assert sizes == {views.views["left", "lateral"].face.shape} and next(iter(sizes))[1] == 240  # supersampled
    coverage = views.views["left", "lateral"].covered.mean()
    assert 0.4 < coverage < 0.95  # the mesh, with white around it
    assert all(0 <= s.min() and s.max() <= 1 for s in views.sulcal.values())


def _panels(png, n_panels=4):
    from PIL import Image

    from bids_fixedfx.report import surfaces
    from bids_fixedfx.report.figures import GAP, TITLE

    image = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    height = mesh.hemisphere_views("fsaverage5", surfaces.PANEL, surfaces.SUPERSAMPLE).views["left", "lateral"]
    height = height.face.shape[0] // surfaces.SUPERSAMPLE
    top = TITLE + 14
    return [image[top:top + height, GAP + i * (surfaces.PANEL + GAP):GAP + i * (surfaces.PANEL + GAP) + surfaces.PANEL]
            for i in range(n_panels)]


def _coloured(panel):
    """Pixels that are not grey (the map's colours)."""
    return (panel.max(axis=2) - panel.min(axis=2)) > 40


def _fsaverage5_form():
    from bids_fixedfx import surface

    return surface.Form(kind="gifti", space="fsaverage5", n_vertices=(10242, 10242))


def test_a_map_is_drawn_where_its_vertices_are(fsaverage5):
    from bids_fixedfx.report import surfaces

    left = fsaverage5["left"]
    front = left[:, 1] > np.percentile(left[:, 1], 97)  # the frontal pole of the left hemisphere
    z = np.zeros(2 * 10242)
    z[:10242][front] = 8.0
    png = surfaces.map_figure(z, _fsaverage5_form(), 3.0, 8.0, "front")
    left_lateral, left_medial, right_lateral, right_medial = (_coloured(p) for p in _panels(png))
    assert left_lateral.sum() > 30 and left_medial.sum() > 30
    assert right_lateral.sum() == 0 and right_medial.sum() == 0
    # anterior is on the outer side in lateral views: left in the left hemisphere's, right in its medial view
    width = left_lateral.shape[1]
    assert np.nonzero(left_lateral)[1].max() < width / 3 and np.nonzero(left_medial)[1].min() > 2 * width / 3
    positive = _panels(png)[0][left_lateral]
    assert np.all(positive[:, 0] > positive[:, 2])  # red to yellow, not blue

    blank = surfaces.map_figure(np.zeros(2 * 10242), _fsaverage5_form(), 3.0, 8.0, "nothing")
    assert not any(_coloured(p).any() for p in _panels(blank))
    negative = surfaces.map_figure(-z, _fsaverage5_form(), 3.0, 8.0, "front, negative")
    shown = _panels(negative)[0][_coloured(_panels(negative)[0])]
    assert shown.size and np.all(shown[:, 2] > shown[:, 0])  # blue to cyan


def test_a_face_is_shown_when_the_mean_of_its_vertices_is_beyond_the_threshold(fsaverage5):
    from bids_fixedfx.report import surfaces

    z = np.zeros(2 * 10242)
    z[:10242][fsaverage5["left"][:, 0] < np.percentile(fsaverage5["left"][:, 0], 20)] = 2.9  # below 3
    png = surfaces.map_figure(z, _fsaverage5_form(), 3.0, 8.0, "below")
    assert not _coloured(_panels(png)[0]).any()
    png = surfaces.map_figure(z + (z > 0) * 0.2, _fsaverage5_form(), 3.0, 8.0, "above")
    assert _coloured(_panels(png)[0]).sum() > 1000


def test_a_capped_peak_table_says_it_holds_the_strongest_vertices_only():
    """Off a mesh, 100 rows of 106 vertices beyond the threshold were linked as the 'full table'."""
    from bids_fixedfx.report.pages import _environment
    from bids_fixedfx.report.surfaces import MAX_PEAKS, PeakTable

    rows = tuple((rank, "CORTEX_LEFT", rank, 5.0 - rank / 100) for rank in range(1, MAX_PEAKS + 1))
    template = _environment().from_string('{% from "macros.html.jinja" import vertex_peaks %}{{ vertex_peaks(found, 3) }}')
    for n_above, said in ((MAX_PEAKS + 6, f"the {MAX_PEAKS} strongest of the {MAX_PEAKS + 6} vertices beyond 3"),
                          (MAX_PEAKS, "full table")):
        table = PeakTable(("peak", "structure", "vertex", "z"), rows, n_above, on_mesh=False)
        page = template.render(found={"table": table, "rows": rows[:10], "tsv": "t.tsv", "tsv_name": "t.tsv"})
        assert said in " ".join(page.split()), page
