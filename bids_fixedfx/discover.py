"""Discovery: from a BIDS dataset and its derivatives to a list of :class:`Run` records.

pybids indexes the raw dataset and the preprocessed derivatives; every selected
preprocessed BOLD series is matched with its events, confounds, brain mask and
repetition time (from the JSON sidecars, with BIDS inheritance).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from .errors import InvalidBIDSError, NoDataError, UsageError
from .settings import DEFAULT_SPACE

logger = logging.getLogger("bids_fixedfx")

#: The entities of a BOLD series that name a run, in BIDS order: (pybids name, key).
RUN_ENTITIES = (
    ("subject", "sub"),
    ("session", "ses"),
    ("task", "task"),
    ("acquisition", "acq"),
    ("ceagent", "ce"),
    ("reconstruction", "rec"),
    ("direction", "dir"),
    ("run", "run"),
    ("echo", "echo"),
)
NIFTI = [".nii.gz", ".nii"]
CONFOUNDS_DESCS = ["confounds"]
CONFOUNDS_SUFFIXES = ["timeseries", "regressors"]


def run_name(entities) -> str:
    """A run's (key, value) entities as a file-name stem, e.g. ``sub-01_task-x_run-01``."""
    return "_".join(f"{key}-{value}" for key, value in entities)


@dataclass(frozen=True)
class Run:
    """One BOLD series to fit, with every file its model needs.

    ``entities`` are the run's BIDS entities in BIDS order as (key, value) pairs,
    values exactly as in the input file name (``run-01`` stays ``01``).
    """

    entities: tuple[tuple[str, str], ...]
    space: str | None
    bold: Path
    mask: Path | None
    events: Path | None
    confounds: Path | None
    design: Path | None
    raw_bold: Path | None
    tr: float
    n_volumes: int
    preprocessed: bool
    start_time: float = 0.0  # StartTime of slice-timing corrected data: where each frame is sampled

    @property
    def subject(self) -> str:
        return dict(self.entities)["sub"]

    @property
    def session(self) -> str | None:
        return dict(self.entities).get("ses")

    @property
    def task(self) -> str:
        return dict(self.entities)["task"]

    @property
    def name(self) -> str:
        """The run's entities as a file-name stem, e.g. ``sub-01_task-x_run-01``."""
        return run_name(self.entities)


@dataclass(frozen=True)
class Selection:
    """What discovery found: the runs to fit and what a user should know about them."""

    runs: tuple[Run, ...]
    space: str | None
    derivatives: tuple[Path, ...]
    warnings: tuple[str, ...]

    @property
    def subjects(self) -> tuple[str, ...]:
        return tuple(sorted({run.subject for run in self.runs}))


def validator_command() -> str | None:
    """Return the path of the official BIDS validator, or None when it is not installed."""
    beside = Path(sys.executable).parent / "bids-validator-deno"
    return shutil.which("bids-validator-deno") or (str(beside) if beside.is_file() else None)


def validate_input_dir(bids_dir: Path) -> None:
    """Run the official BIDS validator on the input dataset.

    Parameters
    ----------
    bids_dir : Path
        The root of the BIDS dataset.

    Raises
    ------
    InvalidBIDSError
        When the validator reports an error; the message names the first file at fault.
    """
    command = validator_command()
    if command is None:
        logger.warning(
            "bids-validator-deno is not installed, so %s was not validated; "
            "install it (pip install bids-validator-deno) or pass --skip-bids-validation.",
            bids_dir,
        )
        return
    logger.info("Validating %s with the BIDS validator", bids_dir)
    done = subprocess.run(
        [command, "--format", "json", "--ignoreWarnings", str(bids_dir)],
        capture_output=True, text=True, check=False,
    )
    errors = _validator_errors(done.stdout)
    if errors is None:
        if done.returncode != 0:
            raise InvalidBIDSError(
                f"The BIDS validator failed on {bids_dir}: "
                f"{(done.stderr or done.stdout).strip().splitlines()[-1:]}."
            )
        return
    if errors:
        code, location, count = errors[0][0], errors[0][1], len(errors)
        raise InvalidBIDSError(
            f"{bids_dir} is not valid BIDS: {code} at {location or 'the dataset root'} "
            f"({count} error{'s' if count > 1 else ''}; run bids-validator-deno {bids_dir} "
            f"for details, or pass --skip-bids-validation)."
        )


