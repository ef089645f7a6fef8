"""A random-weight Stable Diffusion 1.x model folder that the official DPL code and dpl_nb both load.

The layout is SD 1.4's where it shapes the algorithm: 512x512 images, SD's VAE config (four blocks, 128/256/512/512
channels, 64x64 latents, scaling 0.18215), a UNet with SD 1.x's blocks (cross-attention at 64, 32 and 16, two layers
per block, 16 transformer blocks), SD's DDIM schedule. The UNet and the CLIP text encoder are narrow so that the
reference's 51-step null-text loop runs on a CPU, and the UNet's output layer is damped so that predicted noise is
small, as a trained model's is. The tokenizer is CLIP's byte-level BPE built in memory; its vocabulary holds each word
with and without the end-of-word mark (`cat</w>` and `cat`), as CLIP's does, because the reference initialises its
placeholder tokens from the bare piece. The text encoder is written in the layout transformers 4 reads.

    python benchmarks/conformance/make_model.py OUT [--seed 0]
    python benchmarks/conformance/make_model.py MODEL [--bin-copy OUT] [--image OUT.png]
"""
import argparse
import json
import shutil
from pathlib import Path

import torch
from diffusers import AutoencoderKL, StableDiffusionPipeline, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel

from dpl_nb.models import clip_bpe_tokenizer, save_text_encoder, sd_scheduler

WORDS = ("a an the of and with on in photo cat dog tiger lion sitting standing grass table red blue").split()
OUT_SCALE = 0.03  # damping of the UNet's output layer, as in benchmarks/sd_gpu.py


def build(seed: int = 0) -> StableDiffusionPipeline:
    "The random-weight pipeline (float32, CPU)"
    tokenizer = clip_bpe_tokenizer(list(WORDS) + [w + "s" for w in WORDS if len(w) > 2])  # "cats" makes "cat" a piece
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        text_encoder = CLIPTextModel(CLIPTextConfig(
            vocab_size=len(tokenizer), hidden_size=64, intermediate_size=256, num_hidden_layers=2,
            num_attention_heads=4, max_position_embeddings=77, bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id))
        unet = UNet2DConditionModel(
            sample_size=64, in_channels=4, out_channels=4, layers_per_block=2, block_out_channels=(32, 32, 64, 64),
            down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
            up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
            cross_attention_dim=64, attention_head_dim=8, norm_num_groups=32)
        vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2, sample_size=512,
                            block_out_channels=(128, 256, 512, 512), scaling_factor=0.18215,
                            down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4)
    with torch.no_grad():
        unet.conv_out.weight.mul_(OUT_SCALE); unet.conv_out.bias.mul_(OUT_SCALE)
    return StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                   scheduler=sd_scheduler(), safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)


def save(pipe: StableDiffusionPipeline, out: Path) -> Path:
    "Write the pipeline to `out` (diffusers layout, safetensors) whole or not at all"
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    pipe.save_pretrained(tmp, safe_serialization=True)
    shutil.rmtree(tmp / "text_encoder")
    save_text_encoder(pipe.text_encoder, tmp / "text_encoder")  # with the text_model. prefix transformers 4 reads
    bpe = json.loads((tmp / "tokenizer" / "tokenizer.json").read_text())["model"]  # the slow tokenizer's two files
    (tmp / "tokenizer" / "vocab.json").write_text(json.dumps(bpe["vocab"]))
    (tmp / "tokenizer" / "merges.txt").write_text(
        "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in (m.split() if isinstance(m, str) else m for m in bpe["merges"])))
    index = json.loads((tmp / "model_index.json").read_text())  # parts an older diffusers does not know, when empty
    index = {k: v for k, v in index.items() if not (k == "image_encoder" and v == [None, None])}
    (tmp / "model_index.json").write_text(json.dumps(index, indent=2))
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return out


OLD_VAE_ATTENTION = {"to_q": "query", "to_k": "key", "to_v": "value", "to_out.0": "proj_attn"}  # diffusers < 0.14


def old_names(state: dict) -> dict:
    "The VAE's attention weights under the names diffusers used before 0.14 (`query`, ..., `proj_attn`)"
    renamed = {}
    for key, value in state.items():
        for new, old in OLD_VAE_ATTENTION.items():
            if ".attentions." in key and f".{new}." in key:
                key = key.replace(f".{new}.", f".{old}.")
        renamed[key] = value
    return renamed


def bin_copy(model: Path, out: Path) -> Path:
    "A copy of the model folder with its weights in the .bin files (and names) that diffusers 0.9 reads"
    from safetensors.torch import load_file
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(model, tmp)
    for weights in tmp.glob("*/*.safetensors"):
        name = "pytorch_model.bin" if weights.name == "model.safetensors" else weights.stem + ".bin"
        state = load_file(weights)
        torch.save(old_names(state) if weights.parent.name == "vae" else state, weights.with_name(name))
        weights.unlink()
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return out


def harness_image(out: Path) -> Path:
    "The harness's 512x512 image: two plain shapes on a plain ground (a 'cat' left, a 'dog' right)"
    from PIL import Image, ImageDraw
    image = Image.new("RGB", (512, 512), (120, 160, 110))
    draw = ImageDraw.Draw(image)
    draw.ellipse((60, 150, 230, 320), fill=(200, 120, 60)); draw.rectangle((290, 170, 450, 330), fill=(90, 80, 70))
    image.save(out)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", help="the model folder to write (or, with --bin-copy or --image, to read)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--bin-copy", default=None, help="write a copy of the model folder here, with .bin weights")
    parser.add_argument("--image", default=None, help="write the harness's image here")
    args = parser.parse_args()
    if args.bin_copy or args.image:
        for path in ([bin_copy(Path(args.out), Path(args.bin_copy))] if args.bin_copy else []) + \
                    ([harness_image(Path(args.image))] if args.image else []):
            print("wrote", path)
        return
    print("wrote", save(build(args.seed), Path(args.out)))


if __name__ == "__main__":
    main()
