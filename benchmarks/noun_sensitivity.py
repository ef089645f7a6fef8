"""How far a swapped word moves the toy model's prediction, per noise level: why a shape swap does not take.

For the first 20 ToyMO-Set scenes (of the model's world), the first object's noun is swapped (`swap_target`: a shape
in toy world v1, a coat in v2; the key `shape` holds it either way) and, separately, its colour word
(`recolour_target`). At each of eleven noise levels the scene is noised (seeded) and
`toymodel.prediction_shift` measures the RMS move of the guided (w = 7.5) clean-image prediction inside the pixels
the edit must change; `toyworld.redraw` draws the scene and its edit on one background, which gives that region and
the size of the change the edit needs. Writes benchmarks/results/noun_sensitivity.json (atomically).

    python benchmarks/noun_sensitivity.py [--scenes 20] [--model toy|FOLDER] [--out FILE]
"""
import argparse
from pathlib import Path

import numpy as np
import torch

import dpl_nb
from _results import machine, write_result
from dpl_nb.models import load_bundle
from dpl_nb.toyworld import is_distractor, redraw
from dpl_nb.toymoset import recolour_target, swap_target, toymo_set
from dpl_nb.toymodel import bundle_world, prediction_shift

TIMESTEPS = (25, 100, 200, 300, 400, 500, 600, 700, 800, 900, 980)


def edits(scene) -> dict:
    "The two edits of the first object: target prompt and the changed attribute"
    _, new_shape, shape_prompt = swap_target(scene)
    _, _, new_colour, colour_prompt = recolour_target(scene)
    noun = dict(kind=new_shape) if scene.objects[0].kind else dict(shape=new_shape)  # v2 swaps the coat, v1 the shape
    return {"shape": (shape_prompt, noun), "colour": (colour_prompt, dict(colour=new_colour))}


def measure(bundle, index: int, scene) -> dict:
    record = {"scene": index, "distractor": is_distractor(scene), "prompt": scene.braced}
    for kind, (prompt, change) in edits(scene).items():
        before, after = redraw(scene, 0, **change)
        diff = (after.image.astype(np.float64) - before.image) / 127.5
        region = np.abs(diff).max(-1) > 10 / 127.5
        record[kind] = {"target": prompt, "region_pixels": int(region.sum()),
                        "needed": float(np.sqrt((diff[region] ** 2).mean())),
                        "shift": prediction_shift(bundle, scene, prompt, region, TIMESTEPS, seed=index).tolist()}
    return record


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scenes", type=int, default=20)
    parser.add_argument("--model", default="toy", help="toy (the embedded model) or a toy model folder")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "noun_sensitivity.json"))
    args = parser.parse_args()
    bundle = load_bundle(args.model)
    world = bundle_world(bundle)
    records = []
    for index, scene in enumerate(toymo_set(world=world)[:args.scenes]):
        records.append(measure(bundle, index, scene))
        r = records[-1]
        print(f"scene {index:2d}: shape {np.round(r['shape']['shift'], 3)} (needs {r['shape']['needed']:.2f}) "
              f"colour {np.round(r['colour']['shift'], 3)} (needs {r['colour']['needed']:.2f})", flush=True)
    result = {"benchmark": "noun_sensitivity", "model": bundle.model_id, "world": world, "scenes": len(records), "guidance_scale": 7.5,
              "timesteps": list(TIMESTEPS)}
    for kind in ("shape", "colour"):
        shift = np.mean([r[kind]["shift"] for r in records], 0)
        needed = float(np.mean([r[kind]["needed"] for r in records]))
        result[kind] = {"shift": shift.tolist(), "needed": needed, "reaches_needed": int((shift >= needed).sum())}
    result.update(records=records, dpl_nb=dpl_nb.__version__, torch=torch.__version__, machine=machine())
    print(f"wrote {write_result(result, args.out)}")


if __name__ == "__main__":
    main()
