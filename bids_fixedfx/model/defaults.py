"""The model that the command-line options define when no ``-m/--model`` is given.

Run level: every ``trial_type`` a condition (``Factor`` then ``Rename`` to the bare level, so
the design columns are nilearn's), the confounds, the HRF, the drift and one contrast per
condition; subject level: fixed effects (``meta``) over the runs; dataset level: a one-sample
t-test (``glm``) or fixed effects over the subjects. Settings that BIDS Stats Models has no key
for sit in ``Model.Software.nilearn`` (``noise_model``, ``drift_model``, ``drift_order``,
``precision_weighted``, and the volumes left out of the fit: ``non_steady_state``, true: those
that fMRIPrep's ``non_steady_state_outlier`` columns flag; ``dummy_scans``: the first N volumes
of a run without such columns).
"""

from __future__ import annotations

from .bsm import INTERCEPT, Model, ModelError, parse_model
from .inference import inference_software

#: The six motion parameters, the default confounds.
MOTION = ("trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z")
#: The ``Model.Software`` key whose settings this app reads.
SOFTWARE = "nilearn"


def default_model(
    conditions,
    *,
    confounds=MOTION,
    hrf_model: str = "glover",
    fir_delays=None,
    drift_model: str | None = "cosine",
    high_pass: float = 0.01,
    drift_order: int = 1,
    noise_model: str = "ar1",
    contrasts=None,
    modulation: bool = False,
    group_model: str = "random",
    precision_weighted: bool = False,
    tasks=None,
    name: str = "default",
    inference=None,
    non_steady_state: bool = True,
    dummy_scans: int | None = None,
    smoothing_fwhm: float | None = None,
) -> Model:
    """The default model as a :class:`~.bsm.Model` (write it with ``model.to_json()``).

    Parameters
    ----------
    conditions : sequence of str
        The ``trial_type`` values to model (every one found in the selected runs).
    confounds : sequence of str
        Confound columns or patterns (``trans_*``); nilearn strategies are not columns.
    hrf_model : str
        nilearn's HRF name (``glover``, ``spm + derivative``, ``fir``, ...).
    fir_delays : sequence of int, optional
        Delays in scans, for ``fir``.
    drift_model : {'cosine', 'polynomial', 'none', None}
    high_pass : float
        Cut-off in Hz of the cosine drift.
    drift_order : int
        Order of the polynomial drift.
    noise_model : {'ar1', 'ols'}
    contrasts : mapping of str to mapping of str to float, optional
        Run-level t contrasts: name -> {design column: weight}. Default: one per condition.
    modulation : bool
        Whether the events have a ``modulation`` column that scales each event, as nilearn
        reads it.
    group_model : {'random', 'fixed'}
        Dataset level: one-sample t-test (``glm``) or fixed effects (``meta``).
    precision_weighted : bool
        Inverse-variance weighting in the fixed effects.
    tasks : sequence of str, optional
        ``Input.task``.
    name : str
        The model's ``Name``.
    inference : InferenceSettings, optional
        The participant level's corrected inference, which the subject node states
        (``Model.Software["bids-fixedfx"]``, see :mod:`.inference`).
    non_steady_state : bool
        Leave out of the fit the volumes that fMRIPrep's ``non_steady_state_outlier`` columns
        flag (``Software.nilearn.non_steady_state``).
    dummy_scans : int, optional
        Leave out the first N volumes of runs without such columns (``Software.nilearn.dummy_scans``).
    smoothing_fwhm : float, optional
        The smoothing given with ``--smoothing-fwhm`` (``Software.nilearn.smoothing_fwhm``; 0:
        none), so that the model passed back with ``-m`` smooths as this run did; None: the
        app's default (5 mm on volumes, none on surfaces), not stated.

    Returns
    -------
    model : Model
    """
    conditions = sorted({str(c) for c in conditions})
    if not conditions:
        raise ModelError("The default model needs at least one trial_type to model; the events have none.")
    if group_model not in ("random", "fixed"):
        raise ModelError(f"--group-model {group_model!r} is not one of random, fixed.")
    levels = [f"trial_type.{c}" for c in conditions]
    instructions = [{"Name": "Factor", "Input": ["trial_type"]}]
    if modulation:
        instructions += [
            {"Name": "Product", "Input": [level, "modulation"], "Output": [c]}
            for level, c in zip(levels, conditions)
        ]
    else:
        instructions.append({"Name": "Rename", "Input": levels, "Output": conditions})
    software = {"noise_model": noise_model, "non_steady_state": bool(non_steady_state)}
    if dummy_scans is not None:
        software["dummy_scans"] = int(dummy_scans)
    if smoothing_fwhm is not None:
        software["smoothing_fwhm"] = float(smoothing_fwhm)
    options = {}
    drift = "none" if drift_model in (None, "none") else drift_model
    if drift == "cosine":
        options["HighPassFilterCutoffHz"] = high_pass
    elif drift == "polynomial":
        software.update(drift_model="polynomial", drift_order=int(drift_order))
    elif drift != "none":
        raise ModelError(f"--drift-model {drift_model!r} is not one of cosine, polynomial, none.")
    hrf = {"Variables": conditions, "Model": hrf_model}
    if fir_delays is not None:
        hrf["Parameters"] = {"fir_delays": [int(d) for d in fir_delays]}
    run = {
        "Level": "Run", "Name": "run", "GroupBy": ["run", "session", "task", "subject"],
        "Transformations": {"Transformer": "pybids-transforms-v1", "Instructions": instructions},
        "Model": {"Type": "glm", "X": conditions + list(confounds) + [INTERCEPT], "HRF": hrf,
                  **({"Options": options} if options else {}), "Software": {SOFTWARE: software}},
    }
    if contrasts:
        run["Contrasts"] = [
            {"Name": n, "ConditionList": list(w), "Weights": [float(v) for v in w.values()], "Test": "t"}
            for n, w in contrasts.items()
        ]
    else:
        run["DummyContrasts"] = {"Contrasts": conditions, "Test": "t"}
    subject = {
        "Level": "Subject", "Name": "subject", "GroupBy": ["subject", "task", "contrast"],
        "Model": {"Type": "meta", "X": [INTERCEPT],
                  "Software": {SOFTWARE: {"precision_weighted": bool(precision_weighted)},
                               **(inference_software(inference, "subject") if inference is not None else {})}},
        "DummyContrasts": {"Test": "t"},
    }
    dataset = {
        "Level": "Dataset", "Name": "dataset", "GroupBy": ["task", "contrast"],
        "Model": {"Type": "glm" if group_model == "random" else "meta", "X": [INTERCEPT]},
        "DummyContrasts": {"Test": "t"},
    }
    if group_model == "fixed":
        dataset["Model"]["Software"] = {SOFTWARE: {"precision_weighted": bool(precision_weighted)}}
    document = {
        "Name": name, "BIDSModelVersion": "1.0.0",
        "Description": "The model that the bids-fixedfx command-line options define.",
        **({"Input": {"task": sorted(tasks)}} if tasks else {}),
        "Nodes": [run, subject, dataset],
        "Edges": [{"Source": "run", "Destination": "subject"}, {"Source": "subject", "Destination": "dataset"}],
    }
    return parse_model(document, "The default model", schema=False)  # the tests check it follows the schema
