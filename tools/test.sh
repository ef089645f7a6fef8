#!/usr/bin/env bash
# The whole test suite, from a fresh clone: install, notebooks-vs-library sync, notebook tests, pytest, book build.
set -euo pipefail
cd "$(dirname "$0")/.."
. tools/env.sh
echo "== 1/4 sync check (nbdev_clean + nbdev_export leave nbs/ and dpl_nb/ unchanged)"
bash tools/check_sync.sh
echo "== 2/4 notebook tests (nbdev_test: two notebooks at a time, one torch thread each)"
# Two torch processes with two threads each on two cores spin against each other: a UNet loop measured here ran
# 20x slower than with one thread each (1.9 s vs 39 s), which is how CI once ran out of time in this step.
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 timeout 1800 nbdev_test --n_workers 2 --timing
echo "== 3/4 package tests (pytest tests)"
python -m pytest -q -p no:cacheprovider tests
echo "== 4/4 book build (jupyter-book, executes every chapter, warnings are errors)"
bash tools/build_book.sh
echo "   the reader's check: no raw TeX, uncaptioned figures, lines over 100 characters, progress bars or stderr"
python tools/check_book.py _build/html --summary --fail-on tex,captions,width,progress,stderr
echo "all checks passed"
