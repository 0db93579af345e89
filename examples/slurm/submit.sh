#!/bin/bash
# Submit bids-fixedfx on a SLURM cluster: one array task per participant (participant.sbatch),
# then the group level (group.sbatch), which waits for the whole array.
#
#   cp examples/slurm/config.sh my-study.sh   # edit BIDS_DIR, OUTPUT_DIR, IMAGE, ...
#   examples/slurm/submit.sh my-study.sh
#
# Settings come from the file given (default: config.sh beside this script) and the environment.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
config="${1:-${here}/config.sh}"
# shellcheck source-path=SCRIPTDIR source=config.sh
source "${config}"

: "${BIDS_DIR:?set BIDS_DIR in ${config}}"
: "${OUTPUT_DIR:?set OUTPUT_DIR in ${config}}"
: "${IMAGE:?set IMAGE in ${config}}"
SBATCH="${SBATCH:-sbatch}"
if [ ! -f "${BIDS_DIR}/dataset_description.json" ]; then
    echo "submit.sh: error: BIDS_DIR ${BIDS_DIR} has no dataset_description.json." >&2
    exit 66
fi
if [ ! -f "${IMAGE}" ]; then
    echo "submit.sh: error: IMAGE ${IMAGE} does not exist (build it: apptainer build ${IMAGE} singularity.def)." >&2
    exit 66
fi

LOG_DIR="${LOG_DIR:-${OUTPUT_DIR}/logs/slurm}"
STATUS_DIR="${STATUS_DIR:-${LOG_DIR}/status}"
mkdir -p "${OUTPUT_DIR}" "${LOG_DIR}" "${STATUS_DIR}"

# The participant list, frozen at submission: array task i takes line i. It is made beside the
# file and put in place once checked: a refused submission leaves an earlier one's list as it was
# (its pending array tasks and group job read it).
PARTICIPANTS_FILE="${LOG_DIR}/participants.txt"
listed="${PARTICIPANTS_FILE}.new.$$"
trap 'rm -f "${listed}"' EXIT
if [ -n "${PARTICIPANTS:-}" ]; then
    for p in ${PARTICIPANTS}; do printf '%s\n' "${p#sub-}"; done > "${listed}"
else
    for d in "${BIDS_DIR}"/sub-*/; do
        [ -d "$d" ] || continue
        d="${d%/}"
        d="${d##*/}"
        printf '%s\n' "${d#sub-}"
    done | LC_ALL=C sort > "${listed}"
fi
n="$(wc -l < "${listed}")"
if [ "${n}" -eq 0 ]; then
    echo "submit.sh: error: no participant (no sub-* folder in ${BIDS_DIR})." >&2
    exit 66
fi
# A label with no folder (a typo) would fail its array task and, recorded, stop every later group job.
absent=()
while IFS= read -r label; do
    [ -d "${BIDS_DIR}/sub-${label}" ] || absent+=("sub-${label}")
done < "${listed}"
if [ "${#absent[@]}" -gt 0 ]; then
    echo "submit.sh: error: PARTICIPANTS names ${absent[*]}, which BIDS_DIR ${BIDS_DIR} does not hold; check the labels." >&2
    exit 66
fi
mv -f "${listed}" "${PARTICIPANTS_FILE}"
# An earlier exit code of these participants would be taken for this submission's (those of other
# participants stay: the group job includes them).
while IFS= read -r label; do
    rm -f "${STATUS_DIR}/sub-${label}.tsv"
done < "${PARTICIPANTS_FILE}"

export BIDS_DIR OUTPUT_DIR IMAGE LOG_DIR STATUS_DIR PARTICIPANTS_FILE
export FMRIPREP_DIR="${FMRIPREP_DIR:-}" WORK_DIR="${WORK_DIR:-}" EXTRA_ARGS="${EXTRA_ARGS:-}"
export GROUP_EXTRA_ARGS="${GROUP_EXTRA_ARGS:-}" ALLOW_PARTIAL="${ALLOW_PARTIAL:-0}"
[ -n "${WORK_DIR}" ] || unset WORK_DIR
[ -n "${SINGULARITY:-}" ] && export SINGULARITY
read -r -a sbatch_args <<< "${SBATCH_ARGS:-}"

array_job="$("${SBATCH}" --parsable ${sbatch_args[@]+"${sbatch_args[@]}"} \
    --array="1-${n}%${MAX_PARALLEL:-20}" \
    --output="${LOG_DIR}/%x-%A_%a.out" \
    "${here}/participant.sbatch")"
array_job="${array_job%%;*}"   # --parsable prints "job id[;cluster]"
group_job="$("${SBATCH}" --parsable ${sbatch_args[@]+"${sbatch_args[@]}"} \
    --dependency="afterany:${array_job}" \
    --output="${LOG_DIR}/%x-%j.out" \
    "${here}/group.sbatch")"
group_job="${group_job%%;*}"

echo "Submitted ${n} participant(s) as array job ${array_job} and the group level as job ${group_job}."
echo "Logs: ${LOG_DIR}; exit codes: ${STATUS_DIR}/sub-<label>.tsv and, after the group job, ${STATUS_DIR}/participants.tsv."
