"Shared by the ToyMO-Set benchmarks: which scenes, PSNR outside an object's mask, summaries, a worker's state."
import math
import statistics

import numpy as np

from dpl_nb.metrics import psnr
from dpl_nb.toyworld import Scene, is_distractor
from dpl_nb.toymoset import toymo_set


def benchmark_scenes(n: int) -> list[tuple[int, Scene]]:
    "The first `n` ToyMO-Set scenes with their index (ToyMO-Set puts 2 distractor scenes in every 5)"
    return list(enumerate(toymo_set()[:n]))


def balanced_scenes(n: int, scenes: list[Scene] | None = None) -> list[tuple[int, Scene]]:
    "`n` of `scenes` (default ToyMO-Set) with their index: the first ceil(n/2) distractor scenes and the first floor(n/2) others"
    scenes = list(enumerate(toymo_set() if scenes is None else scenes))
    hard = [(i, s) for i, s in scenes if is_distractor(s)][:(n + 1) // 2]
    easy = [(i, s) for i, s in scenes if not is_distractor(s)][:n // 2]
    return sorted(hard + easy, key=lambda pair: pair[0])


def json_psnr(image, reference, mask: np.ndarray | None = None) -> float | None:
    "PSNR (dB) of `image` against `reference` over `mask` (None: all); None when identical (JSON has no inf)"
    value = psnr(image, reference, mask=mask)
    return None if math.isinf(value) else float(value)


def psnr_outside(image, reference, region: np.ndarray) -> float | None:
    "PSNR (dB) of `image` against `reference` outside `region`; None when identical there"
    return json_psnr(image, reference, ~region)


def summary(values: list) -> dict:
    "Mean, median, min and max of the values that are not None"
    values = [v for v in values if v is not None]
    return dict(mean=statistics.fmean(values), median=statistics.median(values), min=min(values), max=max(values))




_WORKER = {}


def worker_state(model: str, judge: str, seed: int = 2023) -> dict:
    "A benchmark process's model, judge and ToyMO-Set scenes (of the model's world), loaded once; one torch thread"
    import torch
    from dpl_nb.models import load_bundle
    from dpl_nb.toyjudge import load_judge
    from dpl_nb.toymodel import bundle_world
    if not _WORKER:
        torch.set_num_threads(1)
        bundle = load_bundle(model)
        world = bundle_world(bundle)
        _WORKER.update(bundle=bundle, judge=load_judge(judge), world=world, scenes=toymo_set(seed=seed, world=world))
    return _WORKER
