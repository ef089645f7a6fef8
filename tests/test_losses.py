"DPL's losses on hand-made maps: known values, NaN-free edge cases, weights of 0, errors, stop rule, thresholds, gradients."
import dataclasses
import math

import pytest
import torch

from dpl_nb.losses import (LossConfig, LossValues, attention_balancing, background_leakage, disjoint_objects,
                           dpl_losses, gaussian_kernel, smooth, threshold, word_maps)

CAT, DOG, FILLER = 2, 5, 10
W0, W1 = math.exp(-1) / (1 + 2 * math.exp(-1)), 1 / (1 + 2 * math.exp(-1))   # the 1-D Gaussian weights


def square(y, x, n, size=8):
    mask = torch.zeros(size, size, dtype=torch.bool)
    mask[y:y + n, x:x + n] = True
    return mask


def maps_from(words, size=8, dtype=torch.float32):
    "(size, size, 77) maps holding the given word maps; a filler token takes the rest of each pixel"
    maps = torch.zeros(size, size, 77, dtype=dtype)
    for p, m in words.items():
        maps[..., p] = m.to(dtype)
    maps[..., FILLER] = 1 - maps.sum(-1)
    return maps


def random_maps(size=8, seed=0, dtype=torch.float32):
    gen = torch.Generator().manual_seed(seed)
    return (3 * torch.randn(size, size, 77, generator=gen, dtype=dtype)).softmax(-1)


def close(value, expected, tol=1e-6):
    return abs(float(value) - expected) < tol


# kernel and smoothing

def test_gaussian_kernel_matches_attend_and_excite():
    kernel = gaussian_kernel()
    assert kernel.shape == (3, 3)
    row = kernel[1] / kernel[1].sum()
    assert torch.allclose(row, torch.tensor([0.2119, 0.5761, 0.2119]), atol=1e-4)
    assert torch.allclose(kernel, torch.outer(torch.tensor([W0, W1, W0]), torch.tensor([W0, W1, W0])), atol=1e-7)
    assert close(kernel.sum(), 1.0)
    assert gaussian_kernel(dtype=torch.float64).dtype == torch.float64


@pytest.mark.parametrize("size, sigma, message", [(2, 0.5, "odd positive"), (0, 0.5, "odd positive"),
                                                  (3, 0.0, "sigma must be > 0")])
def test_gaussian_kernel_errors(size, sigma, message):
    with pytest.raises(ValueError, match=message):
        gaussian_kernel(size, sigma)


def test_smooth_keeps_shape_and_constants():
    x = torch.rand(2, 3, 6, 6)
    assert smooth(x).shape == x.shape
    assert torch.allclose(smooth(torch.full((5, 5), 0.4)), torch.full((5, 5), 0.4), atol=1e-6)
    dot = torch.zeros(5, 5)
    dot[2, 2] = 1
    assert torch.allclose(smooth(dot)[1:4, 1:4], gaussian_kernel(), atol=1e-7)
    corner = torch.zeros(5, 5)
    corner[0, 0] = 1   # reflect padding mirrors row 1, not row 0: the corner keeps the centre weight only
    assert close(smooth(corner)[0, 0], W1 ** 2)


def test_smooth_errors():
    with pytest.raises(ValueError, match="too small"):
        smooth(torch.zeros(1, 4))
    with pytest.raises(ValueError, match="floating-point"):
        smooth(torch.zeros(4, 4, dtype=torch.long))


# word maps

def test_word_maps_means_over_tokens():
    maps = random_maps()
    words = word_maps(maps, [[CAT], [DOG, DOG + 1]])
    assert words.shape == (2, 8, 8)
    assert torch.equal(words[0], maps[..., CAT])
    assert torch.allclose(words[1], (maps[..., DOG] + maps[..., DOG + 1]) / 2)
    assert torch.equal(word_maps(maps, [CAT, DOG]), word_maps(maps, [[CAT], [DOG]]))
    assert torch.equal(word_maps(maps, (torch.tensor(CAT),)), word_maps(maps, [[CAT]]))


@pytest.mark.parametrize("positions, message", [([], "positions is empty"), ([[2], [77]], "77 is out of range"),
                                                ([[-1]], "-1 is out of range"), ([[2], []], "no token positions"),
                                                ([[2.5]], "one list of token positions per word")])
def test_word_maps_bad_positions(positions, message):
    with pytest.raises(ValueError, match=message):
        word_maps(random_maps(), positions)


