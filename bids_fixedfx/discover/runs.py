"""The :class:`Run` and :class:`Selection` records, and building each run from its files.

Every selected BOLD series is matched with its raw BOLD, brain mask, confounds, events
or design file, repetition time and StartTime; the raw series are modelled when no
preprocessed one is found.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputFileError, NoDataError, UsageError
from ..naming import ENTITY_NAMES, run_name
from ..surface import is_surface_file
from .bidsignore import bidsignore_rules, ignored_events
from .matching import _design_for, _events_for, _unmatched_designs
from .metadata import _repetition_time, _start_time, check_hemispheres_agree
from .query import (
    CONFOUNDS_DESCS, CONFOUNDS_SUFFIXES, NIFTI, RunFiles, _extension, _get, _one, _pybids_filters, _run_entities,
    _unpadded,
    filter_hint,
)


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
    density: str | None = None  # den- of a CIFTI series (its outputs carry it)

    @property
    def is_surface(self) -> bool:
        """A GIFTI pair (``bold`` is its left file) or a CIFTI series, not a volume."""
        return is_surface_file(self.bold)

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
class UnprocessedRun:
    """A raw run that has no preprocessed series in a space modelled, and so is left out of
    its subject's maps there (named in the maps' ``RunsLeftOut``)."""

    name: str
    subject: str
    task: str
    session: str | None
    space: str | None


@dataclass(frozen=True)
class Selection:
    """What discovery found: the runs to fit and what a user should know about them."""

    runs: tuple[Run, ...]
    space: str | None  # the space modelled; None for files without one, or when several are
    derivatives: tuple[Path, ...]
    warnings: tuple[str, ...]
    spaces: tuple[str | None, ...] = ()  # every space modelled (volume and surface spaces)
    unprocessed: tuple[UnprocessedRun, ...] = ()  # raw runs without a preprocessed series in a space modelled

    @property
    def subjects(self) -> tuple[str, ...]:
        return tuple(sorted({run.subject for run in self.runs}))


#: Entities that tell apart series of one acquisition, not runs: each echo of a multi-echo
#: run (fMRIPrep writes one combined series), each reconstruction of one run.
ONE_ACQUISITION = ("echo", "rec")


def _no_events(settings, name, entities) -> str:
    """The error of a run with neither events nor a design file: where neither was found, and
    the ``.bidsignore`` rule that hides its events file, if one does."""
    text = f"{name} has no events.tsv in {settings.bids_dir}" + (
        f" and no design file in --design-dir {settings.design_dir}" if settings.design_dir else "")
    hidden = ignored_events(settings.bids_dir, entities)
    if hidden is not None:
        return text + (f": its {hidden[0]} is ignored by the rule {hidden[1]!r} of "
                       f"{settings.bids_dir / '.bidsignore'}; remove the rule to model the run, or leave the run out "
                       "with --bids-filter-file.")
    return text + ("; add its events file, give its design with --design-dir, or leave the run out (--task, "
                   "--bids-filter-file).")


def _refuse_several_per_run(bold_files, what="preprocessed BOLD series in the chosen space"):
    """One BOLD per run: several (res-, cohort-, ...) would be fitted twice, and echoes or
    reconstructions of one run, fitted as runs, would count its volumes several times in
    the fixed effects' degrees of freedom."""
    by_run, by_acquisition = {}, {}
    for bold in bold_files:
        entities = _run_entities(bold)
        by_run.setdefault(entities, []).append(Path(bold.path).name)
        acquisition = tuple((k, v) for k, v in entities if k not in ONE_ACQUISITION)
        by_acquisition.setdefault(acquisition, {}).setdefault(entities, Path(bold.path).name)
    for entities, names in by_run.items():
        if len(names) > 1 and len(set(names)) == 1:  # one name in several derivatives datasets
            roots = sorted(str(_dataset_root(bold.path)) for bold in bold_files if _run_entities(bold) == entities)
            raise UsageError(
                f"{run_name(entities)} has a preprocessed BOLD series in each of several derivatives datasets "
                f"({', '.join(roots)}); choose one with -d (e.g. -d {roots[-1]})."
            )
        if len(names) > 1:
            hint = filter_hint("bold", names)
            raise UsageError(
                f"{run_name(entities)} has several {what} ({', '.join(sorted(names))}); choose one with "
                f"--bids-filter-file{f', e.g. {hint}' if hint else ''}."
            )
    for acquisition, series in by_acquisition.items():
        if len(series) > 1:
            differ = [key for key in ONE_ACQUISITION if len({dict(e).get(key) for e in series}) > 1]
            entity = ENTITY_NAMES[differ[0]]
            values = [dict(e).get(differ[0]) for e in series]
            # a series without the entity (fMRIPrep's optimally combined one beside its echoes) is the one to fit
            value = "null" if None in values else json.dumps(values[0] or "x")
            named = tuple((k, v) for k, v in next(iter(series)) if k not in differ)  # a rec- they share kept
            raise UsageError(
                f"{run_name(named)} has {what} of several {differ[0]}- values "
                f"({', '.join(sorted(series.values()))}): they are one acquisition, not runs to combine; "
                f'fit one with --bids-filter-file, e.g. {{"bold": {{"{entity}": {value}}}}}'
                + (" (fMRIPrep writes one optimally combined series of a multi-echo run)." if differ[0] == "echo" else ".")
            )


