"The `dpl_nb` command line, in-process through `main` and installed: outputs, exit codes, one-line errors, no half-written files."
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dpl_nb import __version__
from dpl_nb.cli import DEMO_SCENES, blend_words, demo_scenes, main, shown_steps
from dpl_nb.toymoset import swap_target
from dpl_nb.inversion import Inversion

STEPS = "2"
# ToyMO-Set scene 1, the first scene of two unrelated nouns in one colour (toy world v1's was scene 5,
# "a red {circle} and a red {square}"), and its swap_target
PROMPT = "a green {tiger} and a green {leopard}"
TARGET = "a green {giraffe} and a green {leopard}"
LOOKALIKE = PROMPT.replace("{tiger}", "{zebra}")  # the first noun swapped for its look-alike (v1: circle -> ring)


def run(capsys, *argv):
    "main(argv): (status, stdout lines, stderr lines)"
    status = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return status, captured.out.splitlines(), captured.err.splitlines()


def assert_one_line_error(status, out, err, *needles):
    assert status == 2, (status, err)
    assert out == [] and len(err) == 1, err
    assert err[0].startswith("dpl_nb: error: ") and "Traceback" not in err[0]
    for needle in needles:
        assert needle in err[0], err[0]


def fill(argv, **names) -> list[str]:
    "`argv` with the placeholders {name} replaced (prompts keep their braces)"
    out = []
    for arg in argv:
        for key, value in names.items():
            arg = arg.replace("{" + key + "}", str(value))
        out.append(arg)
    return out


def leftovers(folder: Path) -> list[str]:
    "Temporary or probe files left in `folder`"
    return [p.name for p in folder.iterdir() if p.name.startswith(".")]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    "A ToyMO-Set scene as a PNG and its DPL and NTI inversions, made with the command line at 2 steps"
    from dpl_nb.toymoset import toymo_set
    from dpl_nb.toyworld import scene_world
    folder = tmp_path_factory.mktemp("cli")
    similar = lambda s: scene_world(s).similar.get(s.objects[0].noun) == s.objects[1].noun
    scene = next(s for s in toymo_set() if s.objects[0].colour == s.objects[1].colour
                 and s.objects[0].noun != s.objects[1].noun and not similar(s))
    assert scene.braced == PROMPT and swap_target(scene)[2] == TARGET
    image = folder / "scene.png"
    scene.pil.save(image)
    paths = dict(folder=folder, image=image, dpl=folder / "dpl.safetensors", nti=folder / "nti.safetensors")
    for method in ("dpl", "nti"):
        assert main(["invert", str(image), "--prompt", PROMPT, "--steps", STEPS, "--method", method,
                     "-o", str(paths[method]), "--quiet"]) == 0
    return paths


@pytest.fixture(scope="module")
def toy():
    from dpl_nb.models import load_bundle
    return load_bundle("toy")


# --- help, version, parsing -------------------------------------------------------------------------------------

@pytest.mark.parametrize("command", [[], ["demo"], ["invert"], ["edit"], ["show"]])
def test_help_exits_0_with_examples(capsys, command):
    status, out, err = run(capsys, *command, "--help")
    assert status == 0 and err == []
    assert any(line.startswith("usage: dpl_nb") for line in out) and "examples:" in out


def test_cli_presets_are_the_library_presets():
    from dpl_nb.cli import PRESETS
    from dpl_nb.dpl import DPL_PRESETS
    assert sorted(PRESETS) == sorted(DPL_PRESETS)


def test_version(capsys):
    assert run(capsys, "--version")[:2] == (0, [f"dpl_nb {__version__}"])


@pytest.mark.parametrize("argv, needle", [
    ([], "choose a command"),
    (["frobnicate"], "invalid choice"),
    (["invert", "x.png", "-o", "x.safetensors"], "--prompt"),
    (["demo", "--steps", "0"], "--steps"),
    (["demo", "--preset", "fastest"], "--preset"),
    (["edit", "x.safetensors", "--target", "a {dog}", "-o", "x.png", "--reweight", "dog"], "WORD=SCALE"),
    (["demo", "--no-such-option"], "unrecognized arguments"),
])
def test_usage_errors_are_one_line(capsys, argv, needle):
    assert_one_line_error(*run(capsys, *argv), needle)