@pytest.mark.parametrize("maps", [torch.rand(8, 77), torch.rand(1, 8, 8, 77), torch.zeros(8, 8, 77, dtype=torch.long)])
def test_maps_must_be_hw_tokens(maps):
    with pytest.raises(ValueError, match=r"\(H, W, tokens\)"):
        word_maps(maps, [[CAT]])


# attention balancing

@pytest.mark.parametrize("n, peak", [(1, W1 ** 2), (2, (W0 + W1) ** 2), (3, 1.0)])
def test_attention_balancing_by_hand(n, peak):
    maps = maps_from({CAT: square(3, 3, n)})
    assert close(attention_balancing(maps, [[CAT]]), 1 - peak)
    assert close(attention_balancing(maps, [[CAT]], smoothing=False), 0.0)


def test_attention_balancing_reduction_and_scale():
    pair = maps_from({CAT: square(0, 0, 1), DOG: square(4, 4, 3)})
    assert close(attention_balancing(pair, [[CAT], [DOG]]), 1 - W1 ** 2)
    assert close(attention_balancing(pair, [[CAT], [DOG]], reduction="mean"), (1 - W1 ** 2) / 2)
    soft = torch.full((8, 8, 77), 0.01)
    soft[..., CAT] += 0.1 * square(2, 2, 3)         # cat leads the other tokens by 0.1 in a 3x3 block
    values = [attention_balancing(soft, [[CAT]], scale=s).item() for s in (1, 10, 100)]
    assert values == sorted(values, reverse=True) and values[0] > 0.9 and values[-1] < 0.01


def test_attention_balancing_drops_first_and_last_slot():
    maps = random_maps()
    text = (maps[..., 1:-1] * 100).softmax(-1)
    expected = 1 - smooth(text[..., DOG - 1]).max()
    assert close(attention_balancing(maps, [[DOG]]), float(expected.clamp_min(0)))
    for bad in (0, 76):
        with pytest.raises(ValueError, match="must be from 1 to 75"):
            attention_balancing(maps, [[bad]])
    with pytest.raises(ValueError, match="'max' or 'mean'"):
        attention_balancing(maps, [[CAT]], reduction="sum")


# disjoint objects

def test_disjoint_objects_by_hand():
    a, b = square(0, 0, 2), square(4, 4, 2)
    assert float(disjoint_objects(maps_from({CAT: a, DOG: b}), [[CAT], [DOG]])) == 0.0
    assert close(disjoint_objects(maps_from({CAT: 0.5 * a, DOG: 0.5 * a}), [[CAT], [DOG]]), 1.0)
    assert close(disjoint_objects(maps_from({CAT: 0.5 * a, DOG: 0.5 * square(0, 1, 2)}), [[CAT], [DOG]]), 0.5)
    three = maps_from({CAT: 0.5 * a, DOG: b, 7: 0.5 * a})
    assert close(disjoint_objects(three, [[CAT], [DOG], [7]]), 1 / 3)


def test_disjoint_objects_one_word_is_zero_not_nan():
    maps = random_maps().requires_grad_()
    value = disjoint_objects(maps, [[CAT]])
    assert isinstance(value, torch.Tensor) and value.shape == () and float(value) == 0.0


# background leakage

def test_background_leakage_by_hand():
    obj = square(2, 2, 4)
    bg = ~obj
    assert close(background_leakage(maps_from({CAT: 0.5 * bg}), [[CAT]], bg), 1.0)
    assert float(background_leakage(maps_from({CAT: obj}), [[CAT]], bg)) == 0.0
    spread = maps_from({CAT: torch.full((8, 8), 0.2), DOG: obj})
    assert close(background_leakage(spread, [[CAT]], bg), math.sqrt(48 / 64))
    assert close(background_leakage(spread, [[CAT], [DOG]], bg), math.sqrt(48 / 64) / 2)


