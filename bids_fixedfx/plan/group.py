"""Group plans: the subject maps the group level tests, found and checked once."""

from __future__ import annotations

import logging
import os
from collections import defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from .. import design as designs
from ..errors import InputFileError, NoDataError, UsageError, check_regular_file, few
from ..notes import Note
from ..surface import check_inference, files_of, group_spaces, is_surface_file

logger = logging.getLogger("bids_fixedfx")

#: The fewest subjects a group test needs.
MIN_SUBJECTS = 2


@dataclass(frozen=True, eq=False)
class SubjectMapFiles:
    """One subject's maps of one contrast, as the participant level wrote them."""

    subject: str
    task: str
    space: str | None
    contrast: str  # the file label
    effect: object  # Path
    variance: object
    sidecar: object
    mask: object
    info: object  # sidecars.StatmapSidecar
    session: str | None = None  # maps of a session node
    stamps: tuple = ()  # (path, inode, mtime, size) of each file, when the sidecar was read


@dataclass(frozen=True, eq=False)
class GroupTest:
    """One group test: a task, space and contrast, over the subjects that have it.

    With a model's dataset node, ``design`` is its design matrix over ``inputs`` (subjects
    with missing values already left out) and ``contrasts`` its contrasts; without one,
    both are None (a one-sample test of the intercept, or fixed effects). ``desc_parts``
    name the maps apart when the model has several dataset nodes (the node) or the node
    groups by more than the contrast (``groupPatient``); ``group_model`` is the node's
    (``random`` or ``fixed``), None for the settings'; ``precision_weighted``, whether a
    ``meta`` node weights its inputs by inverse variance (its ``Software.nilearn``).
    """

    task: str
    space: str | None
    contrast: str
    inputs: tuple[SubjectMapFiles, ...]
    design: object = None  # pandas.DataFrame
    contrasts: tuple = ()
    node: object = None  # model.Node
    desc_parts: tuple = ()
    group_model: str | None = None
    source_desc: str | None = None  # the desc of the input maps' node
    design_desc: str | None = None  # the desc of a group design's maps (plan.graph.design_desc)
    precision_weighted: bool = False
    tables: tuple = ()  # participants.tsv and sessions.tsv files whose columns the node used (Sources)

    @property
    def parts_text(self) -> str:
        """`` (perGroup, groupPatient)``: which node and group the test is, for messages."""
        return f" ({', '.join(self.desc_parts)})" if self.desc_parts else ""

    @property
    def named_plainly(self) -> bool:
        """Whether its maps and its inputs have the names of one-node models (subject maps)."""
        return not self.desc_parts and self.source_desc is None and all(i.session is None for i in self.inputs)

    @property
    def subjects(self) -> tuple[str, ...]:
        return tuple(item.subject for item in self.inputs)

    @property
    def name(self) -> str:
        return self.inputs[0].info.contrast.name

    @property
    def labels(self) -> tuple[str, ...]:
        """The contrast labels of the maps the test writes."""
        from ..naming import label_of

        return tuple(label_of(c.name) for c in self.contrasts) if self.design is not None else (self.contrast,)


@dataclass(frozen=True, eq=False)
class GroupPlan:
    """The group level's tests, and the contrasts left untested (fewer than two subjects).

    ``masks``: the group mask of each set of subject masks (a tuple of their paths), made
    while checking that it is not empty, for the tests to use."""

    tests: tuple[GroupTest, ...]
    untested: tuple[GroupTest, ...]
    notes: tuple[Note, ...]
    masks: dict = field(default_factory=dict)

    @property
    def by_key(self) -> dict:
        """``(task, space, contrast) -> inputs`` of every test and untested contrast."""
        return {(t.task, t.space, t.contrast): list(t.inputs) for t in (*self.tests, *self.untested)}


def find_subject_maps(output_dir, level: str = "subject", desc: str | None = None, subjects=(),
                      tasks=()) -> list[SubjectMapFiles]:
    """Every subject-level (or session-level) effect map in OUTPUT_DIR, with its variance,
    sidecar and mask (volumes, GIFTI pairs by their left map, CIFTI).

    Parameters
    ----------
    output_dir : Path
    level : {'subject', 'session'}
    desc : str, optional
        The node's ``desc`` when its level has several nodes (:mod:`.graph`); maps of other
        nodes are not returned.
    subjects, tasks : sequence of str, optional
        Only these subjects' (tasks') maps, when given: the other names are not listed.

    Returns
    -------
    maps : list of SubjectMapFiles
        Their sidecars are not read yet (``info`` is None).
    """
    from .. import naming

    effects = []
    # a BIDS label is letters and digits: other labels name no file (and are no glob pattern);
    # a task's pattern also lists longer labels (task-a: task-ab), which the caller leaves out
    subjects = [label for label in subjects if label.isascii() and label.isalnum()] if subjects else ["*"]
    tasks = [f"{label}*" for label in tasks if label.isascii() and label.isalnum()] if tasks else ["*"]
    for subject in subjects:
        for task in tasks:
            stem = (f"sub-{subject}/func/sub-{subject}_task-{task}" if level == "subject"
                    else f"sub-{subject}/ses-*/func/sub-{subject}_ses-*_task-{task}")
            effects += [
                *output_dir.glob(f"{stem}_stat-[ev]*_statmap.nii.gz"),
                *output_dir.glob(f"{stem}_hemi-L_*_stat-[ev]*_statmap.func.gii"),  # a GIFTI pair's left map
                *output_dir.glob(f"{stem}_stat-[ev]*_statmap.dscalar.nii"),
            ]
    effects = _effects_checked([path for path in dict.fromkeys(effects) if _named_by_the_app(path)])
    allowed = {"subject", "task", "space", "hemi", "den", "contrast", "stat", "suffix", "extension", "desc"}
    allowed |= {"session"} if level == "session" else set()
    found = []
    for effect in sorted(effects):
        entities = naming.parse(effect.relative_to(output_dir))
        if set(entities) - allowed or entities.get("desc") != desc or (level == "session") != ("session" in entities):
            continue  # a run-level map, another node's or a corrected map
        common = {"subject": entities["subject"], "task": entities["task"], "space": entities.get("space")}
        if level == "session":
            common["session"] = entities["session"]
        where = {key: entities[key] for key in ("hemi", "den", "extension") if key in entities}
        label = entities["contrast"]

        def path(kind, **more):
            return output_dir / naming.build(f"{level}_{kind}", **common, **{**where, **more})

        found.append(SubjectMapFiles(
            **common, contrast=label, effect=effect,
            variance=path("statmap", contrast=label, stat="variance", desc=desc),
            sidecar=path("statmap", contrast=label, stat="effect", desc=desc, extension=".json"),
            mask=path("mask", desc=naming.mask_desc("fixedfx", (desc,) if desc else ())),
            info=None,
        ))
    return found


def _named_by_the_app(path) -> bool:
    """Whether a map's name is one the app could give: key-value pairs whose values are
    letters and digits (a check of a few microseconds: a group level lists thousands of maps).
    A file put there by hand (``contrast-x..y``) is said and left out: it stopped the group
    level with an internal error, or as a variance map without its effect map."""
    stem = path.name.split("_statmap.", 1)[0]  # key-value pairs of letters and digits, as BIDS names them
    if all(len(pair) == 2 and pair[0].isalpha() and pair[1].isascii() and pair[1].isalnum()
           for pair in (part.split("-", 1) for part in stem.split("_"))):
        return True
    logger.warning("%s is not named as this app names its maps (a file put there by hand?), so the group level "
                   "leaves it out; rename or remove it.", path)
    return False


