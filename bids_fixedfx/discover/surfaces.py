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
from ..naming import other_hemisphere
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
                 **{**filters, "hemi": ["L", "R"]}) if wanted is None or GIFTI_SERIES in wanted else []
    lefts = {Path(f.path) for f in gifti if f.get_entities().get("hemi") == "L"}
    gifti = [f for f in gifti  # a left file, or a right one without its left (refused by check_pairs)
             if Path(f.path) in lefts or other_hemisphere(f.path) not in lefts]
    cifti = _get(layout, scope="derivatives", extension=CIFTI_SERIES, return_type="object",
                 **filters) if wanted is None or CIFTI_SERIES in wanted else []
    return list(gifti) + list(cifti)


def check_pairs(files) -> None:
    """Refuse a GIFTI series one of whose hemispheres' files is missing (files of the chosen
    spaces only: a broken pair in a space not modelled stops nothing).

    Raises
    ------
    NoDataError
        Naming the file there and its twin that is not.
    """
    for series in files:
        path = Path(series.path)
        if path.name.endswith(GIFTI_SERIES):
            twin = other_hemisphere(path)
            if not twin.is_file():
                side = "right" if "hemi-L" in path.name.split("_") else "left"
                raise NoDataError(f"{path} has no {side} hemisphere {twin.name} next to it.")
