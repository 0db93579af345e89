"""Generate a small, realistic BIDS example dataset with known effects.

The dataset mimics a task-fMRI study (task ``checkerboard`` with the two
conditions ``audio`` and ``visual``) together with fMRIPrep-shaped
derivatives in ``derivatives/fmriprep``.  Every condition activates its own
box of voxels, so the output of a fixed-effects analysis can be checked
against a known ground truth.  ``participants.tsv`` has ``age``, ``sex`` and a
nominal ``group`` (``patient``/``control``) for group designs.  The data serve
both as the product's demo data and as test data.

The modules, in the order the data flow through them:

- :mod:`.study`: task, conditions and the checked parameters (:class:`~.study.Study`),
  which runs each subject has and which random stream feeds what.
- :mod:`.grids`: voxel grids, brain masks, active boxes, baseline, T1w image (arrays).
- :mod:`.simulate`: events, regressors, motion, drift and the BOLD series of a run (arrays).
- :mod:`.confounds`: the fMRIPrep-shaped confounds table and its sidecar (arrays).
- :mod:`.names`: every file name of the dataset; :mod:`.metadata`: what the sidecars and
  dataset files say.
- :mod:`.writer` and :mod:`.files`: the raw dataset and its derivatives, written atomically.
- :mod:`.dataset`: :func:`make_example_dataset`, which coordinates the above.
- :mod:`.cli`: the ``bids-fixedfx-example`` command.

Examples
--------
>>> from bids_fixedfx.example_data import make_example_dataset
>>> ds = make_example_dataset("/tmp/example_bids")  # doctest: +SKIP
>>> ds.active["visual"]  # doctest: +SKIP
(slice(10, 15, None), slice(4, 8, None), slice(8, 12, None))

From the command line::

    bids-fixedfx-example /tmp/example_bids --subjects 4
    python -m bids_fixedfx.example_data /tmp/example_bids
"""

from .cli import main
from .confounds import MOTION_COLUMNS, N_COMPCOR, N_COSINE
from .dataset import ExampleDataset, make_example_dataset
from .grids import NATIVE_PAD, VOXEL_SIZE
from .metadata import AUTHORS, BIDS_VERSION, FMRIPREP_VERSION, MNI_REFERENCE
from .simulate import AR_RHO, BACKGROUND_SD, BLOCK_DURATION, NOISE_PERCENT
from .study import CONDITIONS, EFFECT_SIZE, TASK

__all__ = [
    "ExampleDataset",
    "make_example_dataset",
    "main",
    # the constants of the former single module, still importable from here
    "AR_RHO",
    "AUTHORS",
    "BACKGROUND_SD",
    "BIDS_VERSION",
    "BLOCK_DURATION",
    "CONDITIONS",
    "EFFECT_SIZE",
    "FMRIPREP_VERSION",
    "MNI_REFERENCE",
    "MOTION_COLUMNS",
    "NATIVE_PAD",
    "NOISE_PERCENT",
    "N_COMPCOR",
    "N_COSINE",
    "TASK",
    "VOXEL_SIZE",
]
