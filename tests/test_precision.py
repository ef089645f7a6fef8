"Half precision: null-text inversion and DPL on a model in fp16 or bf16 stay finite and reconstruct about as well as fp32."
import dataclasses
import warnings

import pytest
import torch

from dpl_nb.dpl import DPL_PRESETS, dpl_invert
from dpl_nb.inversion import NTIConfig, invert, reconstruct
from tiny_scenes import PROMPT, damped_tiny_bundle, shapes_picture

STEPS = 4
NTI = NTIConfig(inner_steps=4)
DPL = dataclasses.replace(DPL_PRESETS["lean"], token_steps=3, nti=NTI)
FACTOR = 1.5  # a half-precision reconstruction's error may exceed fp32's by this factor, plus the rounding floor below
FLOOR = {torch.float16: 1e-5, torch.bfloat16: 3e-4}  # MSE of rounding unit-sized latents to 10 / 7 mantissa bits, with margin


def _error(bundle, inversion) -> float:
    return torch.mean((reconstruct(bundle, inversion, progress=False) - inversion.latents[0]) ** 2).item()


def _runs(bundle):
    picture = shapes_picture(bundle.image_size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the background fallback may warn on a random model
        return {"nti": invert(bundle, picture, PROMPT, num_steps=STEPS, nti=NTI, progress=False),
                "dpl": dpl_invert(bundle, picture, PROMPT, DPL, num_steps=STEPS, progress=False)}


@pytest.fixture(scope="module")
def full():
    bundle = damped_tiny_bundle()
    return {k: _error(bundle, inv) for k, inv in _runs(bundle).items()}


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["fp16", "bf16"])
def test_nti_and_dpl_in_half_precision(full, dtype):
    with pytest.warns(UserWarning, match="runs many times slower"):  # half precision on a CPU says so
        half = damped_tiny_bundle.__wrapped__().to(dtype=dtype)  # a fresh copy: the cached fp32 bundle stays fp32
    for method, inversion in _runs(half).items():
        for name in ("latents", "null_embeddings") + (("token_embeddings",) if method == "dpl" else ()):
            tensor = getattr(inversion, name)
            assert tensor.dtype == torch.float32, (method, name, tensor.dtype)  # fp32 master copies
            assert torch.isfinite(tensor).all(), (method, name)
        error = _error(half, inversion)
        assert error <= FACTOR * full[method] + FLOOR[dtype], (method, error, full[method])
