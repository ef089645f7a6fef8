"DDIM and null-text inversion on the tiny model: exact steps, NTI beats DDIM under guidance, cost, files and errors."
import dataclasses
import json

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

import dpl_nb.inversion as inversion_module
from dpl_nb.inversion import (NTI_PRESETS, BatchLayout, Inversion, NTIConfig, ddim_invert, encode_with_tokens, invert,
                              null_text_invert, null_text_step, nti_lr, reconstruct, sample, word_embeddings,
                              ddim_scheduler)
from dpl_nb.models import UNetCounter, tiny_bundle
from dpl_nb.prompts import encode_prompts

from tiny_scenes import PROMPT, damped_tiny_bundle, shapes_picture

STEPS = 10


@pytest.fixture(scope="module")
def picture(damped):
    return shapes_picture(damped.image_size)


@pytest.fixture(scope="module")
def embeddings(damped):
    with torch.no_grad():
        return encode_prompts(damped, PROMPT), encode_prompts(damped, "")


@pytest.fixture(scope="module")
def ddim(damped, picture):
    return invert(damped, picture, PROMPT, num_steps=STEPS, method="ddim", progress=False)


def mse(a, b):
    return torch.mean((a - b) ** 2).item()


def test_ddim_invert_is_the_nti_step(damped, picture, embeddings):
    z0 = damped.encode(picture)
    trajectory = ddim_invert(damped, z0, embeddings[0], STEPS, progress=False)
    assert trajectory.shape == (STEPS + 1, 1, 4, 16, 16) and torch.equal(trajectory[0], z0)
    alphas, z, ratio = damped.scheduler.alphas_cumprod, z0, 1000 // STEPS
    with torch.no_grad():
        for k, t in enumerate(range(1, 1000, ratio)):  # NTI's next_step, written out
            eps = damped.unet(z, t, encoder_hidden_states=embeddings[0]).sample
            a_s = alphas[t - ratio] if t - ratio >= 0 else alphas[0]
            z = alphas[t].sqrt() * (z - (1 - a_s).sqrt() * eps) / a_s.sqrt() + (1 - alphas[t]).sqrt() * eps
            assert torch.allclose(trajectory[k + 1], z, atol=1e-6)


def test_unguided_round_trip_and_guided_drift(damped, picture, ddim):
    z0 = damped.encode(picture)
    unguided = dataclasses.replace(ddim, guidance_scale=1.0)
    assert mse(reconstruct(damped, unguided, progress=False), z0) < 0.1 * z0.pow(2).mean().item()
    assert mse(reconstruct(damped, ddim, progress=False), z0) > 10 * mse(reconstruct(damped, unguided, progress=False), z0)


def test_nti_at_least_halves_the_guided_reconstruction_error(damped, picture, nti, ddim):
    z0 = damped.encode(picture)
    ddim_error = mse(reconstruct(damped, ddim, progress=False), z0)
    nti_error = mse(reconstruct(damped, nti, progress=False), z0)
    assert nti_error <= 0.5 * ddim_error
    assert torch.equal(nti.latents, ddim.latents)  # the same DDIM trajectory underneath


def test_nti_cost_and_schedule(damped, nti):
    inner = sum(nti.inner_steps)
    assert nti.cost.forward == STEPS + 2 * STEPS + inner and nti.cost.backward == inner
    assert all(1 <= k <= 10 for k in nti.inner_steps)
    assert nti.cost.total <= STEPS + STEPS * (2 + 2 * 10)
    assert nti.settings == dataclasses.asdict(NTI_PRESETS["canonical"])
    assert not any(p.requires_grad for p in damped.unet.parameters())


def test_null_text_step_counts_and_early_stop(damped, nti, embeddings):
    scheduler = ddim_scheduler(damped.scheduler.config, STEPS)
    cond, null = embeddings
    with UNetCounter(damped.unet) as cost:
        full = null_text_step(damped, scheduler, 0, nti.latents[-1], nti.latents[-2], cond, null, epsilon=None,
                              inner_steps=4)
    assert (full.inner_steps, cost.forward, cost.backward) == (4, 6, 4)
    loose = null_text_step(damped, scheduler, 0, nti.latents[-1], nti.latents[-2], cond, null, epsilon=1.0)
    assert loose.inner_steps == 1  # the threshold is met after the first update, which is applied
    assert not torch.equal(loose.embedding, null)


