"""Combining maps: fixed effects across a subject's runs, and the group level across subjects."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .glm import NILEARN_OUTPUTS, OUTSIDE_MASK, STATS, ContrastMaps, stats_of, unmask_map

#: How far two affines may differ and still be one grid (as :func:`same_grid`).
GRID_ATOL = 1e-4
#: Subject-voxel values held at once by the group-level statistics (a block of voxels of all
#: subjects, in float64): with a few temporary copies in ``OLSModel``, about 100 MB whatever the
#: number of subjects.
GROUP_BLOCK_VALUES = 4_000_000


@dataclass(frozen=True)
class GroupContrast:
    """A group-level contrast: the mean effect across subjects, or a contrast of a group design."""

    name: str
    label: str
    weights: object  # {column: weight}, or one such mapping per row of an F contrast
    test: str = "t"


def intersect_masks(mask_imgs):
    """The voxels inside every mask (nilearn's ``intersect_masks`` with threshold 1).

    The masks are read one at a time, so memory does not grow with their number.

    Parameters
    ----------
    mask_imgs : list of Nifti1Image or paths
        Masks on one grid.

    Returns
    -------
    mask : Nifti1Image
        int8, 0 and 1, with the first mask's affine.

    Raises
    ------
    ValueError
        No mask, or masks on different grids.
    """
    import nibabel as nib

    mask_imgs = list(mask_imgs)
    if not mask_imgs:
        raise ValueError("No mask to intersect: expected at least one mask image.")
    inside = affine = None
    for index, mask_img in enumerate(mask_imgs):
        values, this_affine = _read_mask(mask_img)
        if inside is None:
            inside, affine = values.copy(), this_affine
            continue
        if values.shape != inside.shape or not np.allclose(this_affine, affine, atol=GRID_ATOL):
            raise ValueError(
                f"Mask {index} ({_name(mask_img)}) is not on the grid of mask 0: shape {values.shape} "
                f"and affine {this_affine.round(4).tolist()}, expected {inside.shape} and {affine.round(4).tolist()}."
            )
        inside &= values
    return nib.Nifti1Image(inside.astype(np.int8), affine)


def _name(img) -> str:
    return str(img) if isinstance(img, (str, bytes)) or hasattr(img, "__fspath__") else "in-memory image"


def _read_mask(mask_img):
    """A mask's boolean array and affine, checked as nilearn checks masks (two values, 0 outside)."""
    from nilearn.masking import load_mask_img

    from .images import read_mask

    if isinstance(mask_img, (str, bytes)) or hasattr(mask_img, "__fspath__"):
        mask_img = read_mask(mask_img)  # checked there, and made 0 and 1
        values, affine = np.asanyarray(mask_img.dataobj) != 0, mask_img.affine
    else:
        values, affine = load_mask_img(mask_img, allow_empty=True)
    return np.asarray(values, dtype=bool), np.asarray(affine, dtype=np.float64)


def _read_map(img):
    """A 3D map's data (in its stored type, as nibabel scales it) and affine, read whole."""
    from .images import read_image

    if isinstance(img, (str, bytes)) or hasattr(img, "__fspath__"):
        img = read_image(img, "Subject map")
    return np.asanyarray(img.dataobj), np.asarray(img.affine, dtype=np.float64)


def _masked_values(img, inside, affine):
    """The values of one map inside the mask (``inside``, on the grid of ``affine``)."""
    data, this_affine = _read_map(img)
    if data.size != inside.size or data.shape[:3] != inside.shape or not np.allclose(
        this_affine, affine, atol=GRID_ATOL
    ):
        raise ValueError(
            f"Map {_name(img)} is not on the group mask's grid: shape {data.shape}, "
            f"expected {inside.shape} with affine {affine.round(4).tolist()}."
        )
    return data.reshape(inside.shape)[inside]


def masked_matrix(imgs, mask_img) -> np.ndarray:
    """The maps' values inside the mask, one row per map, reading one map at a time.

    Parameters
    ----------
    imgs : list of Nifti1Image or paths
        3D maps on the mask's grid.
    mask_img : Nifti1Image

    Returns
    -------
    values : numpy.ndarray, shape (n_maps, n_voxels)
        float32 when every map's values are exactly float32 (the app writes its maps in
        float32), else float64: no value is rounded.
    """
    inside = np.asanyarray(mask_img.dataobj).astype(bool)
    affine = np.asarray(mask_img.affine, dtype=np.float64)
    imgs = list(imgs)
    matrix = None
    for row, img in enumerate(imgs):
        values = _masked_values(img, inside, affine)
        dtype = np.float32 if np.can_cast(values.dtype, np.float32, "safe") else np.float64
        if matrix is None:
            matrix = np.empty((len(imgs), values.size), dtype=dtype)
        elif matrix.dtype != np.result_type(matrix.dtype, dtype):
            matrix = matrix.astype(np.float64)
        matrix[row] = values
    return matrix


def _voxel_blocks(n_rows: int, n_voxels: int):
    size = max(1000, GROUP_BLOCK_VALUES // max(n_rows, 1))
    for start in range(0, n_voxels, size):
        yield slice(start, min(start + size, n_voxels))


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
    for block in _voxel_blocks(*values.shape):
        fit = SimpleRegressionResults(model.fit(values[:, block].astype(np.float64)))
        labels = np.zeros(block.stop - block.start)
        found = compute_contrast(labels, {0.0: fit}, con_val, stat_type)
        for stat in stats:
            out[stat][block] = np.ravel(getattr(found, NILEARN_OUTPUTS[stat])())
    return out


def group_fixed_effects(effects, variances, dofs, mask, contrast) -> ContrastMaps:
    """Fixed effects across subjects, over their effect and variance maps.

    The numbers of nilearn's ``compute_fixed_effects`` (plain mean; ``dofs`` summed), with the
    maps read one pair at a time and summed as they come: memory does not grow with the
    number of subjects.

    Parameters
    ----------
    effects, variances : list of Nifti1Image or paths
        One of each per subject.
    dofs : sequence of float
        The subjects' degrees of freedom; the result has their sum.
    mask : Nifti1Image
    contrast : GroupContrast

    Returns
    -------
    maps : ContrastMaps
    """
    values = streamed_fixed_effects(effects, variances, mask, dofs)
    maps = {stat: unmask_map(values[stat], mask, OUTSIDE_MASK[stat]) for stat in STATS}
    return ContrastMaps(contrast, maps, float(np.sum(dofs)))


def streamed_fixed_effects(effects, variances, mask, dofs, precision_weighted=False) -> dict:
    """Fixed effects inside the mask, reading one effect and variance map at a time.

    The sums of nilearn's ``_compute_fixed_effects_params`` (variances floored at 1e-16;
    the mean effect and the mean variance over n, or inverse-variance weights), accumulated
    in float64 in the maps' order, then nilearn's ``Contrast`` for t, z and p.

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
        effect = _masked_values(effect_img, inside, affine).astype(np.float64)
        variance = np.maximum(_masked_values(variance_img, inside, affine).astype(np.float64), tiny)
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

    Returns
    -------
    maps : ContrastMaps
        ``effect``, ``variance``, ``t``, ``z`` and ``p`` for t; ``F``, ``z`` and ``p`` for F;
        with ``n_subjects - rank(design)`` degrees of freedom.
    """
    effects = list(effects)
    test = getattr(contrast, "test", "t")
    if len(effects) != len(design):
        raise ValueError(f"Expected one effect map per row of the design ({len(design)}), got {len(effects)}.")
    contrast_matrix = np.atleast_2d(np.asarray(contrast_matrix, dtype=np.float64))
    if contrast_matrix.shape[1] != design.shape[1]:
        raise ValueError(
            f"The contrast matrix has {contrast_matrix.shape[1]} columns; expected one per design column "
            f"({list(design.columns)})."
        )
    weights = contrast_matrix[0] if test == "t" else contrast_matrix
    values = ols_contrast(masked_matrix(effects, mask), design.to_numpy(dtype=np.float64), weights, test)
    maps = {stat: unmask_map(values[stat], mask, OUTSIDE_MASK[stat]) for stat in values}
    dof = float(len(design) - np.linalg.matrix_rank(design.to_numpy()))
    return ContrastMaps(contrast, maps, dof)
