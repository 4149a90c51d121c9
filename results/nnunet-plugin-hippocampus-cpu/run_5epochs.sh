#!/bin/bash
# nnUNetTrainerPoolSkip_5epochs in nnU-Net v2's own pipeline on Hippocampus fold 0, on the CPU: after run.sh's
# conversion and preprocessing, with a copy of nnU-Net's plans whose only change is the 3d_fullres batch size
# (9 -> 2: nnUNetPlans_cpu, selected with -p; the preprocessed data are shared, same data_identifier).
set -euo pipefail
export nnUNet_raw=/tmp/nnu/raw nnUNet_preprocessed=/tmp/nnu/pre nnUNet_results=/tmp/nnu/res
export nnUNet_extTrainer=$(poolskip nnunet)
export nnUNet_n_proc_DA=1
pre=$nnUNet_preprocessed/Dataset004_Hippocampus
python3 - "$pre" <<'PY'
import json, sys
p = json.load(open(f"{sys.argv[1]}/nnUNetPlans.json"))
p["plans_name"] = "nnUNetPlans_cpu"
p["configurations"]["3d_fullres"]["batch_size"] = 2
json.dump(p, open(f"{sys.argv[1]}/nnUNetPlans_cpu.json", "w"), indent=1)
PY
date -u
time nnUNetv2_train 4 3d_fullres 0 -tr nnUNetTrainerPoolSkip_5epochs -p nnUNetPlans_cpu -device cpu
date -u
