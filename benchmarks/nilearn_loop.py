"""The plain nilearn loop that bids-fixedfx's participant level is measured against.

What a researcher would write by hand, following nilearn's "fixed effects" example:
for every run, ``FirstLevelModel(...).fit(bold, events, confounds)`` and
``compute_contrast(condition, output_type='all')``; then, per subject and
condition, ``compute_fixed_effects`` over the runs with their degrees of freedom.
Every map is saved to OUTPUT_DIR.

Usage: python nilearn_loop.py BIDS_DIR OUTPUT_DIR
"""

import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from nilearn.glm import compute_fixed_effects
from nilearn.glm.first_level import FirstLevelModel
from nilearn.masking import intersect_masks

STATS = {"effect_size": "effect", "effect_variance": "variance", "stat": "t",
         "z_score": "z", "p_value": "p"}
MOTION = ["trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z"]


def main(bids_dir, output_dir):
    bids_dir, output_dir = Path(bids_dir), Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    fmriprep = bids_dir / "derivatives" / "fmriprep"
    tr = float(pd.read_json(next(bids_dir.glob("task-*_bold.json")), typ="series")["RepetitionTime"])
    for subject_dir in sorted(fmriprep.glob("sub-*")):
        bolds = sorted(subject_dir.rglob("*space-MNI152NLin2009cAsym_desc-preproc_bold.nii.gz"))
        effects, variances, dofs, masks = {}, {}, [], []
        for bold in bolds:
            stem = bold.name.split("_space-")[0]
            mask = bold.with_name(bold.name.replace("desc-preproc_bold", "desc-brain_mask"))
            raw = bids_dir / bold.relative_to(fmriprep).parent
            events = pd.read_csv(raw / f"{stem}_events.tsv", sep="\t")
            confounds = pd.read_csv(bold.with_name(f"{stem}_desc-confounds_timeseries.tsv"), sep="\t")
            confounds = confounds[MOTION].bfill()
            model = FirstLevelModel(t_r=tr, mask_img=str(mask), smoothing_fwhm=5, noise_model="ar1")
            model.fit(str(bold), events=events, confounds=confounds)
            design = model.design_matrices_[0]
            dofs.append(design.shape[0] - np.linalg.matrix_rank(design.to_numpy()))
            masks.append(str(mask))
            for condition in sorted(events["trial_type"].unique()):
                maps = model.compute_contrast(condition, output_type="all")
                for name, img in maps.items():
                    img.to_filename(output_dir / f"{stem}_contrast-{condition}_stat-{STATS[name]}.nii.gz")
                effects.setdefault(condition, []).append(maps["effect_size"])
                variances.setdefault(condition, []).append(maps["effect_variance"])
            print(f"{stem} done", file=sys.stderr, flush=True)
        subject_mask = intersect_masks(masks, threshold=1, connected=False)
        for condition in effects:
            fixed = compute_fixed_effects(effects[condition], variances[condition], subject_mask, dofs=dofs)
            for name, img in zip(("effect", "variance", "t", "z"), fixed):
                img.to_filename(output_dir / f"{subject_dir.name}_contrast-{condition}_stat-{name}.nii.gz")
        nib.save(subject_mask, output_dir / f"{subject_dir.name}_mask.nii.gz")


if __name__ == "__main__":
    main(*sys.argv[1:3])
