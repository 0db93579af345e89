"""The command line (SPEC §1): options, defaults, labels, contrasts and exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import bids_fixedfx
from bids_fixedfx import cli
from bids_fixedfx.errors import EX_USAGE, InputFileError, UsageError
from bids_fixedfx.settings import MAX_CONTRASTS, MOTION_CONFOUNDS, ContrastSpec

POSITIONAL = ["bids", "out", "participant"]


def parse(*options):
    return cli.parse_settings([*POSITIONAL, *options])


# ---------------------------------------------------------------- defaults


def test_positional_arguments_become_absolute_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = cli.parse_settings(["data/bids", "data/out", "group"])
    assert settings.bids_dir == tmp_path / "data" / "bids"
    assert settings.output_dir == tmp_path / "data" / "out"
    assert settings.analysis_level == "group"
    assert cli.parse_settings(["b", "o", "participant"]).analysis_level == "participant"


def test_every_option_has_the_spec_default():
    settings = parse()
    model = settings.model
    assert settings.participant_label == ()  # all subjects
    assert settings.session_label == ()  # all sessions
    assert settings.task == ()  # all tasks with events
    assert settings.space is None  # MNI152NLin2009cAsym if present, decided by discovery
    assert settings.derivatives == ()  # found under BIDS_DIR/derivatives
    assert settings.bids_filters == {}
    assert settings.skip_bids_validation is False
    assert settings.contrasts == ()  # one per condition
    assert settings.design_dir is None
    assert settings.mask is None
    assert model.smoothing_fwhm == 5.0
    assert model.hrf_model == "glover"
    assert model.drift_model == "cosine"
    assert model.high_pass == 0.01
    assert model.drift_order == 1  # nilearn's default
    assert model.noise_model == "ar1"
    assert model.confounds == ("trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z")
    assert model.confounds == MOTION_CONFOUNDS
    assert model.precision_weighted is False
    assert settings.group_model == "random"
    assert settings.work_dir is None
    assert settings.nprocs == len(os.sched_getaffinity(0))
    assert settings.verbose == 0


def test_every_option_is_parsed(tmp_path):
    settings = parse(
        "--participant-label", "01", "02",
        "--session-label", "1",
        "-t", "checkerboard",
        "--space", "T1w",
        "-d", str(tmp_path / "fmriprep"), "rel/deriv",
        "--skip-bids-validation",
        "--contrast", "av=audio-visual",
        "--contrast", "w=1,-1",
        "--design-dir", "designs",
        "--mask", "mask.nii.gz",
        "--smoothing-fwhm", "6.5",
        "--hrf-model", "spm + derivative",
        "--drift-model", "polynomial",
        "--drift-order", "3",
        "--noise-model", "ols",
        "--confounds", "trans_*", "csf",
        "--precision-weighted",
        "-w", "work",
        "--nprocs", "3",
        "-v", "-v",
    )
    model = settings.model
    assert settings.participant_label == ("01", "02")
    assert settings.session_label == ("1",)
    assert settings.task == ("checkerboard",)
    assert settings.space == "T1w"
    assert settings.derivatives == (tmp_path / "fmriprep", Path("rel/deriv").absolute())
    assert settings.skip_bids_validation is True
    assert settings.contrasts == (ContrastSpec("av", "audio-visual"), ContrastSpec("w", "1,-1"))
    assert settings.design_dir == Path("designs").absolute()
    assert settings.mask == Path("mask.nii.gz").absolute()
    assert model.smoothing_fwhm == 6.5
    assert model.hrf_model == "spm + derivative"
    assert model.drift_model == "polynomial"
    assert model.drift_order == 3
    assert model.noise_model == "ols"
    assert model.confounds == ("trans_*", "csf")
    assert model.precision_weighted is True
    assert settings.work_dir == Path("work").absolute()
    assert settings.nprocs == 3
    assert settings.verbose == 2


@pytest.mark.parametrize("spelled", ["spm+derivative", "SPM + Derivative", "spm +derivative"])
def test_an_hrf_model_may_be_spelled_without_spaces(spelled):
    """A job script that splits its options on white space (the SLURM example) can pass it."""
    assert parse("--hrf-model", spelled).model.hrf_model == "spm + derivative"
    assert parse("--hrf-model", "glover+derivative+dispersion").model.hrf_model == "glover + derivative + dispersion"


def test_each_drift_option_goes_with_its_drift_model():
    assert parse("--high-pass", "0.02").model.high_pass == 0.02  # the default drift is the cosine
    assert parse("--drift-model", "cosine", "--high-pass", "0.02").model.high_pass == 0.02
    assert parse("--drift-model", "polynomial", "--drift-order", "3").model.drift_order == 3


@pytest.mark.parametrize("options, said", [
    (["--drift-model", "none", "--high-pass", "0.02"], "--high-pass has no effect with --drift-model none;"),
    (["--drift-model", "polynomial", "--high-pass", "0.02"], "--high-pass has no effect with --drift-model polynomial;"),
    (["--drift-order", "3"], "--drift-order has no effect with --drift-model cosine (the default);"),
    (["--drift-model", "none", "--drift-ord", "3"], "--drift-order has no effect with --drift-model none;"),
])
def test_a_drift_option_of_another_drift_model_exits_64(options, said, capsys):
    """Accepted without effect before (the sidecars said HighPass null)."""
    assert cli.main([*POSITIONAL, *options]) == EX_USAGE
    assert said in capsys.readouterr().err


@pytest.mark.parametrize("without", ["--no-reports", "--boilerplate-only"])
def test_a_report_threshold_without_reports_exits_64(without, capsys):
    """Accepted without effect before: a job script's threshold silently drew nothing."""
    assert parse("--report-threshold", "2.5").report_threshold == 2.5
    assert parse(without).report_threshold == 3.0  # the default with either: nothing said
    assert cli.main([*POSITIONAL, "--report-threshold", "2.5", without]) == EX_USAGE
    assert f"--report-threshold has no effect with {without}, which writes no report" in capsys.readouterr().err


