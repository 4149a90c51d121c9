#!/usr/bin/env bash
# One H100/H200, under 10 minutes: the CUDA tests, then ResNet18 plain vs Pool Skip on real CIFAR-10
# (one-cycle, bf16 AMP, channels_last; images/s and test error), written to OUT.
#
#   benchmarks/gpu/run.sh DATA_DIR [OUT]      # e.g. benchmarks/gpu/run.sh ../shared/data/cifar10-jpg gpu-results
#   benchmarks/gpu/run.sh DATA_DIR OUT --tiny # the same logic on the CPU at tiny size (what CI checks)
#
# Run from the repository root with the package importable (pip install -e . or PYTHONPATH=src).
set -euo pipefail
DATA=${1:?usage: benchmarks/gpu/run.sh DATA_DIR [OUT] [extra args for compare.py]}
OUT=${2:-gpu-results}
shift $(( $# >= 2 ? 2 : 1 ))
mkdir -p "$OUT"
{
  date -u +"date: %Y-%m-%dT%H:%M:%SZ"
  echo "commit: $(git rev-parse HEAD 2>/dev/null || echo unknown)"
  python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'device', torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none')"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || true
} | tee "$OUT/env.txt"

# 1. the CUDA tests (they skip without a GPU): the lean op against the plain formulation, determinism, AMP
timeout 180 python3 -m pytest -q -rs tests/test_functional.py tests/test_module.py -k "cuda or autocast or grouped" \
  2>&1 | tee "$OUT/cuda-tests.txt" || echo "CUDA tests failed or timed out: see $OUT/cuda-tests.txt" | tee -a "$OUT/env.txt"

# 2. the comparison; its training budget leaves room for decoding the data and evaluation
timeout 420 python3 benchmarks/gpu/compare.py --data-dir "$DATA" --out "$OUT" "$@" 2>&1 | tee "$OUT/compare.log"
