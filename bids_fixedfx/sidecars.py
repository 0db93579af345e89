"""Sidecars as typed records: what is written beside each map and design, and read back.

Each record has ``to_json`` (the dict written, keys in the order of SPEC §3) and
``from_json``/``read`` (a sidecar that cannot be read, or lacks a key, is an error that
names the file; never a default).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace

from .errors import InputFileError
from .jsonfile import read_object

#: First-level settings that every run and subject statmap sidecar carries.
MODEL_KEYS = ("SmoothingFWHM", "NoiseModel", "HRFModel", "DriftModel", "HighPass")
#: The other first-level options a map was made with (absent from the sidecars of earlier versions).
OPTION_KEYS = ("ConfoundsOption", "DummyScansOption", "NonSteadyState", "DriftOrder", "ConvolveHRFModels")


#: Distributions whose versions decide the numbers: recorded in ``GeneratedBy``, and given by
#: the methods text and the reports.
LIBRARIES = ("nilearn", "pybids", "nibabel", "numpy", "scipy")

#: What the sidecars of p and z maps state about them (SPEC §4: their tail; outside the mask).
STAT_KEYS = {
    "p": {
        "Tail": "one-sided: p of the t statistic being this large or larger (small for positive effects)",
        "ValueOutsideMask": 1,
    },
    "z": {
        "Tail": "one-sided: the standard normal quantile of 1 - p (positive for positive effects, "
        "negative for negative ones)",
        "ValueOutsideMask": 0,
    },
}


#: The same for the maps of an F contrast.
STAT_KEYS_F = {
    "p": {"Tail": "one-sided: p of the F statistic being this large or larger", "ValueOutsideMask": 1},
    "z": {"Tail": "one-sided: the standard normal quantile of 1 - p of the F statistic", "ValueOutsideMask": 0},
}


def read_json(path) -> dict:
    """Read a JSON object, naming the file in any error (see :func:`.jsonfile.read_object`).

    Raises
    ------
    InputFileError
    """
    return read_object(path, missing="rerun the level that writes it")


def _need(data, key, path):
    if key not in data:
        raise InputFileError(f"{path} has no {key!r}; rerun the level that writes it.")
    return data[key]


def _dof(data, path) -> float:
    """A sidecar's ``DegreesOfFreedom``: a positive finite number (the p values rest on it)."""
    value = _need(data, "DegreesOfFreedom", path)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < float("inf"):
        raise InputFileError(f"{path} has DegreesOfFreedom {json.dumps(value)[:40]}, not a positive number; "
                             "rerun the level that writes it.")
    return float(value)


