"""What a DPL token pass stopped after the last loss layer costs, as a share of a full UNet forward.

DPL's losses read the cross-attention maps at the loss resolution only (16x16 on Stable Diffusion 1.x at 512x512);
`dpl_nb.attention.forward_until` stops a forward right after the last of those layers, and `truncated_fraction`
counts the FLOPs of every operator (torch's FlopCounterMode) with and without the stop. Measured on SD 1.4's UNet
topology at 512x512 (64x64 latents, batch 1; built on the meta device, so no weights and no compute are needed) and
on the embedded toy model. Writes benchmarks/results/truncated_pass.json.

    python benchmarks/truncated_pass.py
"""
import argparse
import platform
from pathlib import Path

import torch
from diffusers import UNet2DConditionModel

import dpl_nb
from _results import write_result
from dpl_nb.attention import last_layer, select_layers, truncated_fraction
from dpl_nb.models import load_bundle


def sd14_unet_meta() -> UNet2DConditionModel:
    "Stable Diffusion 1.4's UNet architecture on the meta device (shapes only)"
    with torch.device("meta"):
        return UNet2DConditionModel(sample_size=64, block_out_channels=(320, 640, 1280, 1280), layers_per_block=2,
                                    cross_attention_dim=768, attention_head_dim=8).eval().requires_grad_(False)


def measure(unet, resolution: int, latent: int, channels: int, dim: int, device) -> dict:
    layers = select_layers(unet, resolution, "cross", latent)
    sample = torch.zeros(1, channels, latent, latent, device=device)
    text = torch.zeros(1, 77, dim, device=device)
    return {"fraction": truncated_fraction(unet, layers, sample, text), "loss_layers": len(layers),
            "last_layer": last_layer(layers).name.removesuffix(".processor"), "latent": latent,
            "loss_resolution": resolution}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "truncated_pass.json"))
    args = parser.parse_args()
    sd = measure(sd14_unet_meta(), 16, 64, 4, 768, "meta")
    toy = load_bundle("toy")
    toy_row = measure(toy.unet, toy.attn_res, toy.latent_size, toy.unet.config.in_channels,
                      toy.unet.config.cross_attention_dim, "cpu")
    result = {"benchmark": "truncated_pass", "sd14_topology_512": sd, "toy_model": toy_row,
              "counted_by": "torch.utils.flop_counter.FlopCounterMode (matmuls and convolutions), batch 1",
              "torch": torch.__version__, "dpl_nb": dpl_nb.__version__, "machine": platform.machine()}
    for name in ("sd14_topology_512", "toy_model"):
        row = result[name]
        print(f"{name}: a pass stopped after {row['last_layer']} costs {row['fraction']:.3f} of a full forward")
    print(f"-> {write_result(result, args.out)}")


if __name__ == "__main__":
    main()
