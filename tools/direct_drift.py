"""How far the source row of a DPL-on-Direct-Inversion edit strays from the inverted path, with stored or fresh gaps.

Direct Inversion puts the source row back on the inverted path after every guided step. Adding the gaps the inversion
recorded (the authors' way) does that only if the sampler's step rounds exactly as the inversion's did; any
difference is then carried to the next step and amplified by the guided step. `inversion.sample` takes each gap afresh
instead (the stored path minus where the source row landed). For the first N look-alike scenes of a ToyMO-Set, this
script inverts with DPL on Direct Inversion (edit_leakage's `--preset` and `--dpl-set`, `inversion=direct` added) and
records, per step, the largest distance of the source row from the path both ways.

    python tools/direct_drift.py MODEL_DIR [--seed 7] [--distractor 3] [--preset toy] [--dpl-set K=V]... --out FILE
"""
import argparse
import dataclasses
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from _results import write_result  # noqa: E402
from _toymo import worker_state  # noqa: E402
from edit_leakage import chosen_scenes, dpl_settings  # noqa: E402

from dpl_nb.dpl import dpl_invert  # noqa: E402
from dpl_nb.inversion import sample  # noqa: E402
from dpl_nb.toymodel import bundle_world  # noqa: E402


def drift(bundle, inversion, stored: bool) -> list[float]:
    "Per step, the source row's largest distance from the inverted path (stored gaps added, or fresh ones)"
    path, out = inversion.latents, []
    plain = dataclasses.replace(inversion, corrections=None) if stored else inversion

    def after(i, latents):
        if stored:  # the authors' way: the gap the inversion recorded
            latents = torch.cat([latents[:1] + inversion.corrections[i].to(latents), latents[1:]])
        out.append(round(float((latents[0] - path[-2 - i].to(latents)).abs().max()), 6))
        return latents
    sample(bundle, plain, after_step=after, progress=False)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model")
    parser.add_argument("--seed", type=int, default=7, help="ToyMO-Set seed (held out: not 2023 nor 11)")
    parser.add_argument("--distractor", type=int, default=3, help="the first N look-alike scenes")
    parser.add_argument("--preset", default="toy")
    parser.add_argument("--dpl-set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    config = dpl_settings(args.preset, args.dpl_set + ["inversion=direct"])
    torch.set_num_threads(1)
    state = worker_state(args.model, str(Path(args.model) / "judge"), args.seed)
    bundle, rows = state["bundle"], []
    for index, scene in chosen_scenes(bundle_world(bundle), args.seed, args.distractor, 0):
        torch.manual_seed(0)
        inversion = dpl_invert(bundle, scene.pil, scene.braced, config, num_steps=50, progress=False)
        rows.append(dict(scene=index, prompt=scene.braced, stored_gaps=drift(bundle, inversion, True),
                         fresh_gaps=drift(bundle, inversion, False)))
        print(index, "stored: last", rows[-1]["stored_gaps"][-1], "fresh: max", max(rows[-1]["fresh_gaps"]), flush=True)
    write_result(dict(model=args.model, seed=args.seed, preset=args.preset, dpl_set=sorted(args.dpl_set + ["inversion=direct"]),
                      steps=50, scenes=rows), args.out)


if __name__ == "__main__":
    main()
