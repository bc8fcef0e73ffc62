"""`anim train lmm`: the command-line wiring of controllers.learned.train.

anim_app/cli.py hooks it in with::

    from controllers.learned.cli import add_train_lmm_parser
    train = sub.add_parser("train", help="train a learned controller")
    add_train_lmm_parser(train.add_subparsers(dest="what", required=True))
    ...
    return args.func(args)

No torch here: building the parser stays fast; torch is imported when the
command runs.
"""

from __future__ import annotations

import argparse
import os
import sys

from .config import TrainConfig


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The training options (shared by `anim train lmm` and `python -m controllers.learned.train`)."""
    d = TrainConfig()
    p.add_argument("--db", default=os.path.join("out", "databases", "locomotion-normal.animdb"),
                   help="motion database (default: %(default)s; build it with `anim build-db`)")
    p.add_argument("--out", default=None, help="run folder: checkpoint and loss log "
                   "(default: out/lmm/<database name>)")
    p.add_argument("--weights", default=None, help="weights file to write (default: OUT/lmm.npz)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default: %(default)s)")
    p.add_argument("--seed", type=int, default=d.seed, help="random seed (default: %(default)s)")
    p.add_argument("--iterations", type=int, nargs=3, metavar=("DECOMPRESSOR", "STEPPER", "PROJECTOR"),
                   default=None, help=f"iterations per stage (default: {d.decompressor_iterations} "
                   f"{d.stepper_iterations} {d.projector_iterations})")
    p.add_argument("--latent", type=int, default=d.latent, help="latent size (default: %(default)s)")
    p.add_argument("--hidden", type=int, default=d.hidden, help="hidden units (default: %(default)s)")
    p.add_argument("--lr", type=float, default=d.lr, help="initial learning rate (default: %(default)s)")
    p.add_argument("--checkpoint-every", type=int, default=d.checkpoint_every,
                   help="iterations between checkpoints (default: %(default)s)")
    p.add_argument("--threads", type=int, default=d.threads, help="torch CPU threads (default: %(default)s)")
    p.add_argument("--fresh", action="store_true", help="ignore an existing checkpoint and start over")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def add_train_lmm_parser(subparsers) -> argparse.ArgumentParser:
    """Add the `lmm` subcommand to an argparse subparsers object; `args.func(args)`
    then trains and returns the exit code."""
    p = subparsers.add_parser(
        "lmm", help="train learned motion matching (decompressor, stepper, projector) on a database",
        description="Train learned motion matching on a motion database and write a weights file. "
                    "Resumes from OUT/checkpoint.pt when present (--fresh starts over).")
    add_arguments(p)
    p.set_defaults(func=run_train_lmm)
    return p


def run_train_lmm(args) -> int:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")   # before torch loads (see __init__.py)
    from .train import run_from_args

    return run_from_args(args, " ".join(["anim"] + sys.argv[1:]))
