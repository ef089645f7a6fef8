"Attention capture on the tiny model: exactness, restoring processors, normalised rows, gradients."
import pytest
import torch

from dpl_nb.attention import (AttentionStore, CaptureProcessor, attention_layers, capture, cross_maps, map_explorer,
                              select_layers, self_maps)
from dpl_nb.prompts import encode_prompts, parse_prompt


@pytest.fixture(scope="module")
def inputs(bundle):
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        context = encode_prompts(bundle, ["", "a {cat} and a {dog}"])
    return torch.randn(2, 4, 32, 32, generator=gen), context


def _processor_types(unet):
    return {type(p).__name__ for p in unet.attn_processors.values()}


@pytest.mark.parametrize("which", ["read", "all"])
def test_hooked_equals_plain(bundle, inputs, which):
    unet = bundle.unet
    latents, context = inputs
    layers = select_layers(unet, bundle.attn_res) if which == "read" else attention_layers(unet)
    with torch.no_grad():
        plain = unet(latents, 700, encoder_hidden_states=context).sample
        with capture(unet, AttentionStore(), layers):
            hooked = unet(latents, 700, encoder_hidden_states=context).sample
    assert (hooked - plain).abs().max() < 1e-5
    assert _processor_types(unet) == {"AttnProcessor2_0"}


def test_restored_when_body_raises(bundle):
    before = dict(bundle.unet.attn_processors)
    with pytest.raises(KeyboardInterrupt):
        with capture(bundle.unet, AttentionStore(), resolution=bundle.attn_res):
            assert "CaptureProcessor" in _processor_types(bundle.unet)
            raise KeyboardInterrupt
    assert all(bundle.unet.attn_processors[k] is v for k, v in before.items())


def test_only_chosen_layers_materialise(bundle):
    with capture(bundle.unet, AttentionStore(), resolution=bundle.attn_res):
        hooked = [n for n, p in bundle.unet.attn_processors.items() if isinstance(p, CaptureProcessor)]
    assert len(hooked) == 3 and all(".attn2." in n for n in hooked)


def test_cross_rows_sum_to_one(bundle, inputs):
    rows = []
    def check(probs, layer):
        rows.append(probs.sum(-1))
        return probs
    with torch.no_grad(), capture(bundle.unet, check, select_layers(bundle.unet, None, "cross")):
        bundle.unet(*inputs[:1], 300, encoder_hidden_states=inputs[1])
    assert len(rows) == 10
    for r in rows:
        assert torch.allclose(r, torch.ones_like(r), atol=1e-5)


def test_store_steps_and_maps(bundle, inputs):
    store = AttentionStore()
    with torch.no_grad(), capture(bundle.unet, store, select_layers(bundle.unet, bundle.attn_res) +
                                  select_layers(bundle.unet, 16, "self")):
        for step in range(3):
            store.step = step
            bundle.unet(inputs[0], 900 - 300 * step, encoder_hidden_states=inputs[1])
        store.enabled = False
        bundle.unet(inputs[0], 10, encoder_hidden_states=inputs[1])
    assert store.steps == [0, 1, 2]
    maps = cross_maps(store, 1, bundle.attn_res)
    assert maps.shape == (8, 8, 77) and torch.allclose(maps.sum(-1), torch.ones(8, 8), atol=1e-5)
    assert not torch.equal(cross_maps(store, 1, steps=[0]), cross_maps(store, 1, steps=[2]))
    assert self_maps(store, 0, 16).shape == (256, 256)
    widget = map_explorer(store, bundle.tokenizer, "a {cat} and a {dog}", index=1)
    assert len(widget.children[1].children) == 3


def test_gradient_reaches_token_embedding_row(bundle, inputs):
    tok, encoder = bundle.tokenizer, bundle.text_encoder
    parsed = parse_prompt("a {cat} and a {dog}", tok)
    table = encoder.get_input_embeddings().weight
    dog_row = tok.convert_tokens_to_ids("dog</w>")
    table.requires_grad_(True)
    try:
        store = AttentionStore(keep_grad=True)
        with capture(bundle.unet, store, resolution=bundle.attn_res):
            bundle.unet(inputs[0][:1], 500, encoder_hidden_states=encode_prompts(bundle, parsed.text))
        maps = cross_maps(store, 0)
        loss = torch.nn.functional.cosine_similarity(maps[..., parsed.positions[0][0]].flatten(),
                                                     maps[..., parsed.positions[1][0]].flatten(), dim=0)
        loss.backward()
        assert table.grad[dog_row].abs().sum() > 0
        assert table.grad[tok.convert_tokens_to_ids("tiger</w>")].abs().sum() == 0  # not in the prompt
    finally:
        table.requires_grad_(False)
        table.grad = None
