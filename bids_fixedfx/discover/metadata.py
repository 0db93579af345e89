"""Sidecar metadata with BIDS inheritance, and the repetition time and StartTime of a run.

Only the sidecars of the files used are read, so reading them costs the same whatever
the size of the dataset.
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path

from ..errors import InputFileError, NoDataError
from ..expression import NUMBER
from ..jsonfile import read_object
from ..naming import match_entities, other_hemisphere
from .folders import _dataset_root, _layout_roots


def _name_entities(name):
    """The entities of a file name (its folder not considered), with suffix and extension."""
    return match_entities("/" + name, statmaps=False)


def inherited_files(path: Path, root: Path, suffix: str, extension: str) -> list[list[Path]]:
    """The files that apply to a data file by the BIDS inheritance principle.

    A file applies when it is named with the given suffix and extension and a subset of
    the data file's entities, in the data file's folder or a folder above it up to
    ``root``. Only those folders are listed, whatever the size of the dataset.

    Parameters
    ----------
    path : Path
        The data file.
    root : Path
        The root of the dataset that holds it.
    suffix, extension : str
        What to look for, e.g. ``"bold"`` and ``".json"``, or ``"events"`` and ``".tsv"``.

    Returns
    -------
    levels : list of list of Path
        One list per folder, the data file's own folder first and ``root`` last; in each,
        the files that apply, least specific (fewest entities) first.
    """
    entities = _name_entities(path.name)
    entities.pop("suffix", None)
    entities.pop("extension", None)
    ending = f"{suffix}{extension}"
    levels = []
    folder = path.parent
    while True:
        found = []
        try:
            names = sorted(e.name for e in os.scandir(folder) if e.name.endswith(ending))
        except OSError:
            names = []
        for name in names:
            own = _name_entities(name)
            if name.startswith(".") or own.pop("suffix", None) != suffix:
                continue
            if own.pop("extension", None) != extension:
                continue
            if all(key in entities and entities[key] == value for key, value in own.items()):
                found.append((len(own), folder / name))
        levels.append([file for _, file in sorted(found)])
        if folder == root or folder == folder.parent:
            break
        folder = folder.parent
    return levels


def sidecar_metadata(path: Path, root: Path) -> dict:
    """The metadata of a data file from its JSON sidecars, with BIDS inheritance.

    Only the sidecars of this one file are read (see :func:`inherited_files`); nearer
    sidecars override farther ones, and in one folder more specific ones override less
    specific ones. ``null`` values count as absent.

    Parameters
    ----------
    path : Path
        The data file.
    root : Path
        The root of the dataset that holds it.

    Returns
    -------
    metadata : dict
        Each key mapped to ``(value, sidecar)``: its value and the sidecar it came from.

    Raises
    ------
    InputFileError
        A sidecar that applies cannot be read or is not a JSON object.
    """
    suffix = _name_entities(path.name).get("suffix")
    if suffix is None:
        return {}
    metadata = {}
    for level in reversed(inherited_files(path, root, suffix, ".json")):
        for sidecar in level:
            for key, value in _read_sidecar(sidecar).items():
                if value is not None:
                    metadata[key] = (value, sidecar)
    return metadata


#: The sidecar keys the app reads: given twice with two values, which one holds is unknown.
READ_KEYS = ("RepetitionTime", "StartTime", "SliceTimingCorrected")


def _read_sidecar(path):
    return read_object(path, "The sidecar", once=READ_KEYS)


#: Repetition times outside these bounds (seconds) are errors in the sidecar: above, the BIDS
#: validator's sign of milliseconds; below, no BOLD series (the fastest sample at 0.02-0.1 s),
#: and the design's convolution, sampled at a fiftieth of it, takes minutes (1.1 ms: hung).
MAX_TR, MIN_TR = 100.0, 0.01


#: A number written as text, as some tools write a sidecar's numbers (``"2.0"``); Python's
#: ``float`` also reads ``"2_0"`` (20) and ``" 2 "``, which no sidecar means.
_DECIMAL = re.compile(rf"[+-]?{NUMBER}")


def _seconds(key, value, sidecar):
    """A duration from a sidecar as a finite float (a number, or a number written as
    text); booleans, NaN, infinity and other text refused."""
    number = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str) and _DECIMAL.fullmatch(value):
        number = float(value)
    if number is None or not math.isfinite(number):
        raise InputFileError(
            f"{key} in {sidecar} must be a finite number of seconds, not {json.dumps(value)}."
        )
    return number


def _metadata(layout, path):
    """A data file's sidecar metadata: each key mapped to ``(value, sidecar)``."""
    path = Path(path)
    return sidecar_metadata(path, _dataset_root(path, _layout_roots(layout)) or path.parent)


