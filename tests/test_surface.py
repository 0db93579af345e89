"""Surface (GIFTI pairs) and CIFTI spaces: reading, the mask rule, writing back, and the
command line end to end against nilearn's surface GLM.

The data come from the example generator with ``surfaces=True``: fsaverage5 GIFTI pairs
with known effects on patches of the sphere (a NaN medial wall and a flat patch left out)
and a reduced fsLR CIFTI with two cortical surface models and one voxel model. The
references are built in nilearn, independently of the app: ``FirstLevelModel`` on
``SurfaceImage`` data with a mask equal to the rule, ``compute_fixed_effects`` and
``SecondLevelModel`` on ``SurfaceImage`` maps; for CIFTI, nilearn's ``mean_scaling``,
``run_glm`` and ``compute_contrast`` on the grayordinate matrix.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import shutil
import subprocess
import sys

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from bids_fixedfx import naming, surface
from bids_fixedfx.cli import main
from bids_fixedfx.errors import EX_NO_INPUT, InputFileError, UsageError
from bids_fixedfx.example_data import make_example_dataset
from bids_fixedfx.example_data import surfaces as example
from bids_fixedfx.example_data.study import CONDITIONS, EFFECT_SIZE

from conftest import N_VOLUMES, SHAPE

MOTION = ["trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z"]
STATS = {"effect": "effect_size", "variance": "effect_variance", "t": "stat", "z": "z_score", "p": "p_value"}
TOLERANCE = 1e-4
FS5, FSLR = example.GIFTI_SPACE, example.CIFTI_SPACE
N = example.FSAVERAGE5_VERTICES


@pytest.fixture(scope="module")
def surface_dataset(tmp_path_factory):
    """Three subjects (the last with one run), one session, two runs, with surfaces."""
    root = tmp_path_factory.mktemp("surface") / "bids"
    return make_example_dataset(root, n_subjects=3, n_sessions=1, n_runs=2, shape=SHAPE, n_volumes=N_VOLUMES,
                                surfaces=True)


def fmriprep(dataset, subject):
    return dataset.path / "derivatives" / "fmriprep" / f"sub-{subject}" / "func"


def gifti_pair(dataset, subject, run):
    folder = fmriprep(dataset, subject)
    return [folder / f"sub-{subject}_task-checkerboard_run-{run}_hemi-{h}_space-{FS5}_bold.func.gii" for h in "LR"]


def cifti_series(dataset, subject, run):
    return fmriprep(dataset, subject) / f"sub-{subject}_task-checkerboard_run-{run}_space-{FSLR}_den-1k_bold.dtseries.nii"


def runs_of(dataset, subject):
    return sorted(p.name.split("_run-")[1][:2] for p in fmriprep(dataset, subject).glob(f"*_hemi-L_space-{FS5}_bold.func.gii"))


def gifti_values(path_left):
    """A written GIFTI pair's values (left then right), read by nibabel."""
    return np.concatenate([nib.load(str(p)).darrays[0].data for p in naming.hemisphere_pair(path_left)])


def cifti_values(path):
    return np.asanyarray(nib.load(str(path)).dataobj)[0]


def relative_difference(ours, theirs, inside):
    ours, theirs = np.asarray(ours, float)[inside], np.asarray(theirs, float)[inside]
    return np.max(np.abs(ours - theirs)) / max(np.max(np.abs(theirs)), 1e-30)


def rule(series):
    """The mask rule, written independently: finite everywhere, not constant over time."""
    finite = np.isfinite(series).all(axis=0)
    spread = np.zeros(series.shape[1])
    spread[finite] = np.ptp(series[:, finite], axis=0)
    return finite & (spread > 0)


# ----------------------------------------------------------------------------
# the module, on the generator's files


def test_gifti_pair_read_left_then_right_with_its_form(surface_dataset):
    left, right = gifti_pair(surface_dataset, "01", "01")
    series, form = surface.read_series(left)
    by_hand = np.concatenate([np.column_stack([d.data for d in nib.load(str(p)).darrays]) for p in (left, right)]).T
    assert series.shape == (N_VOLUMES, 2 * N)
    np.testing.assert_array_equal(series, by_hand)
    assert (form.kind, form.space, form.n_vertices, form.size) == ("gifti", FS5, (N, N), 2 * N)


def test_gifti_series_in_one_2d_array_reads_the_same(surface_dataset, tmp_path):
    pair = gifti_pair(surface_dataset, "01", "02")
    for path in pair:
        columns = np.column_stack([d.data for d in nib.load(str(path)).darrays])
        nib.save(nib.gifti.GiftiImage(darrays=[nib.gifti.GiftiDataArray(columns)]), str(tmp_path / path.name))
    np.testing.assert_array_equal(surface.read_series(tmp_path / pair[0].name)[0], surface.read_series(pair[0])[0])


def test_gifti_series_in_one_volumes_by_vertices_array_reads_as_nilearn_reads_it(surface_dataset, tmp_path):
    """nilearn's test-data generator writes a series as one (volumes x vertices) array, and
    nilearn's ``load_surf_data`` reads it so: the mesh's vertex count tells the two apart."""
    from nilearn.surface import load_surf_data

    pair = gifti_pair(surface_dataset, "01", "02")
    for path in pair:
        rows = np.vstack([d.data for d in nib.load(str(path)).darrays])
        assert rows.shape == (N_VOLUMES, N) and N_VOLUMES != N
        nib.save(nib.gifti.GiftiImage(darrays=[nib.gifti.GiftiDataArray(rows)]), str(tmp_path / path.name))
    series, form = surface.read_series(tmp_path / pair[0].name)
    np.testing.assert_array_equal(series, surface.read_series(pair[0])[0])
    assert form.n_vertices == (N, N) and surface.n_volumes(tmp_path / pair[0].name) == N_VOLUMES
    nilearn_left = load_surf_data(str(tmp_path / pair[0].name))  # vertices x volumes
    np.testing.assert_array_equal(series[:, :N], nilearn_left.T)
    # neither dimension the mesh's vertices: the error gives the array's shape, not a vertex count
    nib.save(nib.gifti.GiftiImage(darrays=[nib.gifti.GiftiDataArray(np.zeros((N_VOLUMES, 100), np.float32))]),
             str(tmp_path / pair[0].name))
    with pytest.raises(InputFileError, match=f"one array of {N_VOLUMES} x 100 values, but {FS5} has {N} vertices"):
        surface.read_series(tmp_path / pair[0].name)


def test_cifti_read_in_grayordinate_order_with_its_brain_models(surface_dataset):
    path = cifti_series(surface_dataset, "01", "01")
    series, form = surface.read_series(path)
    img = nib.load(str(path))
    np.testing.assert_array_equal(series, img.get_fdata(dtype=np.float32))
    assert form.kind == "cifti" and form.density == "1k" and form.brain_models == img.header.get_axis(1)
    assert form.size == 2 * example.CIFTI_VERTICES + int(np.prod(example.CIFTI_VOLUME_SHAPE))


