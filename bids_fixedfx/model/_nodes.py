"""Nodes, contrasts, HRF, transformations and edges of a model document, into records."""

from __future__ import annotations

import difflib
import json
import re

from ._parse import canonical, check_hrf_model, listify, parse_instruction, parse_weights
from .bsm import (
    INTERCEPT, LEVELS, MODEL_TYPES, TRANSFORMATION_NAMES, TRANSFORMER, Contrast, DummyContrasts, Edge, HRF,
    ModelError, Node, Transformation, is_intercept,
)
from ..settings import MAX_CONTRASTS, MAX_HIGH_PASS
from .formula import parse_formula


#: The ``Model.Software.nilearn`` keys the app reads (:mod:`.design`).
SOFTWARE_KEYS = ("noise_model", "drift_model", "drift_order", "precision_weighted", "non_steady_state",
                 "dummy_scans", "smoothing_fwhm")
#: nilearn's FirstLevelModel arguments that a model may name and this app does not read (its
#: HRF is Model.HRF's, its high-pass Options'): ignored with a note, never taken for a slip.
NILEARN_ARGUMENTS = ("t_r", "slice_time_ref", "hrf_model", "high_pass", "fir_delays", "min_onset", "mask_img",
                     "target_affine", "target_shape", "memory", "memory_level", "standardize", "signal_scaling",
                     "verbose", "n_jobs", "minimize_memory", "subject_label", "random_state")


