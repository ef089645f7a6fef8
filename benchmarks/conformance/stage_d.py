"""Stage D of the conformance harness: Prompt-to-Prompt edits of the DPL inversion, dpl_nb against `_4_image_edit.py`.

Each edit of `edits_for` (word swap, the same with a local blend, with a reweighting, a refinement) is run by the
official code (its `_4_image_edit.py`, unchanged, through shim/ with DPL_REF_DUMP set, so that each DDIM step's
latents and guided noise, the UNet's inputs, the decoded latents and the local blend's maps are recorded) on its own
stage C inversion, and by `dpl_nb.p2p.edit` on dpl_nb's stage C inversion with the same settings: the windows of
`_4_image_edit.py`'s defaults (40 and 20 of 50 steps) scaled to the run's steps, the blend from the first step.
Compared: the latents of both rows after every step (the verdict, at stage C's tolerance), the final images in 8-bit
levels, and for the local blend the edit mask of every step and the maps it is made from.

For every edit the harness also runs `reference_semantics_edit`: dpl_nb's own P2P pieces (`P2PController`, the
edits, `sample`) put together with the official code's semantics, which chapter 8's notes name. Run on the same
inversion as `edit` (`emulated`) it says whether those named semantics are the whole difference; run on the official
code's own inversion and in its float order (`isolated`, `reference_numerics`) it compares the edit code alone, bit
for bit. This emulation lives in the harness; it is not a dpl_nb feature. `float_order` measures what rounds
differently in the two environments.
"""
import os
import subprocess
from contextlib import contextmanager, nullcontext
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler
from diffusers.models.attention_processor import AttnProcessor
from PIL import Image

from dpl_nb import p2p
from dpl_nb.attention import attention_layers, capture, select_layers
from dpl_nb.inversion import Inversion, encode_with_tokens, sample
from dpl_nb.models import Bundle
from dpl_nb.prompts import parse_prompt

SHIM = Path(__file__).parent / "shim"
THRESHOLD = 0.3  # the local blend's threshold, hard-coded in the reference's edit pipeline and P2P's default


def edits_for(prompt: str, swap: str = "tiger", adjective: str = "red", scale: float = 2.0) -> dict:
    """The stage D edits for a prompt with braced nouns: the first braced noun becomes `swap` (word swap), the same
    with a local blend on that word, the same with the new word's maps scaled by `scale` (reweight), and `adjective`
    put before the first noun (refinement). Per edit: the reference's arguments and dpl_nb's `edit` arguments."""
    parsed = parse_prompt(prompt)
    words = parsed.text.split()
    noun = parsed.words[0].word
    index = words.index(noun) + 1  # token index in the caption (one token a word here), as _4_image_edit.py takes it
    placeholder = {w.word: f"<{w.word}-toy>" for w in parsed.words}
    target_words = [swap if w == noun else w for w in words]
    swap_target = " ".join(target_words)
    refined = " ".join(words[:index - 1] + [adjective] + words[index - 1:])
    ref_refined = " ".join(placeholder.get(w, w) for w in refined.split())
    replace_args = ["--replace", "--original_words", placeholder[noun], "--replace_words", swap]
    return {
        "swap": {"reference": replace_args, "target": swap_target, "ours": {"mode": "replace"}},
        "blend": {"reference": replace_args + ["--local", "--indices_local", str(index)], "target": swap_target,
                  "ours": {"mode": "replace", "blend_words": ((noun,), (swap,))}, "blend_index": index},
        "reweight": {"reference": replace_args + ["--indices_to_amplify", str(index), "--amplify_scale", str(scale)],
                     "target": swap_target, "ours": {"mode": "replace", "reweight": {swap: scale}}},
        "refine": {"reference": ["--refine", "--edit_prompt_str", ref_refined], "target": refined,
                   "ours": {"mode": "refine"}},
    }


def windows(steps: int) -> tuple[int, int]:
    "cross_replace_steps and self_replace_steps: _4_image_edit.py's defaults (40 and 20 of 50) scaled to `steps`"
    return steps * 4 // 5, steps * 2 // 5


