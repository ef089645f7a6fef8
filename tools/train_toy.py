"""Train the embedded toy model (chapter 9) and ship the snapshot with the best noun maps into dpl_nb/assets/toy.

    python tools/train_toy.py RUN_DIR            # train (resumes from RUN_DIR/checkpoint.pt), then ship
    python tools/train_toy.py RUN_DIR --no-train # only score the snapshots and ship the best
    python tools/train_toy.py RUN_DIR --judge    # also retrain and ship the object judge
    python tools/train_toy.py RUN_DIR --fit-minutes 6 --dest OUT  # as many steps as fit in 6 minutes here
    python tools/train_toy.py RUN_DIR --init EARLIER/checkpoint.pt --lr 5e-4  # warm start: a new schedule
    python tools/train_toy.py RUN_DIR --text-encoder frozen --token-std 0.1   # a frozen random text encoder
    python tools/train_toy.py RUN_DIR --similar-tokens 0.95 ...  # look-alike nouns with correlated tokens
    python tools/train_toy.py RUN_DIR --init dpl_nb/assets/toy ...  # warm start from a model folder (UNet [+ text])

With --fit-minutes the step count (and so the learning-rate schedule) is chosen once, from a timed trial of 60 steps in
RUN_DIR/timing, and stored in the run's config; resuming the run later needs the same --steps.

Uses a GPU when there is one. Stop it any time; running it again resumes from the last checkpoint.
"""
import argparse
import json
import shutil
import time
from dataclasses import replace
from pathlib import Path

import torch

from dpl_nb.models import TOY_MODEL
from dpl_nb.toyworld import WORLDS
from dpl_nb.toytrain import ToyTrainConfig, train_toy_model
from dpl_nb.toymaps import ship_toy_model
from dpl_nb.toyjudge import judge_accuracy, save_judge, train_judge


