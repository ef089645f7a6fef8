"""Stage N of the conformance harness: null-text inversion and Prompt-to-Prompt, dpl_nb against google's notebook.

Reads what ptp_reference.py recorded running google/prompt-to-prompt's `null_text_w_ptp.ipynb` and runs dpl_nb on
the same model, image and prompts with the notebook's settings: the DDIM scheduler it builds (SD's betas, no
`set_alpha_to_one`; `steps_offset` 0, which the pipeline it is given to rewrites to 1, as SD 1.4's config has it),
`invert` with the `canonical` NTI preset (10 Adam steps, early stop at 1e-5 + i * 2e-5, lr 1e-2 * (1 - i / 100), the
VAE posterior's mean), `p2p.edit` with the notebook's windows
(cross-attention 0.8, self-attention 0.5 for the swaps and 0.6 for the refinement), its self-attention size limit
(32x32 and smaller, where dpl_nb's default stops at 16x16), the local blend from step 0.2 with threshold 0.3.
Compared: the DDIM trajectory, the Adam updates of each step, the null embeddings, the reconstruction's latents per
step and its image, the 16x16 cross maps the notebook shows, and per edit both rows' latents after every step, the
local blend's mask at every step and the images. Adds `nti_*` quantities and `stage_n` to conformance.json:

    python stage_n.py REFERENCE.pt MODEL IMAGE --prompt "a cat and a dog" [--reference CHECKOUT]
"""
import argparse
import hashlib
import json
import platform
import sys
from contextlib import contextmanager, nullcontext
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from diffusers import DDIMScheduler

sys.path.insert(0, str(Path(__file__).parents[1]))  # benchmarks/: _results
sys.path.insert(0, str(Path(__file__).parent))
import dpl_nb  # noqa: E402
import stage_d  # noqa: E402
from _results import write_result  # noqa: E402
from compare import FLOAT_RTOL, STAGE_C_RTOL, differences, git_commit  # noqa: E402
from dpl_nb import p2p  # noqa: E402
from dpl_nb.attention import AttentionStore, capture, select_layers  # noqa: E402
from dpl_nb.inversion import invert, sample  # noqa: E402
from dpl_nb.models import load_bundle, to_pil  # noqa: E402
from dpl_nb.prompts import parse_prompt  # noqa: E402

REFINE_REASON = ("chapter 5, notes: P2P's refinement mapper sends the target prompt's padding to the same positions "
                 "of the source, dpl_nb's maps padding end to end; with P2P's mapping (p2p_padding) the latents are "
                 "equal")
SELF_RESOLUTIONS = (8, 16, 32)  # the notebook replaces self-attention where queries <= 32 ** 2
READ = ("null_text_w_ptp.ipynb", "ptp_utils.py", "seq_aligner.py")


def notebook_scheduler() -> DDIMScheduler:
    """The scheduler the notebook runs: the one it builds (diffusers' defaults otherwise, so `steps_offset` 0), which
    `StableDiffusionPipeline.__init__` then rewrites to `steps_offset` 1 (diffusers' deprecation fix for old configs)"""
    return DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                         set_alpha_to_one=False, steps_offset=1)


def blob_ids(checkout) -> dict:
    "git's blob id of each file the harness read from the checkout (it names the version even without a .git)"
    ids = {}
    for name in READ:
        data = (Path(checkout) / name).read_bytes()
        ids[name] = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
    return ids


def per_step(ours: torch.Tensor, theirs: torch.Tensor, rtol: float) -> dict:
    "Differences at every step (leading axis); `equal` when the worst step is within `rtol` (relative), else `bug`"
    record = stage_d._per_step(ours, theirs, differences)
    return {**record, "rtol": rtol, "verdict": "equal" if record["rel_max"] <= rtol else "bug"}


def levels(ours, theirs) -> dict:
    "Images in 8-bit levels: the largest difference and the share of values that differ"
    ours, theirs = np.asarray(ours, dtype=np.int16), np.asarray(theirs, dtype=np.int16)
    return {"max_levels": int(np.abs(ours - theirs).max()), "share_differing": float((ours != theirs).mean())}