def parse_node(raw, index, source, notes) -> Node:
    where = f"Node {index + 1} of {source}"
    if not isinstance(raw, dict):
        raise ModelError(f"{where} is not a JSON object.")
    doc = canonical(raw, ("Level", "Name", "GroupBy", "Transformations", "Model", "Contrasts",
                          "DummyContrasts", "Description"), where)
    name = doc.get("Name")
    if name is not None and (not isinstance(name, str) or not name):
        raise ModelError(f"{where} has a Name that is not a word: {str(name)[:40]!r}.")
    if name is not None:
        where = f"Node {name!r}"
    level = str(doc.get("Level", "")).lower()
    if level not in LEVELS:
        raise ModelError(f"{where} has Level {doc.get('Level')!r}; expected Run, Session, Subject or Dataset.")
    if name is None:  # its maps are named after it: its level names it, as most models name theirs
        name = level
        notes.append(f"{where} has no Name; named {name!r} after its level")
        where = f"Node {name!r}"
    if "GroupBy" not in doc:
        doc["GroupBy"] = DEFAULT_GROUP_BY[level]
        notes.append(f"{where} has no GroupBy; read as {list(DEFAULT_GROUP_BY[level])}, the usual grouping of a "
                     f"{level} node")
    group_by = tuple(str(g) for g in listify(doc["GroupBy"]))
    notes += _read_group_by(where, level, group_by)
    model = doc.get("Model")
    if not isinstance(model, dict):
        raise ModelError(f"{where} has no Model object.")
    model = canonical(model, ("Type", "X", "Formula", "HRF", "Options", "Software", "Description",
                              "VarianceComponents", "ErrorDistribution"), f"{where}: Model")
    model_type = str(model.get("Type", "glm")).lower()
    if "Type" not in model and level != "run" and _uses_fema(doc):
        model_type = "meta"
        notes.append(f"{where} has no Model.Type and asks for 'FEMA' tests; read as a meta (fixed effects) node")
    if model_type not in MODEL_TYPES:
        raise ModelError(f"{where} has Model.Type {model.get('Type')!r}; expected 'glm' or 'meta'.")
    if "X" not in model:
        raise ModelError(f"{where} has no Model.X.")
    transformations = _parse_transformations(doc.get("Transformations"), where, notes)
    made = {name for t in transformations for name in (t.output or ())}  # names of the node's own making
    x = tuple(_variable(v, f"{where}: Model.X", made)
              for v in _filled(listify(model["X"]), f"{where}: Model.X", notes))
    if not x:
        raise ModelError(f"{where} has no variables in Model.X.")
    repeated = list(dict.fromkeys(_repeats(x)))
    if repeated:
        notes.append(f"{where}: Model.X lists {', '.join(map(repr, repeated))} more than once; the design has one "
                     "column of each, so remove the repeats")
    if level == "run" and not any(is_intercept(v) for v in x) and model.get("Formula") is None:
        notes.append(f"{where}: Model.X has no 1, but the run's design keeps nilearn's constant column (its drifts "
                     "and the mean signal need it); add 1 to Model.X to say so")
    options = dict(canonical(model.get("Options") or {}, ("HighPassFilterCutoffHz", "LowPassFilterCutoffHz",
                   "ReplaceVariables", "Mask", "Aggregate", "Description"), f"{where}: Model.Options"))
    for key in [k for k, v in options.items() if v == ""]:
        del options[key]
        notes.append(f"{where}: Model.Options.{key} is blank (\"\") and was ignored")
    for key in [k for k in ("LowPassFilterCutoffHz", "ReplaceVariables", "Aggregate") if k in options]:
        notes.append(f"{where}: Model.Options.{key} is not applied by this app (nilearn's first level has no "
                     "such step), so the maps are those without it")
    notes += _unread_model_keys(where, level, model, doc)
    software = model.get("Software") or {}
    if not isinstance(software, dict):
        raise ModelError(f"{where}: Model.Software must be an object, one entry per software "
                         f"({{\"nilearn\": {{\"noise_model\": \"ar1\"}}}}), "
                         f"not {type(software).__name__} {str(software)[:40]!r}.")
    nilearn = next((v for k, v in software.items() if str(k).lower() == "nilearn"), {})
    if not isinstance(nilearn, dict):
        raise ModelError(f"{where}: Model.Software.nilearn must be an object of settings ({', '.join(SOFTWARE_KEYS)}), "
                         f"not {type(nilearn).__name__} {str(nilearn)[:40]!r}.")
    if level in ("run", "session") and any(str(k).lower() == "bids-fixedfx" for k in software):
        notes.append(f"{where}: Model.Software.bids-fixedfx is not read in a {level} node (corrected inference is "
                     "stated in the subject node, for the participant level, or the dataset node), so it was ignored")
    for key in [k for k in nilearn if k not in SOFTWARE_KEYS]:
        meant = difflib.get_close_matches(str(key).lower(), SOFTWARE_KEYS, n=1, cutoff=0.75)
        if meant and key not in NILEARN_ARGUMENTS:  # noise_modle: a slip that would fit the default model in its place
            raise ModelError(f"{where}: Model.Software.nilearn.{key} is no setting this app reads; did you mean "
                             f"{meant[0]}? (It reads {', '.join(SOFTWARE_KEYS)}.)")
        notes.append(f"{where}: Model.Software.nilearn.{key} is not read by this app (it reads "
                     f"{', '.join(SOFTWARE_KEYS)}), so it was ignored")
    high_pass = options.pop("HighPassFilterCutoffHz", None)
    if high_pass is not None and (isinstance(high_pass, bool) or not isinstance(high_pass, (int, float))
                                  or high_pass <= 0):
        raise ModelError(f"{where} has HighPassFilterCutoffHz {high_pass!r}; expected a positive number of Hz.")
    if high_pass is not None and high_pass > MAX_HIGH_PASS:
        raise ModelError(f"{where} has HighPassFilterCutoffHz {high_pass!r}, above the highest frequency any BOLD "
                         f"series holds ({MAX_HIGH_PASS:g} Hz, at the shortest repetition time); give a cut-off "
                         "such as 0.01 Hz.")
    if model.get("Formula") is not None:
        if not isinstance(model["Formula"], str):
            raise ModelError(f"{where}: Model.Formula is not text.")
        parse_formula(model["Formula"], where)
    dummy = doc.get("DummyContrasts")
    if len(listify(doc.get("Contrasts") or [])) > MAX_CONTRASTS:
        raise ModelError(f"{where} has {len(listify(doc['Contrasts']))} contrasts; a node may have at most "
                         f"{MAX_CONTRASTS} (each writes five maps a run and a subject): split the model.")
    return Node(
        name=name, level=level, group_by=group_by, x=x, model_type=model_type,
        hrf=_parse_hrf(model.get("HRF"), where, notes) if model.get("HRF") else None,
        high_pass=None if high_pass is None else float(high_pass),
        transformations=transformations,
        contrasts=tuple(_parse_contrast(c, where, notes, level, made) for c in listify(doc.get("Contrasts") or [])
                        if not _placeholder(c, where, notes)),
        dummy_contrasts=_parse_dummy(dummy, where, notes, level, made) if dummy not in (None, False) else None,
        options=options, software=dict(software),
        formula=model.get("Formula"), description=doc.get("Description"),
    )


