"""The group level's methods facts, read back from the sidecars the participant level wrote.

A subject map's sidecar (:class:`~bids_fixedfx.sidecars.StatmapSidecar`) names in its
``Sources`` the run maps it combined (or, for a subject with one run, that run's files);
each run map's sidecar names the run's design, whose sidecar
(:class:`~bids_fixedfx.sidecars.DesignSidecar`) holds the run's facts: BOLD series, mask,
volumes, conditions, confounds, drift order. Every name is parsed by
:func:`bids_fixedfx.naming.parse`; a sidecar that cannot be read is an error naming it.
So the group's text is right however the participant level was run (all subjects at
once, or one job per subject).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from .. import naming
from ..errors import InputFileError
from ..sidecars import DesignSidecar, StatmapSidecar, read_json
from ..surface import is_surface_file, kind_of
from .facts import (
    FirstLevel,
    GroupLevel,
    LeftOutRun,
    Methods,
    ModelFacts,
    RunFacts,
    contrast_facts,
    corrected_inference,
    dataset_node_facts,
    figure_threshold,
    is_confound_strategy,
    pipeline_of,
    software_versions,
)

#: The key of a statmap sidecar that records the command line that made the map.
COMMAND_KEY = "CommandLine"


@dataclass(frozen=True, eq=False)
class RunRecord:
    """A run as the outputs describe it: its design's name, entities and sidecar."""

    design_tsv: Path  # relative to OUTPUT_DIR
    entities: dict
    design: DesignSidecar


