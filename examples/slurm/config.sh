# shellcheck shell=bash
# Settings of the bids-fixedfx SLURM example: copy this file, edit it, and run
#   examples/slurm/submit.sh my-config.sh
# Every setting may also come from the environment (the environment wins).

# The BIDS dataset (read-only inside the container); fMRIPrep's derivatives are looked for under
# BIDS_DIR/derivatives unless FMRIPREP_DIR names them.
: "${BIDS_DIR:=/path/to/bids}"
: "${FMRIPREP_DIR:=}"
# Where the statistical maps go (one OUTPUT_DIR shared by all array tasks).
: "${OUTPUT_DIR:=${BIDS_DIR}/derivatives/fixedfx}"
# The Singularity/Apptainer image (apptainer build bids-fixedfx-0.1.0.sif singularity.def).
: "${IMAGE:=/path/to/bids-fixedfx-0.1.0.sif}"
# Scratch space (a folder per participant is made in it); empty: the compute node's $TMPDIR
# (or /tmp), looked up on the node when the task starts.
: "${WORK_DIR:=}"
# Logs, the participant list and each participant's exit code.
: "${LOG_DIR:=${OUTPUT_DIR}/logs/slurm}"
# Participants to process (labels, with or without sub-); empty: every sub-* folder of BIDS_DIR.
: "${PARTICIPANTS:=}"
# At most this many array tasks at a time.
: "${MAX_PARALLEL:=20}"
# More options of the participant level (split on white space), e.g.
# EXTRA_ARGS="--task checkerboard --smoothing-fwhm 6 --contrast visualMinusAudio=visual-audio"
: "${EXTRA_ARGS:=}"
# More options of the group level, e.g. GROUP_EXTRA_ARGS="--task checkerboard --group-model fixed".
# The group level refuses the participant level's model options (--smoothing-fwhm, --contrast...):
# options both levels take (-m MODEL, --task, --space) go in both.
: "${GROUP_EXTRA_ARGS:=}"
# 1: run the group level on the participants that succeeded even if some failed.
: "${ALLOW_PARTIAL:=0}"
# Extra sbatch options, e.g. SBATCH_ARGS="--account=myproject --partition=standard".
: "${SBATCH_ARGS:=}"
