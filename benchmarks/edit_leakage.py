"""Edits that stay on their object: a P2P swap of the first object's noun, from NTI and from DPL, on ToyMO-Set.

The paper's promise, measured: with DPL's maps, Prompt-to-Prompt changes the object you named and nothing else.
Scenes: the 40 look-alike scenes of ToyMO-Set (same colour or a similar noun) and its first 20 ordinary ones, of the
world the model knows (`toymodel.bundle_world`: v1 shapes or v2 coats). Each scene is inverted at 50 steps (guidance
7.5) by canonical null-text inversion (`nti`), by DPL with --preset (`dpl`, default `toy`) and by DPL-`lean`
(`dpl_lean`), and by Direct Inversion (`direct`, the `toy` preset's inversion without DPL); each inversion is
edited by swapping the first object's braced noun (`swap_target`) with P2P (cross-attention injected for 80 % of the
steps, self-attention for 50 %, as in google's null-text notebook) and a local blend on the swapped words. Per method and scene: `success` (the judge sees the new noun and
the old colour where the object was), in the coat world `in_place` (a success that also kept the object's outline,
which the caption never names: the swap made in place, as cat -> tiger keeps the cat's pose), `distractor_kept` (the judge sees the other object unchanged), `bg_psnr`
(outside the edited object's mask grown by 1 px; null when identical there), `iou03` and `iou_best` (the mean noun
IoU of the reconstruction's step-averaged maps at threshold 0.3 and the best of the 0.0-1.0 sweep), `map_mass`
(each noun's share of its map on each object and the background) with `maps_swapped` (a noun whose map lies more on
another object than on its own), and the UNet evaluations of the inversion. The means go under `distractor` and
`ordinary`, each keyed by method. `--methods` runs a subset (e.g. `nti,dpl_lean` to compare candidate models on a held-out seed before choosing one),
and may add `dpl_anchor` (lean with the anchored leakage of chapter 7, not the paper's).

`--self-replace` and `--blend-threshold` change P2P's settings for every method, and `--dpl-set KEY=VALUE` a
DPLConfig or LossConfig field of the `dpl` column's preset (e.g. `--preset toy --dpl-set anchor=true --dpl-set
lr=0.01`): for calibrating on held-out scenes (a seed no benchmark uses), never on the benchmark's. Each record also
holds `blend_cover`: the share of the edited object, of the other object and of the background that the last step's
local-blend mask covers.

Resumable: per-scene records (with the edited images, as PNG) go to a .jsonl beside the result; a rerun skips the
scenes recorded. Writes benchmarks/results/edit_leakage.json (ToyMO-Set's seed 2023) or edit_leakage_seed<S>.json
(--seed S, a ToyMO-Set of another seed: held-out scenes), and a .png of the first scenes' edits.

    python benchmarks/edit_leakage.py [--model toy|FOLDER] [--judge FOLDER] [--seed 2023] [--preset toy]
                                      [--distractor 40] [--ordinary 20] [--steps 50] [--workers N] [--out FILE]
                                      [--methods nti,dpl,dpl_lean,direct] [--dpl-set KEY=VALUE ...]
                                      [--self-replace 0.5] [--cross-replace 0.8] [--blend-threshold 0.3]
                                      [--blend-words both|source] [--redo dpl]
"""
import argparse
import base64
import io
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import dpl_nb
from _results import machine, write_result
from _toymo import json_psnr, psnr_outside, worker_state
from dpl_nb.dpl import DPL_PRESETS, dpl_config, dpl_invert, sampled_maps, with_options
from dpl_nb.experiments import append_record, compact_records, read_records
from dpl_nb.inversion import invert, reconstruct
from dpl_nb.metrics import (THRESHOLDS, distractor_preserved, edit_success, grow_mask, map_mass,
                            word_ious)
from dpl_nb.models import TOY_MODEL, load_bundle, to_pil
from dpl_nb.p2p import edit
from dpl_nb.prompts import parse_prompt
from dpl_nb.toyworld import is_distractor
from dpl_nb.toymoset import swap_target, toymo_set
from dpl_nb.toymodel import bundle_world

