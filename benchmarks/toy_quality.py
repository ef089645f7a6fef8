"""Quality of the shipped toy model: noun-map IoU and pointing, attention shares, sample colours, judge accuracy.

Seeded, CPU, a few minutes. Writes benchmarks/results/toy_quality.json.
Targets: noun_iou >= 0.50, noun_pointing >= 0.75, sample_colour_ok >= 0.90, judge_accuracy >= 0.95,
noun_iou_distractor clearly below noun_iou_ordinary, noun_contrast >= 3 and noun_dominance >= 0.8 (nouns win their objects).

    python benchmarks/toy_quality.py
"""
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

import dpl_nb
from _results import write_result
from dpl_nb.models import load_bundle
from dpl_nb.toyworld import COLOURS, random_scene
from dpl_nb.toymoset import toymo_set
from dpl_nb.toymodel import colours_present, sample_images, toy_metadata
from dpl_nb.toymaps import attention_shares, map_quality, noun_maps
from dpl_nb.toyjudge import judge_accuracy, load_judge


def main(out=Path(__file__).parent / "results" / "toy_quality.json", n_samples: int = 48):
    start = time.perf_counter()
    toy = load_bundle("toy")
    scenes = toymo_set()
    quality = map_quality(noun_maps(toy, scenes), scenes)
    shares = attention_shares(toy, scenes)
    rng = np.random.default_rng(2024)
    prompts = []
    while len(prompts) < n_samples:  # prompts that name every colour, 1-2 objects
        scene = random_scene(rng, n_objects=int(rng.integers(1, 3)), p_colour_words=1.0)
        prompts.append(scene.caption)
    images = sample_images(toy, prompts, steps=50, guidance=5.0, seed=0, progress=False)
    ok = [all(colours_present(im, c) for c in COLOURS if f" {c} " in f" {p} ") for p, im in zip(prompts, images)]
    judge = judge_accuracy(load_judge())
    meta = toy_metadata()
    result = {
        "benchmark": "toy_quality", **{k: quality[k] for k in quality},
        **{f"attention_{k}" if k in ("start", "words", "tail") else k: v for k, v in shares.items()},
        "sample_colour_ok": float(np.mean(ok)), "samples": len(prompts), "sample_steps": 50, "sample_guidance": 5.0,
        "judge_accuracy": judge["both"], "judge_shape_accuracy": judge["shape"], "judge_colour_accuracy": judge["colour"],
        "judge_crops": judge["crops"],
        "targets": {"noun_iou": 0.50, "noun_pointing": 0.75, "sample_colour_ok": 0.90, "judge_accuracy": 0.95,
                    "noun_contrast": 3.0, "noun_dominance": 0.8},
        "model_step": meta["step"], "toymo_sha256": meta["toymo_sha256"], "seconds": time.perf_counter() - start,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs", "torch": torch.__version__, "dpl_nb": dpl_nb.__version__,
    }
    write_result(result, out)
    print(json.dumps({k: v for k, v in result.items() if not isinstance(v, dict)}, indent=1))


if __name__ == "__main__":
    main()
