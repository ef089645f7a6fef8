# Source me: creates (once) and activates the project venv with torch and dpl_nb[dev] installed.
# DPL_NB_VENV overrides the venv folder (default .venv in the repository).
set -e
_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
_venv="${DPL_NB_VENV:-$_root/.venv}"
if [ ! -x "$_venv/bin/python" ]; then
  echo "== creating $_venv"
  python3 -m venv "$_venv"
fi
. "$_venv/bin/activate"
# torch first, and pinned: a bare "torch" requirement on a machine without torch pulls GBs of CUDA packages.
if ! python -c "import torch" 2>/dev/null; then
  echo "== installing torch==2.13.0"
  python -m pip install -q --disable-pip-version-check torch==2.13.0
fi
_want="$(cat "$_root/settings.ini" "$_root/setup.py" "$_root/tools/constraints.txt" | sha256sum | cut -c1-16)"
if [ "$(cat "$_venv/.dpl_nb_stamp" 2>/dev/null)" != "$_want" ] || ! python -c "import dpl_nb" 2>/dev/null; then
  echo "== installing dpl_nb[dev] (editable) and its dependencies"
  (cd "$_root" && python -m pip install -q --disable-pip-version-check -c tools/constraints.txt -e ".[dev]")
  echo "$_want" > "$_venv/.dpl_nb_stamp"
fi
export HF_HUB_OFFLINE=1   # nothing in the book or the tests may reach a model hub
export TOKENIZERS_PARALLELISM=false
unset _root _venv _want