def _effects_checked(paths) -> list:
    """The effect maps among effect and variance maps; a variance map without its effect map
    (a set of subject maps from which one was removed) is an error naming the missing file,
    rather than a subject left out of the test without a word."""
    effects = [path for path in paths if "_stat-effect" in path.name]
    present = set(effects)
    for path in paths:
        missing = path.with_name(path.name.replace("_stat-variance", "_stat-effect"))
        if "_stat-variance" in path.name and missing not in present:
            raise NoDataError(f"{missing} is missing (its variance map {path.name} is there); rerun the "
                              "participant level for that subject.")
    return effects


def plan_group(settings, model=None) -> GroupPlan:
    """Find the subject (or session) maps to test and check them, before any group file is written.

    Parameters
    ----------
    settings : Settings
    model : bids_fixedfx.model.Model, optional
        Its dataset nodes design the tests, from ``participants.tsv`` (and ``sessions.tsv``),
        each over the maps of the node its edge comes from, grouped by its GroupBy.

    Returns
    -------
    plan : GroupPlan

    Raises
    ------
    NoDataError
        No subject maps, fewer than two subjects, missing files, masks on other grids.
    UsageError
        Subjects' maps made with different models; a GroupBy or Filter variable the data lacks.
    """
    import pandas as pd

    from .graph import dataset_steps

    from ..model.bsm import ModelError

    output_dir = settings.output_dir
    tests, untested, notes, read, grids, masks, design_errors = [], [], [], {}, {}, {}, []
    for step in dataset_steps(model) or (None,):
        source = (step.source_level, step.source_desc) if step is not None else ("subject", None)
        if source not in read:  # several dataset nodes fed by one node read its maps once
            read[source], more = _found_maps(settings, step)
            notes += [note for note in more if note not in notes]
        found = read[source]
        keys, table, unlisted, origins = ("contrast",), None, set(), {}
        if step is not None:
            table, unlisted, origins = _input_table(found, settings, step.node)
            notes += [note for note in _rows_apart(unlisted, settings.bids_dir) if note not in notes]
            found, table, keys = _select(step, found, table)
            notes += [note for note in (*_combined_groups(step, found, table), *_fed_by_runs(model, step),
                                        *_coded_as_slopes(step.node, table, settings.bids_dir))
                      if note not in notes]
        grouped = defaultdict(list)
        for index, item in enumerate(found):
            values = {k: item.contrast if k == "contrast" else table.at[index, k] for k in keys}
            if any(pd.isna(v) for v in values.values()):
                why = ("no row in participants.tsv" if item.subject in unlisted else
                       f"no value of {', '.join(k for k, v in values.items() if pd.isna(v))}")
                notes.append(Note("selection", f"Node {step.node.name!r}: sub-{item.subject} left out of the "
                                  f"task-{item.task} tests ({why})",
                                  subject=item.subject, task=item.task))
                continue
            grouped[(item.task, item.space, *(str(values[k]) for k in keys))].append(index)
        peers = defaultdict(dict)  # {subject: an index of its maps} of each task, space and group, any contrast
        for key, indices in grouped.items():
            for i in indices:
                peers[_peer_key(key, keys)].setdefault(found[i].subject, i)
        step_tests, named = [], {}
        for key, indices in sorted(grouped.items(), key=lambda kv: tuple(map(str, kv[0]))):
            task, space, values = key[0], key[1], dict(zip(keys, key[2:]))
            items = [found[i] for i in indices]
            label = values.get("contrast") or "-".join(dict.fromkeys(i.contrast for i in items))
            test = GroupTest(task, space, label, tuple(items), **_node_fields(step, values))
            _check_one_name(named, test, values, step)
            pooled = list(dict.fromkeys(i.contrast for i in items))
            if step is not None and "contrast" not in keys and len(pooled) > 1 and _intercept_only(step.node):
                notes.append(Note(
                    "model", f"Node {step.node.name!r} groups by {list(step.node.group_by)} without 'contrast', so its "
                    f"task-{task} test of the mean pools {len(items)} maps of {len(pooled)} contrasts "
                    f"({', '.join(pooled[:4])}{', ...' if len(pooled) > 4 else ''}) as if each were another "
                    "subject's; add 'contrast' to its GroupBy to test each apart", task=task))
            if len(items) < MIN_SUBJECTS:
                grouped_by = {k: v for k, v in values.items() if k not in ("contrast", "session")}
                others = len(set(peers[_peer_key(key, keys)]) - {items[0].subject})
                advice = ("it is the only subject with " + ", ".join(f"{k} {v!r}" for k, v in grouped_by.items())
                          + f" of node {step.node.name!r}'s GroupBy (a test needs at least 2 subjects)" if grouped_by
                          else ("it is the only one of --participant-label with maps of the task (a test needs at "
                                "least 2 subjects): give more labels, or none to test every subject"
                                if settings.participant_label else "run the participant level for the other subjects "
                                "first") if not others else
                          f"the maps of the {others} other subject(s) of the task have no such contrast: check its "
                          "condition's name in the events files (a misspelt trial_type column makes nilearn's "
                          "'dummy' condition)")
                notes.append(Note(
                    "selection",
                    f"task-{task} contrast-{label}{test.parts_text} has maps for one subject only "
                    f"(sub-{items[0].subject}), so it is not tested; {advice}",
                    subject=items[0].subject, task=task,
                ))
                untested.append(test)
                continue
            without = _without_contrast(test, peers[_peer_key(key, keys)], output_dir)
            _check_same_model(test)
            if step is not None:
                try:
                    test, more = _model_test(test, step.node, table.loc[indices], unlisted, settings.bids_dir)
                except (ModelError, NoDataError, UsageError) as error:
                    peer = peers[_peer_key(key, keys)]
                    if isinstance(error, InputFileError) or not _estimable_with(
                            test, peer, found, table, step.node, unlisted, settings.bids_dir):
                        raise
                    left_out = sorted(set(peer) - set(test.subjects))
                    notes.append(Note("selection", f"task-{task} contrast-{label}{test.parts_text} is not tested: "
                                      f"without {few([f'sub-{s}' for s in left_out])} (no maps of it), "
                                      f"{str(error)[:1].lower()}{str(error)[1:]}", task=task))
                    untested.append(test)
                    design_errors.append((notes[-1], error))
                    continue
                test = replace(test, tables=_tables_used(step, test, origins))
                notes += more
            notes += without
            _check_labels(test, settings.group_model)
            _check_grid(test, output_dir, grids)
            notes += _check_masks_overlap(test, output_dir, masks)
            step_tests.append(test)
        if step is not None:
            _check_computes_a_map(step.node, step_tests)
        tests += step_tests
    if not tests and design_errors:  # each test's design needs the subjects that lack its contrast
        (note, error), more = design_errors[0], len(design_errors) - 1
        raise NoDataError(f"No test can be made: {note.text}" + (f" (and {more} more test(s) alike)" if more else "")
                          ) from error
    if not tests:
        raise NoDataError(
            f"No contrast has maps for {MIN_SUBJECTS} or more subjects; nothing to test at the group level."
        )
    _check_permutations(tests, settings)
    return GroupPlan(tuple(tests), tuple(untested), tuple(dict.fromkeys(notes)), masks)  # one note for all contrasts