# --- the commands, end to end -------------------------------------------------------------------------------------

def test_demo(capsys, tmp_path):
    from dpl_nb.dpl import dpl_config
    from dpl_nb.inversion import invert
    from dpl_nb.models import load_bundle
    from dpl_nb.toymodel import bundle_world
    from dpl_nb.toymoset import toymo_set
    from dpl_nb.toyworld import is_distractor
    toy = load_bundle("toy")
    scenes = toymo_set(world=bundle_world(toy))
    first = demo_scenes(scenes)[:2]
    assert len(demo_scenes(scenes)) == DEMO_SCENES and all(is_distractor(scenes[i]) for i in first)
    out_dir = tmp_path / "demo"  # created by the command
    capsys.readouterr()  # loading the bundle above may print a progress bar
    status, out, err = run(capsys, "demo", "--steps", STEPS, "--scenes", "2", "-o", out_dir, "--quiet")
    assert status == 0 and err == []
    assert out == [f"wrote {out_dir / 'demo.png'}", f"wrote {out_dir / 'demo.json'}"]
    assert Image.open(out_dir / "demo.png").format == "PNG"
    report = json.loads((out_dir / "demo.json").read_text())
    assert [r["scene"] for r in report["scenes"]] == first and all(r["distractor"] for r in report["scenes"])
    assert report["steps"] == 2 and report["preset"] == "toy" and report["seed"] == 0
    for record in report["scenes"]:
        scene = scenes[record["scene"]]
        assert record["prompt"] == scene.braced and record["target"] == swap_target(scene)[2]
        for method in ("nti", "dpl"):
            run_ = record[method]
            assert set(run_["ious"]) == {o.noun for o in scene.objects} and all(0 <= v <= 1 for v in run_["ious"].values())
            assert isinstance(run_["success"], bool) and isinstance(run_["kept"], bool)
            assert run_["unet_evals"] > 0 and run_["seconds"] > 0 and run_["edit_unet_evals"] > 0
        # DPL is its preset's inversion plus token updates: it costs at least that inversion alone, equal when no
        # token update is taken (toy world v1's preset toy ran on NTI; v2's runs on Direct Inversion, cheaper than NTI)
        base = dpl_config(report["preset"]).inversion
        base_cost = invert(toy, scene.pil, scene.braced, 2, 7.5, method=base, progress=False).cost.total
        assert record["dpl"]["unet_evals"] >= base_cost > 0, (base, base_cost)
    for method in ("nti", "dpl"):
        assert report["means"][method]["success"] == np.mean([r[method]["success"] for r in report["scenes"]])
        assert report["means"][method]["distractor_kept"] == np.mean([r[method]["kept"] for r in report["scenes"]])
    assert {"dpl_nb", "torch", "diffusers", "python"} <= set(report["versions"])
    assert sorted(p.name for p in out_dir.iterdir()) == ["demo.json", "demo.png"]


def test_demo_named_scene_and_messages(capsys, tmp_path):
    status, out, err = run(capsys, "demo", "--steps", "1", "--scene", "2", "-o", tmp_path)
    assert status == 0 and len(out) == 2
    assert any("IoU@0.3" in line for line in err) and any("swapped" in line for line in err)  # stderr unless --quiet
    assert [r["scene"] for r in json.loads((tmp_path / "demo.json").read_text())["scenes"]] == [2]


def test_demo_bad_scene_fails_before_loading(capsys, tmp_path):
    assert_one_line_error(*run(capsys, "demo", "--scene", "100", "-o", tmp_path / "d", "--quiet"), "--scene", "0 to 99")
    assert not (tmp_path / "d").exists()


def test_invert_writes_loadable_inversions(files, toy):
    dpl, nti = Inversion.load(files["dpl"], toy), Inversion.load(files["nti"], toy)
    assert dpl.method == "dpl" and dpl.num_steps == 2 and dpl.prompt == PROMPT and dpl.maps is not None
    assert dpl.token_embeddings is not None and dpl.settings["preset"] == "lean"
    assert nti.method == "nti" and nti.token_embeddings is None
    assert files["dpl"].stat().st_mode & 0o044  # not private: the temporary file's 0600 is not kept
    assert leftovers(files["folder"]) == []


