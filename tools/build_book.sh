#!/usr/bin/env bash
# Build the Jupyter Book into _build/html, executing every chapter; any warning or cell error fails the build.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/vendor_assets.sh
rm -rf _build/html _build/.doctrees
jupyter-book build . -W -n --keep-going
echo "book: file://$PWD/_build/html/index.html"
