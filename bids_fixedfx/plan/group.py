"""Group plans: the subject maps the group level tests, found and checked once."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, replace

import numpy as np

from .. import design as designs
from ..errors import NoDataError, UsageError
from ..notes import Note
from ..surface import check_inference, files_of, group_spaces, is_surface_file

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


@dataclass(frozen=True, eq=False)
class GroupTest:
    """One group test: a task, space and contrast, over the subjects that have it.

    With a model's dataset node, ``design`` is its design matrix over ``inputs`` (subjects
    with missing values already left out) and ``contrasts`` its contrasts; without one,
    both are None (a one-sample test of the intercept, or fixed effects).
    """

    task: str
    space: str | None
    contrast: str
    inputs: tuple[SubjectMapFiles, ...]
    design: object = None  # pandas.DataFrame
    contrasts: tuple = ()

    @property
    def subjects(self) -> tuple[str, ...]:
        return tuple(item.subject for item in self.inputs)

    @property
    def name(self) -> str:
        return self.inputs[0].info.contrast.name


@dataclass(frozen=True, eq=False)
class GroupPlan:
    """The group level's tests, and the contrasts left untested (fewer than two subjects)."""

    tests: tuple[GroupTest, ...]
    untested: tuple[GroupTest, ...]
    notes: tuple[Note, ...]

    @property
    def by_key(self) -> dict:
        """``(task, space, contrast) -> inputs`` of every test and untested contrast."""
        return {(t.task, t.space, t.contrast): list(t.inputs) for t in (*self.tests, *self.untested)}


def find_subject_maps(output_dir) -> list[SubjectMapFiles]:
    """Every subject-level effect map in OUTPUT_DIR, with its variance, sidecar and mask.

    Parameters
    ----------
    output_dir : Path

    Returns
    -------
    maps : list of SubjectMapFiles
        Their sidecars are not read yet (``info`` is None).
    """
    from .. import naming

    found = []
    effects = [
        *output_dir.glob("sub-*/func/sub-*_task-*_stat-effect_statmap.nii.gz"),
        *output_dir.glob("sub-*/func/sub-*_task-*_hemi-L_*_stat-effect_statmap.func.gii"),  # a GIFTI pair's left map
        *output_dir.glob("sub-*/func/sub-*_task-*_stat-effect_statmap.dscalar.nii"),
    ]
    for effect in sorted(effects):
        entities = naming.parse(effect.relative_to(output_dir))
        if set(entities) - {"subject", "task", "space", "hemi", "den", "contrast", "stat", "suffix", "extension"}:
            continue  # a run-level map
        common = {"subject": entities["subject"], "task": entities["task"], "space": entities.get("space")}
        where = {key: entities[key] for key in ("hemi", "den", "extension") if key in entities}
        label = entities["contrast"]

        def path(kind, **more):
            return output_dir / naming.build(kind, **common, **{**where, **more})

        found.append(SubjectMapFiles(
            **common, contrast=label, effect=effect,
            variance=path("subject_statmap", contrast=label, stat="variance"),
            sidecar=path("subject_statmap", contrast=label, stat="effect", extension=".json"),
            mask=path("subject_mask"),
            info=None,
        ))
    return found


def plan_group(settings, model=None) -> GroupPlan:
    """Find the subject maps to test and check them, before any group file is written.

    Parameters
    ----------
    settings : Settings
    model : bids_fixedfx.model.Model, optional
        Its dataset node designs each test from ``participants.tsv``.

    Returns
    -------
    plan : GroupPlan

    Raises
    ------
    NoDataError
        No subject maps, fewer than two subjects, missing files, masks on other grids.
    UsageError
        Subjects' maps made with different models.
    """
    from ..combine import same_grid
    from ..sidecars import StatmapSidecar

    output_dir = settings.output_dir
    found = find_subject_maps(output_dir) if output_dir.is_dir() else []
    if not found:
        raise NoDataError(f"OUTPUT_DIR {output_dir} has no subject-level maps; run the participant level first.")
    wanted_spaces = {None if space.lower() == "none" else space for space in settings.spaces}
    found = [
        item for item in found
        if (not settings.participant_label or item.subject in settings.participant_label)
        and (not settings.task or item.task in settings.task)
        and (not wanted_spaces or item.space in wanted_spaces)
    ]
    found, native = group_spaces(found, settings.spaces)
    check_inference(settings.inference, [item.space for item in found if is_surface_file(item.effect)])
    subjects = sorted({item.subject for item in found})
    if len(subjects) < MIN_SUBJECTS:
        raise NoDataError(
            f"The group level needs at least {MIN_SUBJECTS} subjects with maps in {output_dir}; "
            f"found {len(subjects)}{' (sub-' + subjects[0] + ')' if subjects else ''}."
        )
    grouped = defaultdict(list)
    for item in found:
        for path in (*files_of(item.effect), *files_of(item.variance), item.sidecar, *files_of(item.mask)):
            if not path.is_file():
                raise NoDataError(f"{path} is missing; rerun the participant level for sub-{item.subject}.")
        item = replace(item, info=StatmapSidecar.read(item.sidecar))
        grouped[(item.task, item.space, item.contrast)].append(item)
    tests, untested, notes = [], [], []
    notes += [Note("selection", f"space-{space} maps were not tested: their vertices are each subject's own")
              for space in native]
    for (task, space, label), items in sorted(grouped.items(), key=lambda kv: tuple(map(str, kv[0]))):
        test = GroupTest(task, space, label, tuple(items))
        if len(items) < MIN_SUBJECTS:
            notes.append(Note(
                "selection",
                f"task-{task} contrast-{label} has maps for one subject only (sub-{items[0].subject}), "
                "so it is not tested; run the participant level for the other subjects first",
                subject=items[0].subject, task=task,
            ))
            untested.append(test)
            continue
        _check_same_model(test)
        if model is not None and model.nodes_at("dataset"):
            test, more = _model_test(test, model.nodes_at("dataset")[0], settings)
            notes += more
        if not same_grid([item.mask for item in test.inputs]):
            raise NoDataError(
                f"The subjects' task-{task} masks in {output_dir} are on different voxel grids; "
                "rerun the participant level with one --space for all subjects."
            )
        tests.append(test)
    if not tests:
        raise NoDataError(
            f"No contrast has maps for {MIN_SUBJECTS} or more subjects; nothing to test at the group level."
        )
    return GroupPlan(tuple(tests), tuple(untested), tuple(notes))