def _validator_errors(stdout):
    try:
        report = json.loads(stdout)
    except json.JSONDecodeError:
        return None
    issues = report.get("issues", {}).get("issues", [])
    return [
        (issue.get("code", "ERROR"), issue.get("location", ""))
        for issue in issues
        if issue.get("severity") == "error"
    ]


def find_derivatives(bids_dir: Path, output_dir: Path) -> tuple[Path, ...]:
    """List the derivative datasets under ``BIDS_DIR/derivatives`` (not our own output).

    Parameters
    ----------
    bids_dir, output_dir : Path

    Returns
    -------
    paths : tuple of Path
        ``BIDS_DIR/derivatives`` itself if it has a ``dataset_description.json``,
        else every folder under it that has one.
    """
    root = bids_dir / "derivatives"
    if not root.is_dir():
        return ()

    def is_output(path):  # the same folder, even when bound at two places in a container
        try:
            return output_dir.exists() and os.path.samefile(path, output_dir)
        except OSError:
            return False

    if (root / "dataset_description.json").is_file() and not is_output(root):
        return (root,)
    return tuple(
        path
        for path in sorted(root.iterdir())
        if (path / "dataset_description.json").is_file() and not is_output(path)
    )


def check_bids_dir(bids_dir: Path) -> None:
    """Refuse a BIDS_DIR that does not exist or is not a BIDS dataset."""
    if not bids_dir.is_dir():
        raise UsageError(f"BIDS_DIR {bids_dir} is not a directory.")
    if not (bids_dir / "dataset_description.json").is_file():
        raise NoDataError(
            f"BIDS_DIR {bids_dir} is not a BIDS dataset: it has no dataset_description.json."
        )


def load_layout(bids_dir: Path, derivatives: tuple[Path, ...]):
    """Index the raw dataset and its derivatives with pybids."""
    from bids import BIDSLayout

    for path in derivatives:
        if not (path / "dataset_description.json").is_file():
            raise NoDataError(
                f"--derivatives {path} is not a derivatives dataset: "
                "it has no dataset_description.json."
            )
    logger.info("Indexing %s%s", bids_dir, "".join(f" + {p}" for p in derivatives))
    return BIDSLayout(bids_dir, validate=False, derivatives=list(derivatives) or False)


def _pybids_filters(query: dict) -> dict:
    """Translate fMRIPrep-style filter values (null, "*") into pybids queries."""
    from bids.layout import Query

    translated = {}
    for key, value in query.items():
        if value is None:
            value = Query.NONE
        elif value == "*":
            value = Query.ANY
        translated[key] = value
    return translated


def _run_entities(bids_file) -> tuple[tuple[str, str], ...]:
    entities = bids_file.get_entities()
    return tuple(
        (key, str(entities[name])) for name, key in RUN_ENTITIES if entities.get(name) is not None
    )


def _match_query(entities: tuple[tuple[str, str], ...]) -> dict:
    """A pybids query for the files of one run: its entities, the absent ones absent."""
    from bids.layout import Query

    given = dict(entities)
    query = {}
    for name, key in RUN_ENTITIES:
        if key in given:
            value = given[key]
            query[name] = int(value) if name in ("run", "echo") and value.isdigit() else value
        elif name != "echo":
            query[name] = Query.NONE
    return query


def _one(files, what, run_name):
    if not files:
        return None
    if len(files) > 1:
        names = ", ".join(sorted(Path(f).name for f in files))
        raise NoDataError(f"{run_name} has several {what} files ({names}); narrow with --bids-filter-file.")
    return Path(files[0])


