"Helpers the benchmark scripts share: the machine a record names, and PSNR values JSON can hold."
import os
import platform
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from _results import machine  # noqa: E402
from _toymo import json_psnr, psnr_outside  # noqa: E402


def test_machine_names_the_cpu_and_torchs_simd_level():
    name = machine()
    assert name.startswith(f"{platform.machine()}, {os.cpu_count()} CPUs, ")
    assert name.endswith(f", {torch.backends.cpu.get_cpu_capability()}")
    assert len(name.split(", ")) >= 4  # architecture, cores, CPU model, SIMD level


def test_psnr_is_none_where_identical_and_a_float_elsewhere():
    image = np.zeros((8, 8, 3), np.uint8)
    changed = image.copy()
    changed[:2] = 255  # the top two rows differ
    region = np.zeros((8, 8), bool)
    region[:2] = True
    assert json_psnr(image, image) is None
    assert psnr_outside(changed, image, region) is None  # identical outside the changed rows
    value = json_psnr(changed, image)
    assert isinstance(value, float) and abs(value - 10 * np.log10(4)) < 1e-6  # MSE 1/4 of the range
