#!/usr/bin/env bash
# Conformance with google/prompt-to-prompt's null-text notebook (null_text_w_ptp.ipynb): null-text inversion and
# Prompt-to-Prompt edits (word swap, local blend, reweighting, refinement), the notebook against dpl_nb:
#   bash benchmarks/conformance/run_ptp_reference.sh PTP_CHECKOUT WORK [STEPS]
# PTP_CHECKOUT: a checkout of github.com/google/prompt-to-prompt (its notebook is read there, never copied); WORK: a
# scratch folder (the same one run_reference.sh uses shares its model). Makes the notebook's environment
# (setup_ptp_env.sh, needs the package index) and the random-weight model (make_model.py) with a copy of its weights
# in the .bin files diffusers 0.9 reads; runs ptp_reference.py there (STEPS denoising steps, default 10), then
# stage_n.py, which runs dpl_nb with the same settings and adds the `nti_*` quantities to
# benchmarks/results/conformance.json. The reference's record, WORK/ptp_reference_STEPS.pt, is written after each of its
# parts; a rerun goes on from there (delete it to redo the reference's run). On one core the reference takes about an
# hour at 10 steps, several at 50; dpl_nb's side a few minutes.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
PTP=$(cd "$1" && pwd); WORK=$(mkdir -p "$2" && cd "$2" && pwd); STEPS=${3:-10}
cd "$HERE/../.."
. tools/env.sh
[ -x "$WORK/venv-ptp-ref/bin/python" ] || bash "$HERE/setup_ptp_env.sh" "$WORK/venv-ptp-ref"
[ -f "$WORK/model/model_index.json" ] || python "$HERE/make_model.py" "$WORK/model"
[ -f "$WORK/model-bin/model_index.json" ] || python "$HERE/make_model.py" "$WORK/model" --bin-copy "$WORK/model-bin"
[ -f "$WORK/catdog.png" ] || python "$HERE/make_model.py" "$WORK/model" --image "$WORK/catdog.png"
PROMPT="a cat and a dog"
RECORD="$WORK/ptp_reference_$STEPS.pt"
OMP_NUM_THREADS=1 "$WORK/venv-ptp-ref/bin/python" "$HERE/ptp_reference.py" "$PTP" "$WORK/model-bin" "$WORK/catdog.png" \
    "$RECORD" --prompt "$PROMPT" --swap tiger --adjective red --steps "$STEPS"
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 python "$HERE/stage_n.py" "$RECORD" "$WORK/model" "$WORK/catdog.png" \
    --prompt "$PROMPT" --reference "$PTP"