class Reader:
    """Reads sidecars of one OUTPUT_DIR, each once (for one write of the methods text or a page).

    Parameters
    ----------
    output_dir : Path
    links : dict, optional
        OUTPUT_DIR's ``DatasetLinks`` (default: read from its ``dataset_description.json``).
    """

    def __init__(self, output_dir, links=None):
        self.output_dir = Path(output_dir)
        self._statmaps, self._designs, self._links = {}, {}, links
        self._folders, self._pipelines = {}, {}
        self.descriptions = {}

    def resolve(self, source: str) -> Path:
        """The file a ``Sources`` entry names: ``bids::path`` (OUTPUT_DIR), ``bids:name:path``
        (a dataset of ``DatasetLinks``), or a path relative to OUTPUT_DIR. Its folder is
        resolved (once: thousands of runs share a few folders), its name kept (a file that is
        a link, as in a DataLad dataset, is named as the dataset names it)."""
        if source.startswith("bids::"):
            return self.output_dir / _within(source[len("bids::"):], source, self.output_dir)
        if source.startswith("bids:"):
            name, _, path = source[len("bids:"):].partition(":")
            links = self.dataset_links()
            if name not in links:
                raise InputFileError(
                    f"{self.output_dir / 'dataset_description.json'} has no DatasetLinks entry {name!r} "
                    f"for the source {source}; rerun the participant level."
                )
            path = self.output_dir / links[name] / _within(path, source, f"the dataset {name!r}")
        else:
            path = self.output_dir / _within(source, source, self.output_dir)
        folder = self._folders.get(path.parent)
        if folder is None:
            folder = self._folders[path.parent] = path.parent.resolve()
        return folder / path.name

    def dataset_links(self) -> dict:
        """OUTPUT_DIR's ``DatasetLinks`` (name -> dataset), read once."""
        if self._links is None:
            self._links = read_json(self.output_dir / "dataset_description.json").get("DatasetLinks", {})
        return self._links

    def relative(self, path: Path) -> Path | None:
        """``path`` relative to OUTPUT_DIR, or None for a file outside it."""
        try:
            return Path(path).relative_to(self.output_dir)
        except ValueError:
            return None

    def statmap(self, relative) -> StatmapSidecar:
        """The statmap sidecar at ``relative`` (to OUTPUT_DIR), read once."""
        if relative not in self._statmaps:
            self._statmaps[relative] = StatmapSidecar.read(self.output_dir / relative)
        return self._statmaps[relative]

    def design(self, relative) -> DesignSidecar:
        """The design sidecar at ``relative`` (to OUTPUT_DIR), read once."""
        if relative not in self._designs:
            self._designs[relative] = DesignSidecar.read(self.output_dir / relative)
        return self._designs[relative]

    def run_test(self, info: StatmapSidecar, _seen=()) -> str:
        """The model's Test of a subject (or session) map's contrast where its runs' maps were
        made (``pass``: the runs' effect and variance only), as the first run map under it says."""
        for relative, entities in self._own_sources(info):
            if entities.get("suffix") == "statmap" and entities.get("stat") == "effect":
                sidecar = _sidecar_of(relative, entities)
                return self.run_test(self.statmap(sidecar), _unseen(sidecar, _seen, self.output_dir))
        return info.contrast.test

    def runs_of(self, info: StatmapSidecar, _seen=()) -> list[RunRecord]:
        """The runs a subject (or session) map was computed from, with their design sidecars.

        Parameters
        ----------
        info : StatmapSidecar
            A subject or session map's sidecar (a subject map's sources may be session maps).
        """
        records = []
        for relative, entities in self._own_sources(info):
            if entities.get("suffix") == "statmap" and entities.get("stat") == "effect":
                # a run's map (whose sources are its design), or a session's (whose sources are runs')
                sidecar = _sidecar_of(relative, entities)
                records += self.runs_of(self.statmap(sidecar), _unseen(sidecar, _seen, self.output_dir))
            elif entities.get("suffix") == "design" and entities.get("extension") == ".tsv":
                records.append(self._record(relative, entities))
        return records

    def run_f_tests(self, design_tsv) -> dict:
        """The F tests of the run whose design is ``design_tsv`` (relative to OUTPUT_DIR; None:
        none), by name, as contrast facts: F tests stay the runs', so no subject map's sources
        lead to them, and one run of a model tells them all (a glob of its folder, read once)."""
        if design_tsv is None or not Path(design_tsv).name.endswith("_design.tsv"):
            return {}
        design_tsv = Path(design_tsv)
        stem = design_tsv.name.removesuffix("_design.tsv")
        found = {}
        conditions = self.design(design_tsv.with_suffix(".json")).conditions
        for sidecar in sorted((self.output_dir / design_tsv.parent).glob(f"{stem}_*stat-F_statmap.json")):
            if not naming.parse(sidecar.name).get("contrast"):
                continue
            contrast = self.statmap(sidecar.relative_to(self.output_dir)).contrast
            if contrast.test == "F":
                found.setdefault(contrast.name, contrast_facts(contrast.name, contrast.weights, conditions, "F"))
        return found

    def _own_sources(self, info):
        """The sources that are files of OUTPUT_DIR, with their entities: ``bids::`` URIs (the
        app names its own files so; the input datasets, ``bids:<name>:``, lie outside OUTPUT_DIR),
        none that leads out of it."""
        for source in info.sources:
            if not source.startswith("bids::"):
                continue
            relative = source[len("bids::"):]
            if relative.strip("/") and not relative.startswith("/") and ".." not in relative.split("/"):
                yield relative, naming.parse(relative)

    def _record(self, relative, entities) -> RunRecord:
        return RunRecord(Path(relative), entities, self.design(_sidecar_of(relative, entities)))

    def pipeline(self, bold: Path) -> str | None:
        """:func:`.facts.pipeline_of` a file, once per folder."""
        if bold.parent not in self._pipelines:
            self._pipelines[bold.parent] = pipeline_of(bold, self.descriptions)
        return self._pipelines[bold.parent]


def _unseen(sidecar, seen: tuple, output_dir) -> tuple:
    """``seen`` and ``sidecar``, the maps followed down from a subject map; a map among its own
    sources (a tampered sidecar) is refused rather than followed for ever."""
    if sidecar in seen:
        raise InputFileError(f"{output_dir / sidecar} is among its own sources (through {len(seen)} other maps); "
                             "rerun the participant level to write the sidecars again.")
    return (*seen, sidecar)


def _within(relative: str, source: str, dataset) -> str:
    """A source's path in its dataset, refused when it leads out of it (an absolute path, or
    ``..``): a sidecar of a shared OUTPUT_DIR could otherwise have the group level read any file
    its user can (a description, an image) into its methods text and figures."""
    if not relative.strip("/") or relative.startswith("/") or ".." in relative.replace("\\", "/").split("/"):
        raise InputFileError(f"The source {source} of a sidecar leads out of {dataset}; rerun the participant "
                             "level to write the sidecars again.")
    return relative


def _sidecar_of(relative: str, entities: dict) -> Path:
    """The JSON sidecar of one of the app's files: its name with the extension swapped (the
    app builds both names from the same entities; :func:`.naming.build` gives the same name,
    slower: thousands of runs' sidecars are read at the group level)."""
    extension = entities.get("extension") or ""
    return Path(relative[:len(relative) - len(extension)] + ".json")


