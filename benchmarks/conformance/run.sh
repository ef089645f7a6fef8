#!/usr/bin/env bash
# The whole conformance harness, one command:
#   bash benchmarks/conformance/run.sh DPL_CHECKOUT PTP_CHECKOUT WORK [STEPS]
# DPL_CHECKOUT: a checkout of github.com/wangkai930418/DPL; PTP_CHECKOUT: one of github.com/google/prompt-to-prompt;
# WORK: a scratch folder (both references' environments, the model, their outputs). Needs the package index for the
# two pinned environments. Runs run_reference.sh (the official DPL code: stages B, C, D) and run_ptp_reference.sh
# (google's null-text notebook: stage N), which write benchmarks/results/conformance.json. STEPS: denoising steps
# (default 10). On one core the DPL stages take hours (stage C: about 12 minutes a step), stage N about an hour.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
bash "$HERE/run_reference.sh" "$1" "$3" "${4:-10}"
bash "$HERE/run_ptp_reference.sh" "$2" "$3" "${4:-10}"
