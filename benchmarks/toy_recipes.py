"""Compare toy-model training recipes by their noun maps: with colour words, with shape words only, on look-alikes.

Each argument is LABEL=FOLDER, a toy model folder as `train_toy.py` ships it (or a snapshot folder). For each model:
its training config, and on the validation set (60 scenes, seed 7) and on ToyMO-Set: noun IoU and pointing with the
usual captions, pointing with shape words only (`without_colours`), split by ordinary and look-alike scenes.
Seeded, CPU, about 15 s a model. Writes benchmarks/results/toy_recipes.json.

    python benchmarks/toy_recipes.py shipped=dpl_nb/assets/toy cpu_batch32=/path/to/step_002000 ...
"""
import argparse
import json
import platform
import time
from dataclasses import asdict
from pathlib import Path

import torch

import dpl_nb
from _results import write_result
from dpl_nb.models import load_bundle
from dpl_nb.toyworld import is_distractor, without_colours
from dpl_nb.toymoset import toymo_set
from dpl_nb.toytrain import ToyTrainConfig
from dpl_nb.toymaps import map_quality, noun_maps

CONFIG_KEYS = ("steps", "batch_size", "p_colour_words", "channels", "layers_per_block", "object_attention", "seed")


def score(bundle, scenes) -> dict:
    "Noun-map IoU and pointing with colour words, pointing with shape words only, overall and per case"
    usual = map_quality(noun_maps(bundle, scenes), scenes)
    shape_words = [without_colours(s) for s in scenes]
    bare = map_quality(noun_maps(bundle, shape_words), shape_words)
    out = {k: usual[k] for k in ("noun_iou", "noun_iou_ordinary", "noun_iou_distractor", "noun_pointing",
                                 "noun_pointing_ordinary", "noun_pointing_distractor")}
    out.update({k.replace("noun_", "shape_words_"): bare[k] for k in ("noun_iou", "noun_pointing", "noun_pointing_ordinary",
                                                                       "noun_pointing_distractor")})
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("models", nargs="+", help="LABEL=FOLDER")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "toy_recipes.json"))
    args = parser.parse_args()
    start = time.perf_counter()
    validation, toymo = toymo_set(seed=7, n=60), toymo_set()
    assert sum(map(is_distractor, toymo)) == 40
    defaults = json.loads(json.dumps(asdict(ToyTrainConfig())))  # runs older than a config field had its default
    models = {}
    for spec in args.models:
        label, folder = spec.split("=", 1)
        meta = json.loads((Path(folder) / "dpl_nb.json").read_text())
        bundle = load_bundle(folder)
        models[label] = {"config": {k: meta["config"].get(k, defaults[k]) for k in CONFIG_KEYS}, "step": meta["step"],
                         "trained": meta.get("trained", {}).get("machine"),
                         "validation": score(bundle, validation), "toymo": score(bundle, toymo)}
        v = models[label]["validation"]
        print(f"{label}: validation IoU {v['noun_iou']:.3f}, pointing {v['noun_pointing']:.3f}, "
              f"shape words only {v['shape_words_pointing']:.3f}", flush=True)
    write_result({"benchmark": "toy_recipes", "models": models, "seconds": time.perf_counter() - start,
                  "machine": f"{platform.machine()}, {torch.get_num_threads()} threads", "torch": torch.__version__,
                  "dpl_nb": dpl_nb.__version__}, args.out)


if __name__ == "__main__":
    main()
