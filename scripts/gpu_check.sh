#!/usr/bin/env bash
# The prepared GPU check: device and driver, bf16 matmul peak, training/inference throughput and
# MFU of every paper model at 224 px, the cached-feature speed-up, a short paper-profile slice on
# efficientnet_lite0 with records, and the paper grid's projected GPU-hours (thtl_bench/perf/gpu_check.py
# does the work; this is its shell). Offline, from a fresh checkout, sized for <= 8 minutes on one H100.
#
#   scripts/gpu_check.sh OUTDIR [options]      e.g. scripts/gpu_check.sh /tmp/gpu-check
#
# Writes OUTDIR/gpu_check.json (after every part, so a timeout keeps what was measured),
# OUTDIR/gpu_check.md and the slice's records under OUTDIR/slice/records. Exit status: 0 clean,
# 1 some part failed (e.g. a host sync inside a step under sync debug mode "error"), 2 no usable GPU
# (the reason and the driver/wheel diagnosis are in gpu_check.json and on stderr).
#
# Options (python -m thtl_bench.perf.gpu_check --help): --models a,b --size PX --batch N --steps N
# --warmup N --peak-n N --slice-size PX --slice-epochs N --budget-s S --device cpu (the tiny CPU
# test: tests/perf/test_gpu_check.py). THTL_PYTHON chooses the interpreter (default: python).
set -euo pipefail
if [[ $# -lt 1 || $1 == -* ]]; then
    echo "usage: scripts/gpu_check.sh OUTDIR [options]" >&2
    exit 2
fi
out=$(realpath -m "$1")  # before cd: OUTDIR is relative to the caller's folder
shift
cd "$(dirname "$0")/.."  # params.yaml and the package are the repository's
export HF_HUB_OFFLINE=1 TIMM_OFFLINE=1  # offline: weights come from the caches or packages only
exec "${THTL_PYTHON:-python}" -m thtl_bench.perf.gpu_check "$out" "$@"