def run_reference_edit(name: str, spec: dict, checkout, python, results: Path, model, image, prompt: str,
                       steps: int, postfix: str) -> Path:
    "Run `_4_image_edit.py` for one edit (unless its record exists); the folder with its images and record"
    folder = results / f"edit_{name}"
    dump = folder / "dump.pt"
    if dump.is_file():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    cross, self_ = windows(steps)
    parsed = parse_prompt(prompt)
    command = [python, "_4_image_edit.py", "--input_image", str(image), "--results_folder", f"{results}/",
               "--results_folder_edit", f"{folder}/", "--num_ddim_steps", str(steps), "--model_path", str(model),
               "--postfix", postfix, "--negative_guidance_scale", "7.5", "--cross_replace_steps", str(cross),
               "--self_replace_steps", str(self_), "--placeholder_token", *[f"<{w.word}-toy>" for w in parsed.words],
               "--initializer_token", *[w.word for w in parsed.words], *spec["reference"]]
    env = {**os.environ, "PYTHONPATH": str(SHIM), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "DPL_REF_DUMP": str(dump.with_suffix(".tmp"))}
    with open(folder / "stdout.txt", "w") as out:
        subprocess.run(command, cwd=checkout, env=env, stdout=out, stderr=subprocess.STDOUT, check=True)
    dump.with_suffix(".tmp").rename(dump)
    return folder


def reference_record(folder: Path) -> dict:
    "The reference's per-step latents (both rows, after each step and its blend), images and blend masks"
    dump = torch.load(folder / "dump.pt")
    latents = torch.stack([s.float() for s in dump["sample"][1:]] + [dump["final"][-1].float()])
    out = {"latents": latents, "noise": torch.stack([e.float() for e in dump["model_output"]]), "masks": None,
           "blend_maps": None}
    if dump["blend_maps"]:  # as the reference's edit pipeline makes its mask from them
        out["blend_maps"] = torch.stack([m.float() for m in dump["blend_maps"]])
        masks = []
        for maps in dump["blend_maps"]:
            temp = F.interpolate(F.max_pool2d(maps, (3, 3), (1, 1), (1, 1)), size=latents.shape[-2:])
            temp = (temp / temp.max(2, keepdims=True)[0].max(3, keepdims=True)[0]).gt(THRESHOLD)
            masks.append((temp[:1] + temp)[1:])
        out["masks"] = torch.stack(masks)
    pngs = sorted(folder.glob("null_attend_textinv_recon_*/*.png"))
    edited = [p for p in pngs if p.stem.endswith("_edit")]
    source = [p for p in pngs if not p.stem.endswith("_edit")]
    out["images"] = [np.asarray(Image.open(p).convert("RGB"), dtype=np.int16) for p in (source[0], edited[0])]
    return out


@contextmanager
def recorded_steps():
    "Within the block, every DDIM step's input latents and guided noise are recorded (as the shim does the reference's)"
    original, record = DDIMScheduler.step, {"sample": [], "model_output": []}

    def step(self, model_output, timestep, sample, *args, **kwargs):
        record["sample"].append(sample.detach().clone())
        record["model_output"].append(model_output.detach().clone())
        return original(self, model_output, timestep, sample, *args, **kwargs)
    DDIMScheduler.step = step
    try:
        yield record
    finally:
        DDIMScheduler.step = original


@contextmanager
def recorded_blend_masks():
    "Within the block, the mask of every call of dpl_nb's LocalBlend, and the word maps it thresholds, are recorded"
    original, original_masks, record = p2p.LocalBlend.__call__, p2p.word_masks, {"masks": [], "maps": []}

    def call(self, step, latents):
        out = original(self, step, latents)
        if self.mask is not None:
            record["masks"].append(self.mask.detach().clone())
        return out

    def word_masks(maps, positions, *args, **kwargs):
        record["maps"].append(torch.stack([m[..., list(p)].sum(-1) for m, p in zip(maps, positions)])[:, None])
        return original_masks(maps, positions, *args, **kwargs)
    p2p.LocalBlend.__call__, p2p.word_masks = call, word_masks
    try:
        yield record
    finally:
        p2p.LocalBlend.__call__, p2p.word_masks = original, original_masks


