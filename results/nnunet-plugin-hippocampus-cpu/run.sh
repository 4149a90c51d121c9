#!/bin/bash
# nnU-Net v2's own pipeline on the Decathlon Task04 Hippocampus copy, with poolskip's trainer plugin (short CPU run).
set -euo pipefail
export nnUNet_raw=/tmp/nnu/raw nnUNet_preprocessed=/tmp/nnu/pre nnUNet_results=/tmp/nnu/res
export PYTHONPATH=/work/wt-med3d/src
export nnUNet_extTrainer=$(poolskip nnunet)
export nnUNet_n_proc_DA=1 OMP_NUM_THREADS=2
echo "nnUNet_extTrainer=$nnUNet_extTrainer"
date -u
[ -d $nnUNet_raw/Dataset004_Hippocampus ] || nnUNetv2_convert_MSD_dataset -i /tmp/nnu/src/Task04_Hippocampus -np 1
date -u
nnUNetv2_plan_and_preprocess -d 4 -c 3d_fullres -np 1 -npfp 1 --verify_dataset_integrity
date -u
time nnUNetv2_train 4 3d_fullres 0 -tr nnUNetTrainerPoolSkip_cpu_smoke -device cpu
date -u
