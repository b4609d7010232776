#!/usr/bin/env bash
# The grid on one machine with several GPUs: one `thtl-bench grid --shard g/N` worker per GPU,
# worker g seeing only GPU g (CUDA_VISIBLE_DEVICES=g).
#
#   scripts/multi_gpu.sh [grid options]      e.g. scripts/multi_gpu.sh --models resnet18,resnet50
#
# Phase 1 runs THTL step 1 (every model x seed, sharded), phase 2 the whole grid: its step-1
# cases are then done and skipped, and every THTL arm loads step 1 from the one checkpoints
# folder all workers share. Step 1 is trained once either way (the engine's per-case lock makes a
# worker wait for a step 1 another is training); phase 1 keeps phase-2 workers from waiting on
# each other when shards outnumber (model, seed) units. Then the records are aggregated. Re-running the script
# after a failure redoes only the unfinished cases (the engine skips finished records).
#
# Environment:
#   THTL_PROFILE     profile (default: params.yaml's `profile` key)
#   NGPUS            workers (default: GPUs listed by nvidia-smi)
#   CHECKPOINTS_DIR  shared checkpoints folder (default: the profile's grid.checkpoints_dir)
#   RECORDS_DIR      shared records folder (default: the profile's grid.records_dir)
#   LOG_DIR          one log per worker and phase (default: logs/multi_gpu)
#   STEP1_PHASE=0    skip phase 1 (e.g. for a grid without THTL arms)
#   THTL_BENCH       the command to run (default: thtl-bench)
set -euo pipefail
cd "$(dirname "$0")/.."  # params.yaml and the relative paths are the repository's

THTL_BENCH=${THTL_BENCH:-thtl-bench}
PROFILE=${THTL_PROFILE:-$(python -c 'import yaml; print(yaml.safe_load(open("params.yaml"))["profile"])')}
if [[ -z ${NGPUS:-} ]]; then
    NGPUS=$(nvidia-smi -L | grep -c '^GPU ')
fi
if (( NGPUS < 1 )); then
    echo "multi_gpu.sh: no GPU found (set NGPUS)" >&2
    exit 2
fi
grid_dir() {  # the profile's grid.<key>, absolute
    python -c 'import sys, os; from thtl_bench import config
print(os.path.abspath(config.load(profile=sys.argv[1])["grid"][sys.argv[2]]))' "$PROFILE" "$1"
}
CHECKPOINTS_DIR=$(realpath -m "${CHECKPOINTS_DIR:-$(grid_dir checkpoints_dir)}")
RECORDS_DIR=$(realpath -m "${RECORDS_DIR:-$(grid_dir records_dir)}")
LOG_DIR=${LOG_DIR:-logs/multi_gpu}
mkdir -p "$LOG_DIR" "$CHECKPOINTS_DIR" "$RECORDS_DIR"
COMMON=(--profile "$PROFILE" -S "grid.checkpoints_dir=$CHECKPOINTS_DIR" -S "grid.records_dir=$RECORDS_DIR")

run_phase() {  # run_phase NAME [extra grid options]: N workers in parallel, fail if any failed
    local name=$1 g failed=0
    shift
    local pids=()
    for (( g = 0; g < NGPUS; g++ )); do
        CUDA_VISIBLE_DEVICES=$g "$THTL_BENCH" grid "${COMMON[@]}" --shard "$g/$NGPUS" "$@" \
            >"$LOG_DIR/$name-$g.log" 2>&1 &
        pids+=("$!")
    done
    for g in "${!pids[@]}"; do
        if ! wait "${pids[$g]}"; then
            echo "multi_gpu.sh: $name worker $g/$NGPUS failed, see $LOG_DIR/$name-$g.log" >&2
            failed=1
        fi
    done
    return "$failed"
}

echo "profile $PROFILE, $NGPUS workers, checkpoints $CHECKPOINTS_DIR, records $RECORDS_DIR"
if [[ ${STEP1_PHASE:-1} != 0 ]]; then
    run_phase step1 "$@" --arms thtl_step1
fi
run_phase grid "$@"
"$THTL_BENCH" aggregate "${COMMON[@]}"
