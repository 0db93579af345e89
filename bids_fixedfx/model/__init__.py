"""BIDS Stats Models: model records, transformations, convolution and designs.

The package is pure: records in, records out. The only I/O is :func:`load_model`,
which reads a model file; :meth:`Model.to_json` returns the text to write.

- :mod:`.bsm`: read and check a BIDS Stats Model (BIDSModelVersion 1.0.0) into frozen
  records (:class:`Model`, :class:`Node`, :class:`Edge`, :class:`Contrast`, ...).
- :mod:`.defaults`: the model that the command-line options define.
- :mod:`.variables` and :mod:`.transforms`: events and confounds as variables, and the
  ``pybids-transforms-v1`` transformations on them.
- :mod:`.hrf`: convolution, equal to nilearn's ``compute_regressor``.
- :mod:`.design`: a run's design matrix from a run node.
- :mod:`.formula`: ``Model.Formula`` (``0 + a * b``), parsed and applied to X's columns.
- :mod:`.group`: designs above the run, from the inputs' entities and ``participants.tsv``.
- :mod:`.contrasts`: X and contrasts against design columns; contrast matrices and the
  names of contrasts passed to later nodes.
"""

from .bsm import (
    INTERCEPT,
    LEVELS,
    Contrast,
    DummyContrasts,
    Edge,
    HRF,
    Model,
    ModelError,
    Node,
    Transformation,
    load_model,
    parse_model,
)

__all__ = [
    "INTERCEPT",
    "LEVELS",
    "Contrast",
    "DummyContrasts",
    "Edge",
    "HRF",
    "Model",
    "ModelError",
    "Node",
    "Transformation",
    "load_model",
    "parse_model",
]
