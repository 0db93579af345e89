"""The group level across subjects: a one-sample t-test or a design from ``participants.tsv``
(nilearn's OLS), or fixed effects over the subjects' maps; maps are streamed, so memory stays
bounded whatever the number of subjects."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import InputFileError
from .glm import NILEARN_OUTPUTS, OUTSIDE_MASK, STATS, ContrastMaps, fitted_test, stats_of, unmask_map
from .maps import _masked_values, _name, _voxel_blocks, intersect_masks, masked_matrix, zero_non_finite

@dataclass(frozen=True)
class GroupContrast:
    """A group-level contrast: the mean effect across subjects, or a contrast of a group design."""

    name: str
    label: str
    weights: object  # {column: weight}, or one such mapping per row of an F contrast
    test: str = "t"


def contrasts_of(test, group_model: str = "random"):
    """Yield (contrast, contrast matrix or None) of one group test: its own contrast (the
    one-sample test, or fixed effects), or each t, F and pass contrast of a model's dataset node.

    Parameters
    ----------
    test : plan.GroupTest
    group_model : {'random', 'fixed'}
    """
    from .naming import label_of

    if test.design is None or group_model == "fixed":
        yield GroupContrast(test.name, test.contrast, {"intercept": 1.0}), None
        return
    columns = test.design.columns
    for matrix in test.contrasts:
        if matrix.test not in ("t", "F", "pass"):
            continue
        weights = ({c: float(w) for c, w in zip(columns, matrix.matrix[0]) if w} if matrix.test != "F"
                   else [{c: float(w) for c, w in zip(columns, row) if w} for row in matrix.matrix])
        yield GroupContrast(matrix.name, label_of(matrix.name), weights, matrix.test), matrix


def one_sample_test(effects, mask, contrast) -> ContrastMaps:
    """Random effects across subjects: the one-sample t-test of nilearn's ``SecondLevelModel``.

    The numbers of ``SecondLevelModel(mask_img=mask).fit(effects, intercept design)
    .compute_contrast('intercept', output_type='all')``, computed by :func:`ols_contrast` on the
    maps read one at a time (memory linear in the number of subjects, at 4 bytes a value).

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
    effects = list(effects)
    if len(effects) < 2:
        raise ValueError(f"A one-sample t-test needs at least 2 subjects' effect maps, got {len(effects)}.")
    design = np.ones((len(effects), 1))
    values = ols_contrast(masked_matrix(effects, mask), design, np.ones(1), "t")
    maps = {stat: unmask_map(values[stat], mask, OUTSIDE_MASK[stat]) for stat in STATS}
    return ContrastMaps(contrast, maps, float(len(effects) - 1))


def ols_contrast(values, design, con_val, stat_type="t") -> dict:
    """A contrast of an OLS fit of each voxel's values across subjects, block by block of voxels.

    nilearn's own functions (``OLSModel``, ``compute_contrast``, as ``run_glm`` with
    ``noise_model='ols'`` and ``SecondLevelModel.compute_contrast`` use them); each voxel's fit
    is independent of the others, so fitting blocks of voxels gives the same numbers.

    Parameters
    ----------
    values : numpy.ndarray, shape (n_subjects, n_voxels)
    design : numpy.ndarray, shape (n_subjects, n_regressors)
    con_val : numpy.ndarray
        One row of weights (t) or several (F).
    stat_type : {'t', 'F'}

    Returns
    -------
    maps : dict
        float64 arrays of ``n_voxels``: ``effect``, ``variance``, ``t``, ``z`` and ``p`` for t;
        ``F``, ``z`` and ``p`` for F.
    """
    from nilearn.glm.contrasts import compute_contrast
    from nilearn.glm.regression import OLSModel, SimpleRegressionResults

    design = np.asarray(design, dtype=np.float64)
    con_val = np.asarray(con_val, dtype=np.float64)
    if values.ndim != 2 or values.shape[0] != design.shape[0]:
        raise ValueError(
            f"Expected one row of values per row of the design ({design.shape[0]}), got shape {values.shape}."
        )
    if con_val.size == 0 or np.all(con_val == 0):
        raise ValueError(f"The contrast is null: {con_val.tolist()}; expected weights that are not all 0.")
    stats = stats_of(stat_type)
    out = {stat: np.empty(values.shape[1]) for stat in stats}
    model = OLSModel(design)
    with np.errstate(divide="ignore"):  # a vertex of 0 in every map (the medial wall): nilearn's 1/0 of its sd
        for block in _voxel_blocks(*values.shape):
            fit = SimpleRegressionResults(model.fit(values[:, block].astype(np.float64)))
            labels = np.zeros(block.stop - block.start)
            found = compute_contrast(labels, {0.0: fit}, con_val, stat_type)
            for stat in stats:
                out[stat][block] = np.ravel(getattr(found, NILEARN_OUTPUTS[stat])())
    return out


