"Loading models and images, and the errors a user sees when something is wrong."
import time

import numpy as np
import pytest
import torch
from diffusers import StableDiffusionPipeline
from PIL import Image

from dpl_nb.models import UNetCounter, load_bundle, load_image, tiny_bundle, to_pil


def test_tiny_bundle_is_deterministic(bundle):
    other = tiny_bundle(seed=0)
    assert all(torch.equal(p, q) for p, q in zip(bundle.unet.parameters(), other.unet.parameters()))
    assert not all(torch.equal(p, q) for p, q in zip(bundle.unet.parameters(), tiny_bundle(seed=1).unet.parameters()))


def test_load_bundle_round_trip(bundle, tmp_path):
    pipe = StableDiffusionPipeline(bundle.vae, bundle.text_encoder, bundle.tokenizer, bundle.unet, bundle.scheduler,
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(tmp_path)
    loaded = load_bundle(tmp_path)
    assert all(torch.equal(p, q) for p, q in zip(loaded.text_encoder.parameters(), bundle.text_encoder.parameters()))
    assert all(torch.equal(p, q) for p, q in zip(loaded.unet.parameters(), bundle.unet.parameters()))
    assert loaded.tokenizer("a zebra").input_ids == bundle.tokenizer("a zebra").input_ids
    assert loaded.attn_res == bundle.attn_res and loaded.scheduler.config.steps_offset == 1
    assert not any(p.requires_grad for p in loaded.unet.parameters())
    x = torch.randn(1, 4, 32, 32, generator=torch.Generator().manual_seed(0))
    c = torch.randn(1, 77, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.allclose(loaded.unet(x, 10, encoder_hidden_states=c).sample,
                              bundle.unet(x, 10, encoder_hidden_states=c).sample, atol=1e-5)


def test_load_bundle_pixel_space_folder(tmp_path):
    pixel = tiny_bundle(vae=False)
    for name in ("unet", "text_encoder", "tokenizer", "scheduler"):
        getattr(pixel, name).save_pretrained(tmp_path / name)
    loaded = load_bundle(tmp_path)
    assert loaded.vae is None and loaded.image_size == 32


def test_missing_folder_fails_fast(tmp_path):
    with pytest.raises(FileNotFoundError, match="No model folder"):
        load_bundle(tmp_path / "nope" / "model")
    with pytest.raises(FileNotFoundError, match="not a diffusers model folder"):
        load_bundle(tmp_path)


def test_hub_id_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FileNotFoundError, match="HF_HUB_OFFLINE=1"):
        load_bundle("no-such-org/no-such-model")


def test_unreachable_hub_fails_fast(monkeypatch):
    # point the hub at a closed port on loopback: nothing leaves this machine
    from huggingface_hub import constants
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")
    start = time.perf_counter()
    with pytest.raises(FileNotFoundError, match="cannot be reached"):
        load_bundle("no-such-org/no-such-model")
    assert time.perf_counter() - start < 30


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "P", "CMYK", "I;16", "1"])
def test_load_image_modes(mode):
    img = Image.new("RGB", (40, 30), (200, 30, 60)).convert(mode)
    x = load_image(img, 16)
    assert x.shape == (1, 3, 16, 16) and x.dtype == torch.float32
    assert -1 <= x.min() and x.max() <= 1


def test_load_image_crop_and_resize_sizes():
    img = Image.fromarray(np.arange(60 * 90 * 3, dtype=np.uint8).reshape(60, 90, 3) % 251)
    assert load_image(img, (24, 32)).shape == (1, 3, 24, 32)
    assert load_image(img, 32, fit="resize").shape == (1, 3, 32, 32)
    assert to_pil(load_image(img, (60, 90))[0]).tobytes() == img.tobytes()  # same size: unchanged


def test_load_image_bad_input(tmp_path):
    with pytest.raises(FileNotFoundError, match="no file at"):
        load_image(tmp_path / "missing.png")
    (tmp_path / "text.jpg").write_text("hello")
    with pytest.raises(ValueError, match="not an image file"):
        load_image(tmp_path / "text.jpg")
    with pytest.raises(ValueError, match="is a folder"):
        load_image(tmp_path)
    with pytest.raises(ValueError, match="file path or a PIL.Image"):
        load_image(torch.zeros(3, 8, 8))
    with pytest.raises(ValueError, match="fit must be"):
        load_image(Image.new("RGB", (8, 8)), fit="squash")
    with pytest.raises(ValueError, match="size must be positive"):
        load_image(Image.new("RGB", (8, 8)), 0)


def test_encode_rejects_bad_shapes(bundle):
    with pytest.raises(ValueError, match="multiples of 16"):
        bundle.encode(torch.zeros(1, 3, 40, 40))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        bundle.encode(torch.zeros(3, 64, 64))