def _check_permutations(tests, settings) -> None:
    """A permutation test asked for (``--n-perm``, a model's ``NPerm``) is nilearn's one-sample
    sign flipping: every test must be a one-sample t-test (it was left out of the others
    without a word)."""
    if not settings.inference.n_perm:
        return
    for test in tests:
        fixed = (test.group_model or settings.group_model) == "fixed"
        if fixed or not (test.design is None or list(test.design.columns) == ["intercept"]):
            raise UsageError(
                f"--n-perm (or a model's NPerm) asks for a permutation test, which is made for a one-sample t-test "
                f"only (nilearn's sign flipping); task-{test.task} contrast-{test.contrast} is tested by "
                f"{'fixed effects' if fixed else 'a group design of ' + ', '.join(test.design.columns)}: leave it out."
            )


def _check_labels(test, group_model) -> None:
    """A test's contrasts make distinct file labels (``age-pos`` and ``age_pos`` would write one
    set of maps over the other)."""
    from ..group import contrasts_of

    named = {}
    for contrast, _ in contrasts_of(test, test.group_model or group_model):
        other = named.setdefault(contrast.label, contrast.name)
        if other != contrast.name:
            raise UsageError(
                f"The group contrasts {other!r} and {contrast.name!r} of task-{test.task} both make the file label "
                f"{contrast.label}; name them apart (in the model file, or the participants.tsv columns given "
                "to --group-covariates)."
            )


def _peer_key(key, keys) -> tuple:
    """A test's key (task, space and the values of ``keys``) without its contrast: the subjects
    under it are those a test of each of its contrasts would take."""
    return key[:2] + tuple(value for name, value in zip(keys, key[2:]) if name != "contrast")


def _estimable_with(test, peers, found, table, node, unlisted, bids_dir) -> bool:
    """Whether the test's design, refused over its inputs, is made over ``peers`` (a map of
    each subject of its task, space and group, any contrast) when some of them lack its
    contrast: the subjects left out, not the model, are then at fault."""
    from ..model.bsm import ModelError

    if not set(peers) - set(test.subjects):
        return False
    indices, own = list(peers.values()), {item.contrast for item in test.inputs}
    peer_table = table.loc[indices].assign(contrast=own.pop()) if len(own) == 1 else table.loc[indices]
    try:  # (of the test's contrast, as its own inputs are)
        _model_test(replace(test, inputs=tuple(found[i] for i in indices)), node, peer_table, unlisted, bids_dir)
    except (ModelError, NoDataError, UsageError):
        return False
    return True


def _without_contrast(test, peers, output_dir) -> list[Note]:
    """A note naming the subjects that have maps of the test's task and space (and group) but
    none of its contrast (a subject rerun with other contrasts): they are left out of it."""
    missing = sorted(set(peers) - set(test.subjects))
    if not missing:
        return []
    names = [f"sub-{label}" for label in missing[:10]]
    named = (", ".join(names[:-1]) + " and " + names[-1] if len(names) > 1 else names[0]) + (
        f" (and {len(missing) - 10} more)" if len(missing) > 10 else "")
    return [Note(
        "subject-left-out",
        f"task-{test.task} contrast-{test.contrast}{test.parts_text} is tested without {named}, which "
        f"{'has' if len(missing) == 1 else 'have'} no contrast-{test.contrast} maps in {output_dir}, only maps "
        f"of other contrasts: either {'its' if len(missing) == 1 else 'their'} runs hold nothing that contrast "
        "weighs (no such events; the subject report says so), or the participant level ran with other contrasts, "
        f"and a rerun for {'it' if len(missing) == 1 else 'them'} with that contrast includes "
        f"{'it' if len(missing) == 1 else 'them'}",
        subject=missing[0] if len(missing) == 1 else None, task=test.task,
    )]


def _found_maps(settings, step) -> tuple:
    """The maps a dataset node (or the options' test) receives, their sidecars read, and notes
    of the spaces left out (each subject's own vertices)."""
    from ..model.inference import stated_inference
    from ..sidecars import StatmapSidecar

    output_dir = settings.output_dir
    level, desc = (step.source_level, step.source_desc) if step is not None else ("subject", None)
    found = find_subject_maps(output_dir, level, desc, settings.participant_label,
                              settings.task) if output_dir.is_dir() else []
    if not found and (settings.participant_label or settings.task) and output_dir.is_dir():
        found = find_subject_maps(output_dir, level, desc)  # none selected: said below, if any at all
    if not found:
        what = "subject-level maps" if step is None else f"maps of node {step.source!r} ({level} level)"
        raise NoDataError(f"OUTPUT_DIR {output_dir} has no {what}; run the participant level first.")
    mapped = {item.subject for item in found}
    found = _selected(found, settings, "subject-level maps" if step is None else f"maps of node {step.source!r}")
    selected = {item.subject for item in found}
    absent = [label for label in settings.participant_label if label not in selected]
    found, native = group_spaces(found, settings.spaces)
    stated = step is not None and not settings.group_covariates and stated_inference(step.node) is not None
    check_inference(settings.inference, [item.space for item in found if is_surface_file(item.effect)],
                    settings.model_file if stated else None)
    subjects = sorted({item.subject for item in found})
    if len(subjects) < MIN_SUBJECTS:
        tasks = sorted({item.task for item in found})
        of = f" of task {', '.join(tasks)}" if settings.task and tasks else ""  # --task chose them
        unknown = [label for label in absent if not (settings.bids_dir / f"sub-{label}").is_dir()]
        raise NoDataError(
            f"The group level needs at least {MIN_SUBJECTS} subjects with maps{of} in {output_dir}; "
            f"found {len(subjects)}{' (sub-' + subjects[0] + ')' if subjects else ''}"
            + (f", besides maps of space-{' and space-'.join(native)}, which are not tested (their vertices are each "
               "subject's own); run the participant level in a shared space, such as --space fsaverage5."
               if native else f"; --participant-label {' '.join(absent)} {'has' if len(absent) == 1 else 'have'} "
               f"none" + (f" ({', '.join(f'sub-{label}' for label in unknown)} {'has' if len(unknown) == 1 else 'have'}"
                          f" no folder in {settings.bids_dir}: check the label)" if unknown else "") + "."
               if absent else ".")
        )
    read = []
    for item in found:
        stamps = []
        for path in (*files_of(item.effect), *files_of(item.variance), item.sidecar, *files_of(item.mask)):
            stamp = _stamp(path)
            if stamp is None:
                what = "is not a regular file (a folder, a device or a pipe)" if path.exists() else "is missing"
                raise NoDataError(f"{path} {what}; rerun the participant level for sub-{item.subject}.")
            stamps.append(stamp)
        read.append(replace(item, info=StatmapSidecar.read(item.sidecar), stamps=tuple(stamps)))
    notes = [Note("selection", f"space-{space} maps were not tested: their vertices are each subject's own")
             for space in native]
    notes += [Note("selection", f"space-{space} maps lie in each subject's own anatomy, so a voxel is not one place "
                                "across subjects unless they were registered to one template; test a template space "
                                "(--space MNI152NLin2009cAsym at the participant level)")
              for space in sorted({item.space for item in found if item.space in NATIVE_VOLUME_SPACES})]
    if any(item.space is None for item in found):
        notes.append(Note("selection", "maps without a space- entity lie in each subject's own BOLD reference (their "
                                       "inputs named no space), so a voxel is not one place across subjects unless "
                                       "they were registered to one template; test a template space (preprocess into "
                                       "one, and --space MNI152NLin2009cAsym at the participant level, say)"))
    notes += [Note("selection", f"--participant-label {label} has no maps in {output_dir} and was left out; "
                                + (f"run the participant level for sub-{label} to test it"
                                   if (settings.bids_dir / f"sub-{label}").is_dir()
                                   else f"{settings.bids_dir} has no sub-{label} either: check the label"))
              for label in absent]
    notes += _missing_in_space(found, selected)
    notes += _labels_apart_by_case(found)
    if not settings.participant_label:
        notes += _unprocessed(settings.bids_dir, mapped, output_dir, settings.task)
    return read, notes


