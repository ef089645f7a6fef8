"""Can a toy model tell its nouns apart? toymodel.noun_swap_gap for several models, one JSON.

For each model (a toy model folder, or `toy` for the embedded one): the relative rise of the denoising error on
single-object scenes of each noun when the caption names another noun (rows: the scene's noun, columns: the caption's),
at t = 200, 400, 600, and the cosine between the nouns' text-encoder states. Entries already in the output file are
kept, so models can be added one run at a time. Writes benchmarks/results/noun_swap_gap.json (atomically).

    python benchmarks/noun_swap_gap.py LABEL=FOLDER [LABEL=FOLDER ...] [--per-noun 32] [--out FILE]
"""
import argparse
import json
from pathlib import Path

import numpy as np
import torch

import dpl_nb
from _results import machine, write_result
from dpl_nb.models import load_bundle
from dpl_nb.toymodel import bundle_world, noun_swap_gap, toy_metadata


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("models", nargs="+", help="LABEL=FOLDER pairs (FOLDER: a toy model folder or 'toy')")
    parser.add_argument("--per-noun", type=int, default=32)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "noun_swap_gap.json"))
    args = parser.parse_args()
    out = Path(args.out)
    result = json.loads(out.read_text()) if out.is_file() else {"benchmark": "noun_swap_gap", "models": {}}
    for pair in args.models:
        label, sep, folder = pair.partition("=")
        if not sep or not label or not folder:
            raise SystemExit(f"give each model as LABEL=FOLDER, got {pair!r}")
        bundle = load_bundle(folder)
        meta = toy_metadata() if folder == "toy" else json.loads((Path(folder) / "dpl_nb.json").read_text())
        swap = noun_swap_gap(bundle, per_noun=args.per_noun)
        config = meta.get("config", {})
        result["models"][label] = {
            "folder": folder, "world": bundle_world(bundle), "step": meta.get("step"),
            "text_encoder": config.get("text_encoder", "trained"), "init": config.get("init", ""),
            "nouns": swap["nouns"], "gap": np.round(swap["gap"], 4).tolist(),
            "text_cosine": np.round(swap["text_cosine"], 4).tolist()}
        off = swap["gap"][~np.eye(len(swap["nouns"]), dtype=bool)]
        print(f"{label}: smallest gap {off.min():.3f}, mean {off.mean():.3f}", flush=True)
    result.update(per_noun=args.per_noun, timesteps=[200, 400, 600], dpl_nb=dpl_nb.__version__,
                  torch=torch.__version__, machine=machine())
    print(f"wrote {write_result(result, out)}")


if __name__ == "__main__":
    main()
