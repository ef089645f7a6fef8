"""Runs google/prompt-to-prompt's null-text notebook (null_text_w_ptp.ipynb) on a CPU and records what it computes.

Run by run_ptp_reference.sh in the notebook's own environment (setup_ptp_env.sh), never in dpl_nb's. It reads the
notebook's code cells from the user's checkout (nothing of it is vendored here) and executes its definitions (imports,
set-up, the attention controllers, NullInversion, text2image_ldm_stable) with the textual changes of PATCHES, each
checked to apply exactly once: the model id becomes the local model folder (loaded without a safety checker), NUM_DDIM_STEPS
the run's steps, and turning off xformers, which is not installed, is allowed to fail as diffusers 0.9.0 fails (the
notebook runs on the CPU when there is no GPU). `tqdm.notebook`
is the console tqdm (no widgets outside a notebook). Then it does what the notebook's example cells do, on the
harness's image and prompts: `null_inversion.invert`, the reconstruction with an AttentionStore, and four edits made
with `make_controller` (word swap; the same with a local blend; with a reweighting of the new word; a refinement),
recording the DDIM trajectory, each step's Adam updates, and per step the latents the sampler returns and the local
blend's mask (`NullInversion.ddim_inversion`, its Adam, `ptp_utils.diffusion_step` and `LocalBlend.get_mask` are
wrapped, not changed). The file is rewritten after the inversion, the reconstruction and each edit; run again, a
stopped run goes on from the last of them (the same numbers: the sampler starts from the recorded x_t and nulls):

    python ptp_reference.py CHECKOUT MODEL IMAGE OUT --prompt "a cat and a dog" --swap tiger --adjective red --steps 10
"""
import argparse
import json
import sys
import types
from pathlib import Path

PATCHES = (  # (cell marker, old, new): the only changes to the notebook's code; each must occur exactly once
    ("from_pretrained", '"CompVis/stable-diffusion-v1-4"', "MODEL_FOLDER"),
    ("from_pretrained", "NUM_DDIM_STEPS = 50", "NUM_DDIM_STEPS = STEPS"),
    ("from_pretrained", "scheduler=scheduler).to(device)", "scheduler=scheduler, safety_checker=None).to(device)"),
    # diffusers 0.9.0 raises ModuleNotFoundError, not AttributeError, when asked to turn off xformers it does not have
    ("from_pretrained", "except AttributeError:", "except (AttributeError, ModuleNotFoundError):"),
)
DEFINITIONS = ("import ptp_utils", "from_pretrained", "class LocalBlend", "class NullInversion",
               "def text2image_ldm_stable")


def notebook_cells(path: Path) -> list[str]:
    "The notebook's code cells that define what the harness runs, in order, with PATCHES applied"
    cells = ["".join(c["source"]) for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]
    chosen = []
    for marker in DEFINITIONS:
        found = [c for c in cells if marker in c]
        if len(found) != 1:
            raise SystemExit(f"{path}: {len(found)} code cells contain {marker!r}; expected one (another version "
                             "of the notebook?)")
        chosen.append(found[0])
    for marker, old, new in PATCHES:
        i = next(i for i, c in enumerate(chosen) if marker in c)
        if chosen[i].count(old) != 1:
            raise SystemExit(f"{path}: the patch {old!r} -> {new!r} does not apply exactly once")
        chosen[i] = chosen[i].replace(old, new)
    return chosen


def save(record: dict, out):
    "torch.save `record` to `out` whole or not at all"
    import os
    import torch
    tmp = f"{out}.tmp"
    torch.save(record, tmp)
    os.replace(tmp, out)