def _dataset_root(path) -> Path:
    """The dataset a file is in: the folder above its ``sub-*`` folder."""
    path = Path(path)
    return next((parent.parent for parent in path.parents if parent.name.startswith("sub-")), path.parent)


def _n_volumes(path):
    """The number of volumes of a BOLD series, from its header (checked as the fit will need)."""
    from ..images import check_image

    if is_surface_file(path):
        from ..surface import n_volumes

        return n_volumes(path)
    shape = check_image(path, "BOLD series").shape
    if len(shape) != 4:
        raise InputFileError(f"{path} is not a 4D BOLD series (shape {shape}).")
    return int(shape[3])


@dataclass(frozen=True, eq=False)
class RunQueries:
    """The files that runs are matched with, each kind found with one query (:class:`.query.RunFiles`).

    Attributes
    ----------
    raw, events : RunFiles
    confounds : RunFiles or None
        None when the model takes no confounds.
    masks : dict
        Space (None: no space) -> brain masks in it.
    ignore : list of IgnoreRule
        The raw dataset's ``.bidsignore`` rules, which inherited events obey too.
    """

    raw: RunFiles
    events: RunFiles
    confounds: RunFiles
    masks: dict
    ignore: list


def run_queries(layout, settings, subjects, spaces=()) -> RunQueries:
    """The raw BOLD, events, confounds and (unless ``--mask``) brain masks of the selected
    subjects, each kind found with one query when a run first needs it.

    Parameters
    ----------
    layout : BIDSLayout
    settings : Settings
        Its ``--bids-filter-file`` entries (``mask``, ``confounds``, ``events``), ``--mask``
        and whether the model takes confounds.
    subjects : list of str
    spaces : iterable of str or None
        The volume spaces whose masks are wanted (None: files without space-).

    Returns
    -------
    queries : RunQueries
    """
    from bids.layout import Query

    filters = settings.bids_filters
    confounds = _pybids_filters(filters.get("confounds", {}))
    masks = _pybids_filters(filters.get("mask", {}))
    return RunQueries(
        raw=RunFiles(layout, subjects, scope="raw", suffix="bold", extension=NIFTI),
        events=events_files(layout, settings, subjects),
        # the filter's entities take the place of these (read with --confounds none too: fMRIPrep's
        # non-steady-state columns); fMRIPrep writes one table and one mask for all echoes of a run
        confounds=RunFiles(
            layout, subjects, given=confounds, shared=("echo",), prefer_own=True, scope="derivatives",
            **{"desc": CONFOUNDS_DESCS, "suffix": CONFOUNDS_SUFFIXES, "extension": ".tsv", **confounds},
        ),
        masks={
            space: RunFiles(
                layout, subjects, given=masks, shared=("echo",), prefer_own=True, scope="derivatives",
                **{"suffix": "mask", "desc": "brain", "extension": NIFTI, "datatype": "func",
                   "space": space if space is not None else Query.NONE, **masks},
            )
            for space in spaces
        } if settings.mask is None else {},
        ignore=bidsignore_rules(settings.bids_dir),
    )