def _read_group_by(where, level, group_by) -> list:
    """Notes for a run, session or subject node's GroupBy that lacks what this app groups by:
    each run is fitted apart, and each subject's (session's) inputs combined contrast by contrast."""
    wanted = {"run": ("run", "subject"), "session": (), "subject": ("subject", "contrast")}.get(level, ())
    missing = [variable for variable in wanted if variable not in group_by]
    if not missing:
        return []
    how = ("each run's GLM is fitted apart, as nilearn's FirstLevelModel fits runs" if level == "run" else
           "a subject node combines each subject's inputs contrast by contrast")
    return [f"{where} groups by {list(group_by)} without {' or '.join(map(repr, missing))}, which is read as grouping "
            f"by {' and '.join(map(repr, missing))} too: {how}"]


def _unread_model_keys(where, level, model, doc) -> list:
    """Notes for the parts of a node that this app does not apply: a non-Gaussian
    ``ErrorDistribution``, ``VarianceComponents`` and a session or subject node's ``Transformations``."""
    notes = []
    error = model.get("ErrorDistribution")
    if isinstance(error, dict):
        family, link = str(error.get("Family", "Gaussian")), str(error.get("Link", "Identity"))
        if family.lower() != "gaussian" or link.lower() != "identity":
            notes.append(f"{where}: Model.ErrorDistribution {family}/{link} is not applied (nilearn's GLMs are "
                         "Gaussian with an identity link), so the maps are those of a Gaussian model")
    if model.get("VarianceComponents"):
        notes.append(f"{where}: Model.VarianceComponents is not applied (nilearn's GLMs have one error term), "
                     "so it was ignored")
    if level in ("session", "subject") and doc.get("Transformations"):
        notes.append(f"{where}: Transformations are not applied in a {level} node (it combines its inputs' maps "
                     "contrast by contrast), so they were ignored; transform variables in the run or dataset node")
    return notes


#: The grouping of each level when a node states none (the specification's examples).
DEFAULT_GROUP_BY = {"run": ("run", "session", "subject"), "session": ("session", "subject", "contrast"),
                    "subject": ("subject", "contrast"), "dataset": ("contrast",)}


def _filled(values, where, notes) -> list:
    """``values`` without empty strings (the blanks of a model template), with a note."""
    kept = [v for v in values if v != ""]
    if len(kept) < len(values):
        notes.append(f"{where} has empty entries (\"\"), which were ignored")
    return kept


def _placeholder(raw, where, notes) -> bool:
    """Whether a contrast or transformation is a template's blank (its lists hold only ``""``)."""
    if not isinstance(raw, dict):
        return False
    lists = [listify(v) for k, v in raw.items() if re.sub(r"[_\s]", "", str(k)).lower()
             in ("conditionlist", "weights", "input", "inputs")]
    if not lists or any(v != "" for values in lists for v in values):
        return False
    notes.append(f"{where}: a blank {'contrast' if 'Weights' in raw or 'weights' in raw else 'transformation'} "
                 f"(named {raw.get('Name', raw.get('name', ''))!r}, with empty lists) was ignored")
    return True


def _repeats(values):
    """The values met again after their first time, in order (a set: a list of 100,000 names
    compared with all those before each took a minute)."""
    seen = set()
    for value in values:
        if value in seen:
            yield value
        seen.add(value)


