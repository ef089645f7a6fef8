"Metrics: attention IoU (reference protocol), background preservation, DINO / CLIP on tiny random models, the toy judge."
import math
import socket

import numpy as np
import pytest
import torch
from PIL import Image

from dpl_nb import metrics
from dpl_nb.metrics import (THRESHOLDS, attention_iou, background_preservation, clip_score, distractor_preserved,
                            edit_success, load_clip, load_dino, mse, psnr, ssim, structure_distance, word_ious)


@pytest.fixture(scope="module")
def scene():
    from dpl_nb.toymoset import toymo_set
    scene = toymo_set()[2]  # an ordinary scene (toy world v1's scene 2: "a red {diamond} and a white {circle}")
    assert scene.braced == "a red {cat} and a green {zebra}"
    return scene


@pytest.fixture(scope="module")
def judge():
    from dpl_nb.toyjudge import load_judge
    return load_judge()


def rectangle(top, bottom, left, right, size=32):
    mask = np.zeros((size, size), bool)
    mask[top:bottom, left:right] = True
    return mask


def independent_iou(word_map, mask, thresholds):
    "The reference code's mean_iou, written out threshold by threshold"
    m = word_map.numpy().astype(np.float64)
    picture = Image.fromarray(np.uint8(m / m.max() * 255))
    picture = picture.resize((256, 256), resample=Image.Resampling.BICUBIC)
    picture = picture.resize((mask.shape[1], mask.shape[0]), resample=Image.Resampling.BICUBIC)
    a = np.array(picture).astype(np.float64)
    a /= a.max()
    out = []
    for th in thresholds:
        pred = a > th
        inter, union = np.logical_and(pred, mask).sum(), np.logical_or(pred, mask).sum()
        out.append(inter / union if union else 0.0)
    return np.array(out)


# ---------------------------------------------------------------- attention IoU

def test_thresholds():
    assert THRESHOLDS.shape == (21,) and THRESHOLDS[0] == 0 and THRESHOLDS[-1] == 1
    assert np.array_equal(THRESHOLDS, np.round(np.linspace(0, 1, 21), 2)) and 0.3 in THRESHOLDS


def test_attention_iou_matches_an_independent_computation():
    gen = torch.Generator().manual_seed(0)
    for size, mask in ((32, rectangle(5, 20, 9, 30)), (64, rectangle(10, 50, 3, 33, 64))):
        word_map = torch.rand(16, 16, generator=gen) ** 3
        assert np.allclose(attention_iou(word_map, mask, THRESHOLDS), independent_iou(word_map, mask, THRESHOLDS))
        assert np.allclose(attention_iou(word_map, torch.from_numpy(mask), THRESHOLDS),
                           attention_iou(word_map, mask, THRESHOLDS))  # a tensor mask is the same mask


def test_attention_iou_known_answers():
    mask = rectangle(8, 24, 8, 20)
    uniform = attention_iou(torch.ones(16, 16), mask, THRESHOLDS)
    assert np.allclose(uniform[:-1], mask.mean()) and uniform[-1] == 0  # selects everything below 1, nothing at 1
    exact = attention_iou(torch.from_numpy(mask).float(), mask, THRESHOLDS)
    assert (exact[(THRESHOLDS >= 0.15) & (THRESHOLDS <= 0.75)] == 1).all() and exact[0] < 1 and exact[-1] == 0
    coarse = torch.zeros(16, 16); coarse[4:12, 4:10] = 1
    assert np.array_equal(attention_iou(coarse, mask), [1.0])  # the default threshold 0.3
    assert attention_iou(coarse, mask, 0.5).shape == (1,)
    assert attention_iou(coarse * 1e-6, mask, 0.3)[0] == 1  # the map's scale does not matter
    assert attention_iou(torch.zeros(16, 16), np.zeros((32, 32), bool), THRESHOLDS).sum() == 0  # empty union: 0
    elsewhere = torch.zeros(16, 16); elsewhere[0:3, 13:16] = 1
    assert attention_iou(elsewhere, mask, 0.3)[0] == 0  # a map on another object


