"""Corrected inference as a model file states it: ``Model.Software["bids-fixedfx"]``.

BIDS Stats Models leave software-specific settings to ``Model.Software``, one object per
software (bidspm keeps SPM's there, this app nilearn's under ``nilearn``). The settings of
``--threshold``, ``--alpha``, ``--cluster-extent``, ``--cluster-inference``,
``--cluster-threshold``, ``--n-perm`` and ``--tfce`` sit under ``bids-fixedfx``, each key the
option's name in CamelCase::

    "Software": {"bids-fixedfx": {"Threshold": "fdr", "Alpha": 0.05, "ClusterExtent": 10,
                                  "ClusterInference": false, "ClusterThreshold": 3.0,
                                  "NPerm": 1000, "TFCE": false}}

The subject node's apply at the participant level, the dataset node's at the group level
(``NPerm`` and ``TFCE`` only there). Keys left out have the options' defaults.
"""

from __future__ import annotations

from ..inference import MAX_PERMUTATIONS, METHODS, OPTIONS, REQUIRES, REQUIRES_ONE, InferenceSettings
from .bsm import ModelError

#: The ``Model.Software`` key of this app's settings.
SOFTWARE = "bids-fixedfx"
#: Each key and the :class:`InferenceSettings` field it sets (its option: ``inference.OPTIONS``).
KEYS = {
    "Threshold": "method", "Alpha": "alpha", "ClusterExtent": "cluster_extent",
    "ClusterInference": "cluster_inference", "ClusterThreshold": "cluster_threshold",
    "NPerm": "n_perm", "TFCE": "tfce",
}
#: Keys of the group level only.
GROUP_KEYS = ("NPerm", "TFCE")
_FIELDS = {field: key for key, field in KEYS.items()}


def stated_inference(node) -> InferenceSettings | None:
    """The inference settings a node states in ``Model.Software["bids-fixedfx"]``; None when it
    states none.

    Parameters
    ----------
    node : Node
        A subject or dataset node.

    Returns
    -------
    settings : InferenceSettings or None

    Raises
    ------
    ModelError
        An unknown key, a value of the wrong kind, a group-level key outside the dataset node,
        or a key without the one it needs (named, with the node).
    """
    section = next((value for key, value in node.software.items() if key.lower() == SOFTWARE), None)
    if section is None:
        return None
    where = f"Model.Software.{SOFTWARE} of node {node.name!r}"
    if not isinstance(section, dict):
        raise ModelError(f"{where} must be an object of settings ({', '.join(KEYS)}).")
    values = {}
    for key, value in section.items():
        if key not in KEYS:
            raise ModelError(f"{where} has {key!r}; its keys are {', '.join(KEYS)}.")
        if key in GROUP_KEYS and node.level != "dataset":
            raise ModelError(f"{where} has {key!r}, a permutation test across subjects: it belongs to the dataset node.")
        values[KEYS[key]] = _checked(key, value, where)
    settings = InferenceSettings(**values)
    for field, needed, why in REQUIRES:
        if getattr(settings, field) and not getattr(settings, needed):
            raise ModelError(f"{where} has {_FIELDS[field]!r} without {_FIELDS[needed]!r} ({why}).")
    for field, needed, why in REQUIRES_ONE:
        if field in values and not any(getattr(settings, other) for other in needed):
            raise ModelError(f"{where} has {_FIELDS[field]!r} without "
                             f"{' or '.join(repr(_FIELDS[other]) for other in needed)} ({why}).")
    if settings.n_perm and node.model_type == "meta":
        raise ModelError(f"{where} has 'NPerm', a sign-flip test across subjects; the node combines them by "
                         "fixed effects (Type meta).")
    return settings


def _checked(key, value, where):
    if key == "Threshold":
        if value not in METHODS:
            raise ModelError(f"{where} has Threshold {value!r}; expected one of {', '.join(METHODS)}.")
        return value
    if key in ("ClusterInference", "TFCE"):
        if not isinstance(value, bool):
            raise ModelError(f"{where} has {key} {value!r}; expected true or false.")
        return value
    if key in ("ClusterExtent", "NPerm"):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ModelError(f"{where} has {key} {value!r}; expected a whole number, 0 or more.")
        if key == "NPerm" and value > MAX_PERMUTATIONS:
            raise ModelError(f"{where} has NPerm {value!r}; expected at most {MAX_PERMUTATIONS:,} permutations.")
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or (key == "Alpha" and not 0 < value < 1):
        expected = "a number between 0 and 1" if key == "Alpha" else "a number, 0 or more"
        raise ModelError(f"{where} has {key} {value!r}; expected {expected}.")
    return float(value)


def inference_software(settings: InferenceSettings, level: str) -> dict:
    """``Model.Software`` entries that state these settings in a node of ``level`` (``subject``
    or ``dataset``); empty when they ask for no corrected inference, so that a model written
    for plain maps says nothing of it.

    Parameters
    ----------
    settings : InferenceSettings
    level : str

    Returns
    -------
    software : dict
        ``{"bids-fixedfx": {...}}`` or ``{}``.
    """
    wanted = settings.method or settings.cluster_inference or (level == "dataset" and settings.n_perm)
    if not wanted:
        return {}
    defaults = InferenceSettings()
    section = {}
    for key, field in KEYS.items():
        if key in GROUP_KEYS and level != "dataset":
            continue
        value = getattr(settings, field)
        if value != getattr(defaults, field):
            section[key] = value
    return {SOFTWARE: section}


def option_of(settings: InferenceSettings) -> str | None:
    """The command-line option of the first setting that differs from the defaults (None: none)."""
    defaults = InferenceSettings()
    for field, option in OPTIONS.items():
        if getattr(settings, field) != getattr(defaults, field):
            return option
    return None
