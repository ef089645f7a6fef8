"""Dynamic Prompt Learning against null-text inversion on ToyMO-Set: attention IoU, cost, and local-blend edits.

Seeded, CPU. Each scene is inverted at 50 steps (guidance 7.5) by canonical null-text inversion and by DPL (preset
`lean`, `paper` with --preset paper, or `toy`: the toy model's settings, chapter 8). The attention maps of each
inversion are those of sampling its reconstruction (the conditional pass, the bundle's attn_res layers), averaged over the steps, as the paper evaluates
them; each braced noun's map is scored against its object's ToyMO-Set mask with the reference code's IoU protocol
(threshold 0.3, and the sweep 0.0 ... 1.0). Each inversion is also edited (the first object's shape swapped, P2P
defaults) with and without P2P's local blend on the swapped words, and the background PSNR outside the object's mask
(grown by 1 pixel) is recorded. Writes benchmarks/results/dpl_vs_nti.json (dpl_vs_nti_paper.json, dpl_vs_nti_toy.json), atomically.

    python benchmarks/dpl_vs_nti.py [--scenes 20] [--preset lean|paper|toy] [--losses at,bg,dj] [--steps 50]
                                    [--at-region all|objects] [--word-gradients shared|own] [--reverse-nouns]
                                    [--threads N] [--workers N]

--losses keeps only those of DPL's losses (the others get weight 0), for the ablation; a subset writes
dpl_vs_nti[_paper]_<losses>.json, e.g. dpl_vs_nti_at_bg.json.

--at-region objects (LossConfig.at_region) and --word-gradients own (DPLConfig.word_gradients) run DPL with the two
non-reference options of chapters 7 and 8; they add _objects and _own to the file name.

--reverse-nouns names each scene's objects in the opposite order ('a red {square} and a red {circle}'; the masks
follow), to measure how much DPL's outcome depends on the order of the nouns; it writes dpl_vs_nti[...]_reversed.json.

--workers runs scenes in that many processes (one torch thread each); the results do not depend on it.
"""
import argparse
import dataclasses
from concurrent.futures import ProcessPoolExecutor
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

import dpl_nb
from _results import machine, write_result
from _toymo import balanced_scenes, psnr_outside, summary
from dpl_nb.dpl import DPL_PRESETS, dpl_invert, sampled_maps, with_options
from dpl_nb.experiments import ablation_config
from dpl_nb.inversion import invert
from dpl_nb.metrics import THRESHOLDS, grow_mask, map_mass, word_ious
from dpl_nb.models import load_bundle
from dpl_nb.p2p import edit
from dpl_nb.prompts import parse_prompt
from dpl_nb.toyworld import caption_for, is_distractor
from dpl_nb.toymoset import swap_target, toymo_set

LEAN_TARGET_MAX = 3400  # UNet evaluations per image, worst case, lean preset at 50 steps


def map_ious(bundle, inversion, scene) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    "IoU `(nouns, thresholds)` of each noun's step-averaged map of the reconstruction, IoU@0.3 `(steps, nouns)` per step, and `map_mass`"
    words = parse_prompt(scene.braced, bundle.tokenizer).words
    positions, maps = [w.positions for w in words], sampled_maps(bundle, inversion)
    per_step = np.stack([word_ious(m, positions, scene.masks, [0.3])[:, 0] for m in maps])
    return word_ious(maps, positions, scene.masks, THRESHOLDS), per_step, map_mass(maps, positions, scene.masks)


def edit_psnr(bundle, inversion, scene) -> dict:
    old, new, target = swap_target(scene)
    region = grow_mask(scene.masks[0], 1)
    free = edit(bundle, inversion, target, progress=False)
    blended = edit(bundle, inversion, target, blend_words=(old, new), progress=False)
    return dict(no_blend=psnr_outside(free.edited, scene.pil, region),
                blend=psnr_outside(blended.edited, scene.pil, region),
                blend_mask_coverage=blended.mask.float().mean().item())


def reversed_nouns(scene):
    "The same scene with its objects (and masks) in the opposite order, so the caption names them the other way round"
    objects = scene.objects[::-1]
    caption, braced = caption_for(objects)
    return dataclasses.replace(scene, objects=objects, masks=scene.masks[::-1].copy(), caption=caption, braced=braced)


