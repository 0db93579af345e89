"""``select_runs``: from the settings to the runs to fit (subjects, sessions, tasks, space)."""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import InputFileError, NoDataError, UsageError, few
from ..settings import DEFAULT_SPACE
from .bidsignore import declared_subjects
from .derivatives import (declared_derivative, find_derivatives, holds_func, looping_derivatives,
                          skipped_derivatives)
from .folders import _in_selection, _layout_roots, _subject_folders, stray_subject_folders
from .index import _open_index
from .matching import _design_files, _unmatched_designs
from .metadata import repetition_time_warning, start_time_warning
from .query import NIFTI, _get, _pybids_filters, _values
from .runs import (Selection, _preprocessed_run, _refuse_several_per_run, _select_raw_runs, run_queries,
                   unmodelled_runs)
from .surfaces import check_pairs, surface_series


def select_runs(settings) -> Selection:
    """Find every run to fit, as selected by the settings.

    With ``--participant-label``, only the selected subjects' folders are indexed (or the
    index saved in ``--bids-database-dir`` is used); either way the runs found are the
    same. Sidecars are read only for the files used.

    Parameters
    ----------
    settings : Settings

    Returns
    -------
    selection : Selection
        The runs, and warnings: folders under ``BIDS_DIR/derivatives`` skipped for lack
        of a ``dataset_description.json``, symbolic link loops not followed, labels that
        match nothing, raw data modelled for lack of preprocessed data.

    Raises
    ------
    NoDataError
        No subject, task, space or run matches, or a run lacks its events or TR.
    InputFileError
        A sidecar or BOLD header the selection needs cannot be read, or a TR or
        StartTime is not a finite number (booleans included).
    UsageError
        Several spaces are present and none was chosen.
    """
    from bids.layout import Query

    warnings = []
    derivatives = settings.derivatives
    if not derivatives:
        derivatives = find_derivatives(settings.bids_dir, settings.output_dir)
        warnings += [
            f"{path} was skipped as derivatives because it has no dataset_description.json."
            for path in skipped_derivatives(
                settings.bids_dir, settings.output_dir, settings.work_dir
            ) if holds_func(path)  # not FreeSurfer's, which fMRIPrep writes beside its own
        ]
        warnings += [f"{path} is a symbolic link to {path.resolve()} (BIDS_DIR or a folder above it) and is not read "
                     "as derivatives; remove it, or give the derivatives with -d."
                     for path in looping_derivatives(settings.bids_dir)]
    layout, loops = _open_index(
        settings.bids_dir, derivatives, settings.participant_label,
        settings.bids_database_dir, (settings.output_dir, settings.work_dir),
    )
    filters = settings.bids_filters
    bold_filters = _pybids_filters(filters.get("bold", {}))

    labels = list(settings.participant_label)
    subjects = _values(layout, "subject", subject=labels) if labels else layout.get_subjects()
    if settings.participant_label:
        missing = [s for s in settings.participant_label if s not in subjects]
        if len(missing) == len(settings.participant_label):
            present = _subject_folders((settings.bids_dir, *derivatives))
            if not present:
                raise NoDataError(f"{settings.bids_dir} has no sub-* folders with data.")
            raise NoDataError(
                f"No subject matches {settings.selected_by.get('participant_label', '--participant-label')} "
                f"{few(missing)} (the dataset has {few(['sub-' + s for s in present])})."
            )
        for label in missing:
            warnings.append(f"{settings.selected_by.get('participant_label', '--participant-label')} {few([label])} "
                            "matches no subject and was ignored.")
        subjects = [s for s in subjects if s in settings.participant_label]
    elif not subjects:
        raise NoDataError(f"{settings.bids_dir} has no sub-* folders with data.")
    subjects = _without_derivative_only_subjects(settings.bids_dir, subjects, warnings)
    roots = _layout_roots(layout)
    warnings += [
        f"{folder} is no subject folder (BIDS names them sub-<letters and digits>), so it was left out; "
        "move it out of the dataset."
        for folder in stray_subject_folders(roots)
    ]
    warnings += [
        f"{loop} is a symbolic link to one of its own parent folders (a loop), "
        "so it was not followed."
        for loop in loops
        if _in_selection(loop, roots, tuple(subjects) if settings.participant_label else ())
    ]
    query = {"subject": subjects}
    if settings.session_label:
        sessions = _values(layout, "session", subject=subjects)
        if not set(settings.session_label) & set(sessions):
            raise NoDataError(
                f"No session matches {settings.selected_by.get('session_label', '--session-label')} "
                f"{' '.join(settings.session_label)} "
                f"(the selected subjects have {', '.join(sessions) or 'no sessions'})."
            )
        query["session"] = list(settings.session_label)

    tasks = _select_tasks(layout, settings, query)
    query["task"] = list(tasks)

    preproc, unfiltered, surfaces = [], [], []
    if derivatives:
        preproc = _get(  # the filter's entities take the place of these (as in fMRIPrep's filters)
            layout, scope="derivatives", return_type="object",
            **{"suffix": "bold", "extension": NIFTI, "desc": "preproc", **query, **bold_filters},
        )
        surfaces = surface_series(layout, query, bold_filters)
        unfiltered = preproc or surfaces or _get(
            layout, scope="derivatives", suffix="bold", extension=NIFTI, desc="preproc", **query
        ) or surface_series(layout, query, {})
    if unfiltered and not preproc and not surfaces:
        raise NoDataError(
            f"The {settings.selected_by.get('bids_filters', '--bids-filter-file')} query "
            f"{json.dumps(filters.get('bold'))} matches none of the "
            f"preprocessed BOLD series of sub-{', sub-'.join(query['subject'])}."
        )
    if not preproc and not surfaces:
        return _select_raw_runs(layout, settings, query, bold_filters, derivatives, warnings)

    spaces = sorted({f.get_entities().get("space") or "none" for f in preproc + surfaces})
    def descs_in(space):  # the space's BOLD series of another desc (fMRIPrep's AROMA output)
        found = _get(layout, scope="derivatives", return_type="object", suffix="bold", extension=NIFTI,
                     space=space, **query)
        return sorted({f.get_entities().get("desc") for f in found} - {None, "preproc"})

    def legacy_surfaces(space):  # fMRIPrep before 21.0: *_space-fsaverage5_hemi-L.func.gii (no _bold)
        return any(next(Path(root).glob(f"sub-{subject}/**/*_space-{space}_hemi-[LR].func.gii"), None) is not None
                   for root in derivatives for subject in query["subject"])

    def filtered_away(space):  # the space's series, which the bold filter leaves out (den-91k only, say)
        if not bold_filters:
            return False
        return bool(_get(layout, scope="derivatives", return_type="object", suffix="bold", extension=NIFTI,
                         desc="preproc", space=space, **query)
                    or [f for f in surface_series(layout, query, {}) if f.get_entities().get("space") == space])

    chosen = _choose_spaces(settings.spaces, spaces, settings.selected_by.get("space", "--space"), descs_in,
                            legacy_surfaces, filtered_away)
    # surface spaces first: a run's design sidecar (shared by its spaces) then names its volume BOLD
    surface_spaces = {f.get_entities().get("space") for f in surfaces}
    chosen.sort(key=lambda space: space not in surface_spaces)
    runs, unstated = [], []  # unstated: sidecars of slice-timing corrected series without a StartTime
    disagreeing = []  # runs whose raw sidecars give another TR
    volume_spaces = {f.get_entities().get("space") for f in preproc}
    queries = run_queries(layout, settings, query["subject"], [s for s in chosen if s in volume_spaces])
    for space in chosen:
        space_query = Query.NONE if space is None else space
        files = [f for f in preproc + surfaces if f.get_entities().get("space", Query.NONE) == space_query]
        check_pairs(files)
        _refuse_several_per_run(files)
        runs += [
            _preprocessed_run(layout, queries, settings, bold, space, warnings, unstated, disagreeing)
            for bold in sorted(files, key=lambda f: f.path)
        ]
    _check_confounds_everywhere(runs, settings)
    if unstated:
        warnings.append(start_time_warning(unstated))
    if disagreeing:
        warnings.append(repetition_time_warning(disagreeing))
    # a filter's entities of the raw series leave runs out on purpose; its desc, space or res do not
    raw_filters = {key: value for key, value in bold_filters.items()
                   if key not in (*DERIVATIVE_ENTITIES, "suffix", "extension", "scope", "return_type")}
    unmodelled, unprocessed = unmodelled_runs(layout, {**query, **raw_filters}, runs, chosen)
    warnings += unmodelled
    warnings += _unmatched_designs(settings.design_dir, runs)
    return Selection(tuple(runs), chosen[0] if len(chosen) == 1 else None, tuple(derivatives), tuple(warnings),
                     spaces=tuple(chosen), unprocessed=tuple(unprocessed))


