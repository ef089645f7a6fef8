"""Can the toy model make the paper's edit in place when the local blend is exact? NTI + P2P with the true object mask.

For edit_leakage's scenes of a held-out ToyMO-Set (the first N look-alike and M ordinary ones), null-text invert,
then make edit_leakage's swap of the first braced noun with `p2p.edit(..., blend_region=mask)`, where the mask is
the object's true mask grown by G pixels, instead of the word-map blend. Scores as edit_leakage does: `success`,
`in_place`, `distractor_kept`, `bg_psnr` (outside the object's mask grown by 1 px). If these hold here and not with
the word-map blend, what limits the edits is the blend mask the noun maps give, not the model's swap.

    python tools/oracle_blend.py MODEL_DIR [--judge DIR] [--seed 5] [--distractor 8] [--ordinary 4] [--grow 0,2]
                                 [--out FILE.json] [--images DIR]
"""
import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from _results import write_result  # noqa: E402
from _toymo import psnr_outside  # noqa: E402
from edit_leakage import chosen_scenes  # noqa: E402

from dpl_nb.inversion import invert  # noqa: E402
from dpl_nb.metrics import distractor_preserved, edit_success, grow_mask  # noqa: E402
from dpl_nb.models import load_bundle  # noqa: E402
from dpl_nb.p2p import edit  # noqa: E402
from dpl_nb.toyjudge import load_judge  # noqa: E402
from dpl_nb.toymodel import bundle_world  # noqa: E402
from dpl_nb.toymoset import swap_target  # noqa: E402
from dpl_nb.toyworld import is_distractor  # noqa: E402


def scene_records(bundle, judge, index: int, scene, grows, images: Path | None) -> list[dict]:
    "One NTI inversion of `scene`, then the swap with each grown true mask as the blend region"
    _, new, target = swap_target(scene)
    torch.manual_seed(0)
    inversion = invert(bundle, scene.pil, scene.braced, num_steps=50, progress=False)
    rows = []
    for grow in grows:
        region = torch.from_numpy(grow_mask(scene.masks[0], grow) if grow else scene.masks[0])
        edited = edit(bundle, inversion, target, blend_region=region, progress=False).edited
        success = bool(edit_success(judge, edited, scene, 0, new_shape=new, keep_colour=True))
        rows.append(dict(scene=index, distractor=bool(is_distractor(scene)), grow=grow, success=success,
                         in_place=success and bool(edit_success(judge, edited, scene, 0, new_shape=new,
                                                                keep_colour=True, keep_outline=True)),
                         distractor_kept=bool(distractor_preserved(judge, edited, scene, 1)),
                         bg_psnr=psnr_outside(edited, scene.pil, grow_mask(scene.masks[0], 1))))
        if images:
            edited.save(images / f"scene{index:03d}_grow{grow}.png")
        print(rows[-1], flush=True)
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model")
    parser.add_argument("--judge", default=None, help="judge folder (default: the model folder's judge/)")
    parser.add_argument("--seed", type=int, default=5, help="ToyMO-Set seed (held out: not 2023 nor 11)")
    parser.add_argument("--distractor", type=int, default=8)
    parser.add_argument("--ordinary", type=int, default=4)
    parser.add_argument("--grow", default="0", help="comma-separated pixels to grow the true mask by")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--images", type=Path, help="save each edit here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    bundle = load_bundle(args.model)
    judge = load_judge(args.judge or Path(args.model) / "judge")
    grows = [int(g) for g in args.grow.split(",")]
    if args.images:
        args.images.mkdir(parents=True, exist_ok=True)
    rows = [r for i, s in chosen_scenes(bundle_world(bundle), args.seed, args.distractor, args.ordinary)
            for r in scene_records(bundle, judge, i, s, grows, args.images)]
    means = {str(g): {k: float(np.mean([r[k] for r in rows if r["grow"] == g]))
                      for k in ("success", "in_place", "distractor_kept", "bg_psnr")} for g in grows}
    print(means)
    if args.out:
        write_result(dict(model=args.model, seed=args.seed, distractor=args.distractor, ordinary=args.ordinary,
                          steps=50, means=means, scenes=rows), args.out)


if __name__ == "__main__":
    main()
