"""How often each snapshot of a toy training run draws the noun it is asked for, from noise (toyjudge.draw_accuracy).

With --gap, also how much the UNet tells each look-alike pair apart: toymodel.noun_swap_gap's relative rise of the
denoising error on a noun's objects when the caption names its look-alike instead (0: the UNet cannot tell them apart,
so it cannot draw either one on request, nor swap one for the other in an edit), beside the mean over all other pairs.

Prints one line per snapshot and writes RUN_DIR/draw_accuracy.json (atomically); a run's snapshots already scored there
are not scored again, so it can follow a run that is still training.

    python tools/draw_accuracy.py RUN_DIR --judge JUDGE_DIR [--per-noun 8] [--gap] [--threads N]
"""
import argparse
import json
from pathlib import Path

import numpy as np
import torch

from dpl_nb.models import atomic_write, load_bundle
from dpl_nb.toyjudge import draw_accuracy, load_judge
from dpl_nb.toymodel import noun_swap_gap
from dpl_nb.toyworld import WORLDS


def look_alike_gaps(bundle, per_noun: int = 24) -> dict:
    "noun_swap_gap of each look-alike pair (noun->look-alike) and the mean gap over the other pairs"
    found = noun_swap_gap(bundle, per_noun=per_noun)
    nouns, gap = found["nouns"], np.asarray(found["gap"])
    similar = next(w.similar for w in WORLDS.values() if set(w.nouns) == set(nouns))
    pairs = {f"{a}->{b}": float(gap[nouns.index(a), nouns.index(b)]) for a, b in similar.items()}
    others = [gap[i, j] for i, a in enumerate(nouns) for j, b in enumerate(nouns) if i != j and similar.get(a) != b]
    return {**pairs, "other_pairs_mean": float(np.mean(others))}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir")
    parser.add_argument("--judge", required=True, help="folder of an object judge of the run's world (save_judge)")
    parser.add_argument("--per-noun", type=int, default=8)
    parser.add_argument("--gap", action="store_true", help="also the look-alike pairs' noun_swap_gap")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    snapshots = sorted((Path(args.run_dir) / "snapshots").glob("step_*"))
    if not snapshots:
        raise SystemExit(f"{args.run_dir} has no snapshots/step_* folders: is it a run of tools/train_toy.py?")
    out = Path(args.run_dir) / "draw_accuracy.json"
    scores = json.loads(out.read_text()) if out.is_file() else {}
    judge = load_judge(args.judge)
    for snapshot in snapshots:
        if snapshot.name not in scores or (args.gap and "gap" not in scores[snapshot.name]):
            bundle = load_bundle(snapshot)
            row = scores.get(snapshot.name) or {"drawn": draw_accuracy(bundle, judge, per_noun=args.per_noun)}
            if args.gap:
                row["gap"] = look_alike_gaps(bundle)
            scores[snapshot.name] = row
            atomic_write(out, lambda tmp: Path(tmp).write_text(json.dumps(scores, indent=1)))
        row = scores[snapshot.name]
        drawn = row.get("drawn", row)  # older files hold the accuracies alone
        print(snapshot.name, f"mean {np.mean([v for k, v in drawn.items() if k != 'gap']):.2f}",
              " ".join(f"{k} {v:.2f}" for k, v in drawn.items() if k != "gap"),
              *([" | gap " + " ".join(f"{k} {v:.3f}" for k, v in row["gap"].items())] if "gap" in row else []))


if __name__ == "__main__":
    main()
