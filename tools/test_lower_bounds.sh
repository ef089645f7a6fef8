#!/usr/bin/env bash
# Run the test suite against the lowest diffusers/transformers that settings.ini allows (tools/constraints-lower.txt),
# in a venv of its own (default .venv-lower; DPL_NB_LOWER_VENV overrides). Usage: bash tools/test_lower_bounds.sh [pytest args]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${DPL_NB_LOWER_VENV:-$root/.venv-lower}"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
. "$venv/bin/activate"
python -c "import torch" 2>/dev/null || python -m pip install -q --disable-pip-version-check torch==2.13.0
python -m pip install -q --disable-pip-version-check -c "$root/tools/constraints-lower.txt" -e "$root" pytest fastcore
python -c "import diffusers, transformers; print('diffusers', diffusers.__version__, '| transformers', transformers.__version__)"
cd "$root" && HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false python -m pytest -q -p no:cacheprovider "${@:-tests}"