def _check_confounds_everywhere(runs, settings) -> None:
    """Raise :class:`NoDataError` when the default confounds leave some runs without any (no
    confounds file) while others have theirs: a partial copy of the derivatives, not a choice.
    (No run with a confounds file: each is modelled without, with a warning.)"""
    if settings.model.confounds_given or not settings.model.confounds:
        return
    modelled = [run for run in runs if run.design is None]
    lacking = [run for run in modelled if run.confounds is None]
    if lacking and len(lacking) < len(modelled):
        raise NoDataError(
            f"{lacking[0].name}{f' (and {len(lacking) - 1} more run(s))' if len(lacking) > 1 else ''} has no "
            "desc-confounds_timeseries.tsv in the derivatives, while the other runs have theirs; copy it beside "
            "its preprocessed series, or pass --confounds none to model every run without confounds."
        )


def _without_derivative_only_subjects(bids_dir, subjects, warnings) -> list:
    """The subjects of an all-subjects job but those the derivatives hold and BIDS_DIR does not,
    or holds in a folder its ``.bidsignore`` names, named in a warning (a subject taken out of
    the raw dataset, its preprocessed folder kept)."""
    declared = declared_subjects(bids_dir, subjects)
    if declared:
        names, one = ", ".join("sub-" + s for s in declared), len(declared) == 1
        said = f"{names} {'is' if one else 'are'} named in {Path(bids_dir) / '.bidsignore'} (declared not BIDS)"
        if len(declared) == len(subjects):
            them = "it" if one else "them"
            raise NoDataError(f"{said}, so there is nothing to model; take {them} out of .bidsignore to model {them}.")
        warnings.append(f"{said}, so {'it was' if one else 'they were'} left out though the derivatives hold "
                        f"{'it' if one else 'them'}; take {'it' if one else 'them'} out of .bidsignore to model "
                        f"{'it' if one else 'them'}.")
        subjects = [subject for subject in subjects if subject not in declared]
    raw = set(_subject_folders((bids_dir,)))
    absent = [subject for subject in subjects if subject not in raw]
    if not raw or not absent:
        return subjects
    names, one = ", ".join("sub-" + s for s in absent), len(absent) == 1
    said = (f"{names} {'has' if one else 'have'} preprocessed data in the derivatives but no folder in {bids_dir} "
            "(taken out of the raw dataset)")
    if len(absent) == len(subjects):
        raise NoDataError(f"{said}, so there are no events to model {'it' if one else 'them'} with.")
    warnings.append(f"{said}, so {'it was' if one else 'they were'} left out; remove the derivatives' folder "
                    "to silence this.")
    return [subject for subject in subjects if subject in raw]