def read_participants(bids_dir):
    """``participants.tsv`` as a table indexed by subject label (``sub-`` removed); an empty
    table when the dataset has none."""
    import pandas as pd

    path = bids_dir / "participants.tsv"
    if not path.is_file():
        return pd.DataFrame(index=pd.Index([], name="subject"))
    table = designs.read_table(path, "participants file")
    if "participant_id" not in table:
        from ..errors import InputFileError

        raise InputFileError(f"{path} has no participant_id column, which BIDS participants files need.")
    table["subject"] = table.pop("participant_id").astype(str).str.replace(r"^sub-", "", regex=True)
    return table.set_index("subject")


def _model_test(test, node, settings):
    """A test designed by a model's dataset node: its design over the subjects (from
    ``participants.tsv``) and its contrasts."""
    import pandas as pd

    from ..model.contrasts import contrast_matrices
    from ..model.group import build_group_design

    participants = read_participants(settings.bids_dir)
    rows = []
    for item in test.inputs:
        row = participants.loc[item.subject].to_dict() if item.subject in participants.index else {}
        rows.append({**row, "subject": item.subject, "contrast": item.info.contrast.name, "task": item.task})
    table = pd.DataFrame(rows)
    design = build_group_design(node, table, label="subject")
    kept = [item for item, keep in zip(test.inputs, ~table.index.isin(design.dropped)) if keep]
    notes = [Note("selection", text, task=test.task) for text in design.notes]
    if len(kept) < MIN_SUBJECTS:
        raise NoDataError(
            f"Node {node.name!r}: task-{test.task} contrast-{test.contrast} keeps {len(kept)} subject(s) "
            f"after leaving out those with missing values; at least {MIN_SUBJECTS} are needed."
        )
    matrix = design.matrix.reset_index(drop=True)
    contrasts, skipped = contrast_matrices(node, tuple(matrix.columns), incoming=test.name)
    notes += [Note("contrast-skipped", text, task=test.task) for text in skipped]
    dof = len(kept) - np.linalg.matrix_rank(matrix.to_numpy())
    if dof < 1:
        raise UsageError(
            f"Node {node.name!r}: the design of task-{test.task} contrast-{test.contrast} has "
            f"{matrix.shape[1]} columns for {len(kept)} subjects, leaving no degrees of freedom."
        )
    return replace(test, inputs=tuple(kept), design=matrix, contrasts=tuple(contrasts)), notes


def _check_same_model(test):
    """Refuse to test together subject maps made with different models (SPEC §4)."""
    first = test.inputs[0]
    reference = (first.info.model, first.info.contrast.weights,
                 (first.info.fixed_effects or {}).get("PrecisionWeighted"))
    for item in test.inputs[1:]:
        other = (item.info.model, item.info.contrast.weights,
                 (item.info.fixed_effects or {}).get("PrecisionWeighted"))
        if other != reference:
            differing = _differences(first.info, item.info)
            raise UsageError(
                f"sub-{first.subject} and sub-{item.subject} have task-{test.task} contrast-{test.contrast} "
                f"maps made with different models ({differing}); rerun the participant level "
                "for all subjects with the same options."
            )


def _differences(one, other) -> str:
    one_json, other_json = one.to_json(), other.to_json()
    keys = ["Contrast", "SmoothingFWHM", "NoiseModel", "HRFModel", "DriftModel", "HighPass", "FixedEffects"]
    parts = []
    for key in keys:
        a, b = one_json.get(key), other_json.get(key)
        if key == "FixedEffects":
            a, b = (a or {}).get("PrecisionWeighted"), (b or {}).get("PrecisionWeighted")
            key = "PrecisionWeighted"
        if key == "Contrast":
            a, b = a.get("Weights"), b.get("Weights")
            key = "contrast weights"
        if a != b:
            parts.append(f"{key} {json_text(a)} vs {json_text(b)}")
    return "; ".join(parts) or "sidecars differ"


def json_text(value) -> str:
    """A compact JSON rendering of a value, for messages."""
    import json

    return json.dumps(value, separators=(",", ":"))
