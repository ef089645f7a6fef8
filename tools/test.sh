#!/usr/bin/env bash
# The whole test suite, from a fresh clone: install, notebooks-vs-library sync, pytest, notebook tests, book build.
set -euo pipefail
cd "$(dirname "$0")/.."
. tools/env.sh
echo "== 1/4 sync check (nbdev_clean + nbdev_export leave nbs/ and dpl_nb/ unchanged)"
bash tools/check_sync.sh
echo "== 2/4 package tests (pytest tests)"
# one pytest worker per core (pytest-xdist), each on one thread: the tests are many small torch
# programs, which two threads per process do not speed up
OMP_NUM_THREADS=1 python -m pytest -q -p no:cacheprovider -n auto tests
echo "== 3/4 notebook tests and book build (every chapter executed once, one per core; warnings are errors)"
# tools/execute_book.py executes each page with the cells nbdev_test would run (it checks that the `#| notest` flags
# and the book's skip-execution tags agree), stops with the traceback of any failing cell, and the book is built from
# those outputs: one execution serves both, where nbdev_test followed by the book executed every chapter twice.
# `nbdev_test` on its own still runs the same cells for a single notebook while writing one.
bash tools/build_book.sh
echo "== 4/4 the reader's check: no raw TeX, uncaptioned figures, lines over 100 characters, progress bars or stderr"
python tools/check_book.py _build/html --summary --fail-on tex,captions,width,progress,stderr
echo "all checks passed"
