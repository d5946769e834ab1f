#!/usr/bin/env bash
# The whole GPU check of the CUDA backend in one run, for a machine with a CUDA device (the project's device tool):
# build with CUDA, run the `gpu` tests, the GPU benchmarks and a short device training run, and leave every result
# under $OUT (default ./gpu-results). Each stage has its own time limit so that one slow stage cannot eat the rest.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-$PWD/gpu-results}"
mkdir -p "$OUT"
{
  date -u
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1
  lscpu | grep "Model name"
  git rev-parse HEAD 2>/dev/null
} > "$OUT/machine.txt"

python3 -m venv .venv-gpu && . .venv-gpu/bin/activate
pip install -q torch==2.13.0 > "$OUT/pip.log" 2>&1
HMASD_CUDA=ON timeout 900 pip install -q ".[train,test]" -Ccmake.define.CMAKE_INTERPROCEDURAL_OPTIMIZATION=OFF \
  >> "$OUT/pip.log" 2>&1 || { echo "build failed" >> "$OUT/summary.txt"; exit 1; }
python -c "import hmasd._native as n, torch; print(n.build_info(), torch.version.cuda, torch.cuda.is_available())" \
  > "$OUT/build_info.txt" 2>&1

timeout 600 pytest -q -p no:cacheprovider -m gpu -rs tests > "$OUT/gpu_tests.txt" 2>&1
echo "gpu tests rc=$?" >> "$OUT/summary.txt"

timeout 900 pytest -q -p no:cacheprovider benchmarks/test_gpu_throughput.py \
  --benchmark-json "$OUT/gpu_benchmarks.json" > "$OUT/gpu_benchmarks.txt" 2>&1
echo "gpu benchmarks rc=$?" >> "$OUT/summary.txt"

# A short device training run: wall clock, host syncs per batch and the final success rate are in its run folder.
timeout 600 hmasd-train --preset alice_and_bob --device cuda --total-steps 300000 --run-dir "$OUT/runs" \
  --no-progress > "$OUT/train.txt" 2>&1
echo "train rc=$?" >> "$OUT/summary.txt"
cat "$OUT/summary.txt"
