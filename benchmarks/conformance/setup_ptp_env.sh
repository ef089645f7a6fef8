#!/usr/bin/env bash
# google/prompt-to-prompt's null-text notebook's environment, in its own virtual environment: VENV (default
# benchmarks/conformance/.venv-ptp-ref). Needs the package index. The notebook (2022-12-04) hooks diffusers'
# `CrossAttention` through `forward(x, context=None, mask=None)` and `reshape_heads_to_batch_dim`, which diffusers
# had up to 0.9 (0.10 renamed `context` to `encoder_hidden_states`): diffusers 0.9.0, with the transformers and
# huggingface-hub of that month; torch is any 2.x CPU build (the one this project pins), numpy < 2; opencv and ipython
# because ptp_utils imports cv2 and IPython.display.
set -euo pipefail
VENV=${1:-$(dirname "$0")/.venv-ptp-ref}
python3.11 -m venv "$VENV"
"$VENV/bin/pip" install -q --upgrade pip
"$VENV/bin/pip" install -q "torch==2.13.0"
"$VENV/bin/pip" install -q "numpy<2" "diffusers==0.9.0" "transformers==4.25.1" "huggingface-hub==0.11.1" \
    "pillow<10" "safetensors<0.5" "setuptools<70" "opencv-python-headless<4.9" "ipython<9" "tqdm"
"$VENV/bin/python" -c "import diffusers, transformers, torch; print('prompt-to-prompt env:', diffusers.__version__, transformers.__version__, torch.__version__)"