@contextmanager
def p2p_padding():
    """Within the block, dpl_nb's refinement maps the target's padding as P2P's `seq_aligner.get_refinement_mapper`
    does, onto the same positions of the source (dpl_nb maps padding end to end; chapter 5's notes)"""
    original = p2p.cross_edit_for

    def cross_edit_for(tokenizer, source, targets, mode="auto", reweight=None):
        edit = original(tokenizer, source, targets, mode, reweight)
        if mode == "refine":
            length = len(tokenizer(parse_prompt(targets[0]).text).input_ids)
            edit.mappers[:, length:] = length + torch.arange(edit.mappers.shape[1] - length)
        return edit
    p2p.cross_edit_for = cross_edit_for
    try:
        yield
    finally:
        p2p.cross_edit_for = original


def our_run(bundle, image: str, prompt: str, steps: int, reference: dict) -> dict:
    "dpl_nb's side: the inversion, the reconstruction with its maps, and each of the reference's edits"
    inversion = invert(bundle, image, prompt, num_steps=steps, nti="canonical", progress=False)
    r = bundle.attn_res
    store = AttentionStore()
    with stage_d.recorded_steps() as inputs, capture(bundle.unet, store, select_layers(bundle.unet, r, "cross",
                                                                                         bundle.latent_size)):
        final = sample(bundle, inversion, controllers=[store], progress=False)
    maps = store.mean("cross", queries=r * r)[1].reshape(r, r, -1)  # the conditional row, all steps and layers
    out = {"inversion": inversion, "recon_latents": torch.stack(inputs["sample"][1:] + [final]),
           "recon_image": to_pil(bundle.decode(final))[0],
           "maps16": maps}
    for name in [k[5:] for k in reference if k.startswith("edit_")]:
        ref = reference[f"edit_{name}"]
        words = prompt.split()
        kwargs = {"mode": "refine" if name == "refine" else "replace"}
        if name == "blend":
            noun = next(w for w in words if w not in ("a", "an", "the"))
            new = next(w for w in ref["target"].split() if w not in words)
            kwargs["blend_words"] = ((noun,), (new,))
        if ref["reweight"]:
            kwargs["reweight"] = dict(zip(ref["reweight"]["words"], ref["reweight"]["values"]))
        for run in ("", "_p2p_padding") if name == "refine" else ("",):
            with stage_d.recorded_steps() as inputs, stage_d.recorded_blend_masks() as blend, \
                    (p2p_padding() if run else nullcontext()):
                result = p2p.edit(bundle, inversion, ref["target"], cross_replace_steps=0.8,
                                  self_replace_steps=ref["self_replace_steps"], self_resolutions=SELF_RESOLUTIONS,
                                  blend_start=0.2, blend_threshold=0.3, progress=False, **kwargs)
            out[f"edit_{name}{run}"] = {"latents": torch.stack(inputs["sample"][1:] + [result.latents]),
                                        "images": [result.source] + result.edits,
                                        "masks": torch.stack(blend["masks"]) if blend["masks"] else None}
    return out