def events_files(layout, settings, subjects) -> RunFiles:
    """The selected subjects' events files, with the ``events`` entry of ``--bids-filter-file``
    (an events file without echo- is that of every echo of its run; one with echo-, of that echo).

    Parameters
    ----------
    layout : BIDSLayout
    settings : Settings
    subjects : list of str

    Returns
    -------
    events : RunFiles
    """
    events = _pybids_filters(settings.bids_filters.get("events", {}))
    return RunFiles(layout, subjects, given=events, shared=("echo",), scope="raw",
                    **{"suffix": "events", "extension": ".tsv", **events})


def _one_format(raw_files, settings) -> list:
    """A preprocessed run's raw series (read for its metadata and to match its events), one
    when the dataset holds it in several formats (``.nii`` and ``.nii.gz``, as pybids'
    synthetic data does): the ``bold`` filter's extension, else ``.nii.gz``."""
    paths = sorted(str(getattr(f, "path", f)) for f in raw_files)
    if len(paths) < 2 or len({p[:len(p) - len(_extension(p))] for p in paths}) > 1:  # not one name in formats
        return paths
    wanted = settings.bids_filters.get("bold", {}).get("extension")
    wanted = [wanted] if isinstance(wanted, str) else list(wanted or [])
    for extension in (*wanted, ".nii.gz"):
        kept = [p for p in paths if p.endswith("." + extension.lstrip("."))]
        if kept:
            return kept[:1]
    return paths[:1]


def _one_series(raw_paths) -> list:
    """The raw series a preprocessed run's metadata and events are read beside: one, when the
    run's raw files are the echoes or parts (``part-mag``, ``part-phase``) of one acquisition,
    which fMRIPrep combines into one preprocessed series (their sidecars share its timing)."""
    if len(raw_paths) < 2:
        return raw_paths
    stems = {re.sub(r"_(echo|part)-[a-zA-Z0-9]+", "", Path(p).name) for p in raw_paths}
    return sorted(raw_paths)[:1] if len(stems) == 1 else raw_paths


def _preprocessed_run(layout, queries, settings, bold, space, warnings, unstated=None, disagreeing=None):
    entities = _run_entities(bold)
    name = run_name(entities)
    raw = _one(_one_series(_one_format(queries.raw.of(entities), settings)), "raw BOLD", name, kind="bold")
    mask = None
    surface = is_surface_file(bold.path)
    if surface and settings.mask is not None:
        raise UsageError(
            f"--mask {settings.mask} is a volume, and {name} is a surface or CIFTI series (masked by "
            "its own data: vertices with non-finite or constant series are left out); leave --mask out "
            "or choose volume spaces only."
        )
    if settings.mask is None and not surface:
        masks = queries.masks[space].of(entities)
        # Several masks (res-, den- variants): take the one on the BOLD's own entities.
        same = [m for m in masks if _grid_entities(m) == _grid_entities(bold)]
        masks = same or masks
        if len(masks) > 1:  # a mask in two formats: the BOLD's (.nii.gz beside .nii.gz)
            masks = [m for m in masks if _extension(m.path) == _extension(bold.path)] or masks
        mask = _one([m.path for m in masks], "brain mask", name, kind="mask")
        if mask is None and settings.bids_filters.get("mask"):  # the filter's mask, not nilearn's, was asked for
            raise NoDataError(_filter_matches_none(settings, "mask", name))
        if mask is None:
            warnings.append(
                f"{name} has no desc-brain_mask in the derivatives, so nilearn computed a mask "
                "from the BOLD; pass --mask to use your own."
            )
    confounds = queries.confounds.of(entities)
    design = _design_for(settings.design_dir, entities)
    events = (_events_for(queries.events, layout, entities, raw, name, bool(settings.bids_filters.get("events")),
                          queries.ignore)
              if design is None else None)
    if design is None and events is None and settings.bids_filters.get("events"):
        raise NoDataError(_filter_matches_none(settings, "events", name))
    if design is None and events is None:
        raise NoDataError(_no_events(settings, name, entities))
    if design is None and (settings.model.confounds or len(confounds) < 2):
        confound_file = _one(confounds, "confounds", name, kind="confounds")
    else:  # --confounds none reads it only for the volumes fMRIPrep flags as non-steady-state: of several, none
        confound_file = None
    if design is None and confound_file is None and settings.bids_filters.get("confounds"):
        raise NoDataError(_filter_matches_none(settings, "confounds", name))
    if design is None and settings.model.confounds_given and settings.model.confounds and confound_file is None:
        raise NoDataError(
            f"{name} has no desc-confounds_timeseries.tsv in the derivatives; "
            "pass --confounds none to model it without confounds."
        )
    tr = _repetition_time(layout, [Path(bold.path), raw], name, disagreeing)
    if surface:
        check_hemispheres_agree(layout, bold.path, tr)
    return Run(
        entities=entities, space=space, bold=Path(bold.path),
        mask=Path(mask) if mask else None, events=events, confounds=confound_file,
        design=design, raw_bold=raw, tr=tr, n_volumes=_n_volumes(bold.path), preprocessed=True,
        start_time=_start_time(layout, Path(bold.path), tr, unstated),
        density=str(bold.get_entities()["den"]) if surface and bold.get_entities().get("den") else None,
    )


