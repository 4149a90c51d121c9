#!/bin/bash
# Kept as the record of how this result ran, not to be run again (it names this session's paths: the
# command's process group 15085 and a copy of the code at commit c341d5c in /work/exp). It re-ordered the
# table1 quick re-run so that ResNet18's three seeds finished first (see README.md): it waited for
# MobileNet seed 0's plain, Pool Skip and {Conv,Skip} runs, stopped run.sh's command, trained ResNet18's
# seed 1 then seed 2 with `--seeds`, then MobileNet's seeds 1 and 2 one run each (the lead stopped those
# at the end of the session; log.txt has every step). `run.sh` alone resumes the table in seed-major order.
cd /work/main
export PYTHONPATH=/work/exp/src
R=results/repro-table1-quick-v2/table1-quick/runs
M=imagefolder-as-cifar10_MobileNet-width-8-
N=imagefolder-as-cifar10_ResNet18-width-8-
LOG=results/repro-table1-quick-v2/log.txt
OPTS="--scale quick --dataset imagefolder --data-dir ../shared/data/cifar10-jpg --threads 1 --controls --out results/repro-table1-quick-v2"
wait_for() { for f in "$@"; do while [ ! -f "$R/$f/summary.json" ]; do sleep 10; done; done; }
stop_group() { kill -TERM -- -"$1" 2>/dev/null; while kill -0 -- -"$1" 2>/dev/null; do sleep 2; done; }
wait_for ${M}_pool_skip/seed0 ${M}_conv_skip/seed0
echo "$(date -u +%T) watcher: MobileNet seed 0 plain/Pool Skip/{Conv,Skip} done; stopping the full command to train ResNet18 seeds 1, 2 first" | tee -a $LOG
stop_group 15085
for seed in 1 2; do
  echo "$(date -u +%T) watcher: poolskip reproduce table1 $OPTS --jobs 2 --seeds $seed" | tee -a $LOG
  setsid nice -n 10 poolskip reproduce table1 $OPTS --jobs 2 --seeds $seed >> $LOG 2>&1 &
  pid=$!
  sleep 5
  wait_for ${N}_plain/seed$seed ${N}_pool_skip/seed$seed ${N}_conv_skip/seed$seed ${N}_wide/seed$seed ${N}_depthwise/seed$seed
  echo "$(date -u +%T) watcher: ResNet18 seed $seed done; stopping that command" | tee -a $LOG
  stop_group $pid
done
for seed in 1 2; do
  echo "$(date -u +%T) watcher: poolskip reproduce table1 $OPTS --jobs 1 --seeds $seed" | tee -a $LOG
  setsid nice -n 10 poolskip reproduce table1 $OPTS --jobs 1 --seeds $seed >> $LOG 2>&1 &
done
wait