@pytest.mark.parametrize("where", ["BIDS_DIR", "OUTPUT_DIR", "--derivatives", "--work-dir"])
def test_a_path_that_is_not_utf8_exits_64(tmp_path, capsys, where):
    """A folder named on a Latin-1 system: the validator stopped on it (a valid dataset said to fail
    validation, 16) and pybids with a UnicodeEncodeError (1)."""
    import os

    odd = os.fsdecode(bytes(tmp_path) + b"/caf\xe9")
    argv = {"BIDS_DIR": [odd, "out", "participant"], "OUTPUT_DIR": ["ds", odd, "participant"],
            "--derivatives": ["ds", "out", "participant", "--derivatives", odd],
            "--work-dir": ["ds", "out", "participant", "--work-dir", odd]}[where]
    assert cli.main(argv) == EX_USAGE
    said = capsys.readouterr().err
    assert f"error: {where} " in said and "which is not UTF-8" in said
    with pytest.raises(UsageError) as error:
        cli.parse_settings(argv)
    assert str(error.value).startswith(f"{where} ") and "holds the byte b'\\xe9', which is not UTF-8" in str(error.value)


def test_quiet_and_verbose_together_exit_64(capsys):
    assert parse("-q").verbose == -1
    with pytest.raises(UsageError, match="-q/--quiet and -v/--verbose"):
        parse("-q", "-v")
    assert cli.main([*POSITIONAL, "--verbose", "--quiet"]) == EX_USAGE
    assert "give one or the other" in capsys.readouterr().err


def test_long_and_short_option_spellings_agree():
    assert parse("--task", "x").task == parse("-t", "x").task == ("x",)
    assert parse("--derivatives", "d").derivatives == parse("-d", "d").derivatives
    assert parse("--work-dir", "w").work_dir == parse("-w", "w").work_dir
    assert parse("--verbose").verbose == parse("-v").verbose == 1
    assert parse("-vvv").verbose == 3
    # the BIDS-Apps spellings
    assert parse("--participant_label", "01").participant_label == ("01",)
    assert parse("--skip_bids_validation").skip_bids_validation is True


def test_special_values():
    assert parse("--smoothing-fwhm", "0").model.smoothing_fwhm is None
    assert parse("--drift-model", "none").model.drift_model is None
    assert parse("--confounds", "none").model.confounds == ()
    assert parse("--space", "none").space == "none"


# ---------------------------------------------------------------- labels


@pytest.mark.parametrize(
    "given, expected",
    [
        (["01"], ("01",)),
        (["sub-01"], ("01",)),
        (["sub-01", "02"], ("01", "02")),
        (["sub-01", "01"], ("01",)),  # the same subject twice is processed once
        (["sub-control01"], ("control01",)),
    ],
)
def test_participant_labels_with_or_without_prefix(given, expected):
    assert parse("--participant-label", *given).participant_label == expected


@pytest.mark.parametrize("option", ["BIDS_DIR", "OUTPUT_DIR", "--bids-filter-file", "--mask", "--design-dir", "-d", "-m",
                                    "-w", "--bids-database-dir"])
def test_a_path_with_a_name_longer_than_the_file_system_allows_names_its_option(option, tmp_path, capsys):
    """A 300-byte folder name: a traceback (--bids-filter-file), "a loop of symbolic links"
    (OUTPUT_DIR), or "a file name the outputs need" (-d)."""
    long = str(tmp_path / ("o" * 300))
    argv = {"BIDS_DIR": [long, str(tmp_path / "out"), "participant"],
            "OUTPUT_DIR": [str(tmp_path), long, "participant"]}.get(option, [str(tmp_path), str(tmp_path / "out"),
                                                                        "participant", option, long])
    assert cli.main(argv) == EX_USAGE
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "holds a name of 300 bytes" in err and "longer than the file system allows" in err
    flag = {"-d": "--derivatives", "-m": "--model", "-w": "--work-dir"}.get(option, option)
    assert err.split(": error: ")[1].startswith(f"{flag} "), err
    assert not (tmp_path / "out").exists()