def test_invert_ddim(capsys, files, tmp_path):
    out = tmp_path / "ddim.safetensors"
    status, written, _ = run(capsys, "invert", files["image"], "--prompt", "a green tiger and a green leopard",
                             "--method", "ddim", "--steps", STEPS, "-o", out, "--quiet")
    assert status == 0 and written == [f"wrote {out}"] and Inversion.load(out).method == "ddim"


@pytest.mark.parametrize("extra", [["--method", "npi"], ["--method", "direct"], ["--method", "dpl", "--preset", "fast"]])
def test_invert_without_null_text_optimisation(capsys, files, tmp_path, extra):
    out = tmp_path / "cheap.safetensors"
    status, written, _ = run(capsys, "invert", files["image"], "--prompt", PROMPT, *extra, "--steps", STEPS, "-o", out,
                             "--quiet")
    inversion = Inversion.load(out)
    assert status == 0 and written == [f"wrote {out}"] and inversion.inner_steps in ([], [0] * int(STEPS))
    assert (inversion.corrections is not None) == (extra[1] == "direct")
    edited = tmp_path / "edited.png"
    assert run(capsys, "edit", out, "--target", LOOKALIKE, "-o", edited, "--quiet")[0] == 0


def test_invert_says_how_it_fits_a_non_square_image(capsys, files, tmp_path):
    wide, out = tmp_path / "wide.png", tmp_path / "wide.safetensors"
    Image.open(files["image"]).resize((64, 48)).save(wide)
    for fit, said in (("crop", "the image is 64x48: centre-cropped to a square, then resized to the model's 32x32"),
                      ("resize", "the image is 64x48: resized to the model's 32x32")):
        status, _, err = run(capsys, "invert", wide, "--prompt", PROMPT, "--method", "ddim", "--steps", STEPS,
                             "--fit", fit, "-o", out)
        assert status == 0 and any(line.strip().startswith(said) for line in err), err
        assert Inversion.load(out).latents.shape[-1] == 32


def test_invert_with_the_non_reference_options(capsys, files, tmp_path):
    out = tmp_path / "options.safetensors"
    status, written, _ = run(capsys, "invert", files["image"], "--prompt", PROMPT, "--steps", STEPS,
                             "--at-region", "objects", "--word-gradients", "own", "--anchor", "-o", out, "--quiet")
    assert status == 0 and written == [f"wrote {out}"]
    settings = Inversion.load(out).settings
    assert settings["word_gradients"] == "own" and settings["losses"]["at_region"] == "objects"
    assert settings["losses"]["anchor"] is True
    assert settings["preset"] is None                      # no longer the lean preset itself
    status, out_lines, err = run(capsys, "invert", files["image"], "--prompt", PROMPT, "--method", "nti",
                                 "--word-gradients", "own", "-o", tmp_path / "nti.safetensors")
    assert_one_line_error(status, out_lines, err, "options of DPL")
    status, out_lines, err = run(capsys, "invert", files["image"], "--prompt", PROMPT, "--method", "npi",
                                 "--anchor", "-o", tmp_path / "npi.safetensors")
    assert_one_line_error(status, out_lines, err, "options of DPL")
    assert not (tmp_path / "nti.safetensors").exists()


def test_edit(capsys, files, tmp_path):
    edited, source = tmp_path / "edit.png", tmp_path / "recon.png"
    status, out, err = run(capsys, "edit", files["dpl"], "--target", TARGET, "--blend", "tiger",
                           "--reweight", "giraffe=2", "--cross-replace", "0.5", "--self-replace", "0.2",
                           "-o", edited, "--source-out", source, "--quiet")
    assert status == 0 and err == [] and out == [f"wrote {edited}", f"wrote {source}"]
    for path in (edited, source):
        image = Image.open(path)
        assert image.format == "PNG" and image.size == (32, 32)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["edit.png", "recon.png"]


def test_edit_jpeg_and_explicit_blend(capsys, files, tmp_path):
    out = tmp_path / "edit.jpg"
    assert run(capsys, "edit", files["nti"], "--target", TARGET, "--blend", "tiger:giraffe", "-o", out, "--quiet")[0] == 0
    assert Image.open(out).format == "JPEG"