def test_mask_rule_leaves_out_non_finite_and_constant_vertices():
    rng = np.random.default_rng(0)
    series = rng.normal(100, 1, (30, 8)).astype(np.float32)
    series[:, 1] = np.nan  # medial wall
    series[4, 2] = np.inf  # one bad volume
    series[:, 3] = 0.0  # empty
    series[:, 4] = 7.0  # constant
    series[:, 5] = 0.0
    series[10, 5] = 1e-3  # nearly empty, but it varies: fitted
    np.testing.assert_array_equal(surface.series_mask(series), [1, 0, 0, 0, 0, 1, 1, 1])


def test_generator_layout_is_what_the_mask_rule_leaves_out(surface_dataset):
    series, _ = surface.read_series(gifti_pair(surface_dataset, "02", "02")[0])
    _, not_finite, zero = example.gifti_layout()
    outside = np.flatnonzero(~surface.series_mask(series))
    np.testing.assert_array_equal(outside, np.union1d(not_finite, zero))
    np.testing.assert_array_equal(surface.series_mask(series), rule(series))


@pytest.mark.parametrize("kind", ["gifti", "cifti"])
def test_maps_written_back_in_the_input_form_and_read_back(surface_dataset, tmp_path, kind):
    from bids_fixedfx.outputs import Direct, write_map

    bold = gifti_pair(surface_dataset, "01", "01")[0] if kind == "gifti" else cifti_series(surface_dataset, "01", "01")
    _, form = surface.read_series(bold)
    values = np.random.default_rng(1).normal(size=form.size).astype(np.float32)
    paths = write_map(surface.as_image(values), Direct(tmp_path), "subject_statmap", form, subject="01",
                      task="checkerboard", space=form.space, contrast="audio", stat="z")
    if kind == "gifti":
        assert [p.name for p in paths] == [
            f"sub-01_task-checkerboard_hemi-{h}_space-{FS5}_contrast-audio_stat-z_statmap.func.gii" for h in "LR"]
        for path, hemi, part in zip(paths, "LR", (values[:N], values[N:])):
            img = nib.load(str(tmp_path / path))
            assert len(img.darrays) == 1 and img.darrays[0].data.dtype == np.float32
            assert img.darrays[0].meta["AnatomicalStructurePrimary"] == surface.STRUCTURES[hemi]
            assert img.meta["AnatomicalStructurePrimary"] == surface.STRUCTURES[hemi]  # where Workbench reads it
            np.testing.assert_array_equal(img.darrays[0].data, part)
    else:
        assert [p.name for p in paths] == [f"sub-01_task-checkerboard_space-{FSLR}_den-1k_contrast-audio_stat-z_statmap.dscalar.nii"]
        img = nib.load(str(tmp_path / paths[0]))
        assert isinstance(img.header.get_axis(0), nib.cifti2.cifti2_axes.ScalarAxis)
        assert img.header.get_axis(1) == form.brain_models
        assert img.nifti_header.get_intent()[0] == "ConnDenseScalar"
        np.testing.assert_array_equal(np.asanyarray(img.dataobj)[0], values)
    np.testing.assert_array_equal(surface.values_of(surface.read_map(tmp_path / paths[0])), values)
    assert surface.read_form(tmp_path / paths[0]).same_as(form)


def test_a_left_file_without_its_right_twin_is_refused(surface_dataset, tmp_path):
    left = tmp_path / gifti_pair(surface_dataset, "01", "01")[0].name
    left.write_bytes(gifti_pair(surface_dataset, "01", "01")[0].read_bytes())
    with pytest.raises(InputFileError, match="hemi-R"):
        surface.read_series(left)


@pytest.mark.parametrize("missing", ["right", "left"])
def test_a_broken_gifti_pair_stops_only_the_jobs_of_its_space(surface_dataset, tmp_path, missing):
    """A run's missing hemi-R file of fsaverage5 stopped --space MNI... and --space fsLR jobs too;
    a missing hemi-L file left the run out of its subject's maps, with a warning that it had no
    preprocessed series."""
    from bids_fixedfx import discover
    from bids_fixedfx.errors import NoDataError
    from bids_fixedfx.settings import Settings

    copy = tmp_path / "bids"
    shutil.copytree(surface_dataset.path, copy, symlinks=True)
    pair = gifti_pair(surface_dataset, "01", "01")
    gone, there = pair if missing == "left" else pair[::-1]
    (copy / gone.relative_to(surface_dataset.path)).unlink()
    settings = Settings(bids_dir=copy, output_dir=tmp_path / "out", analysis_level="participant",
                        participant_label=("01",))
    assert discover.select_runs(dataclasses.replace(settings, space=FSLR)).runs
    with pytest.raises(NoDataError, match=f"{there.name} has no {missing} hemisphere {gone.name} next to it"):
        discover.select_runs(dataclasses.replace(settings, space=FS5))


def test_surface_series_named_as_fmriprep_20_named_them_are_said_to_be(surface_dataset, tmp_path):
    """fMRIPrep before 21.0 named them *_space-fsaverage5_hemi-L.func.gii (no _bold): --space
    fsaverage5 said only that no such space was present."""
    from bids_fixedfx import discover
    from bids_fixedfx.errors import NoDataError
    from bids_fixedfx.settings import Settings

    copy = tmp_path / "bids"
    shutil.copytree(surface_dataset.path, copy, symlinks=True)
    for path in sorted(copy.rglob(f"*_space-{FS5}_bold.func.gii")):
        hemi = re.search(r"_hemi-([LR])_", path.name)[1]
        path.rename(path.with_name(path.name.replace(f"_hemi-{hemi}_space-{FS5}_bold", f"_space-{FS5}_hemi-{hemi}")))
    settings = Settings(bids_dir=copy, output_dir=tmp_path / "out", analysis_level="participant",
                        participant_label=("01",), space=FS5)
    with pytest.raises(NoDataError, match=rf"--space {FS5} matches no preprocessed BOLD .*named as fMRIPrep named "
                                          r"them before version 21\.0"):
        discover.select_runs(settings)


@pytest.mark.parametrize("right_tr", [1.5, 2.0])
def test_hemispheres_whose_sidecars_give_other_repetition_times_are_refused(surface_dataset, tmp_path, right_tr):
    """The hemi-L sidecar's TR made both halves' design without a word of the hemi-R one's."""
    from bids_fixedfx import discover
    from bids_fixedfx.settings import Settings

    copy = tmp_path / "bids"
    shutil.copytree(surface_dataset.path, copy, symlinks=True)
    left, right = (copy / p.relative_to(surface_dataset.path) for p in gifti_pair(surface_dataset, "01", "01"))
    sidecar = right.with_name(right.name.replace(".func.gii", ".json"))
    described = json.loads(sidecar.read_text())
    assert described["RepetitionTime"] == 2.0
    sidecar.write_text(json.dumps({**described, "RepetitionTime": right_tr}))
    settings = Settings(bids_dir=copy, output_dir=tmp_path / "out", analysis_level="participant",
                        participant_label=("01",), space=FS5)
    if right_tr == described["RepetitionTime"]:
        assert discover.select_runs(settings).runs
        return
    with pytest.raises(InputFileError, match=rf"RepetitionTime in {sidecar} \(1.5 s\) contradicts the 2 s in "
                       rf"{left.with_name(left.name.replace('.func.gii', '.json'))}, the other hemisphere"):
        discover.select_runs(settings)