def _select_tasks(layout, settings, query):
    from bids.layout import Query

    # the selected subjects' events, and those inherited from above the subjects' folders
    # (so that the tasks do not depend on which other subjects were indexed)
    events = {"suffix": "events", "extension": ".tsv", "scope": "raw"}
    with_events = set(_values(layout, "task", subject=query["subject"], **events))
    with_events |= set(_values(layout, "task", subject=Query.NONE, **events))
    if settings.design_dir is not None:
        with_events |= {
            ent["task"] for ent, _ in _design_files(settings.design_dir) if "task" in ent
        }
    all_tasks = set(_values(layout, "task", suffix="bold", **query))
    if settings.task:
        unknown = [t for t in settings.task if t not in all_tasks]
        source = settings.selected_by.get("task")
        if source and len(unknown) < len(settings.task):  # a model's Input: the tasks the data has
            return tuple(t for t in settings.task if t in all_tasks)
        if unknown:
            chosen = [f"{settings.selected_by.get(name, '--' + name.replace('_', '-'))} {' '.join(labels)}"
                      for name, labels in (("participant_label", settings.participant_label),
                                           ("session_label", settings.session_label)) if labels]
            where = f"the data that {' and '.join(chosen)} select{'s' if len(chosen) == 1 else ''}" if chosen else (
                "the dataset")
            raise NoDataError(
                f"{source or '--task'} {unknown[0]} is not in {where} "
                f"(tasks: {', '.join(sorted(all_tasks)) or 'none'})."
            )
        return tuple(settings.task)
    if not all_tasks and not query.get("session"):  # anatomy only (OpenNeuro datasets hold such subjects)
        named = ", ".join(f"sub-{s}" for s in query["subject"][:5]) + (
            f" and {len(query['subject']) - 5} more" if len(query["subject"]) > 5 else "")
        raise NoDataError(f"{named} of {settings.bids_dir} {'has' if len(query['subject']) == 1 else 'have'} no "
                          "BOLD series (no func folder with *_bold files), so there is nothing to model.")
    if not with_events:
        try:
            derived = declared_derivative(settings.bids_dir)
        except InputFileError:
            derived = False
        raise NoDataError(
            f"No task of the selected data has events.tsv files "
            f"(tasks: {', '.join(sorted(all_tasks)) or 'none'}); "
            + ("BIDS_DIR is a derivatives dataset (its dataset_description.json says DatasetType \"derivative\"): "
               "give the raw dataset, which holds the events, as BIDS_DIR, and this one with -d."
               if derived else "give --design-dir.")
        )
    return tuple(sorted(with_events & all_tasks) or sorted(with_events))


