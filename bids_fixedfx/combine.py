"""Combining a subject's runs: fixed effects across runs with their real degrees of freedom
(nilearn's ``compute_fixed_effects``), or a second-level OLS across them.

The group level lives in :mod:`.group`; its names stay importable from here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .glm import OUTSIDE_MASK, ContrastMaps, unmask_map
from .group import (  # noqa: F401  (re-exported)
    GroupContrast,
    group_fixed_effects,
    group_glm,
    group_level,
    ols_contrast,
    one_sample_test,
    streamed_fixed_effects,
    contrasts_of,
)
from .maps import GRID_ATOL, intersect_masks, masked_matrix, same_grid  # noqa: F401  (re-exported)

def fixed_effects(effects, variances, mask, dofs, precision_weighted=False) -> dict:
    """Combine maps by fixed effects, as nilearn's ``compute_fixed_effects``.

    Parameters
    ----------
    effects, variances : list of Nifti1Image
        One effect and one variance map per run (or subject).
    mask : Nifti1Image
        Where to compute (the intersection of the inputs' masks).
    dofs : sequence of float
        The inputs' degrees of freedom; the result has their sum.
    precision_weighted : bool
        Inverse-variance weighting (nilearn's default: off).

    Returns
    -------
    maps : dict
        ``effect``, ``variance``, ``t``, ``z`` and ``p`` images.
    """
    from nilearn.glm import compute_fixed_effects
    from nilearn.glm.contrasts import Contrast
    from nilearn.maskers import NiftiMasker

    effect, variance, t, z = compute_fixed_effects(
        list(effects), list(variances), mask,
        precision_weighted=precision_weighted, dofs=list(dofs),
    )
    masker = NiftiMasker(mask_img=mask, standardize=None).fit()
    contrast = Contrast(
        effect=masker.transform(effect).ravel(),
        variance=masker.transform(variance).ravel(),
        dof=float(np.sum(dofs)),
        stat_type="t",
    )
    p = unmask_map(contrast.p_value(), masker.mask_img_, OUTSIDE_MASK["p"])
    return {"effect": effect, "variance": variance, "t": t, "z": z, "p": p}


def combine_runs(run_maps, mask, precision_weighted=False) -> ContrastMaps:
    """A subject's maps for one contrast from its runs' maps.

    Parameters
    ----------
    run_maps : list of ContrastMaps
        The contrast's maps in each run.
    mask : Nifti1Image
        The subject mask (intersection of its runs' masks).
    precision_weighted : bool

    Returns
    -------
    maps : ContrastMaps
        With one run, the run's own maps; else fixed effects with the summed dof.
    """
    if len(run_maps) == 1:
        return run_maps[0]
    dofs = [m.dof for m in run_maps]
    maps = fixed_effects(
        [m.maps["effect"] for m in run_maps],
        [m.maps["variance"] for m in run_maps],
        mask, dofs, precision_weighted,
    )
    return ContrastMaps(run_maps[0].contrast, maps, float(np.sum(dofs)))


@dataclass(frozen=True, eq=False)
class SubjectMaps:
    """A subject's fixed-effects maps for one task and space.

    Attributes
    ----------
    plan : SubjectPlan
        The runs that were combined (and those left out).
    mask : Nifti1Image
        The intersection of the runs' masks.
    contrasts : tuple of ContrastMaps
    runs_of : dict
        Contrast label -> the :class:`~bids_fixedfx.plan.RunPlan` s that have it.
    """

    plan: object
    mask: object
    contrasts: tuple
    runs_of: dict


def combine_subject(subject_plan, results, precision_weighted=False, estimator="meta") -> SubjectMaps:
    """One subject's maps from its runs: each contrast over the runs that have it, by fixed
    effects (``meta``, with the runs' real dofs) or a second-level OLS across the runs
    (``glm``: nilearn ``SecondLevelModel``, a one-sample t-test over the run effects).

    Parameters
    ----------
    subject_plan : SubjectPlan
    results : sequence of RunResult
        In the order of ``subject_plan.runs``; all on one grid (checked while planning).
    precision_weighted : bool
    estimator : {'meta', 'glm'}

    Returns
    -------
    maps : SubjectMaps
        F contrasts (terminal at the run level) are not combined.
    """
    masks = [result.mask for result in results]
    mask = masks[0] if len(masks) == 1 else intersect_masks(masks)
    labels = list(dict.fromkeys(
        m.contrast.label for result in results for m in result.contrasts if getattr(m.contrast, "test", "t") == "t"
    ))
    contrasts, runs_of = [], {}
    for label in labels:
        having = [(plan, result.maps_of(label)) for plan, result in zip(subject_plan.runs, results)
                  if result.maps_of(label) is not None]
        runs_of[label] = tuple(plan for plan, _ in having)
        run_maps = [maps for _, maps in having]
        if estimator == "glm" and len(run_maps) > 1:
            tested = one_sample_test([m.maps["effect"] for m in run_maps], mask, run_maps[0].contrast)
            contrasts.append(tested)
        else:
            contrasts.append(combine_runs(run_maps, mask, precision_weighted))
    return SubjectMaps(subject_plan, mask, tuple(contrasts), runs_of)