def test_a_gifti_pair_with_other_vertices_than_its_spaces_mesh_is_refused_before_any_output(
        surface_dataset, tmp_path, capsys):
    """A pair named space-fsaverage5 whose hemispheres have other vertex counts than nilearn's
    fsaverage5 mesh (which its figures, peak tables and smoothing use) is refused by name."""
    dataset = tmp_path / "ds"
    shutil.copytree(surface_dataset.path, dataset)
    left = dataset / "derivatives" / "fmriprep" / "sub-01" / "func" / gifti_pair(surface_dataset, "01", "01")[0].name
    for path in naming.hemisphere_pair(left):
        img = nib.load(str(path))
        nib.save(nib.gifti.GiftiImage(darrays=[
            nib.gifti.GiftiDataArray(d.data[:5000], intent=d.intent, datatype=d.datatype) for d in img.darrays
        ]), str(path))
    with pytest.raises(InputFileError, match=r"have 5000 and 5000 vertices, but fsaverage5 has 10242 and 10242"):
        surface.read_series(left)
    output = tmp_path / "out"
    assert main([str(dataset), str(output), "participant", "--skip-bids-validation", "--participant-label", "01",
                 "--space", FS5]) == EX_NO_INPUT
    assert left.name in capsys.readouterr().err and not output.exists()


def test_fsaverage_pairs_and_hcp_densities_of_other_sizes_than_theirs_are_refused(surface_dataset, tmp_path):
    """Only fsaverage5's vertex counts were checked: a pair of 10242-vertex files named
    space-fsaverage6, or a CIFTI file named den-91k with other grayordinates, was fitted."""
    assert [surface.mesh_vertices(space) for space in ("fsaverage3", "fsaverage5", "fsaverage6", "fsaverage")] == [
        (642, 642), (10242, 10242), (40962, 40962), (163842, 163842)]
    assert surface.mesh_vertices("fsnative") is None
    left, right = gifti_pair(surface_dataset, "01", "01")
    for path in (left, right):
        shutil.copy(path, tmp_path / path.name.replace(FS5, "fsaverage6"))
    with pytest.raises(InputFileError, match="have 10242 and 10242 vertices, but fsaverage6 has 40962 and 40962"):
        surface.read_series(tmp_path / left.name.replace(FS5, "fsaverage6"))
    for density in ("10k", "41k"):  # fMRIPrep's TemplateFlow name of fsaverage5 (refused when it was checked as 164k)
        for path in (left, right):
            shutil.copy(path, tmp_path / path.name.replace(FS5, f"fsaverage_den-{density}"))
    assert surface.read_series(tmp_path / left.name.replace(FS5, "fsaverage_den-10k"))[1].n_vertices == (N, N)
    with pytest.raises(InputFileError, match="but fsaverage den-41k has 40962 and 40962"):
        surface.read_series(tmp_path / left.name.replace(FS5, "fsaverage_den-41k"))
    series = cifti_series(surface_dataset, "01", "01")
    renamed = tmp_path / series.name.replace("_den-1k_", "_den-91k_")
    shutil.copy(series, renamed)
    size = surface.read_series(series)[1].size
    for read in (surface.read_series, surface.read_form):
        with pytest.raises(InputFileError, match=f"{renamed} has {size} grayordinates, but den-91k has 91282"):
            read(renamed)


def test_subjects_on_other_grayordinates_of_one_count_are_not_tested_together(surface_dataset, tmp_path, capsys):
    """The group level compared surface and CIFTI maps by their number of values only: a
    subject whose grayordinates were other vertices was tested with the others, value by value."""
    dataset = tmp_path / "ds"
    shutil.copytree(surface_dataset.path, dataset)
    for run in runs_of(surface_dataset, "02"):
        path = dataset / cifti_series(surface_dataset, "02", run).relative_to(surface_dataset.path)
        img = nib.load(str(path), mmap=False)  # the file is written again below
        series, models, data = img.header.get_axis(0), img.header.get_axis(1), img.get_fdata(dtype=np.float32)
        name, part, surface_models = next(iter(models.iter_structures()))  # its first surface, one vertex on
        shifted = nib.cifti2.BrainModelAxis.from_surface((surface_models.vertex + 1) % surface_models.nvertices[name],
                                                         surface_models.nvertices[name], name)
        for other_name, other_part, other_models in list(models.iter_structures())[1:]:
            shifted = shifted + other_models
        assert len(shifted) == len(models) and shifted != models
        nib.save(nib.Cifti2Image(data, header=(series, shifted)), str(path))
    output = tmp_path / "out"
    assert main([str(dataset), str(output), "participant", "--skip-bids-validation", "--space", FSLR,
                 "--no-reports"]) == 0
    capsys.readouterr()
    assert main([str(dataset), str(output), "group", "--no-reports"]) == EX_NO_INPUT
    error = capsys.readouterr().err
    assert "lie on different grayordinates" in error and "sub-02_task-checkerboard_space-fsLR" in error
    assert f"{len(models)} grayordinates each, but of other vertices" in error
    assert not (output / "group").exists()


@pytest.mark.parametrize("space", [FS5, FSLR])
def test_a_run_with_no_vertex_to_fit_is_refused_by_name(surface_dataset, tmp_path, capsys, space):
    """A surface run all zeros (or constant) was fitted in an empty mask without a word: a
    one-run subject got empty maps (the group level then stopped on its mask), a subject of
    several runs stopped with the runs' masks sharing nothing, naming no file."""
    dataset = tmp_path / "ds"
    shutil.copytree(surface_dataset.path, dataset)
    for run in runs_of(surface_dataset, "03"):
        if space == FS5:
            for path in gifti_pair(surface_dataset, "03", run):
                target = dataset / path.relative_to(surface_dataset.path)
                img = nib.load(str(target))
                nib.save(nib.gifti.GiftiImage(darrays=[nib.gifti.GiftiDataArray(np.zeros_like(d.data), intent=d.intent)
                                                       for d in img.darrays]), str(target))
            bold = dataset / gifti_pair(surface_dataset, "03", run)[0].relative_to(surface_dataset.path)
        else:
            bold = dataset / cifti_series(surface_dataset, "03", run).relative_to(surface_dataset.path)
            img = nib.load(str(bold), mmap=False)
            data = np.full(img.shape, 7, dtype=np.float32)
            nib.save(nib.Cifti2Image(data, header=img.header, nifti_header=img.nifti_header), str(bold))
    output = tmp_path / "out"
    assert main([str(dataset), str(output), "participant", "--skip-bids-validation", "--participant-label", "03",
                 "--space", space, "--no-reports"]) == EX_NO_INPUT
    what = "vertex" if space == FS5 else "grayordinate"
    assert f"{bold} has no {what} whose series is finite and varies over time" in capsys.readouterr().err
    assert not (output / "sub-03").exists()