def test_list_options_given_twice_add_up_and_one_value_options_may_repeat_their_value():
    """--participant-label 01 --participant-label 02 processed sub-02 only (argparse keeps the last
    occurrence), so a job script building its line option by option dropped subjects."""
    settings = parse("--participant-label", "01", "--participant-label", "sub-02", "01", "--space", "T1w",
                     "--space", "MNI152NLin2009cAsym", "--confounds", "trans_x", "--confounds", "rot_x",
                     "--smoothing-fwhm", "6", "--smoothing-fwhm", "6")
    assert settings.participant_label == ("01", "02")
    assert list(settings.spaces) == ["T1w", "MNI152NLin2009cAsym"]
    assert list(settings.model.confounds) == ["trans_x", "rot_x"]
    assert settings.model.smoothing_fwhm == 6


@pytest.mark.parametrize(
    "given, expected",
    [
        (["1"], ("1",)),
        (["ses-1"], ("1",)),
        (["ses-pre", "post"], ("pre", "post")),
        (["ses-2", "2"], ("2",)),
    ],
)
def test_session_labels_with_or_without_prefix(given, expected):
    assert parse("--session-label", *given).session_label == expected


@pytest.mark.parametrize("option, label", [("--participant-label", "sub-"), ("--participant-label", ""),
                                           ("--session-label", "ses-"), ("-t", "task-")])
def test_a_label_that_is_only_its_prefix_is_a_usage_error(option, label, capsys):
    assert cli.main([*POSITIONAL, option, label]) == EX_USAGE
    last = capsys.readouterr().err.strip().splitlines()[-1]  # argparse's usage, then its one error line
    assert last.startswith("bids-fixedfx: error:") and f"{label!r} names no label" in last


def test_task_labels_with_or_without_prefix():
    assert parse("-t", "task-checkerboard", "rest").task == ("checkerboard", "rest")


# ---------------------------------------------------------------- contrasts


@pytest.mark.parametrize(
    "given, expected",
    [
        ("faces=faces-houses", ContrastSpec("faces", "faces-houses")),
        ("fiac=DSt+DSp-SSt-SSp", ContrastSpec("fiac", "DSt+DSp-SSt-SSp")),
        ("weights=-1,-1,1,1", ContrastSpec("weights", "-1,-1,1,1")),
        (" spaced = audio - visual ", ContrastSpec("spaced", "audio - visual")),
        ("half=0.5*audio+0.5*visual", ContrastSpec("half", "0.5*audio+0.5*visual")),
    ],
)
def test_contrast_name_and_spec(given, expected):
    assert parse("--contrast", given).contrasts == (expected,)


def test_contrasts_are_repeatable_and_keep_their_order():
    settings = parse("--contrast", "b=visual", "--contrast", "a=audio")
    assert [c.name for c in settings.contrasts] == ["b", "a"]


@pytest.mark.parametrize("bad", ["faces", "=1,-1", "faces=", " = ", "faces=  "])
def test_bad_contrast_forms_exit_64(bad, capsys):
    assert cli.main([*POSITIONAL, "--contrast", bad]) == EX_USAGE
    err = capsys.readouterr().err
    assert "--contrast" in err
    assert "NAME=SPEC" in err


def test_duplicated_contrast_name_exits_64(capsys):
    with pytest.raises(UsageError, match="--contrast a"):
        parse("--contrast", "a=audio", "--contrast", "a=visual")
    assert cli.main([*POSITIONAL, "--contrast", "a=audio", "--contrast", "a=visual"]) == EX_USAGE
    assert "--contrast a" in capsys.readouterr().err


@pytest.mark.parametrize("option", ["-d", "--mask", "--design-dir", "-m", "--bids-filter-file", "-w",
                                    "--bids-database-dir"])
def test_an_empty_path_is_refused_not_read_as_the_current_folder(option, capsys):
    """A web form's empty field: -d '' indexed the current folder as derivatives."""
    assert cli.main([*POSITIONAL, option, " "]) == EX_USAGE
    assert "names no file or folder" in capsys.readouterr().err
    assert cli.main(["", "out", "participant"]) == EX_USAGE


def test_more_contrasts_than_allowed_exit_64(capsys):
    many = [f"--contrast=c{i}=audio" for i in range(MAX_CONTRASTS + 1)]
    assert len(parse(*many[:-1]).contrasts) == MAX_CONTRASTS
    assert cli.main([*POSITIONAL, *many]) == EX_USAGE
    assert f"--contrast is given {MAX_CONTRASTS + 1} times" in capsys.readouterr().err


# ---------------------------------------------------------------- exit codes


