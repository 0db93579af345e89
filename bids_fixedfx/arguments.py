"""What the command line accepts: value types of the options, the HRF names, and which
options belong to which analysis level (a rule of SPEC §4: an option of the other level, or
one a model file states, is a usage error)."""

from __future__ import annotations

import argparse
import json
import math
import os
import re
from pathlib import Path

from .expression import NUMBER, WEIGHT_LIST, check_characters
from .errors import UsageError
from .inference import MAX_PERMUTATIONS
from .settings import MAX_DRIFT_ORDER, MAX_HIGH_PASS, ContrastSpec

HRF_MODELS = (
    "glover", "spm", "glover + derivative", "spm + derivative",
    "glover + derivative + dispersion", "spm + derivative + dispersion",
)


def hrf_name(value: str) -> str:
    """An HRF model's name as nilearn spells it: ``spm+derivative`` (a job script that splits
    its options on white space cannot pass the spaces) is ``spm + derivative``."""
    return " + ".join(part.strip() for part in value.split("+")).lower()


def strip_prefix(prefix):
    """A converter of labels given with or without ``prefix`` (``sub-01`` or ``01``); a label
    that is empty once the prefix is stripped is refused."""
    def convert(value):
        label = value[len(prefix):] if value.startswith(prefix) else value
        if not label:
            raise argparse.ArgumentTypeError(f"{value!r} names no label; give one such as {prefix}01")
        if not (label.isascii() and label.isalnum()):  # BIDS labels: a name's '-' and '_' separate entities
            raise argparse.ArgumentTypeError(
                f"{value!r} is not a BIDS label ({label!r} holds characters other than letters and digits); "
                f"give one such as {prefix}01"
            )
        return label

    return convert


def nonblank(what: str, example: str):
    """A converter of names that refuses an empty or blank one (``--space ''``), as
    :func:`strip_prefix` refuses an empty label."""
    def convert(value):
        if not value.strip():
            raise argparse.ArgumentTypeError(f"{value!r} names no {what}; give one such as {example}")
        return value

    return convert


def space_label(value):
    """A ``--space`` value: a BIDS space label (``MNI152NLin2009cAsym``, ``fsaverage5``, ``T1w``
    or ``none``). fMRIPrep's ``SPACE:res-2`` is refused with the filter that selects a resolution."""
    value = nonblank("space", "MNI152NLin2009cAsym")(value)
    space, _, modifier = value.partition(":")
    if modifier:
        entity, _, label = modifier.partition("-")
        selection = json.dumps({"bold": {entity: label}, "mask": {entity: label}})
        raise argparse.ArgumentTypeError(
            f"{value!r} is fMRIPrep's --output-spaces syntax; give the space alone ({space}) and choose the "
            f"{entity}- files with --bids-filter-file holding {selection}"
        )
    if not (value.isascii() and value.isalnum()):
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a BIDS space label (letters and digits); give one such as MNI152NLin2009cAsym"
        )
    return value


def nonblank_path(value) -> Path:
    """A path option's value; an empty or blank one (a web form's empty field) is refused,
    where ``Path('')`` would be the current folder."""
    if not value.strip():
        raise argparse.ArgumentTypeError(f"{value!r} names no file or folder")
    return Path(value)


def derivatives_path(value) -> Path:
    """A ``-d`` value: a folder, or ``NAME=PATH`` as fMRIPrep (23.2 and later) and FitLins
    take it, when no folder of that whole name exists (the dataset is then named by its
    folder in the outputs, as any other)."""
    name, _, folder = value.partition("=")
    if folder.strip() and re.fullmatch(r"[A-Za-z0-9_.-]+", name) and not Path(value).exists():
        return nonblank_path(folder)
    return nonblank_path(value)


def _number(value) -> float:
    """A number written in ASCII digits (``float`` reads other scripts' too: ``٥`` as 5)."""
    if not re.fullmatch(rf"\s*[-+]?{NUMBER}\s*", value):
        raise argparse.ArgumentTypeError(f"must be a number: {value!r}")
    return float(value)


def _integer(value) -> int:
    """A whole number written in ASCII digits."""
    if not re.fullmatch(r"\s*[-+]?[0-9]+\s*", value):
        raise argparse.ArgumentTypeError(f"must be a whole number: {value!r}")
    return int(value)


def nonnegative_float(value):
    number = _number(value)
    if not math.isfinite(number):  # nan and inf: not a size, a frequency or a threshold
        raise argparse.ArgumentTypeError(f"must be a finite number: {value!r}")
    if number < 0:
        raise argparse.ArgumentTypeError(f"must not be negative: {value!r}")
    return number


#: The largest z threshold taken: no z map holds more (nilearn's z scores floor p at 1e-300, a z of 37).
MAX_Z = 40.0


def z_threshold(value):
    """``--report-threshold``, ``--cluster-threshold``: a z of 0 to :data:`MAX_Z` (1e300 drew
    numpy's overflow warnings into the log, and a map of nothing)."""
    number = nonnegative_float(value)
    if number > MAX_Z:
        raise argparse.ArgumentTypeError(f"must be a z of at most {MAX_Z:g} (no z map holds more): {value!r}")
    return number


