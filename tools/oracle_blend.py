"""Can the toy model make the paper's edit in place when the blend mask is right? P2P swaps with exact blend regions.

For edit_leakage's scenes of a held-out ToyMO-Set (the first N look-alike and M ordinary ones), invert (NTI; Direct
Inversion with `--inversion direct`: the empty prompt's nulls for every row and the source row's gaps added back; or
DPL with `--inversion dpl`, edit_leakage's `--preset` and `--dpl-set`), then make edit_leakage's swap of the first braced
noun with `p2p.edit(..., blend_region=...)` instead of the word-map blend, for each region asked:
- `true+G`: the object's true mask grown by G pixels (`--grow`);
- `p2p`: the mask P2P's local blend makes from *exact* word maps: the object's true mask, pooled to the maps'
  resolution, taken as the noun's map of both rows and passed through `p2p.word_masks` (3x3 max-pool, resize,
  / max, threshold). It is the best blend any inversion's maps can give at that threshold: its ring of 2-3 px around
  the object is where the edit may still redraw the outline.
Scores as edit_leakage does: `success`, `in_place`, `distractor_kept`, `bg_psnr` (outside the object's mask grown by
1 px), and `blend_cover` (the share of the object, the other object and the background the region covers). If the
edits hold with `true+0` and not with `p2p`, the model redraws the object's outline in the blend's ring; if they hold
with `p2p` and not with the word maps, the maps are what fail.

    python tools/oracle_blend.py MODEL_DIR [--judge DIR] [--seed 5] [--distractor 8] [--ordinary 4]
        [--regions true+0,p2p] [--self-replace 0.4[,0.8]] [--inversion nti|direct|dpl] [--preset toy] [--dpl-set K=V]...
        [--workers 2] [--out FILE.json] [--images DIR]
"""
import argparse
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from _results import write_result  # noqa: E402
from _toymo import psnr_outside, worker_state  # noqa: E402
from edit_leakage import blend_cover, chosen_scenes, dpl_settings  # noqa: E402

from dpl_nb.dpl import dpl_invert  # noqa: E402
from dpl_nb.inversion import invert  # noqa: E402
from dpl_nb.metrics import distractor_preserved, edit_success, grow_mask  # noqa: E402
from dpl_nb.p2p import edit, word_masks  # noqa: E402
from dpl_nb.toymodel import bundle_world  # noqa: E402
from dpl_nb.toymoset import swap_target  # noqa: E402
from dpl_nb.toyworld import is_distractor  # noqa: E402

METRICS = ("success", "in_place", "distractor_kept", "bg_psnr")


def exact_map_blend(mask: np.ndarray, resolution: int, threshold: float) -> torch.Tensor:
    "The `(H, W)` mask P2P's local blend makes when the noun's map is exactly the object's mask (area-pooled)"
    exact = F.interpolate(torch.from_numpy(mask).float()[None, None], size=(resolution, resolution),
                          mode="area")[0, 0]
    maps = exact[None, :, :, None]  # one row, one token: the noun
    return word_masks(maps, [[0]], mask.shape, threshold)[0, 0]


def region_for(name: str, mask: np.ndarray, resolution: int, threshold: float) -> torch.Tensor:
    "The blend region `name` ('true+G' or 'p2p') of the object whose true mask is `mask`"
    if name == "p2p":
        return exact_map_blend(mask, resolution, threshold)
    kind, _, grow = name.partition("+")
    if kind != "true" or not grow.isdigit():
        raise SystemExit(f"--regions: {name!r} is neither 'p2p' nor 'true+G' with G a whole number of pixels")
    return torch.from_numpy(grow_mask(mask, int(grow)) if int(grow) else mask)


def scene_records(bundle, judge, index: int, scene, config, regions, self_replace, threshold: float,
                  images: Path | None) -> list[dict]:
    "One inversion of `scene` (NTI or Direct Inversion when `config` is that name, else DPL), then the swaps"
    _, new, target = swap_target(scene)
    torch.manual_seed(0)
    inversion = (invert(bundle, scene.pil, scene.braced, num_steps=50, method=config, progress=False)
                 if isinstance(config, str) else
                 dpl_invert(bundle, scene.pil, scene.braced, config, num_steps=50, progress=False))
    rows = []
    for name in regions:
        region = region_for(name, scene.masks[0], bundle.attn_res, threshold)
        for replace in self_replace:
            edited = edit(bundle, inversion, target, blend_region=region, self_replace_steps=replace,
                          progress=False).edited
            success = bool(edit_success(judge, edited, scene, 0, new_shape=new, keep_colour=True))
            rows.append(dict(scene=index, distractor=bool(is_distractor(scene)), region=name,
                             self_replace=replace, success=success,
                             in_place=success and bool(edit_success(judge, edited, scene, 0, new_shape=new,
                                                                    keep_colour=True, keep_outline=True)),
                             distractor_kept=bool(distractor_preserved(judge, edited, scene, 1)),
                             bg_psnr=psnr_outside(edited, scene.pil, grow_mask(scene.masks[0], 1)),
                             blend_cover=blend_cover(region[None, None], scene.masks)))
            if images:
                edited.save(images / f"scene{index:03d}_{name}_ss{replace}.png")
            print(rows[-1], flush=True)
    return rows