@dataclass(frozen=True)
class FirstLevelModelInfo:
    """The first-level settings a map was made with: the SPEC §3 keys, and the options that
    change a design (:data:`OPTION_KEYS`: the confounds asked for, the dummy scans, the
    polynomial drift's order, a model's Convolve HRFs), so that the group level can refuse
    subjects fitted with different ones (None where a sidecar of an earlier version lacks them)."""

    smoothing_fwhm: float
    noise_model: str
    hrf_model: str
    drift_model: str
    high_pass: float | None
    confounds: tuple[str, ...] | None = None
    dummy_scans: int | None = None
    non_steady_state: bool | None = None
    drift_order: int | None = None
    convolution: tuple[str, ...] = ()
    nodes_digest: str | None = None  # ModelNodesDigest: a model file's run, session and subject nodes

    @classmethod
    def from_settings(cls, model, precomputed=False) -> FirstLevelModelInfo:
        """From :class:`~bids_fixedfx.settings.ModelSettings` (the one place that says
        which drift key applies: ``HighPass`` only with the cosine drift); with
        ``precomputed`` (maps of ``--design-dir`` designs only), what the app added to those
        designs: no HRF, drift or confounds."""
        if precomputed:
            return cls(smoothing_fwhm=model.smoothing_fwhm or 0.0, noise_model=model.noise_model, hrf_model="none",
                       drift_model="none", high_pass=None, confounds=(), dummy_scans=model.dummy_scans,
                       non_steady_state=model.non_steady_state)
        return cls(
            smoothing_fwhm=model.smoothing_fwhm or 0.0,
            noise_model=model.noise_model,
            hrf_model=model.hrf_model,
            drift_model=model.drift_model or "none",
            high_pass=model.high_pass if model.drift_model == "cosine" else None,
            confounds=tuple(model.confounds),
            dummy_scans=model.dummy_scans,
            non_steady_state=model.non_steady_state,
            drift_order=model.drift_order if model.drift_model == "polynomial" else None,
            convolution=tuple(model.convolution),
            nodes_digest=model.nodes_digest,
        )

    def compared(self) -> FirstLevelModelInfo:
        """These settings as maps made with them are compared: confounds asked for in any order
        (the same columns, the same fit) and no dummy scans (None) as 0 scans."""
        confounds = None if self.confounds is None else tuple(sorted(self.confounds))
        return replace(self, confounds=confounds, dummy_scans=self.dummy_scans or 0)

    def to_json(self) -> dict:
        data = {
            "SmoothingFWHM": self.smoothing_fwhm,
            "NoiseModel": self.noise_model,
            "HRFModel": self.hrf_model,
            "DriftModel": self.drift_model,
            "HighPass": self.high_pass,
        }
        if self.confounds is not None:
            data.update({"ConfoundsOption": list(self.confounds), "DummyScansOption": self.dummy_scans,
                         "NonSteadyState": self.non_steady_state})
        if self.drift_order is not None:
            data["DriftOrder"] = self.drift_order
        if self.convolution:
            data["ConvolveHRFModels"] = list(self.convolution)
        if self.nodes_digest is not None:
            data["ModelNodesDigest"] = self.nodes_digest
        return data

    @classmethod
    def from_json(cls, data, path) -> FirstLevelModelInfo:
        values = [_need(data, key, path) for key in MODEL_KEYS]
        confounds, convolution = data.get("ConfoundsOption"), data.get("ConvolveHRFModels") or []
        dummy, steady, order = data.get("DummyScansOption"), data.get("NonSteadyState"), data.get("DriftOrder")
        digest = data.get("ModelNodesDigest")
        for key, value, fine in (
            ("ModelNodesDigest", digest, digest is None or isinstance(digest, str)),
            ("ConfoundsOption", confounds, confounds is None or _strings(confounds)),
            ("ConvolveHRFModels", convolution, _strings(convolution)),
            ("DummyScansOption", dummy, dummy is None or (isinstance(dummy, int) and not isinstance(dummy, bool))),
            ("NonSteadyState", steady, steady is None or isinstance(steady, bool)),
            ("DriftOrder", order, order is None or (isinstance(order, int) and not isinstance(order, bool))),
        ):
            if not fine:
                raise InputFileError(f"{path} has {key} {json.dumps(value)[:60]}, which this app does not write; "
                                     "rerun the level that writes it.")
        return cls(*values, confounds=None if confounds is None else tuple(confounds), dummy_scans=dummy,
                   non_steady_state=steady, drift_order=order, convolution=tuple(convolution), nodes_digest=digest)


def _strings(value) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