def test_attention_iou_errors():
    with pytest.raises(ValueError, match="word_map"):
        attention_iou(torch.ones(16, 16, 77), rectangle(0, 4, 0, 4))
    with pytest.raises(ValueError, match="mask"):
        attention_iou(torch.ones(16, 16), np.full((32, 32), 0.5))


def test_word_ious():
    left, right = rectangle(8, 24, 2, 14), rectangle(4, 28, 18, 30)
    maps = torch.full((16, 16, 77), 0.01)
    maps[..., 2] = torch.from_numpy(left[::2, ::2]).float()
    maps[..., 5] = torch.from_numpy(right[::2, ::2]).float()
    maps[..., 6] = torch.from_numpy(right[::2, ::2]).float() * 0.5
    masks = np.stack([left, right])
    ious = word_ious(maps, [[2], [5, 6]], masks)
    assert ious.shape == (2, 21) and ious[0, 6] == 1 and ious[1, 6] == 1 and (ious[:, -1] == 0).all()
    for k, (pos, m) in enumerate(zip([[2], [5, 6]], masks)):  # a word's map is the mean of its tokens
        assert np.array_equal(ious[k], attention_iou(maps[..., pos].mean(-1), m, THRESHOLDS))
    steps = torch.stack([maps, 2 * maps, 3 * maps])  # (T, r, r, 77) is averaged over T
    assert np.array_equal(word_ious(steps, [[2], [5, 6]], torch.from_numpy(masks)), ious)
    assert word_ious(maps, [[2], [5, 6]], masks, 0.3).shape == (2, 1)
    assert (word_ious(maps, [[5, 6], [2]], masks, 0.3) == 0).all()  # each word against the other's object


def test_word_ious_errors():
    maps, masks = torch.rand(16, 16, 77), np.stack([rectangle(0, 8, 0, 8)] * 2)
    with pytest.raises(ValueError, match="positions names 1 words but there are 2 masks"):
        word_ious(maps, [[1]], masks)
    with pytest.raises(ValueError, match="maps"):
        word_ious(torch.rand(16, 77), [[1], [2]], masks)
    with pytest.raises(ValueError, match="masks"):
        word_ious(maps, [[1]], masks[0])
    with pytest.raises(ValueError, match="at least one token"):
        word_ious(maps, [[1], []], masks)


# ---------------------------------------------------------------- background preservation

def test_identical_and_shifted(scene):
    image = scene.image
    assert mse(image, image) == 0 and psnr(image, image) == math.inf and ssim(image, image) == 1
    assert mse(scene.pil, image) == 0 and psnr(scene.pil, image) == math.inf  # PIL and array alike
    shifted = np.roll(image, 3, axis=0)
    assert mse(image, shifted) > 0 and math.isfinite(psnr(image, shifted)) and ssim(image, shifted) < 0.9
    assert mse(image, shifted) == mse(shifted, image) and psnr(image, shifted) == psnr(shifted, image)


def test_mse_and_psnr_values():
    a = np.zeros((8, 8, 3), np.uint8)
    b = np.full((8, 8, 3), 51, np.uint8)  # 51 / 255 = 0.2 everywhere
    assert np.isclose(mse(a, b), 0.04) and np.isclose(psnr(a, b), 10 * math.log10(1 / 0.04))
    b[:4] = 0  # the top half now agrees
    top, bottom = rectangle(0, 4, 0, 8, 8), rectangle(4, 8, 0, 8, 8)
    assert mse(a, b, top) == 0 and psnr(a, b, top) == math.inf
    assert np.isclose(mse(a, b, bottom), 0.04) and np.isclose(mse(a, b), 0.02)