def select_runs(settings) -> Selection:
    """Find every run to fit, as selected by the settings.

    Parameters
    ----------
    settings : Settings

    Returns
    -------
    selection : Selection

    Raises
    ------
    NoDataError
        No subject, task, space or run matches, or a run lacks its events or TR.
    UsageError
        Several spaces are present and none was chosen.
    """
    from bids.layout import Query

    derivatives = settings.derivatives or find_derivatives(settings.bids_dir, settings.output_dir)
    layout = load_layout(settings.bids_dir, derivatives)
    warnings = []
    filters = settings.bids_filters
    bold_filters = _pybids_filters(filters.get("bold", {}))

    subjects = layout.get_subjects()
    if not subjects:
        raise NoDataError(f"{settings.bids_dir} has no sub-* folders with data.")
    if settings.participant_label:
        missing = [s for s in settings.participant_label if s not in subjects]
        if len(missing) == len(settings.participant_label):
            raise NoDataError(
                f"No subject matches --participant-label {' '.join(missing)} "
                f"(the dataset has {', '.join('sub-' + s for s in subjects)})."
            )
        for label in missing:
            warnings.append(f"--participant-label {label} matches no subject and was ignored.")
        subjects = [s for s in subjects if s in settings.participant_label]
    query = {"subject": subjects}
    if settings.session_label:
        sessions = layout.get_sessions(subject=subjects)
        if not set(settings.session_label) & set(sessions):
            raise NoDataError(
                f"No session matches --session-label {' '.join(settings.session_label)} "
                f"(the selected subjects have {', '.join(sessions) or 'no sessions'})."
            )
        query["session"] = list(settings.session_label)

    tasks = _select_tasks(layout, settings, query)
    query["task"] = list(tasks)

    preproc, unfiltered = [], []
    if derivatives:
        preproc = layout.get(
            scope="derivatives", suffix="bold", extension=NIFTI, return_type="object",
            **{"desc": "preproc", **query, **bold_filters},
        )
        unfiltered = preproc or layout.get(
            scope="derivatives", suffix="bold", extension=NIFTI, desc="preproc", **query
        )
    if unfiltered and not preproc:
        raise NoDataError(
            f"The --bids-filter-file query {json.dumps(filters.get('bold'))} matches none of the "
            f"preprocessed BOLD series of sub-{', sub-'.join(query['subject'])}."
        )
    if not preproc:
        return _select_raw_runs(layout, settings, query, bold_filters, derivatives, warnings)

    spaces = sorted({f.get_entities().get("space") or "none" for f in preproc})
    space = _choose_space(settings.space, spaces, preproc)
    space_query = Query.NONE if space is None else space
    preproc = [f for f in preproc if f.get_entities().get("space", Query.NONE) == space_query]

    _refuse_several_per_run(preproc)
    runs = [
        _preprocessed_run(layout, settings, bold, space, warnings)
        for bold in sorted(preproc, key=lambda f: f.path)
    ]
    warnings += _unmatched_designs(settings.design_dir, runs)
    return Selection(tuple(runs), space, tuple(derivatives), tuple(warnings))


def _refuse_several_per_run(bold_files):
    """One preprocessed BOLD per run: several (res-, cohort-, ...) would be fitted twice."""
    by_run = {}
    for bold in bold_files:
        by_run.setdefault(_run_entities(bold), []).append(Path(bold.path).name)
    for entities, names in by_run.items():
        if len(names) > 1:
            name = run_name(entities)
            raise UsageError(
                f"{name} has several preprocessed BOLD series in the chosen space "
                f"({', '.join(sorted(names))}); choose one with --bids-filter-file, "
                'e.g. {"bold": {"resolution": "2"}}.'
            )


def _unmatched_designs(design_dir, runs):
    """Warnings for files of --design-dir that name a selected subject and task but no run."""
    if design_dir is None:
        return []
    used = {run.design for run in runs}
    subjects = {run.subject for run in runs}
    tasks = {run.task for run in runs}
    return [
        f"--design-dir file {path.name} matches no selected run (check its entities, "
        "e.g. ses- and run-), so it was not used."
        for entities, path in _design_files(design_dir)
        if path not in used and entities.get("subject") in subjects and entities.get("task") in tasks
    ]


def _select_tasks(layout, settings, query):
    # events files may be inherited from the dataset root, so they are not filtered by subject
    with_events = set(layout.get_tasks(suffix="events", extension=".tsv", scope="raw"))
    if settings.design_dir is not None:
        with_events |= {
            ent["task"] for ent, _ in _design_files(settings.design_dir) if "task" in ent
        }
    all_tasks = set(layout.get_tasks(suffix="bold", **query))
    if settings.task:
        unknown = [t for t in settings.task if t not in all_tasks]
        if unknown:
            raise NoDataError(
                f"--task {unknown[0]} is not in the dataset "
                f"(tasks: {', '.join(sorted(all_tasks)) or 'none'})."
            )
        return tuple(settings.task)
    if not with_events:
        raise NoDataError(
            f"No task of the selected data has events.tsv files "
            f"(tasks: {', '.join(sorted(all_tasks)) or 'none'}); give --design-dir."
        )
    return tuple(sorted(with_events & all_tasks) or sorted(with_events))