def _repetition_time(layout, files, run_name, disagreeing=None):
    """The TR from the JSON sidecars: the derivative's, else the raw file's (inherited).

    ``disagreeing``, a list: where the raw file's sidecars give another TR than the
    derivative's, ``(derivative sidecar, its TR, raw sidecar, its TR)`` is added to it
    (see :func:`repetition_time_warning`).
    """
    tr = _first_repetition_time(layout, files, run_name)
    if disagreeing is not None and len(files) > 1 and files[1] is not None:
        used = _metadata(layout, files[0]).get("RepetitionTime")
        raw = _metadata(layout, files[1]).get("RepetitionTime")
        if used is not None and raw is not None and raw[1] != used[1]:
            try:
                other = _seconds("RepetitionTime", *raw)
            except InputFileError:
                other = None
            if other is not None and not math.isclose(other, tr, rel_tol=1e-6):
                disagreeing.append((used[1], tr, raw[1], other))
    return tr


def check_hemispheres_agree(layout, path, tr) -> None:
    """A GIFTI series' other hemisphere states the repetition time used (``tr``, from
    ``path``'s sidecars), or none: both halves of one run are fitted with one design.

    Raises
    ------
    InputFileError
        The two hemispheres' sidecars give different repetition times.
    """
    path = Path(path)
    other = other_hemisphere(path)
    if other == path or not other.is_file():
        return
    found = _metadata(layout, other).get("RepetitionTime")
    used = _metadata(layout, path).get("RepetitionTime")
    if found is None or used is None or found[1] == used[1]:  # one sidecar for both (inherited)
        return
    theirs = _seconds("RepetitionTime", *found)
    if not math.isclose(theirs, tr, rel_tol=1e-6):
        raise InputFileError(
            f"RepetitionTime in {found[1]} ({theirs:g} s) contradicts the {tr:g} s in {used[1]}, the other "
            "hemisphere of the same run; correct the sidecar that is wrong."
        )


def repetition_time_warning(disagreeing) -> str:
    """The one warning of a job about the runs whose preprocessed and raw sidecars give two
    repetition times (:func:`_repetition_time`)."""
    used, tr, raw, other = disagreeing[0]
    count = len({sidecar for sidecar, *_ in disagreeing})
    one = count == 1
    return (f"{count} preprocessed series {'has' if one else 'have'} a RepetitionTime in {'its' if one else 'their'} "
            f"sidecar that the raw series' sidecars contradict (such as {tr:g} s in {used} against {other:g} s in "
            f"{raw}); the preprocessed series' is used: correct the sidecar that is wrong.")


def _first_repetition_time(layout, files, run_name):
    """:func:`_repetition_time` of the first of ``files`` whose sidecars give one."""
    for path in files:
        if path is None:
            continue
        found = _metadata(layout, path).get("RepetitionTime")
        if found is not None:
            tr = _seconds("RepetitionTime", *found)
            if tr <= 0:
                raise InputFileError(
                    f"RepetitionTime in {found[1]} must be positive, not {found[0]}."
                )
            if tr > MAX_TR:  # the BIDS validator's own bound (REPETITION_TIME_GREATER_THAN)
                raise InputFileError(
                    f"RepetitionTime in {found[1]} is {found[0]} s, more than {MAX_TR:g} s: BIDS gives it in "
                    "seconds, and this looks like milliseconds; correct the sidecar."
                )
            if tr < MIN_TR:
                raise InputFileError(
                    f"RepetitionTime in {found[1]} is {found[0]} s, too short for a BOLD series' repetition "
                    f"time (at least {MIN_TR:g} s); correct the sidecar."
                )
            return tr
    sparse = any(_metadata(layout, path).get("VolumeTiming") is not None for path in files if path is not None)
    raise NoDataError(
        f"No RepetitionTime for {run_name}: none of the JSON sidecars of "
        f"{', '.join(str(p) for p in files if p is not None)} (or their inherited ones) has it"
        + ("; they give VolumeTiming (a sparse or clustered acquisition), which this app does not model, as "
           "nilearn's design matrices need a RepetitionTime." if sparse else ".")
    )


def start_time_warning(unstated) -> str:
    """The one warning of a job about the sidecars that say ``SliceTimingCorrected`` without
    a ``StartTime`` (:func:`_start_time`)."""
    sidecars = list(dict.fromkeys(unstated))
    return (f"{len(sidecars)} preprocessed sidecar(s) say SliceTimingCorrected but give no StartTime (such as "
            f"{sidecars[0]}), so the model's volumes are timed at the start of each TR (as nilearn's "
            "first_level_from_bids assumes); if the slices were corrected to another time (fMRIPrep before 20.1: "
            "the middle of the TR), add StartTime to those sidecars.")


def _start_time(layout, bold, tr, unstated=None):
    """fMRIPrep's StartTime of slice-timing corrected series (0 when absent), as nilearn's
    ``first_level_from_bids`` reads it to set ``slice_time_ref``; a sidecar that says
    ``SliceTimingCorrected`` without it (fMRIPrep before 20.1) is added to ``unstated``
    (see :func:`start_time_warning`)."""
    metadata = _metadata(layout, bold)
    found = metadata.get("StartTime")
    if found is None:
        corrected = metadata.get("SliceTimingCorrected")
        if unstated is not None and corrected is not None and corrected[0] is True:
            unstated.append(corrected[1])
        return 0.0
    value = _seconds("StartTime", *found)
    if not 0 <= value <= tr:
        raise InputFileError(f"StartTime in {found[1]} ({value} s) is not within the TR ({tr} s).")
    return value
