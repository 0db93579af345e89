"""Naming (SPEC §3): every file name built and parsed in one place, with pybids."""

from __future__ import annotations

from pathlib import Path

import pytest

from bids_fixedfx import naming
from bids_fixedfx.discover import Run
from bids_fixedfx.naming import STATS

SPACE = "MNI152NLin2009cAsym"


# ---------------------------------------------------------------- names


@pytest.mark.parametrize(
    "kind, entities, expected",
    [
        (
            "run_statmap",
            dict(subject="01", session="pre", task="nback", acquisition="hi", run="01", echo="2", space=SPACE,
                 contrast="faces", stat="t", extension=".nii.gz"),
            f"sub-01/ses-pre/func/sub-01_ses-pre_task-nback_acq-hi_run-01_echo-2_space-{SPACE}"
            "_contrast-faces_stat-t_statmap.nii.gz",
        ),
        (
            "run_statmap",
            dict(subject="01", task="nback", ceagent="gad", reconstruction="mag", direction="AP", run="3",
                 contrast="faces", stat="effect", extension=".json"),
            "sub-01/func/sub-01_task-nback_ce-gad_rec-mag_dir-AP_run-3_contrast-faces_stat-effect_statmap.json",
        ),
        (
            "design",
            dict(subject="01", session="1", task="checkerboard", run="01", extension=".tsv"),
            "sub-01/ses-1/func/sub-01_ses-1_task-checkerboard_run-01_design.tsv",
        ),
        (
            "design",
            dict(subject="02", task="checkerboard", acquisition="lo", echo="1", extension=".json"),
            "sub-02/func/sub-02_task-checkerboard_acq-lo_echo-1_design.json",
        ),
        (
            "subject_statmap",
            dict(subject="01", task="checkerboard", space=SPACE, contrast="audioVisual", stat="variance",
                 extension=".nii.gz"),
            f"sub-01/func/sub-01_task-checkerboard_space-{SPACE}_contrast-audioVisual_stat-variance_statmap.nii.gz",
        ),
        (
            "subject_mask",
            dict(subject="01", task="checkerboard", space="T1w", extension=".nii.gz"),
            "sub-01/func/sub-01_task-checkerboard_space-T1w_desc-fixedfx_mask.nii.gz",
        ),
        (
            "group_statmap",
            dict(task="checkerboard", space=SPACE, contrast="audio", stat="p", extension=".nii.gz"),
            f"group/task-checkerboard_space-{SPACE}_contrast-audio_stat-p_statmap.nii.gz",
        ),
        (
            "group_mask",
            dict(task="checkerboard", space=SPACE, extension=".nii.gz"),
            f"group/task-checkerboard_space-{SPACE}_desc-group_mask.nii.gz",
        ),
    ],
)
def test_build_gives_the_spec_names(kind, entities, expected):
    assert naming.build(kind, **entities) == Path(expected)


@pytest.mark.parametrize("stat", STATS)
def test_every_stat_has_a_name(stat):
    for kind in ("run_statmap", "subject_statmap", "group_statmap"):
        path = naming.build(kind, subject="01", task="x", run="01", contrast="c", stat=stat, extension=".nii.gz")
        assert path.name.endswith(f"_contrast-c_stat-{stat}_statmap.nii.gz")


@pytest.mark.parametrize(
    "kind",
    ["run_statmap", "subject_statmap", "subject_mask", "group_statmap", "group_mask"],
)
def test_no_space_means_no_space_entity(kind):
    entities = dict(subject="01", task="x", run="01", contrast="c", stat="z", extension=".nii.gz")
    assert "_space-" not in naming.build(kind, space=None, **entities).name
    assert "_space-" not in naming.build(kind, **entities).name
    assert naming.build(kind, space="T1w", **entities).name.count("_space-T1w_") == 1


def test_values_are_kept_as_given():
    padded = naming.build("run_statmap", subject="01", task="x", run="01", echo="01", contrast="c",
                           stat="t", extension=".nii.gz")
    assert "_run-01_echo-01_" in padded.name
    plain = naming.build("design", subject="1", task="x", run="1", extension=".tsv")
    assert plain.name == "sub-1_task-x_run-1_design.tsv"


def test_run_entities_come_from_the_run_record(example_selection):
    for run in example_selection.runs:
        entities = naming.run_entities(run)
        path = naming.build("run_statmap", space=run.space, contrast="c", stat="t", extension=".nii.gz", **entities)
        # the output name starts with the input's entities, values as in the input name
        assert path.name.startswith(run.name + f"_space-{run.space}_")
        assert run.raw_bold.name.startswith(run.name + "_")
        folder = Path(f"sub-{run.subject}") / (f"ses-{run.session}" if run.session else "") / "func"
        assert path.parent == folder


def test_run_entities_in_bids_order():
    run = Run(
        entities=(("sub", "01"), ("ses", "a"), ("task", "t"), ("acq", "b"), ("ce", "c"), ("rec", "d"),
                  ("dir", "e"), ("run", "02"), ("echo", "3")),
        space=None, bold=Path("b"), mask=None, events=None, confounds=None, design=None, raw_bold=None,
        tr=2.0, n_volumes=10, preprocessed=True,
    )
    path = naming.build("design", extension=".tsv", **naming.run_entities(run))
    assert path.name == f"{run.name}_design.tsv"
    assert run.name == "sub-01_ses-a_task-t_acq-b_ce-c_rec-d_dir-e_run-02_echo-3"