@dataclass(frozen=True)
class ContrastInfo:
    """A contrast as the sidecars state it."""

    name: str
    weights: object  # {column: weight}; for an F contrast, one such mapping per row
    test: str = "t"

    def to_json(self) -> dict:
        weights = [dict(row) for row in self.weights] if self.test == "F" else dict(self.weights)
        return {"Name": self.name, "Test": self.test, "Weights": weights}

    @classmethod
    def from_json(cls, data, path) -> ContrastInfo:
        if not isinstance(data, dict) or "Name" not in data:
            raise InputFileError(f"{path} has no contrast 'Name'; rerun the level that writes it.")
        test = str(data.get("Test", "t"))
        weights = data.get("Weights", {})
        rows = weights if test == "F" and isinstance(weights, list) else [weights]
        if not all(isinstance(row, dict) and all(isinstance(w, (int, float)) and not isinstance(w, bool)
                                                 for w in row.values()) for row in rows):
            raise InputFileError(f"{path} has Contrast.Weights that are not {{column: number}} "
                                 f"({json.dumps(weights)[:40]}); rerun the level that writes it.")
        return cls(str(data["Name"]), [dict(r) for r in weights] if test == "F" else dict(weights), test)


#: The key of a subject or session map's sidecar that says how its node combined the inputs:
#: by fixed effects (``meta``) or by a one-sample t-test across them (``glm``).
COMBINATION_KEYS = {"meta": "FixedEffects", "glm": "RandomEffects"}
#: How each estimator is said in messages and reports.
COMBINATION_NAMES = {"meta": "fixed effects", "glm": "one-sample t-test"}


@dataclass(frozen=True)
class StatmapSidecar:
    """The sidecar of one statistical map, at the run, subject or group level.

    Attributes
    ----------
    sources : tuple of str
        What the map was computed from (relative paths or ``bids::`` URIs).
    contrast : ContrastInfo
    dof : float
    model : FirstLevelModelInfo or None
        The first-level settings (None at the group level when subjects differ).
    combination : dict or None
        Subject and session levels, how the node combined its inputs: with fixed effects
        (``estimator`` ``meta``, written as ``FixedEffects``: ``{"PrecisionWeighted": bool,
        "NumberOfRuns": n}``, and the runs left out, if any) or by a one-sample t-test across
        them (``glm``, written as ``RandomEffects``, without ``PrecisionWeighted``).
    estimator : str
        ``meta`` or ``glm``: see ``combination``.
    group : dict or None
        Group level: ``GroupModel``, ``NumberOfSubjects``, ``Subjects``.
    statistic : str or None
        ``effect``, ``variance``, ``t``, ``z`` or ``p``.
    node, model_file : str or None
        The model's node that made the map, and the model file (``Node``, ``ModelFile``); a
        model file without a node: maps the app made where the model has no node (the subject
        maps of a model without a subject node), written with ``Node`` null.
    bids_level : str or None
        ``Level`` as BIDS Stats Models name it, when the node's level is not the one the
        other keys imply (``Session``).
    """

    sources: tuple[str, ...]
    contrast: ContrastInfo
    dof: float
    model: FirstLevelModelInfo | None = None
    combination: dict | None = None
    group: dict | None = None
    statistic: str | None = None
    extra: dict = field(default_factory=dict)
    node: str | None = None
    model_file: str | None = None
    bids_level: str | None = None
    estimator: str = "meta"

    @property
    def level(self) -> str:
        """``run``, ``subject`` or ``group``."""
        return "group" if self.group is not None else "subject" if self.combination is not None else "run"

    @property
    def precision_weighted(self) -> bool | None:
        """Whether fixed effects weighted the inputs by their precision (None: no fixed effects)."""
        if self.combination is None or self.estimator != "meta":
            return None
        return bool(self.combination.get("PrecisionWeighted", False))

    @property
    def combined_by(self) -> str:
        """How a subject or session node combined its inputs, in words (``fixed effects``,
        ``one-sample t-test``)."""
        return COMBINATION_NAMES[self.estimator]

    @property
    def bsm_level(self) -> str:
        """The level as BIDS Stats Models name it (``Run``, ``Session``, ``Subject``, ``Dataset``)."""
        if self.bids_level is not None:
            return self.bids_level
        return {"run": "Run", "subject": "Subject", "group": "Dataset"}[self.level]

    def to_json(self) -> dict:
        data = {"Sources": list(self.sources), "Contrast": self.contrast.to_json(), "DegreesOfFreedom": self.dof}
        if self.model is not None:
            data.update(self.model.to_json())
        if self.combination is not None:
            data[COMBINATION_KEYS[self.estimator]] = dict(self.combination)
        if self.group is not None:
            data.update(self.group)
        data.update(self.extra)
        if self.node is not None or self.model_file is not None:  # Node null: no node of the model made it
            data.update({"Node": self.node, "Level": self.bsm_level})
        if self.model_file is not None:
            data["ModelFile"] = self.model_file
        if self.statistic is not None:
            data["Statistic"] = self.statistic
        return data

    @classmethod
    def from_json(cls, data, path) -> StatmapSidecar:
        """Parse a statmap sidecar written by this app.

        Raises
        ------
        InputFileError
            A key the level needs is missing.
        """
        group = None
        if "GroupModel" in data:
            group = {k: data[k] for k in ("GroupModel", "NumberOfSubjects", "Subjects") if k in data}
        model = None
        if group is None or all(key in data for key in MODEL_KEYS):
            model = FirstLevelModelInfo.from_json(data, path)
        known = {"Sources", "Contrast", "DegreesOfFreedom", *COMBINATION_KEYS.values(), "Statistic", *MODEL_KEYS,
                 *(OPTION_KEYS if model is not None else ()),
                 *(group or {}), "Node", "Level", "ModelFile"}
        estimator = next((e for e, key in COMBINATION_KEYS.items() if key in data), "meta")
        return cls(
            sources=tuple(_need(data, "Sources", path)),
            contrast=ContrastInfo.from_json(_need(data, "Contrast", path), path),
            dof=_dof(data, path),
            model=model,
            combination=_object(data, COMBINATION_KEYS[estimator], path),
            group=group,
            statistic=data.get("Statistic"),
            extra={k: v for k, v in data.items() if k not in known},
            node=data.get("Node"),
            model_file=data.get("ModelFile"),
            bids_level=data.get("Level"),
            estimator=estimator,
        )

    @classmethod
    def read(cls, path) -> StatmapSidecar:
        """Read and parse a statmap sidecar (errors name the file)."""
        return cls.from_json(read_json(path), path)


