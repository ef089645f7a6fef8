"""Null-text inversion and Prompt-to-Prompt on the tiny model: reconstruction error, cost, background preservation.

Twenty seeded cases. Case k draws a scene with numpy's generator seeded with k (a coloured circle on the left, a
coloured square on the right, a random background) captioned "a <colour> {circle} and a <colour> {square}". Each scene
is inverted at 50 steps with guidance 7.5, once by plain DDIM inversion and once by canonical null-text inversion,
and the NTI inversion is edited "circle" -> "ring" (P2P defaults: cross 0.8, self 0.4) without and with a local blend.

The model is tiny_bundle(0, latent_size=16) with its UNet output convolution scaled by 0.03 (random weights; see
chapter 4). Its cross-attention maps are nearly flat, so P2P's attention mask (threshold 0.3) covers the whole
image; the blended edit therefore blends over a fixed region, the drawn circle, and the background PSNR is measured
outside that region, against the VAE round trip of the input (the best reconstruction any inversion can reach). The
coverage of P2P's attention mask is reported too. Writes benchmarks/results/nti_p2p.json (atomically).

    python benchmarks/nti_p2p.py [--cases 20] [--steps 50] [--threads N]
"""
import argparse
import math
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

import dpl_nb
from _results import write_result
from dpl_nb.inversion import invert, reconstruct
from dpl_nb.models import tiny_bundle, to_pil
from dpl_nb.p2p import edit, word_masks
from dpl_nb.prompts import parse_prompt, word_positions

COLOURS = {"red": (220, 50, 40), "blue": (40, 70, 220), "green": (40, 170, 60), "yellow": (250, 210, 40),
           "white": (245, 245, 245)}  # words both the tiny model's and the toy model's tokenizers know
NTI_TARGET_MAX = 1400  # UNet evaluations (batch-1 equivalents, forward + backward) for NTI at 50 steps


def scene(seed: int, size: int):
    "Picture, source prompt, target prompt and circle mask `(size, size)` of case `seed`"
    rng = np.random.default_rng(seed)
    circle_colour, square_colour = rng.choice(list(COLOURS), size=2, replace=False)
    picture = Image.new("RGB", (size, size), tuple(int(c) for c in rng.integers(60, 200, size=3)))
    mask = Image.new("L", (size, size))
    r = size * rng.uniform(0.14, 0.22)
    cx, cy = size * rng.uniform(0.25, 0.35), size * rng.uniform(0.3, 0.7)
    for canvas, fill in ((picture, COLOURS[circle_colour]), (mask, 255)):
        ImageDraw.Draw(canvas).ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill)
    s = size * rng.uniform(0.15, 0.2)
    sx, sy = size * rng.uniform(0.68, 0.78), size * rng.uniform(0.3, 0.7)
    ImageDraw.Draw(picture).rectangle((sx - s, sy - s, sx + s, sy + s), fill=COLOURS[square_colour])
    source = f"a {circle_colour} {{circle}} and a {square_colour} {{square}}"
    return picture, source, source.replace("{circle}", "{ring}"), torch.from_numpy(np.asarray(mask) > 0)


def psnr_outside(image: Image.Image, reference: Image.Image, region: torch.Tensor) -> float | None:
    "PSNR (dB, 8-bit images) over the pixels outside `region`; None when they are identical"
    a, b = (np.asarray(i, dtype=np.float64) / 255 for i in (image, reference))
    mse = float(((a - b) ** 2)[~region.numpy()].mean())
    return None if mse == 0 else 10 * math.log10(1 / mse)


def summary(values: list) -> dict:
    values = [v for v in values if v is not None]
    return dict(mean=statistics.fmean(values), median=statistics.median(values), min=min(values), max=max(values))


