"""Designs: nilearn's design matrix from events and confounds, precomputed designs, contrasts."""

from __future__ import annotations

import dataclasses
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from nilearn.glm.first_level import FirstLevelModel
from nilearn.interfaces.fmriprep import load_confounds

from bids_fixedfx import design
from bids_fixedfx.errors import EX_NO_INPUT, EX_USAGE, InputFileError, NoDataError, UsageError
from bids_fixedfx.settings import ContrastSpec, ModelSettings


def nilearn_design(run, model, confounds):
    """The design matrix nilearn's FirstLevelModel builds for the run."""
    flm = FirstLevelModel(
        t_r=run.tr,
        mask_img=str(run.mask),
        hrf_model=model.hrf_model,
        drift_model=model.drift_model,
        high_pass=model.high_pass,
        drift_order=model.drift_order,
        minimize_memory=True,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # "given mask will be used"
        flm.fit(str(run.bold), events=str(run.events), confounds=confounds)
    return flm.design_matrices_[0]


def assert_same_matrix(ours, theirs):
    assert list(ours.columns) == list(theirs.columns)
    np.testing.assert_allclose(ours.to_numpy(), theirs.to_numpy(), rtol=0, atol=1e-10)


def read_confounds(run):
    return pd.read_csv(run.confounds, sep="\t", na_values="n/a", keep_default_na=False)


# ---------------------------------------------------------------- build_design


@pytest.mark.parametrize(
    "model",
    [
        ModelSettings(),
        ModelSettings(hrf_model="spm + derivative", drift_model="polynomial", drift_order=3),
        ModelSettings(hrf_model="glover + derivative + dispersion", high_pass=0.02),
        ModelSettings(drift_model=None, confounds=("trans_x", "rot_z", "csf")),
    ],
    ids=["defaults", "spm-polynomial", "dispersion-highpass", "nodrift-columns"],
)
def test_build_design_equals_first_level_model(example_run, model):
    ours = design.build_design(example_run, model)
    confounds = read_confounds(example_run)[list(model.confounds)]
    theirs = nilearn_design(example_run, model, confounds)
    assert_same_matrix(ours.matrix, theirs)
    assert ours.confounds == tuple(model.confounds)
    assert ours.precomputed is False
    assert ours.sample_mask is None


def test_build_design_of_every_example_run(example_selection):
    model = ModelSettings()
    for run in example_selection.runs:
        ours = design.build_design(run, model)
        theirs = nilearn_design(run, model, read_confounds(run)[list(model.confounds)])
        assert_same_matrix(ours.matrix, theirs)


def test_conditions_and_counts(example_dataset, example_run):
    events = pd.read_csv(example_run.events, sep="\t")
    built = design.build_design(example_run, ModelSettings())
    assert set(built.conditions) == set(example_dataset.conditions)
    assert built.conditions == tuple(c for c in built.matrix.columns if c in set(events["trial_type"]))
    assert built.condition_counts == events["trial_type"].value_counts().to_dict()


def test_build_design_without_confounds(example_run):
    model = ModelSettings(confounds=())
    built = design.build_design(example_run, model)
    assert built.confounds == ()
    theirs = nilearn_design(example_run, model, None)
    assert_same_matrix(built.matrix, theirs)


def test_a_timeseries_of_another_desc_is_named_where_the_confounds_file_is_missing(example_run, tmp_path):
    """A confounds file named otherwise (nilearn's fake datasets' confounds_tag, a renamed copy):
    the warning said only that the run had no confounds file, though one lay beside the BOLD."""
    folder = tmp_path / "func"
    folder.mkdir()
    bold = folder / example_run.bold.name
    bold.symlink_to(example_run.bold)
    run = dataclasses.replace(example_run, bold=bold, confounds=None)
    said = design.build_design(run, ModelSettings()).notes
    assert [str(n) for n in said] == [f"{run.name} has no confounds file, so it was modelled without confounds (the "
                                      "default is the six motion parameters); run fMRIPrep, or pass --confounds none "
                                      "to say so"]
    (folder / f"{run.name}_desc-motion_timeseries.tsv").write_text("trans_x\n0\n")
    (folder / f"{run.name}_desc-confounds_timeseries.json").write_text("{}")  # not a time series
    said = design.build_design(run, ModelSettings()).notes
    assert [str(n) for n in said] == [
        f"{run.name} has no confounds file (fMRIPrep's desc-confounds_timeseries.tsv; its "
        "desc-motion_timeseries.tsv is not read as one: rename it if it is), so it was modelled without confounds "
        "(the default is the six motion parameters); run fMRIPrep, or pass --confounds none to say so"]


def test_first_row_na_filled_as_load_confounds_does(example_run):
    table = read_confounds(example_run)
    columns = ["trans_x", "trans_x_derivative1", "rot_y_derivative1"]
    assert table[columns[1:]].iloc[0].isna().all()  # fMRIPrep's derivative columns start with n/a
    built = design.build_design(example_run, ModelSettings(confounds=tuple(columns)))
    ours = built.matrix[columns]
    # second row's value, as nilearn's load_confounds (which we ask not to demean)
    nilearn_confounds, _ = load_confounds(
        str(example_run.bold), strategy=("motion",), motion="derivatives", demean=False
    )
    np.testing.assert_allclose(ours.to_numpy(), nilearn_confounds[columns].to_numpy(), rtol=0, atol=1e-12)
    np.testing.assert_array_equal(ours.iloc[0, 1:].to_numpy(), table[columns[1:]].iloc[1].to_numpy())
    assert any(w.kind == "imputed" and "derivative1" in w.text for w in built.notes)


def test_empty_cells_are_missing_as_n_a_is(example_run, tmp_path):
    text = example_run.confounds.read_text()
    assert "n/a" in text
    blank = tmp_path / example_run.confounds.name  # as nilearn's test-data generator writes them
    blank.write_text(text.replace("n/a", ""))
    model = ModelSettings(confounds=("trans_x", "trans_x_derivative1", "rot_y_derivative1"))
    ours = design.build_design(dataclasses.replace(example_run, confounds=blank), model)
    assert_same_matrix(ours.matrix, design.build_design(example_run, model).matrix)
    assert any(w.kind == "imputed" for w in ours.notes)
    assert design.read_table(blank)["trans_x_derivative1"].isna().iloc[0]


@pytest.mark.parametrize("encoding", ["latin-1", "utf-16"])
def test_a_table_not_in_utf8_says_so(tmp_path, encoding):
    """A spreadsheet's Latin-1 export said "'utf-8' codec can't decode ...; write it again as a
    tab-separated table with a header line": it is one; its encoding is at fault."""
    events = tmp_path / "sub-01_task-x_events.tsv"
    events.write_bytes("onset\tduration\ttrial_type\n0\t1\tcaf\u00e9\n".encode(encoding))
    with pytest.raises(InputFileError) as error:
        design.read_table(events, "events file")
    assert str(error.value).startswith(f"The events file {events} is not UTF-8 text (byte ")
    assert str(error.value).endswith("is not UTF-8, as BIDS requires); save it again as UTF-8.")
    if encoding == "latin-1":  # the file's offset: pandas' own was within the chunk it decoded (4 for 45)
        offset = events.read_bytes().index("\u00e9".encode("latin-1"))
        assert f"(byte {offset} is not UTF-8" in str(error.value)


def test_the_first_byte_not_utf8_is_found_across_blocks(tmp_path):
    path = tmp_path / "table.tsv"
    path.write_bytes("a\u00e9".encode() * 700_000 + b"\xff")  # a character across the first 1 MiB block's end
    assert design._first_not_utf8(path) == 2_100_000


def test_a_table_that_cannot_be_read_says_what_to_do(tmp_path):
    """An empty confounds file (a copy interrupted, the BIDS examples' placeholders) said only
    pandas' 'No columns to parse from file'."""
    empty = tmp_path / "sub-01_task-x_desc-confounds_timeseries.tsv"
    empty.write_bytes(b"")
    with pytest.raises(InputFileError) as error:
        design.read_table(empty, "confounds file")
    assert str(error.value) == (f"The confounds file {empty} cannot be read as a TSV table: No columns to parse from "
                                "file; write it again as a tab-separated table with a header line.")


def test_a_stray_quote_that_merges_rows_is_refused(example_run, tmp_path):
    """'"audio' on one line and 'audio"' two lines below made one event of the three, of a trial
    type 'audio\\n27.3\\t12.0\\tvisual...': a contrast of that name, exit 0 (the validator passes it)."""
    lines = example_run.events.read_text().splitlines()
    quoted = tmp_path / "quoted_events.tsv"
    quoted.write_text("\n".join([lines[0], '\t"'.join(lines[1].rsplit("\t", 1)), lines[2],
                                  lines[3] + '"', *lines[4:]]) + "\n")
    with pytest.raises(InputFileError, match=f"{quoted} has a cell holding a line break \\(column 'trial_type', "
                                             "row 1: .*remove the stray quotes"):
        design.read_table(quoted, "events file")
    header = tmp_path / "participants.tsv"
    header.write_text('participant_id\t"age\nsub-01\t41"\n')
    with pytest.raises(InputFileError, match="has a column name holding a line break"):
        design.read_table(header, "participants table")
    tabbed = tmp_path / "tabbed.tsv"  # a quoted tab is a cell's (BIDS' escape), as it was
    tabbed.write_text('participant_id\tnote\nsub-01\t"a\tb"\nsub-02\t"two\nlines"\n')  # and a text's lines
    assert design.read_table(tabbed)["note"].tolist() == ["a\tb", "two\nlines"]


def test_rows_with_more_fields_than_the_header_and_columns_given_twice(example_run, tmp_path):
    """A tab at the end of each event (not of the header) made pandas read the onsets as the
    rows' names: every onset became the duration, without a word. A field too many with a
    value, or a column given twice (pandas renamed it age.1), was read the same silent way."""
    events = pd.read_csv(example_run.events, sep="\t")
    lines = example_run.events.read_text().splitlines()
    trailing = tmp_path / "trailing_events.tsv"
    trailing.write_text("\n".join([lines[0]] + [line + "\t" for line in lines[1:]]) + "\n")
    pd.testing.assert_frame_equal(design.read_table(trailing), events)
    everywhere = tmp_path / "every_line_events.tsv"  # the header's own trailing tab made a column "Unnamed: 3"
    everywhere.write_text("\n".join(line + "\t" for line in lines) + "\n")
    pd.testing.assert_frame_equal(design.read_table(everywhere), events)
    extra = tmp_path / "extra_events.tsv"
    extra.write_text("\n".join([lines[0], lines[1] + "\t7", *lines[2:]]) + "\n")
    width = len(lines[0].split("\t"))
    with pytest.raises(InputFileError, match=f"{extra} has {width + 1} fields on line 2, but its header names {width}"):
        design.read_table(extra, "events file")
    twice = tmp_path / "participants.tsv"
    twice.write_text("participant_id\tage\tage\nsub-01\t41\t42\n")
    with pytest.raises(InputFileError, match=f"{twice} names the column 'age' more than once"):
        design.read_table(twice, "participants table")
    dotted = tmp_path / "dotted.tsv"  # a column whose name only looks like pandas' renaming
    dotted.write_text("onset\tduration\tscore.1\n1\t2\t3\n")
    assert list(design.read_table(dotted).columns) == ["onset", "duration", "score.1"]


def test_a_confound_constant_over_the_run_is_named(example_run, tmp_path):
    """rot_z 0 throughout (older tools write such columns): nilearn's only word was "Matrix is
    singular at working precision", naming nothing."""
    table = pd.read_csv(example_run.confounds, sep="\t")
    table["rot_z"] = 0.0
    constant = tmp_path / example_run.confounds.name
    table.to_csv(constant, sep="\t", index=False, na_rep="n/a")
    built = design.build_design(dataclasses.replace(example_run, confounds=constant), ModelSettings())
    said = [n.text for n in built.notes if "does not vary" in n.text]
    assert len(said) == 1 and "the confound rot_z of" in said[0] and "leave it out with --confounds" in said[0]
    assert not [n for n in built.notes if "Matrix is singular" in n.text or "linearly dependent" in n.text]
    assert not [n for n in design.build_design(example_run, ModelSettings()).notes if "does not vary" in n.text]


def test_a_confound_given_twice_names_the_dependent_columns(example_run, tmp_path):
    """Two equal confounds: nilearn regularises the design and warns "Matrix is singular at
    working precision, regularizing...", naming no column; the note names them and what to do."""
    table = pd.read_csv(example_run.confounds, sep="\t")
    table["trans_x_copy"] = table["trans_x"]
    twice = tmp_path / example_run.confounds.name
    table.to_csv(twice, sep="\t", index=False, na_rep="n/a")
    settings = ModelSettings(confounds=("trans_x", "trans_x_copy", "rot_y"), confounds_given=True)
    texts = [n.text for n in design.build_design(dataclasses.replace(example_run, confounds=twice), settings).notes]
    assert not [t for t in texts if "Matrix is singular" in t]
    said = [t for t in texts if "linearly dependent" in t]
    assert len(said) == 1 and "columns trans_x, trans_x_copy are" in said[0] and "--confounds" in said[0]
    once = dataclasses.replace(settings, confounds=("trans_x", "rot_y"))
    assert not [n for n in design.build_design(example_run, once).notes if "linearly dependent" in n.text]


def test_a_condition_whose_events_start_after_the_run_is_noted(example_run, tmp_path):
    table = pd.read_csv(example_run.events, sep="\t")
    end = (example_run.n_volumes - 1) * example_run.tr
    late = table.assign(onset=np.where(table["trial_type"] == "visual", end + 10 + table["onset"], table["onset"]))
    path = tmp_path / example_run.events.name
    late.to_csv(path, sep="\t", index=False)
    built = design.build_design(dataclasses.replace(example_run, events=path), ModelSettings())
    noted = [n.text for n in built.notes if n.kind == "empty-condition"]
    assert len(noted) == 1 and "'visual'" in noted[0] and path.name in noted[0]
    assert np.abs(built.matrix["visual"].to_numpy()).max() < 1e-6 * np.abs(built.matrix["audio"].to_numpy()).max()
    assert not [n for n in design.build_design(example_run, ModelSettings()).notes if n.kind == "empty-condition"]


def test_nilearn_s_warnings_are_one_line_each_saying_what_to_do(example_run, tmp_path):
    """nilearn's list of conditions with null durations was logged with literal newlines, then
    flattened to its bullets, saying neither what it means nor what to do; so for events without
    a trial_type."""
    table = pd.read_csv(example_run.events, sep="\t").assign(duration=0.0)
    path = tmp_path / example_run.events.name
    table.to_csv(path, sep="\t", index=False)
    notes = [n.text for n in design.build_design(dataclasses.replace(example_run, events=path), ModelSettings()).notes
             if n.kind == "design"]
    assert notes == [f"{example_run.name}: events of 'audio', 'visual' have duration 0 in {path.name}, which nilearn "
                     "models as impulses (a regressor far weaker than a block's); if they last, give their durations "
                     "there."]
    table.drop(columns="trial_type").assign(duration=5.0).to_csv(path, sep="\t", index=False)
    notes = [n.text for n in design.build_design(dataclasses.replace(example_run, events=path), ModelSettings()).notes
             if n.kind == "design"]
    assert notes == [f"{example_run.name}: {path.name} has no trial_type column, so nilearn models every event as one "
                     "condition, 'dummy' (maps named contrast-dummy); add a trial_type column to name the conditions."]
    # a header of "trial_type " (a trailing space) is named
    table.assign(duration=5.0).rename(columns={"trial_type": "trial_type "}).to_csv(path, sep="\t", index=False)
    notes = [n.text for n in design.build_design(dataclasses.replace(example_run, events=path), ModelSettings()).notes
             if n.kind == "design"]
    assert len(notes) == 1 and "has no trial_type column (its column 'trial_type ' is not spelled so)" in notes[0]


def test_the_events_columns_bids_defines_beside_nilearn_s_are_not_warned_about(example_run, tmp_path):
    """response_time, HED, stim_file, value (BIDS columns, common on OpenNeuro): nilearn's "unexpected
    columns ... will be ignored" reached the user as a warning on every run, with nothing to do."""
    table = pd.read_csv(example_run.events, sep="\t")
    table = table.assign(response_time=0.5, HED="Sensory-event", stim_file="tone.wav", value=3)
    path = tmp_path / example_run.events.name
    table.to_csv(path, sep="\t", index=False)
    built = design.build_design(dataclasses.replace(example_run, events=path), ModelSettings())
    assert not [n.text for n in built.notes if n.kind == "design"]
    assert_same_matrix(built.matrix, design.build_design(example_run, ModelSettings()).matrix)


def test_events_whose_trial_type_is_n_a_are_left_out_as_nilearn_leaves_them(example_run, tmp_path):
    table = pd.read_csv(example_run.events, sep="\t")
    table.loc[[1, 4], "trial_type"] = "n/a"
    path = tmp_path / example_run.events.name
    table.to_csv(path, sep="\t", index=False)
    run = dataclasses.replace(example_run, events=path)
    model = ModelSettings()
    built = design.build_design(run, model)
    without = tmp_path / "without" / path.name  # nilearn's design matrix drops them (its model's fit fails)
    without.parent.mkdir()
    table.drop(index=[1, 4]).to_csv(without, sep="\t", index=False)
    reference = dataclasses.replace(example_run, events=without)
    assert_same_matrix(built.matrix, nilearn_design(reference, model, read_confounds(run)[list(model.confounds)]))
    texts = [n.text for n in built.notes]
    assert any("2 event(s)" in t and "n/a" in t and path.name in t for t in texts)
    assert not any("Duplicated events" in t for t in texts)


@pytest.mark.parametrize("where", ["before", "end"])
def test_a_condition_whose_events_lie_outside_the_run_is_said(example_run, tmp_path, where):
    """An event 40 s before the first volume, or 0.2 s before the last: its regressor peaked at 4e-5
    and 1e-8, its effect maps at 1e5 and 4e8 with |z| > 3 here and there, and nothing was said."""
    table = pd.read_csv(example_run.events, sep="\t")
    onset = -40.0 if where == "before" else (example_run.n_volumes - 1) * example_run.tr - 0.2
    table = pd.concat([table, pd.DataFrame({"onset": [onset], "duration": [0.2], "trial_type": ["edge"]})])
    path = tmp_path / example_run.events.name
    table.to_csv(path, sep="\t", index=False, na_rep="n/a")
    model = ModelSettings()
    built = design.build_design(dataclasses.replace(example_run, events=path), model)
    said = [n.text for n in built.notes if "'edge' lie almost wholly outside the run" in n.text]
    assert len(said) == 1 and path.name in said[0]
    assert not any("wholly outside" in n.text for n in design.build_design(example_run, model).notes)


def test_a_modulation_column_scales_the_events_as_nilearn_scales_them(example_run, tmp_path):
    table = pd.read_csv(example_run.events, sep="\t")
    table["modulation"] = np.linspace(0.5, 2.0, len(table))
    table.loc[2, "modulation"] = np.nan
    path = tmp_path / example_run.events.name
    table.to_csv(path, sep="\t", index=False, na_rep="n/a")
    run = dataclasses.replace(example_run, events=path)
    model = ModelSettings()
    built = design.build_design(run, model)
    assert_same_matrix(built.matrix, nilearn_design(run, model, read_confounds(run)[list(model.confounds)]))
    plain = design.build_design(example_run, model).matrix
    assert not np.allclose(built.matrix[list(built.conditions)], plain[list(built.conditions)])
    assert any("1 event(s)" in n.text and "modulation n/a" in n.text and path.name in n.text for n in built.notes)


@pytest.mark.parametrize("value", ["high", "inf", "1e40"])  # 1e40: the run's z was 1e-15, exit 0
def test_a_modulation_that_is_text_or_infinite_names_the_events_file(example_run, tmp_path, value):
    table = pd.read_csv(example_run.events, sep="\t").assign(modulation="1")
    table.loc[1, "modulation"] = value
    path = tmp_path / example_run.events.name
    table.to_csv(path, sep="\t", index=False)
    with pytest.raises(InputFileError) as error:
        design.build_design(dataclasses.replace(example_run, events=path), ModelSettings())
    assert error.value.exit_code == EX_NO_INPUT
    assert str(path) in str(error.value) and "modulation" in str(error.value)


def test_trial_types_that_look_like_numbers_stay_labels(example_run, tmp_path):
    table = pd.read_csv(example_run.events, sep="\t")
    table["trial_type"] = np.where(table["trial_type"] == "audio", "01", "1e3")
    table.loc[0, "trial_type"] = np.nan  # pandas read the column as numbers around an n/a: 1.0, 1000.0
    path = tmp_path / example_run.events.name
    table.to_csv(path, sep="\t", index=False, na_rep="n/a")
    events = design.read_events(path)
    assert set(events["trial_type"].dropna()) == {"01", "1e3"} and events["trial_type"].isna().sum() == 1
    built = design.build_design(dataclasses.replace(example_run, events=path), ModelSettings())
    assert set(built.conditions) == {"01", "1e3"}


def test_more_trial_types_than_volumes_are_refused_before_the_design_is_built(example_run, tmp_path):
    n = example_run.n_volumes + 1
    table = pd.DataFrame({"onset": np.arange(n) * 0.5, "duration": 0.1, "trial_type": [f"t{i}" for i in range(n)]})
    path = tmp_path / example_run.events.name
    table.to_csv(path, sep="\t", index=False)
    run = dataclasses.replace(example_run, events=path)
    with pytest.raises(InputFileError, match=f"has {n} trial types for the {n - 1} volumes") as error:
        design.build_design(run, ModelSettings())
    assert str(path) in str(error.value)


def test_a_drift_order_leaving_no_degree_of_freedom_is_refused_before_the_design_is_built(example_run):
    n = example_run.n_volumes
    refused = ModelSettings(drift_model="polynomial", drift_order=n - 1)
    with pytest.raises(UsageError, match=f"--drift-order {n - 1} leaves {example_run.name} no degree") as error:
        design.build_design(example_run, refused)
    assert error.value.exit_code == EX_USAGE and f"below {n - 1}" in str(error.value)
    assert design.build_design(example_run, ModelSettings(drift_model="polynomial", drift_order=3)).matrix.shape[0] == n
    design.check_drift_order(example_run, "cosine", n + 1)  # the order applies to the polynomial drift only


def test_events_with_a_repeated_column_or_n_a_durations_are_named(example_run, tmp_path):
    text = example_run.events.read_text()
    header, body = text.split("\n", 1)
    path = tmp_path / example_run.events.name
    path.write_text(header + "\tonset\n" + "".join(line + "\t1\n" for line in body.splitlines()))
    with pytest.raises(InputFileError, match="names the column 'onset' more than once"):  # was renamed onset.1
        design.build_design(dataclasses.replace(example_run, events=path), ModelSettings())
    path.write_text(header + "\t\n" + body)  # a trailing tab, as spreadsheets write it, is no column
    assert_same_matrix(design.build_design(dataclasses.replace(example_run, events=path), ModelSettings()).matrix,
                       design.build_design(example_run, ModelSettings()).matrix)
    table = pd.read_csv(example_run.events, sep="\t")
    table.loc[1, "duration"] = np.nan
    table.to_csv(path, sep="\t", index=False, na_rep="n/a")
    with pytest.raises(InputFileError, match="duration is n/a"):  # was nilearn's 'must not contain nan values'
        design.build_design(dataclasses.replace(example_run, events=path), ModelSettings())
    # responses without a trial_type or a duration (OpenNeuro's ds002, ds007, ds008...): left out, as the
    # other untyped events, where the run was refused
    responses = pd.DataFrame({"onset": [7.5, 31.0], "duration": [np.nan, np.nan], "trial_type": [np.nan, np.nan]})
    pd.concat([pd.read_csv(example_run.events, sep="\t"), responses]).to_csv(path, sep="\t", index=False,
                                                                            na_rep="n/a")
    built = design.build_design(dataclasses.replace(example_run, events=path), ModelSettings())
    assert_same_matrix(built.matrix, design.build_design(example_run, ModelSettings()).matrix)
    assert any("2 event(s) of" in str(note) and "trial_type n/a" in str(note) for note in built.notes)


def test_events_written_with_commas_are_said_to_be(example_run, tmp_path):
    """A CSV events file was said to have no 'onset' column, though its header begins with it."""
    path = tmp_path / example_run.events.name
    pd.read_csv(example_run.events, sep="\t").to_csv(path, index=False)
    with pytest.raises(InputFileError, match="has no 'onset' column, which BIDS events files need; its columns are "
                                             "separated by commas, where BIDS tables use tabs"):
        design.build_design(dataclasses.replace(example_run, events=path), ModelSettings())


def test_a_trial_type_too_long_for_a_name_is_refused_when_the_events_are_read(example_run, tmp_path):
    """One trial_type of 5 MB (a web form's upload) took about 900 MB of memory before the
    name was refused; 20 MB, 3 GB."""
    path = tmp_path / example_run.events.name
    path.write_text(example_run.events.read_text() + "1\t1\t" + "x" * (5 << 20) + "\n")
    with pytest.raises(InputFileError, match=f"{path} has a trial_type of {5 << 20} characters "
                       r"\(row \d+\), which is no condition's name"):
        design.read_events(path)
    path.write_text(example_run.events.read_text() + "1\t1\t" + "x" * design.MAX_TRIAL_TYPE + "\n")
    assert design.read_events(path)["trial_type"].str.len().max() == design.MAX_TRIAL_TYPE


def test_wildcard_confounds(example_run):
    header = list(read_confounds(example_run).columns)
    expected = [c for c in header if c.startswith("trans_")]
    assert len(expected) > 3  # translations and their derivatives
    built = design.build_design(example_run, ModelSettings(confounds=("trans_*",)))
    assert built.confounds == tuple(expected)
    assert [c for c in built.matrix.columns if c.startswith("trans_")] == expected


def test_wildcards_and_names_together_without_repeats(example_run):
    built = design.build_design(example_run, ModelSettings(confounds=("rot_x", "rot_*")))
    header = list(read_confounds(example_run).columns)
    assert built.confounds == ("rot_x", *[c for c in header if c.startswith("rot_") and c != "rot_x"])


def test_unknown_confound_column_is_a_usage_error(example_run):
    with pytest.raises(UsageError) as error:
        design.build_design(example_run, ModelSettings(confounds=("trans_x", "no_such_column"), confounds_given=True))
    assert error.value.exit_code == EX_USAGE
    assert "no_such_column" in str(error.value)
    assert example_run.confounds.name in str(error.value)


def test_default_confounds_a_table_lacks_are_the_table_s_fault(example_run, tmp_path):
    table = read_confounds(example_run).rename(columns={"trans_x": "X", "rot_z": "RotZ"})  # older fMRIPrep names
    path = tmp_path / example_run.confounds.name
    table.to_csv(path, sep="\t", index=False, na_rep="n/a")
    run = dataclasses.replace(example_run, confounds=path)
    with pytest.raises(InputFileError, match="has no column trans_x, one of the default confounds") as error:
        design.build_design(run, ModelSettings())
    assert error.value.exit_code == EX_NO_INPUT and str(path) in str(error.value)
    with pytest.raises(UsageError, match="--confounds trans_x matches no column"):
        design.build_design(run, ModelSettings(confounds_given=True))
    older = read_confounds(example_run).rename(columns=dict(zip(
        ("trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z"), design.OLDER_MOTION)))
    older.to_csv(path, sep="\t", index=False, na_rep="n/a")  # all six in fMRIPrep < 1.2's names: said
    with pytest.raises(InputFileError, match="--confounds X Y Z RotX RotY RotZ names them as fMRIPrep before 1.2"):
        design.build_design(run, ModelSettings())


@pytest.mark.parametrize("strategy", [("wm_csf",), ("high_pass", "global_signal")])
def test_load_confounds_strategy(example_run, strategy):
    built = design.build_design(example_run, ModelSettings(confounds=strategy))
    expected, sample_mask = load_confounds(str(example_run.bold), strategy=strategy)
    assert sample_mask is None and built.sample_mask is None
    assert built.confounds == tuple(expected.columns)
    np.testing.assert_allclose(
        built.matrix[list(expected.columns)].to_numpy(), expected.to_numpy(), rtol=0, atol=1e-10
    )
    model = ModelSettings(confounds=strategy)
    assert_same_matrix(built.matrix, nilearn_design(example_run, model, expected))


def test_a_confound_strategy_refuses_a_confounds_file_it_would_not_read(example_run, tmp_path):
    """--bids-filter-file chose desc-custom, load_confounds read desc-confounds beside the series,
    and the sidecars cited desc-custom: the strategy is refused for such a run."""
    import shutil

    custom = tmp_path / example_run.confounds.name.replace("desc-confounds", "desc-custom")
    shutil.copy(example_run.confounds, custom)
    run = dataclasses.replace(example_run, confounds=custom)
    with pytest.raises(UsageError, match=f"reads {example_run.confounds.name} beside .* chosen for that run is "
                                         f"{custom.name}") as caught:
        design.build_design(run, ModelSettings(confounds=("motion",)))
    assert caught.value.exit_code == 64
    design.build_design(run, ModelSettings(confounds=("trans_*", "rot_*")))  # its columns by name: read


def test_a_confound_strategy_reads_the_confounds_of_an_uncompressed_series(example_run, tmp_path):
    """Was 64 with nilearn's 'Unsupported input.': its load_confounds parses *.nii.gz names only."""
    import gzip
    import shutil

    bold = tmp_path / example_run.bold.name.removesuffix(".gz")
    bold.write_bytes(gzip.decompress(example_run.bold.read_bytes()))
    for path in (example_run.confounds, example_run.confounds.with_suffix(".json")):
        shutil.copy(path, tmp_path / path.name)
    run = dataclasses.replace(example_run, bold=bold, confounds=tmp_path / example_run.confounds.name)
    strategy = ModelSettings(confounds=("motion", "wm_csf"))
    assert_same_matrix(design.build_design(run, strategy).matrix, design.build_design(example_run, strategy).matrix)


def test_a_confound_strategy_whose_columns_the_table_lacks_names_them(example_run, tmp_path):
    """Was 64 with nilearn's "The following keywords or parameters are missing: [] ['wm_csf']",
    naming the BOLD series: the table lacks data (66), and the columns are named."""
    import shutil

    import pandas as pd

    bold = shutil.copy(example_run.bold, tmp_path / example_run.bold.name)
    confounds = tmp_path / example_run.confounds.name
    shutil.copy(example_run.confounds.with_suffix(".json"), confounds.with_suffix(".json"))
    pd.read_csv(example_run.confounds, sep="\t").drop(columns=["csf", "white_matter"]).to_csv(
        confounds, sep="\t", index=False, na_rep="n/a")
    run = dataclasses.replace(example_run, bold=Path(bold), confounds=confounds)
    with pytest.raises(NoDataError) as caught:
        design.build_design(run, ModelSettings(confounds=("motion", "wm_csf")))
    assert caught.value.exit_code == 66
    assert str(caught.value) == (f"--confounds motion wm_csf: the confounds of {run.name} ({confounds}) have no "
                                 "column of the strategy wm_csf (csf, white_matter); choose strategies, or columns, "
                                 "that they have.")


def test_compcor_without_the_confounds_sidecar_is_a_missing_file(example_run, tmp_path):
    """Was 64, and nilearn's sentences were glued ('...json.This is necessary')."""
    import shutil

    bold = shutil.copy(example_run.bold, tmp_path / example_run.bold.name)
    confounds = shutil.copy(example_run.confounds, tmp_path / example_run.confounds.name)  # its JSON left behind
    run = dataclasses.replace(example_run, bold=Path(bold), confounds=Path(confounds))
    with pytest.raises(NoDataError, match="Could not find associated json file .*timeseries.json. This is") as caught:
        design.build_design(run, ModelSettings(confounds=("high_pass", "compcor")))
    assert caught.value.exit_code == EX_NO_INPUT and "--confounds high_pass compcor" in str(caught.value)


def test_confounds_with_another_length_than_the_bold(example_run, tmp_path):
    short = tmp_path / example_run.confounds.name
    read_confounds(example_run).iloc[:-3].to_csv(short, sep="\t", index=False, na_rep="n/a")
    run = dataclasses.replace(example_run, confounds=short)
    with pytest.raises(InputFileError) as error:
        design.build_design(run, ModelSettings())
    assert short.name in str(error.value)


@pytest.mark.parametrize("value, says", [(np.inf, "Confound column rot_z of .* holds infinite values"),
                                         (1e308, "Confound column rot_z of .* holds 1e\\+308, above 1e\\+12 in size"),
                                          ("1,5", "Confound column rot_z of .* holds text \\('1,5'\\), not numbers")])
def test_a_confound_column_at_fault_is_named_alone(example_run, tmp_path, value, says):
    """One infinite value of rot_z was said of all six motion columns."""
    table = read_confounds(example_run).astype(object)
    table.loc[4, "rot_z"] = value
    broken = tmp_path / example_run.confounds.name
    table.to_csv(broken, sep="\t", index=False, na_rep="n/a")
    with pytest.raises(InputFileError, match=says) as error:
        design.build_design(dataclasses.replace(example_run, confounds=broken), ModelSettings())
    assert "trans_x" not in str(error.value)


def test_na_past_the_first_row_is_an_input_file_error(example_run, tmp_path):
    table = read_confounds(example_run)
    table.loc[5, "rot_y"] = np.nan
    broken = tmp_path / example_run.confounds.name
    table.to_csv(broken, sep="\t", index=False, na_rep="n/a")
    with pytest.raises(InputFileError) as error:
        design.build_design(dataclasses.replace(example_run, confounds=broken), ModelSettings())
    assert "rot_y" in str(error.value)
    assert broken.name in str(error.value)


# ---------------------------------------------------------------- contrasts


@pytest.fixture(scope="module")
def example_design(example_run):
    return design.build_design(example_run, ModelSettings())


def test_default_contrasts_one_per_condition(example_design):
    columns = list(example_design.matrix.columns)
    contrasts = design.contrast_weights((), example_design)
    assert [c.name for c in contrasts] == list(example_design.conditions)
    assert [c.label for c in contrasts] == list(example_design.conditions)
    for contrast in contrasts:
        expected = np.array([1.0 if c == contrast.name else 0.0 for c in columns])
        np.testing.assert_array_equal(contrast.vector, expected)
        assert contrast.columns == tuple(columns)
        assert contrast.weights == {contrast.name: 1.0}


def test_expression_contrast(example_design):
    columns = list(example_design.matrix.columns)
    (contrast,) = design.contrast_weights([ContrastSpec("audio-visual", "audio-visual")], example_design)
    expected = np.zeros(len(columns))
    expected[columns.index("audio")] = 1
    expected[columns.index("visual")] = -1
    np.testing.assert_array_equal(contrast.vector, expected)
    assert contrast.name == "audio-visual"
    assert contrast.label == "audioVisual"
    assert contrast.weights == {"audio": 1.0, "visual": -1.0}


def test_expression_with_coefficients(example_design):
    columns = list(example_design.matrix.columns)
    (contrast,) = design.contrast_weights([ContrastSpec("mean", "0.5*audio+0.5*visual")], example_design)
    expected = np.zeros(len(columns))
    expected[columns.index("audio")] = expected[columns.index("visual")] = 0.5
    np.testing.assert_allclose(contrast.vector, expected)


@pytest.mark.parametrize("spec, said", [
    ("1e-12*audio", "gives audio the weight 1e-12, which is below 1e-06 in size"),
    ("audio*1e-4*1e-4-visual", "gives audio the weight 1e-08"),
    ("1e-9,1", "has the weight 1e-09, which is below 1e-06"),
    ("1e13,1", "has the weight 1e\\+13, which is not a finite number of at most 1e\\+12"),
    ("1,1e-400", "has the weight '1e-400', too small to be told from 0"),  # it was 0, exit 0
])
def test_contrast_weights_too_small_or_too_large_are_refused(example_design, spec, said):
    """1e-12*audio gave a subject t a hundred thousand times too small (fixed effects floor the
    variance at 1e-16), exit 0; a weight list took 1e13 (the variance overflows single precision)."""
    with pytest.raises(UsageError, match=said):
        design.contrast_weights([ContrastSpec("tiny", spec)], example_design)
    (contrast,) = design.contrast_weights([ContrastSpec("small", "1e-6*audio")], example_design)
    assert contrast.weights == {"audio": 1e-6}


def test_expression_with_a_number_in_scientific_notation(example_design):
    columns = list(example_design.matrix.columns)
    specs = [ContrastSpec("sci", "audio-5e-1*visual")]
    assert design.check_contrasts(specs, {"run1": example_design}) == []
    (contrast,) = design.contrast_weights(specs, example_design)
    expected = np.zeros(len(columns))
    expected[columns.index("audio")] = 1
    expected[columns.index("visual")] = -0.5
    np.testing.assert_allclose(contrast.vector, expected)


@pytest.mark.parametrize("weights", ["1,-1", "-1, 1, 0", "0.5,0.5", "1e0,-1e0"])
def test_comma_weights_are_zero_padded(example_design, weights):
    width = example_design.matrix.shape[1]
    (contrast,) = design.contrast_weights([ContrastSpec("w", weights)], example_design)
    given = [float(w) for w in weights.split(",")]
    assert contrast.vector.shape == (width,)
    np.testing.assert_array_equal(contrast.vector, given + [0.0] * (width - len(given)))


def _coded(example_design):
    """The design with its conditions coded as numbers (trial types 1 and 2)."""
    from dataclasses import replace

    return replace(example_design, matrix=example_design.matrix.rename(columns={"audio": "1", "visual": "2"}))


@pytest.mark.parametrize("definition", ["2", " 2 "])
def test_a_weight_list_that_names_a_column_is_the_column(example_design, definition):
    """nilearn reads a column's name as that column: --contrast d=2 over trial types 1 and 2 weighed
    the first column by 2, without a word."""
    coded = _coded(example_design)
    specs = [ContrastSpec("d", definition)]
    assert design.check_contrasts(specs, {"run1": coded, "run2": coded}) == []
    (contrast,) = design.contrast_weights(specs, coded)
    assert contrast.weights == {"2": 1.0}
    (contrast,) = design.contrast_weights(specs, example_design)  # no such column: weights by position
    assert contrast.weights == {example_design.matrix.columns[0]: 2.0}


def test_a_column_whose_name_starts_with_a_digit_is_named_whole(example_design):
    """n-back conditions: --contrast twoback=2back names the column 2back (it was accepted before the
    expression check said names start with a letter, and must stay so)."""
    from dataclasses import replace

    from bids_fixedfx.arguments import contrast

    nback = replace(example_design, matrix=example_design.matrix.rename(columns={"audio": "2back"}))
    spec = contrast("twoback=2back")
    assert design.check_contrasts([spec], {"run1": nback}) == []
    (weights,) = design.contrast_weights([spec], nback)
    assert weights.weights == {"2back": 1.0}
    with pytest.raises(UsageError, match="names '2back', which starts with a digit"):
        design.check_contrasts([contrast("d=2back-visual")], {"run1": nback})


def test_a_weight_list_that_names_a_column_of_some_runs_only_is_a_usage_error(example_design):
    with pytest.raises(UsageError) as error:
        design.check_contrasts([ContrastSpec("d", "2")], {"run1": _coded(example_design), "run2": example_design})
    assert error.value.exit_code == EX_USAGE
    assert "--contrast d=2 names the design column '2' of run1 but is a list of weights by position for run2" \
        in str(error.value)


def test_weights_as_long_as_the_design(example_design):
    width = example_design.matrix.shape[1]
    weights = ",".join(["0"] * (width - 1) + ["1"])
    (contrast,) = design.contrast_weights([ContrastSpec("last", weights)], example_design)
    assert contrast.weights == {example_design.matrix.columns[-1]: 1.0}


def test_too_many_weights_is_a_usage_error(example_design):
    width = example_design.matrix.shape[1]
    with pytest.raises(UsageError) as error:
        design.contrast_weights([ContrastSpec("long", ",".join(["1"] * (width + 1)))], example_design)
    assert error.value.exit_code == EX_USAGE
    assert "--contrast long" in str(error.value)


def test_zero_weights_is_a_usage_error(example_design):
    with pytest.raises(UsageError, match="--contrast nothing"):
        design.contrast_weights([ContrastSpec("nothing", "0,0")], example_design)


def test_check_contrasts_unknown_column_is_a_usage_error(example_design):
    designs = {"run1": example_design, "run2": example_design}
    with pytest.raises(UsageError) as error:
        design.check_contrasts([ContrastSpec("odd", "audio-smell")], designs)
    assert error.value.exit_code == EX_USAGE
    assert "--contrast odd" in str(error.value)
    assert "smell" in str(error.value)


def test_check_contrasts_accepts_known_columns(example_design):
    designs = {"run1": example_design}
    assert design.check_contrasts([ContrastSpec("av", "audio-visual"), ContrastSpec("w", "1,-1")], designs) == []


def test_check_contrasts_refuses_two_names_with_one_label(example_design):
    with pytest.raises(UsageError) as error:
        design.check_contrasts(
            [ContrastSpec("audio-visual", "audio-visual"), ContrastSpec("audio_visual", "audio-visual")],
            {"run1": example_design},
        )
    assert "audio-visual" in str(error.value) and "audio_visual" in str(error.value)


@pytest.mark.parametrize(
    "name, label",
    [
        ("audio", "audio"),
        ("faces_vs_houses", "facesVsHouses"),
        ("DSt+DSp-SSt-SSp", "DStDSpSStSSp"),
        ("audio - visual", "audioVisual"),
        ("effects of interest", "effectsOfInterest"),
        ("2back-0back", "2back0back"),
    ],
)
def test_bids_label(name, label):
    assert design.bids_label(name) == label
    assert re.fullmatch(r"[A-Za-z0-9]+", design.bids_label(name))


def test_bids_label_of_a_name_without_letters():
    with pytest.raises(UsageError, match=re.escape("+-")):
        design.bids_label("+-")


# ---------------------------------------------------------------- precomputed designs


@pytest.fixture
def precomputed(example_run, example_design, tmp_path):
    """The example run's design written as .tsv and .npz files."""

    def write(kind, rows=None):
        matrix = example_design.matrix if rows is None else example_design.matrix.iloc[:rows]
        path = tmp_path / f"{example_run.name}_design.{kind}"
        if kind == "tsv":
            matrix.to_csv(path, sep="\t", index=False, float_format="%.17g")
        else:
            np.savez(path, X=matrix.to_numpy())
        return dataclasses.replace(example_run, design=path, events=None, confounds=None)

    return write


def test_load_design_tsv(precomputed, example_design):
    run = precomputed("tsv")
    loaded = design.load_design(run)
    assert_same_matrix(loaded.matrix, example_design.matrix)
    assert loaded.precomputed is True
    # conditions: the non-constant, non-drift columns
    assert "constant" not in loaded.conditions
    assert not any(c.startswith("drift_") for c in loaded.conditions)
    assert set(example_design.conditions) <= set(loaded.conditions)
    # build_design reads it instead of the events
    assert_same_matrix(design.build_design(run, ModelSettings()).matrix, example_design.matrix)


def test_load_design_npz(precomputed, example_design):
    loaded = design.load_design(precomputed("npz"))
    width = example_design.matrix.shape[1]
    assert list(loaded.matrix.columns) == [f"X{i}" for i in range(width)]
    np.testing.assert_array_equal(loaded.matrix.to_numpy(), example_design.matrix.to_numpy())
    constant = f"X{list(example_design.matrix.columns).index('constant')}"
    assert constant not in loaded.conditions
    assert f"X{list(example_design.matrix.columns).index('audio')}" in loaded.conditions
    # default contrasts and weights over positional columns
    contrasts = design.contrast_weights((), loaded)
    assert [c.name for c in contrasts] == list(loaded.conditions)
    (weights,) = design.contrast_weights([ContrastSpec("first", "1,-1")], loaded)
    assert weights.weights == {"X0": 1.0, "X1": -1.0}


@pytest.mark.parametrize("kind", ["tsv", "npz"])
def test_load_design_with_the_wrong_number_of_rows(precomputed, example_run, kind):
    run = precomputed(kind, rows=example_run.n_volumes - 2)
    with pytest.raises(InputFileError) as error:
        design.load_design(run)
    assert error.value.exit_code == EX_NO_INPUT
    assert run.design.name in str(error.value)


@pytest.mark.parametrize("value, said", [(np.nan, "has missing or infinite values"),
                                         (1e300, "has values above 1e\\+12 in size, too large for a regression")])
def test_a_design_file_with_values_no_fit_takes_is_refused(example_run, example_design, tmp_path, value, said):
    matrix = example_design.matrix.copy()
    matrix.iloc[3, 0] = value
    path = tmp_path / f"{example_run.name}_design.npz"
    np.savez(path, X=matrix.to_numpy())
    with pytest.raises(InputFileError, match=f"Design file {re.escape(str(path))} {said}"):
        design.load_design(dataclasses.replace(example_run, design=path, events=None, confounds=None))


@pytest.mark.parametrize(("index", "said"), [(True, "column without a name \\(column 1"),
                                             (False, "'audio' more than once")])
def test_a_design_header_with_an_unnamed_or_repeated_column_is_refused(example_run, example_design, tmp_path,
                                                                       index, said):
    matrix = example_design.matrix if index else example_design.matrix.rename(columns={"visual": "audio"})
    path = tmp_path / f"{example_run.name}_design.tsv"
    matrix.to_csv(path, sep="\t", index=index)  # pandas' default writes the index, its name empty
    with pytest.raises(InputFileError, match=said) as error:
        design.load_design(dataclasses.replace(example_run, design=path, events=None, confounds=None))
    assert error.value.exit_code == EX_NO_INPUT and str(path) in str(error.value)


@pytest.mark.parametrize(("values", "said"), [
    (lambda n: np.zeros((n, 50 * n), dtype=np.float32), "columns for the"),  # 0.6 MB held 1.7 GB: 45 s, exit 0
    (lambda n: np.zeros((n, 3), dtype=complex), "complex128 values, not real numbers"),  # cast to real, said raw
    (lambda n: np.zeros((n + 1, 3)), "rows but"),
])
def test_an_npz_design_is_checked_from_its_header_before_it_is_read(example_run, tmp_path, values, said):
    path = tmp_path / "sub-01_design.npz"
    np.savez_compressed(path, X=values(example_run.n_volumes))
    with pytest.raises(InputFileError, match=said):
        design.load_design(dataclasses.replace(example_run, design=path))


def test_a_tsv_design_wider_than_its_run_is_refused_from_its_header(example_run, tmp_path, monkeypatch):
    """20,000 columns of 60 rows: exit 0 after 40 s and 3.4 GB (a default contrast per column)."""
    n = example_run.n_volumes
    path = tmp_path / f"{example_run.name}_design.tsv"
    pd.DataFrame(np.ones((n, n + 1)), columns=[f"c{i}" for i in range(n + 1)]).to_csv(path, sep="\t", index=False)
    monkeypatch.setattr(design, "read_table", lambda *args, **kwargs: pytest.fail("the table was read"))
    with pytest.raises(InputFileError, match=f"{path} has {n + 1} columns for the {n} volumes"):
        design.load_design(dataclasses.replace(example_run, design=path, events=None, confounds=None))


def test_an_npz_design_made_by_hand_reads_as_np_load_reads_it(example_run, example_design, tmp_path):
    """A zip whose member is named X (not X.npy), which np.load reads as X, ended in "There is no item
    named 'X.npy' in the archive", exit 1; a member of a compression zipfile lacks, likewise."""
    import io
    import zipfile

    buffer = io.BytesIO()
    np.save(buffer, example_design.matrix.to_numpy())
    path = tmp_path / f"{example_run.name}_design.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("X", buffer.getvalue())
    loaded = design.load_design(dataclasses.replace(example_run, design=path, events=None, confounds=None))
    np.testing.assert_array_equal(loaded.matrix.to_numpy(), example_design.matrix.to_numpy())
    raw = bytearray(path.read_bytes())
    local = raw.index(b"PK\x03\x04") + 8
    central = raw.index(b"PK\x01\x02") + 10
    raw[local:local + 2] = raw[central:central + 2] = (99).to_bytes(2, "little")  # AES: not in zipfile
    path.write_bytes(bytes(raw))
    with pytest.raises(InputFileError, match=f"Design file {re.escape(str(path))} cannot be read as a numeric "
                                             "matrix: That compression method is not supported"):
        design.load_design(dataclasses.replace(example_run, design=path, events=None, confounds=None))


def test_load_design_npz_without_x(example_run, tmp_path):
    path = tmp_path / f"{example_run.name}_design.npz"
    np.savez(path, Y=np.ones((example_run.n_volumes, 2)))
    with pytest.raises(InputFileError) as error:
        design.load_design(dataclasses.replace(example_run, design=path))
    assert path.name in str(error.value)
    assert "'X'" in str(error.value)


def test_accented_condition_keeps_its_base_letters():
    from bids_fixedfx.design import bids_label

    assert bids_label("áudio") == "audio"
    assert bids_label("café_noir") == "cafeNoir"


# ---------------------------------------------------------------- dummy scans


def with_non_steady_state(run, folder, n):
    """The run with a copy of its confounds whose ``non_steady_state_outlier`` columns flag
    the first ``n`` volumes (as fMRIPrep writes them), beside a link to its BOLD series."""
    folder.mkdir(exist_ok=True)
    table = read_confounds(run)
    for k in range(n):
        table[f"non_steady_state_outlier{k:02d}"] = (np.arange(len(table)) == k).astype(int)
    confounds = folder / run.confounds.name
    table.to_csv(confounds, sep="\t", index=False, na_rep="n/a")
    sidecar = run.confounds.with_name(run.confounds.name.replace(".tsv", ".json"))
    if sidecar.is_file():
        (folder / sidecar.name).write_text(sidecar.read_text())
    bold = folder / run.bold.name
    bold.symlink_to(run.bold)
    return dataclasses.replace(run, bold=bold, confounds=confounds)


@pytest.mark.filterwarnings("error::RuntimeWarning")  # scikit-learn's "Mean of empty slice" reached the terminal
@pytest.mark.parametrize("strategy, column", [("global_signal", "global_signal"), ("wm_csf", "white_matter")])
def test_a_strategy_s_column_of_n_a_names_the_confounds_file(example_run, tmp_path, strategy, column):
    """It was 'The design of ... cannot be built from ..._events.tsv: Extra regressors contain NaN values'."""
    run = with_non_steady_state(example_run, tmp_path / "na", 0)
    table = read_confounds(run).assign(**{column: np.nan})
    table.to_csv(run.confounds, sep="\t", index=False, na_rep="n/a")
    with pytest.raises(InputFileError, match=f"Confound column {column} of {re.escape(str(run.confounds))} has n/a "
                       f"values") as error:
        design.build_design(run, ModelSettings(confounds=(strategy,), confounds_given=True))
    assert f"--confounds {strategy}" in str(error.value) and "events" not in str(error.value)


def test_fmriprep_dummy_scans_leave_the_fit_not_the_design(example_run, tmp_path):
    run = with_non_steady_state(example_run, tmp_path / "nss", 2)
    built = design.build_design(run, ModelSettings())
    plain = design.build_design(example_run, ModelSettings())
    assert_same_matrix(built.matrix, plain.matrix)  # every volume, at its own frame time
    np.testing.assert_array_equal(built.sample_mask, np.arange(2, run.n_volumes))
    assert built.dummy_scans == design.DummyScans((0, 1), "confounds")
    assert built.n_excluded == 2 and built.n_censored == 0
    # named as confounds, the flags still leave the fit rather than enter the design
    asked = design.build_design(run, ModelSettings(confounds=("trans_?", "non_steady_state_outlier*")))
    assert asked.confounds == ("trans_x", "trans_y", "trans_z")
    np.testing.assert_array_equal(asked.sample_mask, np.arange(2, run.n_volumes))


def test_confound_strategy_dummy_scans_are_load_confounds_sample_mask(example_run, tmp_path):
    run = with_non_steady_state(example_run, tmp_path / "nss", 3)
    built = design.build_design(run, ModelSettings(confounds=("motion", "wm_csf")))
    confounds, sample_mask = load_confounds(str(run.bold), strategy=("motion", "wm_csf"))
    np.testing.assert_array_equal(built.sample_mask, sample_mask)
    assert built.dummy_scans.volumes == (0, 1, 2) and built.n_censored == 0
    assert not any(c.startswith("non_steady_state") for c in built.confounds)


def test_dummy_scans_option_where_no_column_flags_volumes(example_run):
    built = design.build_design(example_run, ModelSettings(dummy_scans=3))
    np.testing.assert_array_equal(built.sample_mask, np.arange(3, example_run.n_volumes))
    assert built.dummy_scans == design.DummyScans((0, 1, 2), "option")
    assert "--dummy-scans 3" in built.dummy_scans.reason
    assert design.build_design(example_run, ModelSettings(dummy_scans=0)).sample_mask is None


def test_fmriprep_columns_win_over_the_option_with_a_note(example_run, tmp_path):
    run = with_non_steady_state(example_run, tmp_path / "nss", 2)
    built = design.build_design(run, ModelSettings(dummy_scans=4))
    assert built.dummy_scans.volumes == (0, 1)
    [note] = [n for n in built.notes if n.kind == "dummy-scans"]
    assert "--dummy-scans 4" in note.text and run.name in note.text
    agreeing = design.build_design(run, ModelSettings(dummy_scans=2))
    assert not [n for n in agreeing.notes if n.kind == "dummy-scans"]


def test_precomputed_designs_take_the_option(precomputed):
    run = precomputed("tsv")
    built = design.build_design(run, ModelSettings(dummy_scans=2))
    assert built.precomputed and built.dummy_scans.source == "option"
    np.testing.assert_array_equal(built.sample_mask, np.arange(2, run.n_volumes))


@pytest.mark.parametrize("count", [60, 61, -1])
def test_dummy_scans_that_leave_no_volume_are_usage_errors(example_run, count):
    run = dataclasses.replace(example_run, n_volumes=60)
    with pytest.raises(UsageError) as error:
        design.find_dummy_scans(run, None, count=count)
    assert error.value.exit_code == EX_USAGE and f"--dummy-scans {count}" in str(error.value)
    if count >= 0:
        assert run.name in str(error.value)
