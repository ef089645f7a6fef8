#!/usr/bin/env bash
# The main job. Until the `dpl_nb demo` command exists, it builds the book, which runs every chapter end to end.
set -euo pipefail
cd "$(dirname "$0")/.."
. tools/env.sh
bash tools/build_book.sh
