"""Combining inputs (a subject's or a session's runs, a subject's sessions): fixed effects with
their real degrees of freedom (nilearn's ``compute_fixed_effects``), or a second-level OLS
across them. Which inputs each node combines is :mod:`.nodes`' business.

The group level lives in :mod:`.group`; its names stay importable from here.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from .errors import NoDataError
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
from .model.bsm import PASSED_ON
from .naming import STATS


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
        With one run, the run's own maps (its t, z and p made again from its effect, variance
        and dof where only those were kept, as the workflow keeps a run for combining); else
        fixed effects with the summed dof.
    """
    if len(run_maps) == 1 and set(STATS) <= set(run_maps[0].maps):
        return run_maps[0]
    dofs = [m.dof for m in run_maps]
    maps = fixed_effects(
        [m.maps["effect"] for m in run_maps],
        [m.maps["variance"] for m in run_maps],
        mask, dofs, precision_weighted,
    )
    return ContrastMaps(tested(run_maps[0].contrast), maps, float(np.sum(dofs)))


def tested(contrast):
    """The contrast a node's t maps are of: an incoming ``pass`` contrast (untested at its own
    level) is tested by t where it is combined."""
    return replace(contrast, test="t") if getattr(contrast, "test", "t") == "pass" else contrast


def combine_inputs(inputs, precision_weighted=False, estimator="meta", keep=None) -> tuple:
    """Combine inputs' maps contrast by contrast, inside the intersection of their masks.

    Parameters
    ----------
    inputs : sequence of (object, result)
        Each input (a run plan, a session's maps) with what it holds: an object with ``mask``,
        ``contrasts`` (:class:`ContrastMaps`) and ``maps_of(label)``.
    precision_weighted : bool
    estimator : {'meta', 'glm'}
        Fixed effects with the inputs' summed dofs, or a one-sample t-test over their effects
        (one input: its own maps).
    keep : callable, optional
        ``keep(label) -> bool``: the contrasts to combine (an edge's Filter); default all.

    Returns
    -------
    mask : Nifti1Image
    contrasts : tuple of ContrastMaps
        t maps of the incoming t and pass contrasts (F contrasts are terminal).
    inputs_of : dict
        Contrast label -> the inputs that have it.
    """
    masks = [result.mask for _, result in inputs]
    mask = masks[0] if len(masks) == 1 else intersect_masks(masks)
    if len(masks) > 1 and not np.asanyarray(mask.dataobj).any():  # planning saw overlapping mask files:
        raise NoDataError(  # the voxels that do not vary over time, left out after, took the rest
            f"The inputs {', '.join(getattr(result, 'name', str(item)) for item, result in inputs)} have no voxel "
            "in common that varies over time in all of them, so they cannot be combined; check their series.")
    labels = list(dict.fromkeys(
        m.contrast.label for _, result in inputs for m in result.contrasts
        if getattr(m.contrast, "test", "t") in PASSED_ON and (keep is None or keep(m.contrast))
    ))
    contrasts, inputs_of = [], {}
    for label in labels:
        having = [(item, result.maps_of(label)) for item, result in inputs if result.maps_of(label) is not None]
        inputs_of[label] = tuple(item for item, _ in having)
        found = [maps for _, maps in having]
        if estimator == "glm" and len(found) > 1:
            contrasts.append(one_sample_test([m.maps["effect"] for m in found], mask, tested(found[0].contrast)))
        else:
            contrasts.append(combine_runs(found, mask, precision_weighted))
    return mask, tuple(contrasts), inputs_of