def test_background_wrong_size_or_rank():
    maps = random_maps(size=16)
    with pytest.raises(ValueError, match="background mask is 32x32 but the maps are 16x16; make it at the loss resolution"):
        background_leakage(maps, [[CAT]], torch.ones(32, 32, dtype=torch.bool))
    with pytest.raises(ValueError, match="2-D"):
        background_leakage(maps, [[CAT]], torch.ones(1, 1, 16, 16, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"one mask per word at the maps' resolution, got shape \(2, 16, 16\)"):
        background_leakage(maps, [[CAT]], torch.ones(2, 16, 16, dtype=torch.bool))
    half = torch.zeros(16, 16, dtype=torch.bool); half[:8] = True  # one word's own mask: the same as the shared one
    assert torch.equal(background_leakage(maps, [[CAT]], half[None]), background_leakage(maps, [[CAT]], half))


# thresholds and config

def test_threshold_table():
    table = {(25, 0.3): [0.300, 0.201, 0.110, 0.042], (25, 0.9): [0.900, 0.603, 0.331, 0.127],
             (50, 0.7): [0.700, 0.573, 0.425, 0.263]}
    for (alpha, beta), values in table.items():
        assert [round(threshold(i, alpha, beta), 3) for i in (0, 10, 25, 49)] == values
    assert threshold(7, 50, 0.7, start=7) == 0.7
    with pytest.raises(ValueError, match="alpha must be > 0"):
        threshold(0, 0.0, 0.3)


def test_config_defaults_and_thresholds():
    config = LossConfig()
    assert (config.lambda_at, config.lambda_bg, config.lambda_dj) == (1.0, 0.05, 0.05)
    assert (config.scale, config.smoothing, config.reduction, config.bg_start) == (100.0, True, "max", 0)
    assert config.thresholds(0) == {"at": 0.3, "bg": 0.7, "dj": 0.9}
    t = config.thresholds(25)
    assert (round(t["at"], 3), round(t["bg"], 3), round(t["dj"], 3)) == (0.110, 0.425, 0.331)
    assert LossConfig(bg_start=10).thresholds(10)["bg"] == 0.7
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.lambda_at = 2.0


@pytest.mark.parametrize("kwargs, message", [({"lambda_at": -1.0}, "lambda_at must be >= 0"),
                                             ({"alpha_bg": 0.0}, "alpha_bg must be > 0"),
                                             ({"reduction": "sum"}, "'max' or 'mean'"),
                                             ({"bg_start": -1}, "bg_start"),
                                             ({"lambda_dj": float("nan")}, "finite")])
def test_config_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LossConfig(**kwargs)


# stop rule and dpl_losses

def test_stop_rule_on_raw_values():
    values = LossValues(torch.tensor(0.1), torch.tensor(0.5), torch.tensor(0.2), torch.tensor(0.2))
    assert values.below({"at": 0.3, "bg": 0.7, "dj": 0.9})
    assert not values.below({"at": 0.3, "bg": 0.5, "dj": 0.9})   # strictly below
    assert not values.below({"at": 0.1, "bg": 0.7, "dj": 0.9})
    assert set(values.as_dict()) == {"at", "bg", "dj", "total"}
    assert all(isinstance(v, float) for v in values.as_dict().values())
    with pytest.raises(ValueError, match="missing"):
        values.below({"at": 0.3})


def test_dpl_losses_total_and_stop_rule():
    maps = random_maps(size=16)
    bg = square(0, 0, 8, size=16)
    config = LossConfig()
    v = dpl_losses(maps, [[CAT], [DOG]], bg, config, 3)
    assert close(v.total, float(v.at) + 0.05 * float(v.bg) + 0.05 * float(v.dj))
    assert close(v.at, float(attention_balancing(maps, [[CAT], [DOG]])))
    assert close(v.dj, float(disjoint_objects(maps, [[CAT], [DOG]])))
    assert close(v.bg, float(background_leakage(maps, [[CAT], [DOG]], bg)))
    assert v.below({"at": 2.0, "bg": 2.0, "dj": 2.0})
    assert not v.below({"at": 0.0, "bg": 2.0, "dj": 2.0})


def test_disabled_losses_are_exact_zeros_and_need_no_background():
    maps = random_maps(size=16)
    off = LossConfig(lambda_at=0.0, lambda_bg=0.0, lambda_dj=0.0)
    v = dpl_losses(maps, [[CAT], [DOG]], None, off, 0)
    assert [float(v.at), float(v.bg), float(v.dj), float(v.total)] == [0.0] * 4
    assert v.below(off.thresholds(0))                     # disabled losses pass
    only_bg_off = dpl_losses(maps, [[CAT], [DOG]], None, LossConfig(lambda_bg=0.0), 0)
    assert float(only_bg_off.bg) == 0.0 and float(only_bg_off.at) > 0
    with pytest.raises(ValueError, match="find_background, or set lambda_bg=0"):
        dpl_losses(maps, [[CAT], [DOG]], None, LossConfig(), 0)
    with pytest.raises(ValueError, match="background mask is 8x8 but the maps are 16x16"):
        dpl_losses(maps, [[CAT], [DOG]], torch.ones(8, 8, dtype=torch.bool), LossConfig(), 0)


def test_one_word_is_nan_free():
    maps = random_maps(size=16).requires_grad_()
    bg = square(0, 0, 8, size=16)
    v = dpl_losses(maps, [[CAT]], bg, LossConfig(lambda_dj=1.0), 0)
    assert v.dj.item() == 0.0 and not math.isnan(v.total.item())
    v.total.backward()
    assert not maps.grad.isnan().any()


def test_bg_start():
    maps = random_maps(size=16)
    bg = square(0, 0, 8, size=16)
    config = LossConfig(bg_start=5)
    assert float(dpl_losses(maps, [[CAT], [DOG]], bg, config, 4).bg) == 0.0
    assert float(dpl_losses(maps, [[CAT], [DOG]], bg, config, 5).bg) > 0.0
    assert config.thresholds(4)["bg"] > 0.7 and config.thresholds(5)["bg"] == 0.7


def test_gradient_reaches_the_input_and_descent_lowers_each_loss():
    bg = square(0, 0, 8, size=16)
    gen = torch.Generator().manual_seed(1)
    start = torch.randn(16, 16, 77, generator=gen)
    losses = {"at": lambda m: attention_balancing(m, [[CAT], [DOG]]),
              "dj": lambda m: disjoint_objects(m, [[CAT], [DOG]]),
              "bg": lambda m: background_leakage(m, [[CAT], [DOG]], bg),
              "total": lambda m: dpl_losses(m, [[CAT], [DOG]], bg, LossConfig(), 0).total}
    for name, fn in losses.items():
        logits = start.clone().requires_grad_()
        opt = torch.optim.Adam([logits], lr=0.2)
        first = fn(logits.softmax(-1))
        first.backward()
        assert logits.grad is not None and logits.grad.abs().sum() > 0, name
        for _ in range(15):
            opt.step()
            opt.zero_grad()
            fn(logits.softmax(-1)).backward()
        assert fn(logits.softmax(-1)).item() < 0.7 * first.item(), name


def test_float64_works_end_to_end():
    maps = random_maps(size=16, dtype=torch.float64).requires_grad_()
    bg = square(0, 0, 8, size=16)
    v = dpl_losses(maps, [[CAT], [DOG]], bg, LossConfig(), 0)
    for value in (v.at, v.bg, v.dj, v.total):
        assert value.dtype == torch.float64
    v.total.backward()
    assert maps.grad.dtype == torch.float64
    single = maps_from({CAT: square(3, 3, 1)}, dtype=torch.float64)
    assert abs(float(attention_balancing(single, [[CAT]])) - (1 - W1 ** 2)) < 1e-12
    assert smooth(torch.rand(4, 4, dtype=torch.float64)).dtype == torch.float64


# at_region="objects": L_at's peaks only off the background (a non-reference option)

def test_attention_balancing_region_by_hand():
    on_background = maps_from({CAT: square(5, 5, 3)})        # cat wins a 3x3 block outside the object
    objects = square(0, 0, 4)
    assert close(attention_balancing(on_background, [[CAT]]), 0.0)
    assert close(attention_balancing(on_background, [[CAT]], region=objects), 1.0)
    both = maps_from({CAT: square(5, 5, 3) | square(0, 0, 3)})
    assert close(attention_balancing(both, [[CAT]], region=objects), 0.0)
    with pytest.raises(ValueError, match="region has no pixel"):
        attention_balancing(both, [[CAT]], region=torch.zeros(8, 8, dtype=torch.bool))
    with pytest.raises(ValueError, match="region must be an"):
        attention_balancing(both, [[CAT]], region=torch.ones(4, 4, dtype=torch.bool))


def test_at_region_objects_in_dpl_losses():
    maps = random_maps(size=16)
    bg = square(0, 0, 8, size=16)
    objects = LossConfig(at_region="objects")
    v = dpl_losses(maps, [[CAT], [DOG]], bg, objects, 3)
    assert close(v.at, float(attention_balancing(maps, [[CAT], [DOG]], region=~bg)))
    assert float(v.at) >= float(dpl_losses(maps, [[CAT], [DOG]], bg, LossConfig(), 3).at)   # fewer pixels to win
    everywhere = dpl_losses(maps, [[CAT], [DOG]], torch.ones(16, 16, dtype=torch.bool), objects, 3)
    assert close(everywhere.at, float(attention_balancing(maps, [[CAT], [DOG]])))          # all background: whole map
    with pytest.raises(ValueError, match="at_region is 'objects'"):
        dpl_losses(maps, [[CAT], [DOG]], None, LossConfig(lambda_bg=0.0, at_region="objects"), 0)
    with pytest.raises(ValueError, match="at_region must be 'all'"):
        LossConfig(at_region="foreground")
