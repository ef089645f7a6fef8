#!/usr/bin/env bash
# Notebooks are the source: clean them, export the library, and fail if anything under nbs/ or dpl_nb/ changed.
set -euo pipefail
cd "$(dirname "$0")/.."
nbdev_clean
nbdev_export
changes="$(git status --porcelain --untracked-files=all -- nbs dpl_nb)"
if [ -n "$changes" ]; then
  echo "ERROR: notebooks and dpl_nb/ are out of sync (or notebooks are not clean). Run: nbdev_clean && nbdev_export, then commit."
  echo "$changes"
  exit 1
fi
echo "sync check: notebooks and library agree"