def test_dpl_variant_resets_every_step(damped, nti, embeddings):
    cond, null = embeddings
    short = nti.latents[-4:]
    dpl_like = dataclasses.replace(NTI_PRESETS["dpl"], inner_steps=1)
    reset = null_text_invert(damped, short, cond, null, config=dpl_like, progress=False)
    warm = null_text_invert(damped, short, cond, null, config=dataclasses.replace(dpl_like, warm_start=True),
                            progress=False)
    assert reset.inner_steps == [1, 1, 1]
    for i, e in enumerate(reset.embeddings):  # one Adam step from the empty prompt: at most lr_i away
        assert (e - null).abs().max() <= nti_lr(i) * 1.001
    assert (warm.embeddings[2] - null).abs().max() > 1.5 * nti_lr(0)
    assert NTI_PRESETS["dpl"] == NTIConfig(inner_steps=51, epsilon=None, warm_start=False)


def test_save_load_is_bit_identical(damped, nti, tmp_path):
    tokens = word_embeddings(damped, PROMPT).expand(STEPS, -1, -1).clone()
    for original in (nti, dataclasses.replace(nti, method="dpl", token_embeddings=tokens)):
        path = original.save(tmp_path / f"{original.method}.safetensors")
        loaded = Inversion.load(path, damped)
        for name in ("latents", "null_embeddings", "token_embeddings"):
            a, b = getattr(original, name), getattr(loaded, name)
            assert (a is None and b is None) or (a.dtype == b.dtype and torch.equal(a, b))
        assert (loaded.prompt, loaded.model_id, loaded.cost, loaded.inner_steps) == \
               (PROMPT, damped.model_id, original.cost, original.inner_steps)
        assert loaded.scheduler_config == json.loads(json.dumps(original.scheduler_config))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dpl.safetensors", "nti.safetensors"]


