"""Run-level GLM: a design and a BOLD series in, per-contrast effect/variance/t/z/p maps out.

The numbers are nilearn's ``FirstLevelModel`` (masking, smoothing, percent-signal
scaling, OLS or AR(1) noise model) and its ``compute_contrast(..., output_type='all')``.
"""

from __future__ import annotations

import warnings as pywarnings
from dataclasses import dataclass

import numpy as np

from .settings import STATS

#: nilearn's output names for the maps of SPEC §3.
NILEARN_OUTPUTS = {
    "effect": "effect_size",
    "variance": "effect_variance",
    "t": "stat",
    "z": "z_score",
    "p": "p_value",
}


@dataclass(frozen=True, eq=False)
class ContrastMaps:
    """The five maps of one contrast (``effect``, ``variance``, ``t``, ``z``, ``p``)."""

    contrast: object  # ContrastWeights, or the group's intercept contrast
    maps: dict
    dof: float


@dataclass(frozen=True, eq=False)
class RunResult:
    """A fitted run: its mask, residual degrees of freedom and contrast maps."""

    name: str
    mask: object  # Nifti1Image
    dof: float
    contrasts: tuple[ContrastMaps, ...]
    warnings: tuple[str, ...] = ()

    def maps_of(self, label):
        """The :class:`ContrastMaps` of the contrast with this file label, or None."""
        for maps in self.contrasts:
            if maps.contrast.label == label:
                return maps
        return None


def fit_run(bold, design, contrasts, *, tr, mask=None, smoothing_fwhm=None,
            noise_model="ar1", name="run") -> RunResult:
    """Fit one run's GLM and compute its contrasts, as nilearn's ``FirstLevelModel``.

    Parameters
    ----------
    bold : str, Path or Nifti1Image
        The 4D BOLD series.
    design : Design
        Its design matrix (and sample mask, if any).
    contrasts : sequence of ContrastWeights
    tr : float
        Repetition time in seconds.
    mask : str, Path, Nifti1Image or None
        Brain mask; None lets nilearn compute one from the BOLD.
    smoothing_fwhm : float or None
    noise_model : {'ar1', 'ols'}
    name : str
        The run's name, for messages.

    Returns
    -------
    result : RunResult
    """
    from nilearn.glm.first_level import FirstLevelModel

    model = FirstLevelModel(
        t_r=tr,
        mask_img=mask,
        smoothing_fwhm=smoothing_fwhm,
        noise_model=noise_model,
        signal_scaling=0,
        minimize_memory=True,
    )
    with pywarnings.catch_warnings(record=True) as caught:
        pywarnings.simplefilter("always")
        model.fit(
            bold,
            design_matrices=[design.matrix],
            sample_masks=None if design.sample_mask is None else [design.sample_mask],
        )
        maps = []
        for contrast in contrasts:
            outputs = model.compute_contrast(contrast.vector, stat_type="t", output_type="all")
            maps.append(
                ContrastMaps(contrast, {stat: outputs[NILEARN_OUTPUTS[stat]] for stat in STATS}, 0.0)
            )
    # nilearn's own residual degrees of freedom (volumes minus the design's rank)
    dof = float(next(iter(model.results_[0].values())).df_residuals)
    notes = tuple(
        f"{name}: {w.message}" for w in caught
        if issubclass(w.category, UserWarning) and "design" not in str(w.message).lower()
    )
    return RunResult(
        name=name,
        mask=model.masker_.mask_img_,
        dof=dof,
        contrasts=tuple(ContrastMaps(m.contrast, m.maps, dof) for m in maps),
        warnings=notes,
    )