def _object(data, key, path):
    """A key whose value, if any, is a JSON object (``FixedEffects``)."""
    value = data.get(key)
    if value is not None and not isinstance(value, dict):
        raise InputFileError(f"{path} has {key} {json.dumps(value)[:40]}, not an object; rerun the level that "
                             "writes it.")
    return value


@dataclass(frozen=True)
class FitSidecar:
    """The sidecar of a run's R² map: how well its model fits each voxel.

    Attributes
    ----------
    sources : tuple of str
        The run's files (as for its contrast maps).
    dof : float
        Residual degrees of freedom of the fit.
    model : FirstLevelModelInfo
    node, model_file : str or None
        The model's run node and file.
    """

    sources: tuple[str, ...]
    dof: float
    model: FirstLevelModelInfo
    node: str | None = None
    model_file: str | None = None

    DESCRIPTION = ("Proportion of the variance of the scaled BOLD series that the model explains in each "
                   "voxel, as nilearn's RegressionResults.r_square")

    @property
    def description(self) -> str:
        """:data:`DESCRIPTION`, with how the noise model enters it: with AR(1), a pseudo-R2 of
        the whitened data and design; with OLS, the plain R2."""
        if self.model.noise_model == "ols":
            return f"{self.DESCRIPTION} (the plain R2 of the OLS fit)"
        return (f"{self.DESCRIPTION}, computed on the data and design whitened by each voxel's AR(1) "
                "model (a pseudo-R2)")

    def to_json(self) -> dict:
        data = {"Sources": list(self.sources), "Statistic": "rsquared", "Description": self.description,
                "DegreesOfFreedom": self.dof, **self.model.to_json(), "ValueOutsideMask": 0}
        if self.node is not None:
            data.update({"Node": self.node, "Level": "Run", "ModelFile": self.model_file})
        return data

    @classmethod
    def from_json(cls, data, path) -> FitSidecar:
        return cls(tuple(_need(data, "Sources", path)), _dof(data, path),
                   FirstLevelModelInfo.from_json(data, path), data.get("Node"), data.get("ModelFile"))

    @classmethod
    def read(cls, path) -> FitSidecar:
        """Read and parse an R² map's sidecar (errors name the file)."""
        return cls.from_json(read_json(path), path)