def _stamp(path) -> tuple | None:
    """A regular file's path, inode, modification time and size (None: missing or not a regular
    file): a participant job that replaces a subject's maps changes them."""
    import stat

    try:
        status = os.stat(path)
    except OSError:
        return None
    if not stat.S_ISREG(status.st_mode):
        return None
    return (str(path), status.st_ino, status.st_mtime_ns, status.st_size)


def check_inputs_unchanged(tests) -> None:
    """Refuse the group maps computed from subject maps that a participant job replaced
    while this job planned and read them: their sidecars, read first, may describe other
    maps than those read (a rerun with other options), or the maps of one subject may be of
    two runs of the participant level.

    Raises
    ------
    FixedFxError
        A subject map, its sidecar or mask changed since its sidecar was read (exit 1).
    """
    from ..errors import FixedFxError

    for test in tests:
        for item in test.inputs:
            for path, *stamp in item.stamps:
                if _stamp(path) != (path, *stamp):
                    raise FixedFxError(
                        f"{path} was rewritten or removed while the group level read sub-{item.subject}'s maps (a "
                        "participant job running at the same time?), so nothing was written; rerun the group level "
                        "once the participant jobs have ended.")


def _labels_apart_by_case(found) -> list:
    """Notes naming the contrast labels of a task and space that differ only in case (``Go``
    in some subjects' events, ``go`` in others'): each is tested over its own subjects."""
    subjects = defaultdict(lambda: defaultdict(set))
    for item in found:
        subjects[(item.task, item.space)][item.contrast].add(item.subject)
    notes = []
    for (task, space), by_label in sorted(subjects.items(), key=str):
        spellings = defaultdict(list)
        for label in sorted(by_label):
            spellings[label.lower()].append(label)
        for same in (labels for labels in spellings.values() if len(labels) > 1):
            whose = "; ".join(f"{label}: " + ", ".join(f"sub-{s}" for s in sorted(by_label[label])[:3])
                              + (" ..." if len(by_label[label]) > 3 else "") for label in same)
            notes.append(Note("selection", f"task-{task} space-{space}: the contrasts {' and '.join(same)} differ "
                                           f"only in case, so each is tested over its own subjects ({whose}); if "
                                           "they are one condition, spell it one way in the events files and rerun "
                                           "the participant level", task=task))
    return notes


def _missing_in_space(found, subjects) -> list:
    """Notes naming, for each space tested, the subjects with maps in another space only (a
    participant job run with another --space), which its tests leave out."""
    notes = []
    for space in sorted({item.space for item in found}, key=str):
        missing = sorted(set(subjects) - {item.subject for item in found if item.space == space})
        if missing:
            named = ", ".join(f"sub-{label}" for label in missing[:10]) + (
                f" and {len(missing) - 10} more" if len(missing) > 10 else "")
            notes.append(Note("selection", f"{named} {'has' if len(missing) == 1 else 'have'} no maps in space-{space}, "
                                           "only in another space, so the tests of that space leave them out; run the "
                                           f"participant level for them with --space {space}"))
    return notes


def _has_func(subject_dir, tasks=()) -> bool:
    """Whether a subject folder holds functional data (anatomy-only subjects have no maps to
    miss), of one of ``tasks`` when given (``-t``: a subject without that task has none either)."""
    folders = [subject_dir / "func", *subject_dir.glob("ses-*/func")]
    folders = [folder for folder in folders if folder.is_dir()]
    if not tasks:
        return bool(folders)
    return any(next(folder.glob(f"*_task-{task}_*"), None) is not None for folder in folders for task in tasks)


#: Volume spaces of each subject's own anatomy or acquisition (fMRIPrep's T1w, boldref).
NATIVE_VOLUME_SPACES = ("T1w", "T2w", "anat", "func", "boldref", "scanner")


def _unprocessed(bids_dir, selected, output_dir, tasks=()) -> list:
    """A note naming the subjects of BIDS_DIR that have no maps in OUTPUT_DIR (a participant
    job that failed or never ran), which the group level leaves out; with ``tasks``, those
    with data of one of them."""
    try:
        with os.scandir(bids_dir) as entries:
            labels = sorted(entry.name[4:] for entry in entries
                            if entry.name.startswith("sub-") and entry.is_dir() and entry.name[4:] not in selected
                            and _has_func(Path(entry.path), tasks))
    except OSError:
        return []
    if not labels:
        return []
    named = ", ".join(f"sub-{label}" for label in labels[:10]) + (f" and {len(labels) - 10} more" if len(labels) > 10
                                                                     else "")
    return [Note("selection", f"{len(labels)} subject(s) of {bids_dir} have no maps in {output_dir} and were left "
                              f"out ({named}); run the participant level for them, or give --participant-label to "
                              "test the others")]


def _selected(found, settings, what) -> list:
    """The maps that ``--participant-label``, ``--task`` and ``--space`` select.

    Parameters
    ----------
    found : list of SubjectMapFiles
    settings : Settings
    what : str
        What the maps are, for the message (``subject-level maps``).

    Returns
    -------
    found : list of SubjectMapFiles

    Raises
    ------
    NoDataError
        An option that selects none of them, named with the values the maps have.
    """
    selections = (  # each named as the option, or the model's Input that stood in for it
        (settings.selected_by.get("participant_label", "--participant-label"), "subjects", settings.participant_label,
         lambda item: item.subject),
        (settings.selected_by.get("task", "--task"), "tasks", settings.task, lambda item: item.task),
        (settings.selected_by.get("space", "--space"), "spaces", settings.spaces,
         lambda item: "none" if item.space is None else item.space),
    )
    for option, name, given, value_of in selections:
        wanted = {"none" if value.lower() == "none" else value for value in given}
        kept = [item for item in found if value_of(item) in wanted] if wanted else found
        if not kept:
            present = sorted({value_of(item) for item in found})
            listed = ", ".join(present[:10]) + (f" and {len(present) - 10} more" if len(present) > 10 else "")
            asked = " ".join(given[:10]) + (" ..." if len(given) > 10 else "")
            raise NoDataError(f"{option} {asked} selects none of the {what} in {settings.output_dir} ({name}: {listed}).")
        found = kept
    return found


def _rows_apart(unlisted, bids_dir) -> list[Note]:
    """A note when subjects without a row in ``participants.tsv`` have one under another label
    that names the same number (``sub-1`` for ``sub-01``): labels are compared as written."""
    if not unlisted:
        return []
    rows = [str(label) for label in read_participants(bids_dir).index]
    alike = [(subject, row) for subject in sorted(unlisted) for row in rows
             if row != subject and row.isdigit() and subject.isdigit() and int(row) == int(subject)]
    if not alike:
        return []
    subject, row = alike[0]
    return [Note("selection", f"participants.tsv has a row for sub-{row} but none for sub-{subject}, whose maps "
                              f"these are{f' (and {len(alike) - 1} more such)' if len(alike) > 1 else ''}: BIDS "
                              "compares labels as written, so write participant_id as the folders are named")]


