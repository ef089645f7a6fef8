"Shared by the ToyMO-Set benchmarks: which scenes, which word swap, and PSNR outside an object's mask."
import math
import statistics

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from dpl_nb.toyworld import SHAPES, SIMILAR, Scene, is_distractor, toymo_set


def benchmark_scenes(n: int) -> list[tuple[int, Scene]]:
    "The first `n` ToyMO-Set scenes with their index (ToyMO-Set puts 2 distractor scenes in every 5)"
    return list(enumerate(toymo_set()[:n]))


def balanced_scenes(n: int) -> list[tuple[int, Scene]]:
    "`n` ToyMO-Set scenes with their index: the first ceil(n/2) distractor scenes and the first floor(n/2) others"
    scenes = list(enumerate(toymo_set()))
    hard = [(i, s) for i, s in scenes if is_distractor(s)][:(n + 1) // 2]
    easy = [(i, s) for i, s in scenes if not is_distractor(s)][:n // 2]
    return sorted(hard + easy, key=lambda pair: pair[0])


def reference_iou(word_map: torch.Tensor, mask: np.ndarray, thresholds) -> np.ndarray:
    """IoU of one word map `(r, r)` with a bool `mask` at each threshold, the reference code's protocol: scaled to
    0-255 by its max, resized bicubically to 256x256 and then to the mask's size, divided by its max, `map > th`"""
    m = word_map.detach().float().cpu().numpy()
    m = (m / max(m.max(), 1e-12) * 255).astype(np.uint8)
    picture = Image.fromarray(m).resize((256, 256), Image.BICUBIC).resize(mask.shape[::-1], Image.BICUBIC)
    a = np.asarray(picture, dtype=np.float64)
    a = a / max(a.max(), 1e-12)
    binary = a[None] > np.asarray(thresholds, dtype=np.float64)[:, None, None]
    return (binary & mask).sum((1, 2)) / np.maximum((binary | mask).sum((1, 2)), 1)


def swap_target(scene: Scene) -> tuple[str, str, str]:
    "Word swap of the first object: (old shape, new shape, target prompt); the new shape is neither in the scene nor similar"
    old, other = scene.objects[0].shape, scene.objects[1].shape
    new = next(s for s in SHAPES[SHAPES.index(old) + 1:] + SHAPES
               if s not in (old, other, SIMILAR.get(old), SIMILAR.get(other)))
    return old, new, scene.braced.replace("{" + old + "}", "{" + new + "}", 1)


def dilated_mask(mask: np.ndarray, pixels: int = 1) -> np.ndarray:
    "`mask` grown by `pixels` in every direction (max-pool)"
    m = torch.from_numpy(mask).float()[None, None]
    return (F.max_pool2d(m, 2 * pixels + 1, 1, padding=pixels)[0, 0] > 0).numpy()


def psnr_outside(image, reference, region: np.ndarray) -> float | None:
    "PSNR (dB, 8-bit images) over the pixels outside `region`; None when they are identical"
    a, b = (np.asarray(i, dtype=np.float64) / 255 for i in (image, reference))
    mse = float(((a - b) ** 2)[~region].mean())
    return None if mse == 0 else 10 * math.log10(1 / mse)


def summary(values: list) -> dict:
    "Mean, median, min and max of the values that are not None"
    values = [v for v in values if v is not None]
    return dict(mean=statistics.fmean(values), median=statistics.median(values), min=min(values), max=max(values))

