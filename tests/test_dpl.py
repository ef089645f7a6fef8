"DPL on the toy model: only the dynamic rows change, disabled losses change nothing, one word, the fallback, errors."
import dataclasses
import warnings

import numpy as np
import pytest
import torch

from dpl_nb.dpl import (DPL_PRESETS, DPLConfig, check_background, dpl_config, dpl_invert, dynamic_words,
                        encode_dynamic, initial_tokens, sampled_maps, with_options)
from dpl_nb.inversion import Inversion, encode_with_tokens, reconstruct
from dpl_nb.losses import LossConfig
from dpl_nb.p2p import edit
from dpl_nb.prompts import encode_prompts

STEPS = 3


@pytest.fixture(scope="module")
def toy():
    from dpl_nb.models import load_bundle
    return load_bundle("toy")


@pytest.fixture(scope="module")
def scene():
    from dpl_nb.toymoset import toymo_set
    scene = toymo_set()[5]  # look-alikes (a distractor scene), where DPL updates its tokens
    assert scene.braced == "a blue {panda} and a purple {giraffe}"  # toy world v1: "a red {circle} and a red {square}"
    return scene


@pytest.fixture(scope="module")
def run(toy, scene):
    "(embedding matrix before, a 3-step lean DPL inversion of the scene)"
    before = toy.text_encoder.get_input_embeddings().weight.clone()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the background fallback may warn
        return before, dpl_invert(toy, scene.pil, scene.braced, num_steps=STEPS, progress=False)


def lam_zero(**kw):
    return dataclasses.replace(DPL_PRESETS["lean"], losses=dataclasses.replace(LossConfig(), **kw))


def test_only_dynamic_rows_change(toy, scene, run):
    before, inv = run
    assert torch.equal(toy.text_encoder.get_input_embeddings().weight, before)  # every row bit-identical
    start = initial_tokens(toy, scene.braced)
    assert inv.token_embeddings.shape == (STEPS, 2, start.shape[1])
    assert not torch.equal(inv.token_embeddings[-1], start)  # the dynamic rows did move
    assert sum(inv.trace["token_updates"]) > 0
    plain = encode_prompts(toy, "a red leopard and a white zebra")  # no dynamic word: unchanged encoder
    assert torch.equal(plain, encode_prompts(toy, "a red leopard and a white zebra"))


def test_run_record_and_cost(toy, run):
    _, inv = run
    assert inv.method == "dpl" and inv.num_steps == STEPS and inv.settings["preset"] == "lean"
    assert inv.maps.shape == (STEPS, toy.attn_res, toy.attn_res, 77)
    assert len(inv.trace["token_losses"]) == len(inv.trace["thresholds"]) == STEPS
    assert all(1 <= len(p) <= 21 for p in inv.trace["token_losses"])
    assert np.array(inv.trace["background"]).shape == (toy.attn_res, toy.attn_res)
    assert inv.cost.total <= STEPS + STEPS * (21 + 21 + 1 + 2 * 10 + 1)


def test_all_lambdas_zero_keep_the_tokens(toy, scene):
    config = lam_zero(lambda_at=0.0, lambda_bg=0.0, lambda_dj=0.0)
    inv = dpl_invert(toy, scene.pil, scene.braced, config, num_steps=2, background=torch.ones(16, 16, dtype=torch.bool),
                     progress=False)
    assert inv.trace["token_updates"] == [0, 0]
    assert torch.equal(inv.token_embeddings[-1], initial_tokens(toy, scene.braced))


def test_zero_lambda_ignores_its_loss(toy, scene):
    "With lambda_bg = 0 the background mask cannot change anything"
    config = lam_zero(lambda_bg=0.0)
    runs = [dpl_invert(toy, scene.pil, scene.braced, config, num_steps=2, background=mask, progress=False)
            for mask in (torch.zeros(16, 16, dtype=torch.bool), torch.ones(16, 16, dtype=torch.bool))]
    assert torch.equal(runs[0].token_embeddings, runs[1].token_embeddings)
    assert torch.equal(runs[0].null_embeddings, runs[1].null_embeddings)
    assert all(p["bg"] == 0 for step in runs[0].trace["token_losses"] for p in step)