@pytest.mark.parametrize(
    "argv, option",
    [
        ([], "bids_dir"),  # positional arguments missing
        (["bids", "out"], "analysis_level"),
        (["bids", "out", "session"], "analysis_level"),
        ([*POSITIONAL, "--no-such-option"], "--no-such-option"),
        ([*POSITIONAL, "--smoothing-fwhm", "-2"], "--smoothing-fwhm"),
        ([*POSITIONAL, "--smoothing-fwhm", "wide"], "--smoothing-fwhm"),
        ([*POSITIONAL, "--high-pass", "-0.01"], "--high-pass"),
        ([*POSITIONAL, "--smoothing-fwhm", "inf"], "--smoothing-fwhm"),  # crashed after writing
        ([*POSITIONAL, "--smoothing-fwhm", "nan"], "--smoothing-fwhm"),  # NaN in the sidecars
        ([*POSITIONAL, "--high-pass", "inf"], "--high-pass"),
        ([*POSITIONAL, "--high-pass", "nan"], "--high-pass"),
        ([*POSITIONAL, "--cluster-threshold", "nan"], "--cluster-threshold"),
        ([*POSITIONAL, "--report-threshold", "-inf"], "--report-threshold"),
        ([*POSITIONAL, "--drift-order", "0"], "--drift-order"),
        ([*POSITIONAL, "--smoothing-fwhm", "\u0665"], "--smoothing-fwhm: must be a number"),  # read as 5
        ([*POSITIONAL, "--dummy-scans", "\u0663"], "--dummy-scans: must be a whole number"),  # read as 3
        (["bids", "out", "group", "--n-perm", "1000000000"], "--n-perm: must be at most 100,000"),  # ran silently
        ([*POSITIONAL, "--drift-model", "polynomial", "--drift-order", "101"], "must be at most 100"),  # hung
        ([*POSITIONAL, "--drift-model", "spline"], "--drift-model"),
        ([*POSITIONAL, "--noise-model", "ar2"], "--noise-model"),
        ([*POSITIONAL, "--hrf-model", "gamma"], "--hrf-model"),
        ([*POSITIONAL, "--group-model", "mixed"], "--group-model"),
        ([*POSITIONAL, "--nprocs", "0"], "--nprocs"),
        ([*POSITIONAL, "--nprocs", "many"], "--nprocs"),
        ([*POSITIONAL, "--participant-label"], "--participant-label"),
        ([*POSITIONAL, "--high-pass", "0"], "--high-pass"),  # was "Node 'run' has HighPassFilterCutoffHz 0.0"
        ([*POSITIONAL, "--high-pass", "1e300"], "must be at most 50 Hz"),  # overflowed nilearn's drifts: exit 1
        ([*POSITIONAL, "--participant-label", "sub-sub-01"], "'sub-sub-01' is not a BIDS label"),
        ([*POSITIONAL, "--participant-label", "01", "01_a"], "'01_a' is not a BIDS label"),
        ([*POSITIONAL, "--session-label", "1/../2"], "'1/../2' is not a BIDS label"),
        ([*POSITIONAL, "-t", "check-board"], "'check-board' is not a BIDS label"),
        # an empty value names the option, as --task '' did (--space '' was 66, 'matches no preprocessed BOLD')
        ([*POSITIONAL, "--space", ""], "argument --space: '' names no space"),
        ([*POSITIONAL, "--space", "T1w", " "], "argument --space: ' ' names no space"),
        # fMRIPrep's syntax was 66 ('matches no preprocessed BOLD'): the filter that selects res- files is given
        ([*POSITIONAL, "--space", "MNI152NLin6Asym:res-2"], '{"bold": {"res": "2"}, "mask": {"res": "2"}}'),
        ([*POSITIONAL, "--space", "MNI/../x"], "'MNI/../x' is not a BIDS space label"),
        ([*POSITIONAL, "--smoothing-fwhm", "1e-160"], "must be 0 (no smoothing) or at least 0.01 mm"),  # NaN maps
        # numpy's overflow warnings in the log, and a report of nothing
        ([*POSITIONAL, "--report-threshold", "1e300"], "--report-threshold: must be a z of at most 40"),
        (["bids", "out", "group", "--cluster-inference", "--cluster-threshold", "1e300"],
         "--cluster-threshold: must be a z of at most 40"),
        ([*POSITIONAL, "-t", ""], "argument -t/--task: '' names no label"),
        ([*POSITIONAL, "--session-label", ""], "argument --session-label: '' names no label"),
        ([*POSITIONAL, "--participant-label", "01", ""], "--participant_label: '' names no label"),
        (["bids", "out", "group", "--group-covariates", ""], "argument --group-covariates: '' names no column"),
        # an unset shell variable (--confounds "$CONF") dropped the motion regressors without a word
        ([*POSITIONAL, "--confounds", ""], "argument --confounds: '' names no confound column or strategy"),
        # a one-value option given twice kept its last value without a word
        ([*POSITIONAL, "--smoothing-fwhm", "5", "--smoothing-fwhm", "8"],
         "argument --smoothing-fwhm: given twice, with 5.0 and 8.0; give it once"),
        ([*POSITIONAL, "-m", "a.json", "--model", "b.json"], "argument -m/--model: given twice, with a.json and b.json"),
        ([*POSITIONAL, "--noise-model", "ols", "--noise-model", "ar1"], "argument --noise-model: given twice"),
    ],
)
def test_argparse_errors_exit_64(argv, option, capsys):
    assert cli.main(argv) == EX_USAGE
    err = capsys.readouterr().err
    assert option in err
    # one line, pointing to --help (argparse's twenty lines of usage came first)
    assert err.count("\n") == 1 and err.startswith("bids-fixedfx: error: ") and "--help" in err, err


