"""Planning: from the discovered runs (or the participant level's outputs) to checked plans,
before any file is written.

- :mod:`.runs`: run plans and subject plans of the participant level;
- :mod:`.models`: the ``-m`` model file, the settings it implies, the default model;
- :mod:`.group`: the group level's tests.
"""

from .group import (
    MIN_SUBJECTS,
    GroupPlan,
    GroupTest,
    SubjectMapFiles,
    check_dataset_variables,
    check_inputs_unchanged,
    described_columns,
    find_subject_maps,
    plan_group,
    read_participants,
)
from .models import (
    FIXED_EFFECTS_MODEL_NAME,
    SUPPORTED,
    apply_input,
    check_dataset_contrasts,
    covariates_model,
    default_model,
    fixed_effects_model,
    inference_settings,
    model_settings,
    read_model,
    run_node,
    same_default_options,
    with_dataset_inference,
)
from .runs import MIN_DOF, LeftOut, Plan, RunPlan, SubjectPlan, plan_runs, residual_dof

__all__ = [
    "FIXED_EFFECTS_MODEL_NAME", "MIN_DOF", "MIN_SUBJECTS", "SUPPORTED", "GroupPlan", "GroupTest", "LeftOut", "Plan", "RunPlan",
    "SubjectMapFiles", "SubjectPlan", "apply_input", "check_dataset_contrasts", "check_dataset_variables",
    "check_inputs_unchanged", "covariates_model", "default_model", "described_columns",
    "find_subject_maps", "fixed_effects_model",
    "inference_settings", "model_settings", "plan_group",
    "plan_runs", "read_model", "read_participants", "residual_dof", "run_node", "same_default_options",
    "with_dataset_inference",
]
