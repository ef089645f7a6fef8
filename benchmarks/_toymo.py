"Shared by the ToyMO-Set benchmarks: which scenes, which word swap, and PSNR outside an object's mask."
import math
import statistics

import numpy as np
import torch
import torch.nn.functional as F

from dpl_nb.metrics import psnr
from dpl_nb.toyworld import Scene, is_distractor, swap_target, toymo_set  # noqa: F401 (swap_target: re-exported)


def benchmark_scenes(n: int) -> list[tuple[int, Scene]]:
    "The first `n` ToyMO-Set scenes with their index (ToyMO-Set puts 2 distractor scenes in every 5)"
    return list(enumerate(toymo_set()[:n]))


def balanced_scenes(n: int) -> list[tuple[int, Scene]]:
    "`n` ToyMO-Set scenes with their index: the first ceil(n/2) distractor scenes and the first floor(n/2) others"
    scenes = list(enumerate(toymo_set()))
    hard = [(i, s) for i, s in scenes if is_distractor(s)][:(n + 1) // 2]
    easy = [(i, s) for i, s in scenes if not is_distractor(s)][:n // 2]
    return sorted(hard + easy, key=lambda pair: pair[0])


def dilated_mask(mask: np.ndarray, pixels: int = 1) -> np.ndarray:
    "`mask` grown by `pixels` in every direction (max-pool)"
    m = torch.from_numpy(mask).float()[None, None]
    return (F.max_pool2d(m, 2 * pixels + 1, 1, padding=pixels)[0, 0] > 0).numpy()


def psnr_outside(image, reference, region: np.ndarray) -> float | None:
    "PSNR (dB) of `image` against `reference` outside `region`; None when identical there (JSON has no inf)"
    value = psnr(image, reference, mask=~region)
    return None if math.isinf(value) else value


def summary(values: list) -> dict:
    "Mean, median, min and max of the values that are not None"
    values = [v for v in values if v is not None]
    return dict(mean=statistics.fmean(values), median=statistics.median(values), min=min(values), max=max(values))