def test_failed_save_keeps_the_old_file(nti, tmp_path, monkeypatch):
    path = nti.save(tmp_path / "inv.safetensors")
    before = path.read_bytes()
    def broken(tensors, filename, metadata=None):
        open(filename, "wb").write(b"half")
        raise OSError("disk full")
    monkeypatch.setattr(inversion_module, "save_file", broken)
    with pytest.raises(OSError, match="disk full"):
        nti.save(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["inv.safetensors"]


def test_load_refuses_bad_files(damped, nti, tmp_path):
    path = nti.save(tmp_path / "inv.safetensors")
    data = path.read_bytes()
    with pytest.raises(ValueError, match="made with the model 'tiny-0-out0.03' but the bundle is 'tiny-1-out0.03'"):
        Inversion.load(path, damped_tiny_bundle(seed=1))
    with pytest.raises(FileNotFoundError, match="no inversion file"):
        Inversion.load(tmp_path / "missing.safetensors")
    for cut in (0, 7, 100, len(data) // 2, len(data) - 1):
        (tmp_path / "cut.safetensors").write_bytes(data[:cut])
        with pytest.raises(ValueError, match="truncated or corrupt"):
            Inversion.load(tmp_path / "cut.safetensors")
    flipped = bytearray(data)
    flipped[-3] ^= 0x10
    (tmp_path / "flipped.safetensors").write_bytes(bytes(flipped))
    with pytest.raises(ValueError, match="checksums do not match"):
        Inversion.load(tmp_path / "flipped.safetensors")
    with safe_open(str(path), "pt") as f:
        meta, tensors = json.loads(f.metadata()["dpl_nb"]), {k: f.get_tensor(k) for k in f.keys()}
    save_file(tensors, tmp_path / "future.safetensors",
              metadata={"dpl_nb": json.dumps({**meta, "format_version": inversion_module.FORMAT_VERSION + 1})})
    with pytest.raises(ValueError, match="newer than the version 2 this dpl_nb reads; upgrade dpl_nb"):
        Inversion.load(tmp_path / "future.safetensors")
    save_file(tensors, tmp_path / "other.safetensors", metadata={"dpl_nb": json.dumps({"format": "something"})})
    with pytest.raises(ValueError, match="not a dpl_nb inversion"):
        Inversion.load(tmp_path / "other.safetensors")


def test_invert_rejects_bad_input_early(damped, picture):
    with pytest.raises(ValueError, match="guidance_scale must be > 1"):
        invert(damped, picture, PROMPT, guidance_scale=1.0)
    with pytest.raises(ValueError, match="num_steps must be an integer from 1 to 1000"):
        invert(damped, picture, PROMPT, num_steps=1001)
    with pytest.raises(ValueError, match="unbalanced braces"):
        invert(damped, picture, "a red {circle")
    with pytest.raises(ValueError, match="nti must be an NTIConfig or one of"):
        invert(damped, picture, PROMPT, nti="fast")
    with pytest.raises(ValueError, match="method must be one of"):
        invert(damped, picture, PROMPT, method="exact")
    with pytest.raises(ValueError, match="invert one image at a time"):
        invert(damped, torch.zeros(2, 3, 32, 32), PROMPT, method="ddim")
    with pytest.raises(FileNotFoundError, match="no file at"):
        invert(damped, "no/such/picture.png", PROMPT)


def test_generator_samples_the_posterior(damped, picture):
    a = invert(damped, picture, PROMPT, num_steps=2, method="ddim", generator=3, progress=False)
    b = invert(damped, picture, PROMPT, num_steps=2, method="ddim", generator=torch.Generator().manual_seed(3),
               progress=False)
    mean = invert(damped, picture, PROMPT, num_steps=2, method="ddim", progress=False)
    assert torch.equal(a.latents, b.latents) and not torch.equal(a.latents, mean.latents)


def test_token_embeddings_reach_the_text_encoder_and_sampling(damped, nti):
    own = word_embeddings(damped, PROMPT)
    other = own + torch.randn(own.shape, generator=torch.Generator().manual_seed(0))
    prompts = [PROMPT, "a red {ring} and a yellow {square}"]
    with torch.no_grad():
        plain = encode_prompts(damped, prompts)
        assert torch.allclose(encode_with_tokens(damped, prompts, PROMPT, own), plain, atol=1e-6)
        moved = encode_with_tokens(damped, prompts, PROMPT, other)
    assert (moved[1, 6:] - plain[1, 6:]).abs().max() > 0.1  # "square" is in the edited prompt too
    assert torch.allclose(moved[1, :6], plain[1, :6], atol=1e-6)  # tokens before it are unchanged (causal)
    same = dataclasses.replace(nti, token_embeddings=own.expand(STEPS, -1, -1).clone())
    changed = dataclasses.replace(nti, token_embeddings=other.expand(STEPS, -1, -1).clone())
    base = reconstruct(damped, nti, progress=False)
    assert torch.allclose(reconstruct(damped, same, progress=False), base, atol=1e-6)
    assert (reconstruct(damped, changed, progress=False) - base).abs().max() > 1e-2


def test_sample_sets_step_and_layout(damped, nti):
    class Recorder:
        step = layout = None
        seen = []
    recorder = Recorder()
    def after(i, latents):
        recorder.seen.append((i, recorder.step, recorder.layout))
        return latents
    out = sample(damped, nti, [PROMPT, PROMPT, PROMPT], [recorder], after, progress=False)
    assert recorder.seen == [(i, i, BatchLayout(3, 3)) for i in range(STEPS)]
    assert out.shape == (3, 4, 16, 16)
    assert (out - reconstruct(damped, nti, progress=False)).abs().max() < 1e-4


def test_a_larger_square_image_reads_maps_scaled_with_its_latent():
    "1.5x the default side (768x768 on SD 1.x): the same layers are read, so the maps are 1.5x larger too"
    import warnings
    from dpl_nb.dpl import DPL_PRESETS, dpl_invert
    from dpl_nb.inversion import sized_bundle
    from dpl_nb.p2p import edit
    noise = lambda side: torch.rand(1, 3, side, side, generator=torch.Generator().manual_seed(0)) * 2 - 1
    sd = tiny_bundle(seed=0, latent_size=64)  # SD 1.x's block layout at SD's latent size: 16x16 maps by default
    image = noise(sd.image_size * 3 // 2)
    assert (sd.attn_res, sized_bundle(sd, image).latent_size, sized_bundle(sd, image).attn_res) == (16, 96, 24)
    assert sd.attn_res == 16 and sd.latent_size == 64  # the bundle itself is unchanged
    inversion = invert(sd, image, "a {cat} and a {dog}", num_steps=1, method="ddim", progress=False)
    result = edit(sd, inversion, "a {tiger} and a {dog}", blend_words=("cat", "tiger"), progress=False)
    assert inversion.latents.shape[-2:] == (96, 96) and result.maps.shape[1:3] == (24, 24)
    small = tiny_bundle(seed=0)  # DPL and an edit at 1.5x on the smaller tiny model: 8x8 maps become 12x12
    side = small.image_size * 3 // 2
    config = dataclasses.replace(DPL_PRESETS["lean"], token_steps=2, nti=NTIConfig(inner_steps=1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the background fallback may warn on a random model
        inversion = dpl_invert(small, noise(side), "a {cat} and a {dog}", config, num_steps=2, progress=False)
    assert inversion.latents.shape[-2:] == (side // 2, side // 2) and inversion.maps.shape[1:3] == (12, 12)
    result = edit(small, inversion, "a {tiger} and a {dog}", blend_words=("cat", "tiger"), progress=False)
    assert result.maps.shape[1:3] == (12, 12) and result.edited.size == (side, side)
    with pytest.raises(ValueError, match="square"):
        invert(small, noise(side)[..., :side - 16], "a {cat}", num_steps=2, progress=False)


@pytest.mark.parametrize("method", ["npi", "direct"])
def test_inversions_without_optimisation(damped, picture, ddim, method, tmp_path):
    "NPI and Direct Inversion: their cost, their reconstruction, an identity edit, and a bit-identical file"
    from dpl_nb.p2p import edit
    inv = invert(damped, picture, PROMPT, num_steps=STEPS, method=method, progress=False)
    assert torch.equal(inv.latents, ddim.latents)
    assert inv.cost.total == (STEPS if method == "npi" else 3 * STEPS)
    rec = reconstruct(damped, inv, progress=False)
    if method == "direct":  # every step lands back on the inverted latent
        assert mse(rec, inv.latents[0]) < 1e-10 and inv.corrections.shape == (STEPS,) + tuple(inv.latents.shape[1:])
    else:  # the source prompt as the null: guidance cancels, and sampling is the unguided round trip
        assert inv.corrections is None and torch.equal(inv.null_embeddings[0], encode_prompts(damped, PROMPT))
        assert mse(rec, inv.latents[0]) < mse(reconstruct(damped, ddim, progress=False), inv.latents[0])
    # target = source: the edit row is the reconstruction (Direct: when the edit rows get the gaps too)
    same = edit(damped, inv, PROMPT, progress=False, corrected="all")
    assert torch.equal(same.latents[1], same.latents[0]) and torch.allclose(same.latents[0], rec[0], atol=1e-4)
    if method == "direct":  # as published, the gaps go to the source row only and the edit row runs free
        free = edit(damped, inv, PROMPT, progress=False)
        assert torch.allclose(free.latents[0], rec[0], atol=1e-4) and not torch.allclose(free.latents[1], rec[0], atol=1e-3)
    loaded = Inversion.load(inv.save(tmp_path / f"{method}.safetensors"), damped)
    assert loaded.method == method and torch.equal(loaded.null_embeddings, inv.null_embeddings)
    assert (loaded.corrections is None) == (inv.corrections is None)
    if inv.corrections is not None:
        assert torch.equal(loaded.corrections, inv.corrections)
    assert torch.equal(reconstruct(damped, loaded, progress=False), rec)
    with pytest.raises(ValueError, match="method must be one of"):
        invert(damped, picture, PROMPT, num_steps=STEPS, method="pnp", progress=False)
