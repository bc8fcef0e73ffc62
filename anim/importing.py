"""`anim build-db --data DIR`: a folder of anyone's BVH files into a database.

The catalog's datasets (Bandai Namco) are built as before. A `--data` folder goes
through three steps, each recorded in the database header (`db.meta`) and printed:

1. `anim.conform.conform_clips`: units, up axis, root channels, two roots, T-pose
   frame, detected per file unless the flags state them.
2. `anim.roles.find_roles` (with `--joint-map FILE`): the feet, toes, hips, facing
   joints and mirror pairs the database reads (`database_config`).
3. The contact height: relative to how high this rig's toe joint sits when planted
   (measured from the data), `CONTACT_MARGIN` above it; 0.08 m on Bandai Namco.

Tags: none are required (no preset applies unless `--preset` is given); a file's
tags are {'dataset', 'name'}, plus the named groups of `--tag-pattern` matched
against its stem, plus a sidecar `STEM.tags.json` ({"content": "walk", ...}).
"""

from __future__ import annotations

from dataclasses import replace

from .conform import ConformOptions, conform_clips, planted_height
from .roles import Roles, database_names, find_roles, load_joint_map

__all__ = ["CONTACT_MARGIN", "add_arguments", "options_from_args", "database_config", "prepare"]

# Contact threshold above the planted toe height: Bandai Namco's toes sit 4.4 cm up
# when planted (median over its normal-style walks and runs) under a 0.08 m threshold.
CONTACT_MARGIN = 0.036


def add_arguments(sp) -> None:
    """The --data folder's flags (build-db)."""
    sp.add_argument("--units", metavar="U",
                    help="with --data: file units, m, cm, mm, in (default: detected from the skeleton's "
                         "height; --scale N states the factor instead)")
    sp.add_argument("--up", default="auto", metavar="AXIS",
                    help="with --data: the files' up axis, y or z (default: detected)")
    sp.add_argument("--root-offset", choices=["auto", "absolute", "relative"], default="auto",
                    help="with --data: root position channels are world positions (absolute) or added to "
                         "the root's OFFSET (relative); default: detected (feet ~1 m under the floor)")
    sp.add_argument("--drop-frames", type=int, metavar="N",
                    help="with --data: drop the first N frames of every file (default: a T-pose frame 0 "
                         "where one is detected)")
    sp.add_argument("--joint-map", metavar="FILE",
                    help="JSON or TOML file naming joints for roles (left_foot = \"l_ankle\"), helper "
                         "joints and mirror pairs; default: found from names and topology")
    sp.add_argument("--tag-pattern", metavar="REGEX",
                    help="with --data: tags from each file name's stem by the regex's named groups, e.g. "
                         r"'(?P<subject>\d+)_(?P<take>\d+)'")


def options_from_args(args) -> ConformOptions:
    units = args.units or (args.scale if getattr(args, "scale", None) else "auto")
    jm = load_joint_map(args.joint_map) if getattr(args, "joint_map", None) else None
    return ConformOptions(units=units, up=args.up, root_offset=args.root_offset, drop_frames=args.drop_frames,
                          joint_map=jm)


def database_config(clips, base, joint_map=None) -> tuple:
    """(DatabaseConfig with the roles' joint names and a measured contact height, Roles)."""
    roles = find_roles(clips[0].skeleton, joint_map)
    names = database_names(roles)
    planted = planted_height(clips, names["toes"], speed=base.contact_speed)
    cfg = replace(base, contact_height=round(planted + CONTACT_MARGIN, 4), **names)
    return cfg, roles


def prepare(clips, base, options: ConformOptions):
    """Conform a --data folder's clips and choose the database config.
    Returns (clips, config, meta) where meta goes to the database header."""
    clips, report = conform_clips(clips, options)
    cfg, roles = database_config(clips, base, options.joint_map)
    meta = {"import": report, "roles": roles.to_json(),
            "planted_toe_height_m": round(cfg.contact_height - CONTACT_MARGIN, 4)}
    return clips, cfg, meta


def describe(meta: dict) -> str:
    s = meta["import"]["summary"]
    r = Roles.from_json(meta["roles"])
    lines = [f"  import: units {s['units']}, up {s['up']}, root channels {s['root_offset']}, dropped first "
             f"frames {s['dropped_frames']}" + (f", re-rooted at the hips from {', '.join(s['rerooted'])}"
                                                if s["rerooted"] else ""),
             f"  roles: hips {r['hips']}, feet {'/'.join(r.pair('foot'))}, toes {'/'.join(r.pair('toe'))}, "
             f"hands {'/'.join(r.pair('hand'))}, head {r['head']}; {len(r.mirror)} mirror pairs, "
             f"{len(r.helpers)} helper joints",
             f"  contacts: planted toes at {meta['planted_toe_height_m']:.3f} m, threshold "
             f"{meta['planted_toe_height_m'] + CONTACT_MARGIN:.3f} m"]
    return "\n".join(lines)
