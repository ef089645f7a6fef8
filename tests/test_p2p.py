"Prompt-to-Prompt on the tiny model: the source row is the reconstruction, identity edits, controllers, blending, errors."
import re

import pytest
import torch

from dpl_nb.attention import AttentionStore, AttnLayer
from dpl_nb.inversion import BatchLayout, reconstruct
from dpl_nb.models import UNetCost, UNetCounter
from dpl_nb.p2p import (LocalBlend, P2PController, WordSwap, cross_replace_alpha, edit, reweighting,
                        word_swap)
from dpl_nb.prompts import replacement_mapper, word_positions

from tiny_scenes import PROMPT, damped_tiny_bundle

STEPS = 10
TARGET = "a red {ring} and a yellow {square}"


@pytest.fixture(scope="module")
def inversion(nti):
    return nti


@pytest.fixture(scope="module")
def recon(damped, inversion):
    return reconstruct(damped, inversion, progress=False)


def max_diff(a, b):
    return (a - b).abs().max().item()


def test_source_row_is_the_reconstruction_and_identity_edit_changes_nothing(damped, inversion, recon):
    same = edit(damped, inversion, PROMPT, progress=False)
    assert max_diff(same.latents[0], recon[0]) < 1e-4
    assert max_diff(same.latents[1], recon[0]) < 1e-4
    assert same.cost == UNetCost(forward=4 * STEPS)
    assert same.maps.shape == (2, damped.attn_res, damped.attn_res, 77)
    swapped = edit(damped, inversion, TARGET, progress=False)
    assert max_diff(swapped.latents[0], recon[0]) < 1e-4
    assert max_diff(swapped.latents[1], recon[0]) > 1e-2


def test_one_inversion_many_edits(damped, inversion):
    before = [t.clone() for t in (inversion.latents, inversion.null_embeddings)]
    first = edit(damped, inversion, TARGET, progress=False)
    edit(damped, inversion, PROMPT, reweight={"circle": 4.0}, progress=False)
    again = edit(damped, inversion, TARGET, progress=False)
    assert torch.equal(first.latents, again.latents)
    assert all(torch.equal(a, b) for a, b in zip(before, (inversion.latents, inversion.null_embeddings)))
    assert all(type(p).__name__ == "AttnProcessor2_0" for p in damped.unet.attn_processors.values())


def test_two_targets_in_one_batch_equal_two_single_edits(damped, inversion):
    targets = [TARGET, "a red circle and a yellow ring"]
    both = edit(damped, inversion, targets, progress=False)
    assert both.latents.shape[0] == 3 and len(both.edits) == 2
    for k, target in enumerate(targets):
        assert max_diff(both.latents[k + 1], edit(damped, inversion, target, progress=False).latents[1]) < 1e-4


def test_swap_with_words_of_different_token_counts(damped):
    tok = damped.tokenizer
    source, target = "a red circle and a yellow square", "a red zebra and a yellow square"
    probs = torch.randn(2, 5, 77, generator=torch.Generator().manual_seed(0)).softmax(-1)
    new = word_swap(tok, source, [target])(probs, probs[None])[0]
    zebra = word_positions(tok, target, "zebra")
    assert len(zebra) == 5
    assert torch.allclose(new[..., zebra], probs[..., 3:4].expand(-1, -1, 5) / 5, atol=1e-7)
    assert torch.allclose(new[..., word_positions(tok, target, "yellow")], probs[..., [6]], atol=1e-7)


def test_reweight_alone_and_after_a_swap(damped):
    tok = damped.tokenizer
    probs = torch.randn(2, 5, 77, generator=torch.Generator().manual_seed(1)).softmax(-1)
    own = probs.flip(1)[None]
    alone = reweighting(tok, [PROMPT], {"circle": 2.0, "square": 0.0})(probs, own)[0]
    assert torch.equal(alone[..., 3], 2 * probs[..., 3]) and torch.equal(alone[..., 7], 0 * probs[..., 7])
    assert torch.equal(alone[..., 2], probs[..., 2])
    chained = reweighting(tok, [TARGET], {"ring": 3.0}, word_swap(tok, PROMPT, [TARGET]))(probs, own)[0]
    assert torch.allclose(chained[..., 3], 3 * probs[..., 3])
    with pytest.raises(ValueError, match="reweight: the word 'tiger' is not in the target prompt"):
        reweighting(tok, [TARGET], {"tiger": 2.0})


def test_controller_state_is_set_not_counted(damped):
    layer = AttnLayer("down_blocks.2.attentions.0.transformer_blocks.0.attn2.processor", "cross", "down", 2, 2)
    mapper = replacement_mapper(damped.tokenizer, PROMPT, TARGET)
    controller = P2PController(WordSwap(mapper[None]), cross_replace_alpha(damped.tokenizer, [TARGET], 10, 0.5))
    probs = torch.randn(4 * 2, 5, 77, generator=torch.Generator().manual_seed(2)).softmax(-1)
    with pytest.raises(RuntimeError, match="layout is not set"):
        controller(probs, layer)
    controller.layout = BatchLayout(2, 2)
    first = controller(probs, layer)
    for _ in range(50):  # any number of calls at the same step gives the same edit
        assert torch.equal(controller(probs, layer), first)
    rows, out = probs.unflatten(0, (4, 2)), first.unflatten(0, (4, 2))
    assert torch.equal(out[:3], rows[:3]) and torch.allclose(out[3], rows[2] @ mapper, atol=1e-7)
    controller.step = 5  # int(0.5 * 11) = 5: the injection window is over
    assert torch.equal(controller(probs, layer), probs)