def test_build_refuses_what_it_cannot_name():
    with pytest.raises(ValueError):
        naming.build("subject_statmap", subject="01", task="x", contrast="c", stat="beta", extension=".nii.gz")


@pytest.mark.parametrize(
    "kind, entities",
    [
        ("run_statmap", dict(subject="01", session="2", task="x", acquisition="y", run="01", echo="1",
                             space=SPACE, contrast="aB", stat="z")),
        ("run_statmap", dict(subject="01", task="x", contrast="c", stat="p")),
        ("subject_statmap", dict(subject="01", task="x", space="T1w", contrast="c", stat="effect")),
        ("subject_mask", dict(subject="01", task="x", space="T1w")),
        ("group_statmap", dict(task="x", contrast="c", stat="variance")),
        ("group_mask", dict(task="x", space=SPACE)),
        ("design", dict(subject="01", session="2", task="x", run="01")),
    ],
)
def test_parse_round_trip(kind, entities):
    path = naming.build(kind, extension=".nii.gz" if kind != "design" else ".tsv", **entities)
    parsed = naming.parse(path)
    suffix = parsed.pop("suffix")
    assert suffix == {"design": "design"}.get(kind, "mask" if kind.endswith("mask") else "statmap")
    parsed.pop("desc", None)
    extension = parsed.pop("extension")
    assert parsed == entities
    # and back again
    assert naming.build(kind, extension=extension, **parsed) == path


@pytest.mark.parametrize("statmaps", [True, False])
@pytest.mark.parametrize("name", [
    "/sub-01/func/sub-01_task-x_run-01_space-MNI152NLin2009cAsym_contrast-aB_stat-z_statmap.nii.gz",
    "/sub-01/ses-2/func/sub-01_ses-2_task-rest_acq-mb4_dir-AP_echo-2_part-mag_desc-preproc_bold.nii.gz",
    "/sub-02/func/sub-02_task-x_hemi-L_space-fsaverage5_den-10k_bold.func.gii",
    "/sub-02/func/sub-02_task-x_run-3_desc-confounds_timeseries.tsv",
    "/sub-02/anat/sub-02_rec-norm_T1w.json",
    "/group/task-x_contrast-a_stat-t_desc-groupFixed_statmap.json",
    "/task-x_events.tsv",
    "/README",
    "/sub-01/func/not_a_bids name.txt",
])
def test_match_entities_equals_pybids(name, statmaps):
    """The entities (and their pybids types) are parse_file_entities' with the same entities."""
    from bids.layout import parse_file_entities

    expected = parse_file_entities(name, entities=naming.entity_patterns(statmaps))
    assert naming.match_entities(name, statmaps=statmaps) == expected
    assert {key: type(value) for key, value in naming.match_entities(name, statmaps).items()} == {
        key: type(value) for key, value in expected.items()}


def test_parse_gives_a_copy_each_call():
    """Names are parsed once and kept: what a caller does with its dict does not reach the next."""
    name = "sub-01/func/sub-01_task-x_run-02_contrast-a_stat-t_statmap.nii.gz"
    first = naming.parse(name)
    first["task"] = "changed"
    second = naming.parse(Path(name))
    assert second["task"] == "x" and second["run"] == "02" and second is not first


def test_parse_refuses_absolute_paths():
    """Entities never come from the folders above a dataset (/data/proj_task-pilot/...)."""
    with pytest.raises(ValueError):
        naming.parse("/data/proj_task-pilot/sub-01/func/sub-01_task-x_bold.nii.gz")
    assert naming.parse("sub-01/func/sub-01_task-x_bold.nii.gz")["task"] == "x"


def test_figures_tables_and_pages_are_named_here_too():
    run = dict(subject="01", session="1", task="x", run="01")
    assert naming.build("run_figure", **run, desc="design", suffix="matrix", extension=".png") == Path(
        "sub-01/figures/sub-01_ses-1_task-x_run-01_desc-design_matrix.png")
    assert naming.build("subject_figure", subject="01", task="x", space=SPACE, contrast="aB", desc="zmap",
                        suffix="statmap", extension=".png") == Path(
        f"sub-01/figures/sub-01_task-x_space-{SPACE}_contrast-aB_desc-zmap_statmap.png")
    assert naming.build("group_figure", task="x", contrast="aB", desc="clusters", suffix="table",
                        extension=".tsv") == Path("group/figures/task-x_contrast-aB_desc-clusters_table.tsv")
    assert naming.build("subject_report", subject="01") == Path("sub-01.html")
    assert naming.build("group_report") == Path("group.html")


def test_set_keys_and_temporary_names():
    assert naming.set_key(subject="01", task="x", space=None) == "sub-01_task-x_space-none"
    assert naming.is_temporary(".sub-01_task-x_design.tsv.abc123.tsv")
    assert not naming.is_temporary("sub-01_task-x_design.tsv")
    assert not naming.is_temporary(".bidsignore")


@pytest.mark.parametrize("name", ["fixedfx", "fixed-fx", "FIXEDFX", "group", "Group"])
def test_a_group_design_named_like_another_group_model_is_named_apart(name):
    """fixed-fx and FIXEDFX took desc-fixedFx and desc-FIXEDFX, read as the fixed-effects maps' names."""
    assert naming.group_design_desc(name).endswith("Design")