def _input_table(found, settings, node=None):
    """One row per map: its subject, session, task and contrast name, with the subject's
    ``participants.tsv`` columns and the session's ``sessions.tsv`` columns; and the subjects
    that have no row in ``participants.tsv``."""
    import pandas as pd


    participants = read_participants(settings.bids_dir, coded=settings.group_covariates or ())
    subjects = sorted({item.subject for item in found})
    named = _named_variables(node) if node else set()
    check_no_clashing_column(participants, named, f"Node {node.name!r}" if node else "The group design")
    if set(participants.columns) & named and not set(subjects) & set(participants.index):
        from ..errors import InputFileError

        ids = ", ".join(map(str, list(participants.index)[:5]))
        raise InputFileError(
            f"{settings.bids_dir / 'participants.tsv'}: none of its participant_id values ({ids}"
            f"{', ...' if len(participants.index) > 5 else ''}) names a subject with maps (sub-{subjects[0]}"
            f"{', ...' if len(subjects) > 1 else ''}); BIDS writes them sub-<label>, as the folders are named."
        )
    sessions = {}
    rows = []
    origins = {str(column): {None: settings.bids_dir / "participants.tsv"} for column in participants.columns}
    for item in found:
        row = participants.loc[item.subject].to_dict() if item.subject in participants.index else {}
        if item.session is not None:
            if item.subject not in sessions:
                sessions[item.subject] = table = read_sessions(settings.bids_dir, item.subject)
                check_no_clashing_column(table, named, f"Node {node.name!r}" if node else "The group design")
                for column in table.columns:
                    origins.setdefault(str(column), {})[item.subject] = (
                        settings.bids_dir / f"sub-{item.subject}" / f"sub-{item.subject}_sessions.tsv")
            table = sessions[item.subject]
            row.update(table.loc[item.session].to_dict() if item.session in table.index else {})
            row["session"] = item.session
        rows.append({**row, "subject": item.subject, "contrast": item.info.contrast.name, "task": item.task})
    return pd.DataFrame(rows), {item.subject for item in found} - set(participants.index), origins


def _named_variables(node) -> set:
    """The variables a dataset node's ``Model.X`` (a ``column.level`` by its column) and
    ``GroupBy`` name."""
    from ..model.bsm import is_intercept

    return {str(x).split(".", 1)[0] for x in node.x if not is_intercept(x)} | set(node.group_by)


def _tables_used(step, test, origins) -> tuple:
    """The ``participants.tsv`` and ``sessions.tsv`` files (of the test's subjects) whose
    columns a dataset node's design, GroupBy or edge Filter names: sources of its maps."""
    named = _named_variables(step.node) | set(step.filter)
    subjects = set(test.subjects) | {None}
    return tuple(dict.fromkeys(path for column in sorted(named) for subject, path in origins.get(column, {}).items()
                               if subject in subjects))


def _select(step, found, table):
    """The maps a dataset node's edge lets through, and the variables that group them.

    Raises
    ------
    ModelError
        A Filter or GroupBy variable the inputs lack; a Filter that lets nothing through.
    """
    from ..model.bsm import ModelError
    from ..model.contrasts import check_group_by

    columns = set(table.columns)
    for variable in step.filter:
        if variable not in columns:
            raise ModelError(f"The edge {step.source} -> {step.node.name} filters on {variable!r}, which is not in "
                             f"the data (available: {', '.join(sorted(columns))}).")
    check_group_by(step.node, columns)
    keep = [step.passes(**{k: (None if v != v else v) for k, v in row.items()})
            for row in table.to_dict("records")]
    if not any(keep):
        from .graph import filter_text

        raise ModelError(f"Node {step.node.name!r} receives no map: the Filter {filter_text(step.filter)} of its edge "
                         f"from {step.source!r} lets none of the {step.source_level} maps through.")
    found = [item for item, kept in zip(found, keep) if kept]
    table = table.loc[keep].reset_index(drop=True)
    keys = tuple(v for v in step.node.group_by if v in columns and v != "task")
    return found, table, keys


def _combined_groups(step, found, table) -> list:
    """Notes for a dataset node's GroupBy ``session`` or ``run`` that its inputs have combined:
    the maps of a subject node hold each subject's sessions and runs together, so the node
    tests them together (one test per contrast) rather than one test per session or run."""
    notes = []
    for variable, entity in (("session", "_ses-"), ("run", "_run-")):
        if variable not in step.node.group_by or variable in table.columns:
            continue
        if any(entity in str(source).rsplit("/", 1)[-1] for item in found for source in item.info.sources):
            where = ("feed it from a session node to test each session apart" if variable == "session"
                     else "a dataset node tests subject or session maps, never single runs")
            notes.append(Note("selection", f"Node {step.node.name!r} groups by {variable!r}, but the maps of node "
                                           f"{step.source!r} combine each subject's {variable}s, so it tests them "
                                           f"together (one test per contrast); {where}."))
    return notes


def _fed_by_runs(model, step) -> list:
    """A note for a dataset node whose edge comes from the run node: it tests the subjects'
    maps (one input per subject), as :func:`.graph.dataset_steps` reads them."""
    edges = model.parents(step.node.name)
    if not edges or model.node(edges[0].source).level != "run":
        return []
    return [Note("selection", f"Node {step.node.name!r} is fed by the run node {edges[0].source!r}: it tests the "
                              f"subjects' maps of node {step.source!r} (the fixed effects of each subject's runs, one "
                              "input per subject), never single runs; add an edge from a subject node to say so")]


def _node_fields(step, values) -> dict:
    """The GroupTest fields of a dataset node: the node, its group model and the parts of
    ``desc`` that name its maps apart (the node, the values of GroupBy beyond the contrast)."""
    from ..model.design import precision_weighted_of
    from ..naming import label_of
    from .graph import design_desc

    if step is None:
        return {}
    design = design_desc(step.node)
    parts = (step.desc,) if step.desc and design is None else ()  # a design's desc names its node already
    if not parts and design is None:  # an edge's Filter of the inputs: not the plain test's maps (SPEC §3)
        parts = tuple(label_of(f"{k} {' '.join(v)}") for k, v in step.filter.items() if k != "contrast")
    parts += tuple(label_of(f"{k} {v}") for k, v in values.items() if k != "contrast")
    meta = step.node.model_type == "meta"
    return {"node": step.node, "desc_parts": parts, "source_desc": step.source_desc, "design_desc": design,
            "group_model": "fixed" if meta else "random",
            "precision_weighted": meta and precision_weighted_of(step.node, False)}


def _check_one_name(named, test, values, step) -> None:
    """Two groups of a GroupBy whose values make one file label (``a-b`` and ``a_b``, ``Patient``
    and ``patient``) would write one set of maps, the last replacing the first: refused.

    ``named`` maps each test's name (task, space, contrast label, desc parts) to its values."""
    key = (test.task, test.space, test.contrast, test.desc_parts)
    earlier = named.setdefault(key, values)
    if earlier != values:
        differ = next(k for k in values if earlier.get(k) != values[k])
        raise UsageError(
            f"Node {step.node.name!r} groups by {differ!r}, whose values {earlier[differ]!r} and {values[differ]!r} "
            "make one file label, so their maps would replace each other; spell them apart in letters or digits "
            "(participants.tsv or sessions.tsv)."
        )