def _choose_space(requested, spaces, preproc):
    if requested is not None:
        wanted = "none" if requested.lower() == "none" else requested
        if wanted not in spaces:
            raise NoDataError(
                f"--space {requested} matches no preprocessed BOLD "
                f"(spaces present: {', '.join(spaces)})."
            )
        return None if wanted == "none" else wanted
    if DEFAULT_SPACE in spaces:
        return DEFAULT_SPACE
    if len(spaces) == 1:
        return None if spaces[0] == "none" else spaces[0]
    raise UsageError(
        f"The preprocessed BOLD files come in several spaces ({', '.join(spaces)}); "
        "choose one with --space."
    )


def _repetition_time(layout, files, run_name):
    """The TR from the JSON sidecars: the derivative's, else the raw file's (inherited)."""
    for path in files:
        if path is None:
            continue
        tr = layout.get_metadata(str(path)).get("RepetitionTime")
        if tr is not None:
            try:
                tr = float(tr)
            except (TypeError, ValueError):
                raise NoDataError(f"RepetitionTime of {path.name} is not a number: {tr!r}.") from None
            if tr <= 0:
                raise NoDataError(f"RepetitionTime of {path.name} must be positive, not {tr}.")
            return tr
    raise NoDataError(
        f"No RepetitionTime for {run_name}: none of the JSON sidecars of "
        f"{', '.join(str(p) for p in files if p is not None)} (or their inherited ones) has it."
    )


def _n_volumes(path):
    import nibabel as nib

    shape = nib.load(str(path)).shape
    if len(shape) != 4:
        raise NoDataError(f"{path} is not a 4D BOLD series (shape {shape}).")
    return int(shape[3])


def _preprocessed_run(layout, settings, bold, space, warnings):
    from bids.layout import Query

    entities = _run_entities(bold)
    name = run_name(entities)
    match = _match_query(entities)
    raw = _one(
        layout.get(scope="raw", suffix="bold", extension=NIFTI, **match),
        "raw BOLD", name,
    )
    mask = None
    if settings.mask is None:
        mask_query = dict(match)
        mask_query.update(_pybids_filters(settings.bids_filters.get("mask", {})))
        masks = layout.get(
            scope="derivatives", suffix="mask", desc="brain", extension=NIFTI,
            space=space if space is not None else Query.NONE, datatype="func", **mask_query,
        )
        # Several masks (res-, den- variants): take the one on the BOLD's own entities.
        same = [m for m in masks if _grid_entities(m) == _grid_entities(bold)]
        masks = same or masks
        mask = _one([m.path for m in masks], "brain mask", name)
        if mask is None:
            warnings.append(
                f"{name} has no desc-brain_mask in the derivatives, so nilearn computed a mask "
                "from the BOLD; pass --mask to use your own."
            )
    confound_query = dict(match)
    confound_query.update(_pybids_filters(settings.bids_filters.get("confounds", {})))
    confounds = []
    if settings.model.confounds:
        confounds = layout.get(
            scope="derivatives", desc=CONFOUNDS_DESCS, suffix=CONFOUNDS_SUFFIXES,
            extension=".tsv", **confound_query,
        )
    design = _design_for(settings.design_dir, entities)
    events = _events_for(layout, settings, match, raw, name) if design is None else None
    if design is None and events is None:
        raise NoDataError(
            f"{name} has no events.tsv in {settings.bids_dir}"
            + (f" and no design file in --design-dir {settings.design_dir}." if settings.design_dir else ".")
        )
    confound_file = _one(confounds, "confounds", name) if design is None else None
    if design is None and settings.model.confounds_given and settings.model.confounds and confound_file is None:
        raise NoDataError(
            f"{name} has no desc-confounds_timeseries.tsv in the derivatives; "
            "pass --confounds none to model it without confounds."
        )
    tr = _repetition_time(layout, [Path(bold.path), raw], name)
    return Run(
        entities=entities, space=space, bold=Path(bold.path),
        mask=Path(mask) if mask else None, events=events, confounds=confound_file,
        design=design, raw_bold=raw, tr=tr, n_volumes=_n_volumes(bold.path), preprocessed=True,
        start_time=_start_time(layout, Path(bold.path), tr),
    )