def run_scene(bundle, index: int, scene, config, steps: int) -> dict:
    at = int(np.flatnonzero(THRESHOLDS == 0.3)[0])
    start = time.perf_counter()
    nti = invert(bundle, scene.pil, scene.braced, num_steps=steps, progress=False)
    nti_seconds = time.perf_counter() - start
    start = time.perf_counter()
    dpl = dpl_invert(bundle, scene.pil, scene.braced, config=config, num_steps=steps,
                     progress=False)
    dpl_seconds = time.perf_counter() - start
    (iou_nti, steps_nti, mass_nti), (iou_dpl, steps_dpl, mass_dpl) = map_ious(bundle, nti, scene), map_ious(bundle, dpl, scene)
    background = torch.tensor(dpl.trace["background"], dtype=torch.float32)[None, None]
    background = F.interpolate(background, size=scene.masks.shape[1:], mode="nearest")[0, 0].bool().numpy()
    truth = ~scene.masks.any(0)
    edits_nti, edits_dpl = edit_psnr(bundle, nti, scene), edit_psnr(bundle, dpl, scene)
    return dict(
        scene=index, distractor=is_distractor(scene), prompt=scene.braced,
        iou_nti=float(iou_nti[:, at].mean()), iou_dpl=float(iou_dpl[:, at].mean()),
        iou_nti_per_noun=iou_nti[:, at].tolist(), iou_dpl_per_noun=iou_dpl[:, at].tolist(),
        iou_nti_sweep=iou_nti.mean(0).tolist(), iou_dpl_sweep=iou_dpl.mean(0).tolist(),
        unet_evals_nti=nti.cost.total, unet_evals_dpl=dpl.cost.total,
        seconds_nti=nti_seconds, seconds_dpl=dpl_seconds,
        token_updates=sum(dpl.trace["token_updates"]), token_passes=sum(map(len, dpl.trace["token_losses"])),
        token_updates_per_step=dpl.trace["token_updates"], token_drift_final=dpl.trace["token_drift"][-1],
        first_pass_losses=[{k: passes[0][k] for k in ("at", "bg", "dj")} for passes in dpl.trace["token_losses"]],
        iou_nti_per_step=steps_nti.tolist(), iou_dpl_per_step=steps_dpl.tolist(),
        map_mass_nti=mass_nti.tolist(), map_mass_dpl=mass_dpl.tolist(),
        nti_inner_steps_in_dpl=sum(dpl.inner_steps),
        background_iou=float((background & truth).sum() / max((background | truth).sum(), 1)),
        background_fallback=dpl.trace.get("background_fallback"),
        edit_bg_psnr_nti=edits_nti["blend"], edit_bg_psnr_nti_no_blend=edits_nti["no_blend"],
        edit_bg_psnr_dpl=edits_dpl["blend"], edit_bg_psnr_dpl_no_blend=edits_dpl["no_blend"],
        blend_mask_coverage_nti=edits_nti["blend_mask_coverage"],
        blend_mask_coverage_dpl=edits_dpl["blend_mask_coverage"])


_BUNDLE = None


def _worker(job) -> dict:
    "Run one scene in a worker process (the toy model loaded once per process)"
    global _BUNDLE
    index, config, steps, threads, reverse = job
    torch.set_num_threads(threads)
    if _BUNDLE is None:
        _BUNDLE = load_bundle("toy")
    scene = toymo_set()[index]
    scene = reversed_nouns(scene) if reverse else scene
    torch.manual_seed(0)
    return run_scene(_BUNDLE, index, scene, config, steps)