def _check_grid(test, output_dir, grids) -> None:
    """The test's masks on one grid (``grids``: see :func:`.maps.same_grid`)."""
    from ..maps import other_grid

    masks = [item.mask for item in test.inputs]
    if is_surface_file(masks[0]):
        _check_vertices(test, output_dir, masks, grids)
        return
    differ = other_grid(masks, grids=grids)
    if differ is not None:
        space = test.inputs[0].space
        advice = (f"space-{space} is each subject's own anatomy, so test a template space (rerun the participant "
                  "level with --space MNI152NLin2009cAsym, say)" if space in NATIVE_VOLUME_SPACES else
                  "rerun the participant level with one --space, and one resolution (res-) of it, for all subjects")
        raise NoDataError(
            f"The subjects' task-{test.task} masks in {output_dir} are on different voxel grids ({masks[0]} and "
            f"{masks[differ[0]]}: {differ[1]}); {advice}."
        )


def _check_vertices(test, output_dir, masks, forms) -> None:
    """The test's surface or CIFTI masks on the same vertices or grayordinates
    (:meth:`.surface.Form.same_as`: maps of equal size may still be of other vertices).
    ``forms``: as ``grids`` of :func:`_check_grid`, each file's form read once."""
    from ..surface import read_form

    for mask in masks:
        if ("form", mask) not in forms:
            forms["form", mask] = read_form(mask, what="Subject mask")
    first = forms["form", masks[0]]
    for mask in masks[1:]:
        other = forms["form", mask]
        if not first.same_as(other):
            raise NoDataError(
                f"The subjects' task-{test.task} space-{test.space} masks in {output_dir} lie on different "
                f"{'vertices' if first.kind == 'gifti' else 'grayordinates'} ({masks[0]} and {mask}: "
                f"{first.difference(other)}), so their maps cannot be tested together; check that the subjects' "
                "series are on one mesh (their space- and den- entities, and the preprocessing that wrote them)."
            )


#: A group mask below this part of the median subject mask is said to (a subject's mask that
#: barely overlaps the others' leaves the group test a few voxels).
SMALL_GROUP_MASK = 0.5


def _intercept_only(node) -> bool:
    """Whether a node's design is the intercept alone (its test, the inputs' mean)."""
    from ..model.bsm import is_intercept

    return all(is_intercept(x) for x in node.x)


def _check_masks_overlap(test, output_dir, masks) -> list[Note]:
    """Refuse, before any group file is written, a test whose subjects' masks have no voxel in
    common: its maps would be empty. ``masks``: the group mask of each set of subject masks,
    made once (the tests of a task's contrasts share them) and kept for computing the tests.

    Returns a warning when the group mask keeps less than :data:`SMALL_GROUP_MASK` of the
    median subject mask (said once per set of masks), naming the subject whose mask holds the
    least of what at least half the masks share."""
    from .. import combine
    from ..maps import is_empty, least_shared, why_empty

    paths = tuple(item.mask for item in test.inputs)
    distinct = list(dict.fromkeys(paths))
    owners = {item.mask: f"sub-{item.subject}" + (f" ses-{item.session}" if item.session else "")
              for item in test.inputs}
    notes = []
    if paths not in masks:
        sizes = []
        masks[paths] = combine.intersect_masks(paths, sizes)
        kept, median = int(np.count_nonzero(np.asanyarray(masks[paths].dataobj))), float(np.median(sizes))
        if kept and kept < SMALL_GROUP_MASK * median:
            notes.append(Note(
                "mask",
                f"The group mask of task-{test.task}{test.parts_text} keeps {kept} voxels, {kept / median:.0%} of the "
                f"median subject mask ({median:.0f}): the mask of {owners[distinct[least_shared(distinct)]]} holds "
                "the least of what the others share; check it (the subject's report), or leave that subject out with "
                "--participant-label.",
                task=test.task,
            ))
    if not is_empty(masks[paths]):
        return notes
    told = why_empty(distinct, [owners[path] for path in distinct])
    raise NoDataError(
        f"The subjects' task-{test.task} masks in {output_dir} have no voxel in common ({told}), so the group "
        f"mask of contrast-{test.contrast}{test.parts_text} would be empty; rerun the participant level for "
        "those subjects, or leave them out with --participant-label."
    )


#: The variables a dataset node's inputs carry besides the columns of participants.tsv
#: (and of sessions.tsv, for session maps): see :func:`_input_table`.
INPUT_VARIABLES = ("subject", "session", "task", "contrast")


def check_dataset_variables(model, settings) -> None:
    """At the participant level: refuse a dataset node whose ``Model.X`` names a variable that
    nothing can give it (neither ``participants.tsv`` nor the inputs' entities), or a level
    (``group.contol``) that its ``participants.tsv`` column does not hold, which the group level
    refuses once every subject is fitted.

    Only nodes whose names come from those alone are checked: grouped by contrast, with no
    transformations (which make names of their own: ``Output``, ``OutputSuffix``, a ``Factor``'s
    ``Sep``) and no formula; and none when a ``sessions.tsv`` exists, whose columns session maps
    carry, or when ``participants.tsv`` cannot be read (the group level says why).

    Raises
    ------
    ModelError
        A name that is no variable, or a level of none of the subjects (64).
    InputFileError
        Such a name, and BIDS_DIR has no ``participants.tsv`` (66).
    """
    from ..errors import FixedFxError
    from ..model.bsm import ModelError, is_intercept
    from ..model.variables import is_wildcard, listed

    nodes = [node for node in model.nodes_at("dataset")
             if node.formula is None and not node.transformations and "contrast" in node.group_by]
    wanted = {node.name: [x for x in node.x if isinstance(x, str) and not is_intercept(x) and not is_wildcard(x)]
              for node in nodes}
    if not any(wanted.values()):
        return
    try:
        participants = read_participants(settings.bids_dir)
    except FixedFxError:
        return
    columns = set(participants.columns)
    known = columns | set(INPUT_VARIABLES)
    for node in nodes:
        unknown = [x for x in wanted[node.name] if x not in known and x.split(".", 1)[0] not in known]
        if unknown and next(Path(settings.bids_dir).glob("sub-*/sub-*_sessions.tsv"), None) is None:
            text = (f"Node {node.name!r} of {settings.model_file}: Model.X names {unknown[0]!r}, which is not a "
                    f"variable (variables: {listed(sorted(known), unknown[0])}), so the group level would refuse it")
            if not columns:
                raise InputFileError(f"{text}; BIDS_DIR has no participants.tsv (or one of participant_id alone), "
                                     "whose columns a dataset node's Model.X names.")
            raise ModelError(f"{text}; correct the name in the model or the column in participants.tsv.")
        for name in wanted[node.name]:
            column, _, level = name.rpartition(".")
            if column in columns and name not in columns and participants[column].dtype.kind in "OSU":
                levels = sorted({str(v) for v in participants[column].dropna()})
                if level not in levels:
                    raise ModelError(f"Node {node.name!r} of {settings.model_file}: Model.X names {name!r}, but "
                                     f"participants.tsv's {column} has no level {level!r} (its levels: "
                                     f"{', '.join(levels) or 'none'}); correct the name in the model.")


