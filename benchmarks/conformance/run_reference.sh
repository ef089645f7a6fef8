#!/usr/bin/env bash
# Conformance with the official DPL code, stage B (DDIM inversion, clusters, background mask), end to end:
#   bash benchmarks/conformance/run_reference.sh DPL_CHECKOUT WORK [STEPS]
# DPL_CHECKOUT: a checkout of github.com/wangkai930418/DPL (not vendored: it has no licence); WORK: a scratch folder.
# Makes the reference environment (setup_reference_env.sh, needs the package index) and the random-weight model
# (make_model.py), runs the reference's _2_DDIM_inv.py unchanged on a CPU through shim/ (sitecustomize), then
# compare.py, which writes benchmarks/results/conformance.json.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
DPL=$(cd "$1" && pwd); WORK=$(mkdir -p "$2" && cd "$2" && pwd); STEPS=${3:-10}
cd "$HERE/../.."
. tools/env.sh
[ -x "$WORK/venv-dpl-ref/bin/python" ] || bash "$HERE/setup_reference_env.sh" "$WORK/venv-dpl-ref"
[ -f "$WORK/model/model_index.json" ] || python "$HERE/make_model.py" "$WORK/model"
python - "$WORK/catdog.png" <<'PY'
import sys
from PIL import Image, ImageDraw
image = Image.new("RGB", (512, 512), (120, 160, 110))
draw = ImageDraw.Draw(image)
draw.ellipse((60, 150, 230, 320), fill=(200, 120, 60)); draw.rectangle((290, 170, 450, 330), fill=(90, 80, 70))
image.save(sys.argv[1])
PY
rm -rf "$WORK/out"
(cd "$DPL" && DPL_REF_NOUNS=cat,dog PYTHONPATH="$HERE/shim" OMP_NUM_THREADS=1 "$WORK/venv-dpl-ref/bin/python" \
    _2_DDIM_inv.py --input_image "$WORK/catdog.png" --results_folder "$WORK/out/" --model_path "$WORK/model" \
    --num_ddim_steps "$STEPS" --manual_prompt --prompt_str "a cat and a dog")
OMP_NUM_THREADS=1 python "$HERE/compare.py" "$WORK/out/catdog" "$WORK/model" "$WORK/catdog.png" \
    --prompt "a {cat} and a {dog}" --steps "$STEPS" --reference "$DPL" --reference-python "$WORK/venv-dpl-ref/bin/python"
