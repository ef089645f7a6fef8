"""Where an object's pixels send their cross-attention, before and after DPL: the share of each prompt token.

    python tools/attention_share.py [--model toy|FOLDER] --seed 5 --scenes 4,8 \
        [--dpl-set KEY=VALUE ...] [--out tools/toy_runs/coats_v2/attention_share_seed5.json]

(attention_share_seed5.json was made with --model tools/toy_runs/coats_v2, the shipped model's weights before they
moved into the package, and --dpl-set anchor=true at_region=objects inversion=direct lambda_bg=2: the `toy` preset.)

For each scene, the reconstruction is sampled from Direct Inversion (the words' own embeddings) and from DPL (`toy`
with the `--dpl-set` changes, as `benchmarks/edit_leakage.py` takes them) and the 16x16 cross maps of every step are
averaged over the first object's pixels: the share of each token, first and second half of the steps. In P2P's swap
those shares are what the target row is given, so a share that leaves the noun leaves the new noun too.
"""
import argparse
import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from _results import write_result  # noqa: E402
from _toymo import worker_state  # noqa: E402
from edit_leakage import dpl_settings  # noqa: E402

from dpl_nb.dpl import dpl_invert, sampled_maps  # noqa: E402
from dpl_nb.models import TOY_MODEL  # noqa: E402


def shares(bundle, scene, config, steps: int) -> dict:
    "Mean cross-attention share of each token on the first object's pixels: steps' first half, second half"
    torch.manual_seed(0)
    inversion = dpl_invert(bundle, scene.pil, scene.braced, config, num_steps=steps, progress=False)
    maps = sampled_maps(bundle, inversion)  # (T, r, r, 77)
    r = maps.shape[1]
    mask = torch.as_tensor(scene.masks[0]).float()[None, None]
    inside = F.interpolate(mask, size=(r, r), mode="area")[0, 0] > 0.5
    on_object = maps[:, inside].mean(1)  # (T, 77)
    half = steps // 2
    return {"first_half": on_object[:half].mean(0).tolist(), "second_half": on_object[half:].mean(0).tolist()}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="toy", help="toy (the embedded model) or a toy model folder")
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--scenes", required=True, help="comma-separated ToyMO-Set indices")
    parser.add_argument("--preset", default="toy")
    parser.add_argument("--dpl-set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    folder = TOY_MODEL if args.model == "toy" else Path(args.model)
    state = worker_state(args.model, str(folder / "judge"), args.seed)
    bundle, scenes = state["bundle"], state["scenes"]
    configs = {"direct": dpl_settings("lean", ["token_steps=0", "inversion=direct"]),
               "dpl": dpl_settings(args.preset, args.dpl_set)}
    records = []
    for index in (int(i) for i in args.scenes.split(",")):
        scene = scenes[index]
        tokens = bundle.tokenizer.tokenize(scene.caption)
        record = dict(scene=index, prompt=scene.braced, tokens=["<start>"] + tokens + ["<end>"])
        for name, config in configs.items():
            share = shares(bundle, scene, config, args.steps)
            n = len(record["tokens"])
            record[name] = {k: [round(x, 4) for x in v[:n]] for k, v in share.items()}
            print(index, name, [f"{k} {v:.3f}" for k, v in zip(record["tokens"], record[name]["second_half"])], flush=True)
        records.append(record)
    if args.out:
        write_result(dict(model=args.model, seed=args.seed, preset=args.preset, dpl_set=sorted(args.dpl_set),
                          steps=args.steps, scenes=records), args.out)


if __name__ == "__main__":
    main()