def test_edit_in_half_precision_on_a_cpu(capsys, files, tmp_path):
    "fp16 on a CPU: one warning line, and the same picture as fp32 (it was all black when the nulls were fp16)"
    full, half = tmp_path / "fp32.png", tmp_path / "fp16.png"
    assert run(capsys, "edit", files["nti"], "--target", TARGET, "--blend", "tiger", "-o", full, "--quiet")[0] == 0
    status, out, err = run(capsys, "edit", files["nti"], "--target", TARGET, "--blend", "tiger", "--dtype", "float16",
                           "-o", half, "--quiet")
    assert status == 0 and out == [f"wrote {half}"]
    assert len(err) == 1 and err[0].startswith("dpl_nb: warning: the model is in torch.float16 on a CPU"), err
    a, b = (torch.from_numpy(np.asarray(Image.open(p), dtype=np.float32)) for p in (full, half))
    assert b.mean() > 20 and (a - b).abs().mean() < 3, ((a - b).abs().mean(), b.mean())


@pytest.mark.parametrize("method", ["dpl", "nti"])
def test_show(capsys, files, tmp_path, method):
    out = tmp_path / f"maps_{method}.png"
    status, written, _ = run(capsys, "show", files[method], "--steps-shown", "5", "-o", out, "--quiet")
    assert status == 0 and written == [f"wrote {out}"] and Image.open(out).format == "PNG"


def test_blend_words_and_shown_steps():
    assert blend_words(PROMPT, TARGET, ["tiger"]) == (["tiger"], ["giraffe"])
    assert blend_words(PROMPT, TARGET, ["tiger:giraffe", "leopard"]) == (["tiger", "leopard"], ["giraffe", "leopard"])
    assert blend_words("a cat", "a fluffy cat", ["cat"]) == (["cat"], ["cat"])
    with pytest.raises(ValueError, match="ambiguous"):
        blend_words("a cat", "a fluffy dog", ["cat"])
    with pytest.raises(ValueError, match="not a word"):
        blend_words(PROMPT, TARGET, ["zebra"])
    assert shown_steps(50, 10)[0] == 0 and shown_steps(50, 10)[-1] == 49 and len(shown_steps(50, 10)) == 10
    assert shown_steps(3, 10) == [0, 1, 2]


def test_swap_target_is_the_benchmark_rule():
    from dpl_nb.toyworld import SIMILAR_KINDS
    from dpl_nb.toymoset import toymo_set
    for scene in toymo_set()[:20]:
        old, new, target = swap_target(scene)
        nouns = [o.noun for o in scene.objects]
        assert old == nouns[0] and new not in nouns and new not in [SIMILAR_KINDS.get(s) for s in nouns]
        assert target == scene.braced.replace("{" + old + "}", "{" + new + "}", 1)


# --- bad input: exit status 2, one line, before any work ----------------------------------------------------------

def test_missing_image(capsys, tmp_path):
    missing = tmp_path / "missing.png"
    status, out, err = run(capsys, "invert", missing, "--prompt", PROMPT, "-o", tmp_path / "x.safetensors")
    assert_one_line_error(status, out, err, str(missing))
    assert list(tmp_path.iterdir()) == []


def test_folder_instead_of_image(capsys, tmp_path):
    assert_one_line_error(*run(capsys, "invert", tmp_path, "--prompt", PROMPT, "-o", tmp_path / "x.safetensors"),
                          "folder")


def test_file_that_is_not_an_image(capsys, tmp_path):
    fake = tmp_path / "fake.png"
    fake.write_text("hello")
    assert_one_line_error(*run(capsys, "invert", fake, "--prompt", PROMPT, "-o", tmp_path / "x.safetensors"),
                          "not an image")


@pytest.mark.parametrize("prompt, needle", [("", "empty"), ("a green {tiger and a green leopard", "unbalanced"),
                                            ("a green tiger and a green leopard", "braces"),
                                            ("a {cat} and a {dog}", "does not know")])
def test_bad_prompts(capsys, files, tmp_path, prompt, needle):
    out = tmp_path / "x.safetensors"
    assert_one_line_error(*run(capsys, "invert", files["image"], "--prompt", prompt, "-o", out, "--quiet"), needle)
    assert not out.exists()


