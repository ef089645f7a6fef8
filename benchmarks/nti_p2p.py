"""Null-text inversion and Prompt-to-Prompt on the toy model: reconstruction error, cost, background preservation.

The first 20 ToyMO-Set scenes (8 distractor cases). Each scene is inverted at 50 steps with guidance 7.5, once by
plain DDIM inversion and once by canonical null-text inversion; the NTI inversion is then edited by swapping the
first object's noun (P2P defaults: cross 0.8, self 0.4) three ways: without a local blend, with P2P's local blend on
the swapped words' attention maps (threshold 0.3, from 20% of the steps), and with a local blend on the object's
true mask (the best a word mask could do). Background PSNR is measured against the input outside the object's
ToyMO-Set mask grown by 1 pixel. Writes benchmarks/results/nti_p2p.json (atomically).

    python benchmarks/nti_p2p.py [--scenes 20] [--steps 50] [--threads N]
"""
import argparse
import time
from pathlib import Path

import torch

import dpl_nb
from _results import machine, write_result
from _toymo import benchmark_scenes, psnr_outside, summary
from dpl_nb.inversion import invert, reconstruct
from dpl_nb.metrics import grow_mask
from dpl_nb.models import load_bundle
from dpl_nb.p2p import edit
from dpl_nb.toyworld import is_distractor
from dpl_nb.toymoset import swap_target

NTI_TARGET_MAX = 1400  # UNet evaluations (batch-1 equivalents, forward + backward) for NTI at 50 steps


def run_scene(bundle, index: int, scene, steps: int) -> dict:
    start = time.perf_counter()
    old, new, target = swap_target(scene)
    region = grow_mask(scene.masks[0], 1)
    z0 = bundle.encode(scene.pil)
    ddim = invert(bundle, scene.pil, scene.braced, num_steps=steps, method="ddim", progress=False)
    nti = invert(bundle, scene.pil, scene.braced, num_steps=steps, progress=False)
    free = edit(bundle, nti, target, progress=False)
    blended = edit(bundle, nti, target, blend_words=(old, new), progress=False)
    oracle = edit(bundle, nti, target, blend_region=torch.from_numpy(region), progress=False)
    psnr = lambda image: psnr_outside(image, scene.pil, region)
    return dict(
        scene=index, distractor=is_distractor(scene), prompt=scene.braced, target=target,
        ddim_recon_mse=torch.mean((reconstruct(bundle, ddim, progress=False) - z0) ** 2).item(),
        nti_recon_mse=torch.mean((free.latents[:1] - z0) ** 2).item(),  # the edit's source row is NTI's reconstruction
        nti_unet_evals=nti.cost.total, nti_forward=nti.cost.forward, nti_backward=nti.cost.backward,
        nti_inner_steps=sum(nti.inner_steps),
        edit_bg_psnr=psnr(blended.edited), edit_bg_psnr_no_blend=psnr(free.edited),
        edit_bg_psnr_mask_blend=psnr(oracle.edited), source_bg_psnr=psnr(free.source),
        blend_mask_coverage=blended.mask.float().mean().item(), object_coverage=float(region.mean()),
        seconds=time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scenes", type=int, default=20)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "nti_p2p.json"))
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    bundle = load_bundle("toy")
    cases = []
    for index, scene in benchmark_scenes(args.scenes):
        cases.append(run_scene(bundle, index, scene, args.steps))
        c = cases[-1]
        print(f"scene {index:2d}: recon MSE DDIM {c['ddim_recon_mse']:.2e} NTI {c['nti_recon_mse']:.2e}, "
              f"NTI {c['nti_unet_evals']} evals, bg PSNR no blend {c['edit_bg_psnr_no_blend']:.1f} / word blend "
              f"{c['edit_bg_psnr']:.1f} (mask {c['blend_mask_coverage']:.0%}) / true-mask blend "
              f"{c['edit_bg_psnr_mask_blend']:.1f} dB, {c['seconds']:.0f} s", flush=True)
    column = lambda key: [c[key] for c in cases]
    evals = summary(column("nti_unet_evals"))
    gain = [b - f for b, f in zip(column("edit_bg_psnr"), column("edit_bg_psnr_no_blend"))]
    result = {
        "benchmark": "nti_p2p", "scenes": len(cases), "distractor_scenes": sum(column("distractor")),
        "steps": args.steps, "guidance_scale": 7.5, "model": bundle.model_id,
        "ddim_recon_mse": summary(column("ddim_recon_mse")),
        "nti_recon_mse": summary(column("nti_recon_mse")),
        "nti_to_ddim_mse_ratio": summary([n / d for n, d in zip(column("nti_recon_mse"), column("ddim_recon_mse"))]),
        "nti_unet_evals": {**evals, "target_max": NTI_TARGET_MAX, "bound": args.steps + args.steps * (2 + 2 * 10),
                           "meets_target": evals["max"] <= NTI_TARGET_MAX},
        "edit_bg_psnr": summary(column("edit_bg_psnr")),
        "edit_bg_psnr_no_blend": summary(column("edit_bg_psnr_no_blend")),
        "edit_bg_psnr_mask_blend": summary(column("edit_bg_psnr_mask_blend")),
        "blend_psnr_gain": {**summary(gain), "scenes_raised": sum(g > 0 for g in gain)},
        "source_bg_psnr": summary(column("source_bg_psnr")),
        "blend_mask_coverage": summary(column("blend_mask_coverage")),
        "object_coverage": summary(column("object_coverage")),
        "notes": {
            "recon_mse": "MSE between the guided (w=7.5) reconstruction and z0 = encode(image) (pixels in [-1, 1])",
            "nti_unet_evals": "UNet evaluations at batch 1 of the whole inversion (DDIM inversion + NTI), forward "
                              "and backward counted (UNetCounter); bound = T + T * (1 cond + 2 * 10 inner + 1 advance)",
            "edit": "the first object's noun swapped for one neither in the scene nor similar (swap_target)",
            "edit_bg_psnr": "PSNR (dB) against the input outside the first object's mask grown by 1 px, P2P local "
                            "blend on the old and new words' maps (threshold 0.3, from 20% of the steps)",
            "edit_bg_psnr_no_blend": "the same edit and region without a local blend",
            "edit_bg_psnr_mask_blend": "the same edit blended on the object's true (dilated) mask",
            "source_bg_psnr": "the source row (NTI reconstruction), same region",
            "blend_mask_coverage": "fraction of the image inside P2P's word-mask blend at the last step",
        },
        "per_scene": cases,
        "seconds": sum(column("seconds")), "threads": torch.get_num_threads(),
        "machine": machine(), "torch": torch.__version__,
        "dpl_nb": dpl_nb.__version__,
    }
    out = write_result(result, args.out)
    print(f"NTI/DDIM reconstruction MSE {result['nti_to_ddim_mse_ratio']['mean']:.2f} (mean ratio), NTI evals worst "
          f"{evals['max']} (target <= {NTI_TARGET_MAX}), background PSNR no blend "
          f"{result['edit_bg_psnr_no_blend']['mean']:.1f} / word blend {result['edit_bg_psnr']['mean']:.1f} / "
          f"true-mask blend {result['edit_bg_psnr_mask_blend']['mean']:.1f} dB -> {out}")


if __name__ == "__main__":
    main()
