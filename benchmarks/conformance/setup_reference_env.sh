#!/usr/bin/env bash
# The official DPL code's environment, in its own virtual environment: VENV (default
# benchmarks/conformance/.venv-dpl-ref). Needs the package index. The pins are its torch2.yml's, except: torch is any
# 2.x CPU build (the one this project pins), numpy < 2, and diffusers 0.19.3 instead of 0.21.0, because the code
# imports diffusers.models.cross_attention and diffusers.utils.randn_tensor, which 0.21.0 no longer has; ipython,
# which the code imports (IPython.display) and torch2.yml does not list.
set -euo pipefail
VENV=${1:-$(dirname "$0")/.venv-dpl-ref}
python3.11 -m venv "$VENV"
"$VENV/bin/pip" install -q --upgrade pip
"$VENV/bin/pip" install -q "torch==2.13.0"
"$VENV/bin/pip" install -q "numpy<2" "diffusers==0.19.3" "transformers==4.30.2" "huggingface-hub==0.16.2" \
    "accelerate==0.20.3" "scikit-learn==1.2.2" "nltk==3.7" "pillow==9.4.0" "safetensors<0.5" "matplotlib<3.9" "setuptools<70" "opencv-python-headless<4.9" "ipython<9"
"$VENV/bin/python" -c "import diffusers, transformers, torch; print('reference env:', diffusers.__version__, transformers.__version__, torch.__version__)"
