"""Corrected inference, with nilearn's own functions: thresholded z maps, cluster-level
inference and (at the group level) permutation tests.

The unthresholded maps stay the app's main output; these are written beside them when
asked for (``--threshold``, ``--cluster-inference``, ``--n-perm``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Height-control methods of nilearn's ``threshold_stats_img``.
METHODS = ("fpr", "fdr", "bonferroni")
#: nilearn's default alpha for each method (fpr: an uncorrected p threshold).
DEFAULT_ALPHA = {"fpr": 0.001, "fdr": 0.05, "bonferroni": 0.05}
#: The command-line option of each :class:`InferenceSettings` field.
OPTIONS = {
    "method": "--threshold", "alpha": "--alpha", "cluster_extent": "--cluster-extent",
    "cluster_inference": "--cluster-inference", "cluster_threshold": "--cluster-threshold",
    "n_perm": "--n-perm", "tfce": "--tfce",
}
#: The most permutations of a group test (``--n-perm``, a model's ``NPerm``): time grows with
#: their number (10,000 took 30 s for three subjects on the example data); 100,000 resolve
#: family-wise p values to 1e-5, far past any alpha used, and with few subjects there are fewer
#: distinct sign flips (2 ** subjects) than that anyway.
MAX_PERMUTATIONS = 100_000
#: Settings that need another: (field, the field it needs, why).
REQUIRES = (
    ("cluster_extent", "method", "it removes small clusters of the thresholded map"),
    ("tfce", "n_perm", "it is a statistic of the permutation test"),
)
#: Settings that, when given, need one of others: (field, the fields, why).
REQUIRES_ONE = (
    ("alpha", ("method", "cluster_inference", "n_perm"), "it is their error rate"),
    ("cluster_threshold", ("cluster_inference", "n_perm"), "it forms their clusters"),
)
#: The ``desc`` of each permutation map, nilearn's key of it and what it tests.
PERMUTATION_MAPS = {
    "permmaxt": ("logp_max_t", "voxel-level max-t"),
    "permsize": ("logp_max_size", "cluster size"),
    "permmass": ("logp_max_mass", "cluster mass"),
    "permtfce": ("logp_max_tfce", "threshold-free cluster enhancement"),
}


@dataclass(frozen=True)
class InferenceSettings:
    """What corrected inference to add to the maps.

    Attributes
    ----------
    method : str or None
        ``fpr``, ``fdr`` or ``bonferroni`` (``threshold_stats_img``); None for none.
    alpha : float or None
        Its error rate; None for nilearn's default of the method.
    cluster_extent : int
        Clusters smaller than this many voxels are removed from the thresholded map.
    cluster_inference : bool
        Also nilearn's ``cluster_level_inference`` (proportion of true discoveries).
    cluster_threshold : float
        The z that defines clusters for cluster-level inference and permutation cluster
        statistics.
    n_perm : int
        Group level: permutations of ``non_parametric_inference`` (0: none).
    tfce : bool
        Group level: also threshold-free cluster enhancement in the permutation test.
    """

    method: str | None = None
    alpha: float | None = None
    cluster_extent: int = 0
    cluster_inference: bool = False
    cluster_threshold: float = 3.0
    n_perm: int = 0
    tfce: bool = False

    @property
    def height_alpha(self) -> float:
        """The alpha of the height control (the method's default when none was given)."""
        return self.alpha if self.alpha is not None else DEFAULT_ALPHA[self.method]

    @property
    def cluster_alpha(self) -> float:
        """The alpha of cluster-level inference (0.05, nilearn's default, unless given)."""
        return self.alpha if self.alpha is not None else 0.05

    @property
    def permutation_alpha(self) -> float:
        """The family-wise error rate at which reports show permutation maps (as ``cluster_alpha``)."""
        return self.cluster_alpha

    @property
    def any(self) -> bool:
        return bool(self.method or self.cluster_inference or self.n_perm)


def option_text(settings: InferenceSettings) -> str:
    """The corrected inference asked for, as the options that ask it (``--threshold fdr, --n-perm 100``)."""
    asked = []
    for field in ("method", "cluster_inference", "n_perm"):
        value = getattr(settings, field)
        if value:
            asked.append(OPTIONS[field] + ("" if value is True else f" {value}"))
    return ", ".join(asked)


@dataclass(frozen=True, eq=False)
class InferenceMap:
    """One map of corrected inference and what its sidecar states.

    Attributes
    ----------
    stat : str
        ``z`` (thresholded z), ``tdp`` (proportion of true discoveries) or ``logp``.
    desc : str
        What it is (``fdr``, ``cluster``, ``permmaxt``, ...): part of its file name.
    img : Nifti1Image
    sidecar : dict
        ``Method``, ``Alpha``, ``Threshold``, ``ClusterExtent``, ``Tail`` ...
    """

    stat: str
    desc: str
    img: object
    sidecar: dict


def threshold_map(z_img, mask_img, settings: InferenceSettings) -> InferenceMap:
    """A z map thresholded by nilearn's ``threshold_stats_img`` (two-sided).

    Parameters
    ----------
    z_img, mask_img : Nifti1Image
    settings : InferenceSettings
        With ``method`` set.

    Returns
    -------
    map : InferenceMap
        Voxels below the threshold (or in smaller clusters) are 0.
    """
    import warnings

    from nilearn.glm import threshold_stats_img

    with warnings.catch_warnings():  # no voxel passes: nilearn warns of its own threshold (said below)
        warnings.filterwarnings("ignore", message=r"The given float value must not exceed", category=UserWarning)
        img, threshold = threshold_stats_img(
            z_img, mask_img=mask_img, alpha=settings.height_alpha, height_control=settings.method,
            cluster_threshold=settings.cluster_extent, two_sided=True,
        )
    passing = {"Threshold": float(threshold) if np.isfinite(threshold) else None}
    if not np.asarray(img.dataobj).any():
        z = np.abs(np.asarray(z_img.dataobj))[np.asarray(mask_img.dataobj) != 0]
        higher = np.isfinite(threshold) and bool(np.any(z >= threshold))
        passing["Description"] = (
            f"No voxel passes: the voxels of |z| at or above the threshold lie in clusters of fewer than "
            f"{int(settings.cluster_extent)} voxels (ClusterExtent), and the map is zero." if higher else
            "No voxel passes: the threshold is above every |z|, and the map is zero.")
    return InferenceMap("z", settings.method, img, {
        "Method": {"fpr": "uncorrected (false positive rate)", "fdr": "false discovery rate",
                   "bonferroni": "Bonferroni (family-wise error rate)"}[settings.method],
        "HeightControl": settings.method,
        "Alpha": settings.height_alpha,
        **passing,
        "ClusterExtent": int(settings.cluster_extent),
        "Tail": "two-sided: |z| above the threshold",
        "Software": "nilearn.glm.threshold_stats_img",
    })


def cluster_map(z_img, mask_img, settings: InferenceSettings) -> InferenceMap:
    """nilearn's ``cluster_level_inference``: each voxel's lower bound on the proportion of
    true discoveries in its cluster (positive effects)."""
    from nilearn.glm import cluster_level_inference

    import warnings

    with warnings.catch_warnings():  # nilearn warns of a future default whenever the threshold is 3, given or not
        warnings.filterwarnings("ignore", message=r"\s*From nilearn version>=0.15, the default 'threshold'",
                                category=FutureWarning)
        img = cluster_level_inference(
            z_img, mask_img=mask_img, threshold=settings.cluster_threshold, alpha=settings.cluster_alpha,
        )
    return InferenceMap("tdp", "cluster", img, {
        "Method": "cluster-level inference (all-resolution inference, Rosenblatt et al. 2018)",
        "Alpha": settings.cluster_alpha,
        "ClusterFormingThreshold": settings.cluster_threshold,
        "Tail": "one-sided: positive z",
        "Software": "nilearn.glm.cluster_level_inference",
    })


def permutation_maps(effects, mask_img, settings: InferenceSettings, random_state=0) -> list[InferenceMap]:
    """A one-sample permutation test (sign flipping) with nilearn's ``non_parametric_inference``.

    Parameters
    ----------
    effects : list of Nifti1Image or paths
        One effect map per subject.
    mask_img : Nifti1Image
    settings : InferenceSettings
        ``n_perm`` > 0; ``tfce`` and ``cluster_threshold`` add cluster statistics.
    random_state : int
        Seed of the permutations, so that a rerun gives the same maps.

    Returns
    -------
    maps : list of InferenceMap
        ``-log10`` family-wise corrected p maps: voxel-level (max t), and with a
        cluster threshold cluster size and mass, and TFCE when asked.
    """
    import pandas as pd
    from nilearn.glm.second_level import non_parametric_inference

    design = pd.DataFrame({"intercept": np.ones(len(effects))})
    # |z| > threshold on both tails: nilearn reads a two-sided test's threshold as a two-sided p
    # (it halves it), so the p of both tails (it formed clusters at |z| > 2.74 for 2.5)
    threshold = 2 * _p_of_z(settings.cluster_threshold)
    import warnings

    with warnings.catch_warnings():  # nilearn's own cluster-size image is made of int64s, and it says so
        warnings.filterwarnings("ignore", message="Data array used to create a new image contains 64-bit ints")
        # and that one job runs one permutation: a note for its own n_jobs, which the app does not set
        warnings.filterwarnings("ignore", message="The specified number of permutations is")
        outputs = non_parametric_inference(
            list(effects), design_matrix=design, second_level_contrast="intercept", mask=mask_img,
            n_perm=settings.n_perm, two_sided_test=True, random_state=random_state, threshold=threshold,
            tfce=settings.tfce,
        )
    common = {"Permutations": settings.n_perm, "Tail": "two-sided", "RandomState": random_state,
              "Software": "nilearn.glm.second_level.non_parametric_inference",
              "Values": "-log10 of family-wise error corrected p"}
    maps = []
    for desc, (key, method) in PERMUTATION_MAPS.items():
        if desc == "permtfce" and not settings.tfce:
            continue
        extra = {"ClusterFormingThreshold": settings.cluster_threshold} if key in ("logp_max_size", "logp_max_mass") else {}
        maps.append(InferenceMap("logp", desc, outputs[key], {"Method": f"permutation test, {method}", **common, **extra}))
    return maps


def _p_of_z(z: float) -> float:
    from scipy.stats import norm

    return float(norm.sf(z))


def inference_maps(maps, mask_img, settings: InferenceSettings, effects=None) -> list[InferenceMap]:
    """Every corrected-inference map the settings ask for, for one contrast.

    Parameters
    ----------
    maps : dict
        The contrast's unthresholded maps (``z`` used).
    mask_img : Nifti1Image
    settings : InferenceSettings
    effects : list of images, optional
        The subjects' effect maps, for a permutation test (group level only).

    Returns
    -------
    maps : list of InferenceMap
    """
    found = []
    if settings.method:
        found.append(threshold_map(maps["z"], mask_img, settings))
    if settings.cluster_inference:
        found.append(cluster_map(maps["z"], mask_img, settings))
    if settings.n_perm and effects is not None:
        found += permutation_maps(effects, mask_img, settings)
    return found
