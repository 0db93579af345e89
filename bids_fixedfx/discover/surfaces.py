"""Surface and CIFTI BOLD series in the derivatives, as fMRIPrep names them.

A GIFTI series comes as a pair, ``..._hemi-L_space-<sp>_bold.func.gii`` and its ``hemi-R``
twin; the pair is represented by its left file (:func:`~bids_fixedfx.naming.hemisphere_pair`
gives the right one). A CIFTI series is one ``..._space-fsLR_den-<d>_bold.dtseries.nii``.
Neither carries ``desc-preproc``; a density is chosen like any entity, with
``--bids-filter-file`` (``{"bold": {"den": "91k"}}``).
"""

from __future__ import annotations

from pathlib import Path

from ..errors import NoDataError
from ..naming import hemisphere_pair
from ..surface import CIFTI_SERIES, GIFTI_SERIES
from .query import _get


def surface_series(layout, query, bold_filters) -> list:
    """The selected runs' surface series: each GIFTI pair's left file, and CIFTI series.

    Parameters
    ----------
    layout : BIDSLayout
    query : dict
        Subjects, sessions and tasks.
    bold_filters : dict
        The ``bold`` query of ``--bids-filter-file`` (pybids form).

    Returns
    -------
    files : list of BIDSFile
        Not checked: :func:`check_pairs` checks the GIFTI pairs of the spaces chosen.
    """
    from bids.layout import Query

    filters = {"suffix": "bold", **query, **bold_filters}
    filters.setdefault("desc", Query.NONE)
    wanted = filters.pop("extension", None)  # the filter's extension (or extensions), if any, picks the kind
    wanted = {wanted} if isinstance(wanted, str) else set(wanted) if isinstance(wanted, (list, tuple)) else None
    gifti = _get(layout, scope="derivatives", extension=GIFTI_SERIES, return_type="object",
                 **{**filters, "hemi": "L"}) if wanted is None or GIFTI_SERIES in wanted else []
    cifti = _get(layout, scope="derivatives", extension=CIFTI_SERIES, return_type="object",
                 **filters) if wanted is None or CIFTI_SERIES in wanted else []
    return list(gifti) + list(cifti)


def check_pairs(files) -> None:
    """Refuse a GIFTI series whose right hemisphere's file is missing (files of the chosen
    spaces only: a broken pair in a space not modelled stops nothing).

    Raises
    ------
    NoDataError
        Naming the left file and the right one it lacks.
    """
    for left in files:
        if str(left.path).endswith(GIFTI_SERIES):
            right = hemisphere_pair(Path(left.path))[1]
            if not right.is_file():
                raise NoDataError(f"{left.path} has no right hemisphere {right.name} next to it.")