def our_edit(bundle, inversion: Inversion, spec: dict, steps: int) -> dict:
    "dpl_nb.p2p.edit with the reference's settings: latents after every step, images, blend masks"
    cross, self_ = windows(steps)
    with recorded_steps() as inputs, recorded_blend_masks() as blend:
        result = p2p.edit(bundle, inversion, spec["target"], cross_replace_steps=cross, self_replace_steps=self_,
                          blend_start=0, progress=False, **spec["ours"])
    latents = torch.stack(inputs["sample"][1:] + [result.latents])
    images = [np.asarray(im, dtype=np.int16) for im in [result.source] + result.edits]
    return {"latents": latents, "noise": torch.stack(inputs["model_output"]), "images": images,
            "masks": torch.stack(blend["masks"]) if blend["masks"] else None,
            "blend_maps": torch.stack(blend["maps"]) if blend["maps"] else None}


@contextmanager
def reference_numerics(bundle):
    """Within the block, dpl_nb computes in the reference's float order: the text encoder with eager attention (the
    kernel of the reference's transformers 4.30; transformers 5's default SDPA rounds differently, 3e-7 relative in
    the embeddings) and the UNet given channels-last latents (the reference's latents keep the memory layout of its
    channels-last image tensor; the UNet's convolutions round differently on it, 5e-5 relative in the noise); and
    every attention layer computes its softmax explicitly, as the reference's processors do, where dpl_nb leaves the
    layers it does not read to PyTorch's SDPA"""
    implementation = bundle.text_encoder.config._attn_implementation
    original, processors = Bundle.predict_noise, bundle.unet.attn_processors

    def predict_noise(self, latents, t, cond):
        return original(self, latents.contiguous(memory_format=torch.channels_last), t, cond)
    bundle.text_encoder.set_attn_implementation("eager")
    bundle.unet.set_attn_processor(AttnProcessor())  # explicit softmax in every layer, as the reference's processors
    Bundle.predict_noise = predict_noise
    try:
        yield
    finally:
        Bundle.predict_noise = original
        bundle.unet.set_attn_processor(processors)
        bundle.text_encoder.set_attn_implementation(implementation)


