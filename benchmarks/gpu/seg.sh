#!/usr/bin/env bash
# One H100/H200, about 10 minutes: the segmentation comparisons of issues 10 and 11 at GPU length.
#   2d: DeepLabv3+ MobileNetV2 plain vs Pool Skip on CamVid (the deeplab_camvid recipe at its full size:
#       crop 240x320, batch 8, 30 epochs = 1,350 steps; seeds 0 and 1; bf16, channels_last), test mIoU.
#   3d: nnU-Net plain vs Pool Skip on Hippocampus fold 0 (the hippocampus recipe, EPOCHS3D x 25 steps of
#       batch 2; bf16), Dice / NSD / IoU on the fold's validation volumes. Needs MONAI, nibabel and
#       dynamic-network-architectures there: carry them as wheels (see /work/.library/device/README.md);
#       without them the part says so and is skipped.
# Data: benchmarks/gpu/pack_seg_data.py writes DATA (CamVid as JPEG q90 in the segfolder layout, Hippocampus
# as is), small enough to carry. Results land in OUT as at most 8 files (what the device tool returns):
# env.txt, log.txt, seg2d.md, seg2d.png, seg3d.md, seg3d.png, summaries.json.
#
#   benchmarks/gpu/seg.sh DATA [OUT]            # e.g. benchmarks/gpu/seg.sh .device/segdata "$OUT"
#   benchmarks/gpu/seg.sh DATA OUT --tiny       # the same logic on the CPU at tiny size (what CI checks)
#
# Env: PARTS ("2d 3d"), BUDGET_S (540: no run starts after that many seconds), EPOCHS2D (30), EPOCHS3D (20),
# RUNS (where run directories go; default a temporary folder).
set -euo pipefail
DATA=${1:?usage: benchmarks/gpu/seg.sh DATA [OUT] [--tiny]}
OUT=${2:-gpu-seg-results}
TINY=${3:-}
PARTS=${PARTS:-2d 3d}
BUDGET_S=${BUDGET_S:-540}
RUNS=${RUNS:-$(mktemp -d)}
mkdir -p "$OUT" "$RUNS"
START=$(date +%s)
if [ "$TINY" = "--tiny" ]; then
  DEV=(--device cpu --set threads=1)
  SIZE2D=(--epochs 1 --batch-size 2 --set 'crop_size=[17, 21]' eval_batch_size=2)
  SIZE3D=(--epochs 1 --batch-size 2 --set iterations=1 'patch_size=[16,16,16]' eval_batch_size=2 eval_subset=1)
  SEEDS=(0)
else
  DEV=(--device cuda --set amp=bf16)
  SIZE2D=(--epochs "${EPOCHS2D:-30}" --set channels_last=true eval_batch_size=16)
  SIZE3D=(--epochs "${EPOCHS3D:-20}" --set eval_every=10 eval_batch_size=8)
  SEEDS=(0 1)
fi
{
  date -u +"date: %Y-%m-%dT%H:%M:%SZ"
  echo "commit: $(git rev-parse HEAD 2>/dev/null || echo unknown)"
  python3 -c "import torch; print('torch', torch.__version__, 'device', torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'cpu')"
  echo "parts: $PARTS; budget ${BUDGET_S}s; data $DATA (CamVid images re-encoded as JPEG q90 by pack_seg_data.py)"
} > "$OUT/env.txt"

train() {  # label, poolskip train arguments...
  local label=$1; shift
  if (( $(date +%s) - START > BUDGET_S )); then echo "$label: not started (budget ${BUDGET_S}s spent)"; return 0; fi
  local t=$(date +%s)
  python3 -m poolskip train "$@" || echo "$label: FAILED (exit $?)"
  echo "$label: $(( $(date +%s) - t )) s"
}

part_2d() {
  for seed in "${SEEDS[@]}"; do
    for ps in false true; do
      train "2d pool_skip=$ps seed $seed" --recipe deeplab_camvid --dataset segfolder --data-dir "$DATA/camvid" \
        --set segfolder_classes=11 segfolder_ignore=11 eval_split=test "cache_dir=$RUNS/cache" \
        "${DEV[@]}" "${SIZE2D[@]}" --seed "$seed" --pool-skip "$ps" --out-dir "$RUNS/2d" --run-name "pool_skip_$ps"
    done
  done
  python3 -m poolskip report "$RUNS/2d" --out "$RUNS/report2d" --pictures 3
  cp "$RUNS/report2d/report.md" "$OUT/seg2d.md"
  cp "$RUNS"/report2d/predictions_*.png "$OUT/seg2d.png"
}

part_3d() {
  if ! python3 -c "import monai, nibabel, dynamic_network_architectures" 2>/dev/null; then
    echo "3d: skipped (MONAI, nibabel or dynamic-network-architectures missing: carry them as wheels)"
    return 0
  fi
  for ps in false true; do
    train "3d pool_skip=$ps" --recipe hippocampus --data-dir "$DATA/hippocampus-msd" --set fold=0 \
      "cache_dir=$RUNS/cache3d" "${DEV[@]}" "${SIZE3D[@]}" --seed 0 --pool-skip "$ps" \
      --out-dir "$RUNS/3d" --run-name "nnunet_pool_skip_$ps"
  done
  python3 -m poolskip report "$RUNS/3d" --out "$RUNS/report3d" --pictures 1
  cp "$RUNS/report3d/report.md" "$OUT/seg3d.md"
  cp "$RUNS"/report3d/predictions_*.png "$OUT/seg3d.png"
}

{
  for part in $PARTS; do "part_$part"; done
  python3 - "$RUNS" "$OUT/summaries.json" <<'EOF'
import json, sys
from pathlib import Path
runs = {str(p.parent.relative_to(sys.argv[1])): json.loads(p.read_text()) for p in sorted(Path(sys.argv[1]).rglob("summary.json"))}
Path(sys.argv[2]).write_text(json.dumps(runs, indent=1))
print(f"{len(runs)} run summaries -> {sys.argv[2]}")
EOF
  echo "total: $(( $(date +%s) - START )) s"
} 2>&1 | tee "$OUT/log.txt"