def compare(ours: dict, ref: dict) -> dict:
    "The `nti_*` quantities"
    inv = ours["inversion"]
    q = {"nti_ddim_inversion": per_step(inv.latents[:, 0], ref["ddim_latents"], FLOAT_RTOL),
         "nti_null_updates": {"ours": list(inv.inner_steps), "reference": list(ref["null_updates"]),
                              "verdict": "equal" if list(inv.inner_steps) == list(ref["null_updates"]) else "bug"},
         "nti_null_embeddings": per_step(inv.null_embeddings[:, 0], ref["nulls"], STAGE_C_RTOL),
         "nti_reconstruction": {**per_step(ours["recon_latents"][:, 0], ref["recon_latents"], STAGE_C_RTOL),
                                **levels(ours["recon_image"], ref["recon_image"].numpy())},
         "nti_maps16": per_step(ours["maps16"][None], ref["maps16"][None], STAGE_C_RTOL)}  # one: all steps
    for key in [k for k in ref if k.startswith("edit_")]:
        mine, theirs = ours[key], ref[key]
        record = per_step(mine["latents"], theirs["latents"], STAGE_C_RTOL)
        record["images"] = [levels(o, t) for o, t in zip(mine["images"], theirs["images"].numpy())]
        if theirs["masks"] is not None:
            # the notebook's mask is (rows, 1, H, W) from the step its blend starts; dpl_nb's (edits, 1, H, W)
            ref_masks, our_masks = theirs["masks"][:, 1:].bool(), (mine["masks"] if mine["masks"] is not None
                                                                  else torch.zeros(0))
            record["blend_steps"] = {"ours": len(our_masks), "reference": len(ref_masks)}
            record["mask_agreement"] = stage_d._mask_agreement(our_masks, ref_masks)
            if len(our_masks) != len(ref_masks) or min(record["mask_agreement"], default=1.0) < 1.0:
                record["verdict"] = "bug"
        if key == "edit_refine":  # P2P's padding mapper is the whole difference, or it is a bug
            emulated = per_step(ours["edit_refine_p2p_padding"]["latents"], theirs["latents"], STAGE_C_RTOL)
            record["p2p_padding"] = {k: emulated[k] for k in ("rel_max", "per_step", "verdict")}
            if record["verdict"] == "bug" and emulated["verdict"] == "equal":
                record.update(verdict="documented", reason=REFINE_REASON)
        q[f"nti_edit_{key[5:]}"] = record
    return q


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("reference", help="what ptp_reference.py recorded (torch.save)")
    parser.add_argument("model", help="the model folder both ran (make_model.py)")
    parser.add_argument("image")
    parser.add_argument("--prompt", required=True, help="the source prompt, as the notebook was given it")
    parser.add_argument("--reference-checkout", "--reference", dest="checkout", default=None,
                        help="the prompt-to-prompt checkout the reference ran (its files' versions are recorded)")
    parser.add_argument("--ours", default=None, help="a file keeping dpl_nb's side of the run (made if absent)")
    parser.add_argument("--out", default=str(Path(__file__).parents[1] / "results" / "conformance.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)  # the reference ran with one thread
    ref = torch.load(args.reference, weights_only=False)
    bundle = replace(load_bundle(args.model), scheduler=notebook_scheduler())
    cached = Path(args.ours) if args.ours else None
    if cached and cached.is_file():
        ours = torch.load(cached, weights_only=False)
        if ours["inversion"].num_steps != ref["steps"] or not {k for k in ref if k.startswith("edit_")} <= set(ours):
            raise SystemExit(f"{cached} holds another run (steps or edits); delete it")
    else:
        ours = our_run(bundle, args.image, args.prompt, ref["steps"], ref)
        if cached:
            torch.save(ours, cached)
    quantities = compare(ours, ref)
    out = Path(args.out)
    result = json.loads(out.read_text()) if out.is_file() else {"benchmark": "conformance", "quantities": {}}
    result["quantities"] = {k: v for k, v in result["quantities"].items() if not k.startswith("nti_")}
    result["quantities"].update(quantities)
    result["stage_n"] = {
        "steps": ref["steps"], "prompt": args.prompt, "edits": {k[5:]: ref[k]["target"] for k in ref if
                                                                k.startswith("edit_")},
        "settings": "the notebook's: its scheduler (steps_offset 1, as its pipeline rewrites it), "
                    "NTI with 10 Adam steps and early stop, "
                    "cross-attention replaced for 0.8 of the steps, self-attention for 0.5 (0.6 for the refinement) "
                    "where queries <= 32**2, local blend from step 0.2 at threshold 0.3, reweighting by 2",
        "reference_files": blob_ids(args.checkout) if args.checkout else "unknown",
        "reference_commit": git_commit(args.checkout) if args.checkout else "unknown",
        "dpl_nb": dpl_nb.__version__, "torch": torch.__version__, "machine": platform.machine()}
    write_result(result, out)
    for name, q in quantities.items():
        print(f"{name}: {q['verdict']}", {k: v for k, v in q.items() if k in ("rel", "rel_max", "max_levels",
                                                                               "ours", "reference")})


if __name__ == "__main__":
    main()