def test_bad_target_and_blend(capsys, files, tmp_path):
    out = tmp_path / "x.png"
    assert_one_line_error(*run(capsys, "edit", files["dpl"], "--target", "a green {giraffe", "-o", out, "--quiet"), "--target")
    assert_one_line_error(*run(capsys, "edit", files["dpl"], "--target", "a green {dog} and a green {leopard}",
                               "-o", out, "--quiet"), "does not know")
    assert_one_line_error(*run(capsys, "edit", files["dpl"], "--target", TARGET, "--blend", "zebra", "-o", out, "--quiet"), "zebra")
    assert_one_line_error(*run(capsys, "edit", files["dpl"], "--target", TARGET, "-o", tmp_path / "x.gif2"), "x.gif2")
    assert list(tmp_path.iterdir()) == []


def test_bad_inversion_files(capsys, files, tmp_path):
    fake = tmp_path / "fake.safetensors"
    fake.write_bytes(b"\x00" * 100)
    for inv, needle in ((tmp_path / "missing.safetensors", "no file"), (tmp_path, "folder"), (fake, "corrupt")):
        assert_one_line_error(*run(capsys, "show", inv, "-o", tmp_path / "maps.png"), needle)
    assert_one_line_error(*run(capsys, "edit", files["dpl"], "--model", tmp_path / "no_model", "--target", TARGET,
                               "-o", tmp_path / "x.png", "--quiet"), "no_model")


def test_wrong_output_names(capsys, files, tmp_path):
    assert_one_line_error(*run(capsys, "invert", files["image"], "--prompt", PROMPT, "-o", tmp_path / "x.png"),
                          ".safetensors")
    assert_one_line_error(*run(capsys, "show", files["dpl"], "-o", tmp_path), "folder")
    (tmp_path / "file").write_text("")
    assert_one_line_error(*run(capsys, "demo", "-o", tmp_path / "file"), "is a file")


@pytest.mark.parametrize("argv", [
    ["invert", "{image}", "--prompt", PROMPT, "-o", "{missing}/x.safetensors"],
    ["edit", "{dpl}", "--target", TARGET, "-o", "{missing}/x.png"],
    ["edit", "{dpl}", "--target", TARGET, "-o", "{folder}/x.png", "--source-out", "{missing}/s.png"],
    ["show", "{dpl}", "-o", "{missing}/maps.png"],
    ["demo", "-o", "{missing}/sub/demo"],
])
def test_output_in_missing_folder_fails_before_any_work(capsys, monkeypatch, files, tmp_path, argv):
    import dpl_nb.models

    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded before the output path was checked")
    monkeypatch.setattr(dpl_nb.models, "load_bundle", no_model)
    status, out, err = run(capsys, *fill(argv, image=files["image"], dpl=files["dpl"], folder=tmp_path,
                                         missing=tmp_path / "missing"))
    assert_one_line_error(status, out, err, "does not exist", str(tmp_path / "missing"))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root may write in any folder")