def reference_semantics_edit(bundle, inversion: Inversion, spec: dict, steps: int, numerics: bool = False) -> dict:
    """dpl_nb's P2P pieces put together as `_4_image_edit.py`'s pipeline does (chapter 8, notes): (1) its step
    counter advances inside the last attention layer of each UNet call, so that layer (the last 64x64 cross layer)
    already takes the next step's window; (2) its local blend reads the maps of the current step only, from the
    flattened (batch x heads) index 2 and 3 of the 16x16 cross layers, i.e. heads 2 and 3 of the unconditional
    source row (the code meant rows 2 and 3, the two conditional rows), at one token index for both, from step 0;
    (3) its refinement mapper, P2P's, sends the target's padding to the same positions of the source.
    With `numerics`, it also computes in the reference's float order (`reference_numerics`, and the explicit
    attention of its processors in every layer, where dpl_nb leaves the layers it does not edit to PyTorch's SDPA)."""
    cross, self_ = windows(steps)
    tokenizer, num_steps, source = bundle.tokenizer, inversion.num_steps, inversion.prompt
    target = spec["target"]
    ours = spec["ours"]
    edit_ = p2p.cross_edit_for(tokenizer, source, [target], ours["mode"], ours.get("reweight"))
    if ours["mode"] == "refine":  # (3) P2P's refinement mapper: the target's padding to the same source positions
        length = len(tokenizer(parse_prompt(target).text).input_ids)
        edit_.mappers[:, length:] = length + torch.arange(edit_.mappers.shape[1] - length)
    alpha = p2p.cross_replace_alpha(tokenizer, [target], num_steps, cross)
    alpha = torch.cat([alpha, torch.zeros_like(alpha[:1])])  # the step after the last, seen by the last layer
    self_window = p2p.step_window(self_, num_steps, "self_replace_steps")
    bundle = bundle.at_latent_size(inversion.latents.shape[-1])
    size, res = bundle.latent_size, bundle.attn_res
    self_layers = p2p._self_layers(bundle, size, res, None)
    last = [l for l in attention_layers(bundle.unet) if l.place == "up"][-1]  # the last a UNet call runs
    if last.kind != "cross":
        raise SystemExit(f"the UNet's last attention layer is {last}; the emulation assumes a cross layer last")
    controller = p2p.P2PController(edit_, alpha, self_window, [l.name for l in self_layers])
    blend_index = spec.get("blend_index")
    read = {l.name: l for l in select_layers(bundle.unet, res, "cross", size)}

    class Emulated:
        "The P2P controller with the reference's step counter; records the blend's maps"
        def __init__(self):
            self.step, self.layout, self.maps, self.masks, self.blend_maps = 0, None, [], [], []

        def __call__(self, probs, layer):
            controller.layout = self.layout
            controller.step = self.step + 1 if layer.name == last.name else self.step
            if blend_index is not None and layer.name in read:
                self.maps.append((layer.place, probs[2:4, :, blend_index].reshape(2, res, res).clone()))
            return controller(probs, layer)

    emulated = Emulated()

    def blend(step, latents):
        if blend_index is None:
            return latents
        ordered = [m for place in ("up", "down", "mid") for p, m in emulated.maps if p == place]
        emulated.maps.clear()
        maps = torch.stack(ordered)
        maps = (maps.sum(0) / len(ordered))[:, None]  # (2, 1, r, r), as the reference averages
        emulated.blend_maps.append(maps.clone())
        temp = F.interpolate(F.max_pool2d(maps, (3, 3), (1, 1), (1, 1)), size=latents.shape[-2:])
        temp = (temp / temp.max(2, keepdims=True)[0].max(3, keepdims=True)[0]).gt(THRESHOLD)
        mask = temp[:1] + temp
        emulated.masks.append(mask[1:].clone())
        return latents[:1] + mask * (latents - latents[:1])

    layers = attention_layers(bundle.unet) if numerics else select_layers(bundle.unet, None, "cross", size) + self_layers
    # the float order first: its processors are the ones capture replaces for the run and puts back after it
    with (reference_numerics(bundle) if numerics else nullcontext()), recorded_steps() as inputs, \
            capture(bundle.unet, emulated, layers):
        latents = sample(bundle, inversion, [source, target], [emulated], blend, progress=False)
    return {"latents": torch.stack(inputs["sample"][1:] + [latents]), "noise": torch.stack(inputs["model_output"]),
            "masks": torch.stack(emulated.masks) if emulated.masks else None,
            "blend_maps": torch.stack(emulated.blend_maps) if emulated.blend_maps else None}


def reference_inversion(results: Path, ours: Inversion, postfix: str) -> Inversion:
    "The reference's stage B trajectory and stage C tokens and nulls as a dpl_nb Inversion (for the isolated run)"
    import pickle
    name = next((results / "latents").glob("*.pkl")).stem
    with open(results / "latents" / f"{name}.pkl", "rb") as f:
        latents = torch.stack([z.float() for z in pickle.load(f)])
    with open(results / f"embed_list_{postfix}" / f"{name}_cond.pkl", "rb") as f:
        tokens = torch.stack([e.float() for e in pickle.load(f)])
    with open(results / f"embed_list_{postfix}" / f"{name}_uncond.pkl", "rb") as f:
        nulls = torch.stack([e.float() for e in pickle.load(f)])
    return replace(ours, latents=latents, token_embeddings=tokens, null_embeddings=nulls)