def test_module_entry_point_exits_64_on_bad_usage(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "bids_fixedfx", "bids", "out", "participant", "--noise-model", "ar9"],
        capture_output=True, text=True, cwd=tmp_path, check=False, timeout=120,
    )
    assert done.returncode == EX_USAGE, done.stderr
    assert "--noise-model" in done.stderr


def test_version(capsys):
    assert cli.main(["--version"]) == 0
    out = capsys.readouterr().out
    assert bids_fixedfx.__version__ in out
    assert out.strip() == f"bids-fixedfx {bids_fixedfx.__version__}"


def test_help_exits_0_and_lists_the_options(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    for option in (
        "--participant-label", "--session-label", "--task", "--space", "--derivatives",
        "--bids-filter-file", "--skip-bids-validation", "--contrast", "--design-dir", "--mask",
        "--smoothing-fwhm", "--hrf-model", "--drift-model", "--high-pass", "--drift-order",
        "--noise-model", "--confounds", "--precision-weighted", "--work-dir", "--nprocs",
        "--verbose", "--version",
    ):
        assert option in out, option


# ---------------------------------------------------------------- --bids-filter-file


def test_a_derivatives_dataset_given_twice_is_read_once(tmp_path, monkeypatch):
    """However it is spelled (pybids refused a dataset added twice: exit 1)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "fmriprep").mkdir()
    (tmp_path / "other").mkdir()
    settings = parse("-d", "fmriprep", str(tmp_path / "fmriprep") + "/", "other", "./fmriprep")
    assert settings.derivatives == (tmp_path / "fmriprep", tmp_path / "other")


def test_a_derivatives_dataset_given_as_name_and_path_is_read_at_the_path(tmp_path, monkeypatch):
    """-d fmriprep=/data/fmriprep, as fMRIPrep 23.2 and FitLins take it, was read as a folder of
    that whole name (exit 66, naming a path the user never typed); a folder so named still is one."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "preprocessed").mkdir()
    (tmp_path / "odd=name").mkdir()
    settings = parse("-d", f"fmriprep={tmp_path / 'preprocessed'}", "odd=name")
    assert settings.derivatives == (tmp_path / "preprocessed", tmp_path / "odd=name")


def test_bids_filter_file_is_read(tmp_path):
    path = tmp_path / "filters.json"
    path.write_text(json.dumps({"bold": {"run": 1, "acquisition": None}}))
    assert parse("--bids-filter-file", str(path)).bids_filters == {
        "bold": {"run": 1, "acquisition": None}
    }
    queries = {"bold": {"session": ["1", "2"], "desc": "*", "den": "91k", "extension": ".nii.gz"},
               "mask": {"space": "T1w"}, "events": {"extension": ".tsv"}}
    path.write_text("\ufeff" + json.dumps(queries))  # with the byte-order mark some editors write
    assert parse("--bids-filter-file", str(path)).bids_filters == queries


@pytest.mark.parametrize("kind", ["events", "confounds", "mask"])
@pytest.mark.parametrize("entity", ["run", "session", "subject", "acquisition"])
def test_a_filter_of_a_runs_files_naming_a_run_entity_is_refused(tmp_path, capsys, kind, entity):
    """{"events": {"run": 1}} gave every run the events of run 1 (exit 0, without a word)."""
    path = tmp_path / "filters.json"
    path.write_text(json.dumps({"bold": {entity: "1"}, kind: {entity: "1"}}))
    assert cli.main([*POSITIONAL, "--bids-filter-file", str(path)]) == EX_USAGE
    err = capsys.readouterr().err
    assert f"the query of '{kind}' names '{entity}', which tells runs apart" in err and str(path) in err
    path.write_text(json.dumps({"bold": {entity: "1"}}))
    assert parse("--bids-filter-file", str(path)).bids_filters == {"bold": {entity: "1"}}


def test_a_filter_entry_of_a_kind_the_app_does_not_read_is_said(tmp_path, capsys):
    """A typo ("bolt") was ignored without a word; fMRIPrep's other kinds (t1w, fmap) are said
    without a warning (a filter file made for fMRIPrep: nothing is misspelled), not refused."""
    path = tmp_path / "filters.json"
    path.write_text(json.dumps({"bolt": {"run": 1}, "t1w": {"acquisition": None}, "fmap": {"run": 1},
                                "bold": {"run": 1}}))
    code = cli.main(["/no/such/dataset", str(tmp_path / "out"), "participant", "--bids-filter-file", str(path)])
    said = capsys.readouterr().err.splitlines()
    warnings = [line for line in said if "WARNING" in line]
    assert code != 0 and len(warnings) == 1
    assert "'bolt'" in warnings[0] and "ignored; check its spelling" in warnings[0]
    for kind in ("t1w", "fmap"):
        (line,) = [line for line in said if f"entry '{kind}'" in line]
        assert "INFO" in line and "of files this app does not read" in line and "spelling" not in line


def test_missing_bids_filter_file_exits_66(tmp_path, capsys):
    """A required file missing is 66 (SPEC §1), as a missing --mask or events file; it was 64."""
    path = tmp_path / "no_such_filters.json"
    with pytest.raises(InputFileError) as error:
        parse("--bids-filter-file", str(path))
    assert "--bids-filter-file" in str(error.value)
    assert str(path) in str(error.value)
    assert cli.main([*POSITIONAL, "--bids-filter-file", str(path)]) == 66
    assert str(path) in capsys.readouterr().err


@pytest.mark.parametrize(
    "content",
    [
        '{"bold": {"run": 1}',  # not valid JSON
        "bold: run: 1",
        "",
        '["bold"]',  # valid JSON but not queries by file kind
        '{"bold": 1}',
        '{"bold": ' + "[" * 100_000 + "]" * 100_000 + "}",  # deep enough to exhaust the parser
        '{"bold": {"../../x": "y"}}',  # no entity (pybids would refuse the query while indexing)
        '{"bold": {"subject": {"$ne": "01"}}}',  # a value that is no label
        '{"bold": {"run": [1, {"a": 2}]}}',
        b'\xff\xfe{\x00}\x00',  # UTF-16
        '{"bold": {"run": 1}, "bold": {"task": "x"}}',  # a kind twice: the first query was lost without a word
        '{"bold": {"run": 1, "run": 2}}',
        '{"bold": {"extension": ".json"}}',  # the sidecars read as BOLD series, the dataset blamed (66)
        '{"bold": {"extension": [".nii.gz", "tsv"]}}',
        '{"bold": {"hemi": "R"}}',  # ignored: both hemispheres were fitted
    ],
)
def test_invalid_bids_filter_file_exits_64(tmp_path, content, capsys):
    path = tmp_path / "filters.json"
    path.write_bytes(content) if isinstance(content, bytes) else path.write_text(content)
    with pytest.raises(UsageError) as error:
        parse("--bids-filter-file", str(path))
    assert "--bids-filter-file" in str(error.value)
    assert str(path) in str(error.value)
    assert cli.main([*POSITIONAL, "--bids-filter-file", str(path)]) == EX_USAGE
    err = capsys.readouterr().err
    assert str(path) in err


def test_group_level_options_are_parsed():
    settings = cli.parse_settings(["bids", "out", "group", "--group-model", "fixed", "--participant-label", "01", "02",
                               "-t", "x", "--space", "T1w", "-w", "work", "--nprocs", "2"])
    assert settings.analysis_level == "group"
    assert settings.group_model == "fixed"
    assert settings.participant_label == ("01", "02")


@pytest.mark.parametrize(
    ("level", "option"),
    [
        ("group", ["--smoothing-fwhm", "8"]),
        ("group", ["--smooth", "8"]),  # an abbreviation is the same option
        ("group", ["--contrast", "av=audio-visual"]),
        ("group", ["--session-label", "1"]),
        ("group", ["--confounds", "none"]),
        ("group", ["--noise-model", "ols"]),
        ("group", ["--mask", "m.nii.gz"]),
        ("group", ["--design-dir", "d"]),
        ("group", ["--precision-weighted"]),
        ("group", ["--skip-bids-validation"]),
        ("group", ["--bids-database-dir", "db"]),
        ("participant", ["--group-model", "fixed"]),
    ],
)
def test_an_option_of_the_other_level_is_a_usage_error(level, option):
    with pytest.raises(UsageError) as error:
        cli.parse_settings(["bids", "out", level, *option])
    message = str(error.value)
    assert f"the {level} level" in message
    assert option[0] in message or option[0] == "--smooth" and "--smoothing-fwhm" in message
    assert error.value.exit_code == 64


def test_a_log_message_stays_one_line_whatever_text_it_carries(capsys):
    """A trial_type with a newline split a WARNING in two, so that input could forge log lines."""
    cli._setup_logging(0)
    cli.logger.warning("sub-01: condition %s has no events", "a\n12:00:00 INFO: forged\x00\x1b[31m")
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "\\n12:00:00 INFO: forged\\x00\\x1b[31m" in err and "\x00" not in err


@pytest.mark.parametrize("value", [1.9, True, [1, False], 10 ** 23, -1, [2, 2 ** 63]])
def test_a_filter_value_that_is_no_label_or_whole_number_is_refused(tmp_path, capsys, value):
    """pybids read 1.9 and true as run 1: run-01 alone was fitted, without a word."""
    path = tmp_path / "filters.json"
    path.write_text(json.dumps({"bold": {"run": value}}))
    assert cli.main([*POSITIONAL, "--bids-filter-file", str(path)]) == EX_USAGE
    assert "which no BIDS label or index is" in capsys.readouterr().err
    path.write_text(json.dumps({"bold": {"run": 2.0}}))
    assert parse("--bids-filter-file", str(path)).bids_filters == {"bold": {"run": 2.0}}


def test_an_empty_list_in_a_filter_is_refused(tmp_path, capsys):
    """pybids takes an empty list as no condition: every subject was selected."""
    path = tmp_path / "filters.json"
    path.write_text(json.dumps({"bold": {"subject": []}}))
    assert cli.main([*POSITIONAL, "--bids-filter-file", str(path)]) == EX_USAGE
    assert f"--bids-filter-file {path}: the query of 'bold' gives subject an empty list" in capsys.readouterr().err


@pytest.mark.parametrize("level, given, named", [
    # --n-perm is a group option: named at the participant level, it would lead to another refusal
    ("participant", ["--alpha", "0.01"], "--alpha needs --threshold or --cluster-inference (it is"),
    ("participant", ["--cluster-threshold", "2.5"], "--cluster-threshold needs --cluster-inference (it forms"),
    ("group", ["--alpha", "0.01"], "--alpha needs --threshold"),
])
def test_inference_options_that_change_nothing_alone_are_refused(example_dataset, tmp_path, capsys, level, given,
                                                                  named):
    """Given alone, --alpha and --cluster-threshold changed nothing, with exit 0 (SPEC §4)."""
    from tools import fails

    fails(capsys, [example_dataset.path, tmp_path / "out", level, *given], EX_USAGE, named)
    args = [str(example_dataset.path), str(tmp_path / "out"), level, *given,
            *(["--cluster-inference"] if level == "participant" else ["--n-perm", "10"])]
    assert cli.parse_settings(args).inference.any  # with what they belong to: accepted


def test_a_message_quoting_megabytes_of_input_is_cut_in_its_middle(tmp_path, capsys):
    """A 10 MB value of a filter file was written whole to stderr, in the error that named it."""
    cli._setup_logging(0)
    cli.logger.error("The query %s matches nothing.", "o" * 2_000_000)
    said = capsys.readouterr().err.splitlines()
    assert len(said) == 1 and len(said[0]) < cli.MAX_MESSAGE + 100
    assert "characters left out" in said[0] and said[0].endswith("ooo matches nothing.")
    # the errors of the arguments, written before logging is set up, too
    (tmp_path / "bids").mkdir()
    assert cli.main([str(tmp_path / "bids"), str(tmp_path / "out"), "participant", "--nprocs", "a" * 1_000_000]) == EX_USAGE
    said = [line for line in capsys.readouterr().err.splitlines() if "aaaa" in line]
    assert said and all(len(line) < cli.MAX_MESSAGE + 100 for line in said)
    assert cli.bounded("x" * 10) == "x" * 10


def test_the_cpu_quota_of_cgroup_v2_v1_and_nested_groups_is_found(tmp_path):
    """Only /sys/fs/cgroup/cpu.max was read: a quota of the job's own cgroup (nested v2, as
    systemd and SLURM make them) or of cgroup v1 (docker --cpus on an older host) was not."""
    from bids_fixedfx.arguments import cgroup_cpu_limit

    root, membership = tmp_path / "cgroup", tmp_path / "membership"
    job = root / "slurm" / "job_7"
    job.mkdir(parents=True)
    membership.write_text("0::/slurm/job_7\n")
    assert cgroup_cpu_limit(root, membership) is None
    (root / "slurm" / "cpu.max").write_text("400000 100000\n")
    assert cgroup_cpu_limit(root, membership) == 4.0  # a parent's quota bounds the job
    (job / "cpu.max").write_text("150000 100000\n")
    assert cgroup_cpu_limit(root, membership) == 1.5
    (job / "cpu.max").write_text("max 100000\n")
    assert cgroup_cpu_limit(root, membership) == 4.0
    v1 = tmp_path / "v1"
    (v1 / "cpu,cpuacct" / "docker" / "abc").mkdir(parents=True)
    (v1 / "cpu,cpuacct" / "docker" / "abc" / "cpu.cfs_quota_us").write_text("200000\n")
    (v1 / "cpu,cpuacct" / "docker" / "abc" / "cpu.cfs_period_us").write_text("100000\n")
    membership.write_text("4:memory:/docker/abc\n2:cpu,cpuacct:/docker/abc\n0::/\n")
    assert cgroup_cpu_limit(v1, membership) == 2.0
    (v1 / "cpu,cpuacct" / "docker" / "abc" / "cpu.cfs_quota_us").write_text("-1\n")
    assert cgroup_cpu_limit(v1, membership) is None
    assert cgroup_cpu_limit(tmp_path / "none", tmp_path / "missing") is None


@pytest.mark.parametrize(("values", "said"), [
    (["wm_csf", "trans_x"], r"mixes nilearn load_confounds strategies \(wm_csf\) and column names \(trans_x\)"),
    (["motion", "global_signal", "trans_*"], r"strategies \(motion, global_signal\) and column names \(trans_\*\)"),
    (["trans_x", "none"], "none stands alone"),
    (["simple"], r"--confounds simple is a preset of nilearn's load_confounds_strategy, which --confounds does not "
                 r"take; give strategies, such as those it combines \(--confounds motion high_pass wm_csf, with "
                 r"load_confounds' defaults\)"),
    (["scrubbing", "global_signal"], r"--confounds scrubbing is a preset .* \(--confounds motion high_pass wm_csf "
                                     r"scrub, with load_confounds' defaults\), or column names \(strategies: motion"),
])
def test_confounds_that_mix_kinds_are_refused_by_name(values, said):
    """A strategy among columns was sought as a column ('--confounds wm_csf matches no column');
    so was a preset of load_confounds_strategy, the tutorials' 'simple'."""
    with pytest.raises(UsageError, match=said):
        parse("--confounds", *values)
    assert parse("--confounds", "global_signal", "trans_x").model.confounds == ("global_signal", "trans_x")


@pytest.mark.parametrize("stop", ["SIGTERM", "SIGINT", "SIGHUP", "two SIGTERMs"])
def test_a_stopped_command_removes_what_it_was_writing_and_says_which_signal(tmp_path, stop):
    """SIGTERM (docker stop, scancel, a time limit) or SIGHUP (a closed terminal) killed the
    command outright: it left half a subject's maps staged in OUTPUT_DIR/.bids-fixedfx-tmp; Ctrl-C
    exited 1, not 130; a second SIGTERM interrupted the removal of the staged files."""
    import signal

    from bids_fixedfx.example_data import make_example_dataset

    dataset = make_example_dataset(tmp_path / "bids", n_subjects=2, n_sessions=1, n_runs=3, shape=(20, 20, 20),
                                   n_volumes=80, spaces=("MNI152NLin2009cAsym",))
    output = tmp_path / "out"
    process = subprocess.Popen([sys.executable, "-m", "bids_fixedfx", str(dataset.path), str(output), "participant",
                                "--skip-bids-validation", "--nprocs", "2"],
                               stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONPATH": str(Path(bids_fixedfx.__file__).parents[1])})
    said = []
    for line in process.stderr:  # stopped while it fits and writes: after its first run's line
        said.append(line)
        if "[1/6]" in line:
            sent = getattr(signal, stop.removeprefix("two ").removesuffix("s"))
            process.send_signal(sent)
            if stop.startswith("two"):
                process.send_signal(sent)
            break
    said += process.stderr.readlines()
    assert process.wait(timeout=120) == 128 + sent, "".join(said)
    assert f"Interrupted ({signal.Signals(sent).name})" in said[-1]
    staged = output / ".bids-fixedfx-tmp"
    assert not staged.exists() or not any(staged.iterdir()), sorted(staged.rglob("*"))
    for sidecar in output.rglob("*_statmap.json"):  # what was written is whole: each map beside its sidecar
        assert sidecar.with_name(sidecar.name.replace(".json", ".nii.gz")).is_file()


@pytest.mark.parametrize("given", [None, "2"])
def test_the_command_starts_openblas_on_one_thread_unless_told(given):
    """The command sets OpenBLAS to one thread before the command line loads NumPy (its idle
    threads spun at every start); a value the user set is kept."""
    pytest.importorskip("threadpoolctl")
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")}
    if given is not None:
        env["OPENBLAS_NUM_THREADS"] = given
    code = "\n".join([  # the command line stood in for by one that reports BLAS's threads as it loads
        "import sys, types",
        "cli = types.ModuleType('bids_fixedfx.cli')",
        "def run():",
        "    import numpy, scipy.linalg",
        "    from threadpoolctl import threadpool_info",
        "    print(sorted({i['num_threads'] for i in threadpool_info() if i['internal_api'] == 'openblas'}))",
        "cli.run = run",
        "sys.modules['bids_fixedfx.cli'] = cli",
        "from bids_fixedfx.command import run as command",
        "command()",
    ])
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    if done.stdout.strip() == "[]":
        pytest.skip("NumPy and SciPy are not built with OpenBLAS here")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert done.stdout.strip() == ("[1]" if given is None else f"[{min(int(given), cores)}]")


def test_what_nibabel_says_of_a_header_it_mends_goes_to_the_debug_log():
    """'sizeof_hdr should be 348; set sizeof_hdr to 348' reached stderr through nibabel's own
    handler, in its words, ahead of the app's lines (once per read of the file)."""
    import logging
    import logging.handlers

    from bids_fixedfx import cli

    heard = []

    class Kept(logging.Handler):
        def emit(self, record):
            heard.append(record.getMessage())

    nibabel, ours = logging.getLogger("nibabel.global"), logging.getLogger("bids_fixedfx")
    kept, logged = Kept(), logging.handlers.BufferingHandler(10)
    nibabel.addHandler(kept)
    try:
        cli._setup_logging(1)
        ours.addHandler(logged)
        nibabel.warning("sizeof_hdr should be 348; set sizeof_hdr to 348")
    finally:
        nibabel.removeHandler(kept)
        ours.removeHandler(logged)
    assert heard == []
    assert [(r.levelname, r.getMessage()) for r in logged.buffer] == [
        ("DEBUG", "nibabel: sizeof_hdr should be 348; set sizeof_hdr to 348")]


def test_a_permission_error_without_a_file_while_reading_the_options_is_one_sentence(monkeypatch, capsys):
    """It escaped as a traceback (a semaphore or /dev/shm the user may not use names no file)."""
    from bids_fixedfx import cli

    def refused(argv=None):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(cli, "parse_settings", refused)
    assert cli.main(["bids", "out", "participant"]) == 1
    said = capsys.readouterr().err.strip().splitlines()
    assert len(said) == 1 and "Processing failed: [Errno 1] Operation not permitted" in said[0], said