def test_unwritable_folder(capsys, files, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        assert_one_line_error(*run(capsys, "invert", files["image"], "--prompt", PROMPT,
                                   "-o", locked / "x.safetensors"), "cannot write")
    finally:
        locked.chmod(0o755)


def test_unwritable_folder_by_probe(capsys, monkeypatch, files, tmp_path):
    "Whatever makes a folder refuse a file (permissions, read-only mount, quota), the probe file reports it"
    import dpl_nb.cli

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")
    monkeypatch.setattr(dpl_nb.cli.tempfile, "mkstemp", refuse)
    assert_one_line_error(*run(capsys, "invert", files["image"], "--prompt", PROMPT, "-o", tmp_path / "x.safetensors"),
                          "cannot write in the folder", "Permission denied")


@pytest.mark.parametrize("device", ["gpu", "cuda:x", "CPU", "tpu:0"])
def test_unknown_device(capsys, tmp_path, device):
    assert_one_line_error(*run(capsys, "demo", "--device", device, "-o", tmp_path / "d"), "device")


def test_unavailable_device(capsys, tmp_path):
    absent = [d for d, there in (("cuda", torch.cuda.is_available()), ("cuda:99", torch.cuda.device_count() > 99),
                                 ("mps", torch.backends.mps.is_available())) if not there]
    for device in absent:
        assert_one_line_error(*run(capsys, "demo", "--device", device, "-o", tmp_path / "d"), device)
    assert not (tmp_path / "d").exists()


def test_debug_shows_the_exception(tmp_path):
    with pytest.raises(FileNotFoundError):
        main(["invert", str(tmp_path / "missing.png"), "--prompt", PROMPT, "-o", str(tmp_path / "x.safetensors"),
              "--debug"])


def test_unexpected_error_is_exit_1(capsys, monkeypatch, files, tmp_path):
    import dpl_nb.dpl

    def bug(*args, **kwargs):
        raise RuntimeError("something broke\non two lines")
    monkeypatch.setattr(dpl_nb.dpl, "dpl_invert", bug)
    status, out, err = run(capsys, "invert", files["image"], "--prompt", PROMPT, "-o", tmp_path / "x.safetensors",
                           "--quiet")
    assert status == 1 and len(err) == 1 and "RuntimeError: something broke on two lines" in err[0]
    assert "--debug" in err[0] and list(tmp_path.iterdir()) == []


# --- interrupted: exit status 130, nothing written ----------------------------------------------------------------

def _interrupt(*args, **kwargs):
    raise KeyboardInterrupt


@pytest.mark.parametrize("target, argv", [
    ("dpl_nb.dpl.dpl_invert", ["invert", "{image}", "--prompt", PROMPT, "-o", "{out}/x.safetensors"]),
    ("dpl_nb.inversion.invert", ["invert", "{image}", "--prompt", PROMPT, "--method", "nti", "-o", "{out}/x.safetensors"]),
    ("dpl_nb.p2p.edit", ["edit", "{dpl}", "--target", TARGET, "-o", "{out}/x.png", "--source-out", "{out}/s.png"]),
    ("dpl_nb.dpl.sampled_maps", ["show", "{nti}", "-o", "{out}/maps.png"]),
    ("dpl_nb.dpl.dpl_invert", ["demo", "--steps", "1", "--scenes", "1", "-o", "{out}/demo"]),
])
def test_keyboard_interrupt_leaves_no_file(capsys, monkeypatch, files, tmp_path, target, argv):
    monkeypatch.setattr(target, _interrupt)
    status, out, err = run(capsys, *fill(argv, image=files["image"], dpl=files["dpl"], nti=files["nti"], out=tmp_path),
                           "--quiet")
    assert status == 130 and out == [] and err == ["dpl_nb: interrupted"]
    assert list(tmp_path.iterdir()) == []


def test_interrupt_while_writing_leaves_no_file(capsys, monkeypatch, files, tmp_path):
    "Ctrl-C during the write itself: the temporary file is removed and the final name never appears"
    def interrupted_save(self, fp, format=None, **params):
        Path(fp).write_bytes(b"half an image")
        raise KeyboardInterrupt
    monkeypatch.setattr(Image.Image, "save", interrupted_save)
    status, out, err = run(capsys, "edit", files["dpl"], "--target", TARGET, "-o", tmp_path / "x.png", "--quiet")
    assert status == 130 and list(tmp_path.iterdir()) == []


# --- installed --------------------------------------------------------------------------------------------------

def test_console_script_is_installed():
    scripts = importlib.metadata.entry_points(group="console_scripts", name="dpl_nb")
    assert [ep.value for ep in scripts] == ["dpl_nb.cli:main"], "reinstall: pip install -e ."
    script = shutil.which("dpl_nb", path=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    assert script, "the dpl_nb console script is not on the path; reinstall: pip install -e ."
    done = subprocess.run([script, "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "usage: dpl_nb" in done.stdout


def test_python_m_dpl_nb_cli(tmp_path):
    done = subprocess.run([sys.executable, "-m", "dpl_nb.cli", "--version"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == f"dpl_nb {__version__}"
    done = subprocess.run([sys.executable, "-m", "dpl_nb.cli", "invert", str(tmp_path / "missing.png"), "--prompt", PROMPT,
                           "-o", str(tmp_path / "x.safetensors")], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.splitlines() == [f"dpl_nb: error: image: no file at {tmp_path / 'missing.png'}; pass the path "
                                        "of a PNG or JPEG file, or a PIL image"]
