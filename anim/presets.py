"""Named clip selections of the mocap catalog, and tag filters from the command line.

These are data about the corpus (which clips make a locomotion database), shared
by the command line, the tests and the training entry points; they live in the
core so that nothing needs the application layer to know them.
"""

from __future__ import annotations

import os

LOCOMOTION = ["walk", "walk-turn-left", "walk-turn-right", "run", "dash", "walk-back", "walk-left", "walk-right"]

# Named clip selections for `anim build-db --preset`.
PRESETS = {
    "locomotion-normal": {"content": LOCOMOTION, "style": "normal"},
    "locomotion": {"content": LOCOMOTION},
    "all": {},
}

DEFAULT_DB_DIR = os.path.join("out", "databases")


def default_db_path(preset: str = "locomotion-normal") -> str:
    return os.path.join(DEFAULT_DB_DIR, f"{preset}.animdb")


def parse_tags(items: list[str] | None, prog: str = "anim") -> dict:
    """--tag values to a tag filter:
    ['style=normal', 'content=walk,run'] -> {'style': 'normal', 'content': ['walk', 'run']}"""
    tags = {}
    for item in items or []:
        if "=" not in item:
            raise SystemExit(f"{prog}: --tag expects KEY=VALUE[,VALUE...], got {item!r}")
        key, value = item.split("=", 1)
        values = [v for v in value.split(",") if v]
        tags[key] = values if len(values) > 1 else values[0]
    return tags
