"""How well a toy model's noun maps tell look-alike objects apart, before any optimisation.

For the first N look-alike scenes of a held-out ToyMO-Set, DDIM-invert under the braced prompt (`find_background`,
DPL's first phase, with the `lean` preset's clustering) and report per scene: each noun's share of its mean cross map on
its own object, on the other object and on the background, and whether `anchor_regions` gives each noun a piece of its
own object. A cheap proxy (50 UNet evaluations a scene) used to choose where to train the toy model next: NTI leaks
when the own and other shares are close; DPL's anchor can only break the tie the right way when `anchor_ok` is high.

    python tools/map_check.py MODEL_DIR [MODEL_DIR ...] [--seed 5] [--scenes 40] [--out FILE.json]
"""
import argparse
import json
from pathlib import Path

import numpy as np
import torch

from dpl_nb.background import anchor_regions, find_background
from dpl_nb.dpl import DPL_PRESETS
from dpl_nb.metrics import map_mass, object_regions
from dpl_nb.models import load_bundle
from dpl_nb.prompts import parse_prompt
from dpl_nb.toymodel import bundle_world
from dpl_nb.toymoset import toymo_set
from dpl_nb.toyworld import is_distractor


def scene_record(bundle, scene, config) -> dict:
    "Map shares and anchor verdicts of one scene"
    parsed = parse_prompt(scene.braced, bundle.tokenizer)
    masks, _, found = find_background(bundle, scene.pil, scene.braced, 50, config.clusters,
                                      config.cluster_threshold, config.cluster_seed, None, False)
    mass = map_mass(found.cross[None], parsed.positions, scene.masks)  # (nouns, objects + 1)
    regions = anchor_regions(masks, found.cross, parsed.by_word)
    r = found.cross.shape[0]
    objects = object_regions(scene.masks, r, background=False)
    anchor = [[float((regions[w.word].float() * o).sum()) for o in objects] for w in parsed.words]
    # where LocalBlend would paint: the noun's map over 0.3 of its peak; the share of the other object it covers
    peaked = [(m / m.max() > 0.3).float() for m in (found.cross[..., p].mean(-1) for p in parsed.positions)]
    blend_other = [float((peaked[k] * objects[1 - k]).sum() / objects[1 - k].sum()) for k in range(2)]
    return dict(own=[float(mass[k, k]) for k in range(2)], other=[float(mass[k, 1 - k]) for k in range(2)],
                background=[float(mass[k, -1]) for k in range(2)], blend_other=blend_other,
                maps_ok=bool(all(mass[k, k] > mass[k, 1 - k] for k in range(2))),
                anchor_ok=bool(all(a[k] > a[1 - k] for k, a in enumerate(anchor))))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("models", nargs="+")
    parser.add_argument("--seed", type=int, default=5, help="ToyMO-Set seed (held out: not 2023 nor 11)")
    parser.add_argument("--scenes", type=int, default=40, help="the first N look-alike scenes")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(1)
    config, report = DPL_PRESETS["lean"], {}
    for model in args.models:
        bundle = load_bundle(model)
        scenes = [s for s in toymo_set(seed=args.seed, world=bundle_world(bundle)) if is_distractor(s)][:args.scenes]
        torch.manual_seed(0)
        rows = [scene_record(bundle, s, config) for s in scenes]
        report[model] = dict(
            own=float(np.mean([r["own"] for r in rows])), other=float(np.mean([r["other"] for r in rows])),
            background=float(np.mean([r["background"] for r in rows])),
            blend_other=float(np.mean([r["blend_other"] for r in rows])),
            blend_leaks=float(np.mean([max(r["blend_other"]) > 0.25 for r in rows])),
            maps_ok=float(np.mean([r["maps_ok"] for r in rows])),
            anchor_ok=float(np.mean([r["anchor_ok"] for r in rows])), scenes=rows)
        print(model, {k: round(v, 3) for k, v in report[model].items() if k != "scenes"}, flush=True)
    if args.out:
        args.out.write_text(json.dumps(dict(seed=args.seed, scenes=args.scenes, models=report), indent=1))


if __name__ == "__main__":
    main()