def test_one_dynamic_word_has_no_nan(toy, scene):
    prompt = scene.braced.replace("{panda}", "panda")
    inv = dpl_invert(toy, scene.pil, prompt, num_steps=2, background=torch.zeros(16, 16, dtype=torch.bool),
                     progress=False)
    assert inv.token_embeddings.shape[1] == 1 and torch.isfinite(inv.token_embeddings).all()
    assert all(p["dj"] == 0 and np.isfinite(p["total"]) for step in inv.trace["token_losses"] for p in step)


def test_own_word_gradients_keep_the_forward_and_cut_cross_paths(toy, scene):
    positions = [list(w.positions) for w in dynamic_words(toy.tokenizer, scene.braced).words]
    tokens = torch.nn.Parameter(initial_tokens(toy, scene.braced))
    shared, own = (encode_dynamic(toy, scene.braced, tokens, positions, g) for g in ("shared", "own"))
    assert torch.allclose(shared, own, atol=1e-6)
    # a fixed random direction of the second word's hidden states: their plain sum is a constant where the final
    # layer norm has unit weights and zero bias (the toy world v2 text encoder is frozen at its init), so its
    # gradient is zero by any path
    direction = torch.randn(shared[0, positions[1]].shape, generator=torch.Generator().manual_seed(0))
    g_shared, = torch.autograd.grad((shared[0, positions[1]] * direction).sum(), tokens)
    g_own, = torch.autograd.grad((own[0, positions[1]] * direction).sum(), tokens)
    assert g_shared[0].abs().sum() > 0 and g_own[0].abs().sum() == 0 and g_own[1].abs().sum() > 0
    with pytest.raises(ValueError, match="word_gradients must be"):
        DPLConfig(word_gradients="mine")


def test_non_reference_options_run(toy, scene):
    config = with_options("lean", at_region="objects", word_gradients="own")
    before = toy.text_encoder.get_input_embeddings().weight.clone()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        inv = dpl_invert(toy, scene.pil, scene.braced, config, num_steps=STEPS, progress=False)
    assert torch.equal(toy.text_encoder.get_input_embeddings().weight, before)
    assert sum(inv.trace["token_updates"]) > 0 and torch.isfinite(inv.token_embeddings).all()
    assert inv.settings["word_gradients"] == "own" and inv.settings["losses"]["at_region"] == "objects"


def test_anchored_leakage_counts_the_other_words_clusters(toy, scene, run):
    "LossConfig.anchor: a word's leakage region is the background and the other words' clusters, from the first pass"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        inv = dpl_invert(toy, scene.pil, scene.braced, with_options("lean", anchor=True), num_steps=STEPS,
                         progress=False)
    plain = run[1]
    assert inv.settings["losses"]["anchor"] is True and plain.settings["losses"]["anchor"] is False
    first = lambda i: i.trace["token_losses"][0][0]  # step 0, first pass: the same tokens, so the same maps
    assert first(inv)["at"] == first(plain)["at"] and first(inv)["dj"] == first(plain)["dj"]
    assert first(inv)["bg"] > first(plain)["bg"]  # each map also covers some of the other object's clusters
    assert torch.isfinite(inv.token_embeddings).all()


def test_no_background_cluster_falls_back(toy, scene):
    config = dataclasses.replace(DPL_PRESETS["lean"], cluster_threshold=0.0)  # every cluster matches a noun
    with pytest.warns(UserWarning):
        inv = dpl_invert(toy, scene.pil, scene.braced, config, num_steps=2, progress=False)
    assert inv.trace["background_fallback"] and "BG" in inv.trace["cluster_labels"]
    assert np.array(inv.trace["background"]).any()


def test_same_seed_same_result(toy, scene, run):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        again = dpl_invert(toy, scene.pil, scene.braced, num_steps=STEPS, progress=False)
    assert torch.equal(again.token_embeddings, run[1].token_embeddings)
    assert torch.equal(again.null_embeddings, run[1].null_embeddings)


def test_save_load_and_edit(toy, scene, run, tmp_path):
    _, inv = run
    loaded = Inversion.load(inv.save(tmp_path / "dpl.safetensors"), toy)
    for name in ("latents", "null_embeddings", "token_embeddings", "maps"):
        assert torch.equal(getattr(loaded, name), getattr(inv, name))
    assert loaded.trace == inv.trace and loaded.method == "dpl"
    same = edit(toy, loaded, scene.braced, progress=False)  # identity edit = the reconstruction
    assert torch.allclose(same.latents[1:], same.latents[:1], atol=1e-5)
    assert torch.allclose(same.latents[:1], reconstruct(toy, loaded, progress=False), atol=1e-4)
    swapped = edit(toy, loaded, scene.braced.replace("{panda}", "{cat}"), progress=False)
    assert not torch.allclose(swapped.latents[1:], swapped.latents[:1], atol=1e-3)
    maps = sampled_maps(toy, loaded)
    assert maps.shape == (STEPS, 16, 16, 77) and torch.allclose(maps.sum(-1), torch.ones(STEPS, 16, 16), atol=1e-4)


