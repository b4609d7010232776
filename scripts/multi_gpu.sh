#!/usr/bin/env bash
# The grid on one machine with several GPUs: one `thtl-bench grid --shard g/N` worker per GPU,
# worker g seeing only its GPU (CUDA_VISIBLE_DEVICES=<that GPU>) and its share of the CPU cores.
#
#   scripts/multi_gpu.sh [grid options]      e.g. scripts/multi_gpu.sh --models resnet18,resnet50
#
# A preflight first checks that the profile's device comes up (a GPU profile without CUDA stops
# here, saying why). Phase 1 runs THTL step 1 (every model x seed, sharded), phase 2 the whole grid: its step-1
# cases are then done and skipped, and every THTL arm loads step 1 from the one checkpoints
# folder all workers share. Step 1 is trained once either way (the engine's per-case lock makes a
# worker wait for a step 1 another is training); phase 1 keeps phase-2 workers from waiting on
# each other when shards outnumber (model, seed) units. Then the records are aggregated. Re-running the script
# after a failure redoes only the unfinished cases (the engine skips finished records).
#
# GPUs: an existing CUDA_VISIBLE_DEVICES mask (Slurm, a container, a shared node) is respected:
# the workers use its entries (indices, UUIDs or MIG ids), one each; without a mask, the GPUs
# nvidia-smi lists. Cores: the CPUs this process may use (nproc: affinity and cpusets) are divided
# among the workers: each gets OMP_NUM_THREADS / MKL_NUM_THREADS and -S train.num_threads of its
# share, so N workers do not each start a thread per core (on CUDA the thread count is not part
# of a case's identity, so records stay the same).
#
# Environment:
#   THTL_PROFILE     profile (default: params.yaml's `profile` key)
#   NGPUS            workers (default: the mask's entries, else GPUs listed by nvidia-smi)
#   THREADS          threads per worker (default: available CPUs / workers, at least 1)
#   CHECKPOINTS_DIR  shared checkpoints folder (default: the profile's grid.checkpoints_dir)
#   RECORDS_DIR      shared records folder (default: the profile's grid.records_dir)
#   LOG_DIR          one log per worker and phase (default: logs/multi_gpu)
#   STEP1_PHASE=0    skip phase 1 (e.g. for a grid without THTL arms)
#   THTL_BENCH       the command to run (default: thtl-bench)
#   THTL_PYTHON      the interpreter of the preflight and the config queries (default: python)
set -euo pipefail
cd "$(dirname "$0")/.."  # params.yaml and the relative paths are the repository's

THTL_BENCH=${THTL_BENCH:-thtl-bench}
PY=${THTL_PYTHON:-python}
PROFILE=${THTL_PROFILE:-$("$PY" -c 'import yaml; print(yaml.safe_load(open("params.yaml"))["profile"])')}
if [[ -n ${CUDA_VISIBLE_DEVICES+set} ]]; then  # a mask given by Slurm, a container or the caller
    IFS=, read -r -a GPUS <<< "$CUDA_VISIBLE_DEVICES"
    if (( ${#GPUS[@]} == 0 )) || [[ ${GPUS[0]} == -1 ]]; then
        echo "multi_gpu.sh: CUDA_VISIBLE_DEVICES='$CUDA_VISIBLE_DEVICES' hides every GPU" >&2
        exit 2
    fi
elif [[ -n ${NGPUS:-} ]]; then
    mapfile -t GPUS < <(seq 0 $(( NGPUS - 1 )))
else
    mapfile -t GPUS < <(seq 0 $(( $(nvidia-smi -L | grep -c '^GPU ' || true) - 1 )))
fi
NGPUS=${NGPUS:-${#GPUS[@]}}
if (( NGPUS < 1 )); then
    echo "multi_gpu.sh: no GPU found (set NGPUS)" >&2
    exit 2
fi
if (( NGPUS > ${#GPUS[@]} )); then
    echo "multi_gpu.sh: NGPUS=$NGPUS but CUDA_VISIBLE_DEVICES='$CUDA_VISIBLE_DEVICES' allows ${#GPUS[@]}" >&2
    exit 2
fi
THREADS=${THREADS:-$(( $(nproc) / NGPUS ))}
if (( THREADS < 1 )); then THREADS=1; fi
grid_dir() {  # the profile's grid.<key>, absolute
    "$PY" -c 'import sys, os; from thtl_bench import config
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
        CUDA_VISIBLE_DEVICES=${GPUS[$g]} OMP_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS \
            "$THTL_BENCH" grid "${COMMON[@]}" -S "train.num_threads=$THREADS" --shard "$g/$NGPUS" "$@" \
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

echo "profile $PROFILE, $NGPUS workers on GPUs ${GPUS[*]:0:NGPUS}, $THREADS threads each, checkpoints $CHECKPOINTS_DIR, records $RECORDS_DIR"
# The profile's device on the first worker's GPU, before any work (a GPU profile without CUDA stops here).
CUDA_VISIBLE_DEVICES=${GPUS[0]} "$PY" -m thtl_bench.perf.preflight --profile "$PROFILE" >/dev/null
if [[ ${STEP1_PHASE:-1} != 0 ]]; then
    run_phase step1 "$@" --arms thtl_step1
fi
run_phase grid "$@"
"$THTL_BENCH" aggregate "${COMMON[@]}"