def _filter_matches_none(settings, kind, name) -> str:
    """The message for a ``--bids-filter-file`` query of a run's files that finds none of them."""
    source = settings.selected_by.get("bids_filters", "--bids-filter-file")
    return (f"The {source} query of {kind!r} {json.dumps(settings.bids_filters[kind])} matches no {kind} file of "
            f"{name}; correct it, or leave the {kind!r} entry out.")


def _grid_entities(bids_file):
    """A file's entities but those of its kind (pybids' and the name-only ones: ``cohort-``)."""
    from .query import name_only_entities

    ignored = ("desc", "suffix", "extension", "datatype")
    return {**{k: str(v) for k, v in bids_file.get_entities().items() if k not in ignored},
            **name_only_entities(bids_file.path)}


#: What a derivatives dataset of preprocessed BOLD holds (volumes, GIFTI pairs, CIFTI).
PREPROCESSED_PATTERNS = ("*_desc-preproc_bold.nii*", "*_bold.func.gii", "*_bold.dtseries.nii")
#: fMRIPrep's names before version 1.4 (before BIDS Derivatives): not read.
LEGACY_PATTERN = "*_bold_space-*_preproc.nii*"


def holds_preprocessed_bold(root) -> bool:
    """Whether a derivatives dataset holds any preprocessed BOLD series, in any subject's
    folder (the search stops at the first found)."""
    return any(next(Path(root).glob(f"sub-*/**/{pattern}"), None) is not None for pattern in PREPROCESSED_PATTERNS)


def other_descs(root, limit: int = 200) -> list[str]:
    """The ``desc-`` labels of a derivatives dataset's volume BOLD series other than ``preproc``
    (fMRIPrep's ``smoothAROMAnonaggr``), from its first ``limit`` series."""
    descs = {}
    for number, path in enumerate(Path(root).glob("sub-*/**/*_desc-*_bold.nii*")):
        if number >= limit:
            break
        desc = re.search(r"_desc-([a-zA-Z0-9]+)_", path.name)
        if desc and desc.group(1) != "preproc":
            descs[desc.group(1)] = None
    return list(descs)


