#!/usr/bin/env bash
# The main job: install into .venv (first run only), then `dpl_nb demo` on the embedded toy model: invert a ToyMO-Set
# scene with null-text inversion and with DPL, edit both, and write demo.png + demo.json (default: ./dpl_nb_demo).
# Extra arguments go to `dpl_nb demo` (see `dpl_nb demo --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
. tools/env.sh
dpl_nb demo "$@"