def _start_time(layout, bold, tr):
    """fMRIPrep's StartTime of slice-timing corrected series (0 when absent), as nilearn's
    ``first_level_from_bids`` reads it to set ``slice_time_ref``."""
    value = layout.get_metadata(str(bold)).get("StartTime")
    if value is None:
        return 0.0
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise NoDataError(f"StartTime of {bold.name} is not a number: {value!r}.") from None
    if not 0 <= value <= tr:
        raise NoDataError(f"StartTime of {bold.name} ({value} s) is not within the TR ({tr} s).")
    return value


def _grid_entities(bids_file):
    ignored = ("desc", "suffix", "extension", "datatype")
    return {k: str(v) for k, v in bids_file.get_entities().items() if k not in ignored}


def _events_for(layout, settings, match, raw, name):
    query = {k: v for k, v in match.items() if k != "echo"}
    query.update(_pybids_filters(settings.bids_filters.get("events", {})))
    events = layout.get(scope="raw", suffix="events", extension=".tsv", **query)
    if not events and raw is not None:  # events inherited from a higher level
        nearest = layout.get_nearest(
            str(raw), suffix="events", extension=".tsv", strict=True,
            ignore_strict_entities=["suffix", "extension", "echo", "datatype"],
        )
        events = [nearest] if nearest else []
    return _one(events, "events", name)


def _select_raw_runs(layout, settings, query, bold_filters, derivatives, warnings):
    raw = layout.get(
        scope="raw", suffix="bold", extension=NIFTI, return_type="object", **query, **bold_filters
    )
    if not raw:
        raise NoDataError(
            f"No BOLD series matches the selection (subjects {', '.join(query['subject'])}, "
            f"tasks {', '.join(query['task'])}"
            + (f", --bids-filter-file query {json.dumps(settings.bids_filters.get('bold'))}" if bold_filters else "")
            + f") in {settings.bids_dir}."
        )
    if settings.space not in (None, "none"):
        raise NoDataError(
            f"--space {settings.space} matches no preprocessed BOLD: "
            f"no derivatives with desc-preproc BOLD were found"
            f"{' in ' + ', '.join(map(str, derivatives)) if derivatives else ''}."
        )
    warnings.append(
        "No preprocessed BOLD was found, so the raw BOLD series were modelled "
        "(unpreprocessed, with masks computed by nilearn); run fMRIPrep first or pass -d."
    )
    runs = []
    for bold in sorted(raw, key=lambda f: f.path):
        entities = _run_entities(bold)
        name = run_name(entities)
        match = _match_query(entities)
        design = _design_for(settings.design_dir, entities)
        events = _events_for(layout, settings, match, Path(bold.path), name) if design is None else None
        if design is None and events is None:
            raise NoDataError(f"{name} has no events.tsv in {settings.bids_dir}.")
        runs.append(Run(
            entities=entities, space=None, bold=Path(bold.path), mask=None, events=events,
            confounds=None, design=design, raw_bold=Path(bold.path),
            tr=_repetition_time(layout, [Path(bold.path)], name),
            n_volumes=_n_volumes(bold.path), preprocessed=False,
        ))
    warnings += _unmatched_designs(settings.design_dir, runs)
    return Selection(tuple(runs), None, tuple(derivatives), tuple(warnings))


def _design_files(design_dir):
    """Every design file in ``design_dir`` with its entities (run numbers unpadded)."""
    from bids.layout import parse_file_entities

    if not design_dir.is_dir():
        raise NoDataError(f"--design-dir {design_dir} is not a directory.")
    files = []
    for path in sorted(design_dir.iterdir()):
        if path.name.endswith(("_design.tsv", "_design.npz")) or path.suffix in (".tsv", ".npz"):
            entities = parse_file_entities("/" + path.name)
            entities = {
                name: _unpadded(name, value)
                for name, value in entities.items()
                if name not in ("suffix", "extension")
            }
            files.append((entities, path))
    return files


def _unpadded(name, value):
    value = str(value)
    return str(int(value)) if name in ("run", "echo") and value.isdigit() else value


def _design_for(design_dir, entities):
    if design_dir is None:
        return None
    names = {key: name for name, key in RUN_ENTITIES}
    wanted = {names[key]: _unpadded(names[key], value) for key, value in entities}
    for file_entities, path in _design_files(design_dir):
        if file_entities == wanted:
            return path
    return None
