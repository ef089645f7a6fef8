"""How often each snapshot of a toy training run draws the noun it is asked for, from noise (toyjudge.draw_accuracy).

Prints one line per snapshot and writes RUN_DIR/draw_accuracy.json (atomically); a run's snapshots already scored there
are not scored again, so it can follow a run that is still training.

    python tools/draw_accuracy.py RUN_DIR --judge JUDGE_DIR [--per-noun 8] [--threads N]
"""
import argparse
import json
from pathlib import Path

import numpy as np
import torch

from dpl_nb.models import atomic_write, load_bundle
from dpl_nb.toyjudge import draw_accuracy, load_judge


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir")
    parser.add_argument("--judge", required=True, help="folder of an object judge of the run's world (save_judge)")
    parser.add_argument("--per-noun", type=int, default=8)
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
        if snapshot.name not in scores:
            scores[snapshot.name] = draw_accuracy(load_bundle(snapshot), judge, per_noun=args.per_noun)
            atomic_write(out, lambda tmp: Path(tmp).write_text(json.dumps(scores, indent=1)))
        drawn = scores[snapshot.name]
        print(snapshot.name, f"mean {np.mean(list(drawn.values())):.2f}", " ".join(f"{k} {v:.2f}" for k, v in drawn.items()))


if __name__ == "__main__":
    main()