def _group_design_facts(designed) -> tuple:
    """The columns of the group design (the first test's: every test's has them, with their
    subjects' rows) and its contrasts, for the methods text."""
    if not designed:
        return (), ()
    contrasts = {}
    for test in designed:
        for matrix in test.contrasts:
            weights = ([{c: float(w) for c, w in zip(matrix.columns, row) if w != 0} for row in matrix.matrix]
                       if matrix.test == "F" else matrix.weights)
            contrasts.setdefault(matrix.source, contrast_facts(matrix.source, weights, (), matrix.test))  # (each tested per contrast)
    return tuple(str(c) for c in designed[0].design.columns), tuple(contrasts.values())


def _group_transformed(designed) -> tuple:
    """(column, what was done to it) for each column of the first group design that its node
    demeans, scales or orthogonalizes (a covariate's values are not those of ``participants.tsv``):
    the transformation's output, as the design names it."""
    node = designed[0].node if designed else None
    columns = {str(column) for column in designed[0].design.columns} if designed else set()
    said = []
    for transformation in getattr(node, "transformations", ()) or ():
        name, arguments = str(transformation.name).lower(), {str(k).lower(): v for k, v in
                                                           (transformation.arguments or {}).items()}
        if name == "scale":
            demean, rescale = arguments.get("demean", True), arguments.get("rescale", True)
            verb = ("demeaned and scaled to unit variance" if demean and rescale else "demeaned" if demean
                    else "scaled to unit variance" if rescale else None)
        else:
            verb = {"demean": "demeaned", "orthogonalize": "orthogonalized"}.get(name)
        outputs = transformation.output or transformation.input
        said += [(str(column), verb) for column in outputs if verb and str(column) in columns]
    return tuple(dict.fromkeys(said))


def run_facts(record: RunRecord, reader: Reader) -> RunFacts:
    """A run's facts from its design sidecar."""
    design = record.design
    bold = reader.resolve(design.bold)
    dummy = design.dummy_scans or {"Volumes": []}
    return RunFacts(
        subject=record.entities["subject"], session=record.entities.get("session"),
        task=record.entities["task"], tr=design.repetition_time, start_time=design.start_time or 0.0,
        n_volumes=design.n_volumes,
        conditions=tuple(design.conditions), confounds=tuple(design.confounds),
        precomputed=design.precomputed, preprocessed=design.preprocessed,
        pipeline=reader.pipeline(bold) if design.preprocessed else None,
        mask=reader.resolve(design.mask).name if design.mask else None,
        censored=design.volumes_excluded - len(dummy["Volumes"]),
        dummy_scans=len(dummy["Volumes"]),
        dummy_source=design.dummy_scans["Source"] if design.dummy_scans else None,
        modulated=design.modulated,
    )


def model_facts(info: StatmapSidecar, records) -> ModelFacts:
    """A subject's first-level settings, from its map's sidecar and its runs' design sidecars."""
    model = info.model
    first = records[0].design if records else None
    options = tuple(first.confounds_option) if first is not None else ()
    return ModelFacts(
        hrf_model=model.hrf_model,
        drift_model=None if model.drift_model in (None, "none") else model.drift_model,
        high_pass=model.high_pass,
        drift_order=first.drift_order if first is not None else None,
        noise_model=model.noise_model,
        smoothing_fwhm=model.smoothing_fwhm or None,
        precision_weighted=bool(info.precision_weighted),
        confound_strategy=options if is_confound_strategy(options) else (),
        convolution=tuple(first.convolution) if first is not None else (),
    )


def recorded_command(info: StatmapSidecar) -> str | None:
    """The participant-level command line a subject map's sidecar records, if it does."""
    return info.extra.get(COMMAND_KEY)