def test_bad_input(toy, scene):
    with pytest.raises(ValueError, match="braces"):
        dynamic_words(toy.tokenizer, "a red leopard and a white cat")
    with pytest.raises(ValueError, match="braces"):
        dpl_invert(toy, scene.pil, "a red leopard and a white cat", num_steps=2, progress=False)
    with pytest.raises(ValueError, match="16x16"):
        dpl_invert(toy, scene.pil, scene.braced, num_steps=2, background=np.zeros((32, 32), bool), progress=False)
    with pytest.raises(ValueError, match="16x16"):
        check_background(torch.zeros(16, 8, dtype=torch.bool), 16)
    with pytest.raises(ValueError, match="num_steps"):
        dpl_invert(toy, scene.pil, scene.braced, num_steps=0, progress=False)
    with pytest.raises(ValueError, match="guidance_scale"):
        dpl_invert(toy, scene.pil, scene.braced, num_steps=2, guidance_scale=1.0, progress=False)
    with pytest.raises(ValueError, match="lean"):
        dpl_config("fastest")
    with pytest.raises(ValueError, match="inversion must be"):
        DPLConfig(inversion="pnp")
    with pytest.raises(ValueError, match="token_steps"):
        DPLConfig(token_steps=-1)
    with pytest.raises(ValueError, match="init"):
        DPLConfig(init="char")
    with pytest.raises(ValueError, match="vocabulary|not in"):
        dpl_invert(toy, scene.pil, "a red {dog} and a white cat", num_steps=2, progress=False)


def test_piece_init_warns_for_the_toy_vocabulary(toy, scene):
    with pytest.warns(UserWarning, match="piece"):
        piece = initial_tokens(toy, scene.braced, init="piece")
    unk = toy.text_encoder.get_input_embeddings().weight[toy.tokenizer.unk_token_id]
    assert torch.equal(piece[0], unk)


def test_split_word_learns_all_its_tokens(bundle):
    "A braced word the tokenizer splits keeps all its tokens, each a dynamic row (tiny model: 2x self-attention path)"
    from tiny_scenes import shapes_picture
    prompt = "a {bluegreen} circle and a {square}"
    sizes = [len(w.positions) for w in dynamic_words(bundle.tokenizer, prompt).words]
    assert sizes[0] > 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        inv = dpl_invert(bundle, shapes_picture(bundle.image_size), prompt, num_steps=2, progress=False)
    assert inv.token_embeddings.shape[:2] == (2, sum(sizes)) and torch.isfinite(inv.token_embeddings).all()
    assert np.array(inv.trace["background"]).shape == (bundle.attn_res, bundle.attn_res)
    result = edit(bundle, inv, prompt.replace("{square}", "{ring}"), progress=False)
    assert len(result.edits) == 1


def test_paper_preset_runs_the_reference_null_text(toy, scene):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        inv = dpl_invert(toy, scene.pil, scene.braced, "paper", num_steps=2, progress=False)
    assert inv.settings["preset"] == "paper" and inv.inner_steps == [51, 51]  # no early stop, 51 inner steps
    assert inv.cost.total <= 2 + 2 * (21 + 21 + 1 + 2 * 51 + 1)
    assert len(inv.trace["token_drift"]) == 2 and inv.trace["token_drift"][0] >= 0


def test_a_repeated_braced_word_learns_one_token_per_occurrence(toy, scene):
    "In 'a blue {panda} and a blue {panda}' each panda is its own dynamic word, with its own gradient and vector"
    twice = "a blue {panda} and a blue {panda}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        inv = dpl_invert(toy, scene.pil, twice, num_steps=2, progress=False)
    tokens = inv.token_embeddings[-1]
    start = initial_tokens(toy, twice)
    assert tokens.shape == start.shape == (2, start.shape[1])
    assert not torch.equal(tokens[0], start[0]) and not torch.equal(tokens[1], start[1])  # both were learnt...
    assert not torch.equal(tokens[0], tokens[1])                                          # ...each its own way
    single = "a blue {panda} and a blue panda"
    once = encode_with_tokens(toy, single, single, tokens[:1])                 # the unbraced panda stays plain...
    both = encode_with_tokens(toy, twice, twice, torch.cat([tokens[:1], tokens[:1]]))
    assert torch.allclose(once[0, :7], both[0, :7], atol=1e-6)               # ...so up to it the two agree
    assert (once[0, 7] - both[0, 7]).abs().max() > 1e-3                       # and at it they do not