def smoothing_width(value):
    """``--smoothing-fwhm``: 0 (none) or a width of at least 0.01 mm (a kernel narrower than
    that smooths nothing, and nilearn's of 1e-160 mm gave maps of NaN)."""
    number = nonnegative_float(value)
    if 0 < number < 0.01:
        raise argparse.ArgumentTypeError(f"must be 0 (no smoothing) or at least 0.01 mm: {value!r}")
    return number


def positive_float(value):
    number = nonnegative_float(value)
    if number == 0:
        raise argparse.ArgumentTypeError(f"must be more than 0: {value!r}")
    return number


def cutoff_hz(value):
    number = positive_float(value)
    if number > MAX_HIGH_PASS:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_HIGH_PASS:g} Hz (the highest frequency a BOLD "
                                         f"series holds): {value!r}")
    return number


def nonnegative_int(value):
    number = _integer(value)
    if number < 0:
        raise argparse.ArgumentTypeError(f"must not be negative: {value!r}")
    return number


def probability(value):
    number = _number(value)
    if not 0 < number < 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1: {value!r}")
    return number


def positive_int(value):
    number = _integer(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {value!r}")
    return number


def drift_order(value):
    """An order of the polynomial drift: 1 to :data:`~bids_fixedfx.settings.MAX_DRIFT_ORDER`."""
    number = positive_int(value)
    if number > MAX_DRIFT_ORDER:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_DRIFT_ORDER} (an order of a few models a run's "
                                         f"slow drift; higher orders take minutes and add nothing): {value!r}")
    return number


def permutations(value):
    """A number of permutations: 0 (none) to :data:`~bids_fixedfx.inference.MAX_PERMUTATIONS`."""
    number = nonnegative_int(value)
    if number > MAX_PERMUTATIONS:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_PERMUTATIONS:,} (time grows with the number of "
                                         f"permutations, and more resolve no p value that matters): {value!r}")
    return number


def contrast(value):
    name, sep, definition = value.partition("=")
    if not sep or not name.strip() or not definition.strip():
        raise argparse.ArgumentTypeError(
            f"{value!r} is not NAME=SPEC (for example faces=faces-houses or faces=1,-1)"
        )
    name, definition = name.strip(), definition.strip()
    if not WEIGHT_LIST.match(definition):
        try:  # parsed, never evaluated; the full parse waits for the design's columns
            check_characters(definition, f"--contrast {name}")
        except UsageError as error:
            raise argparse.ArgumentTypeError(str(error)) from None
    return ContrastSpec(name, definition)


def default_nprocs():
    """The cores this process may use: CPU affinity, capped by a cgroup CPU quota
    (``docker run --cpus N``, SLURM's cgroups)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1
    limit = cgroup_cpu_limit()
    return cores if limit is None else min(cores, max(1, int(limit)))


def cgroup_cpu_limit(root=Path("/sys/fs/cgroup"), membership=Path("/proc/self/cgroup")) -> float | None:
    """The CPU quota, in cores, of this process's cgroup and the cgroups above it (the smallest):
    cgroup v2's ``cpu.max``, v1's ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us`` (a ``docker
    --cpus`` on an older host); None when none is set or none can be read."""
    try:
        lines = membership.read_text().splitlines()
    except OSError:
        lines = []
    folders = []  # (the hierarchy's root, the process's cgroup in it, whether it is cgroup v2)
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        hierarchy, controllers, path = parts
        if hierarchy == "0" and not controllers:
            folders.append((root, root / path.lstrip("/"), True))
        elif "cpu" in controllers.split(","):
            base = next((root / name for name in (controllers, "cpu", "cpu,cpuacct") if (root / name).is_dir()), None)
            if base is not None:
                folders.append((base, base / path.lstrip("/"), False))
    if not folders:
        folders = [(root, root, True)]
    limits = []
    for base, folder, v2 in folders:
        for where in [folder, *folder.parents]:
            if where != base and base not in where.parents:
                break
            limits += _quota(where, v2)
    return min(limits) if limits else None


def _quota(folder: Path, v2: bool) -> list[float]:
    try:
        if v2:
            quota, period = (folder / "cpu.max").read_text().split()[:2]
        else:
            quota, period = ((folder / f"cpu.cfs_{name}_us").read_text().strip() for name in ("quota", "period"))
        if quota in ("max", "-1") or int(period) <= 0:
            return []
        return [int(quota) / int(period)]
    except (OSError, ValueError):
        return []


#: Options that only the participant level uses, and the one only the group level uses
#: (argparse destinations). Given at the other level they are usage errors (SPEC §4).
PARTICIPANT_ONLY = (
    "session_label", "bids_filter_file", "bids_database_dir", "skip_bids_validation", "contrast",
    "design_dir", "mask", "smoothing_fwhm", "hrf_model", "drift_model", "high_pass", "drift_order",
    "noise_model", "confounds", "precision_weighted", "dummy_scans",
)
GROUP_ONLY = ("group_model", "group_covariates", "n_perm", "tfce")
#: Options that a model file (-m) states itself; given with it they are usage errors.
MODEL_DEFINED = (
    "contrast", "design_dir", "hrf_model", "drift_model", "high_pass", "drift_order", "noise_model",
    "confounds", "precision_weighted", "group_model", "group_covariates", "dummy_scans",
)
#: Options that shape one drift model (destination: the ``--drift-model`` it belongs to); given
#: with another drift model they have no effect, and are usage errors.
DRIFT_OPTIONS = {"high_pass": "cosine", "drift_order": "polynomial"}