def float_order(bundle, folder: Path, inversion: Inversion, target: str, differences) -> dict:
    """What rounds differently in the two environments, measured on the inputs of the reference's first UNet call of
    an edit (recorded by the shim): the text embeddings (transformers' SDPA or eager attention against the
    reference's) and the guided noise of the same UNet on the same latents in channels-last or contiguous memory"""
    dump = torch.load(folder / "dump.pt")
    theirs_text, latents = dump["encoder_hidden_states"][0], dump["unet_sample"][0]
    out = {"channels_last_input": latents.is_contiguous(memory_format=torch.channels_last)}
    implementation = bundle.text_encoder.config._attn_implementation
    try:
        for name in ("sdpa", "eager"):
            bundle.text_encoder.set_attn_implementation(name)
            with torch.no_grad():
                text = encode_with_tokens(bundle, [inversion.prompt, target], inversion.prompt,
                                          inversion.token_embeddings[0])
            out[f"text_embeddings_{name}"] = differences(text, theirs_text[2:])
    finally:
        bundle.text_encoder.set_attn_implementation(implementation)
    t = int(dump["timestep"][0])
    with torch.no_grad():
        noise = {layout: bundle.predict_noise(latents.contiguous(memory_format=layout), t, theirs_text)
                 for layout in (torch.channels_last, torch.contiguous_format)}
    guided = {k: v[:2] + inversion.guidance_scale * (v[2:] - v[:2]) for k, v in noise.items()}
    out["unet_noise_contiguous_vs_channels_last"] = differences(noise[torch.contiguous_format],
                                                                noise[torch.channels_last])
    out["guided_noise_contiguous_vs_channels_last"] = differences(guided[torch.contiguous_format],
                                                                  guided[torch.channels_last])
    out["note"] = ("on the reference's first UNet call of the word swap: dpl_nb's text encoder with transformers' "
                   "default (SDPA) and eager attention against the reference's embeddings; the UNet's noise on the "
                   "reference's latents in its channels-last memory and in a contiguous copy")
    return out


def _per_step(ours: torch.Tensor, theirs: torch.Tensor, differences) -> dict:
    per_step = [differences(o, t) for o, t in zip(ours, theirs)]
    return {"per_step": per_step, "rel_max": max(d["rel"] for d in per_step),
            "max_abs": max(d["max_abs"] for d in per_step)}


def _mask_agreement(ours, theirs) -> list[float]:
    return [float((o.bool() == t.bool()).float().mean()) for o, t in zip(ours, theirs)]


DOCUMENTED = "chapter 8, Notes: the official code, step by step"