def test_unet_counter_counts_batches_and_backward(bundle):
    x = torch.randn(3, 4, 32, 32)
    c = torch.randn(3, 77, 32, requires_grad=True)
    with UNetCounter(bundle.unet) as cost:
        bundle.unet(x, 5, encoder_hidden_states=c).sample.sum().backward()
    assert (cost.forward, cost.backward) == (3, 3)


# --- models dpl_nb does not support: refused when loaded, from their configs, with one line ----------------------

def _tiny_sdxl_folder(path):
    "A random-weight SDXL pipeline of diffusers' tiny test topology, saved in the diffusers layout"
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection
    torch.manual_seed(0)
    unet = UNet2DConditionModel(block_out_channels=(32, 64), layers_per_block=2, sample_size=32, in_channels=4,
                                out_channels=4, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), attention_head_dim=(2, 4),
                                use_linear_projection=True, addition_embed_type="text_time", addition_time_embed_dim=8,
                                transformer_layers_per_block=(1, 2), projection_class_embeddings_input_dim=80,
                                cross_attention_dim=64)
    vae = AutoencoderKL(block_out_channels=[32, 64], in_channels=3, out_channels=3, latent_channels=4,
                        down_block_types=["DownEncoderBlock2D"] * 2, up_block_types=["UpDecoderBlock2D"] * 2)
    tokenizer = tiny_bundle().tokenizer
    config = CLIPTextConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=37, num_hidden_layers=2,
                            num_attention_heads=4, projection_dim=32)
    pipe = StableDiffusionXLPipeline(vae, CLIPTextModel(config), CLIPTextModelWithProjection(config), tokenizer,
                                     tokenizer, unet, EulerDiscreteScheduler())
    pipe.save_pretrained(path)
    return pipe


def _tiny_inpainting_folder(bundle, path):
    "The tiny SD 1.x pipeline with a 9-channel UNet (latent, mask, masked image), as SD inpainting models have"
    from diffusers import StableDiffusionInpaintPipeline, UNet2DConditionModel
    unet = UNet2DConditionModel.from_config({**bundle.unet.config, "in_channels": 9})
    pipe = StableDiffusionInpaintPipeline(bundle.vae, bundle.text_encoder, bundle.tokenizer, unet, bundle.scheduler,
                                          safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(path)
    return pipe


@pytest.mark.parametrize("kind", ["sdxl", "inpainting"])
def test_unsupported_folders_are_refused_before_any_weights_load(bundle, tmp_path, monkeypatch, capsys, kind):
    from diffusers import ModelMixin
    from transformers import PreTrainedModel
    from dpl_nb.cli import main
    from dpl_nb.models import Bundle
    pipe = _tiny_sdxl_folder(tmp_path) if kind == "sdxl" else _tiny_inpainting_folder(bundle, tmp_path)
    needle = "found an SDXL model" if kind == "sdxl" else "an inpainting model"
    with pytest.raises(ValueError, match=needle) as err:
        Bundle.from_pipe(pipe)
    def no_weights(*args, **kwargs):
        raise AssertionError("weights were read before the model was refused")
    monkeypatch.setattr(ModelMixin, "from_pretrained", classmethod(no_weights))
    monkeypatch.setattr(PreTrainedModel, "from_pretrained", classmethod(no_weights))
    with pytest.raises(ValueError, match=needle) as err:
        load_bundle(tmp_path)
    assert "\n" not in str(err.value) and "dpl_nb supports Stable Diffusion 1.x" in str(err.value)
    image = tmp_path / "photo.png"
    Image.new("RGB", (64, 64)).save(image)
    assert main(["invert", image, "--prompt", "a {cat}", "--model", tmp_path, "-o", tmp_path / "x.safetensors"]) == 2
    err_lines = capsys.readouterr().err.splitlines()
    assert len([l for l in err_lines if l.startswith("dpl_nb: error: ")]) == 1 and needle in err_lines[-1]
    assert not (tmp_path / "x.safetensors").exists()


def test_from_pipe_shares_the_modules(bundle):
    from dpl_nb.models import Bundle
    pipe = StableDiffusionPipeline(bundle.vae, bundle.text_encoder, bundle.tokenizer, bundle.unet, bundle.scheduler,
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    wrapped = Bundle.from_pipe(pipe)
    assert wrapped.unet is pipe.unet and wrapped.vae is pipe.vae and wrapped.tokenizer is pipe.tokenizer
    assert wrapped.scheduler.config.clip_sample is False and wrapped.scheduler is not pipe.scheduler
    with pytest.raises(ValueError, match="has no unet"):
        Bundle.from_pipe(object())
