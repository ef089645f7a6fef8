"""What the toy model costs on one CPU core: a UNet forward at batch 1, a forward + backward, a 50-step DPL-lean run.

The CPU budget of the toy world: the toy model's UNet forward at batch 1 on one core, and a 50-step
DPL-`lean` inversion under 3 minutes of one core. Times the median of --runs forwards (batch 1, no grad) and of
forward + backward passes to the text embedding (what a token update costs), then one 50-step DPL-lean inversion
of the first look-alike ToyMO-Set scene of the model's world, and projects the lean preset's worst case (3,400 UNet
evaluations) at the measured seconds per evaluation. One torch thread throughout. Writes
benchmarks/results/toy_cost.json (toy_cost_<name>.json with --name).

    python benchmarks/toy_cost.py [--model toy|FOLDER] [--name NAME] [--runs 50]
"""
import argparse
import os
import platform
import statistics
import time
from pathlib import Path

import torch

import dpl_nb
from _results import write_result
from dpl_nb.dpl import dpl_invert
from dpl_nb.models import load_bundle
from dpl_nb.prompts import encode_prompts
from dpl_nb.toyworld import is_distractor, scene_images
from dpl_nb.toymoset import toymo_set
from dpl_nb.toymodel import bundle_world

LEAN_WORST_CASE = 3400  # UNet evaluations per image at 50 steps, the lean preset's bound
BUDGET_S = 180  # a 50-step DPL-lean run on one core


def median_seconds(step, runs: int) -> float:
    step()  # warm-up
    times = []
    for _ in range(runs):
        start = time.perf_counter(); step(); times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="toy", help="toy (the embedded model) or a toy model folder")
    parser.add_argument("--name", default=None, help="suffix of the result file")
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()
    torch.set_num_threads(1)
    bundle = load_bundle(args.model)
    world = bundle_world(bundle)
    index, scene = next((i, s) for i, s in enumerate(toymo_set(world=world)) if is_distractor(s))
    x = bundle.encode(scene_images([scene]))
    context = encode_prompts(bundle, [scene.braced])
    t = torch.tensor(500)

    def forward():
        with torch.no_grad():
            bundle.unet(x, t, encoder_hidden_states=context)

    def forward_backward():
        tokens = context.clone().requires_grad_(True)
        bundle.unet(x, t, encoder_hidden_states=tokens).sample.square().mean().backward()

    forward_s, forward_backward_s = median_seconds(forward, args.runs), median_seconds(forward_backward, args.runs)
    start = time.perf_counter()
    inversion = dpl_invert(bundle, scene.pil, scene.braced, "lean", num_steps=50, progress=False)
    lean_s = time.perf_counter() - start
    per_eval = lean_s / inversion.cost.total
    result = {"benchmark": "toy_cost", "model": args.model, "world": world, "threads": 1,
              "unet_parameters": sum(p.numel() for p in bundle.unet.parameters()),
              "forward_ms": 1000 * forward_s, "forward_backward_ms": 1000 * forward_backward_s,
              "dpl_lean": {"scene": index, "prompt": scene.braced, "seconds": lean_s, "unet_evals": inversion.cost.total,
                           "seconds_per_eval": per_eval},
              "lean_worst_case_evals": LEAN_WORST_CASE, "lean_worst_case_seconds": per_eval * LEAN_WORST_CASE,
              "budget_s": BUDGET_S, "within_budget": per_eval * LEAN_WORST_CASE <= BUDGET_S,
              "machine": f"{platform.machine()}, {os.cpu_count()} CPUs", "torch": torch.__version__,
              "dpl_nb": dpl_nb.__version__}
    out = Path(__file__).parent / "results" / (f"toy_cost_{args.name}.json" if args.name else "toy_cost.json")
    print(f"forward {result['forward_ms']:.1f} ms, forward+backward {result['forward_backward_ms']:.1f} ms; "
          f"DPL-lean 50 steps: {lean_s:.0f} s for {inversion.cost.total} evals; worst case projected "
          f"{result['lean_worst_case_seconds']:.0f} s (budget {BUDGET_S} s) -> {write_result(result, out)}")


if __name__ == "__main__":
    main()
