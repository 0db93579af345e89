"""Models for planning: the ``-m`` file checked against what the app runs, the settings it
implies, and the default model that the options define."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

#: The levels of BIDS Stats Model nodes this version runs, and their model types.
SUPPORTED = {"run": ("glm",), "session": ("meta", "glm"), "subject": ("meta", "glm"), "dataset": ("glm", "meta")}


def read_model(settings):
    """The BIDS Stats Model of ``-m``, checked against what the app runs; None without ``-m``.

    Raises
    ------
    ModelError
        The file is not a model, or asks for what this version does not run (named).
    """
    if settings.model_file is None:
        return None
    from ..model import load_model
    from ..model.bsm import ModelError
    from .graph import check_graph

    model = load_model(settings.model_file)
    check_graph(model, str(settings.model_file))
    for node in model.nodes:
        _check_mask(node, settings.model_file)
    node = run_node(model)
    if not node.contrasts and node.dummy_contrasts is None:
        raise ModelError(
            f"Node {node.name!r} of {settings.model_file} has no Contrasts and no DummyContrasts, so it computes "
            "no map; add the contrasts to estimate (DummyContrasts gives one per variable)."
        )
    _check_contrasts_in_x(node, settings.model_file)
    return model


def check_dataset_contrasts(model, settings) -> None:
    """At the participant level: refuse a dataset node whose contrast names a column that its
    ``Model.X`` cannot make, which the group level refuses once every subject is fitted (it
    then names the design's columns).

    Raises
    ------
    ModelError
    """
    for node in model.nodes_at("dataset"):
        if node.formula is None:
            _check_contrasts_in_x(node, settings.model_file)


def _check_contrasts_in_x(node, model_file) -> None:
    """Refuse a contrast (or a run node's dummy contrast) naming a condition that no design
    of the node's ``Model.X`` has: a misspelling, or a pattern (``aud*``), which only
    ``DummyContrasts`` expand."""
    from ..model.bsm import ModelError, is_intercept
    from ..model.contrasts import GROUP_INTERCEPT

    conditions = [(c.name, c.condition_list, False) for c in node.contrasts]
    if node.dummy_contrasts is not None and node.level == "run":
        conditions += [(c, (c,), True) for c in (node.dummy_contrasts.conditions or node.x)]
    x = node.x if node.level == "run" or not any(map(is_intercept, node.x)) else (*node.x, GROUP_INTERCEPT)
    variables = _XNames(x)
    outside = [(name, c) for name, names, dummy in conditions for c in names if not variables.has(c, dummy)]
    if outside:  # a misspelling: no design can have it (a run without a condition of X leaves it out)
        name, variable = outside[0]
        named = ", ".join(map(str, node.x[:20])) + (f" and {len(node.x) - 20} more" if len(node.x) > 20 else "")
        pattern = _is_pattern(variable)
        raise ModelError(
            f"Node {node.name!r} of {model_file}: contrast {name!r} names {variable!r}, which is not a variable of "
            f"Model.X ({named}), so no design has it; "
            + ("a contrast's ConditionList names each column (only DummyContrasts expand patterns)." if pattern else
               "correct the name or add the variable to Model.X.")
        )


def _is_pattern(name) -> bool:
    """Whether a contrast's condition is an ``fnmatch`` pattern (``aud*``, ``trans_[xy]``), not
    a name that holds brackets (Split's ``rt.trial_type[face]``: brackets after a dot)."""
    import re

    return isinstance(name, str) and bool(re.search(r"[*?]", name) or (
        "[" in name and "." not in name.split("[", 1)[0]))


class _XNames:
    """The names a node's ``Model.X`` gives, for :meth:`has` (exact names in a set, patterns
    apart: a list of 100,000 names matched against each condition took a minute)."""

    def __init__(self, x):
        from ..model.variables import is_wildcard

        self.exact = set(x)  # a name of Split's making holds brackets (rt.trial_type[a]): a name too
        self.patterns = [v for v in x if isinstance(v, str) and is_wildcard(v)]

    def has(self, name, dummy=False) -> bool:
        """Whether a contrast's condition is a column that ``Model.X`` can make: itself, a match of
        a wildcard, a level of a category named alone (``trial_type.a`` of ``trial_type``; a level
        may hold dots), the intercept, a column the HRF adds to a variable (``audio_derivative``,
        ``audio_delay_2``), a trial type named by its bare value (``a`` for ``trial_type.a``, as
        the contrasts read it); a dummy contrast's pattern that matches a name of X."""
        from fnmatch import fnmatchcase

        if name in self.exact or name == 1:  # the run's design always has nilearn's constant
            return True
        if not isinstance(name, str):
            return False
        if _is_pattern(name):
            return dummy and any(isinstance(v, str) and fnmatchcase(v, name) for v in self.exact)
        # else a name, brackets and all (Split's rt.trial_type[face], which X's rt.* matches)
        return any(n in self.exact or any(fnmatchcase(n, p) for p in self.patterns)
                   or any(n[:i] in self.exact for i, c in enumerate(n) if c == ".") for n in condition_names(name))


def condition_names(name) -> tuple:
    """The columns a contrast's condition may stand for: itself, the variable a column the HRF
    adds to it comes from (``audio`` of ``audio_derivative``, ``audio_delay_2``), and either as
    a trial type named by its bare value (``trial_type.audio``): these four, in that order (a
    name the HRF did not make is its own variable, twice)."""
    import re

    made = re.sub(r"_(derivative|dispersion|delay_\d+)$", "", name)
    return name, made, f"trial_type.{name}", f"trial_type.{made}"


#: ``Options.Mask`` entities that name each run's own brain mask, the mask this version uses.
MASK_ENTITIES = {"desc": ("brain",), "suffix": ("mask",)}
#: Entities a Mask may also give, which select the run's own files anyway.
MASK_SELECTORS = ("space", "task", "ses", "session", "subject", "run", "acquisition", "extension", "datatype")


def _check_mask(node, model_file):
    """Refuse an ``Options.Mask`` other than each run's brain mask (the mask this version applies)."""
    from ..model.bsm import ModelError

    mask = node.options.get("Mask")
    if mask in (None, "", False, {}):
        return
    wrong = None if isinstance(mask, dict) else repr(mask)
    for key, value in (mask.items() if isinstance(mask, dict) else ()):
        values = tuple(str(v) for v in (value if isinstance(value, list) else [value]))
        if (key in MASK_ENTITIES and values != MASK_ENTITIES[key]) or (key not in MASK_ENTITIES and
                                                                         key not in MASK_SELECTORS):
            wrong = f"{key} {list(values)}"
            break
    if wrong is not None:
        raise ModelError(
            f"Node {node.name!r} of {model_file} asks for the mask {wrong} in Model.Options.Mask; this version masks "
            "each run with its desc-brain mask (or --mask FILE)."
        )


#: ``Input`` keys that a command-line option also selects: the Settings field each one sets.
INPUT_OPTIONS = {"subject": "participant_label", "session": "session_label", "task": "task", "space": "space"}
#: Other ``Input`` keys: entities of the preprocessed BOLD (``description`` is fMRIPrep's ``desc``).
INPUT_ENTITIES = {"acquisition": "acquisition", "ceagent": "ceagent", "reconstruction": "reconstruction",
                  "direction": "direction", "run": "run", "echo": "echo", "description": "desc", "desc": "desc"}


def apply_input(model, settings):
    """The settings with the model's ``Input`` selecting the data that the command line leaves open.

    ``Input.task``, ``subject``, ``session`` and ``space`` stand in for ``--task``,
    ``--participant-label``, ``--session-label`` and ``--space`` (the options win when given);
    other entities (``acquisition``, ``run``, ``description``...) select the preprocessed BOLD
    as a ``--bids-filter-file`` query would (the filter file wins for an entity it names). An
    empty value (``"acquisition": [""]``) selects files without that entity. Tasks that the
    dataset lacks are passed over as long as one is present.

    Parameters
    ----------
    model : bids_fixedfx.model.Model
    settings : Settings

    Returns
    -------
    settings : Settings
        With ``selected_by`` naming the model for each selection it made, for messages.

    Raises
    ------
    ModelError
        An ``Input`` key that is not an entity of BOLD series.
    """
    from ..model.bsm import ModelError

    source = settings.model_file.name if settings.model_file is not None else "the model"
    changes, selected_by = {}, dict(settings.selected_by)
    bold = dict(settings.bids_filters.get("bold", {}))
    for key, values in model.input.items():
        name = key.lower().replace("_", "")
        values = tuple(None if v == "" else str(v) for v in values)
        if name in INPUT_OPTIONS:
            field_name = INPUT_OPTIONS[name]
            if getattr(settings, field_name) or not any(values):
                continue
            prefix = {"participant_label": "sub-", "session_label": "ses-"}.get(field_name, "")
            labels = tuple(v[len(prefix):] if prefix and v.startswith(prefix) and v != prefix else v
                           for v in values if v)  # as the options: with or without sub- or ses-
            changes[field_name] = (labels[0] if len(labels) == 1 else labels) if field_name == "space" else labels
            selected_by[field_name] = f"Input.{key} of {source}"
        elif name in INPUT_ENTITIES:
            entity = INPUT_ENTITIES[name]
            if entity not in bold:
                bold[entity] = list(values) if len(values) > 1 else values[0]
                selected_by["bids_filters"] = f"Input of {source}"
        else:
            raise ModelError(
                f"{source}: Input has {key!r}, which is not an entity of BOLD series "
                f"(known: {', '.join([*INPUT_OPTIONS, *INPUT_ENTITIES])})."
            )
    if bold != settings.bids_filters.get("bold", {}):
        changes["bids_filters"] = {**settings.bids_filters, "bold": bold}
    return replace(settings, **changes, selected_by=selected_by)


def run_node(model):
    """The model's run-level node."""
    return model.nodes_at("run")[0]


#: The ``Name`` of the model the options define (``models/model-default_smdl.json``): its maps
#: are told apart by the options their sidecars record, not by its nodes (which name the
#: conditions of the jobs that wrote it).
DEFAULT_MODEL_NAME = "default"
#: The ``Name`` of the default model with fixed effects over the subjects (``--group-model fixed``).
FIXED_EFFECTS_MODEL_NAME = "defaultFixedfx"


def with_dataset_inference(text, inference):
    """A model (its JSON text, as OUTPUT_DIR holds it) whose dataset nodes state the group level's
    corrected inference (``Model.Software.bids-fixedfx``, :func:`.model.inference.inference_software`),
    so that ``-m`` of it gives the same corrected maps; the node states none when none is asked.

    Parameters
    ----------
    text : str
    inference : InferenceSettings

    Returns
    -------
    model : bids_fixedfx.model.Model
    """
    from ..model import parse_model
    from ..model.inference import inference_software

    document = json.loads(text)
    for node in document.get("Nodes", []):
        if str(node.get("Level", "")).lower() != "dataset":
            continue
        software = node.setdefault("Model", {}).setdefault("Software", {})
        software.pop("bids-fixedfx", None)
        software.update(inference_software(inference, "dataset"))
        if not software:
            node["Model"].pop("Software")
    return parse_model(document, "The default model", schema=False)


def fixed_effects_model(default_text, inference=None):
    """The model of ``--group-model fixed`` without ``-m``: the default model (its text, as the
    participant level wrote it) with its dataset node combining the subjects by fixed effects
    (``meta``, unweighted, as nilearn's ``compute_fixed_effects`` by default), named
    :data:`FIXED_EFFECTS_MODEL_NAME`, for the group maps' sidecars to cite; its run and subject
    nodes are the default model's, so that ``-m`` of it makes the same subject and group maps.

    Parameters
    ----------
    default_text : str
        ``models/model-default_smdl.json``, whose dataset node is the one-sample t-test.
    inference : InferenceSettings, optional
        The group level's corrected inference, stated in the dataset node.

    Returns
    -------
    model : bids_fixedfx.model.Model
    """
    from ..model import parse_model

    document = json.loads(default_text)
    for node in document["Nodes"]:
        if str(node.get("Level", "")).lower() == "dataset":
            node["Model"]["Type"] = "meta"
            node["Model"].setdefault("Software", {}).setdefault("nilearn", {})["precision_weighted"] = False
    document["Name"] = FIXED_EFFECTS_MODEL_NAME
    document["Description"] = ("The model that the bids-fixedfx command-line options define, with "
                               "--group-model fixed: fixed effects over the subjects.")
    if inference is not None:
        return with_dataset_inference(json.dumps(document), inference)
    return parse_model(document, "The default model", schema=False)


def participant_nodes(document) -> list:
    """The run, session and subject nodes of a BIDS Stats Model document (a dict, as read from
    JSON), ``GroupBy`` sorted (its order means nothing): what makes the subject maps."""
    nodes = document.get("Nodes", [])
    if not isinstance(nodes, list):  # not a model this app wrote: compared whole
        return [nodes]
    return [{**n, "GroupBy": sorted(map(str, n["GroupBy"]))} if isinstance(n, dict)
            and isinstance(n.get("GroupBy"), list) else n
            for n in nodes if not isinstance(n, dict) or str(n.get("Level", "")).lower() != "dataset"]


def nodes_digest(model) -> str:
    """``sha256:<hex>`` of a model's run, session and subject nodes (:func:`participant_nodes`),
    which the sidecars of its maps record (``ModelNodesDigest``), so that the group level
    refuses subject maps made by two versions of a model file of one name (a transformation or
    ``X`` changed between jobs, which no other key records)."""
    import hashlib

    text = json.dumps(participant_nodes(json.loads(model.to_json())), sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def model_settings(model, settings):
    """The first-level settings a model sets (HRF, drift, noise model, precision
    weighting, and the smoothing when its run node's ``Software.nilearn.smoothing_fwhm``
    states it and ``--smoothing-fwhm`` is not given), with those it does not state from the
    command line.

    Parameters
    ----------
    model : bids_fixedfx.model.Model
    settings : Settings

    Returns
    -------
    model_settings : ModelSettings
    """
    from fnmatch import fnmatchcase

    from ..model.bsm import is_intercept
    from ..model.design import drift_settings, dummy_scan_settings, noise_model_of, precision_weighted_of, smoothing_of

    node = run_node(model)
    convolved = {name for t in node.transformations if t.name == "Convolve" for name in (t.output or t.input)}
    drift_model, high_pass, drift_order = drift_settings(node)
    dummy = dummy_scan_settings(node)
    smoothing = smoothing_of(node)
    if smoothing is not None and not settings.model.smoothing_given:  # --smoothing-fwhm, given, comes first
        smoothing_settings = {"smoothing_fwhm": smoothing or None, "smoothing_given": True, "smoothing_by_model": True}
    else:
        smoothing_settings = {}
    subject = model.nodes_at("subject")
    for combining in (*model.nodes_at("session"), *subject):  # each read when combining: checked now
        precision_weighted_of(combining, False)
    return replace(
        settings.model,
        nodes_digest=nodes_digest(model) if model.name != DEFAULT_MODEL_NAME else None,
        hrf_model=node.hrf.model if node.hrf is not None else "none",
        drift_model=drift_model,
        high_pass=high_pass if high_pass is not None else settings.model.high_pass,
        drift_order=drift_order,
        noise_model=noise_model_of(node),
        # the X entries that are not convolved (by Model.HRF or a Convolve): what the model takes from the
        # confounds file (none: the file is still read for fMRIPrep's non-steady-state columns)
        confounds=tuple(
            str(x) for x in node.x
            if not is_intercept(x) and (node.hrf is None or x not in node.hrf.variables)
            and not any(fnmatchcase(str(x), name) for name in convolved)  # a Convolve's Input may be a wildcard
        ),
        confounds_given=False,
        non_steady_state=dummy["non_steady_state"],
        dummy_scans=dummy["count"],
        precision_weighted=precision_weighted_of(subject[0], False) if subject else False,
        convolution=convolutions(node),
        **smoothing_settings,
    )


def convolutions(node) -> tuple[str, ...]:
    """nilearn's names of the HRFs a node's ``Convolve`` transformations convolve with (its
    ``Model.HRF`` aside), in order, each once."""
    from ..model.hrf import hrf_name

    return tuple(dict.fromkeys(
        hrf_name(t.arguments.get("model", "spm"), t.arguments.get("derivative", False),
                 t.arguments.get("dispersion", False))
        for t in node.transformations if t.name == "Convolve"
    ))


def inference_settings(model, settings, level: str):
    """The corrected inference of a level: what the model's subject node (participant level) or
    dataset node (group level) states in ``Model.Software["bids-fixedfx"]``, else the options'.

    Parameters
    ----------
    model : bids_fixedfx.model.Model
    settings : Settings
    level : {'participant', 'group'}

    Returns
    -------
    inference : InferenceSettings

    Raises
    ------
    UsageError
        The node states them and an inference option is given too (one or the other).
    """
    from ..errors import UsageError
    from ..model.inference import SOFTWARE, option_of, stated_inference

    nodes = model.nodes_at("subject" if level == "participant" else "dataset")
    stated = stated_inference(nodes[0]) if nodes else None
    if stated is None:
        return settings.inference
    option = option_of(settings.inference)
    if option is not None:
        raise UsageError(
            f"{option} is given with --model, whose node {nodes[0].name!r} states the inference settings "
            f"(Model.Software.{SOFTWARE}); use one or the other."
        )
    return stated


def default_model(plan, settings, known=None):
    """The model the options define (written to ``OUTPUT_DIR/models/``), or None with a
    reason when the options go beyond what a model file states (confound strategies,
    precomputed designs).

    A default model an earlier job wrote there with the same options names conditions this
    job's runs lack: those that other events files of the dataset have are named again, so
    that jobs of one subject (or task) each write one model of every subject's maps.
    ``known``: a dict the job's calls share, of the conditions looked for in the other events
    files (see :func:`.runs.levels_in_other_events`), which are not looked for again.

    Returns
    -------
    model : bids_fixedfx.model.Model or None
    reason : str or None
    """
    made, conditions, reason = _default_maker(plan, settings)
    if made is None:
        return None, reason
    earlier = _earlier_conditions(made, settings.output_dir)
    if earlier is not None and not set(earlier) <= set(conditions):
        from .runs import levels_in_other_events

        others = levels_in_other_events({f"trial_type.{c}" for c in set(earlier) - set(conditions)},
                                        settings.bids_dir, {run_plan.run.events for run_plan in plan.runs}, known)
        conditions = sorted(set(conditions) | {level.split(".", 1)[1] for level in others})
    return made(conditions), None


def same_default_options(plan, settings) -> bool:
    """Whether the default model in OUTPUT_DIR was written with these options (its conditions
    aside), so that the model this job writes names its conditions too."""
    made, _, _ = _default_maker(plan, settings)
    return made is not None and _earlier_conditions(made, settings.output_dir) is not None


def _default_maker(plan, settings):
    """The default model of given conditions with this job's options (a function), the
    conditions of this job's runs, and None; or None, None and why no model is written."""
    from ..design import is_confound_strategy
    from ..model.defaults import default_model as make

    model = settings.model
    if settings.design_dir is not None:
        return None, None, "--design-dir designs are not a model file"
    if is_confound_strategy(model.confounds):
        return None, None, "nilearn confound strategies are not model-file variables"
    if settings.mask is not None:  # with -m, the maps are remade only with --mask given again
        return None, None, (f"--mask {settings.mask} is no model-file option (a model's Options.Mask names the "
                            "runs' masks)")
    modulations = {run_plan.design.modulation for run_plan in plan.runs}
    if len(modulations) > 1 or "some n/a" in modulations:  # a model's Product takes an n/a as 1
        return None, None, ("the events' modulation column is n/a for some events, or only some runs have one, "
                            "which a model's Product transformation cannot state as nilearn reads it")
    if any(run_plan.design.untyped for run_plan in plan.runs):
        return None, None, ("events without a trial_type column are one condition to nilearn ('dummy'), which a "
                            "model's run node cannot name")
    confounds = model.confounds  # none where no run had a confounds file (raw data; a mix is refused earlier)
    if not any(run_plan.design.confounds for run_plan in plan.runs):
        confounds = ()
    conditions = sorted({c for run_plan in plan.runs for c in run_plan.design.conditions})
    contrasts = None
    if settings.contrasts:
        contrasts = {c.name: c.weights for c in plan.runs[0].contrasts if c.test == "t"}

    def made(conditions):
        return make(
            conditions, confounds=confounds, hrf_model=model.hrf_model, fir_delays=None,
            drift_model=model.drift_model or "none", high_pass=model.high_pass, drift_order=model.drift_order,
            noise_model=model.noise_model, contrasts=contrasts, modulation=modulations == {"numbers"},
            group_model=settings.group_model,
            precision_weighted=model.precision_weighted, inference=settings.inference,
            non_steady_state=model.non_steady_state, dummy_scans=model.dummy_scans,
            smoothing_fwhm=(model.smoothing_fwhm or 0.0) if model.smoothing_given else None,
        )

    return made, conditions, None


def _earlier_conditions(made, output_dir):
    """The conditions of the default model an earlier job wrote in OUTPUT_DIR, when ``made``
    (this job's options) gives that model of them; else None."""
    earlier = _earlier_default_model(output_dir)
    return earlier[1] if earlier is not None and made(earlier[1]).to_json() == earlier[0] else None


def adds_to_earlier_default_model(model, output_dir) -> bool:
    """Whether the default model ``model`` names every condition of the one an earlier job wrote
    in OUTPUT_DIR (a job with the same options adding its own): every map that cites the
    earlier one is then remade by ``model`` too."""
    earlier, conditions = _earlier_default_model(output_dir), _default_conditions(model.to_json())
    return earlier is not None and conditions is not None and set(earlier[1]) <= set(conditions)


def _earlier_default_model(output_dir):
    """The default model an earlier job wrote in OUTPUT_DIR, as (its text, its conditions),
    or None: per-subject (or per-task) jobs with the same options write one file naming every
    job's conditions, which each subject's maps then cite (a condition a subject's runs lack
    is left out of its designs, so the file remakes every subject's maps)."""
    from ..naming import build

    try:
        text = (Path(output_dir) / build("model", model="default")).read_text(encoding="utf-8")
    except (OSError, ValueError):
        return None
    conditions = _default_conditions(text)
    return None if conditions is None else (text, conditions)


def _default_conditions(text):
    """The conditions a default model's text names (its run node's HRF variables), or None when
    it is not such a model."""
    try:
        conditions = json.loads(text)["Nodes"][0]["Model"]["HRF"]["Variables"]
    except (ValueError, KeyError, IndexError, TypeError):
        return None
    if not isinstance(conditions, list) or not all(isinstance(c, str) for c in conditions):
        return None
    return conditions


def covariates_model(columns, participants, inference=None, described=None):
    """The model of ``--group-covariates``: a dataset node testing columns of ``participants.tsv``.

    A column of numbers is a covariate, demeaned, tested by its slope; a column of labels (at
    most one) is a group factor, one indicator per level: its levels are compared (t for two
    levels, F for more), and the mean effect is tested across groups (or, without groups, the
    intercept). Subjects with a missing value are left out by the group design, named.

    Parameters
    ----------
    columns : sequence of str
    participants : pandas.DataFrame
        ``participants.tsv`` indexed by subject.
    inference : InferenceSettings, optional
        The group level's corrected inference, which the dataset node states.
    described : dict, optional
        What ``participants.json`` says of each column: a column of numbers that it gives
        ``Levels`` not naming them all is still a covariate, with a note in the model's ``notes``
        (codes that all are ``Levels`` come as labels: ``read_participants(coded=...)``); one of numbers
        with a unit (``41y``) is refused when it gives ``Units``, else read as labels, with a note.

    Returns
    -------
    model : bids_fixedfx.model.Model

    Raises
    ------
    UsageError
        A column that ``participants.tsv`` lacks, a group column with one level, two group columns.
    InputFileError
        No ``participants.tsv`` (or one of ``participant_id`` alone); a column of numbers written
        with a decimal comma or a unit, or with a stray word among them.
    """
    import pandas as pd

    from ..errors import InputFileError, UsageError
    from ..model import parse_model
    from ..model.group import COVARIATES_NODE
    from ..model.inference import inference_software
    from ..naming import label_of
    from .group import check_no_clashing_column

    x, contrasts, instructions, groups, notes = [], [], [], None, []
    for column in columns:
        if not len(participants.columns):
            raise InputFileError(f"--group-covariates {column} needs BIDS_DIR/participants.tsv, which is missing or "
                                 "holds no column but participant_id.")
        check_no_clashing_column(participants, {column}, f"--group-covariates {column}")
        if column not in participants.columns:
            raise UsageError(
                f"--group-covariates {column} is not a column of participants.tsv "
                f"(columns: {', '.join(map(str, participants.columns))})."
            )
        values = participants[column].dropna()
        if len(values) and pd.api.types.is_numeric_dtype(values):
            levels = (described or {}).get(column, {}).get("Levels")
            if levels:  # codes that all are Levels were read as labels (read_participants(coded=...))
                notes.append(f"--group-covariates {column}: its values are numbers, not all of them codes of the "
                             "Levels (categories) that participants.json describes, so it is a covariate tested by "
                             f"its slope; name every code ({', '.join(map(str, levels))}) in Levels, or write the "
                             "levels as labels (such as g1, g2), to compare the groups")
            x.append(column)
            instructions.append({"Name": "Demean", "Input": [column]})
            contrasts.append({"Name": column, "ConditionList": [column], "Weights": [1], "Test": "t"})
            continue
        decimal_comma = values.astype(str).str.fullmatch(r"[+-]?\d*,\d+")
        if decimal_comma.any() and (decimal_comma | pd.to_numeric(values, errors="coerce").notna()).all():
            raise InputFileError(  # the table's fault (66), named with the option that reads it
                f"--group-covariates {column}: participants.tsv writes its numbers with a decimal comma "
                f"({values[decimal_comma].iloc[0]!r}); write them with a point, as BIDS tables do."
            )
        # a number, then a word; its digits split one way only (a cell of many digits is quick to refuse)
        with_unit = values.astype(str).str.fullmatch(r"\s*[+-]?(?:\d+(?:\.\d*)?|\.\d+)\s*[^\W\d_][^\d]*")
        if with_unit.any() and (with_unit | pd.to_numeric(values, errors="coerce").notna()).all():
            if (described or {}).get(column, {}).get("Units"):  # '41y' as labels: one group per age
                raise InputFileError(
                    f"--group-covariates {column}: participants.tsv writes its numbers with a unit "
                    f"({values[with_unit].iloc[0]!r}); write the numbers alone (participants.json states the unit)."
                )
            notes.append(f"--group-covariates {column}: its values ({values[with_unit].iloc[0]!r}, ...) are read as "
                         "labels, one group per value; if they are numbers with a unit, write the numbers alone to "
                         "test a slope")
        numbers = pd.to_numeric(values, errors="coerce").notna()
        if len(values) / 2 < numbers.sum() < len(values):  # numbers but a few: a stray token, not levels of a group
            raise InputFileError(
                f"--group-covariates {column}: participants.tsv holds numbers in that column but also "
                f"{values[~numbers].iloc[0]!r}, which is not a number; write n/a for a missing value."
            )
        if groups is not None:
            raise UsageError(
                f"--group-covariates {groups[0]} and {column} are both group columns; give one (or write a model file)."
            )
        levels = sorted(values.astype(str).unique())
        if len(levels) < 2:
            raise UsageError(f"--group-covariates {column} has {len(levels)} level(s) among the subjects selected "
                             f"({', '.join(levels)}); a group column needs two or more.")
        groups = (column, levels)
    slopes = {id(contrast) for contrast in contrasts}  # the covariates' (the group tests come below)
    if groups is not None:
        column, levels = groups
        indicators = [f"{column}.{level}" for level in levels]
        x = indicators + x
        mean = {"Name": "mean", "ConditionList": indicators, "Weights": [f"1/{len(levels)}"] * len(levels), "Test": "t"}
        if len(levels) == 2:
            difference = {"Name": f"{levels[0]} minus {levels[1]}", "ConditionList": indicators, "Weights": [1, -1],
                          "Test": "t"}
        else:
            rows = [[1 if j == i else -1 if j == len(levels) - 1 else 0 for j in range(len(levels))]
                    for i in range(len(levels) - 1)]
            difference = {"Name": f"{column} differences", "ConditionList": indicators, "Weights": rows, "Test": "F"}
        contrasts = [mean, difference, *contrasts]
    else:
        x = [1, *x]
        contrasts = [{"Name": "mean", "ConditionList": [1], "Weights": [1], "Test": "t"}, *contrasts]

    def test_of(contrast):
        if id(contrast) in slopes:
            return f"the slope of column {contrast['Name']!r}"
        return "the mean effect" if contrast is contrasts[0] else f"the groups' {contrast['Name']!r}"

    named = {}
    for contrast in contrasts:  # a covariate column named mean: "two contrasts named 'mean'", of a node never written
        key = label_of(contrast["Name"]).casefold()
        if key in named:
            raise UsageError(f"--group-covariates {contrast['Name']}: the test of its slope would bear the name of "
                             f"the test of {test_of(named[key])} ({label_of(contrast['Name'])}: names that differ only "
                             "in case or punctuation are one); rename the participants.tsv column.")
        named[key] = contrast
    node = {"Level": "Dataset", "Name": COVARIATES_NODE, "GroupBy": ["contrast"],
            "Model": {"Type": "glm", "X": x}, "Contrasts": contrasts}
    software = inference_software(inference, "dataset") if inference is not None else {}
    if software:
        node["Model"]["Software"] = software
    if instructions:
        node["Transformations"] = {"Transformer": "pybids-transforms-v1", "Instructions": instructions}
    document = {"Name": COVARIATES_NODE, "BIDSModelVersion": "1.0.0",
                "Description": f"The group design of --group-covariates {' '.join(columns)}.", "Nodes": [node]}
    model = parse_model(document, "--group-covariates")
    return replace(model, notes=(*model.notes, *notes))
