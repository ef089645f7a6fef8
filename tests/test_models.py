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