def read_participants(bids_dir, coded=()):
    """``participants.tsv`` as a table indexed by subject label (``sub-`` removed); an empty
    table when the dataset has none.

    Parameters
    ----------
    bids_dir : Path
    coded : sequence of str
        Columns read as labels where they hold numbers that ``participants.json`` gives as the
        codes of its ``Levels`` (``1`` of ``{"1": "patient", "2": "control"}`` is the label
        ``1``), so that ``--group-covariates`` compares their groups rather than fit a slope.
    """
    table = _labelled_table(bids_dir / "participants.tsv", "participant_id", "subject", "sub", "participants")
    described = described_columns(bids_dir) if coded else {}
    for column in set(coded) & set(table.columns):
        labels = _level_codes(table[column], described.get(column, {}).get("Levels"))
        if labels is not None:
            table[column] = labels
    return table


def _level_codes(values, levels):
    """``values`` (a column of numbers) as the keys of ``levels`` (participants.json's
    ``Levels``) that they equal, or None when they are not numbers or some is not a key."""
    import pandas as pd

    if not isinstance(levels, dict) or not pd.api.types.is_numeric_dtype(values):
        return None
    codes = {}
    for key in levels:
        try:
            codes.setdefault(float(key), str(key))
        except (TypeError, ValueError):
            continue
    known = values.dropna()
    if not len(known) or not set(known.astype(float)) <= set(codes):
        return None
    return values.map(lambda value: value if pd.isna(value) else codes[float(value)]).astype(object)


def described_columns(bids_dir) -> dict:
    """What ``participants.json`` says of each column (``Levels``, ``Units``...); nothing when
    it is missing or unreadable (the group level does not need it)."""
    from ..errors import InputFileError
    from ..jsonfile import read_object

    path = bids_dir / "participants.json"
    if not path.is_file():
        return {}
    try:
        described = read_object(path, "participants.json")
    except InputFileError:
        return {}
    return {str(column): entry for column, entry in described.items() if isinstance(entry, dict)}


def read_sessions(bids_dir, subject):
    """A subject's ``sessions.tsv`` as a table indexed by session label (``ses-`` removed);
    an empty table when the subject has none."""
    return _labelled_table(bids_dir / f"sub-{subject}" / f"sub-{subject}_sessions.tsv", "session_id", "session",
                           "ses", "sessions")


def _labelled_table(path, id_column, name, key, kind):
    """A BIDS table of subjects or sessions, indexed by their label (``<key>-`` removed).

    Spaces around a value or a column's name are dropped (a spreadsheet's ``sub-01 `` is
    ``sub-01``, ``41 `` is 41).

    Raises
    ------
    InputFileError
        No ``id_column``, or a label on two rows (which row's values hold is unknown).
    """
    import pandas as pd

    from ..errors import InputFileError

    if not path.is_file():
        check_regular_file(path, str(path))  # /dev/zero was read as a missing table
        return pd.DataFrame(index=pd.Index([], name=name))
    table = _stripped(designs.read_table(path, f"{kind} file", text_columns=(id_column,)), text=(id_column,))
    if id_column not in table:
        raise InputFileError(f"{path} has no {id_column} column, which BIDS {kind} files need.")
    # a column named as a variable every map carries (subject, task...) would be overwritten by it:
    # set aside, and refused where a model or --group-covariates names it (clashing_column)
    clashing = [str(c) for c in table.columns if c in INPUT_VARIABLES and c != id_column]
    table = table.drop(columns=clashing)
    table[name] = table.pop(id_column).astype(str).str.replace(f"^{key}-", "", regex=True)
    repeated = table[name][table[name].duplicated()]
    if len(repeated):
        raise InputFileError(f"{path} lists {key}-{repeated.iloc[0]} on more than one row; give each one row.")
    table = table.set_index(name)
    table.attrs["clashing"] = {column: path for column in clashing}
    return table


def check_no_clashing_column(table, names, what) -> None:
    """Refuse ``names`` (variables a model or an option names) that are also the name of a column
    of ``participants.tsv`` or ``sessions.tsv`` set aside for clashing with a variable every map
    carries (a ``task`` column beside the task entity): which one is meant cannot be told.

    Raises
    ------
    UsageError
    """
    for column, path in table.attrs.get("clashing", {}).items():
        if column in names:
            raise UsageError(f"{what} names {column!r}, which is both a column of {path} and a variable every map "
                             f"carries ({', '.join(INPUT_VARIABLES)}): rename the column in {path.name}.")


def _stripped(table, text=()):
    """The table with spaces around its names and text values dropped, ``n/a`` and empty
    values missing, and columns that then hold only numbers made numbers (but ``text``)."""
    import pandas as pd

    table = table.rename(columns=lambda column: column.strip() if isinstance(column, str) else column)
    for column in table.columns:
        if table[column].dtype.kind not in "OSU" and not pd.api.types.is_string_dtype(table[column]):
            continue
        values = table[column].map(lambda value: value.strip() if isinstance(value, str) else value)
        values = values.mask(values.isin(["n/a", ""]))
        numbers = pd.to_numeric(values, errors="coerce")
        table[column] = numbers if numbers.notna().sum() == values.notna().sum() and column not in text else values
    return table


def _coded_as_slopes(node, table, bids_dir) -> list[Note]:
    """A note for each column that ``Model.X`` names alone whose numbers all are codes of the
    ``Levels`` that ``participants.json`` gives it (``{"1": "patient", "2": "control"}``): the
    design fits it as one covariate, a slope over the codes, where ``--group-covariates``
    compares its groups."""
    import pandas as pd

    factored = {name for step in node.transformations if step.name == "Factor" for name in step.input}
    named = [x for x in node.x if isinstance(x, str) and x in table.columns and x not in factored
             and pd.api.types.is_numeric_dtype(table[x])]
    if not named:
        return []
    described = described_columns(bids_dir)
    notes = []
    for column in named:
        levels = described.get(column, {}).get("Levels")
        if isinstance(levels, dict) and _level_codes(table[column], levels) is not None:
            notes.append(Note("selection", (
                f"Node {node.name!r}: Model.X names {column!r}, whose numbers participants.json gives as the codes of "
                f"its Levels ({', '.join(f'{k}: {v}' for k, v in list(levels.items())[:4])}), so the design fits it "
                f"as one covariate, a slope over the codes; to compare its groups, add a Factor of {column!r} to the "
                "node's Transformations and name its levels in Model.X")))
    return notes


def _check_numbers_with_stray_text(node, table) -> None:
    """A column of ``Model.X`` that holds numbers but for a word or two (``unknown`` for n/a)
    was modelled as categories, one column per value, and the slope's contrast replaced by
    them: refused, as ``--group-covariates`` refuses it."""
    import pandas as pd

    from ..errors import InputFileError

    for entry in node.x:
        if not isinstance(entry, str) or entry not in table.columns or table[entry].dtype.kind not in "OSU":
            continue
        values = table[entry].dropna()
        numbers = pd.to_numeric(values, errors="coerce").notna()
        if len(values) / 2 < numbers.sum() < len(values):
            raise InputFileError(
                f"Node {node.name!r}: Model.X {entry!r} is a column of participants.tsv (or sessions.tsv) that holds "
                f"numbers but also {values[~numbers].iloc[0]!r}, which is not a number; write n/a for a missing value."
            )