def test_ssim_matches_skimage_and_masks(scene):
    from skimage.metrics import structural_similarity
    image = scene.image
    noisy = np.clip(image + np.random.default_rng(0).normal(0, 10, image.shape), 0, 255).astype(np.uint8)
    reference = structural_similarity(image, noisy, channel_axis=-1, data_range=255)
    assert np.isclose(ssim(image, noisy), reference) and np.isclose(ssim(image, noisy, np.ones((32, 32), bool)), reference)
    painted = image.copy(); painted[scene.masks[0]] = 0
    assert ssim(painted, image, ~scene.masks[0]) == 1  # the windows do not see the paint
    assert ssim(painted, image, scene.masks[0] | ~scene.masks[0]) < 1
    with pytest.raises(ValueError, match="border"):
        ssim(image, noisy, rectangle(0, 2, 0, 32))


def test_background_preservation(scene):
    image, region = scene.image, scene.masks[0]
    changed = image.copy(); changed[region] = (0, 255, 0)
    scores = background_preservation(changed, image, region)
    assert scores["psnr"] == math.inf and scores["ssim"] == 1 and scores["mse"] == 0
    assert set(scores) == {"psnr", "ssim", "mse"} | ({"lpips"} if metrics._lpips_model() is not None else set())
    assert background_preservation(Image.fromarray(changed), scene.pil, torch.from_numpy(region)) == scores
    spill = changed.copy(); spill[np.roll(region, 1, axis=1)] = 0
    assert background_preservation(spill, image, region)["mse"] > 0
    assert background_preservation(spill, image, region, grow=1)["mse"] == 0
    other = image.copy(); other[scene.masks[1]] = 0  # the edit changed the other object: the background saw it
    bad = background_preservation(other, image, region)
    assert bad["mse"] > 0 and bad["psnr"] < 30 and bad["ssim"] < 1


def test_background_preservation_with_lpips(scene, monkeypatch):
    "The LPIPS key appears when a model is available, computed on the filled image over the background"
    seen = {}

    def fake(a, b):
        seen["a"] = a
        return (a - b).abs().mean(1, keepdim=True)  # (1, 1, H, W), as LPIPS(spatial=True)
    monkeypatch.setattr(metrics, "_lpips_model", lambda: fake)
    image, region = scene.image, scene.masks[0]
    changed = image.copy(); changed[region] = 0
    assert background_preservation(changed, image, region)["lpips"] == 0  # the edit region never reaches it
    assert torch.equal(seen["a"], torch.from_numpy(image).permute(2, 0, 1)[None].float() / 127.5 - 1)
    assert background_preservation(np.roll(image, 2, 0), image, region)["lpips"] > 0


def test_size_and_type_errors(scene):
    image = scene.image
    small = np.asarray(scene.pil.resize((16, 16)))
    with pytest.raises(ValueError, match="edited is 16x16 but source is 32x32 .* compare images of the same size"):
        background_preservation(small, image, scene.masks[0])
    with pytest.raises(ValueError, match="image_a is 32x32 but image_b is 16x16"):
        psnr(image, small)
    with pytest.raises(ValueError, match="mask is 16x16 but the images are 32x32"):
        mse(image, image, np.ones((16, 16), bool))
    with pytest.raises(ValueError, match="edit_mask is 16x16"):
        background_preservation(image, image, np.ones((16, 16), bool))
    with pytest.raises(ValueError, match="uint8 array"):
        mse(image.astype(np.float32), image)
    with pytest.raises(ValueError, match="uint8 array"):
        ssim(torch.zeros(3, 32, 32), image)
    with pytest.raises(ValueError, match="no pixels"):
        psnr(image, image, np.zeros((32, 32), bool))
    with pytest.raises(ValueError, match="whole image"):
        background_preservation(image, image, np.ones((32, 32), bool))


# ---------------------------------------------------------------- DINO and CLIP

