"""Time and memory of NTI, DPL and a P2P edit on Stable Diffusion 1.4's full-size topology (random weights).

Builds SD 1.4's real topology with random weights: the 860 M-parameter UNet (320/640/1280/1280 channels, cross-attention
to 768-dim text), SD's VAE (128/256/512/512) and a CLIP ViT-L/14-sized text encoder (12 layers, 768 wide, the full
49,408-token embedding table), with a CLIP BPE tokenizer built in memory and SD's DDIM schedule. The UNet's output layer
is damped as in the tests (chapter 1), so that predicted noise is small as a trained model's is. Nothing is downloaded.

For each dtype it times, on one 512x512 image and prompt, each method followed by one Prompt-to-Prompt word swap with
a local blend (the edit is timed on its own too):
  nti        canonical null-text inversion in its worst case (no early stop: all 10 Adam steps at every step)
  dpl_lean   DPL `lean` in its worst case (every token update taken: thresholds 0), then its null-text updates
  dpl_paper  DPL `paper` (the reference code's settings) as it runs
and records seconds, UNet evaluations (batch-1 equivalents, forward + backward) and peak memory:
torch.cuda.max_memory_allocated on a GPU, the process's peak resident memory on a CPU.

On a GPU: 50 steps in float32, float16 and bfloat16, and the issue's targets (bf16: DPL-lean worst case + edit under
60 s and 10 GB; NTI + edit under 20 s). On a CPU it is a smoke test: 2 steps in float32 (the default there).
Writes benchmarks/results/sd_gpu.json (atomically) after each method; run again to resume a stopped run.

    python benchmarks/sd_gpu.py [--device cuda] [--steps 50] [--dtypes float32,float16,bfloat16] [--methods ...]
"""
import argparse
import dataclasses
import json
import platform
import resource
import time
import warnings
from pathlib import Path

import torch

import dpl_nb
from _results import write_result
from dpl_nb.dpl import DPL_PRESETS, dpl_invert
from dpl_nb.inversion import NTIConfig, invert
from dpl_nb.losses import LossConfig
from dpl_nb.models import TINY_WORDS, Bundle, clip_bpe_tokenizer, default_attn_res, sd_scheduler
from dpl_nb.p2p import edit

PROMPT, TARGET, BLEND = "a {cat} sitting on a table", "a {tiger} sitting on a table", ("cat", "tiger")
METHODS = ("nti", "dpl_lean", "dpl_paper")
TARGETS = {"dpl_lean_seconds": 60.0, "dpl_lean_gib": 10.0, "nti_seconds": 20.0}  # bf16 on an H100/H200-class GPU


def sd14_topology(seed: int = 0, out_scale: float = 0.03, tiny: bool = False) -> Bundle:
    "Random weights in SD 1.4's topology (or, with `tiny`, the same layout at small widths, for a quick check)"
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel
    tokenizer = clip_bpe_tokenizer(TINY_WORDS)
    torch.manual_seed(seed)
    width = (32, 32, 64, 64) if tiny else (320, 640, 1280, 1280)
    text = CLIPTextModel(CLIPTextConfig(
        vocab_size=49408, hidden_size=64 if tiny else 768, intermediate_size=128 if tiny else 3072,
        num_hidden_layers=2 if tiny else 12, num_attention_heads=4 if tiny else 12, max_position_embeddings=77,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id))
    unet = UNet2DConditionModel(
        sample_size=64, in_channels=4, out_channels=4, layers_per_block=2, block_out_channels=width,
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        cross_attention_dim=text.config.hidden_size, attention_head_dim=8, norm_num_groups=32)
    with torch.no_grad():
        unet.conv_out.weight.mul_(out_scale); unet.conv_out.bias.mul_(out_scale)
    vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2, sample_size=512,
                        block_out_channels=(32, 32, 64, 64) if tiny else (128, 256, 512, 512),
                        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4)
    for m in (unet, text, vae):
        m.eval().requires_grad_(False)
    return Bundle(unet, text, tokenizer, sd_scheduler(), vae, default_attn_res(unet), f"sd14-topology-random-{seed}{'-tiny' if tiny else ''}")


def peak_memory(device: torch.device) -> float:
    "GiB: the GPU's peak allocation since the last reset, or the process's peak resident memory on a CPU"
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2 ** 30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20  # kB on Linux


def timed(device: torch.device, run):
    "(result, seconds, peak GiB) of `run()`"
    if device.type == "cuda":
        torch.cuda.synchronize(device); torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    result = run()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return result, time.perf_counter() - start, peak_memory(device)


