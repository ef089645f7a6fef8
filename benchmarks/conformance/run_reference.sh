#!/usr/bin/env bash
# Conformance with the official DPL code, end to end: stage B (DDIM inversion, clusters, background mask), stage C
# (DPL's token and null-text updates, maps, reconstruction) and stage D (Prompt-to-Prompt edits of the DPL inversion:
# word swap, local blend, reweighting, refinement):
#   [STAGES=B,C,D] [EDITS=swap,blend,reweight,refine] bash benchmarks/conformance/run_reference.sh DPL_CHECKOUT WORK [STEPS] [NULL_STEPS]
# DPL_CHECKOUT: a checkout of github.com/wangkai930418/DPL (not vendored: it has no licence); WORK: a scratch folder.
# Makes the reference environment (setup_reference_env.sh, needs the package index) and the random-weight model
# (make_model.py), runs the reference's _2_DDIM_inv.py and _3_dpl_inv.py unchanged on a CPU through shim/
# (sitecustomize), with DPL.sh's settings except the number of steps (STEPS, default 10) and of null-text updates
# per step (NULL_STEPS, default DPL.sh's 51), then compare.py, which writes benchmarks/results/conformance.json.
# Stage D's reference runs (_4_image_edit.py, unchanged, through the same shim, which records each step's latents)
# are started by compare.py, which holds the table of edits (stage_d.py). Both sides run the same settings. On one
# core stage C takes about 12 minutes a step with 51 null-text updates and 3 to 5 with 5; each of stage D's edits
# about 40 seconds a step on the reference's side. A rerun skips the reference's stages whose files are there
# (delete WORK/out to redo them; WORK/out/<image>/edit_* for stage D).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
DPL=$(cd "$1" && pwd); WORK=$(mkdir -p "$2" && cd "$2" && pwd); STEPS=${3:-10}; NULL_STEPS=${4:-51}
cd "$HERE/../.."
. tools/env.sh
[ -x "$WORK/venv-dpl-ref/bin/python" ] || bash "$HERE/setup_reference_env.sh" "$WORK/venv-dpl-ref"
[ -f "$WORK/model/model_index.json" ] || python "$HERE/make_model.py" "$WORK/model"
[ -f "$WORK/catdog.png" ] || python "$HERE/make_model.py" "$WORK/model" --image "$WORK/catdog.png"
REF="$WORK/out/catdog"
run_ref() { (cd "$DPL" && DPL_REF_NOUNS=cat,dog PYTHONPATH="$HERE/shim" OMP_NUM_THREADS=1 "$WORK/venv-dpl-ref/bin/python" "$@"); }
[ -f "$REF/latents/catdog.pkl" ] || run_ref _2_DDIM_inv.py --input_image "$WORK/catdog.png" --results_folder "$WORK/out/" \
    --model_path "$WORK/model" --num_ddim_steps "$STEPS" --manual_prompt --prompt_str "a cat and a dog"
# Stage C reads the caption from prompt.txt, which the reference's first stage (BLIP captioning) writes; the harness
# writes the caption it gave stage B. The braced nouns' initializer tokens become placeholders in it, as in DPL.sh.
echo "a cat and a dog" > "$REF/prompt.txt"
POSTFIX=1.0_0.05_0.05_25.0_50.0_25.0_0.3_0.7_0.9_0
[ -f "$REF/embed_list_$POSTFIX/catdog_cond.pkl" ] || run_ref _3_dpl_inv.py --input_image "$WORK/catdog.png" \
    --results_folder "$REF/" --model_path "$WORK/model" --num_ddim_steps "$STEPS" --negative_guidance_scale 7.5 \
    --null_inner_steps "$NULL_STEPS" --attn_inner_steps 21 --lam_maxattn 1.0 --lam_entropy 0.05 --lam_cosine 0.05 \
    --print_freq 10 --max_iter_to_alter 0 --placeholder_token "<cat-toy>" "<dog-toy>" --initializer_token cat dog \
    --alpha_max 25.0 --alpha_ent 50.0 --alpha_cos 25.0 --beta_max 0.3 --beta_ent 0.7 --beta_cos 0.9 --loss_type max \
    --attn_res 16 --smooth_op --softmax_op --seg_dirs "$REF/sd_study/" | tee "$REF/stage_c_stdout.txt"
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 python "$HERE/compare.py" "$REF" "$WORK/model" "$WORK/catdog.png" \
    --stages "${STAGES:-B,C,D}" --edits "${EDITS:-}" --ours "$WORK/ours_stage_c.safetensors" --prompt "a {cat} and a {dog}" \
    --steps "$STEPS" --null-steps "$NULL_STEPS" --reference "$DPL" --reference-python "$WORK/venv-dpl-ref/bin/python"