def _scene_job(job) -> list[dict]:
    "One scene's records in a worker process (model, judge and scenes loaded once per process)"
    index, a = job
    state = worker_state(a["model"], a["judge"], a["seed"])
    config = dpl_settings(a["preset"], a["dpl_set"]) if a["inversion"] == "dpl" else a["inversion"]
    return scene_records(state["bundle"], state["judge"], index, state["scenes"][index], config, a["regions"],
                         a["self_replace"], a["threshold"], a["images"])


def group_means(rows: list[dict]) -> dict:
    "Means of the metrics and blend cover per region and injection, over look-alike and ordinary scenes"
    out = {}
    for group, want in (("distractor", True), ("ordinary", False)):
        for key in sorted({(r["region"], r["self_replace"]) for r in rows}):
            picked = [r for r in rows if (r["region"], r["self_replace"]) == key and r["distractor"] == want]
            if picked:
                means = {m: round(float(np.mean([r[m] for r in picked if r[m] is not None])), 4) for m in METRICS}
                means["blend_cover"] = np.mean([r["blend_cover"] for r in picked], 0).round(4).tolist()
                out.setdefault(group, {})[f"{key[0]}, self_replace {key[1]}"] = dict(scenes=len(picked), **means)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model")
    parser.add_argument("--judge", default=None, help="judge folder (default: the model folder's judge/)")
    parser.add_argument("--seed", type=int, default=5, help="ToyMO-Set seed (held out: not 2023 nor 11)")
    parser.add_argument("--distractor", type=int, default=8)
    parser.add_argument("--ordinary", type=int, default=4)
    parser.add_argument("--regions", default="true+0", help="comma-separated blend regions: true+G, p2p")
    parser.add_argument("--grow", default=None, help="(older spelling) comma-separated G of true+G regions")
    parser.add_argument("--self-replace", default="0.4", help="comma-separated P2P self_replace_steps")
    parser.add_argument("--blend-threshold", type=float, default=0.3, help="P2P's threshold, for the p2p region")
    parser.add_argument("--inversion", choices=("nti", "direct", "dpl"), default="nti")
    parser.add_argument("--preset", default="toy", help="DPL preset of --inversion dpl")
    parser.add_argument("--dpl-set", action="append", default=[], metavar="KEY=VALUE",
                        help="a DPLConfig or LossConfig field of --inversion dpl (repeatable)")
    parser.add_argument("--workers", type=int, default=1, help="processes, each running whole scenes")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--images", type=Path, help="save each edit here")
    args = parser.parse_args()
    regions = ([f"true+{g}" for g in args.grow.split(",")] if args.grow else args.regions.split(","))
    self_replace = [float(s) for s in args.self_replace.split(",")]
    for name in regions:  # a bad region or setting fails before any scene runs
        region_for(name, np.zeros((4, 4), bool), 2, args.blend_threshold)
    if args.inversion == "dpl":
        dpl_settings(args.preset, args.dpl_set)
    torch.set_num_threads(1)
    judge = args.judge or str(Path(args.model) / "judge")
    state = worker_state(args.model, judge, args.seed)
    if args.images:
        args.images.mkdir(parents=True, exist_ok=True)
    shared = dict(model=args.model, judge=judge, seed=args.seed, inversion=args.inversion, preset=args.preset,
                  dpl_set=args.dpl_set, regions=regions, self_replace=self_replace,
                  threshold=args.blend_threshold, images=args.images)
    jobs = [(i, shared) for i, _ in chosen_scenes(bundle_world(state["bundle"]), args.seed, args.distractor,
                                                   args.ordinary)]
    if args.workers > 1:
        with ProcessPoolExecutor(args.workers) as pool:
            rows = [r for rs in pool.map(_scene_job, jobs) for r in rs]
    else:
        rows = [r for job in jobs for r in _scene_job(job)]
    means = group_means(rows)
    print(means)
    if args.out:
        write_result(dict(model=args.model, seed=args.seed, distractor=args.distractor, ordinary=args.ordinary,
                          steps=50, inversion=args.inversion,
                          dpl=None if args.inversion != "dpl" else dict(preset=args.preset,
                                                                        dpl_set=sorted(args.dpl_set)),
                          blend_threshold=args.blend_threshold, means=means, scenes=rows), args.out)


if __name__ == "__main__":
    main()