def _variable(value, where, made=()):
    """A variable's name, or :data:`INTERCEPT` for 1 (the number, or the text ``"1"`` unless the
    node's transformations make a variable of that name: a trial type ``1`` renamed, as the
    default model of a dataset whose trial types are numbers does)."""
    if is_intercept(value) or (value == "1" and value not in made):
        return INTERCEPT
    if not isinstance(value, str) or not value:
        raise ModelError(f"{where} has {value!r}; variables are names, or 1 for the intercept.")
    return value


#: pybids' fixed-effects meta-analysis test: a t test of a node that combines its inputs by fixed effects.
FEMA = "fema"


def _test(value, where, notes, level):
    if str(value).lower() == FEMA:
        if level == "run":
            raise ModelError(f"{where} has Test {value!r}, a fixed-effects test across inputs, which applies "
                             "to nodes above the run level.")
        notes.append(f"{where}: Test 'FEMA' read as a t test (the node's Model.Type decides fixed effects)")
        return "t"
    test = {"t": "t", "f": "F", "pass": "pass"}.get(str(value).lower())
    if test is None:
        raise ModelError(f"{where} has Test {value!r}; expected 't', 'F' or 'pass'.")
    return test


def _uses_fema(doc) -> bool:
    """Whether any contrast of a node document asks for pybids' 'FEMA' test."""
    tests = []
    for item in listify(doc.get("Contrasts")) + listify(doc.get("DummyContrasts")):
        if isinstance(item, dict):
            tests += [v for k, v in item.items() if str(k).lower() in ("test", "type")]
    return any(str(test).lower() == FEMA for test in tests)


def _parse_contrast(raw, where, notes, level, made=()) -> Contrast:
    if not isinstance(raw, dict):
        raise ModelError(f"{where}: a contrast is not a JSON object.")
    doc = canonical(raw, ("Name", "ConditionList", "Weights", "Test", "Type", "Description"), f"{where}: contrast")
    name = doc.get("Name")
    if isinstance(name, (int, float)) and not isinstance(name, bool):
        notes.append(f"{where}: the contrast Name {name!r} is a number; read as the text {str(name)!r}")
        name = str(name)
    if not isinstance(name, str) or not name:
        raise ModelError(f"{where} has a contrast without a Name.")
    where = f"{where}, contrast {name!r}"
    if "Test" not in doc and "Type" in doc:
        doc["Test"] = doc.pop("Type")
        notes.append(f"{where}: 'Type' read as 'Test'")
    conditions = tuple(_variable(v, f"{where}: ConditionList", made) for v in listify(doc.get("ConditionList")))
    if not conditions:
        raise ModelError(f"{where} has no ConditionList.")
    repeated = list(_repeats(conditions))
    if repeated:  # its weights were summed without a word (1 and 1: a weight of 2)
        raise ModelError(f"{where} names {repeated[0]!r} twice in its ConditionList; name each condition once, "
                         "with its weight.")
    if "Weights" not in doc:
        raise ModelError(f"{where} has no Weights.")
    test = _test(doc.get("Test", "t"), where, notes, level)
    weights = parse_weights(doc["Weights"], len(conditions), test, where)
    return Contrast(name=name, condition_list=conditions, weights=weights, test=test)


def _parse_dummy(raw, where, notes, level, made=()) -> DummyContrasts:
    if raw is True:
        return DummyContrasts()
    if not isinstance(raw, dict):
        raise ModelError(f"{where}: DummyContrasts is not a JSON object.")
    doc = canonical(raw, ("Contrasts", "Test", "Type", "Conditions", "ConditionList", "Description"),
                    f"{where}: DummyContrasts")
    if "Test" not in doc and "Type" in doc:
        doc["Test"] = doc.pop("Type")
        notes.append(f"{where}: DummyContrasts 'Type' read as 'Test'")
    for legacy in ("Conditions", "ConditionList"):
        if legacy in doc and "Contrasts" not in doc:
            doc["Contrasts"] = doc.pop(legacy)
            notes.append(f"{where}: DummyContrasts '{legacy}' read as 'Contrasts'")
    conditions = doc.get("Contrasts")
    if conditions is not None:
        conditions = tuple(_variable(v, f"{where}: DummyContrasts.Contrasts", made) for v in listify(conditions))
    return DummyContrasts(conditions=conditions, test=_test(doc.get("Test", "t"), f"{where}: DummyContrasts", notes, level))


