#!/bin/bash
# GPU benchmark and training in one call (a rented GPU's start costs minutes, so one long call
# beats many short ones):
#   1. inference latency through Inpainter (target: 512x512 bf16 <= 5 ms)   -> $OUT/latency.json
#   2. training images/s at 256x256, bf16 (target: >= 300)                 -> $OUT/train_throughput.json
#   3. training from the bundled weights with CONFIG (configs/gpu_256.toml) for TRAIN_MINUTES
#      -> $OUT/generator.safetensors + .json (the export), $OUT/metrics.jsonl
#   4. bbox256 of that export (deepfill only: the baselines' numbers are the CPU's)  -> $OUT/bbox256.csv
#
# Prepare here (the device machine has torch, numpy, Pillow, scipy, safetensors, tqdm; no registry):
#   python -m tools.photoset build --out data/photos --compact && mkdir -p .carry && cp -r data/photos512 .carry/
# Call there, with .carry copied beside the checkout:
#   OUT=$OUT TRAIN_MINUTES=6 scripts/gpu_benchmark_and_train.sh
# A smoke run on a CPU here: DEVICE=cpu SMOKE=1 OUT=/tmp/device scripts/gpu_benchmark_and_train.sh
set -uo pipefail
out=${OUT:?set OUT to the results folder}
data=${DATA:-.carry/photos512}
device=${DEVICE:-cuda}
minutes=${TRAIN_MINUTES:-6}
config=${CONFIG:-configs/gpu_256.toml}
train_list=$([ -f "$data/train_weighted.flist" ] && echo train_weighted.flist || echo train.flist)
export PYTHONPATH=src${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
py=${PYTHON:-python3}
mkdir -p "$out"
if [ -n "${SMOKE:-}" ]; then  # tiny settings: checks that every stage runs, measures nothing
  sizes=256 runs=2 tp_size=128 tp_batch=2 steps_arg="--steps 2 --image-size 128 --batch-size 2" limit="--limit 2"
else
  sizes=256,512,1024 runs=50 tp_size=256 tp_batch=64 steps_arg="" limit=""
fi

echo "== $(date -u +%T) latency"
$py -m deepfill benchmark --device "$device" --sizes $sizes --dtypes float32,bfloat16 --runs $runs \
  --json "$out/latency.json"

echo "== $(date -u +%T) training throughput"
$py benchmarks/train_throughput.py --data "$data/train" --size $tp_size --batch $tp_batch --steps 3 \
  --amp bf16 --json "$out/train_throughput.json"

echo "== $(date -u +%T) training for $minutes min"
run=/tmp/deepfill_device_run
# On SIGINT the trainer writes its checkpoint and export, then stops.
timeout --signal=INT "${minutes}m" $py -m deepfill train --data "$data/$train_list" --out "$run" \
  --config "$config" --init src/deepfill/assets/deepfill_v1.safetensors $steps_arg
cp "$run/generator.safetensors" "$run/generator.json" "$out/"
[ -f "$run/metrics.jsonl" ] && cp "$run/metrics.jsonl" "$out/"  # none before the first log_every steps

echo "== $(date -u +%T) bbox256"
$py -m deepfill evaluate --images "$data/val" --out /tmp/deepfill_device_eval --protocol bbox256 \
  --methods deepfill --weights "$out/generator.safetensors" --device "$device" $limit --overwrite
cp /tmp/deepfill_device_eval/metrics.csv "$out/bbox256.csv"
echo "== $(date -u +%T) done"
