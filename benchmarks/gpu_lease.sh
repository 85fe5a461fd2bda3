#!/usr/bin/env bash
# One lease of the GPU machine (docs/training.md, "A GPU run from a pack"), run there from the
# repository root with `.whl` (benchmarks/gpu_pack.py's wheels) and `.pack` carried:
# install the wheels, decode the pack, benchmark separation on CUDA, train until the lease's end.
# LEASE_SECONDS: wall-clock budget of the whole command; EXTRA: more gpu_run.py arguments.
# PY and SKIP_WHEELS=1 let it run here on CPU as a dry run (EXTRA="--device cpu ...").
set -u
END=$(( $(date +%s) + ${LEASE_SECONDS:-540} ))
OUT=${OUT:-gpu-out}
PY=${PY:-python3}
mkdir -p "$OUT"
exec > >(tee "$OUT/log.txt") 2>&1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || echo "no nvidia-smi"
nproc
if [ "${SKIP_WHEELS:-0}" != 1 ]; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD/src
fi
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1
"$PY" benchmarks/gpu_pack.py unpack --pack .pack --out /tmp/gpuwork || exit 1
echo "unpacked at $(( END - $(date +%s) )) s before the end"
# shellcheck disable=SC2086
"$PY" benchmarks/gpu_run.py --index /tmp/gpuwork/index --out "$OUT" --end-at $(( END - 30 )) ${EXTRA:-}
echo "done $(( END - $(date +%s) )) s before the end"