def console_tqdm():
    "tqdm.notebook needs widgets; outside a notebook the console tqdm (silent) takes its place"
    import functools
    import tqdm
    module = types.ModuleType("tqdm.notebook")
    module.tqdm = functools.partial(tqdm.tqdm, disable=True)
    sys.modules["tqdm.notebook"] = module


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("checkout", help="a checkout of github.com/google/prompt-to-prompt")
    parser.add_argument("model", help="the model folder (.bin weights, which diffusers 0.9 reads)")
    parser.add_argument("image", help="a 512x512 image")
    parser.add_argument("out", help="where the recorded tensors go (torch.save)")
    parser.add_argument("--notebook", default="null_text_w_ptp.ipynb", help="the notebook, in the checkout")
    parser.add_argument("--prompt", required=True)
    parser.add_argument("--swap", required=True, help="the word the first noun becomes (word swap)")
    parser.add_argument("--adjective", required=True, help="the word put before the first noun (refinement)")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--edits", default="swap,blend,reweight,refine")
    args = parser.parse_args()
    import torch
    torch.set_num_threads(1)
    checkout = Path(args.checkout).resolve()
    sys.path.insert(0, str(checkout))  # ptp_utils, seq_aligner
    console_tqdm()
    ns = {"__name__": "null_text_w_ptp", "MODEL_FOLDER": args.model, "STEPS": args.steps}
    for cell in notebook_cells(checkout / args.notebook):
        exec(compile(cell, str(checkout / args.notebook), "exec"), ns)
    for part in ("unet", "vae", "text_encoder"):  # every parameter came from the folder (none newly initialised)
        files = list((Path(args.model) / part).glob("*.bin"))
        loaded = set(torch.load(files[0], map_location="cpu", weights_only=True)) if len(files) == 1 else set()
        missing = {name for name, _ in getattr(ns["ldm_stable"], part).named_parameters()} - loaded
        if missing:
            raise SystemExit(f"{args.model}/{part}: {len(missing)} weights of the model are not in the folder's "
                             f".bin file (e.g. {sorted(missing)[0]}); make it with make_model.py --bin-copy")
    ptp_utils = ns["ptp_utils"]
    record = {"steps": args.steps}
    if Path(args.out).is_file():  # a stopped run: what it finished is kept, the rest is run
        record = torch.load(args.out, weights_only=False)
        if record["steps"] != args.steps:
            raise SystemExit(f"{args.out} holds a run of {record['steps']} steps, not {args.steps}; delete it")

    # what the sampler returns each step (both rows), and each step's local-blend mask (after its threshold)
    steps, masks = [], []
    diffusion_step = ptp_utils.diffusion_step

    def recorded_step(*a, **k):
        latents = diffusion_step(*a, **k)
        steps.append(latents.detach().clone())
        return latents
    ptp_utils.diffusion_step = recorded_step
    get_mask = ns["LocalBlend"].get_mask

    def recorded_mask(self, maps, alpha, use_pool):
        mask = get_mask(self, maps, alpha, use_pool)
        if use_pool:
            masks.append(mask.detach().clone())
        return mask
    ns["LocalBlend"].get_mask = recorded_mask

    # the notebook's cell 12: null-text inversion (its defaults: 10 inner steps, early stop at 1e-5); each step makes
    # one Adam, whose updates are counted
    updates = []

    class CountedAdam(ns["Adam"]):
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            updates.append(0)

        def step(self, *a, **k):
            updates[-1] += 1
            return super().step(*a, **k)
    ns["Adam"] = CountedAdam
    inv, trajectory = ns["null_inversion"], []
    ddim_inversion = inv.ddim_inversion

    def recorded_inversion(image):
        image_rec, ddim_latents = ddim_inversion(image)
        trajectory.extend(ddim_latents)
        return image_rec, ddim_latents
    inv.ddim_inversion = recorded_inversion
    if "nulls" not in record:
        (image_gt, image_enc), x_t, uncond = inv.invert(args.image, args.prompt, verbose=False)
        record.update(ddim_latents=torch.cat(trajectory), nulls=torch.cat(uncond), null_updates=updates,
                      image_vae=torch.from_numpy(image_enc))
        save(record, args.out)
    x_t, uncond = record["ddim_latents"][-1:], [null[None] for null in record["nulls"]]  # as invert returns them
    ns["x_t"] = x_t  # LocalBlend reads the notebook's global x_t for the latent size

    # cell 13: the reconstruction, with an AttentionStore; the 16x16 cross maps as show_cross_attention averages them
    if "recon_latents" not in record:
        ns["prompts"] = [args.prompt]
        store = ns["AttentionStore"]()
        steps.clear()
        images, _ = ns["run_and_display"]([args.prompt], store, latent=x_t, uncond_embeddings=uncond, verbose=False)
        record.update(recon_latents=torch.cat(steps), recon_image=torch.from_numpy(images[0]),
                      maps16=ns["aggregate_attention"](store, 16, ["up", "down"], True, 0))
        save(record, args.out)

    # cells 14 and 15: edits with make_controller
    words = args.prompt.split()
    noun = next(w for w in words if w not in ("a", "an", "the"))
    swapped = " ".join(args.swap if w == noun else w for w in words)
    refined = args.prompt.replace(f" {noun}", f" {args.adjective} {noun}", 1)
    edits = {"swap": (swapped, True, 0.5, None, None), "blend": (swapped, True, 0.5, ((noun,), (args.swap,)), None),
             "reweight": (swapped, True, 0.5, None, {"words": (args.swap,), "values": (2,)}),
             "refine": (refined, False, 0.6, None, None)}
    for name in [n for n in args.edits.split(",") if f"edit_{n}" not in record]:
        target, is_replace, self_steps, blend, eq = edits[name]
        prompts = [args.prompt, target]
        ns.update(prompts=prompts, blend_word=blend)  # make_controller reads the global blend_word
        controller = ns["make_controller"](prompts, is_replace, {"default_": .8}, self_steps, blend, eq)
        steps.clear(), masks.clear()
        images, _ = ns["run_and_display"](prompts, controller, latent=x_t, uncond_embeddings=uncond, verbose=False)
        record[f"edit_{name}"] = dict(target=target, latents=torch.stack(steps), images=torch.from_numpy(images),
                                      masks=torch.stack(masks) if masks else None, self_replace_steps=self_steps,
                                      reweight=eq)
        save(record, args.out)
    print(f"{args.out} holds the inversion, the reconstruction and edits "
          f"{sorted(k[5:] for k in record if k.startswith('edit_'))}")


if __name__ == "__main__":
    main()