def unmodelled_runs(layout, query, runs, spaces) -> tuple[list[str], list[UnprocessedRun]]:
    """Warnings for the selected raw BOLD runs that have no preprocessed series in a
    chosen space, and so are not modelled there; and those runs, by space.

    Parameters
    ----------
    layout : BIDSLayout
    query : dict
        The selection's subjects, sessions and tasks.
    runs : sequence of Run
        The runs selected, in every chosen space.
    spaces : sequence of str or None
        The chosen spaces.
    """
    def one_acquisition(entities):  # a multi-echo run's echoes are one preprocessed series
        return run_name(tuple((key, value) for key, value in entities if key != "echo"))

    def key(entities):  # run-01 in the raw data is run-1 in the derivatives
        return one_acquisition(tuple((name, _unpadded(name, value)) for name, value in entities))

    modelled = {}
    for run in runs:
        modelled.setdefault(run.space, set()).add(key(run.entities))
    raw = _get(layout, scope="raw", return_type="object", suffix="bold", extension=NIFTI, **query)
    found, unprocessed = [], []
    for name, entities in sorted({one_acquisition(e): e for e in map(_run_entities, raw)}.items()):
        missing = [space for space in spaces if key(entities) not in modelled.get(space, set())]
        if missing:
            _check_no_unreadable_series(layout, entities, name, missing)
            found.append(f"{name} has a raw BOLD series but no preprocessed one in space "
                         f"{', '.join(space or 'none' for space in missing)} in the derivatives, so it is not modelled "
                         "there; preprocess it, or check the derivatives.")
            values = dict(entities)
            unprocessed += [UnprocessedRun(name, values["sub"], values["task"], values.get("ses"), space)
                            for space in missing]
    return found, unprocessed


def _check_no_unreadable_series(layout, entities, name, spaces) -> None:
    """Refuse a run whose preprocessed series in one of ``spaces`` is there under its name but
    is no regular file (a folder, a pipe, a link to a file not there): pybids indexes files
    only, so the run was left out as if unprocessed."""
    wanted = {key: _unpadded(key, value) for key, value in entities if key != "echo"}
    folder = f"sub-{wanted['sub']}/" + (f"ses-{wanted['ses']}/" if "ses" in wanted else "") + "func"
    for root in {Path(d.root) for d in layout.derivatives.values()} if layout.derivatives else ():
        for path in (root / folder).glob(f"sub-{wanted['sub']}_*_desc-preproc_bold.nii*"):
            parts = dict(part.split("-", 1) for part in path.name.split(".")[0].split("_") if "-" in part)
            if ({key: _unpadded(key, parts.get(key)) for key in wanted} == wanted and parts.get("space") in spaces
                    and not path.is_file()):
                raise InputFileError(f"{path} is not a regular file (a folder, a pipe, or a link to a file that is "
                                     f"not there, as a DataLad dataset's file not yet fetched), so {name} cannot be "
                                     "read; replace it with the preprocessed series, or fetch it.")


def _holds_legacy_bold(root) -> bool:
    """Whether a folder holds BOLD series named as fMRIPrep named them before version 1.4."""
    return next(Path(root).glob(f"sub-*/**/{LEGACY_PATTERN}"), None) is not None


