"Background masks: KMeans determinism, labels and scores, the reference's quirks, the fallback, errors, the toy model."
import dataclasses
import warnings

import matplotlib
import numpy as np
import pytest
import torch
from PIL import Image

from dpl_nb.background import (AttentionStatistics, BackgroundMasks, _normalise_like_reference, _to_loss_resolution,
                               anchor_regions, attention_features, attention_statistics, background_masks, find_background, pca_image,
                               self_resolution, show_background)
from dpl_nb.inversion import ddim_invert, inverse_scheduler
from dpl_nb.prompts import encode_prompts

from tiny_scenes import shapes_picture

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def toy():
    from dpl_nb.models import load_bundle
    return load_bundle("toy")


@pytest.fixture(scope="module")
def scene():
    from dpl_nb.toymoset import toymo_set
    return toymo_set(n=3)[2]


def blocks(side: int, inside: torch.Tensor) -> torch.Tensor:
    "Self-attention `(side², side²)` in which the pixels of `inside` attend uniformly to `inside`, the others to the others"
    flat = inside.flatten()
    same = (flat[:, None] == flat[None, :]).float()
    return same / same.sum(-1, keepdim=True)


def halves(side: int = 4) -> torch.Tensor:
    "Left half of a `side` x `side` picture"
    return (torch.arange(side)[None, :] < side // 2).expand(side, side)


def cross_with(r: int, maps: dict[int, torch.Tensor]) -> torch.Tensor:
    "Cross maps `(r, r, 77)` with the given `(r, r)` maps at the given token positions"
    cross = torch.zeros(r, r, 77)
    for position, m in maps.items():
        cross[..., position] = m
    return cross


# ---------------------------------------------------------------- resolution and statistics
def test_self_resolution(toy, bundle):
    assert (toy.attn_res, self_resolution(toy)) == (16, 16)        # the toy model has no 32x32 attention
    assert (bundle.attn_res, self_resolution(bundle)) == (8, 16)    # SD topology: twice the attention resolution
    with pytest.raises(ValueError, match="no self-attention at 6 or 3"):
        self_resolution(dataclasses.replace(bundle, attn_res=3))


def test_attention_statistics_average_over_calls(toy, scene):
    cond = encode_prompts(toy, scene.braced)
    with attention_statistics(toy) as stats:
        trajectory = ddim_invert(toy, toy.encode(scene.pil), cond, 4, progress=False)
    assert stats.calls == 4 and (stats.self_res, stats.cross_res) == (16, 16)
    assert stats.self_attention.shape == (256, 256) and stats.cross.shape == (16, 16, 77)
    assert torch.allclose(stats.self_attention.sum(-1), torch.ones(256), atol=1e-4)
    assert torch.allclose(stats.cross.sum(-1), torch.ones(16, 16), atol=1e-4)
    assert {type(p).__name__ for p in toy.unet.attn_processors.values()} == {"AttnProcessor2_0"}
    timesteps = inverse_scheduler(toy.scheduler.config, 4).timesteps
    calls = [attention_features(toy, trajectory[k], t, cond) for k, t in enumerate(timesteps)]
    assert set(calls[0]) == {"self-attention", "feature", "query", "key", "value"}
    assert all(v.shape[0] == 256 for v in calls[0].values())
    mean = torch.stack([c["self-attention"] for c in calls]).mean(0)
    assert torch.allclose(mean, stats.self_attention, atol=1e-5)   # the same calls, averaged the same way


def test_empty_statistics_raise(toy):
    with pytest.raises(ValueError, match="the attention statistics are empty"):
        AttentionStatistics(toy).cross


# ---------------------------------------------------------------- clustering, scores, labels
def test_kmeans_is_deterministic_and_matches_the_reference_seeding():
    from sklearn.cluster import KMeans
    gen = torch.Generator().manual_seed(0)
    sa = (torch.randn(64, 6, generator=gen) @ torch.randn(6, 64, generator=gen)).softmax(-1)
    cross = torch.rand(4, 4, 77, generator=gen)
    a = background_masks(sa, cross, {"cat": [2]}, seed=1, threshold=0.5)
    b = background_masks(sa, cross, {"cat": [2]}, seed=1, threshold=0.5)
    assert torch.equal(a.clusters, b.clusters) and a.labels == b.labels and torch.equal(a.scores, b.scores)
    state = np.random.get_state()
    try:
        np.random.seed(1)                                           # the reference: global seed, random_state=None
        reference = KMeans(n_clusters=5, n_init=10).fit(sa.numpy()).labels_
    finally:
        np.random.set_state(state)
    assert torch.equal(a.clusters.flatten(), torch.from_numpy(reference.astype(np.int64)))


def test_labels_and_scores_on_two_blocks():
    left = halves(4)
    found = background_masks(blocks(4, left), cross_with(4, {2: torch.where(left, 1.0, 0.1)}), {"cat": [2]},
                             n_clusters=2)
    c = int(found.clusters[0, 0])                                   # the cluster of the left half
    assert torch.equal(found.clusters == c, left)
    assert found.labels[c] == "cat" and found.labels[1 - c] == "BG"
    assert torch.allclose(found.scores[c], torch.tensor([0.9])) and torch.allclose(found.scores[1 - c], torch.tensor([0.0]))
    assert torch.equal(found.background, ~left) and torch.equal(found.nouns["cat"], left)
    assert found.fallback is None and found.background.dtype == torch.bool and found.clusters.dtype == torch.int64
    assert found.scores.shape == (2, 1)


def test_below_the_threshold_is_background():
    left = halves(4)
    cross = cross_with(4, {2: torch.where(left, 0.3, 0.1)})         # scores (0.3 - 0.1) / 0.3 = 0.67 and 0
    assert background_masks(blocks(4, left), cross, {"cat": [2]}, n_clusters=2, threshold=0.7).background.all()
    assert not background_masks(blocks(4, left), cross, {"cat": [2]}, n_clusters=2, threshold=0.6).background.all()


def test_normalisation_quirk():
    m = torch.tensor([0.1, 0.3, 0.5])
    assert torch.allclose(_normalise_like_reference(m), torch.tensor([0.0, 0.4, 0.8]))   # not min-max (0, 0.5, 1)
    assert torch.allclose(_normalise_like_reference(torch.tensor([-0.2, 0.4])), torch.tensor([-1.0, 0.5]))  # |min|
    assert torch.equal(_normalise_like_reference(torch.zeros(4)), torch.zeros(4))
    left = halves(4)                                                # the same quirk inside the scores
    found = background_masks(blocks(4, left), cross_with(4, {2: torch.where(left, 0.5, 0.1)}), {"cat": [2]}, n_clusters=2)
    assert torch.allclose(found.scores.max(), torch.tensor(0.8))


def test_word_of_several_tokens_uses_the_mean_map():
    left = halves(4)
    cross = cross_with(4, {2: torch.where(left, 1.0, 0.0), 3: torch.where(left, 0.0, 0.5)})
    mixed = background_masks(blocks(4, left), cross, {"tabby": [2, 3]}, n_clusters=2, threshold=0.4)
    assert torch.allclose(mixed.scores.flatten().sort().values, torch.tensor([0.0, 0.5]))   # mean map: 0.5 | 0.25
    assert sorted(mixed.labels) == ["BG", "tabby"] and torch.equal(mixed.nouns["tabby"], left)
    alone = background_masks(blocks(4, left), cross, {"tabby": [2]}, n_clusters=2, threshold=0.4)
    assert torch.allclose(alone.scores.max(), torch.tensor(1.0))


# ---------------------------------------------------------------- back to the loss resolution
def test_equal_resolution_keeps_the_mask():
    inside = torch.zeros(16, 16, dtype=torch.bool)
    inside[4:12, 4:12] = True
    found = background_masks(blocks(16, inside), cross_with(16, {2: inside.float()}), {"cat": [2]}, n_clusters=2)
    assert torch.equal(found.background, ~inside) and torch.equal(found.nouns["cat"], inside)


def test_twice_the_resolution_follows_the_reference_and_dilates():
    inside = torch.zeros(16, 16, dtype=torch.bool)
    inside[4:12, 4:12] = True                                       # 8x8 at s = 16 is 4x4 at r = 8 (rows 2-5)
    small = inside.reshape(8, 2, 8, 2).all(3).all(1)
    found = background_masks(blocks(16, inside), cross_with(8, {2: small.float()}), {"cat": [2]}, n_clusters=2)
    assert found.clusters.shape == (16, 16) and found.background.shape == (8, 8)
    as_png = np.kron((~inside).numpy().astype(np.uint8) * 255, np.ones((16, 16), np.uint8))   # 256x256, nearest
    expected = np.asarray(Image.fromarray(as_png).resize((8, 8))) > 0                        # PIL default: bicubic
    assert np.array_equal(found.background.numpy(), expected)
    assert found.background.sum() == 64 - 4                         # dilated: only the inner 2x2 is not background
    assert (found.background >= ~small).all()
    assert found.nouns["cat"].sum() == 36                           # the noun mask grows from 4x4 to 6x6


@pytest.mark.parametrize("s", [8, 24, 32])
def test_other_ratios_dilate_by_one_loss_pixel(s):
    mask = torch.zeros(s, s, dtype=torch.bool)
    mask[s // 4:s // 2, s // 4:s // 2] = True                       # rows 4-7 of a 16x16 loss map
    out = _to_loss_resolution(mask, 16)
    assert out.shape == (16, 16)
    rows = out.any(1).nonzero().flatten()
    assert (rows.min().item(), rows.max().item()) == (3, 8)


# ---------------------------------------------------------------- fallback and errors
def test_fallback_when_every_cluster_matches_a_word():
    left = halves(4)
    cross = cross_with(4, {2: torch.where(left, 1.0, 0.1), 5: torch.where(left, 0.1, 0.6)})
    with pytest.warns(UserWarning, match="DPL issue #2"):
        found = background_masks(blocks(4, left), cross, {"cat": [2], "dog": [5]}, n_clusters=2)
    assert found.fallback is not None and "weakest match" in found.fallback
    assert found.labels.count("BG") == 1
    assert torch.equal(found.background, ~left)                     # dog's 0.83 is weaker than cat's 0.9
    assert not found.nouns["dog"].any() and torch.equal(found.nouns["cat"], left)
    assert "fallback" in repr(found)


def test_threshold_zero_forces_the_fallback():
    gen = torch.Generator().manual_seed(1)
    sa = (torch.randn(64, 4, generator=gen) @ torch.randn(4, 64, generator=gen)).softmax(-1)
    with pytest.warns(UserWarning, match="every cluster matched a word"):
        found = background_masks(sa, torch.rand(8, 8, 77, generator=gen), {"cat": [2], "dog": [5]}, threshold=0.0)
    assert found.background.any() and found.fallback is not None


def test_errors():
    left = halves(4)
    sa, cross = blocks(4, left), cross_with(4, {2: left.float()})
    cases = [
        (dict(self_attention=sa[:, :15]), "square \\(N, N\\) matrix"),
        (dict(self_attention=torch.ones(15, 15) / 15), "not a square map"),
        (dict(cross=cross[0]), "cross must be square"),
        (dict(nouns={}), "nouns is empty"),
        (dict(nouns={"cat": [77]}), "out of range"),
        (dict(nouns={"cat": [-1]}), "out of range"),
        (dict(nouns={"cat": []}), "out of range"),
        (dict(nouns={"BG": [2]}), "label of the background"),
        (dict(n_clusters=0), "n_clusters must be an integer from 1 to 16"),
        (dict(self_attention=sa * float("nan")), "finite"),
    ]
    for change, message in cases:
        kwargs = dict(self_attention=sa, cross=cross, nouns={"cat": [2]}, n_clusters=2) | change
        with pytest.raises(ValueError, match=message):
            background_masks(**kwargs)


# ---------------------------------------------------------------- the whole stage
def test_find_background_on_the_toy_model(toy, scene):
    masks, trajectory, stats = find_background(toy, scene.pil, scene.braced, num_steps=5, progress=False)
    assert isinstance(masks, BackgroundMasks) and isinstance(stats, AttentionStatistics)
    assert trajectory.shape == (6, 1, 3, 32, 32) and stats.calls == 5
    assert masks.background.shape == (16, 16) and masks.background.dtype == torch.bool
    assert masks.clusters.shape == (16, 16) and masks.scores.shape == (5, 2) and len(masks.labels) == 5
    assert list(masks.nouns) == [o.noun for o in scene.objects]
    assert all(m.shape == (16, 16) for m in masks.nouns.values())
    assert masks.background.any()
    with pytest.raises(ValueError, match="has no braced words"):
        find_background(toy, scene.pil, scene.caption, num_steps=5)
    with pytest.raises(ValueError, match="num_steps"):
        find_background(toy, scene.pil, scene.braced, num_steps=0)


def test_find_background_reads_twice_the_resolution(bundle):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")                             # random weights: the fallback may be needed
        masks, trajectory, stats = find_background(bundle, shapes_picture(bundle.image_size),
                                                   "a red {circle} and a yellow {square}", num_steps=3, progress=False)
    assert (stats.self_res, stats.cross_res) == (16, 8)
    assert masks.clusters.shape == (16, 16) and masks.background.shape == (8, 8)
    assert trajectory.shape == (4, 1, 4, 32, 32)


def test_pca_image_and_show_background(toy, scene):
    gen = torch.Generator().manual_seed(0)
    groups = torch.cat([torch.zeros(128, 5), torch.ones(128, 5)]) + 0.01 * torch.randn(256, 5, generator=gen)
    picture = pca_image(groups)
    assert picture.shape == (16, 16, 3) and picture.min() >= 0 and picture.max() <= 1
    assert abs(picture[:8, :, 0].mean() - picture[8:, :, 0].mean()) > 0.9
    assert np.array_equal(pca_image(torch.ones(16, 4)), np.zeros((4, 4, 3)))
    with pytest.raises(ValueError, match="not side \\* side"):
        pca_image(torch.zeros(10, 3))
    left = halves(4)
    masks = background_masks(blocks(4, left), cross_with(4, {2: left.float()}), {"cat": [2]}, n_clusters=2)
    fig = show_background(Image.new("RGB", (32, 32)), masks, outlines=np.zeros((1, 32, 32), bool))
    assert len(fig.axes) == 4                                       # scene, clusters, background, cat
    import matplotlib.pyplot as plt
    plt.close(fig)


def test_anchor_regions_split_a_cluster_two_look_alikes_share():
    "Two objects in one cluster that one word claims whole: anchor_regions gives each word its own object"
    rows, cols = torch.meshgrid(torch.arange(4), torch.arange(4), indexing="ij")
    first, second = (rows < 2) & (cols < 2), (rows >= 2) & (cols >= 2)
    objects = (first | second).flatten()
    # object pixels attend to all object pixels (both objects alike), background to background
    self_attention = (objects[:, None] == objects[None, :]).float()
    self_attention /= self_attention.sum(1, keepdim=True)
    cross = torch.zeros(4, 4, 4)
    cross[..., 1] = torch.where(first, 1.0, torch.where(second, 0.8, 0.0))  # the cat: strong on both
    cross[..., 2] = torch.where(first, 0.2, torch.where(second, 0.6, 0.0))  # the dog: weaker, but on the second
    nouns = {"cat": [1], "dog": [2]}
    masks = background_masks(self_attention, cross, nouns, n_clusters=2)
    assert torch.equal(masks.nouns["cat"], first | second) and not masks.nouns["dog"].any()  # the labels fail
    regions = anchor_regions(masks, cross, nouns)
    assert torch.equal(regions["cat"], first) and torch.equal(regions["dog"], second)
    # the word order does not matter
    swapped = anchor_regions(masks, cross, {"dog": [2], "cat": [1]})
    assert torch.equal(swapped["cat"], first) and torch.equal(swapped["dog"], second)
