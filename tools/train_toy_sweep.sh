#!/usr/bin/env bash
# Train toy-model recipes side by side (one GPU, 16 cores) and ship each run's best snapshot to $OUT/<name>.tgz.
# This is how the recipes in benchmarks/results/toy_recipes.json were trained (chapter 9, "Which training recipe?"):
#   OUT=out RUNS=runs bash tools/train_toy_sweep.sh MINUTES SNAPSHOTS KILL_AFTER_S
# Each run gets --fit-minutes MINUTES (steps chosen from a timed trial) and SNAPSHOTS EMA snapshots; a run still
# training after KILL_AFTER_S seconds is stopped and its snapshots so far are scored and shipped.
# Compare the shipped folders with: python benchmarks/toy_recipes.py NAME=FOLDER ...
# WORLD=coats trains toy world v2 instead (each run then also ships a v2 judge); compare its snapshots with
#   python tools/draw_accuracy.py RUNS/NAME --judge OUT/NAME/judge
# On the device machine diffusers and transformers travel as wheels (.library/device/README.md, "nvidia-h200").
set -u
MIN=${1:-5}; SNAP=${2:-8}; KILL=${3:-420}; WORLD=${WORLD:-shapes}
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
OUT=${OUT:-out}; RUNS=${RUNS:-runs}; mkdir -p "$OUT" "$RUNS"
variant() {  # NAME, then train_toy.py options
  name=$1; shift
  ( timeout "$KILL" python3 tools/train_toy.py "$RUNS/$name" --fit-minutes "$MIN" --snapshots "$SNAP" --threads 3 --workers 3 --no-ship --world "$WORLD" "$@"
    echo "train rc $?"
    python3 tools/train_toy.py "$RUNS/$name" --no-train --threads 3 --dest "$OUT/$name" --world "$WORLD" $([ "$WORLD" = shapes ] || echo --judge)
    echo "ship rc $?"
  ) > "$RUNS/$name.out" 2>&1
  mkdir -p "$OUT/$name" && cp "$RUNS/$name.out" "$OUT/$name/"
  tar czf "$OUT/$name.tgz" -C "$OUT" "$name" && rm -rf "${OUT:?}/$name"
}
variant gpu_b128 --batch-size 128 &
variant gpu_b128_2layers --batch-size 128 --layers-per-block 2 &
variant gpu_b128_wide --batch-size 128 --channels 64 128 128 &
variant gpu_b128_2layers_shape --batch-size 128 --layers-per-block 2 --p-colour-words 0.35 &
wait
# the second call trained these two side by side (3.6 minutes each); the second one is the shipped model
# variant gpu_b128_rerun --batch-size 128 &
# variant shipped --batch-size 128 --p-colour-words 0.35 &
ls -la "$OUT"