RESULTS = Path(__file__).parent / "results"
METRICS = ("success", "in_place", "distractor_kept", "bg_psnr", "iou03", "iou_best", "maps_swapped", "unet_evals")
METHODS = ("nti", "dpl", "dpl_lean", "direct")  # direct: Direct Inversion + P2P, no DPL, the baseline of the `toy`
# preset, which runs on Direct Inversion
EXTRA_METHODS = ("dpl_anchor",)  # only when --methods names it: lean with LossConfig.anchor (not the paper's)


def chosen_scenes(world: str, seed: int, distractor: int, ordinary: int) -> list[tuple[int, object]]:
    "The first `distractor` look-alike and the first `ordinary` other scenes of a ToyMO-Set, with their index"
    scenes = list(enumerate(toymo_set(seed=seed, world=world)))
    hard = [(i, s) for i, s in scenes if is_distractor(s)][:distractor]
    easy = [(i, s) for i, s in scenes if not is_distractor(s)][:ordinary]
    return sorted(hard + easy, key=lambda pair: pair[0])


def _png(image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def blend_cover(mask, masks: np.ndarray) -> list[float]:
    "Share of each object's mask and (last) of the background that the local-blend mask `(1, 1, H, W)` covers"
    mask = mask[0, 0].cpu().numpy() if mask is not None else np.zeros(masks.shape[1:], bool)
    regions = list(masks) + [~masks.any(0)]
    return [round(float((mask & r).sum() / max(r.sum(), 1)), 4) for r in regions]


def dpl_settings(preset: str, settings: list[str]):
    "The `dpl` column's DPLConfig: `preset` with KEY=VALUE overrides of DPLConfig or LossConfig fields"
    import dataclasses
    import json as _json
    config = dpl_config(preset)
    for item in settings:
        key, _, text = item.partition("=")
        if key in {f.name for f in dataclasses.fields(config)} and key not in ("losses", "nti"):
            owner = config
        elif key in {f.name for f in dataclasses.fields(config.losses)}:
            owner = config.losses
        else:
            raise SystemExit(f"--dpl-set {item!r}: {key!r} is neither a DPLConfig nor a LossConfig field")
        if isinstance(getattr(owner, key), str):  # e.g. inversion=npi, at_region=objects
            value = text
        else:
            try:
                value = _json.loads(text)
            except ValueError:
                raise SystemExit(f"--dpl-set {item!r}: {key} takes a number, true or false") from None
        changed = dataclasses.replace(owner, **{key: value})
        config = changed if owner is config else dataclasses.replace(config, losses=changed)
    return config


INVERSIONS = ("nti", "npi", "direct")  # `method_record`'s configs that are an inversion alone, not DPL


def method_record(bundle, judge, scene, config, steps: int, self_replace: float = 0.5,
                  blend_threshold: float = 0.3, cross_replace: float = 0.8, blend_words: str = "both",
                  recon: bool = False) -> dict:
    """Invert `scene` (NTI when `config` is None, an inversion alone when one of INVERSIONS, else DPL with that
    DPLConfig or preset), swap its first noun, judge and score the edit (with `recon`, also the reconstruction's PSNR)"""
    old, new, target = swap_target(scene)
    start = time.perf_counter()
    if config is None or (isinstance(config, str) and config in INVERSIONS):
        inversion = invert(bundle, scene.pil, scene.braced, num_steps=steps, method=config or "nti", progress=False)
    else:
        inversion = dpl_invert(bundle, scene.pil, scene.braced, config, num_steps=steps, progress=False)
    seconds = time.perf_counter() - start
    positions = [w.positions for w in parse_prompt(scene.braced, bundle.tokenizer).words]
    maps = sampled_maps(bundle, inversion)
    sweep = word_ious(maps, positions, scene.masks, THRESHOLDS).mean(0)
    mass = map_mass(maps, positions, scene.masks)  # (nouns, objects + background)
    blend = (old, new) if blend_words == "both" else (old, ())  # "source": the source noun's map alone
    result = edit(bundle, inversion, target, blend_words=blend, progress=False,
                  self_replace_steps=self_replace, blend_threshold=blend_threshold,
                  cross_replace_steps=cross_replace)
    coats = judge.outline_head is not None  # a coat world: an outline the caption never names
    success = bool(edit_success(judge, result.edited, scene, 0, new_shape=new, keep_colour=True))
    return dict(success=success,  # in place: a success whose outline stayed (judged again only after a success)
                in_place=(success and bool(edit_success(judge, result.edited, scene, 0, new_shape=new,
                                                        keep_colour=True, keep_outline=True))) if coats else None,
                distractor_kept=bool(distractor_preserved(judge, result.edited, scene, 1)),
                bg_psnr=psnr_outside(result.edited, scene.pil, grow_mask(scene.masks[0], 1)),
                iou03=float(sweep[int(np.flatnonzero(THRESHOLDS == 0.3)[0])]), iou_best=float(sweep.max()),
                map_mass=mass.round(4).tolist(),
                maps_swapped=bool(any(row[:len(scene.objects)].argmax() != i for i, row in enumerate(mass))),
                blend_cover=blend_cover(result.mask, scene.masks),
                unet_evals=inversion.cost.total, edit_unet_evals=result.cost.total, seconds=seconds,
                token_updates=sum(inversion.trace["token_updates"]) if inversion.method == "dpl" else 0,
                edited_png=_png(result.edited)) | (dict(recon_psnr=reconstruction_psnr(bundle, inversion, scene))
                                                   if recon else {})


def reconstruction_psnr(bundle, inversion, scene) -> float | None:
    "PSNR (dB) of the inversion's reconstruction against the scene's image; None when identical (JSON has no inf)"
    with torch.no_grad():
        rebuilt = to_pil(bundle.decode(reconstruct(bundle, inversion, progress=False))[0])
    return json_psnr(rebuilt, scene.pil)


def settings_match(recorded: dict, settings: dict, redo: tuple = ()) -> bool:
    "Whether records made with `recorded` settings may join a run with `settings` (`--redo dpl` may change the preset)"
    free = ("preset", "dpl_set") if "dpl" in redo else ()  # they reach the `dpl` column only
    return ({k: v for k, v in recorded.items() if k not in free} == {k: v for k, v in settings.items() if k not in free})


def to_redo(done: dict, scenes: list[int], redo: tuple, settings: dict) -> list[int]:
    "The recorded `scenes` whose latest record has not had the `redo` methods run again with these settings"
    return [i for i in scenes if i in done and not (set(redo) <= set(done[i].get("redone", []))
                                                     and done[i].get("settings") == settings)]


def _record(job) -> dict:
    "One scene's record in a worker process (model, judge and scenes loaded once per process)"
    index, args, earlier = (*job, None) if len(job) == 2 else job
    state = worker_state(args["model"], args["judge"], args["seed"])
    scene = state["scenes"][index]
    _, new, target = swap_target(scene)
    record = dict(scene=index, distractor=bool(is_distractor(scene)), prompt=scene.braced, target=target,
                  steps=args["steps"], settings=args["settings"], machine=machine(), torch=torch.__version__)
    if earlier is not None:  # --redo: the other methods' records stay as they were
        record = dict(earlier, settings=args["settings"],
                      redone=sorted(set(earlier.get("redone", [])) | set(args["redo"])))
    for key, preset in (("nti", None), ("dpl", dpl_settings(args["preset"], args["dpl_set"])), ("dpl_lean", "lean"),
                        ("dpl_anchor", with_options("lean", anchor=True)), ("direct", "direct")):
        if key not in args["methods"] or (earlier is not None and key not in args["redo"]):
            continue
        torch.manual_seed(0)
        record[key] = method_record(state["bundle"], state["judge"], scene, preset, args["steps"],
                                    args["self_replace"], args["blend_threshold"],
                                    args["cross_replace"], args.get("blend_words", "both"))
    return record


def means(records: list[dict], methods=METHODS) -> dict:
    "Per method, the mean of each metric over `records` (bg_psnr over the edits that changed the background)"
    out = {}
    if not records:  # e.g. --ordinary 0
        return out
    for key in methods:
        row = {}
        for metric in METRICS:
            values = [r[key][metric] for r in records if r[key].get(metric) is not None]  # older records lack some
            row[metric] = float(np.mean(values)) if values else None
        covers = [r[key]["blend_cover"] for r in records if "blend_cover" in r[key]]
        row["blend_cover"] = np.mean(covers, 0).round(4).tolist() if covers else None  # own, other(s), background
        row["unet_evals_max"] = max(r[key]["unet_evals"] for r in records)
        row["bg_identical"] = sum(r[key]["bg_psnr"] is None for r in records)
        out[key] = row
    return out


def figure(records: list[dict], scenes: dict, path: Path, rows: int = 12, methods=METHODS):
    "Input | NTI edit | DPL edit | DPL-lean edit (those run) for the first `rows` look-alike scenes (else ordinary ones)"
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    chosen = ([r for r in records if r["distractor"]] or records)[:rows]
    if not chosen:
        return
    fig, axs = plt.subplots(len(chosen), 1 + len(methods), figsize=(1.3 * (1 + len(methods)), 1.45 * len(chosen)),
                            squeeze=False)
    for row, r in zip(axs, chosen):
        row[0].imshow(scenes[r["scene"]].image)
        row[0].set_title(f"{r['scene']}: {r['prompt']}".replace(" and ", "\nand "), fontsize=5)
        for ax, key in zip(row[1:], methods):
            ax.imshow(Image.open(io.BytesIO(base64.b64decode(r[key]["edited_png"]))))
            verdict = ("new " if r[key]["success"] else "no edit ") + ("kept" if r[key]["distractor_kept"] else "LEAK")
            ax.set_title(f"{key}: {verdict}", fontsize=5)
    for ax in axs.ravel():
        ax.axis("off")
    fig.tight_layout()
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp, dpi=110); os.replace(tmp, path)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="toy", help="toy (the embedded model) or a toy model folder")
    parser.add_argument("--judge", default=None, help="judge folder (default: the model folder's judge/)")
    parser.add_argument("--seed", type=int, default=2023, help="ToyMO-Set's seed (2023: the benchmark's scenes)")
    parser.add_argument("--preset", default="toy", choices=sorted(DPL_PRESETS), help="DPL preset of the `dpl` column")
    parser.add_argument("--distractor", type=int, default=40, help="look-alike scenes (the first N)")
    parser.add_argument("--ordinary", type=int, default=20, help="ordinary scenes (the first N)")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--workers", type=int, default=1, help="processes, each running whole scenes")
    parser.add_argument("--out", default=None)
    known = METHODS + EXTRA_METHODS
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated subset of " + ",".join(known))
    parser.add_argument("--dpl-set", action="append", default=[], metavar="KEY=VALUE",
                        help="change a DPLConfig or LossConfig field of the `dpl` column's preset, e.g. lr=0.01 or "
                             "anchor=true; repeatable (a calibration on held-out scenes, not the benchmark's)")
    parser.add_argument("--self-replace", type=float, default=0.5,
                        help="P2P's self_replace_steps, every method (0.5: google's null-text notebook's)")
    parser.add_argument("--cross-replace", type=float, default=0.8,
                        help="P2P's cross_replace_steps (the swapped word's maps are the source's), every method")
    parser.add_argument("--blend-threshold", type=float, default=0.3, help="P2P's local-blend threshold, every method")
    parser.add_argument("--blend-words", default="both", choices=("both", "source"),
                        help="the local blend's words: the old and the new noun (both: P2P's) or the old noun alone, "
                             "in the source row's maps (source), every method")
    parser.add_argument("--redo", default="", help="comma-separated methods to run again on the scenes already "
                        "recorded, keeping the other methods' records (after a change to those methods' code); "
                        "a redone record lists them under `redone`, and a rerun skips the scenes redone with the same settings; "
                        "with dpl, --preset and --dpl-set may differ from the records'")
    args = parser.parse_args()
    methods = tuple(m for m in known if m in args.methods.split(","))
    if not methods or set(args.methods.split(",")) - set(known):
        raise SystemExit(f"--methods takes a comma-separated subset of {','.join(known)}, got {args.methods!r}")
    folder = TOY_MODEL if args.model == "toy" else Path(args.model)
    judge = args.judge or str(folder / "judge")
    if not (Path(judge) / "judge.safetensors").is_file():
        raise SystemExit(f"no judge at {judge}: train one with toyjudge.train_judge(world=...) and save_judge, or give --judge")
    out = Path(args.out or RESULTS / ("edit_leakage.json" if args.seed == 2023 else f"edit_leakage_seed{args.seed}.json"))
    records_path = out.with_name(out.stem + "_scenes.jsonl")
    records_path.parent.mkdir(parents=True, exist_ok=True)
    world = bundle_world(load_bundle(args.model))
    chosen = chosen_scenes(world, args.seed, args.distractor, args.ordinary)
    done = read_records(records_path)
    stale = {r["steps"] for r in done.values()} - {args.steps}
    if stale:
        raise SystemExit(f"{records_path} holds records made with {sorted(stale)} steps; move it away or use --steps")
    dpl_settings(args.preset, args.dpl_set)  # a bad --dpl-set fails before any scene runs
    if not (0 <= args.self_replace <= 1 and 0 <= args.cross_replace <= 1 and 0 <= args.blend_threshold < 1):
        raise SystemExit("--self-replace and --cross-replace take a fraction of the steps in [0, 1] and "
                         "--blend-threshold one in [0, 1)")
    settings = dict(preset=args.preset, dpl_set=sorted(args.dpl_set), self_replace=args.self_replace,
                    blend_threshold=args.blend_threshold, cross_replace=args.cross_replace)
    if args.blend_words != "both":
        settings["blend_words"] = args.blend_words
    redo = tuple(m for m in methods if m in args.redo.split(","))
    if args.redo and (not redo or set(args.redo.split(",")) - set(methods)):
        raise SystemExit(f"--redo takes a comma-separated subset of --methods ({','.join(methods)}), got {args.redo!r}")
    other = [r["scene"] for r in done.values() if not settings_match(r.get("settings", settings), settings, redo)]
    if other:
        raise SystemExit(f"{records_path} holds records made with other settings (scenes {other[:5]}); "
                         "move it away or use --out")
    missing = {m for r in done.values() for m in methods if m not in r}
    if missing:
        raise SystemExit(f"{records_path} holds records without {sorted(missing)}; move it away or use --methods")
    job_args = dict(model=args.model, judge=judge, seed=args.seed, preset=args.preset, steps=args.steps, methods=methods,
                    dpl_set=args.dpl_set, self_replace=args.self_replace, blend_threshold=args.blend_threshold,
                    cross_replace=args.cross_replace, blend_words=args.blend_words,
                    settings=settings)
    job_args["redo"] = redo
    todo = [(i, job_args) for i, _ in chosen if i not in done]
    if redo:
        todo += [(i, job_args, done[i]) for i in to_redo(done, [i for i, _ in chosen], redo, settings)]
    print(f"{world} world, seed {args.seed}: {len(chosen)} scenes, {len(todo)} to run", flush=True)
    start = time.perf_counter()
    report = lambda r: print(f"scene {r['scene']:3d} ({'look-alike' if r['distractor'] else 'ordinary'}) "
                             f"{r['prompt']} -> {r['target']}: " + ", ".join(
                                 f"{k} {'ok' if r[k]['success'] else '--'}/{'kept' if r[k]['distractor_kept'] else 'LEAK'}"
                                 for k in methods), flush=True)
    if args.workers > 1:
        with ProcessPoolExecutor(args.workers) as pool:
            for future in as_completed([pool.submit(_record, job) for job in todo]):
                record = future.result(); append_record(records_path, record); done[record["scene"]] = record; report(record)
    else:
        for job in todo:
            record = _record(job); append_record(records_path, record); done[record["scene"]] = record; report(record)
    compact_records(records_path)
    records = [done[i] for i, _ in chosen]
    scenes = dict(chosen)
    result = {"benchmark": "edit_leakage", "model": args.model, "world": world, "seed": args.seed, "preset": args.preset,
              "dpl_set": sorted(args.dpl_set), "self_replace_steps": args.self_replace, "cross_replace_steps": args.cross_replace,
              "blend_threshold": args.blend_threshold, "blend_words": args.blend_words,
              "steps": args.steps, "guidance_scale": 7.5, "n_scenes": len(records),
              "methods": list(methods), "distractor": means([r for r in records if r["distractor"]], methods),
              "ordinary": means([r for r in records if not r["distractor"]], methods),
              "records": records_path.name, "seconds_this_run": time.perf_counter() - start, "workers": args.workers,
              "torch": torch.__version__, "dpl_nb": dpl_nb.__version__,
              "scenes": [{k: v for k, v in r.items() if k not in known} |
                         {m: {k: v for k, v in r[m].items() if k != "edited_png"} for m in methods}
                         for r in records]}
    written = write_result(result, out)
    figure(records, scenes, out.with_suffix(".png"), methods=methods)
    for group in ("distractor", "ordinary"):
        for key, row in result[group].items():
            print(f"{group:10s} {key:8s} " + " ".join(f"{m} {row[m]:.3f}" if row[m] is not None else f"{m} -" for m in METRICS))
    print(f"-> {written}")


if __name__ == "__main__":
    main()