def fitted_steps(run_dir, config: ToyTrainConfig, minutes: float, workers: int) -> int:
    "Steps of `config` that take about `minutes` here, timed on 60 steps after 10 of warm-up (a throwaway run)"
    trial = Path(run_dir) / "timing"
    if (Path(run_dir) / "checkpoint.pt").exists():  # resuming: the stored config decides
        raise SystemExit(f"{run_dir} has a checkpoint: resume it with the --steps and --snapshot-every of its config")
    shutil.rmtree(trial, ignore_errors=True)
    probe = replace(config, steps=10_000_000, snapshot_every=10_000_000, checkpoint_every=10)
    train_toy_model(trial, probe, stop_at=10, progress=False, workers=workers)
    start = time.perf_counter()
    train_toy_model(trial, probe, stop_at=70, progress=False, workers=workers)
    seconds_per_step = (time.perf_counter() - start) / 60
    shutil.rmtree(trial, ignore_errors=True)
    return max(1, int(minutes * 60 / seconds_per_step))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir")
    parser.add_argument("--steps", type=int, default=ToyTrainConfig.steps)
    parser.add_argument("--object-attention", type=float, default=ToyTrainConfig.object_attention,
                        help="weight of the localisation loss that teaches nouns to attend to their objects")
    parser.add_argument("--lookalike-margin", type=float, default=ToyTrainConfig.lookalike_margin,
                        help="> 0: look-alike scenes teach each noun to attend to its own object more than to the "
                        "other by this margin (only the order; their maps may still spread); 0: they teach no map")
    parser.add_argument("--batch-size", type=int, default=ToyTrainConfig.batch_size)
    parser.add_argument("--lr", type=float, default=ToyTrainConfig.lr, help="peak learning rate (cosine schedule)")
    parser.add_argument("--init", default="",
                        help="an earlier run's checkpoint.pt (its EMA weights) or a toy model folder to warm-start from")
    parser.add_argument("--channels", type=int, nargs=3, default=ToyTrainConfig.channels, help="UNet widths")
    parser.add_argument("--layers-per-block", type=int, default=ToyTrainConfig.layers_per_block)
    parser.add_argument("--p-colour-words", type=float, default=ToyTrainConfig.p_colour_words,
                        help="share of training captions that name colours")
    parser.add_argument("--p-similar", type=float, default=ToyTrainConfig.p_similar,
                        help="chance that an extra object takes an earlier object's look-alike noun")
    parser.add_argument("--p-same-colour", type=float, default=ToyTrainConfig.p_same_colour,
                        help="chance that an extra object takes an earlier object's colour")
    parser.add_argument("--snapshot-every", type=int, default=ToyTrainConfig.snapshot_every)
    parser.add_argument("--text-encoder", default=ToyTrainConfig.text_encoder, choices=("trained", "frozen"),
                        help="frozen: the text encoder stays at its seeded random init, as SD keeps CLIP frozen")
    parser.add_argument("--token-std", type=float, default=ToyTrainConfig.token_std,
                        help="std of the token embeddings at init (CLIP's: 0.02)")
    parser.add_argument("--similar-tokens", type=float, default=ToyTrainConfig.similar_tokens,
                        help="correlation of the look-alike nouns' token embeddings at init, in [0, 1)")
    parser.add_argument("--snr-gamma", type=float, default=ToyTrainConfig.snr_gamma,
                        help="Min-SNR-gamma loss weighting (e.g. 5); 0: plain MSE")
    parser.add_argument("--stop-at", type=int, default=None, help="stop after this step (resume later, same schedule)")
    parser.add_argument("--warmup", type=int, default=ToyTrainConfig.warmup, help="steps of linear lr warm-up")
    parser.add_argument("--world", default=ToyTrainConfig.world, choices=sorted(WORLDS),
                        help="toy world of the scenes: shapes (v1, the shipped model) or coats (v2)")
    parser.add_argument("--snapshots", type=int, default=8, help="with --fit-minutes: EMA snapshots over the run")
    parser.add_argument("--fit-minutes", type=float, default=None,
                        help="choose --steps (and --snapshot-every) so that training takes about this long here")
    parser.add_argument("--dest", default=str(TOY_MODEL), help="folder the chosen snapshot is shipped to")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    parser.add_argument("--workers", type=int, default=None,
                        help="processes drawing training scenes (default: 8 with a GPU, else 0); batches do not change")
    parser.add_argument("--no-train", action="store_true", help="skip training; score and ship existing snapshots")
    parser.add_argument("--no-ship", action="store_true", help="train only")
    parser.add_argument("--judge", action="store_true", help="train and ship the object judge too")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if not args.no_train:
        workers = args.workers if args.workers is not None else (8 if torch.cuda.is_available() else 0)
        config = ToyTrainConfig(steps=args.steps, object_attention=args.object_attention, batch_size=args.batch_size,
                                channels=tuple(args.channels), layers_per_block=args.layers_per_block,
                                p_colour_words=args.p_colour_words, snapshot_every=args.snapshot_every, world=args.world,
                                lr=args.lr, init=str(Path(args.init).resolve()) if args.init else "",
                                text_encoder=args.text_encoder, token_std=args.token_std, warmup=args.warmup,
                                similar_tokens=args.similar_tokens, p_similar=args.p_similar,
                                p_same_colour=args.p_same_colour, snr_gamma=args.snr_gamma,
                                lookalike_margin=args.lookalike_margin)
        if args.fit_minutes:
            every = max(1, fitted_steps(args.run_dir, config, args.fit_minutes, workers) // args.snapshots)
            config = replace(config, steps=every * args.snapshots, snapshot_every=every)
            print("steps:", config.steps, flush=True)
        train_toy_model(args.run_dir, config, workers=workers, stop_at=args.stop_at)
    if args.judge:
        judge = train_judge(world=args.world)
        print("judge accuracy on held-out crops:", judge_accuracy(judge))
        save_judge(judge, Path(args.dest) / "judge")
    if not args.no_ship:
        meta = ship_toy_model(args.run_dir, Path(args.dest))
        print(json.dumps({k: v for k, v in meta["selection"]["chosen"].items() if k != "folder"}, indent=1))


if __name__ == "__main__":
    main()
