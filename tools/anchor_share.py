"""Does each word's anchor region lie on its own object? `anchor_regions` by share (the rule) against by amount.

For ToyMO-Set scenes of the given seeds (the first 40 look-alike and 60 ordinary, at most), runs chapter 6's
`find_background` with the `toy` preset's cluster settings, then `anchor_regions` both ways, and calls each word's
region `ok` when it covers more of the word's own object than of the other (at the loss resolution), `wrong` when it
covers more of the other, `none` when it covers neither. Writes tools/toy_runs/coats_v2/anchor_share.json.

    python tools/anchor_share.py [--seeds 7,5,3,2023,11] [--distractor 40] [--ordinary 60]
"""
import argparse
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from _results import write_result  # noqa: E402
from edit_leakage import chosen_scenes  # noqa: E402
from dpl_nb.background import anchor_regions, find_background  # noqa: E402
from dpl_nb.dpl import DPL_PRESETS  # noqa: E402
from dpl_nb.models import load_bundle  # noqa: E402
from dpl_nb.prompts import parse_prompt  # noqa: E402


def verdicts(regions: dict, masks: np.ndarray) -> list[str]:
    "ok / wrong / none for each word's region against the objects' masks (two objects)"
    out = []
    for k, region in enumerate(regions.values()):
        share = F.interpolate(torch.from_numpy(masks.astype(np.float32))[None], size=region.shape,
                              mode="area")[0].numpy()
        own, other = (region.numpy() * share[k]).sum(), (region.numpy() * share[1 - k]).sum()
        out.append("none" if own == other == 0 else "ok" if own > other else "wrong")
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", default="7,5,3,2023,11")
    parser.add_argument("--distractor", type=int, default=40)
    parser.add_argument("--ordinary", type=int, default=60)
    args = parser.parse_args()
    torch.set_num_threads(1)
    bundle, config = load_bundle("toy"), DPL_PRESETS["toy"]
    seeds = {}
    for seed in [int(s) for s in args.seeds.split(",")]:
        rows = []
        for index, scene in chosen_scenes("coats", seed, args.distractor, args.ordinary):
            masks, _, found = find_background(bundle, scene.pil, scene.braced, 50, config.clusters,
                                              config.cluster_threshold, config.cluster_seed, None, False)
            nouns = parse_prompt(scene.braced, bundle.tokenizer).by_word
            rows.append(dict(scene=index, prompt=scene.braced,
                             **{by: verdicts(anchor_regions(masks, found.cross, nouns, by=by), scene.masks)
                                for by in ("share", "amount")}))
        count = lambda by: sum("wrong" in r[by] for r in rows)
        seeds[seed] = dict(scenes=len(rows), wrong_share=count("share"), wrong_amount=count("amount"),
                           differ=[r["scene"] for r in rows if r["share"] != r["amount"]],
                           wrong=[r for r in rows if "wrong" in r["share"] + r["amount"]])
        print(seed, {k: v for k, v in seeds[seed].items() if k != "wrong"}, flush=True)
    out = ROOT / "tools" / "toy_runs" / "coats_v2" / "anchor_share.json"
    write_result({"note": __doc__.split("\n\n")[1].replace("\n", " "), "benchmark_seeds": [2023, 11],
                  "seeds": seeds}, out)
    print(f"-> {out}")


if __name__ == "__main__":
    main()
