"The embedded toy model and toy world as a user gets them from the installed package."
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import torch

from dpl_nb.metrics import grow_mask
from dpl_nb.models import TOY_MODEL, load_bundle
from dpl_nb.prompts import encode_prompts, parse_prompt
from dpl_nb.toyworld import SHAPES, WORLDS, is_distractor, random_scene, redraw
from dpl_nb.toymoset import scenes_checksum, toymo_set
from dpl_nb.toymodel import prediction_shift, sample_images, toy_metadata
from dpl_nb.toyjudge import judge_objects, load_judge

# scenes_checksum(toymo_set()) of ToyMO-Set in toy world v2 (coats), computed once from toymo_set(); the shipped v2
# model's dpl_nb.json records no toymo_sha256 (toy world v1's recorded 91860488...051d, its shapes set's checksum)
TOYMO_SHA256 = "04e176b13d01ac22819e1812f64c7658904149d1cd1b3dad97e99d66a8f36388"

@pytest.fixture(scope="module")
def toy():
    return load_bundle("toy")


def test_toy_loads_offline_in_fp32(toy):
    assert toy.vae is None and toy.image_size == 32 and toy.attn_res == 16
    assert toy.unet.dtype == torch.float32 and not any(p.requires_grad for p in toy.unet.parameters())
    meta = toy_metadata()
    assert meta["step"] > 0 and meta["config"]["seed"] == 0 and meta["vocabulary"] == list(WORLDS["coats"].vocabulary)


def test_same_prompt_same_seed_same_image(toy):
    a = sample_images(toy, ["a red cat and a blue zebra"], steps=8, seed=3, progress=False)[0]
    b = sample_images(toy, ["a red cat and a blue zebra"], steps=8, seed=3, progress=False)[0]
    c = sample_images(toy, ["a red cat and a blue zebra"], steps=8, seed=4, progress=False)[0]
    assert np.array_equal(np.asarray(a), np.asarray(b)) and not np.array_equal(np.asarray(a), np.asarray(c))


def test_unknown_word_lists_vocabulary(toy):
    with pytest.raises(ValueError, match="does not know the word\\(s\\) \\['dog'\\].*vocabulary is: a and , cat"):
        encode_prompts(toy, "a red {dog}")


def test_toymo_set_is_fixed():
    scenes = toymo_set()
    assert len(scenes) == 100 and sum(map(is_distractor, scenes)) >= 34
    assert all(len(parse_prompt(s.braced).words) == 2 for s in scenes)
    assert scenes_checksum(scenes) == TOYMO_SHA256
    assert toy_metadata().get("toymo_sha256", TOYMO_SHA256) == TOYMO_SHA256  # where the model records one, the same


def test_recolour_target_changes_one_colour_word():
    from dpl_nb.toyworld import COLOURS
    from dpl_nb.toymoset import recolour_target
    for scene in toymo_set():
        noun, old, new, target = recolour_target(scene)
        assert (noun, old) == (scene.objects[0].noun, scene.objects[0].colour)
        assert new in COLOURS and new not in {o.colour for o in scene.objects}
        assert [(a, b) for a, b in zip(scene.braced.split(), target.split()) if a != b] == [(old, new)]
        assert "{" + noun + "}" in target


def test_redraw_changes_one_object_on_one_background():
    scene = toymo_set()[3]
    before, after = redraw(scene, 0, colour="white" if scene.objects[0].colour != "white" else "red")
    changed = np.abs(after.image.astype(int) - before.image).max(-1) > 0
    assert changed[after.masks[0]].all() and not (changed & ~grow_mask(after.masks[0], 1)).any()  # its pixels only
    assert before.objects[1] == after.objects[1] and before.objects[0].colour != after.objects[0].colour
    with pytest.raises(ValueError, match="index must name an object"):
        redraw(scene, 2, colour="red")


def test_prediction_shift_is_seeded_and_checks_its_region(toy):
    scene = toymo_set()[0]
    target = scene.braced.replace(scene.objects[0].colour, "white" if scene.objects[0].colour != "white" else "red", 1)
    a = prediction_shift(toy, scene, target, scene.masks[0], timesteps=(300, 800), seed=1)
    b = prediction_shift(toy, scene, target, scene.masks[0], timesteps=(300, 800), seed=1)
    assert a.shape == (2,) and np.array_equal(a, b) and (a > 0).all()
    with pytest.raises(ValueError, match="region is empty"):
        prediction_shift(toy, scene, target, np.zeros((32, 32), bool))