def group_fixed_effects(effects, variances, dofs, mask, contrast, precision_weighted=False) -> ContrastMaps:
    """Fixed effects across subjects, over their effect and variance maps.

    The numbers of nilearn's ``compute_fixed_effects`` (a plain mean, or weighted by inverse
    variance; ``dofs`` summed), with the maps read one pair at a time and summed as they come:
    memory does not grow with the number of subjects.

    Parameters
    ----------
    effects, variances : list of Nifti1Image or paths
        One of each per subject.
    dofs : sequence of float
        The subjects' degrees of freedom; the result has their sum.
    mask : Nifti1Image
    contrast : GroupContrast
    precision_weighted : bool
        Weight the subjects by inverse variance (a dataset ``meta`` node's
        ``Software.nilearn.precision_weighted``).

    Returns
    -------
    maps : ContrastMaps
    """
    values = streamed_fixed_effects(effects, variances, mask, dofs, precision_weighted)
    maps = {stat: unmask_map(values[stat], mask, OUTSIDE_MASK[stat]) for stat in STATS}
    return ContrastMaps(contrast, maps, float(np.sum(dofs)))


def streamed_fixed_effects(effects, variances, mask, dofs, precision_weighted=False) -> dict:
    """Fixed effects inside the mask, reading one effect and variance map at a time.

    The sums of nilearn's ``_compute_fixed_effects_params`` (variances floored at 1e-16;
    the mean effect and the mean variance over n, or inverse-variance weights), accumulated
    in float64 in the maps' order, then nilearn's ``Contrast`` for t, z and p. Non-finite
    values count as 0, as nilearn's masker gives them to ``compute_fixed_effects``.

    Parameters
    ----------
    effects, variances : list of Nifti1Image or paths
    mask : Nifti1Image
    dofs : sequence of float
    precision_weighted : bool

    Returns
    -------
    maps : dict
        float64 arrays of the mask's voxels: ``effect``, ``variance``, ``t``, ``z``, ``p``.
    """
    from nilearn.glm.contrasts import Contrast

    effects, variances, dofs = list(effects), list(variances), list(dofs)
    if not effects or len(variances) != len(effects) or len(dofs) != len(effects):
        raise ValueError(
            f"Expected as many variance maps and dofs as effect maps (at least one): got {len(effects)} "
            f"effect maps, {len(variances)} variance maps and {len(dofs)} dofs."
        )
    tiny = 1.0e-16  # nilearn's floor on variances
    inside = np.asanyarray(mask.dataobj).astype(bool)
    affine = np.asarray(mask.affine, dtype=np.float64)
    effect_sum = np.zeros(int(inside.sum()))
    weight_sum = np.zeros_like(effect_sum)
    for effect_img, variance_img in zip(effects, variances):
        effect = zero_non_finite(_masked_values(effect_img, inside, affine).astype(np.float64))
        variance = zero_non_finite(_masked_values(variance_img, inside, affine).astype(np.float64))
        if np.any(variance < 0):  # no variance map the app writes; nilearn's floor would make them 1e-16
            raise InputFileError(f"{_name(variance_img)} holds negative values inside the mask, so it is no "
                                 "variance map; rerun the participant level for its subject.")
        variance = np.maximum(variance, tiny)
        if precision_weighted:
            weight = 1.0 / variance
            weight_sum += weight
            effect_sum += effect * weight
        else:
            weight_sum += variance
            effect_sum += effect
    n = len(effects)
    if precision_weighted:
        variance = 1.0 / weight_sum
        effect = effect_sum * variance
    else:
        variance = weight_sum / n / n
        effect = effect_sum / n
    found = Contrast(effect=effect, variance=variance, dim=1, dof=float(np.sum(dofs)), stat_type="t")
    z = found.z_score()
    return {"effect": effect, "variance": variance, "t": np.ravel(found.stat_), "z": np.ravel(z),
            "p": np.ravel(found.p_value())}


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


def group_glm(effects, mask, design, contrast_matrix, contrast, values=None) -> ContrastMaps:
    """A contrast of a group design: nilearn's ``SecondLevelModel`` on the subjects' effect
    maps with a design made from ``participants.tsv`` (t or F).

    The numbers of ``SecondLevelModel(mask_img=mask).fit(effects, design_matrix=design)
    .compute_contrast(weights, output_type='all')``, computed by :func:`ols_contrast` on the
    maps read one at a time.

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
    values : numpy.ndarray, optional
        ``masked_matrix(effects, mask)``, when read beforehand: the contrasts of one design
        share it, so each map is read once for them all.

    Returns
    -------
    maps : ContrastMaps
        ``effect``, ``variance``, ``t``, ``z`` and ``p`` for t; ``F``, ``z`` and ``p`` for F;
        ``effect`` and ``variance`` for pass; with ``n_subjects - rank(design)`` degrees of freedom.
    """
    effects = list(effects)
    test = fitted_test(getattr(contrast, "test", "t"))
    if len(effects) != len(design):
        raise ValueError(f"Expected one effect map per row of the design ({len(design)}), got {len(effects)}.")
    contrast_matrix = np.atleast_2d(np.asarray(contrast_matrix, dtype=np.float64))
    if contrast_matrix.shape[1] != design.shape[1]:
        raise ValueError(
            f"The contrast matrix has {contrast_matrix.shape[1]} columns; expected one per design column "
            f"({list(design.columns)})."
        )
    weights = contrast_matrix[0] if test == "t" else contrast_matrix
    if values is None:
        values = masked_matrix(effects, mask)
    values = ols_contrast(values, design.to_numpy(dtype=np.float64), weights, test)
    maps = {stat: unmask_map(values[stat], mask, OUTSIDE_MASK[stat])
            for stat in stats_of(getattr(contrast, "test", "t"))}
    dof = float(len(design) - np.linalg.matrix_rank(design.to_numpy()))
    return ContrastMaps(contrast, maps, dof)