def methods_from_group(settings, group_plan) -> Methods:
    """The methods of a group-level run: the first level read back from the sidecars.

    Parameters
    ----------
    settings : Settings
    group_plan : plan.GroupPlan

    Raises
    ------
    InputFileError
        A sidecar the facts come from cannot be read.
    """
    from ..outputs import merged_description

    # the links as this run writes them (the text may be made before they are written)
    links = merged_description(settings.bids_dir, settings.output_dir).get("DatasetLinks", {})
    reader = Reader(settings.output_dir, links)
    by_model, commands = {}, []
    for test in group_plan.tests:
        for item in test.inputs:
            records = reader.runs_of(item.info)
            facts = model_facts(item.info, records)
            entry = by_model.setdefault((facts, test.space),
                                        {"runs": {}, "contrasts": {}, "space": test.space, "left_out": {}})
            surface = is_surface_file(item.effect)  # a surface or CIFTI space: masked by the vertex rule
            for record in records:
                entry["runs"][record.design_tsv] = replace(run_facts(record, reader), surface=surface,
                                                                cifti=surface and kind_of(item.effect) == "cifti")
            conditions = records[0].design.conditions if records else ()
            contrast = item.info.contrast
            if contrast.name not in entry["contrasts"]:
                entry["contrasts"][contrast.name] = contrast_facts(contrast.name, contrast.weights, conditions,
                                                                   reader.run_test(item.info))
            for left in (item.info.combination or {}).get("RunsLeftOut", []):
                entry["left_out"][left["Run"]] = LeftOutRun(left["Run"], left["Reason"])
            command = recorded_command(item.info)
            if command and command not in commands:
                commands.append(command)
    first_levels = []
    by_space = len({space for _, space in by_model}) > 1
    for (facts, _), entry in by_model.items():
        for name, contrast in reader.run_f_tests(next(iter(entry["runs"]), None)).items():
            entry["contrasts"].setdefault(name, contrast)  # the runs' alone: no subject map tells of them
        runs = tuple(entry["runs"].values())
        masks = {run.mask for run in runs}
        given = len(runs) > 1 and len(masks) == 1 and None not in masks  # one --mask for every run
        first_levels.append(FirstLevel(
            runs, replace(facts, mask_given=given), entry["space"],
            tuple(entry["contrasts"].values()), tuple(entry["left_out"].values()), by_space,
        ))
    tests = tuple((test.task, test.name, tuple(sorted(set(test.subjects)))) for test in group_plan.tests)
    designed = [test for test in group_plan.tests if test.design is not None and settings.group_model != "fixed"]
    group = GroupLevel("fixed" if settings.group_model == "fixed" else "random", tests,
                       settings.model_node_names.get("dataset") if settings.group_design else None,
                       dataset_node_facts(group_plan.tests),
                       tuple(dict.fromkeys(m.name for test in designed for m in test.contrasts if m.test == "pass")),
                       *_group_design_facts(designed),
                       precision_weighted=any(test.precision_weighted for test in group_plan.tests),
                       transformed=_group_transformed(designed))
    return Methods(
        tuple(first_levels), group, True, {"participant": tuple(commands), "group": (settings.command,)},
        software_versions(), figure_threshold(settings), corrected_inference(settings), "group",
        subject_inference(item.sidecar for test in group_plan.tests for item in test.inputs),
    )


def subject_inference(sidecars):
    """The corrected inference that the participant level wrote beside the subject maps: read
    from the sidecars of the thresholded z map (``desc-<method>``) and of the proportion of
    true discoveries (``stat-tdp_desc-cluster``) beside the first subject map (of ``sidecars``,
    the effect maps' sidecars) that has either; None when none has.

    Returns
    -------
    settings : InferenceSettings or None
    """
    from ..inference import DEFAULT_ALPHA, METHODS, InferenceSettings

    def alpha_of(info):
        value = info.get("Alpha")
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None

    for sidecar in sidecars:
        sidecar = Path(sidecar)
        if "_stat-effect" not in sidecar.name:
            continue
        stem = sidecar.name.split("_stat-effect")[0]
        found, height, cluster = {}, None, None
        for method in METHODS:
            path = sidecar.with_name(f"{stem}_stat-z_desc-{method}_statmap.json")
            if path.is_file():
                info = read_json(path)
                found.update(method=method, cluster_extent=int(info.get("ClusterExtent") or 0))
                height = alpha_of(info)
        tdp = sidecar.with_name(f"{stem}_stat-tdp_desc-cluster_statmap.json")
        if tdp.is_file():
            info = read_json(tdp)
            found.update(cluster_inference=True, cluster_threshold=float(info.get("ClusterFormingThreshold", 3.0)))
            cluster = alpha_of(info)
        if found:  # one --alpha for both, or each its default (the height's is the method's)
            defaults = (height in (None, DEFAULT_ALPHA.get(found.get("method"))), cluster in (None, 0.05))
            alpha = None if all(defaults) else height if height is not None else cluster
            return InferenceSettings(alpha=alpha, **found)
    return None
