"""Cost of capturing the five 16x16 cross-attention maps of Stable Diffusion 1.x's UNet.

Builds the SD 1.x UNet architecture with random weights (no download), 64x64 latents, batch 2, fp32, on the CPU, and
times the plain forward (fused SDPA everywhere) against the forward with the five 16x16 cross-attention layers
captured into an AttentionStore. Runs are interleaved (plain, hooked, plain, ...) and the medians are compared.
Writes benchmarks/results/hook_overhead.json. Target: ratio <= 1.10.

    python benchmarks/hook_overhead.py [--runs 7] [--threads N]
"""
import argparse
import statistics
import time
from pathlib import Path

import torch
from diffusers import UNet2DConditionModel

import dpl_nb
from _results import machine, write_result
from dpl_nb.attention import AttentionStore, capture, cross_maps, select_layers


def sd14_unet(seed: int = 0) -> UNet2DConditionModel:
    "Stable Diffusion 1.4's UNet architecture with random weights"
    torch.manual_seed(seed)
    return UNet2DConditionModel(sample_size=64, block_out_channels=(320, 640, 1280, 1280), layers_per_block=2,
                                cross_attention_dim=768, attention_head_dim=8).eval().requires_grad_(False)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=7, help="interleaved pairs of runs (median is reported)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "hook_overhead.json"))
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    unet = sd14_unet()
    gen = torch.Generator().manual_seed(0)
    latents = torch.randn(2, 4, 64, 64, generator=gen)
    context = torch.randn(2, 77, 768, generator=gen)
    layers = select_layers(unet, 16, "cross")
    assert len(layers) == 5, [l.name for l in layers]

    def plain():
        return unet(latents, 500, encoder_hidden_states=context).sample

    def hooked():
        store = AttentionStore()
        with capture(unet, store, layers):
            out = unet(latents, 500, encoder_hidden_states=context).sample
        assert cross_maps(store, 1).shape == (16, 16, 77)
        return out

    with torch.no_grad():
        diff = (plain() - hooked()).abs().max().item()  # also a warm-up of both paths
        times = {"plain": [], "hooked": []}
        for _ in range(args.runs):
            for name, fn in (("plain", plain), ("hooked", hooked)):
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
    plain_s, hooked_s = statistics.median(times["plain"]), statistics.median(times["hooked"])
    result = {
        "benchmark": "hook_overhead", "ratio": hooked_s / plain_s, "target": 1.10,
        "plain_s": plain_s, "hooked_s": hooked_s, "runs": args.runs, "times_s": times,
        "max_abs_diff": diff, "layers": len(layers), "layer_names": [l.name for l in layers],
        "config": "SD 1.x UNet, random weights, 64x64 latents, batch 2, fp32, CPU",
        "threads": torch.get_num_threads(), "machine": machine(),
        "torch": torch.__version__, "dpl_nb": dpl_nb.__version__,
    }
    out = write_result(result, args.out)
    print(f"plain {plain_s:.3f} s, hooked {hooked_s:.3f} s, ratio {result['ratio']:.3f} "
          f"(target <= 1.10), max |diff| {diff:.1e} -> {out}")


if __name__ == "__main__":
    main()