def run_case(bundle, seed: int, steps: int) -> dict:
    start = time.perf_counter()
    picture, source, target, circle = scene(seed, bundle.image_size)
    z0 = bundle.encode(picture)
    reference = bundle.decode(z0)
    ddim = invert(bundle, picture, source, num_steps=steps, method="ddim", progress=False)
    nti = invert(bundle, picture, source, num_steps=steps, progress=False)
    free = edit(bundle, nti, target, progress=False)
    blended = edit(bundle, nti, target, blend_region=circle, blend_start=0.2, progress=False)
    reference = to_pil(reference[0])
    positions = [word_positions(bundle.tokenizer, parse_prompt(p).text, w) for p, w in ((source, "circle"),
                                                                                        (target, "ring"))]
    attention = word_masks(free.maps, positions, tuple(z0.shape[-2:]))
    return dict(
        seed=seed, prompt=source, target=target,
        ddim_recon_mse=torch.mean((reconstruct(bundle, ddim, progress=False) - z0) ** 2).item(),
        nti_recon_mse=torch.mean((free.latents[:1] - z0) ** 2).item(),  # the edit's source row is NTI's reconstruction
        nti_unet_evals=nti.cost.total, nti_forward=nti.cost.forward, nti_backward=nti.cost.backward,
        nti_inner_steps=sum(nti.inner_steps),
        edit_bg_psnr=psnr_outside(blended.edited, reference, circle),
        edit_bg_psnr_no_blend=psnr_outside(free.edited, reference, circle),
        source_bg_psnr=psnr_outside(free.source, reference, circle),
        attention_mask_coverage=(attention[0] | attention[1]).float().mean().item(),
        seconds=time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", type=int, default=20)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "nti_p2p.json"))
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    bundle = tiny_bundle(seed=0, latent_size=16, out_scale=0.03)  # the model of the measurements; the toy model will replace it
    cases = []
    for seed in range(args.cases):
        cases.append(run_case(bundle, seed, args.steps))
        c = cases[-1]
        print(f"case {seed:2d}: recon MSE DDIM {c['ddim_recon_mse']:.2e} NTI {c['nti_recon_mse']:.2e}, "
              f"NTI {c['nti_unet_evals']} evals, bg PSNR blend {c['edit_bg_psnr']} / no blend "
              f"{c['edit_bg_psnr_no_blend']} dB, {c['seconds']:.0f} s", flush=True)
    column = lambda key: [c[key] for c in cases]
    evals = summary(column("nti_unet_evals"))
    result = {
        "benchmark": "nti_p2p", "cases": args.cases, "steps": args.steps, "guidance_scale": 7.5,
        "model": f"{bundle.model_id}: tiny_bundle(0, latent_size=16), UNet conv_out scaled by 0.03, random weights",
        "ddim_recon_mse": summary(column("ddim_recon_mse")),
        "nti_recon_mse": summary(column("nti_recon_mse")),
        "nti_to_ddim_mse_ratio": summary([n / d for n, d in zip(column("nti_recon_mse"), column("ddim_recon_mse"))]),
        "nti_unet_evals": {**evals, "target_max": NTI_TARGET_MAX, "bound": args.steps + args.steps * (2 + 2 * 10),
                           "meets_target": evals["max"] <= NTI_TARGET_MAX},
        "edit_bg_psnr": summary(column("edit_bg_psnr")),
        "edit_bg_psnr_no_blend": summary(column("edit_bg_psnr_no_blend")),
        "source_bg_psnr": summary(column("source_bg_psnr")),
        "attention_mask_coverage": summary(column("attention_mask_coverage")),
        "notes": {
            "recon_mse": "latent-space MSE between the guided (w=7.5) reconstruction and z0 = encode(image)",
            "nti_unet_evals": "UNet evaluations at batch 1 of the whole inversion (DDIM inversion + NTI), forward "
                              "and backward counted (UNetCounter); bound = T + T * (1 cond + 2 * 10 inner + 1 advance)",
            "edit_bg_psnr": "PSNR (dB) outside the edited region between the edit (circle -> ring) and the VAE round "
                            "trip of the input; the region is the drawn circle (a fixed region: the tiny model's "
                            "random-weight attention gives no object masks), blended with blend_region from 20% of "
                            "the steps",
            "edit_bg_psnr_no_blend": "the same edit and region without a local blend",
            "source_bg_psnr": "the source row (NTI reconstruction) against the same reference, same region",
            "attention_mask_coverage": "fraction of the latent covered by P2P's attention mask (union of circle and "
                                       "ring, threshold 0.3, maps averaged over steps): about 1 with random weights",
        },
        "per_case": cases,
        "seconds": sum(column("seconds")), "threads": torch.get_num_threads(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs", "torch": torch.__version__,
        "dpl_nb": dpl_nb.__version__,
    }
    out = write_result(result, args.out)
    print(f"NTI/DDIM reconstruction MSE {result['nti_to_ddim_mse_ratio']['mean']:.2f} (mean ratio), NTI evals worst "
          f"{evals['max']} (target <= {NTI_TARGET_MAX}), background PSNR {result['edit_bg_psnr']['mean']:.1f} dB "
          f"with blend vs {result['edit_bg_psnr_no_blend']['mean']:.1f} dB without -> {out}")


if __name__ == "__main__":
    main()
