"""What the renderer draws: plain data, rebuilt every frame (no GL, no pygame here).

Colours are RGB or RGBA floats in [0, 1]. Positions are world space, metres, Y up.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from viewer.camera import Camera

MIN_BONE_RADIUS = 0.035
MAX_BONE_RADIUS = 0.07


@dataclass
class CharacterDraw:
    """One skinned-capsule character.

    positions: float [J, 3] global joint positions.
    parents:   int [J], -1 for a root.
    color:     body colour; joints are drawn a little darker.
    alpha:     1 = opaque; < 1 draws a translucent ghost (one layer, no inner surfaces).
    contacts:  optional bool [J]: joints touching the ground (darkens the ground under them).
    radii:     optional float [J]: radius of the capsule from joint j to its parent
               (default: `default_bone_radii`, 0.035-0.07 m, thicker near the trunk).
    bone_mask: optional bool [J]: False hides the capsule from joint j to its parent
               (e.g. a ground-projected simulation root's link to the hips).
    shadow:    cast a blob shadow on the ground.
    """

    positions: np.ndarray
    parents: np.ndarray
    color: tuple = (0.86, 0.52, 0.30)
    alpha: float = 1.0
    contacts: np.ndarray | None = None
    radii: np.ndarray | None = None
    bone_mask: np.ndarray | None = None
    shadow: bool = True


@dataclass
class Scene:
    """One frame.

    lines:  [(points [K, 3], colour)] polylines (debug drawing: trajectories, axes).
    points: [(position [3], colour, radius in metres)] drawn as small lit spheres.
    hud_lines: text drawn in the top-left corner.
    help_lines: when non-empty, drawn as a centred overlay (the app fills it while help is toggled on).
    """

    characters: list[CharacterDraw] = field(default_factory=list)
    lines: list = field(default_factory=list)
    points: list = field(default_factory=list)
    hud_lines: list[str] = field(default_factory=list)
    help_lines: list[str] = field(default_factory=list)
    camera: Camera = field(default_factory=Camera)


def default_bone_radii(parents) -> np.ndarray:
    """A capsule radius per joint (its bone to its parent) from the hierarchy alone:
    bones carrying more of the skeleton (spine, hips) are thicker, limbs thinner."""
    parents = np.asarray(parents)
    j = len(parents)
    size = np.ones(j)
    for i in range(j - 1, 0, -1):  # parents come before children
        if parents[i] >= 0:
            size[parents[i]] += size[i]
    frac = size / j
    return (MIN_BONE_RADIUS + (MAX_BONE_RADIUS - MIN_BONE_RADIUS) * np.sqrt(frac)).astype(np.float32)


def axes_lines(origin, rotation_matrix, length=0.2):
    """Three coloured lines (x red, y green, z blue) for a frame: handy debug drawing."""
    o = np.asarray(origin, np.float32)
    m = np.asarray(rotation_matrix, np.float32)
    cols = [(0.9, 0.1, 0.1), (0.1, 0.8, 0.1), (0.1, 0.3, 0.95)]
    return [(np.stack([o, o + m[:, k] * length]), cols[k]) for k in range(3)]