@dataclass(frozen=True)
class DesignSidecar:
    """The sidecar of a run's ``_design.tsv``: how the design was made, and the run's facts
    that later steps (the methods text, reports) need."""

    repetition_time: float
    start_time: float
    n_volumes: int
    columns: tuple[str, ...]
    conditions: tuple[str, ...]
    confounds: tuple[str, ...]
    precomputed: bool
    confounds_option: tuple[str, ...]
    volumes_excluded: int
    hrf_model: str
    drift_model: str
    high_pass: float | None
    drift_order: int | None
    bold: str
    mask: str | None
    preprocessed: bool
    sources: tuple[str, ...]
    dummy_scans: dict | None = None  # {"Volumes", "Source", "Reason"} of design.DummyScans
    convolution: tuple[str, ...] = ()  # HRFs of the model's Convolve transformations (HRFModel: the design's)
    excluded: tuple[int, ...] = ()  # the volumes left out of the fit (0-based): nilearn's sample_mask's complement
    modulated: bool = False  # the events' modulation column scaled their regressors (nilearn's parametric modulation)

    def to_json(self) -> dict:
        return {
            "RepetitionTime": self.repetition_time,
            "StartTime": self.start_time,
            "NumberOfVolumes": self.n_volumes,
            "Columns": list(self.columns),
            "Conditions": list(self.conditions),
            "Confounds": list(self.confounds),
            "Precomputed": self.precomputed,
            "ConfoundsOption": list(self.confounds_option),
            "VolumesExcluded": self.volumes_excluded,
            **({"ExcludedVolumeIndices": list(self.excluded)} if self.excluded else {}),
            "DummyScans": self.dummy_scans,
            "HRFModel": self.hrf_model,
            **({"ConvolveHRFModels": list(self.convolution)} if self.convolution else {}),
            **({"ParametricModulation": True} if self.modulated else {}),
            "DriftModel": self.drift_model,
            "HighPass": self.high_pass,
            "DriftOrder": self.drift_order,
            "BOLD": self.bold,
            "Mask": self.mask,
            "Preprocessed": self.preprocessed,
            "Sources": list(self.sources),
        }

    @classmethod
    def from_json(cls, data, path) -> DesignSidecar:
        keys = ("RepetitionTime", "StartTime", "NumberOfVolumes", "Columns", "Conditions", "Confounds",
                "Precomputed", "ConfoundsOption", "VolumesExcluded", "HRFModel", "DriftModel", "HighPass",
                "DriftOrder", "BOLD", "Mask", "Preprocessed", "Sources", "DummyScans")
        values = [_need(data, key, path) for key in keys]
        values = [tuple(v) if isinstance(v, list) else v for v in values]
        convolution = data.get("ConvolveHRFModels") or []
        if not _strings(convolution):
            raise InputFileError(f"{path}: ConvolveHRFModels is not a list of HRF names.")
        excluded = data.get("ExcludedVolumeIndices") or []
        if not isinstance(excluded, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in excluded):
            raise InputFileError(f"{path}: ExcludedVolumeIndices is not a list of volume indices.")
        return cls(*values, convolution=tuple(convolution), excluded=tuple(excluded),
                   modulated=data.get("ParametricModulation") is True)

    @classmethod
    def read(cls, path) -> DesignSidecar:
        """Read and parse a design sidecar (errors name the file)."""
        return cls.from_json(read_json(path), path)
