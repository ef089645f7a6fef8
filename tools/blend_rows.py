"""Where DPL's edits still leak, whose map opened the local blend over the other object: the old noun's or the new one's.

P2P's local blend (chapter 5) edits where either of two masks says: the old noun's map in the source row (DPL's
learned map) or the new noun's map in the edit row. While the cross-attention is injected (the first 80 % of the
steps) the edit row's maps are the source's; after that the new noun has a map of its own, which DPL never learned.
For each look-alike scene of an edit_leakage result where DPL `toy` changed the other object, this reruns DPL `toy`
and its edit (the benchmark's settings) and records, at each blend step, how much of each object the two masks
cover: `edit_row_covers_other_from` is the first denoising step at which the new noun's mask covers more than half
of the other object, and `steps_*_covers_other` count the blend steps at which a row's mask does. Writes tools/toy_runs/coats_v2/blend_rows_seed<S>.json.

    python tools/blend_rows.py [--seed 2023] [--scenes 5,30,...]
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import dpl_nb.p2p as p2p  # noqa: E402
from _results import write_result  # noqa: E402
from _toymo import worker_state  # noqa: E402
from edit_leakage import dpl_settings, method_record  # noqa: E402
from dpl_nb.models import TOY_MODEL  # noqa: E402
from dpl_nb.toymoset import swap_target  # noqa: E402


def cover(mask: torch.Tensor, objects: np.ndarray) -> list[float]:
    "Share of each object's pixels that a `(1, H, W)` bool mask covers"
    mask = F.interpolate(mask[None].float(), size=objects.shape[-2:], mode="nearest")[0, 0].numpy() > 0
    return [round(float((mask & o).sum() / max(o.sum(), 1)), 4) for o in objects]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=2023)
    parser.add_argument("--scenes", default=None, help="comma-separated scene indices (default: the look-alike "
                        "scenes where DPL toy changed the other object in the committed result)")
    args = parser.parse_args()
    name = "edit_leakage.json" if args.seed == 2023 else f"edit_leakage_seed{args.seed}.json"
    result = json.loads((ROOT / "benchmarks" / "results" / name).read_text())
    scenes = ([int(s) for s in args.scenes.split(",")] if args.scenes else
              [s["scene"] for s in result["scenes"] if s["distractor"] and not s["dpl"]["distractor_kept"]])
    state = worker_state("toy", str(TOY_MODEL / "judge"), args.seed)
    seen = []
    original = p2p.LocalBlend.edit_masks

    def edit_masks(self, size):  # keep each step's two word masks (source row, edit row)
        seen.append(self.word_masks(size)[:, 0].clone())
        return original(self, size)

    p2p.LocalBlend.edit_masks = edit_masks
    config = dpl_settings(result["preset"], result["dpl_set"])
    records = []
    for index in scenes:
        seen.clear()
        torch.manual_seed(0)
        scene = state["scenes"][index]
        record = method_record(state["bundle"], state["judge"], scene, config, result["steps"],
                               result["self_replace_steps"], result["blend_threshold"],
                               result["cross_replace_steps"], result.get("blend_words", "both"))
        per_step = [[cover(m[row:row + 1], scene.masks) for row in (0, 1)] for m in seen]
        other_by_edit_row = [s[1][1] for s in per_step]
        records.append(dict(
            scene=index, prompt=scene.braced, target=swap_target(scene)[2],
            kept=record["distractor_kept"], success=record["success"],
            last_source_row=per_step[-1][0], last_edit_row=per_step[-1][1],
            first_blend_step=result["steps"] - len(per_step),  # denoising step of the first blend
            edit_row_covers_other_from=next((result["steps"] - len(per_step) + k
                                             for k, c in enumerate(other_by_edit_row) if c > 0.5), None),
            source_row_max_other=max(s[0][1] for s in per_step), edit_row_max_other=max(other_by_edit_row),
            steps_source_row_covers_other=sum(s[0][1] > 0.5 for s in per_step),
            steps_edit_row_covers_other=sum(c > 0.5 for c in other_by_edit_row),
            steps_only_edit_row_covers_other=sum(s[1][1] > 0.5 >= s[0][1] for s in per_step)))
        print(json.dumps(records[-1]), flush=True)
    p2p.LocalBlend.edit_masks = original
    out = ROOT / "tools" / "toy_runs" / "coats_v2" / f"blend_rows_seed{args.seed}.json"
    write_result({"note": __doc__.split("\n\n")[1].replace("\n", " "), "seed": args.seed, "source": name,
                  "cross_replace_steps": result["cross_replace_steps"], "steps": result["steps"],
                  "columns": "covers are [edited object, other object] shares of their pixels; first_blend_step "
                             "and edit_row_covers_other_from are denoising steps (0 to steps - 1); steps_* count "
                             "blend steps", "scenes": records}, out)
    print(f"-> {out}")


if __name__ == "__main__":
    main()
