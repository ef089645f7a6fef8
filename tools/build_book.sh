#!/usr/bin/env bash
# Build the Jupyter Book into _build/html, executing every chapter; any warning or cell error fails the build.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/vendor_assets.sh
rm -rf _build/html _build/.doctrees
# the book shows results, not the loading bars of transformers and huggingface_hub
export HF_HUB_DISABLE_PROGRESS_BARS=1
jupyter-book build . -W -n --keep-going
echo "book: file://$PWD/_build/html/index.html"