def run_method(bundle: Bundle, image, method: str, steps: int) -> dict:
    "Invert `image` with `method` and edit it once: seconds, evaluations and peak memory of both"
    worst_nti = NTIConfig(epsilon=None)  # no early stop: the worst case
    if method == "nti":
        invert_once = lambda: invert(bundle, image, PROMPT, num_steps=steps, nti=worst_nti, progress=False)
    elif method == "dpl_lean":
        never_below = dataclasses.replace(LossConfig(), beta_at=0.0, beta_bg=0.0, beta_dj=0.0)  # every update taken
        config = dataclasses.replace(DPL_PRESETS["lean"], losses=never_below)
        invert_once = lambda: dpl_invert(bundle, image, PROMPT, config, num_steps=steps, progress=False)
    else:
        invert_once = lambda: dpl_invert(bundle, image, PROMPT, "paper", num_steps=steps, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the background fallback warns on random weights
        inversion, inv_seconds, inv_gib = timed(bundle.device, invert_once)
    result, edit_seconds, edit_gib = timed(bundle.device, lambda: edit(bundle, inversion, TARGET, blend_words=BLEND,
                                                                       progress=False))
    finite = bool(torch.isfinite(inversion.null_embeddings).all() and torch.isfinite(result.latents).all())
    return dict(invert_seconds=inv_seconds, edit_seconds=edit_seconds, seconds=inv_seconds + edit_seconds,
                invert_unet_evals=inversion.cost.total, edit_unet_evals=result.cost.total,
                unet_evals=inversion.cost.total + result.cost.total, peak_gib=max(inv_gib, edit_gib), finite=finite)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=None, help="denoising steps (default: 50 on a GPU, 2 on a CPU)")
    parser.add_argument("--dtypes", default=None, help="comma-separated (default: all three on a GPU, float32 on a CPU)")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--tiny", action="store_true", help="SD 1.4's layout at small widths: checks the script quickly")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--out", default=None, help="result file (default: benchmarks/results/sd_gpu.json)")
    parser.add_argument("--fresh", action="store_true", help="measure everything again (default: resume the result "
                        "file, keeping the methods it has for the same settings)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    gpu = device.type == "cuda"
    steps = args.steps or (50 if gpu else 2)
    dtypes = (args.dtypes or ("float32,float16,bfloat16" if gpu else "float32")).split(",")
    methods = args.methods.split(",")
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        parser.error(f"unknown methods {unknown}; choose from {METHODS}")
    generator = torch.Generator().manual_seed(0)
    image = torch.rand(1, 3, 512, 512, generator=generator) * 2 - 1  # a 512x512 image in [-1, 1]
    out = Path(args.out) if args.out else Path(__file__).parent / "results" / "sd_gpu.json"
    settings = dict(kind="gpu" if gpu else "cpu smoke test", device=torch.cuda.get_device_name(device) if gpu
                    else platform.processor() or platform.machine(), steps=steps, image_size=512, tiny=args.tiny)
    runs = {}
    if out.exists() and not args.fresh:  # resume: keep what a run with the same settings measured
        earlier = json.loads(out.read_text())
        if {k: earlier.get(k) for k in settings} == settings:
            runs = earlier["methods"]
            print(f"resuming {out}: {sorted((m, d) for m in runs for d in runs[m])} already measured")
    for dtype in dtypes:
        todo = [m for m in methods if dtype not in runs.get(m, {})]
        if not todo:
            continue
        bundle = sd14_topology(tiny=args.tiny)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # half precision on a CPU warns
            bundle.to(device, getattr(torch, dtype))
        params = sum(p.numel() for p in bundle.unet.parameters())
        for method in todo:
            runs.setdefault(method, {})[dtype] = record = run_method(bundle, image, method, steps)
            print(f"{method:9s} {dtype:8s} {record['seconds']:8.1f} s  {record['unet_evals']:7.1f} evals  "
                  f"{record['peak_gib']:6.2f} GiB  finite={record['finite']}", flush=True)
            result = dict(settings, unet_parameters=params, threads=torch.get_num_threads(),
                          memory="torch.cuda.max_memory_allocated" if gpu else "process peak RSS (of the process "
                          "that measured it: it includes the methods measured before it in that process)",
                          methods=runs, dpl_nb=dpl_nb.__version__, torch=torch.__version__)
            if gpu and "bfloat16" in runs.get("dpl_lean", {}) and "bfloat16" in runs.get("nti", {}):
                lean, nti = runs["dpl_lean"]["bfloat16"], runs["nti"]["bfloat16"]
                result["targets"] = dict(TARGETS, met=dict(
                    dpl_lean_seconds=lean["seconds"] < TARGETS["dpl_lean_seconds"],
                    dpl_lean_gib=lean["peak_gib"] < TARGETS["dpl_lean_gib"],
                    nti_seconds=nti["seconds"] < TARGETS["nti_seconds"]))
            write_result(result, out)  # after each method, so that a stopped run resumes
        del bundle
        if gpu:
            torch.cuda.empty_cache()
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