@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    "Folders with a tiny random ViT (DINO's layout) and a tiny random CLIP, each with its processor"
    import transformers
    from transformers import CLIPConfig, CLIPModel, CLIPProcessor, ViTConfig, ViTModel
    # the PIL image processors: *ImageProcessorPil in transformers 5, *ImageProcessor in transformers 4
    CLIPImageProcessorPil = getattr(transformers, "CLIPImageProcessorPil", None) or transformers.CLIPImageProcessor
    ViTImageProcessorPil = getattr(transformers, "ViTImageProcessorPil", None) or transformers.ViTImageProcessor
    from dpl_nb.toymodel import toy_tokenizer
    root = tmp_path_factory.mktemp("metric_models")
    torch.manual_seed(0)
    ViTModel(ViTConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                       intermediate_size=64), add_pooling_layer=False).save_pretrained(root / "dino")
    ViTImageProcessorPil(size={"height": 32, "width": 32}).save_pretrained(root / "dino")
    tokenizer = toy_tokenizer()
    CLIPModel(CLIPConfig(
        text_config=dict(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, max_position_embeddings=77, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id),
        vision_config=dict(image_size=32, patch_size=8, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                           num_attention_heads=4), projection_dim=16)).save_pretrained(root / "clip")
    CLIPProcessor(image_processor=CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}),
                  tokenizer=tokenizer).save_pretrained(root / "clip")
    return root


def test_structure_distance(tiny_models, scene):
    dino = load_dino(tiny_models / "dino")
    model, processor = dino
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    image = scene.image
    assert structure_distance(dino, image, scene.pil) == 0
    shifted = np.roll(image, 4, axis=1)
    assert structure_distance(dino, image, shifted) > 0 and structure_distance(dino, image, shifted, layer=0) > 0
    assert structure_distance(dino, image, shifted) == structure_distance(dino, shifted, image)  # symmetric
    with pytest.raises(ValueError, match="layer"):
        structure_distance(dino, image, shifted, layer=2)


def test_structure_distance_is_the_key_self_similarity_mse(tiny_models, scene):
    "By hand: run the layers ourselves up to the last layer's key projection"
    model, processor = load_dino(tiny_models / "dino")
    shifted = np.roll(scene.image, 4, axis=1)

    def similarity(image):
        pixels = processor(images=Image.fromarray(image), return_tensors="pt").pixel_values
        with torch.no_grad():
            hidden = model(pixel_values=pixels, output_hidden_states=True).hidden_states[-2]  # input of the last layer
            layer = [m for m in model.modules() if type(m).__name__ == "ViTLayer"][-1]
            key = getattr(layer.attention, "k_proj", None) or getattr(layer.attention, "attention", None).key
            keys = key(layer.layernorm_before(hidden))[0]
        keys = keys / keys.norm(dim=-1, keepdim=True)
        return keys @ keys.T
    a, b = similarity(scene.image), similarity(shifted)
    assert a.shape == (17, 17)
    assert np.isclose(structure_distance((model, processor), scene.image, shifted), ((a - b) ** 2).mean().item(),
                      rtol=1e-5, atol=1e-9)


def test_clip_score(tiny_models, scene):
    clip = load_clip(tiny_models / "clip")
    model, processor = clip
    score = clip_score(clip, scene.pil, scene.caption)
    assert 0 <= score <= 100 and clip_score(clip, scene.image, scene.braced) == score
    with torch.no_grad():
        image = model.visual_projection(model.vision_model(**processor(images=scene.pil, return_tensors="pt")).pooler_output)
        cosine = lambda caption: torch.nn.functional.cosine_similarity(image, model.text_projection(
            model.text_model(**processor(text=caption, return_tensors="pt")).pooler_output)).item()
    for caption in (scene.caption, "a blue panda"):   # the score follows the text (random weights: either sign)
        assert np.isclose(clip_score(clip, scene.pil, caption), 100 * max(cosine(caption), 0), atol=1e-4)
    assert cosine(scene.caption) != cosine("a blue panda")


def test_clip_score_is_clipped_at_zero(tiny_models, scene, monkeypatch):
    model, processor = load_clip(tiny_models / "clip")
    with torch.no_grad():
        model.text_projection.weight.neg_()  # flips the sign of every cosine
    flipped = clip_score((model, processor), scene.pil, scene.caption)
    with torch.no_grad():
        model.text_projection.weight.neg_()
    original = clip_score((model, processor), scene.pil, scene.caption)
    assert min(flipped, original) == 0 and max(flipped, original) > 0