#: Entities of derivatives only: a --bids-filter-file choosing them selects no raw series.
DERIVATIVE_ENTITIES = ("desc", "space", "res", "den", "cohort", "label", "from", "to", "mode", "hemi")


def _choose_spaces(requested, spaces, source="--space", other_descs=None, legacy_surfaces=None,
                   filtered_away=None) -> list:
    """The spaces to model: those asked for (each must be present), else the default;
    ``other_descs(space)``: the ``desc-`` labels of a space's other BOLD series, named in the
    message about a space without preprocessed ones; ``legacy_surfaces(space)``: whether the
    derivatives hold its surface series under fMRIPrep's names before version 21.0;
    ``filtered_away(space)``: whether its series are there but the ``--bids-filter-file``
    ``bold`` query leaves them out."""
    if requested:
        chosen = []
        for space in requested:
            wanted = "none" if space.lower() == "none" else space
            if wanted not in spaces:
                descs = other_descs(space) if other_descs is not None and wanted != "none" else []
                hint = (f"; its series are of {', '.join(f'desc-{d}' for d in descs)}, which --bids-filter-file "
                        f"holding {json.dumps({'bold': {'desc': descs[0]}})} chooses" if descs else "")
                if not descs and wanted != "none" and filtered_away is not None and filtered_away(space):
                    hint = ("; its series are there, and the --bids-filter-file 'bold' query leaves them out (an "
                            "entity another space lacks, such as den, matches its files when given as [value, null])")
                elif not descs and wanted != "none" and legacy_surfaces is not None and legacy_surfaces(space):
                    hint = (f"; its surface series are named as fMRIPrep named them before version 21.0 "
                            f"(*_space-{space}_hemi-L.func.gii, without _bold), which this app does not read: rename "
                            f"them as BIDS Derivatives name them (*_hemi-L_space-{space}_bold.func.gii), or rerun "
                            "fMRIPrep")
                raise NoDataError(
                    f"{source} {space} matches no preprocessed BOLD "
                    f"(spaces present: {', '.join(spaces)}){hint}."
                )
            chosen.append(None if wanted == "none" else wanted)
        return list(dict.fromkeys(chosen))
    if DEFAULT_SPACE in spaces:
        return [DEFAULT_SPACE]
    if len(spaces) == 1:
        return [None if spaces[0] == "none" else spaces[0]]
    raise UsageError(
        f"The preprocessed BOLD files come in several spaces ({', '.join(spaces)}); "
        "choose one with --space."
    )