def _select_raw_runs(layout, settings, query, bold_filters, derivatives, warnings):
    raw = _get(layout, scope="raw", return_type="object",
               **{"suffix": "bold", "extension": NIFTI, **query, **bold_filters})
    if not raw:
        raise NoDataError(
            f"No BOLD series matches the selection (subjects {', '.join(query['subject'])}, "
            f"tasks {', '.join(query['task'])}"
            + (f", {settings.selected_by.get('session_label', '--session-label')} {' '.join(query['session'])}"
               if query.get("session") else "")
            + (f", {settings.selected_by.get('bids_filters', '--bids-filter-file')} query "
               f"{json.dumps(settings.bids_filters.get('bold'))}" if bold_filters else "")
            + f") in {settings.bids_dir}."
        )
    for root in derivatives:  # fMRIPrep's AROMA series, a denoising pipeline's: chosen, not the raw instead
        descs = [] if holds_preprocessed_bold(root) else other_descs(root)
        if descs:
            raise NoDataError(
                f"{root} holds BOLD series of {', '.join(f'desc-{d}' for d in descs)} but none of desc-preproc; "
                f"choose them with --bids-filter-file holding {json.dumps({'bold': {'desc': descs[0]}})} rather "
                "than model the raw series."
            )
    spaces = [space for space in settings.spaces if space.lower() != "none"]
    if spaces:
        raise NoDataError(
            f"{settings.selected_by.get('space', '--space')} {spaces[0]} matches no preprocessed BOLD: "
            f"no derivatives with desc-preproc BOLD were found"
            f"{' in ' + ', '.join(map(str, derivatives)) if derivatives else ''}."
        )
    legacy = [root for root in derivatives if _holds_legacy_bold(root)]
    if not settings.derivatives:  # fMRIPrep < 1.4 wrote no dataset_description.json: its folder is skipped
        from .derivatives import skipped_derivatives

        legacy += [root for root in skipped_derivatives(settings.bids_dir, settings.output_dir, settings.work_dir)
                   if _holds_legacy_bold(root)]
    if legacy:
        raise NoDataError(
            f"{', '.join(map(str, legacy))} holds BOLD series named as fMRIPrep named them before version 1.4 "
            "(*_bold_space-<space>_preproc.nii.gz), which this app does not read; rerun fMRIPrep, or rename them "
            "as BIDS Derivatives name them (*_space-<space>_desc-preproc_bold.nii.gz), rather than model the raw series."
        )
    holding = [root for root in derivatives if holds_preprocessed_bold(root)]
    if holding:  # other subjects' (or tasks', sessions') preprocessed series: no raw stand-in for these
        raise NoDataError(
            f"No preprocessed BOLD of the selection (sub-{', sub-'.join(query['subject'])}, "
            f"task {', '.join(query['task'])}) is in {', '.join(map(str, holding))}, which holds preprocessed "
            "series of other data; preprocess it (fMRIPrep) or leave it out of the selection (its raw series are "
            "modelled only where no derivatives hold any preprocessed BOLD)."
        )
    if not settings.derivatives:
        from .derivatives import skipped_derivatives

        for root in skipped_derivatives(settings.bids_dir, settings.output_dir, settings.work_dir):
            if holds_preprocessed_bold(root):  # fMRIPrep's outputs copied without their description
                raise NoDataError(
                    f"{root} holds preprocessed BOLD but no dataset_description.json, so it is not read as "
                    "derivatives; add one to it (as fMRIPrep writes, with \"DatasetType\": \"derivative\") "
                    "rather than model the raw series."
                )
            nested = [child for child in sorted(root.iterdir()) if (child / "dataset_description.json").is_file()
                      and holds_preprocessed_bold(child)]
            if nested:  # fMRIPrep 20's <output>/fmriprep beside <output>/freesurfer
                raise NoDataError(
                    f"{nested[0]} holds preprocessed BOLD one folder below BIDS_DIR/derivatives, where it is not "
                    f"looked for; pass -d {nested[0]} rather than model the raw series."
                )
    else:
        raise NoDataError(
            f"-d {' '.join(map(str, settings.derivatives))} holds no preprocessed BOLD of the selection "
            "(*_desc-preproc_bold.nii.gz, or GIFTI or CIFTI series); give the derivatives of fMRIPrep, or leave -d "
            "out to model the raw series."
        )
    warnings.append(
        "No preprocessed BOLD was found, so the raw BOLD series were modelled "
        + ("(unpreprocessed, within --mask); " if settings.mask is not None
           else "(unpreprocessed, with masks computed by nilearn); ")
        + "run fMRIPrep first or pass -d."
    )
    _refuse_several_per_run(raw, "raw BOLD series")
    runs = []
    events_found, ignore = events_files(layout, settings, query["subject"]), bidsignore_rules(settings.bids_dir)
    for bold in sorted(raw, key=lambda f: f.path):
        entities = _run_entities(bold)
        name = run_name(entities)
        design = _design_for(settings.design_dir, entities)
        events = (_events_for(events_found, layout, entities, Path(bold.path), name,
                              bool(settings.bids_filters.get("events")), ignore)
                  if design is None else None)
        if design is None and events is None and settings.bids_filters.get("events"):
            raise NoDataError(_filter_matches_none(settings, "events", name))
        if design is None and events is None:
            raise NoDataError(_no_events(settings, name, entities))
        runs.append(Run(
            entities=entities, space=None, bold=Path(bold.path), mask=None, events=events,
            confounds=None, design=design, raw_bold=Path(bold.path),
            tr=_repetition_time(layout, [Path(bold.path)], name),
            n_volumes=_n_volumes(bold.path), preprocessed=False,
        ))
    warnings += _unmatched_designs(settings.design_dir, runs)
    return Selection(tuple(runs), None, tuple(derivatives), tuple(warnings))