@pytest.fixture
def no_network(monkeypatch):
    "Any attempt to open a connection fails the test"
    def refuse(*args, **kwargs):
        raise AssertionError("the test tried to reach the network")
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)


@pytest.mark.parametrize("loader", [load_dino, load_clip])
def test_missing_models(loader, tmp_path, monkeypatch, no_network):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FileNotFoundError, match="there is no folder .*huggingface-cli download"):
        loader(tmp_path / "absent")
    with pytest.raises(FileNotFoundError, match="no config.json"):
        loader(tmp_path)
    with pytest.raises(FileNotFoundError, match="not in the local Hugging Face cache and HF_HUB_OFFLINE=1") as info:
        loader("dpl-nb/no-such-model")
    assert "huggingface-cli download dpl-nb/no-such-model" in str(info.value) and "local folder" in str(info.value)


def test_missing_model_with_the_hub_unreachable(monkeypatch, no_network):
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(metrics, "_hub_reachable", lambda: False)
    with pytest.raises(FileNotFoundError, match="cannot be reached"):
        load_dino("dpl-nb/no-such-model")


def test_a_folder_of_another_model_is_an_error(tiny_models, tmp_path):
    with pytest.raises(ValueError, match="holds a 'vit' model, not CLIP"):
        load_clip(tiny_models / "dino")  # CLIPModel itself would load it with random weights
    import shutil
    shutil.copy(tiny_models / "dino" / "config.json", tmp_path / "config.json")  # a config without weights
    with pytest.raises(FileNotFoundError, match="load_dino: could not load"):
        load_dino(tmp_path)


# ---------------------------------------------------------------- the toy judge

def test_judge_on_the_unedited_scene(judge, scene):
    from dpl_nb.toyworld import KINDS
    for index, o in enumerate(scene.objects):
        assert distractor_preserved(judge, scene.pil, scene, index) is True
        assert distractor_preserved(judge, scene.image, scene, index) is True
        for kind in KINDS:
            if kind != o.noun:
                assert edit_success(judge, scene.pil, scene, index, kind) is False


def test_judge_sees_an_edit(judge, scene):
    "The cat redrawn as a leopard: edit success; the zebra erased: the distractor is gone"
    from dataclasses import replace
    from dpl_nb.toyworld import render_scene
    first, second = scene.objects
    spotted = render_scene([replace(first, kind="leopard"), second], np.random.default_rng(0))
    assert edit_success(judge, spotted.image, scene, 0, "leopard") and distractor_preserved(judge, spotted.image, scene, 1)
    assert edit_success(judge, spotted.image, scene, 0, "leopard", keep_colour=True)  # a swap that kept the colour
    blue_leopard = render_scene([replace(first, kind="leopard", colour="blue"), second], np.random.default_rng(0))
    assert edit_success(judge, blue_leopard.image, scene, 0, "leopard")
    assert not edit_success(judge, blue_leopard.image, scene, 0, "leopard", keep_colour=True)  # ... and one that recoloured
    recoloured = render_scene([first, replace(second, colour="blue")], np.random.default_rng(0))
    assert not distractor_preserved(judge, recoloured.image, scene, 1)  # the colour counts too
    erased = scene.image.copy(); erased[scene.masks[1]] = scene.image[0, 0]
    assert not distractor_preserved(judge, erased, scene, 1)


def test_judge_sees_a_recolouring(judge, scene):
    "The cat drawn blue: a colour edit succeeded, a noun edit did not, and the zebra is untouched"
    from dataclasses import replace
    from dpl_nb.toyworld import render_scene
    first, second = scene.objects
    blue = render_scene([replace(first, colour="blue"), second], np.random.default_rng(0))
    assert edit_success(judge, blue.image, scene, 0, new_colour="blue") is True
    assert edit_success(judge, blue.image, scene, 0, new_colour="green") is False
    assert edit_success(judge, blue.image, scene, 0, new_shape="leopard") is False
    assert edit_success(judge, blue.image, scene, 0, new_shape="leopard", new_colour="blue") is False  # both asked
    assert distractor_preserved(judge, blue.image, scene, 1)
    assert edit_success(judge, scene.pil, scene, 0, new_colour="blue") is False  # the unedited scene


