"""Combining maps: fixed effects across a subject's runs, and the group level across subjects."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .glm import STATS, NILEARN_OUTPUTS, OUTSIDE_MASK, ContrastMaps, set_outside, unmask_map


@dataclass(frozen=True)
class GroupContrast:
    """A group-level contrast: the mean effect across subjects, or a contrast of a group design."""

    name: str
    label: str
    weights: object  # {column: weight}, or one such mapping per row of an F contrast
    test: str = "t"


def intersect_masks(mask_imgs):
    """The voxels inside every mask (nilearn's ``intersect_masks`` with threshold 1).

    Parameters
    ----------
    mask_imgs : list of Nifti1Image or paths
        Masks on one grid.

    Returns
    -------
    mask : Nifti1Image
    """
    from nilearn.masking import intersect_masks as nilearn_intersect

    if len(mask_imgs) == 1:
        from nilearn.image import load_img

        img = load_img(mask_imgs[0])
        return nilearn_intersect([img, img], threshold=1, connected=False)
    return nilearn_intersect(list(mask_imgs), threshold=1, connected=False)


def same_grid(imgs, atol=1e-4) -> bool:
    """Whether all images share one voxel grid (shape, and affine within ``atol``)."""
    from nilearn.image import load_img

    first = load_img(imgs[0])
    for img in imgs[1:]:
        img = load_img(img)
        if img.shape[:3] != first.shape[:3] or not np.allclose(img.affine, first.affine, atol=atol):
            return False
    return True


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


def one_sample_test(effects, mask, contrast) -> ContrastMaps:
    """Random effects across subjects: nilearn's ``SecondLevelModel`` one-sample t-test.

    Parameters
    ----------
    effects : list of Nifti1Image or paths
        One effect map per subject.
    mask : Nifti1Image
        The group mask (intersection of the subjects' masks).
    contrast : GroupContrast

    Returns
    -------
    maps : ContrastMaps
        With ``n_subjects - 1`` degrees of freedom.
    """
    import pandas as pd
    from nilearn.glm.second_level import SecondLevelModel

    design = pd.DataFrame({"intercept": np.ones(len(effects))})
    model = SecondLevelModel(mask_img=mask, minimize_memory=True)
    model.fit(list(effects), design_matrix=design)
    outputs = model.compute_contrast("intercept", second_level_stat_type="t", output_type="all")
    maps = {stat: outputs[NILEARN_OUTPUTS[stat]] for stat in STATS}
    maps["p"] = set_outside(maps["p"], model.masker_.mask_img_, OUTSIDE_MASK["p"])
    return ContrastMaps(contrast, maps, float(len(effects) - 1))


def group_fixed_effects(effects, variances, dofs, mask, contrast) -> ContrastMaps:
    """Fixed effects across subjects, over their effect and variance maps."""
    maps = fixed_effects(effects, variances, mask, dofs)
    return ContrastMaps(contrast, maps, float(np.sum(dofs)))


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


def group_level(effects, variances, dofs, masks, contrast, group_model="random"):
    """Test one contrast across subjects, inside the intersection of their masks.

    Parameters
    ----------
    effects, variances : list of Nifti1Image or paths
        One per subject (variances are used by fixed effects only).
    dofs : list of float
        The subjects' degrees of freedom (fixed effects only).
    masks : list of Nifti1Image or paths
    contrast : GroupContrast
    group_model : {'random', 'fixed'}
        A one-sample t-test (nilearn ``SecondLevelModel``) or fixed effects.

    Returns
    -------
    mask : Nifti1Image
    maps : ContrastMaps
    """
    mask = intersect_masks(list(masks))
    if group_model == "fixed":
        return mask, group_fixed_effects(effects, variances, dofs, mask, contrast)
    return mask, one_sample_test(effects, mask, contrast)


def group_glm(effects, mask, design, contrast_matrix, contrast) -> ContrastMaps:
    """A contrast of a group design: nilearn's ``SecondLevelModel`` on the subjects' effect
    maps with a design made from ``participants.tsv`` (t or F).

    Parameters
    ----------
    effects : list of Nifti1Image or paths
        One per row of ``design``.
    mask : Nifti1Image
    design : pandas.DataFrame
        The design matrix (one row per subject).
    contrast_matrix : numpy.ndarray
        One row (t) or several (F) over the design's columns.
    contrast : object
        What the maps are of (name, label, weights, test).

    Returns
    -------
    maps : ContrastMaps
        ``effect``, ``variance``, ``t``, ``z`` and ``p`` for t; ``F``, ``z`` and ``p`` for F;
        with ``n_subjects - rank(design)`` degrees of freedom.
    """
    from nilearn.glm.second_level import SecondLevelModel

    test = getattr(contrast, "test", "t")
    model = SecondLevelModel(mask_img=mask, minimize_memory=True)
    model.fit(list(effects), design_matrix=design)
    weights = contrast_matrix[0] if test == "t" else contrast_matrix
    outputs = model.compute_contrast(weights, second_level_stat_type=test, output_type="all")
    stats = ("effect", "variance", "t", "z", "p") if test == "t" else ("F", "z", "p")
    maps = {stat: outputs[NILEARN_OUTPUTS[stat]] for stat in stats}
    maps["p"] = set_outside(maps["p"], model.masker_.mask_img_, OUTSIDE_MASK["p"])
    dof = float(len(design) - np.linalg.matrix_rank(design.to_numpy()))
    return ContrastMaps(contrast, maps, dof)
