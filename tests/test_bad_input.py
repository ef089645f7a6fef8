"""Bad input, as a table: each row is an input a user may give, what the library does with it, and the words the
message must contain. Rows either fail early with a clear ValueError / FileNotFoundError, or are handled (and say how).
The command line's rows are in test_cli.py and below (`CLI_CASES`)."""
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import dpl_nb.inversion as inversion_module
from dpl_nb.dpl import dpl_invert
from dpl_nb.inversion import Inversion, invert
from dpl_nb.models import Bundle, load_bundle, load_image, tiny_bundle
from dpl_nb.p2p import edit
from dpl_nb.prompts import parse_prompt


@pytest.fixture(scope="module")
def toy():
    return load_bundle("toy")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    "Image files of every kind the table needs"
    d = tmp_path_factory.mktemp("inputs")
    rng = np.random.default_rng(0)
    rgb = lambda w, h: Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
    rgb(32, 32).save(d / "ok.png")
    rgb(32, 32).convert("L").save(d / "gray.png")
    rgb(32, 32).convert("RGBA").save(d / "rgba.png")
    rgb(16, 16).save(d / "small16.png")
    rgb(2, 2).save(d / "tiny2.png")
    rgb(48, 32).save(d / "wide.png")
    Image.new("RGB", (5000, 5000), (90, 120, 200)).save(d / "huge.png")
    (d / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not really a png")
    (d / "folder.png").mkdir()
    return d


@pytest.fixture(scope="module")
def toy_inversion(toy, files):
    return invert(toy, files / "ok.png", PROMPT, num_steps=2, progress=False)


PROMPT = "a red {tiger} and a blue {panda}"  # two nouns of the toy model's world, each with a look-alike
LOOKALIKE = PROMPT.replace("tiger", "zebra")  # the first noun swapped for its look-alike

# (case, what to call, expected exception, words in the message)
LIBRARY_CASES = [
    ("missing image file", lambda t, f, i: load_image(f / "nope.png"), FileNotFoundError, "no file"),
    ("a folder instead of an image", lambda t, f, i: load_image(f / "folder.png"), ValueError, "folder"),
    ("a corrupt image", lambda t, f, i: load_image(f / "corrupt.png"), ValueError, "not an image"),
    ("an image too small for the model (SD size)", lambda t, f, i: load_image(f / "small16.png", 512, min_side=64),
     ValueError, "too small"),
    ("a 2x2 image for the toy model", lambda t, f, i: t.encode(f / "tiny2.png"), ValueError, "too small"),
    ("NaN in an image tensor", lambda t, f, i: t.encode(torch.full((1, 3, 32, 32), math.nan)), ValueError, "NaN"),
    ("empty prompt", lambda t, f, i: invert(t, f / "ok.png", "", num_steps=2, progress=False), ValueError, "empty"),
    ("a non-square image tensor (48x32 on the 32x32 toy)", lambda t, f, i: invert(
        t, torch.zeros(1, 3, 48, 32), PROMPT, num_steps=2, progress=False), ValueError, "maps and masks are square"),
    ("the same for DPL, before any work", lambda t, f, i: dpl_invert(t, torch.zeros(1, 3, 64, 32), PROMPT, num_steps=2,
                                                                     progress=False), ValueError, "load_image(image, 32)"),
    ("a square tensor whose latent gives no whole map side (36x36 on the toy)", lambda t, f, i: invert(
        t, torch.zeros(1, 3, 36, 36), PROMPT, num_steps=2, progress=False), ValueError, "multiple of 8 pixels"),
    ("unbalanced braces", lambda t, f, i: parse_prompt("a {cat and a dog"), ValueError, "unbalanced"),
    ("empty braces", lambda t, f, i: parse_prompt("a {} and a dog"), ValueError, "empty braces"),
    ("over 77 tokens", lambda t, f, i: parse_prompt("a " + "red tiger and a " * 30 + "{panda}", t.tokenizer),
     ValueError, "77"),
    ("a word the toy model does not know", lambda t, f, i: invert(t, f / "ok.png", "a {dog}", num_steps=2,
                                                                 progress=False), ValueError, "vocabulary"),
    ("DPL without a braced word", lambda t, f, i: dpl_invert(t, f / "ok.png", "a red tiger", num_steps=2,
                                                            progress=False), ValueError, "braces"),
    ("a background mask of the wrong size", lambda t, f, i: dpl_invert(t, f / "ok.png", PROMPT, num_steps=2,
        background=torch.zeros(8, 8, dtype=torch.bool), progress=False), ValueError, "16x16"),
    ("steps out of range", lambda t, f, i: invert(t, f / "ok.png", PROMPT, num_steps=5000, progress=False),
     ValueError, "num_steps"),
    ("a blend word absent from the prompt", lambda t, f, i: edit(t, i, LOOKALIKE,
        blend_words=("leopard", "zebra"), progress=False), ValueError, "leopard"),
    ("a reweight word absent from the prompt", lambda t, f, i: edit(t, i, PROMPT, reweight={"giraffe": 2.0},
                                                                    progress=False), ValueError, "giraffe"),
    ("an unknown device", lambda t, f, i: load_bundle("toy", device="tpu"), (ValueError, RuntimeError), "tpu"),
    ("a missing model folder", lambda t, f, i: load_bundle(f / "no-such-model"), FileNotFoundError, "no-such-model"),
    ("a dtype that is not a torch dtype", lambda t, f, i: load_bundle("toy", dtype={"unet": "fp16"}), ValueError,
     "a dict of them by part"),
    ("dtype and torch_dtype both, differing", lambda t, f, i: load_bundle("toy", dtype=torch.float16,
                                                                          torch_dtype=torch.bfloat16), ValueError, "not both"),
    ("Bundle.from_pipe of a model id instead of a pipeline", lambda t, f, i: Bundle.from_pipe("CompVis/stable-diffusion-v1-4"),
     ValueError, "use load_bundle"),
]


@pytest.mark.parametrize("case,call,error,words", LIBRARY_CASES, ids=[c[0] for c in LIBRARY_CASES])
def test_library_rejects(case, call, error, words, toy, files, toy_inversion):
    with pytest.raises(error) as info:
        call(toy, files, toy_inversion)
    message = str(info.value)
    assert words.lower() in message.lower(), message
    assert "\n" not in message.strip() and len(message) < 600, "one clear line"


HANDLED = [  # inputs that are fine: converted, with the result the model needs
    ("grayscale", "gray.png"), ("RGBA (composited on white)", "rgba.png"), ("16x16 on the 32x32 toy model", "small16.png"),
    ("non-square (centre-cropped)", "wide.png"), ("5000x5000 (downscaled)", "huge.png"),
]


@pytest.mark.parametrize("case,name", HANDLED, ids=[c[0] for c in HANDLED])
def test_library_handles(case, name, toy, files):
    z0 = toy.encode(files / name)
    assert z0.shape == (1, 3, 32, 32) and torch.isfinite(z0).all()


def test_inversion_from_another_model(toy_inversion, tmp_path):
    path = toy_inversion.save(tmp_path / "inv.safetensors")
    with pytest.raises(ValueError, match="made with the model 'toy'"):
        Inversion.load(path, tiny_bundle(seed=0))


def test_inversion_follows_the_weights_not_the_name(toy, toy_inversion, tmp_path):
    import dataclasses
    from dpl_nb.models import TOY_MODEL
    path = toy_inversion.save(tmp_path / "inv.safetensors")
    same = load_bundle(TOY_MODEL)                       # the toy's weights from their folder: another name, same model
    assert same.model_id == str(TOY_MODEL.resolve()) != toy_inversion.model_id
    edited = edit(same, Inversion.load(path, same), LOOKALIKE, progress=False)
    assert edited.edited.size == (32, 32)
    old = dataclasses.replace(toy_inversion, fingerprint={}).save(tmp_path / "old.safetensors")  # made before fingerprints
    assert Inversion.load(old, toy).model_id == "toy"   # checked by name, as then
    with pytest.raises(ValueError, match="made with the model 'toy'"):
        Inversion.load(old, same)


def test_truncated_inversion_file(toy, toy_inversion, tmp_path):
    path = toy_inversion.save(tmp_path / "inv.safetensors")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        Inversion.load(path, toy)


def test_output_under_a_file_fails_cleanly(toy_inversion, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(OSError):
        toy_inversion.save(blocker / "inv.safetensors")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]


def test_interrupted_save_leaves_nothing(toy_inversion, tmp_path, monkeypatch):
    def interrupted(*args, **kwargs):
        Path(args[1]).write_bytes(b"half")  # the writer got part-way
        raise KeyboardInterrupt
    monkeypatch.setattr(inversion_module, "save_file", interrupted)
    with pytest.raises(KeyboardInterrupt):
        toy_inversion.save(tmp_path / "inv.safetensors")
    assert list(tmp_path.iterdir()) == []  # neither the file nor its temp file


# The command line: every row exits with status 2, prints one line `dpl_nb: error: ...` and writes nothing.
def _cli_cases(f, inv, other, trunc, out):
    scene = str(f / "ok.png")
    return [
        ("missing image", ["invert", str(f / "nope.png"), "--prompt", PROMPT, "-o", out], "no file"),
        ("a folder instead of an image", ["invert", str(f / "folder.png"), "--prompt", PROMPT, "-o", out], "folder"),
        ("a corrupt image", ["invert", str(f / "corrupt.png"), "--prompt", PROMPT, "-o", out], "not an image"),
        ("a 2x2 image", ["invert", str(f / "tiny2.png"), "--prompt", PROMPT, "-o", out], "too small"),
        ("empty prompt", ["invert", scene, "--prompt", "", "-o", out], "empty"),
        ("unbalanced braces", ["invert", scene, "--prompt", "a {red tiger", "-o", out], "unbalanced"),
        ("over 77 tokens", ["invert", scene, "--prompt", "a " + "red tiger and a " * 30 + "{panda}", "-o", out], "77"),
        ("unknown device", ["invert", scene, "--prompt", PROMPT, "--device", "tpu", "-o", out], "tpu"),
        ("output in a missing folder", ["invert", scene, "--prompt", PROMPT, "-o", str(f / "no" / "inv.safetensors")],
         "folder"),
        ("an inversion from another model", ["edit", other, "--model", "toy", "--target", PROMPT, "-o",
                                             out.replace(".safetensors", ".png")], "model"),
        ("a truncated inversion", ["edit", trunc, "--target", PROMPT, "-o", out.replace(".safetensors", ".png")],
         "truncated"),
        ("a blend word absent from the prompt", ["edit", inv, "--target", LOOKALIKE, "--blend",
                                                 "leopard", "-o", out.replace(".safetensors", ".png")], "leopard"),
        ("a missing inversion for show", ["show", str(f / "nope.safetensors"), "-o",
                                          out.replace(".safetensors", ".png")], "no file"),
    ]


CLI_IDS = ["missing image", "a folder instead of an image", "a corrupt image", "a 2x2 image", "empty prompt",
           "unbalanced braces", "over 77 tokens", "unknown device", "output in a missing folder",
           "an inversion from another model", "a truncated inversion", "a blend word absent from the prompt",
           "a missing inversion for show"]


@pytest.mark.parametrize("row", range(len(CLI_IDS)), ids=CLI_IDS)
def test_cli_rejects(row, files, toy_inversion, tmp_path, capsys):
    import dataclasses
    from dpl_nb.cli import main
    inv = str(toy_inversion.save(tmp_path / "inv.safetensors"))
    from dpl_nb.models import model_fingerprint
    other = str(dataclasses.replace(toy_inversion, model_id="tiny-0", fingerprint=model_fingerprint(tiny_bundle(seed=0))
                                    ).save(tmp_path / "other.safetensors"))
    trunc = tmp_path / "trunc.safetensors"
    trunc.write_bytes(Path(inv).read_bytes()[:1000])
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    case, argv, words = _cli_cases(files, inv, other, str(trunc), str(out_dir / "result.safetensors"))[row]
    assert case == CLI_IDS[row]
    status = main(argv + ["--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2, (case, err)
    assert len(err) == 1 and err[0].startswith("dpl_nb: error:") and "Traceback" not in err[0], err
    assert words.lower() in err[0].lower(), err[0]
    assert list(out_dir.iterdir()) == []  # nothing written
