#!/usr/bin/env bash
# The engine's GPU measurements, in the order a short device lease should spend its time on them.
#
#   bash benchmarks/train_step/gpu_session.sh OUT_DIR [PART]
#
# PART (default all): tests | vitb | vitl | profile. Each part fits one 10-minute call on an H100 and
# writes its table (and JSON) under OUT_DIR; run the parts as separate calls when time is metered.
set -euo pipefail
out=${1:?usage: gpu_session.sh OUT_DIR [tests|vitb|vitl|profile|all]}
part=${2:-all}
mkdir -p "$out"
here=$(cd "$(dirname "$0")" && pwd)
bench() { python "$here/bench.py" --repeats 5 "$@"; }

if [[ $part == tests || $part == all ]]; then
    # bf16 vs fp32, compiled (blocks / all) vs eager, FSDP2 on NCCL, no host sync in the step.
    python -m pytest -q -m gpu tests 2>&1 | tee "$out/gpu_tests.txt"
fi
if [[ $part == vitb || $part == all ]]; then
    bench --configs vitb14_in21k --batch 32 --attention sdpa auto sdpa+compile sdpa+compile_all \
        --out "$out/vitb14.json" 2>&1 | tee "$out/vitb14.txt"
fi
if [[ $part == vitl || $part == all ]]; then
    # Per-sample drop path is the baseline: the rows measured before batch-subset stochastic depth.
    bench --configs vitl14_in21k --batch 32 --attention sdpa+per_sample sdpa auto sdpa+compile_all sdpa+checkpointing \
        --out "$out/vitl14.json" 2>&1 | tee "$out/vitl14.txt"
fi
if [[ $part == profile || $part == all ]]; then
    python "$here/profile_step.py" --config vitl14_in21k --batch 32 --compile all --rows 40 \
        --trace "$out/vitl14_trace.json" 2>&1 | tee "$out/vitl14_profile.txt"
fi