def test_losses_that_are_off_with_zero_thresholds(toy, scene):
    "λ = 0 with its β = 0: the loss that is off holds no step back; with every loss off nothing is optimised (it crashed)"
    every = dataclasses.replace(DPL_PRESETS["lean"], token_steps=3, losses=LossConfig(
        lambda_at=0, lambda_bg=0, lambda_dj=0, beta_at=0, beta_bg=0, beta_dj=0))
    inv = dpl_invert(toy, scene.pil, scene.braced, every, num_steps=2, progress=False)
    assert inv.trace["token_updates"] == [0, 0]
    updates = [dpl_invert(toy, scene.pil, scene.braced, dataclasses.replace(every, losses=LossConfig(lambda_bg=0, beta_bg=beta)),
                          num_steps=2, progress=False).trace["token_updates"] for beta in (0.0, 0.7)]
    assert updates[0] == updates[1]  # the threshold of a loss that is off changes nothing (beta 0 took every update)


@pytest.mark.parametrize("model", ["tiny", "toy"])
def test_truncated_token_passes_learn_the_same_tokens(bundle, toy, scene, model):
    "Passes stopped after the last loss layer: the same losses and tokens as whole passes, at a lower counted cost"
    from tiny_scenes import shapes_picture
    net = bundle if model == "tiny" else toy
    image, prompt = (shapes_picture(bundle.image_size), "a {circle} and a {square}") if model == "tiny" \
        else (scene.pil, scene.braced)
    lean = DPL_PRESETS["lean"]
    eager = dataclasses.replace(lean, losses=dataclasses.replace(lean.losses, beta_at=0.0), token_steps=4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cut, whole = (dpl_invert(net, image, prompt, dataclasses.replace(eager, truncate=flag), num_steps=STEPS,
                                 progress=False) for flag in (True, False))
    assert sum(cut.trace["token_updates"]) > 0  # a zero threshold: every step updates
    assert (cut.token_embeddings - whole.token_embeddings).abs().max() < 1e-5
    for a, b in zip(cut.trace["token_losses"], whole.trace["token_losses"]):
        assert all(abs(x[k] - y[k]) < 1e-5 for x, y in zip(a, b) for k in x)
    share = cut.trace["truncated_fraction"]
    assert 0 < share < 1 and cut.cost.partial > 0 and whole.cost.partial == 0
    assert cut.cost.total < whole.cost.total
    assert DPL_PRESETS["paper"].truncate is False and DPL_PRESETS["reference"].truncate is False


@pytest.mark.parametrize("inversion", ["npi", "direct"])
def test_dpl_without_null_text_optimisation(toy, scene, run, inversion, tmp_path):
    "DPL's token phase on NPI or Direct Inversion: the same first step, no null-text updates, a file that reloads"
    config = DPL_PRESETS["fast"] if inversion == "npi" else dataclasses.replace(DPL_PRESETS["lean"], inversion="direct")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        inv = dpl_invert(toy, scene.pil, scene.braced, config, num_steps=STEPS, progress=False)
    _, lean = run
    assert torch.equal(inv.token_embeddings[0], lean.token_embeddings[0])  # from the same z*_T
    assert inv.inner_steps == [0] * STEPS and inv.cost.total < lean.cost.total
    rec = reconstruct(toy, inv, progress=False)
    if inversion == "direct":
        assert inv.corrections.shape[0] == STEPS and torch.allclose(rec, inv.latents[0], atol=1e-5)
    else:
        assert inv.corrections is None
        step_cond = encode_with_tokens(toy, scene.braced, scene.braced, inv.token_embeddings[-1])
        assert torch.allclose(inv.null_embeddings[-1], step_cond)  # the step's prompt is its own null
    loaded = Inversion.load(inv.save(tmp_path / "fast.safetensors"), toy)
    assert torch.equal(reconstruct(toy, loaded, progress=False), rec)
    assert len(edit(toy, loaded, scene.braced.replace("{panda}", "{cat}"), progress=False).edits) == 1