def stage_d(results: Path, bundle, ours_inversion: Inversion, checkout, python, model, image, prompt: str,
            steps: int, postfix: str, differences, names=None, rtol: float = 1e-4, float_rtol: float = 1e-5,
            inversion_verdict: str = "equal") -> dict:
    "Per edit: the reference's latents, masks and images against dpl_nb's `edit`, and what explains a difference"
    specs = edits_for(prompt)
    names = list(specs) if names is None else names
    cross, self_ = windows(steps)
    theirs_inversion = reference_inversion(results, ours_inversion, postfix)
    quantities = {}
    for name in names:
        spec = specs[name]
        folder = run_reference_edit(name, spec, checkout, python, results, model, image, prompt, steps, postfix)
        theirs = reference_record(folder)
        ours = our_edit(bundle, ours_inversion, spec, steps)
        if len(theirs["latents"]) != steps:
            raise SystemExit(f"the reference's {name} edit ran {len(theirs['latents'])} steps, not {steps}")
        q = {**_per_step(ours["latents"], theirs["latents"], differences),
             "edit_row_rel_max": max(differences(o[1:], t[1:])["rel"]
                                     for o, t in zip(ours["latents"], theirs["latents"])),
             "max_levels": max(int(np.abs(o - t).max()) for o, t in zip(ours["images"], theirs["images"])),
             "target": spec["target"], "reference_args": spec["reference"],
             "cross_replace_steps": cross, "self_replace_steps": self_,
             "note": "latents of both rows (source, edit) after every step, dpl_nb.p2p.edit on dpl_nb's stage C "
                     "inversion against _4_image_edit.py on the reference's; max_levels: the final images, 8 bit"}
        emulated = reference_semantics_edit(bundle, ours_inversion, spec, steps)
        isolated = reference_semantics_edit(bundle, theirs_inversion, spec, steps, numerics=True)
        plain = our_edit(bundle, theirs_inversion, spec, steps)
        q["emulated"] = _per_step(emulated["latents"], theirs["latents"], differences)
        q["isolated"] = _per_step(isolated["latents"], theirs["latents"], differences)
        q["on_reference_inversion"] = {**_per_step(plain["latents"], theirs["latents"], differences),
                                       "note": "dpl_nb.p2p.edit on the reference's own stage C inversion: the "
                                               "semantics' difference alone, in dpl_nb's float order"}
        if theirs["masks"] is not None:
            q["mask_agreement"] = _mask_agreement(ours["masks"], theirs["masks"])
            q["mask_coverage"] = {"ours": [float(m.float().mean()) for m in ours["masks"]],
                                  "reference": [float(m.float().mean()) for m in theirs["masks"]]}
            q["blend_maps"] = {**_per_step(ours["blend_maps"], theirs["blend_maps"], differences),
                               "note": "the word maps each side's blend thresholds (16x16, per row): dpl_nb's, the "
                                       "conditional rows' head-averaged maps of the steps so far, against the "
                                       "reference's (heads 2 and 3 of the unconditional source row, this step)"}
            for key, run in (("emulated", emulated), ("isolated", isolated)):
                q[key]["mask_agreement"] = _mask_agreement(run["masks"], theirs["masks"])
                q[key]["blend_maps"] = _per_step(run["blend_maps"], theirs["blend_maps"], differences)
                q[key]["blend_maps"]["note"] = ("the maps the reference's blend thresholds (heads 2 and 3 of the "
                                                "unconditional source row, this step, 16x16 layers) against the "
                                                "same maps read by the emulation")
        # explained: with the named semantics (and the reference's float order) dpl_nb's pieces reproduce the
        # reference's edit of its own inversion; what `emulated` leaves is the two inversions' difference (stage C)
        explained = q["isolated"]["rel_max"] <= float_rtol and inversion_verdict in ("equal", "documented")
        q["semantics"] = semantics_reason(name)
        if q["rel_max"] <= rtol:
            q["verdict"] = "equal"
        else:
            q["verdict"] = "documented" if explained else "bug"
            q["reason"] = (f"{DOCUMENTED}: " + q["semantics"] + "; with the reference's semantics put together "
                           "from dpl_nb's pieces (stage_d.reference_semantics_edit) the latents agree: "
                           f"{q['isolated']['rel_max']:.1e} on the reference's own inversion in its float order, "
                           f"{q['emulated']['rel_max']:.1e} on dpl_nb's inversion (stage C's difference, verdict "
                           f"{inversion_verdict})")
        quantities[f"dpl_edit_{name}"] = q
        print(f"stage D {name}: {q['verdict']} rel_max {q['rel_max']:.2e}", flush=True)
    return quantities


def float_order_of(results: Path, bundle, ours_inversion: Inversion, prompt: str, postfix: str, differences) -> dict:
    "`float_order` on the word swap's record"
    inversion = reference_inversion(results, ours_inversion, postfix)
    return float_order(bundle, results / "edit_swap", inversion, edits_for(prompt)["swap"]["target"], differences)


def semantics_reason(name: str) -> str:
    reasons = ["the reference's step counter advances inside the last attention layer of a UNet call, so its last "
               "cross layer leaves the cross-replacement window one step early"]
    if name == "blend":
        reasons.append("its local blend reads the current step's maps of heads 2 and 3 of the unconditional source "
                       "row (it indexes the flattened batch x heads axis as the batch), where P2P and dpl_nb average "
                       "the conditional rows' maps over heads and the steps so far")
    if name == "refine":
        reasons.append("its refinement mapper (P2P's) maps the target's padding to the same positions of the "
                       "source, dpl_nb's end to end")
    return "; ".join(reasons)