def test_world_v2_coats_swap_in_place():
    from dpl_nb.toyworld import KINDS, ToyObject, WORLDS, coat_pattern, render_scene
    from dpl_nb.toymoset import swap_target
    scenes = toymo_set(world="coats")
    assert len(scenes) == 100 and sum(map(is_distractor, scenes)) == 40
    assert scenes_checksum(scenes) != scenes_checksum(toymo_set(world="shapes"))  # a world of its own...
    assert toymo_set(world="shapes")[0].braced.split()[-1].strip("{}") not in KINDS
    for scene in scenes[:20]:
        old, new, target = swap_target(scene)
        assert old == scene.objects[0].kind and new in KINDS and f"{{{new}}}" in target
        before, after = redraw(scene, 0, kind=new)
        assert (before.masks == after.masks).all()                             # ...whose swaps keep the outline
    tabby = render_scene([ToyObject("square", "red", 16, 16, 8, kind="tiger")], np.random.default_rng(0))
    assert tabby.caption == "a red tiger" and len(np.unique(tabby.image[tabby.masks[0]].reshape(-1, 3), axis=0)) > 1
    assert WORLDS["coats"].vocabulary[3:9] == KINDS
    with pytest.raises(ValueError, match="world must be one of"):
        toymo_set(world="dogs")
    with pytest.raises(ValueError, match="unknown coat"):
        coat_pattern("dog", 16, 16, 8)


def test_judges_know_their_world(tmp_path, toy):
    from dpl_nb.models import tiny_bundle
    from dpl_nb.toymodel import bundle_world
    from dpl_nb.toyjudge import save_judge, train_judge
    assert load_judge().world == "coats" and bundle_world(toy) == "coats"  # the shipped model: toy world v2
    judge = train_judge(steps=2, progress=False, world="coats")
    save_judge(judge, tmp_path)
    assert load_judge(tmp_path).world == "coats"
    scene = toymo_set(world="coats")[0]
    nouns = [noun for noun, _ in judge_objects(load_judge(tmp_path), scene.image, [(o.cx, o.cy) for o in scene.objects])]
    assert all(n in ("cat", "tiger", "zebra", "leopard", "giraffe", "panda") for n in nouns)
    save_judge(train_judge(steps=2, progress=False, world="shapes"), tmp_path / "shapes")  # and the other world's
    assert load_judge(tmp_path / "shapes").world == "shapes"
    scene = toymo_set(world="shapes")[0]
    nouns = [noun for noun, _ in judge_objects(load_judge(tmp_path / "shapes"), scene.image,
                                               [(o.cx, o.cy) for o in scene.objects])]
    assert all(n in SHAPES for n in nouns)
    with pytest.raises(ValueError, match="not a toy model of a known world"):
        bundle_world(tiny_bundle())


def test_judge_reads_ground_truth():
    judge = load_judge()
    rng = np.random.default_rng(321)
    scenes = [random_scene(rng) for _ in range(20)]
    seen = [judge_objects(judge, s.image, [(o.cx, o.cy) for o in s.objects], outline=True) for s in scenes]
    truth = [[(o.noun, o.colour, o.shape) for o in s.objects] for s in scenes]  # coat, colour and outline
    assert np.mean([a == b for x, y in zip(seen, truth) for a, b in zip(x, y)]) >= 0.9


def test_wheel_carries_the_weights(tmp_path):
    root = TOY_MODEL.parents[2]
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path), str(root)], check=True)
    names = zipfile.ZipFile(next(tmp_path.glob("dpl_nb-*.whl"))).namelist()
    for part in ("unet/diffusion_pytorch_model.safetensors", "text_encoder/model.safetensors", "tokenizer/tokenizer.json",
                 "scheduler/scheduler_config.json", "dpl_nb.json", "log.jsonl", "judge/judge.safetensors"):
        assert f"dpl_nb/assets/toy/{part}" in names, part


def test_the_kept_v2_training_snapshot_loads():
    """The shipped toy model (once tools/toy_runs/coats_v2): the latest leg of toy world v2's training, a model folder
    with its lineage and judge"""
    import json
    from dpl_nb.toymodel import bundle_world
    folder = TOY_MODEL
    assert bundle_world(load_bundle(folder)) == "coats"
    from dpl_nb.toytrain import _earlier_weights  # what a warm start from the folder reads
    meta = json.loads((folder / "dpl_nb.json").read_text())
    config, weights, lineage = _earlier_weights(str(folder))
    assert lineage[-1]["step"] == meta["step"] and config == meta["config"] and len(weights) > 0
    assert all(leg["config"]["world"] == "coats" and leg["config"]["text_encoder"] == "frozen" for leg in lineage)
    assert load_judge(folder / "judge").outline_head is not None