def report(c: dict):
    print(f"scene {c['scene']:2d} ({'distractor' if c['distractor'] else 'ordinary'}): IoU@0.3 NTI {c['iou_nti']:.3f} "
          f"DPL {c['iou_dpl']:.3f}; evals NTI {c['unet_evals_nti']:.0f} DPL {c['unet_evals_dpl']:.0f}; "
          f"bg PSNR blend NTI {c['edit_bg_psnr_nti']:.1f} DPL {c['edit_bg_psnr_dpl']:.1f} dB; "
          f"{c['seconds_nti'] + c['seconds_dpl']:.0f} s", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scenes", type=int, default=20, help="ToyMO-Set scenes, at least half of them distractors")
    parser.add_argument("--preset", choices=sorted(DPL_PRESETS), default="lean",
                        help="lean (default), paper, or toy (lean with the toy model's calibrated background threshold)")
    parser.add_argument("--losses", default="at,bg,dj", help="the DPL losses kept, comma-separated (ablation)")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--at-region", choices=("all", "objects"), default=None,
                        help="where L_at takes its peaks (default: the preset's)")
    parser.add_argument("--word-gradients", choices=("shared", "own"), default=None,
                        help="whose gradients reach a dynamic token (default: the preset's)")
    parser.add_argument("--reverse-nouns", action="store_true", help="name each scene's objects in the opposite order")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--workers", type=int, default=1, help="processes, each running whole scenes")
    parser.add_argument("--out", default=None, help="default: benchmarks/results/dpl_vs_nti[_paper].json")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    losses = tuple(k for k in ("at", "bg", "dj") if k in args.losses.split(","))  # in a fixed order, for the file name
    if not losses or set(args.losses.split(",")) != set(losses):
        raise SystemExit(f"--losses must be a comma-separated subset of at,bg,dj, got {args.losses!r}")
    name = "dpl_vs_nti" + ("" if args.preset == "lean" else f"_{args.preset}") + \
        ("" if losses == ("at", "bg", "dj") else "_" + "_".join(losses)) + \
        ("_objects" if args.at_region == "objects" else "") + ("_own" if args.word_gradients == "own" else "") + \
        ("_reversed" if args.reverse_nouns else "")
    config = with_options(ablation_config(losses, args.preset), args.at_region, args.word_gradients)
    out = args.out or Path(__file__).parent / "results" / f"{name}.json"
    bundle = load_bundle("toy")
    cases, start = [], time.perf_counter()
    scenes = balanced_scenes(args.scenes)
    if args.reverse_nouns:
        scenes = [(index, reversed_nouns(scene)) for index, scene in scenes]
    if args.workers > 1:
        jobs = [(index, config, args.steps, 1, args.reverse_nouns) for index, _ in scenes]
        with ProcessPoolExecutor(args.workers) as pool:
            for c in pool.map(_worker, jobs):
                cases.append(c); report(c)
    else:
        for index, scene in scenes:
            torch.manual_seed(0)
            cases.append(run_scene(bundle, index, scene, config, args.steps)); report(cases[-1])
    column = lambda key, rows=cases: [c[key] for c in rows]
    gains = [d - n for d, n in zip(column("iou_dpl"), column("iou_nti"))]
    evals = summary(column("unet_evals_dpl"))
    groups = {"distractor": [c for c in cases if c["distractor"]], "ordinary": [c for c in cases if not c["distractor"]]}
    result = {
        "benchmark": "dpl_vs_nti", "preset": args.preset, "losses": list(losses), "reverse_nouns": args.reverse_nouns,
        "at_region": config.losses.at_region, "word_gradients": config.word_gradients,
        "tau_start": {k: getattr(config.losses, f"beta_{k}") for k in ("at", "bg", "dj")},
        "scenes": len(cases),
        "distractor_scenes": len(groups["distractor"]), "steps": args.steps, "guidance_scale": 7.5,
        "model": bundle.model_id,
        "iou_nti": float(np.mean(column("iou_nti"))), "iou_dpl": float(np.mean(column("iou_dpl"))),
        "iou_gain": float(np.mean(gains)), "scenes_with_gain": sum(g > 0 for g in gains),
        "share_with_gain": float(np.mean([g > 0 for g in gains])),
        **{f"iou_{m}_{g}": float(np.mean(column(f"iou_{m}", rows))) for g, rows in groups.items() if rows
           for m in ("nti", "dpl")},
        "thresholds": THRESHOLDS.tolist(),
        "iou_nti_sweep": np.mean(column("iou_nti_sweep"), 0).tolist(),
        "iou_dpl_sweep": np.mean(column("iou_dpl_sweep"), 0).tolist(),
        "unet_evals_nti": summary(column("unet_evals_nti")),
        "unet_evals_dpl": {**evals, "target_max": LEAN_TARGET_MAX if args.preset in ("lean", "toy") else None},
        "seconds_nti": summary(column("seconds_nti")), "seconds_dpl": summary(column("seconds_dpl")),
        "background_iou": summary(column("background_iou")),
        "background_fallbacks": sum(c["background_fallback"] is not None for c in cases),
        **{k: summary(column(k)) for k in ("edit_bg_psnr_nti", "edit_bg_psnr_nti_no_blend", "edit_bg_psnr_dpl",
                                           "edit_bg_psnr_dpl_no_blend", "blend_mask_coverage_nti",
                                           "blend_mask_coverage_dpl")},
        "targets": {"iou_gain": 0.05, "share_with_gain": 0.70, "lean_unet_evals_max": LEAN_TARGET_MAX},
        "notes": {
            "iou": "reference protocol (dpl_spec §8): step-averaged map of each braced noun, scaled by its max, "
                   "bicubic to 256 then to 32 px, divided by its max, > threshold; IoU with the object's mask; "
                   "iou_* is the mean over the scene's nouns at threshold 0.3",
            "maps": "cross maps at the bundle's attn_res of the conditional pass while sampling each inversion's "
                    "reconstruction (same protocol for NTI and DPL)",
            "unet_evals": "UNet evaluations at batch 1 (forward + backward) of the whole inversion, DDIM inversion "
                          "included; a token update's backward, which stops inside the UNet, counts as a whole one",
            "map_mass": "share of each noun's step-averaged map (rows) on each object's mask and on the background "
                        "(columns: objects in caption order, then background), masks area-downsampled to attn_res",
            "background_iou": "IoU of DPL's background mask (upsampled nearest to 32 px) with the true background",
            "edit_bg_psnr": "first object's shape swapped (swap_target), P2P defaults, local blend on the old and new "
                            "words (threshold 0.3); PSNR (dB) against the input outside the object's mask grown by 1 px",
        },
        "per_scene": cases, "seconds": time.perf_counter() - start,
        "threads": 1 if args.workers > 1 else torch.get_num_threads(), "workers": args.workers,
        "machine": machine(), "torch": torch.__version__,
        "dpl_nb": dpl_nb.__version__,
    }
    path = write_result(result, out)
    print(f"IoU@0.3 NTI {result['iou_nti']:.3f} DPL {result['iou_dpl']:.3f} (gain {result['iou_gain']:+.3f}, on "
          f"{result['scenes_with_gain']}/{len(cases)} scenes); DPL evals worst {evals['max']:.0f}; -> {path}")


if __name__ == "__main__":
    main()