def test_local_blend_keeps_the_source_outside_the_masks():
    layer = AttnLayer("up_blocks.1.attentions.0.transformer_blocks.0.attn2.processor", "cross", "up", 2, 1)
    store = AttentionStore(per_step=False)
    maps = torch.full((4, 1, 16, 77), 0.01)
    maps[2, 0, 0, 5], maps[3, 0, 15, 6] = 1.0, 1.0  # source word top-left, edit word bottom-right
    store(maps.flatten(0, 1), layer)
    blend = LocalBlend(store, [[5], [6]], resolution=4, threshold=0.3, start=2)
    blend.layout = BatchLayout(2, 2)
    latents = torch.stack([torch.zeros(4, 8, 8), torch.ones(4, 8, 8)])
    assert torch.equal(blend(1, latents), latents)
    out = blend(2, latents)[1, 0]
    assert out[:4, :4].eq(1).all() and out[4:, 4:].eq(1).all()
    assert out[:4, 4:].eq(0).all() and out[4:, :4].eq(0).all()


def test_blend_in_edit(damped, inversion):
    words = edit(damped, inversion, TARGET, blend_words=("circle", "ring"), progress=False)
    assert words.mask.shape == (1, 1, 16, 16) and words.mask.dtype == torch.bool
    region = torch.zeros(damped.image_size, damped.image_size, dtype=torch.bool)
    region[:16, :16] = True
    blended = edit(damped, inversion, TARGET, blend_region=region, blend_start=0.2, progress=False)
    outside = ~blended.mask[0, 0]
    assert outside.sum() == 16 * 16 - 8 * 8
    assert torch.equal(blended.latents[1][:, outside], blended.latents[0][:, outside])
    free = edit(damped, inversion, TARGET, progress=False)
    assert max_diff(free.latents[1][:, outside], free.latents[0][:, outside]) > 1e-2


def test_edit_self_attention_injection_changes_the_edit(damped, inversion):
    without = edit(damped, inversion, TARGET, self_replace_steps=0.0, progress=False)
    with_self = edit(damped, inversion, TARGET, self_replace_steps=1.0, progress=False)
    assert max_diff(without.latents[1], with_self.latents[1]) > 1e-4
    only_16 = edit(damped, inversion, TARGET, self_replace_steps=1.0, self_resolutions=[16], progress=False)
    assert max_diff(only_16.latents[1], with_self.latents[1]) > 1e-4


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(target_prompt="a big red ring and a yellow square", mode="replace"), ValueError,
     "cannot be aligned word by word"),
    (dict(target_prompt=TARGET, mode="swap"), ValueError, "mode must be 'auto', 'replace' or 'refine'"),
    (dict(target_prompt=TARGET, reweight={"tiger": 2.0}), ValueError, "reweight: the word 'tiger'"),
    (dict(target_prompt=TARGET, cross_replace_steps=-0.1), ValueError, "cross_replace_steps: the fraction -0.1"),
    (dict(target_prompt=TARGET, cross_replace_steps={"tiger": 0.5}), ValueError, "the word 'tiger' is in no target"),
    (dict(target_prompt=TARGET, self_replace_steps=(0, 11)), ValueError, "self_replace_steps: step 11 is out of range"),
    (dict(target_prompt=TARGET, blend_start=20), ValueError, "blend_start: step 20 is out of range"),
    (dict(target_prompt=TARGET, blend_words=("dog", "ring")), ValueError, "blend_words: the word 'dog'"),
    (dict(target_prompt=TARGET, blend_threshold=1.5), ValueError, "blend_threshold must be in [0, 1)"),
    (dict(target_prompt=TARGET, blend_words=("circle", "ring"), blend_region=torch.ones(4, 4)), ValueError, "not both"),
    (dict(target_prompt=TARGET, blend_words="ring"), ValueError, "blend_words must be (source words, target words)"),
    (dict(target_prompt=TARGET, self_resolutions=[5]), ValueError, "self_resolutions: no self-attention at [5]"),
    (dict(target_prompt=[]), ValueError, "target_prompt: give at least one"),
    (dict(target_prompt="a {red circle"), ValueError, "unbalanced braces"),
])
def test_edit_rejects_bad_input_before_sampling(damped, inversion, kwargs, error, message):
    with UNetCounter(damped.unet) as cost, pytest.raises(error, match=re.escape(message)):
        edit(damped, inversion, progress=False, **kwargs)
    assert cost.forward == 0


def test_edit_refuses_an_inversion_of_another_model(inversion):
    with pytest.raises(ValueError, match="made with the model 'tiny-0-out0.03' but the bundle is 'tiny-2-out0.03'"):
        edit(damped_tiny_bundle(seed=2), inversion, TARGET)


def test_an_inversion_from_a_hub_id_edits_with_the_same_weights_from_a_folder(damped, inversion, tmp_path):
    "Inversions are checked by the model's content, not its name: same weights pass, other weights are refused"
    import dataclasses
    from diffusers import StableDiffusionPipeline
    from dpl_nb.models import load_bundle
    hub = dataclasses.replace(inversion, model_id="CompVis/stable-diffusion-v1-4")  # as if inverted from the hub
    StableDiffusionPipeline(damped.vae, damped.text_encoder, damped.tokenizer, damped.unet, damped.scheduler,
                            safety_checker=None, feature_extractor=None,
                            requires_safety_checker=False).save_pretrained(tmp_path)
    folder = load_bundle(tmp_path)
    assert folder.model_id != hub.model_id and hub.fingerprint
    ours = edit(folder, hub, TARGET, progress=False)
    assert max_diff(ours.latents, edit(damped, inversion, TARGET, progress=False).latents) < 1e-5
    with pytest.raises(ValueError, match="with other weights; load that model"):
        edit(damped_tiny_bundle(seed=2), hub, TARGET, progress=False)