@pytest.mark.parametrize("hemi", ["L", "R"])
def test_a_run_with_one_hemisphere_empty_is_refused_by_name(surface_dataset, tmp_path, capsys, hemi):
    """A hemisphere all NaN in one run: its subject's mask of that hemisphere was empty, and the
    group's (the intersection) too, without a word (exit 0 at both levels)."""
    dataset = tmp_path / "ds"
    shutil.copytree(surface_dataset.path, dataset)
    run = runs_of(surface_dataset, "03")[0]
    left, right = (dataset / path.relative_to(surface_dataset.path) for path in gifti_pair(surface_dataset, "03", run))
    target = left if hemi == "L" else right
    img = nib.load(str(target))
    nib.save(nib.gifti.GiftiImage(darrays=[nib.gifti.GiftiDataArray(np.full_like(d.data, np.nan), intent=d.intent)
                                           for d in img.darrays]), str(target))
    output = tmp_path / "out"
    assert main([str(dataset), str(output), "participant", "--skip-bids-validation", "--participant-label", "03",
                 "--space", FS5, "--no-reports"]) == EX_NO_INPUT
    error = capsys.readouterr().err
    assert f"{target} has no vertex whose series is finite and varies over time, so its hemisphere" in error
    assert not (output / "sub-03").exists()


def test_smoothing_rule():
    assert surface.smoothing_for(FS5, "gifti", 5.0, given=False) is None  # the default: volumes only
    assert surface.smoothing_for(FS5, "gifti", 4.0, given=True) == 4.0  # nilearn's mesh ships
    assert surface.smoothing_for("fsaverage6", "gifti", 0.0, given=True) is None
    for space, kind in (("fsaverage6", "gifti"), ("fsnative", "gifti"), (FSLR, "cifti")):
        with pytest.raises(UsageError, match="--smoothing-fwhm 4"):
            surface.smoothing_for(space, kind, 4.0, given=True)
        with pytest.raises(UsageError, match=r"model file's run node smooths by 4 mm \(Software.nilearn"):
            surface.smoothing_for(space, kind, 4.0, given=True, by_model=True)  # it blamed an option not given


def test_native_surfaces_are_not_tested_across_subjects():
    from types import SimpleNamespace

    found = [SimpleNamespace(space=space) for space in ("fsnative", FS5, "fsnative", FSLR)]
    kept, left_out = surface.group_spaces(found, asked=())
    assert [item.space for item in kept] == [FS5, FSLR] and left_out == ["fsnative"]
    with pytest.raises(UsageError, match="--space fsnative"):
        surface.group_spaces(found, asked=("fsnative",))


def test_generator_volume_files_unchanged_by_surfaces(tmp_path):
    def volume_files(root):
        return {p.relative_to(root): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*"))
                if p.is_file() and "_hemi-" not in p.name and "_den-" not in p.name}

    kwargs = dict(n_subjects=1, n_sessions=1, n_runs=1, shape=(12, 12, 12), n_volumes=30)
    plain = make_example_dataset(tmp_path / "plain", **kwargs).path
    with_surfaces = make_example_dataset(tmp_path / "surfaces", surfaces=True, **kwargs).path
    assert volume_files(plain) == volume_files(with_surfaces)
    assert len(list(with_surfaces.rglob("*.func.gii"))) == 2 and len(list(with_surfaces.rglob("*.dtseries.nii"))) == 1


def test_smoothing_on_cifti_is_a_usage_error(surface_dataset, tmp_path, capsys):
    code = main([str(surface_dataset.path), str(tmp_path / "out"), "participant", "--skip-bids-validation",
                 "--space", FSLR, "--smoothing-fwhm", "4", "--no-reports"])
    assert code == 64
    message = capsys.readouterr().err
    assert "--smoothing-fwhm 4" in message and "CIFTI" in message
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").rglob("*.dscalar.nii"))


def test_corrected_inference_on_a_surface_space_is_a_usage_error(surface_dataset, tmp_path, capsys):
    code = main([str(surface_dataset.path), str(tmp_path / "out"), "participant", "--skip-bids-validation",
                 "--space", "MNI152NLin2009cAsym", FS5, "--threshold", "fdr", "--no-reports"])
    assert code == 64
    message = capsys.readouterr().err
    assert "--threshold" in message and FS5 in message
    assert not list(tmp_path.rglob("*_statmap.*"))
    # asked by a model file: it and its section are named (it said to leave out options never given)
    written = tmp_path / "volume"
    assert main([str(surface_dataset.path), str(written), "participant", "--skip-bids-validation", "--space",
                 "MNI152NLin2009cAsym", "--threshold", "fdr", "--no-reports", "--participant-label", "01"]) == 0
    model = written / "models" / "model-default_smdl.json"
    capsys.readouterr()
    assert main([str(surface_dataset.path), str(tmp_path / "out"), "participant", "--skip-bids-validation",
                 "--space", FS5, "-m", str(model), "--no-reports"]) == 64
    message = capsys.readouterr().err
    assert "asked by model-default_smdl.json's Model.Software.bids-fixedfx" in message and "--threshold" not in message
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").rglob("*_statmap.*"))
    # a model without the section, the option beside it: the option is named, not the model
    plain = tmp_path / "plain"
    assert main([str(surface_dataset.path), str(plain), "participant", "--skip-bids-validation", "--space",
                 "MNI152NLin2009cAsym", "--no-reports", "--participant-label", "01"]) == 0
    capsys.readouterr()
    assert main([str(surface_dataset.path), str(tmp_path / "out2"), "participant", "--skip-bids-validation",
                 "--space", FS5, "-m", str(plain / "models" / "model-default_smdl.json"), "--threshold", "fdr",
                 "--no-reports"]) == 64
    message = capsys.readouterr().err
    assert "(--threshold, --n-perm and the cluster options)" in message and "asked by" not in message, message


def test_a_volume_mask_with_a_surface_space_is_a_usage_error(surface_dataset, tmp_path, capsys):
    mask = next(fmriprep(surface_dataset, "01").glob("*space-MNI152NLin2009cAsym_desc-brain_mask.nii.gz"))
    code = main([str(surface_dataset.path), str(tmp_path / "out"), "participant", "--skip-bids-validation",
                 "--space", FSLR, "--mask", str(mask), "--no-reports"])
    assert code == 64
    assert "--mask" in capsys.readouterr().err


def test_cifti_density_is_chosen_with_the_filter_file(tmp_path, capsys):
    dataset = make_example_dataset(tmp_path / "bids", n_subjects=1, n_sessions=1, n_runs=1, shape=(12, 12, 12),
                                   n_volumes=30, surfaces=True)
    series = cifti_series(dataset, "01", "01")
    other = series.with_name(series.name.replace("_den-1k_", "_den-2k_"))
    other.write_bytes(series.read_bytes())
    argv = [str(dataset.path), str(tmp_path / "out"), "participant", "--skip-bids-validation", "--space", FSLR,
            "--no-reports"]
    assert main(argv) == 64
    assert '{"bold": {"den": "1k"}}' in capsys.readouterr().err  # a density the run has
    filters = tmp_path / "filters.json"
    filters.write_text(json.dumps({"bold": {"den": "2k"}}))
    assert main([*argv, "--bids-filter-file", str(filters)]) == 0
    written = sorted(p.name for p in (tmp_path / "out" / "sub-01" / "func").glob("*.dscalar.nii"))
    assert written and all("_den-2k_" in name for name in written)


