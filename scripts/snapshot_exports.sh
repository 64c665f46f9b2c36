#!/bin/bash
# Copy each new generator export of a training run into RUN/snapshots/step-N.safetensors (+ card),
# so scripts/average_weights.py can average the last few. Run it beside training:
#   nohup scripts/snapshot_exports.sh runs/X > /dev/null 2>&1 &
set -u
run=$1
mkdir -p "$run/snapshots"
last=""
while true; do
  stamp=$(stat -c %Y "$run/generator.safetensors" 2>/dev/null || true)
  if [ -n "$stamp" ] && [ "$stamp" != "$last" ]; then
    sleep 3  # let the card beside the weights be written too
    step=$(python3 -c "import json, sys; print(json.load(open(sys.argv[1]))['steps'])" "$run/generator.json")
    cp "$run/generator.safetensors" "$run/snapshots/step-$step.safetensors"
    cp "$run/generator.json" "$run/snapshots/step-$step.json"
    last=$stamp
  fi
  sleep 15
done
