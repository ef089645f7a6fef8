#!/usr/bin/env bash
# Build the Jupyter Book into _build/html, executing every chapter; any warning or cell error fails the build.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/vendor_assets.sh
rm -rf _build/html _build/.doctrees _build/.jupyter_cache
# the book shows results, not the loading bars of transformers and huggingface_hub
export HF_HUB_DISABLE_PROGRESS_BARS=1
# Execute every page first, one per core with one torch thread each (one kernel at a time with two threads made
# the whole build about 1.4 times as long on 2 cores), into the jupyter-cache that the build reads
# (`execute_notebooks: cache` in _config.yml). The cache starts empty, so every output comes from this build's code.
# A page whose execution fails stops the build here, with the failing cell's traceback.
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 python tools/execute_book.py
jupyter-book build . -W -n --keep-going
echo "book: file://$PWD/_build/html/index.html"