def test_a_surface_of_more_than_32767_vertices_says_nothing_of_nibabel_s_carrier(tmp_path):
    """fsaverage6 and fsLR's 91k grayordinates printed nibabel's "large vector Freesurfer hack"
    warning of the internal (n, 1, 1) image, raw and as a run's note, though no NIfTI is written."""
    dataset = make_example_dataset(tmp_path / "bids", n_subjects=1, n_sessions=1, n_runs=1, shape=(12, 12, 12),
                                   n_volumes=30, surfaces=True)
    for path in sorted(dataset.path.rglob(f"*_space-{FS5}_bold.func.gii")):
        img = nib.load(path)
        arrays = [nib.gifti.GiftiDataArray(np.resize(d.data, 40962).astype(np.float32), intent=d.intent,
                                           datatype="NIFTI_TYPE_FLOAT32", meta=d.meta) for d in img.darrays]
        nib.save(nib.GiftiImage(darrays=arrays, meta=img.meta), str(path).replace(FS5, "fsaverage6"))
        path.unlink()
    done = subprocess.run([sys.executable, "-m", "bids_fixedfx", str(dataset.path), str(tmp_path / "out"),
                           "participant", "--skip-bids-validation", "--space", "fsaverage6", "--no-reports"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "large vector" not in done.stderr and "Freesurfer hack" not in done.stderr
    assert list((tmp_path / "out" / "sub-01").rglob("*space-fsaverage6*_stat-z_statmap.func.gii"))


# ----------------------------------------------------------------------------
# end to end, against nilearn


@pytest.fixture(scope="module")
def analysed(surface_dataset, tmp_path_factory):
    """Participant level on a volume space and both surface spaces in one call, then the group."""
    output = tmp_path_factory.mktemp("surface_e2e") / "out"
    argv = [str(surface_dataset.path), str(output), "participant", "--skip-bids-validation", "--nprocs", "2",
            "--space", "MNI152NLin2009cAsym", FS5, FSLR]
    assert main(argv) == 0
    assert main([str(surface_dataset.path), str(output), "group"]) == 0
    return output


def tr_of(dataset):
    return json.loads((dataset.path / "task-checkerboard_bold.json").read_text())["RepetitionTime"]


def run_inputs(dataset, subject, run):
    stem = f"sub-{subject}_task-checkerboard_run-{run}"
    events = pd.read_csv(dataset.path / f"sub-{subject}" / "func" / f"{stem}_events.tsv", sep="\t")
    confounds = pd.read_csv(fmriprep(dataset, subject) / f"{stem}_desc-confounds_timeseries.tsv", sep="\t")
    return stem, events, confounds[MOTION].bfill()


def nilearn_surface_run(dataset, subject, run, smoothing_fwhm=None):
    """nilearn's FirstLevelModel on a GIFTI pair (fsaverage5 pial mesh), mask = the rule."""
    from nilearn.datasets import load_fsaverage
    from nilearn.glm.first_level import FirstLevelModel
    from nilearn.surface import SurfaceImage

    mesh = load_fsaverage(FS5)["pial"]
    left, right = gifti_pair(dataset, subject, run)
    bold = SurfaceImage(mesh=mesh, data={"left": str(left), "right": str(right)})
    series = np.concatenate([np.asarray(bold.data.parts[h]) for h in ("left", "right")]).T
    inside = rule(series)
    mask = SurfaceImage(mesh=mesh, data={"left": inside[:N], "right": inside[N:]})
    stem, events, confounds = run_inputs(dataset, subject, run)
    # the mask as an image: FirstLevelModel builds its masker with its own smoothing
    model = FirstLevelModel(t_r=tr_of(dataset), mask_img=mask, smoothing_fwhm=smoothing_fwhm, minimize_memory=False)
    model.fit(bold, events=events, confounds=confounds)
    design = model.design_matrices_[0]
    return model, inside, mask, design.shape[0] - np.linalg.matrix_rank(design.to_numpy())


def surface_values(img):
    """A SurfaceImage's values, its parts in order (left, then right)."""
    return np.concatenate([np.asarray(img.data.parts[part]).ravel() for part in img.data.parts])


@pytest.fixture(scope="module")
def surface_reference(surface_dataset):
    """nilearn on every run of every subject: run maps, fixed effects, and the group test."""
    from nilearn.glm import compute_fixed_effects
    from nilearn.glm.second_level import SecondLevelModel

    runs, subjects = {}, {}
    for subject in surface_dataset.subjects:
        fitted = [(run, *nilearn_surface_run(surface_dataset, subject, run)) for run in runs_of(surface_dataset, subject)]
        inside = np.logical_and.reduce([f[2] for f in fitted])
        mask = fitted[0][3]
        mask = type(mask)(mesh=mask.mesh, data={"left": inside[:N], "right": inside[N:]})
        for condition in CONDITIONS:
            maps = [model.compute_contrast(condition, output_type="all") for _, model, *_ in fitted]
            for (run, model, run_inside, *_), found in zip(fitted, maps):
                runs[(subject, run, condition)] = {s: surface_values(found[n]) for s, n in STATS.items()} | {
                    "inside": run_inside, "rsquared": surface_values(model.r_square_[0])}
            if len(fitted) == 1:
                subjects[(subject, condition)] = dict(runs[(subject, fitted[0][0], condition)], inside=inside,
                                                      effect_img=maps[0]["effect_size"])
                continue
            dofs = [f[4] for f in fitted]
            effect, variance, t, z = compute_fixed_effects([m["effect_size"] for m in maps],
                                                           [m["effect_variance"] for m in maps], mask, dofs=dofs)
            subjects[(subject, condition)] = {"effect": surface_values(effect), "variance": surface_values(variance),
                                              "t": surface_values(t), "z": surface_values(z), "inside": inside,
                                              "effect_img": effect}
    group = {}
    for condition in CONDITIONS:
        items = [subjects[(s, condition)] for s in surface_dataset.subjects]
        inside = np.logical_and.reduce([item["inside"] for item in items])
        mask_img = items[0]["effect_img"]
        mask_img = type(mask_img)(mesh=mask_img.mesh, data={"left": inside[:N], "right": inside[N:]})
        from nilearn.maskers import SurfaceMasker

        model = SecondLevelModel(mask_img=SurfaceMasker(mask_img).fit()).fit(
            [item["effect_img"] for item in items], design_matrix=pd.DataFrame({"intercept": np.ones(len(items))}))
        found = model.compute_contrast("intercept", output_type="all")
        group[condition] = {s: surface_values(found[n]) for s, n in STATS.items()} | {"inside": inside}
    return {"runs": runs, "subjects": subjects, "group": group}


@pytest.mark.slow
def test_surface_run_maps_equal_nilearn_surface_glm(analysed, surface_reference):
    checked = 0
    for (subject, run, condition), maps in surface_reference["runs"].items():
        inside = maps["inside"]
        for stat in STATS:
            ours = gifti_values(analysed / f"sub-{subject}" / "func" /
                                f"sub-{subject}_task-checkerboard_run-{run}_hemi-L_space-{FS5}_contrast-{condition}_stat-{stat}_statmap.func.gii")
            assert relative_difference(ours, maps[stat], inside) < TOLERANCE, (subject, run, condition, stat)
            assert np.all(ours[~inside] == (1.0 if stat == "p" else 0.0))
            checked += 1
        r_square = gifti_values(analysed / f"sub-{subject}" / "func" /
                                f"sub-{subject}_task-checkerboard_run-{run}_hemi-L_space-{FS5}_stat-rsquared_statmap.func.gii")
        assert relative_difference(r_square, maps["rsquared"], inside) < TOLERANCE, (subject, run)
    assert checked == 5 * 2 * 5  # 5 runs, 2 conditions, 5 maps


@pytest.mark.slow
def test_run_sidecars_of_a_gifti_pair_cite_both_hemispheres_series(surface_dataset, analysed):
    """Every run sidecar cited the hemi-L series only, its hemi-R maps' and R² maps' included."""
    folder = analysed / "sub-01" / "func"
    sidecars = sorted(folder.glob(f"sub-01_task-checkerboard_run-01_hemi-*_space-{FS5}_*statmap.json"))
    assert {p.name.split("_hemi-")[1][0] for p in sidecars} == {"L", "R"}
    for sidecar in sidecars:
        sources = json.loads(sidecar.read_text())["Sources"]
        for series in gifti_pair(surface_dataset, "01", "01"):
            assert any(source.endswith(f":sub-01/func/{series.name}") for source in sources), (sidecar.name, sources)


@pytest.mark.slow
def test_surface_subject_maps_equal_nilearn_fixed_effects(surface_dataset, analysed, surface_reference):
    for (subject, condition), maps in surface_reference["subjects"].items():
        folder = analysed / f"sub-{subject}" / "func"
        for stat in ("effect", "variance", "t", "z"):
            ours = gifti_values(folder / f"sub-{subject}_task-checkerboard_hemi-L_space-{FS5}_contrast-{condition}_stat-{stat}_statmap.func.gii")
            assert relative_difference(ours, maps[stat], maps["inside"]) < TOLERANCE, (subject, condition, stat)
        mask = gifti_values(folder / f"sub-{subject}_task-checkerboard_hemi-L_space-{FS5}_desc-fixedfx_mask.func.gii")
        np.testing.assert_array_equal(mask > 0, maps["inside"])
        # its sources: the runs' series the vertex rule was applied to (they were [])
        sources = json.loads((folder / f"sub-{subject}_task-checkerboard_hemi-L_space-{FS5}_desc-fixedfx_mask.json")
                             .read_text())["Sources"]
        assert len(sources) == 2 * len(runs_of(surface_dataset, subject))
        assert all(s.endswith("_bold.func.gii") and ("_hemi-L_" in s or "_hemi-R_" in s) for s in sources), sources
        sidecar = json.loads((folder / f"sub-{subject}_task-checkerboard_hemi-R_space-{FS5}_contrast-{condition}_stat-z_statmap.json").read_text())
        assert sidecar["SmoothingFWHM"] == 0 and "VertexMask" in sidecar
        assert sidecar["FixedEffects"]["NumberOfRuns"] == len(runs_of(surface_dataset, subject))


@pytest.mark.slow
def test_surface_group_maps_equal_nilearn_second_level(surface_dataset, analysed, surface_reference):
    for condition, maps in surface_reference["group"].items():
        for stat in STATS:
            ours = gifti_values(analysed / "group" / f"task-checkerboard_hemi-L_space-{FS5}_contrast-{condition}_stat-{stat}_statmap.func.gii")
            assert relative_difference(ours, maps[stat], maps["inside"]) < TOLERANCE, (condition, stat)
        sidecar = json.loads((analysed / "group" / f"task-checkerboard_hemi-L_space-{FS5}_contrast-{condition}_stat-t_statmap.json").read_text())
        assert sidecar["NumberOfSubjects"] == len(surface_dataset.subjects)
        assert sidecar["DegreesOfFreedom"] == len(surface_dataset.subjects) - 1
        # each file once: both hemispheres of every subject's effect map and of the group mask
        assert len(sidecar["Sources"]) == len(set(sidecar["Sources"])) == 2 * len(surface_dataset.subjects) + 2


@pytest.mark.slow
def test_surface_known_effects_are_recovered(surface_dataset, analysed):
    active, _, _ = example.gifti_layout()
    for subject in surface_dataset.subjects:
        for condition in CONDITIONS:
            other = next(c for c in CONDITIONS if c != condition)
            stem = f"sub-{subject}_task-checkerboard_hemi-L_space-{FS5}_contrast-{condition}"
            z = gifti_values(analysed / f"sub-{subject}" / "func" / f"{stem}_stat-z_statmap.func.gii")
            effect = gifti_values(analysed / f"sub-{subject}" / "func" / f"{stem}_stat-effect_statmap.func.gii")
            assert np.median(z[active[condition]]) > 3 and abs(np.median(z[active[other]])) < 2
            assert np.median(effect[active[condition]]) == pytest.approx(EFFECT_SIZE, rel=0.2)
            assert abs(np.median(effect[active[other]])) < 0.5


def nilearn_cifti_run(dataset, subject, run):
    """nilearn's mean scaling, GLM and contrasts on the grayordinate matrix, mask = the rule."""
    from nilearn.glm.contrasts import compute_contrast
    from nilearn.glm.first_level import make_first_level_design_matrix, mean_scaling, run_glm

    series = nib.load(str(cifti_series(dataset, subject, run))).get_fdata()
    inside = rule(series)
    stem, events, confounds = run_inputs(dataset, subject, run)
    frame_times = np.arange(series.shape[0]) * tr_of(dataset)
    design = make_first_level_design_matrix(frame_times, events, hrf_model="glover", drift_model="cosine",
                                            high_pass=0.01, add_regs=confounds.to_numpy(), add_reg_names=MOTION)
    scaled, _ = mean_scaling(series[:, inside])
    labels, results = run_glm(scaled, design.to_numpy(), noise_model="ar1")
    out = {}
    for condition in CONDITIONS:
        weights = (design.columns == condition).astype(float)
        contrast = compute_contrast(labels, results, weights)
        out[condition] = {"effect": contrast.effect_size(), "variance": contrast.effect_variance(),
                          "t": contrast.stat(), "z": contrast.z_score(), "p": contrast.p_value()}
    return out, inside, series.shape[0] - np.linalg.matrix_rank(design.to_numpy())


@pytest.mark.slow
def test_cifti_run_maps_equal_nilearn_on_the_grayordinates(surface_dataset, analysed):
    for subject in surface_dataset.subjects:
        for run in runs_of(surface_dataset, subject):
            reference, inside, _ = nilearn_cifti_run(surface_dataset, subject, run)
            for condition, maps in reference.items():
                for stat, theirs in maps.items():
                    path = (analysed / f"sub-{subject}" / "func" /
                            f"sub-{subject}_task-checkerboard_run-{run}_space-{FSLR}_den-1k_contrast-{condition}_stat-{stat}_statmap.dscalar.nii")
                    ours = cifti_values(path)
                    full = np.full(ours.size, np.nan)
                    full[inside] = np.ravel(theirs)
                    assert relative_difference(ours, full, inside) < TOLERANCE, (subject, run, condition, stat)
                    img = nib.load(str(path))
                    assert img.header.get_axis(1) == nib.load(str(cifti_series(surface_dataset, subject, run))).header.get_axis(1)


def grayordinate_image(values):
    """Grayordinate values as a nilearn SurfaceImage on a one-part placeholder mesh (nilearn
    reads no CIFTI; its surface statistics do not use the mesh)."""
    from nilearn.surface import InMemoryMesh, PolyMesh, SurfaceImage

    values = np.asarray(values, dtype=float)
    mesh = InMemoryMesh(coordinates=np.zeros((values.size, 3)), faces=np.array([[0, 1, 2]]))
    return SurfaceImage(mesh=PolyMesh(left=mesh), data={"left": values})


@pytest.mark.slow
def test_cifti_subject_and_group_maps_equal_nilearn(surface_dataset, analysed):
    from nilearn.glm import compute_fixed_effects
    from nilearn.glm.second_level import SecondLevelModel
    from nilearn.maskers import SurfaceMasker

    subject_effects, subject_masks = {c: [] for c in CONDITIONS}, []
    for subject in surface_dataset.subjects:
        fitted = [nilearn_cifti_run(surface_dataset, subject, run) for run in runs_of(surface_dataset, subject)]
        inside = np.logical_and.reduce([mask for _, mask, _ in fitted])
        subject_masks.append(inside)
        for condition in CONDITIONS:
            full = []
            for maps, mask, _ in fitted:
                arrays = {}
                for stat in ("effect", "variance"):
                    arrays[stat] = np.zeros(inside.size)
                    arrays[stat][mask] = np.ravel(maps[condition][stat])
                full.append(arrays)
            dofs = [dof for _, _, dof in fitted]
            if len(fitted) == 1:
                effect = full[0]["effect"]
            else:
                effect, variance, t, z = compute_fixed_effects(
                    [grayordinate_image(f["effect"]) for f in full], [grayordinate_image(f["variance"]) for f in full],
                    grayordinate_image(inside), dofs=dofs)
                effect = surface_values(effect)
                for stat, theirs in (("variance", variance), ("t", t), ("z", z)):
                    ours = cifti_values(analysed / f"sub-{subject}" / "func" /
                                        f"sub-{subject}_task-checkerboard_space-{FSLR}_den-1k_contrast-{condition}_stat-{stat}_statmap.dscalar.nii")
                    assert relative_difference(ours, surface_values(theirs), inside) < TOLERANCE, (subject, stat)
            ours = cifti_values(analysed / f"sub-{subject}" / "func" /
                                f"sub-{subject}_task-checkerboard_space-{FSLR}_den-1k_contrast-{condition}_stat-effect_statmap.dscalar.nii")
            assert relative_difference(ours, effect, inside) < TOLERANCE, (subject, condition)
            subject_effects[condition].append(effect)
    inside = np.logical_and.reduce(subject_masks)
    for condition in CONDITIONS:
        model = SecondLevelModel(mask_img=SurfaceMasker(grayordinate_image(inside)).fit()).fit(
            [grayordinate_image(e) for e in subject_effects[condition]],
            design_matrix=pd.DataFrame({"intercept": np.ones(len(subject_effects[condition]))}))
        found = model.compute_contrast("intercept", output_type="all")
        for stat, name in STATS.items():
            ours = cifti_values(analysed / "group" /
                                f"task-checkerboard_space-{FSLR}_den-1k_contrast-{condition}_stat-{stat}_statmap.dscalar.nii")
            assert relative_difference(ours, surface_values(found[name]), inside) < TOLERANCE, (condition, stat)


@pytest.mark.slow
def test_cifti_known_effects_and_subject_and_group_read_back(surface_dataset, analysed):
    for subject in surface_dataset.subjects:
        for condition in CONDITIONS:
            other = next(c for c in CONDITIONS if c != condition)
            effect = cifti_values(analysed / f"sub-{subject}" / "func" /
                                  f"sub-{subject}_task-checkerboard_space-{FSLR}_den-1k_contrast-{condition}_stat-effect_statmap.dscalar.nii")
            assert np.median(effect[example.CIFTI_ACTIVE[condition]]) == pytest.approx(EFFECT_SIZE, rel=0.2)
            assert abs(np.median(effect[example.CIFTI_ACTIVE[other]])) < 0.5
    group = sorted((analysed / "group").glob(f"task-checkerboard_space-{FSLR}_den-1k_*"))
    assert {p.name.split("_stat-")[-1] for p in group if "_stat-" in p.name} >= {
        f"{s}_statmap.dscalar.nii" for s in STATS}
    for path in group:
        if path.name.endswith(".dscalar.nii"):
            img = nib.load(str(path))
            assert img.shape == (1, len(img.header.get_axis(1))) and isinstance(
                img.header.get_axis(1), nib.cifti2.cifti2_axes.BrainModelAxis)


@pytest.mark.slow
def test_volume_maps_of_a_mixed_call_equal_a_volume_only_call(surface_dataset, analysed, tmp_path):
    volume_only = tmp_path / "volume"
    assert main([str(surface_dataset.path), str(volume_only), "participant", "--skip-bids-validation",
                 "--participant-label", "01", "--no-reports"]) == 0
    maps = sorted(volume_only.rglob("*_statmap.nii.gz"))
    assert maps
    for path in maps:
        assert path.read_bytes() == (analysed / path.relative_to(volume_only)).read_bytes(), path.name


@pytest.mark.slow
def test_surface_output_passes_the_bids_validator(analysed):
    from bids_fixedfx.discover import validator_command

    command = validator_command()
    assert command, "bids-validator-deno must be installed (pip install bids-validator-deno)"
    done = subprocess.run([command, "--format", "json", str(analysed)], capture_output=True, text=True)
    errors = [i for i in json.loads(done.stdout)["issues"]["issues"] if i["severity"] == "error"]
    assert errors == [] and done.returncode == 0


@pytest.mark.slow
def test_surface_reports_draw_the_mesh_and_list_peak_vertices(analysed):
    page = (analysed / "sub-01.html").read_text()
    assert f"space {FS5}" in page and f"space {FSLR}" in page
    # the lead counts runs once, not once per space ("6 runs of tasks checkerboard, checkerboard, checkerboard")
    assert (f"2 runs of task checkerboard in spaces {FS5}, {FSLR}, MNI152NLin2009cAsym, combined by fixed "
            "effects.") in page
    assert "local maxima of |z| on the mesh" in page and "no mesh here" in page
    # a surface run's mask is the vertex rule and its R² map is written (the runs table said "computed by
    # nilearn" and "no R² map")
    assert "vertices finite and varying" in page and "map written, not drawn" in page
    assert "computed by nilearn" not in page and "no R² map" not in page
    # each space's scaling is said of what its values belong to (surfaces said "voxel mean")
    assert [page.count(f"percent signal change (each {unit}&#39;s mean)") for unit in ("voxel", "vertex", "grayordinate")
            ] == [1, 1, 1]
    figures = analysed / "sub-01" / "figures"
    assert (figures / f"sub-01_task-checkerboard_space-{FS5}_contrast-audio_desc-zmap_statmap.png").stat().st_size > 10_000
    table = pd.read_csv(figures / f"sub-01_task-checkerboard_space-{FS5}_contrast-audio_desc-peaks_table.tsv", sep="\t")
    active, _, _ = example.gifti_layout()
    top = table.iloc[0]
    assert top["structure"] == "left" and top["vertex"] in set(active["audio"]) and top["z"] > 3
    assert "peak vert" in (analysed / "group.html").read_text()
    cifti = pd.read_csv(figures / f"sub-01_task-checkerboard_space-{FSLR}_contrast-audio_desc-peaks_table.tsv",
                        sep="\t")
    assert list(cifti.columns) == ["peak", "structure", "vertex or voxel (i,j,k)", "z"]  # voxels read "vertex 1,3,3"
    assert not re.search(r"at \S+ vertex \d+,\d+,\d+", page)
    for name in ("sub-01.html", "group.html"):  # the navigation tells the spaces of a task apart
        navigation = (analysed / name).read_text().split("<section", 1)[0]
        for space in ("MNI152NLin2009cAsym", FS5, FSLR):
            assert f">checkerboard ({space})</a>" in navigation, (name, space)
    methods = (analysed / "logs" / "CITATION.md").read_text()  # written by the group level, from the sidecars
    for space in ("MNI152NLin2009cAsym", FS5, FSLR):
        assert f"## Run and subject level: space {space}" in methods
    assert [methods.count(f"each {unit}'s time series") for unit in ("voxel", "vertex", "grayordinate")] == [1, 1, 1]
    assert "`run_glm` and `compute_contrast`" in methods and "in the fsLR space (CIFTI grayordinates)" in methods
    assert "whose series was finite and not constant over time" in methods


def surface_file_values(path):
    """A written surface map's values: a GIFTI pair (named by its hemi-L file) left then right, or a CIFTI row."""
    if path.name.endswith(".func.gii"):
        pair = (path, path.with_name(path.name.replace("hemi-L", "hemi-R")))
        return np.concatenate([nib.load(p).darrays[0].data for p in pair])
    return np.asarray(nib.load(path).dataobj)[0]


def test_surface_runs_table_gives_each_runs_median_r_square(analysed):
    """A surface run's row gives the median of its written R² map over the subject's vertex mask, as a
    volume run's row does over the subject's voxel mask (it said only "R² map written, not drawn")."""
    func = analysed / "sub-01" / "func"
    expected = []
    for space in (FS5, FSLR):
        def maps(kind, run="", space=space):
            return sorted(p for p in func.glob(f"sub-01_task-checkerboard_{run}*space-{space}_*{kind}*")
                          if "hemi-R" not in p.name and not p.name.endswith(".json"))
        [mask] = maps("desc-fixedfx_mask")
        inside = surface_file_values(mask) > 0
        assert inside.any()
        runs = maps("stat-rsquared_statmap", run="run-")
        assert len(runs) == 2
        expected += [f"{np.median(surface_file_values(run)[inside]):.2f}" for run in runs]
    page = (analysed / "sub-01.html").read_text()
    shown = re.findall(r'<td class="num">(-?[0-9.]+)</td>\n<td>map written, not drawn</td>', page)
    assert sorted(shown) == sorted(expected)
    assert all(0 < float(value) < 1 for value in shown)


@pytest.mark.slow
def test_fsaverage5_smoothing_equals_nilearn_on_its_mesh(surface_dataset, tmp_path):
    output = tmp_path / "smoothed"
    assert main([str(surface_dataset.path), str(output), "participant", "--skip-bids-validation", "--no-reports",
                 "--participant-label", "03", "--space", FS5, "--smoothing-fwhm", "6"]) == 0
    model, inside, _, _ = nilearn_surface_run(surface_dataset, "03", "01", smoothing_fwhm=6)
    for condition in CONDITIONS:
        found = model.compute_contrast(condition, output_type="all")
        for stat, name in STATS.items():
            ours = gifti_values(output / "sub-03" / "func" /
                                f"sub-03_task-checkerboard_hemi-L_space-{FS5}_contrast-{condition}_stat-{stat}_statmap.func.gii")
            assert relative_difference(ours, surface_values(found[name]), inside) < TOLERANCE, (condition, stat)
    sidecar = json.loads((output / "sub-03" / "func" /
                          f"sub-03_task-checkerboard_hemi-L_space-{FS5}_contrast-audio_stat-z_statmap.json").read_text())
    assert sidecar["SmoothingFWHM"] == 6


def test_a_group_level_of_native_surface_maps_only_says_they_are_not_tested(surface_dataset, analysed, tmp_path,
                                                                            capsys):
    """Subject maps in fsnative alone: 'needs at least 2 subjects with maps; found 0', with no
    word of the maps it had found and left out."""
    output = tmp_path / "out"
    output.mkdir()
    for path in analysed.rglob(f"sub-*/func/*space-{FS5}_*"):
        target = output / path.relative_to(analysed).with_name(path.name.replace(f"space-{FS5}", "space-fsnative"))
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target)
    shutil.copy(analysed / "dataset_description.json", output)
    assert main([str(surface_dataset.path), str(output), "group", "--no-reports"]) == EX_NO_INPUT
    error = " ".join(capsys.readouterr().err.split())
    assert "found 0, besides maps of space-fsnative, which are not tested (their vertices are each subject's own)" in error


def test_a_space_the_bold_filter_leaves_out_is_said_to_be_filtered(surface_dataset, tmp_path, capsys):
    """{"bold": {"den": ...}} leaves out the GIFTI series (no den- entity): '--space fsaverage5
    matches no preprocessed BOLD (spaces present: fsLR)', though its files were there."""
    density = next(surface_dataset.path.rglob("*_space-fsLR_*_bold.dtseries.nii")).name.split("_den-")[1].split("_")[0]
    filters = tmp_path / "filter.json"
    filters.write_text(json.dumps({"bold": {"den": density}}))
    argv = [str(surface_dataset.path), str(tmp_path / "out"), "participant", "--skip-bids-validation",
            "--participant-label", "03", "--no-reports", "--space", FS5, FSLR]
    assert main([*argv, "--bids-filter-file", str(filters)]) == EX_NO_INPUT
    error = " ".join(capsys.readouterr().err.split())
    assert f"--space {FS5} matches no preprocessed BOLD" in error
    assert "its series are there, and the --bids-filter-file 'bold' query leaves them out" in error
    filters.write_text(json.dumps({"bold": {"den": [density, None]}}))  # the way the message points to
    assert main([*argv, "--bids-filter-file", str(filters)]) == 0


@pytest.mark.slow
def test_a_rerun_of_other_contrasts_on_a_surface_space_says_contrasts_changed(surface_dataset, analysed, tmp_path,
                                                                              capsys):
    """The other subjects' first sidecar is a surface map's (hemi- sorts first), unsmoothed, and was
    compared with the volume's smoothing: 'described other options ... the group level will refuse
    to test them', which it did not."""
    import shutil

    output = tmp_path / "out"
    shutil.copytree(analysed, output)
    capsys.readouterr()
    assert main([str(surface_dataset.path), str(output), "participant", "--skip-bids-validation", "--no-reports",
                 "--participant-label", "01", "--space", FS5, "--contrast", "diff=audio-visual"]) == 0
    said = [line for line in capsys.readouterr().err.splitlines() if "models/model-default_smdl.json described" in line]
    assert said and all("described other contrasts" in line for line in said)