def _parse_hrf(raw, where, notes) -> HRF:
    if not isinstance(raw, dict):
        raise ModelError(f"{where}: Model.HRF is not a JSON object.")
    doc = canonical(raw, ("Variables", "Model", "Parameters", "Description"), f"{where}: Model.HRF")
    variables = tuple(str(v) for v in listify(doc.get("Variables")))
    model = check_hrf_model(doc.get("Model", "glover"), f"{where}: Model.HRF")
    if str(doc.get("Model", "glover")).replace(" ", "").lower() != model.replace(" ", ""):
        notes.append(f"{where}: the HRF model {doc['Model']!r} read as {model!r}")
    parameters = {str(k): v for k, v in (doc.get("Parameters") or {}).items()}
    delays = next((parameters.pop(k) for k in list(parameters) if re.sub(r"[_\s]", "", k).lower() == "firdelays"),
                  None)
    if parameters:
        raise ModelError(f"{where}: Model.HRF.Parameters has {next(iter(parameters))!r}; the HRF models of this app "
                         "(nilearn's) take only fir_delays.")
    if model == "fir":
        if not delays:
            raise ModelError(f"{where}: the 'fir' HRF needs Parameters.fir_delays, a list of delays in scans.")
        if not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in listify(delays)):
            raise ModelError(f"{where}: Model.HRF.Parameters.fir_delays is {json.dumps(delays)[:60]}; give whole "
                             "numbers of scans, 0 or more (such as [0, 1, 2]).")
        delays = tuple(listify(delays))
    elif delays is not None:
        raise ModelError(f"{where}: fir_delays is given but the HRF model is {model!r}, not 'fir'.")
    return HRF(variables=variables, model=model, fir_delays=delays)


def _parse_transformations(raw, where, notes) -> tuple:
    if not raw:
        return ()
    if isinstance(raw, list):
        notes.append(f"{where}: Transformations given as a list, read as pybids-transforms-v1 Instructions")
        raw = {"Transformer": TRANSFORMER, "Instructions": raw}
    if not isinstance(raw, dict):
        raise ModelError(f"{where}: Transformations is not a JSON object.")
    doc = canonical(raw, ("Transformer", "Instructions", "Description"), f"{where}: Transformations")
    doc["Instructions"] = [i for i in listify(doc.get("Instructions")) if not _placeholder(i, where, notes)]
    if not doc["Instructions"]:
        return ()
    transformer = str(doc.get("Transformer", ""))
    if transformer.lower() != TRANSFORMER:
        raise ModelError(
            f"{where} uses the transformer {transformer!r}; this app implements only {TRANSFORMER}."
        )
    return tuple(parse_instruction(i, where, TRANSFORMATION_NAMES, Transformation)
                 for i in listify(doc.get("Instructions") or []))


def parse_edge(raw, source, names) -> Edge:
    if not isinstance(raw, dict):
        raise ModelError(f"{source}: an edge is not a JSON object.")
    doc = canonical(raw, ("Source", "Destination", "Filter", "Description"), f"{source}: edge")
    for key in ("Source", "Destination"):
        if doc.get(key) not in names:
            raise ModelError(
                f"{source} has an edge whose {key} {doc.get(key)!r} is not a node (nodes: {', '.join(names)})."
            )
    flt = doc.get("Filter") or {}
    if not isinstance(flt, dict):
        raise ModelError(f"{source}: the Filter of edge {doc['Source']} -> {doc['Destination']} is not an object.")
    return Edge(doc["Source"], doc["Destination"], {str(k): tuple(listify(v)) for k, v in flt.items()})