def test_judge_errors(judge, scene):
    with pytest.raises(ValueError, match="index"):
        edit_success(judge, scene.pil, scene, 2, "leopard")
    with pytest.raises(ValueError, match="index"):
        distractor_preserved(judge, scene.pil, scene, -1)
    with pytest.raises(ValueError, match="already a cat"):
        edit_success(judge, scene.pil, scene, 0, "cat")
    with pytest.raises(ValueError, match="new_shape"):
        edit_success(judge, scene.pil, scene, 0, "star")
    with pytest.raises(ValueError, match="already red"):
        edit_success(judge, scene.pil, scene, 0, new_colour="red")
    with pytest.raises(ValueError, match="new_colour must be one of"):
        edit_success(judge, scene.pil, scene, 0, new_colour="pink")
    with pytest.raises(ValueError, match="cannot go with new_colour"):
        edit_success(judge, scene.pil, scene, 0, "leopard", new_colour="blue", keep_colour=True)
    with pytest.raises(ValueError, match="give new_shape, new_colour or both"):
        edit_success(judge, scene.pil, scene, 0)
    with pytest.raises(ValueError, match="image is 16x16 but the scene is 32x32"):
        distractor_preserved(judge, scene.pil.resize((16, 16)), scene, 1)


def test_a_coat_judge_sees_the_other_objects_outline():
    "Toy world v2 names coats, never outlines: the other object redrawn in another outline is not kept"
    from dpl_nb.models import TOY_MODEL
    from dpl_nb.toyjudge import load_judge
    from dpl_nb.toymoset import toymo_set
    from dpl_nb.toyworld import KINDS, OUTLINES, redraw
    judge = load_judge(TOY_MODEL / "judge")  # the shipped coat judge, the one every benchmark uses
    assert judge.world == "coats"
    for scene in toymo_set(world="coats")[:3]:
        first, other = scene.objects[:2]
        before, outlined = redraw(scene, 1, shape=next(s for s in OUTLINES if s != other.shape))
        assert distractor_preserved(judge, before.image, before, 1)
        assert not distractor_preserved(judge, outlined.image, before, 1)
        new = next(k for k in KINDS if k not in (first.kind, other.kind))
        swapped = redraw(scene, 0, kind=new)[1]  # the paper's edit: the first object's coat, nothing else
        assert edit_success(judge, swapped.image, before, 0, new, keep_colour=True)
        assert distractor_preserved(judge, swapped.image, before, 1)


def test_a_coat_swap_in_place_keeps_the_outline():
    "keep_outline: a coat-world swap counts only where the judge still sees the object's outline"
    from dataclasses import replace
    from dpl_nb.models import TOY_MODEL
    from dpl_nb.toyjudge import load_judge
    from dpl_nb.toyworld import OUTLINES, ToyObject, render_scene
    coats = load_judge(TOY_MODEL / "judge")  # the shipped toy world v2 model's judge (was tools/toy_runs/coats_v2)
    assert coats.world == "coats"
    first = ToyObject("square", "red", 9.0, 10.0, 6.0, kind="giraffe")
    second = ToyObject("circle", "blue", 22.0, 21.0, 6.0, kind="cat")
    scene = render_scene([first, second], np.random.default_rng(0))
    in_place = render_scene([replace(first, kind="zebra"), second], np.random.default_rng(0))
    other = next(o for o in OUTLINES if o != first.shape)
    reshaped = render_scene([replace(first, kind="zebra", shape=other), second], np.random.default_rng(0))
    assert edit_success(coats, in_place.image, scene, 0, "zebra", keep_colour=True, keep_outline=True)
    assert edit_success(coats, reshaped.image, scene, 0, "zebra", keep_colour=True)  # the coat alone: yes
    assert not edit_success(coats, reshaped.image, scene, 0, "zebra", keep_colour=True, keep_outline=True)
