"""Train the embedded toy model (chapter 9) and ship the snapshot with the best noun maps into dpl_nb/assets/toy.

    python tools/train_toy.py RUN_DIR            # train (resumes from RUN_DIR/checkpoint.pt), then ship
    python tools/train_toy.py RUN_DIR --no-train # only score the snapshots and ship the best
    python tools/train_toy.py RUN_DIR --judge    # also retrain and ship the object judge

Uses a GPU when there is one. Stop it any time; running it again resumes from the last checkpoint.
"""
import argparse
import json

import torch

from dpl_nb.toyworld import ToyTrainConfig, judge_accuracy, save_judge, ship_toy_model, train_judge, train_toy_model


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir")
    parser.add_argument("--steps", type=int, default=ToyTrainConfig.steps)
    parser.add_argument("--object-attention", type=float, default=ToyTrainConfig.object_attention,
                        help="weight of the localisation loss that teaches nouns to attend to their objects")
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
        config = ToyTrainConfig(steps=args.steps, object_attention=args.object_attention)
        train_toy_model(args.run_dir, config, workers=workers)
    if args.judge:
        judge = train_judge()
        print("judge accuracy on held-out crops:", judge_accuracy(judge))
        save_judge(judge)
    if not args.no_ship:
        meta = ship_toy_model(args.run_dir)
        print(json.dumps({k: v for k, v in meta["selection"]["chosen"].items() if k != "folder"}, indent=1))


if __name__ == "__main__":
    main()