def _check_level_among_inputs(node, table, message, bids_dir=None) -> None:
    """Refuse, as data missing from the selection (66), a ``column.level`` of ``Model.X`` that no
    input has but ``participants.tsv`` holds (patients alone selected: ``group.control``), which
    the design's check said "is not a variable"; a level it does not hold is a misspelling (64)."""
    import re

    from ..errors import FixedFxError
    from ..model.bsm import ModelError

    found = re.search(r"names '([^']+)', which is not a variable", message)
    if not found or "." not in found.group(1):
        return
    column, level = found.group(1).rsplit(".", 1)
    if column not in table.columns or table[column].dtype.kind not in "OSU":
        return
    present = sorted({str(v) for v in table[column].dropna()})
    if level in present:
        return
    try:
        every = read_participants(bids_dir) if bids_dir is not None else None
    except FixedFxError:
        every = None
    if every is not None and column in every.columns:
        levels = sorted({str(v) for v in every[column].dropna()})
        if level not in levels:
            raise ModelError(f"Node {node.name!r}: Model.X names {found.group(1)!r}, but participants.tsv's {column} "
                             f"has no level {level!r} (its levels: {', '.join(levels) or 'none'}); correct the name "
                             "in the model.")
    subjects = sorted(set(table["subject"])) if "subject" in table else []
    raise NoDataError(
        f"Node {node.name!r}: Model.X names {found.group(1)!r}, but no subject tested ({few([f'sub-{s}' for s in subjects])}) "
        f"has {column} {level!r} in participants.tsv (they have {', '.join(present) or 'none'}); select subjects of "
        f"every level the model names, or leave {found.group(1)!r} out of it."
    )


def _model_test(test, node, table, unlisted=(), bids_dir=None):
    """A test designed by a model's dataset node: its design over the inputs (from
    ``participants.tsv`` and ``sessions.tsv``) and its contrasts; ``unlisted``: the subjects
    without a row in ``participants.tsv``."""
    from ..model.bsm import ModelError
    from ..model.contrasts import contrast_matrices
    from ..model.group import build_group_design, node_named

    table = table.reset_index(drop=True)
    _check_numbers_with_stray_text(node, table)
    try:
        design = build_group_design(node, table, label="subject", unlisted=unlisted)
    except ModelError as error:
        _check_level_among_inputs(node, table, str(error), bids_dir)
        if "which is not a variable" not in str(error) or set(table.columns) - {"subject", "contrast", "task", "session"}:
            raise
        raise InputFileError(f"{str(error).rstrip('.')}; BIDS_DIR has no participants.tsv (or one of participant_id "
                             "alone), whose columns a dataset node's Model.X names.") from None  # a missing file: 66
    kept = [item for item, keep in zip(test.inputs, ~table.index.isin(design.dropped)) if keep]
    notes = [Note("selection", text, task=test.task) for text in design.notes]
    if len(kept) < MIN_SUBJECTS:
        raise NoDataError(
            f"Node {node.name!r}: task-{test.task} contrast-{test.contrast} keeps {len(kept)} subject(s) "
            f"after leaving out those with missing values; at least {MIN_SUBJECTS} are needed."
        )
    matrix = design.matrix.reset_index(drop=True)
    names = set(table["contrast"])
    contrasts, skipped = contrast_matrices(node, tuple(matrix.columns), incoming=names.pop() if len(names) == 1 else None)
    notes += [Note("contrast-skipped", text, task=test.task) for text in skipped]
    dof = len(kept) - np.linalg.matrix_rank(matrix.to_numpy())
    if dof < 1:
        dropped = [test.inputs[i].subject for i in design.dropped]
        why = (f" once {', '.join(f'sub-{s}' for s in dropped)} {'was' if len(dropped) == 1 else 'were'} left out "
               "for missing values in participants.tsv (n/a or no row)" if dropped else "")
        error = NoDataError if dropped else UsageError  # the data's missing values, or the model's size
        raise error(
            f"{node_named(node)}: the design of task-{test.task} contrast-{test.contrast} has "
            f"{matrix.shape[1]} columns for {_inputs_counted(kept)}{why}, leaving no degrees of freedom; model fewer "
            "columns, or more subjects."
        )
    return replace(test, inputs=tuple(kept), design=matrix, contrasts=tuple(contrasts)), notes


def _inputs_counted(inputs) -> str:
    """``3 subjects``, or ``3 maps of 2 subjects`` (a subject's sessions, or contrasts, apart)."""
    subjects = len({item.subject for item in inputs})
    return f"{len(inputs)} subjects" if subjects == len(inputs) else f"{len(inputs)} maps of {subjects} subjects"


def _check_computes_a_map(node, tests) -> None:
    """Refuse a dataset node none of whose tests has a contrast left (each names a column that
    its design lacks), as a run node that computes no map is refused; a contrast left out of
    some of a node's tests only is a note."""
    if not tests or any(test.contrasts for test in tests):
        return
    from ..model.bsm import ModelError
    from ..model.contrasts import contrast_matrices

    design = tests[0].design
    _, skipped = contrast_matrices(node, tuple(design.columns))
    raise ModelError(f"{skipped[0] if skipped else f'Node {node.name!r} has no contrast'}, so the node computes no map "
                     f"(its design's columns: {', '.join(map(str, design.columns))}).")


def _check_same_model(test):
    """Refuse to test together maps of one contrast made with different models (SPEC §4)."""
    firsts = {}
    for item in test.inputs:
        first = firsts.setdefault(item.contrast, item)
        if item is first:
            continue
        reference = (first.info.model.compared(), first.info.contrast.weights, first.info.estimator,
                     first.info.precision_weighted, first.info.model_file)
        other = (item.info.model.compared(), item.info.contrast.weights, item.info.estimator,
                 item.info.precision_weighted, item.info.model_file)
        if other != reference:
            differing = _differences(first.info, item.info)
            raise UsageError(
                f"sub-{first.subject} and sub-{item.subject} have task-{test.task} contrast-{item.contrast} "
                f"maps made with different models ({differing}); rerun the participant level "
                "for all subjects with the same options."
            )


#: How a subject node combined its inputs, by its estimator (for messages).
def _differences(one, other) -> str:
    one_json, other_json = one.to_json(), other.to_json()
    keys = ["Contrast", "SmoothingFWHM", "NoiseModel", "HRFModel", "DriftModel", "HighPass", "ConfoundsOption",
            "DummyScansOption", "NonSteadyState", "DriftOrder", "ConvolveHRFModels", "ModelFile", "ModelNodesDigest",
            "runs combined by", "PrecisionWeighted"]
    parts = []
    for key in keys:
        a, b = one_json.get(key), other_json.get(key)
        if key == "runs combined by":
            if (one.estimator, other.estimator) == ("meta", "meta"):
                continue
            parts.append(f"{key} {one.combined_by} vs {other.combined_by}")
            continue
        if key == "PrecisionWeighted":
            if None in (one.precision_weighted, other.precision_weighted):
                continue  # not both fixed effects: said above
            a, b = one.precision_weighted, other.precision_weighted
        if key == "Contrast":
            a, b = a.get("Weights"), b.get("Weights")
            key = "contrast weights"
        if key == "ModelNodesDigest" and a != b:  # two versions of a model file of one name (or none)
            parts.append("the run, session or subject nodes of the model file (ModelNodesDigest differs)")
            continue
        if key == "ModelFile" and a != b and None in (a, b):
            parts.append(f"ModelFile {json_text(a)} vs {json_text(b)}: the job that wrote null had settings no model "
                         "states (--design-dir, --mask FILE, a load_confounds strategy, or events whose modulation "
                         "is n/a for some events or that only some runs have; its log said which)")
            continue
        if a != b:
            parts.append(f"{key} {json_text(a)} vs {json_text(b)}")
    return "; ".join(parts) or "sidecars differ"


def json_text(value) -> str:
    """A compact JSON rendering of a value, for messages."""
    import json

    return json.dumps(value, separators=(",", ":"))
