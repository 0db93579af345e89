"""Discovery: from a BIDS dataset and its derivatives to a list of :class:`Run` records.

pybids indexes the raw dataset and the preprocessed derivatives; every selected
preprocessed BOLD series is matched with its events, confounds, brain mask and
repetition time (from the JSON sidecars, with BIDS inheritance).

Entities come from each file's path relative to its dataset's root, never from the
folders above it. With ``--participant-label`` only the selected subjects' folders are
indexed, and sidecars are read only for the files used, so setting up one subject costs
the same in a dataset of ten subjects or of a thousand. ``--bids-database-dir`` saves the
index of the whole dataset once and lets later jobs reuse it.

Modules, each with one job:

``derivatives``  BIDS_DIR checked; derivative datasets found or skipped
``validate``     the official BIDS validator
``indexer``      pybids' indexer reading entities from paths relative to each dataset
``index``        selective indexing and the saved index (``--bids-database-dir``)
``folders``      which dataset and which subject's folder a path belongs to
``metadata``     sidecars with BIDS inheritance; RepetitionTime and StartTime
``query``        pybids queries and the files of one run
``matching``     events (inherited ones too) and --design-dir files of a run
``runs``         the :class:`Run` and :class:`Selection` records; one run from its files
``selection``    :func:`select_runs`
"""

from ..naming import RUN_ENTITIES, run_name
from . import index
from .derivatives import (
    check_bids_dir,
    check_descriptions,
    check_given_derivatives,
    find_derivatives,
    skipped_derivatives,
)
from .index import INDEX_FORMAT, load_layout
from .metadata import inherited_files, sidecar_metadata
from .query import CONFOUNDS_DESCS, CONFOUNDS_SUFFIXES, NIFTI
from .runs import Run, Selection
from .selection import select_runs
from .validate import Validation, validate_input_dir, validator_command

__all__ = [
    "CONFOUNDS_DESCS", "CONFOUNDS_SUFFIXES", "INDEX_FORMAT", "NIFTI", "RUN_ENTITIES", "Run",
    "Selection", "Validation", "check_bids_dir", "check_descriptions", "check_given_derivatives", "find_derivatives", "index", "inherited_files", "load_layout",
    "run_name", "select_runs", "sidecar_metadata", "skipped_derivatives", "validate_input_dir",
    "validator_command",
]
