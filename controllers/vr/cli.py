"""`anim train vr` and `anim eval vr`: the sparse-VR commands for the anim CLI.

    from controllers.vr.cli import add_vr_parsers
    add_vr_parsers(sub)          # sub: anim's top-level subparsers

adds (or reuses) the `train` and `eval` command groups and puts `vr` under
each; every parser gets `func` (args -> exit code) as the rest of anim does.
`add_train_vr(train_sub)` / `add_eval_vr(eval_sub)` add `vr` to existing groups.
Same flags as `python -m controllers.vr.train` / `python -m controllers.vr.evaluate`.
"""

from __future__ import annotations

import argparse


def _train(args) -> int:
    from .train import run_from_args
    return run_from_args(args)


def _eval(args) -> int:
    from .evaluate import run_from_args
    run_from_args(args)
    return 0


def add_train_vr(train_sub) -> argparse.ArgumentParser:
    from .train import add_train_arguments
    p = train_sub.add_parser("vr", help="train the sparse-VR predictor (AGRoL-style diffusion, or the MLP baseline)",
                             description="Train the sparse-VR predictor; resumable, seeded, writes OUT/model.npz.")
    add_train_arguments(p)
    p.set_defaults(func=_train)
    return p


def add_eval_vr(eval_sub) -> argparse.ArgumentParser:
    from .evaluate import add_eval_arguments
    p = eval_sub.add_parser("vr", help="sparse-VR methods side by side on the test split (AGRoL metrics)",
                            description="Evaluate diffusion, MLP and motion-matching baselines on the test split.")
    add_eval_arguments(p)
    p.set_defaults(func=_eval)
    return p


def _group(subparsers, name: str, help_text: str):
    """The sub-command group `name` of anim's subparsers, created if missing."""
    parser = subparsers.choices.get(name)
    if parser is None:
        parser = subparsers.add_parser(name, help=help_text)
        parser.set_defaults(func=lambda a, p=parser: (p.print_help(), 0)[1])
    action = parser._subparsers._group_actions[0] if parser._subparsers is not None else None
    if action is None:
        action = parser.add_subparsers(dest=f"{name}_what", metavar="WHAT")
    return action


def add_vr_parsers(subparsers) -> None:
    """Add `train vr` and `eval vr` to anim's top-level subparsers."""
    add_train_vr(_group(subparsers, "train", "train a learned component"))
    add_eval_vr(_group(subparsers, "eval", "evaluate a component"))
