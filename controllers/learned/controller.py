"""Learned motion matching at run time (Holden, Kanoun, Perepichka, Popa 2020).

`LearnedSource` is a motion source of the shared kinematic loop
(`controllers.motion_matching.KinematicController`) whose state is a feature
vector and a latent vector instead of a database frame:

    search   the projector maps the query to a (features, latent) state; it is
             taken when its cost beats the current state's by the margin (as
             motion matching takes a better database frame)
    advance  the stepper moves (features, latent) one tick on (kept within the
             database's range of features and latents)
    pose     the decompressor turns (features, latent) into the full pose; its
             character-space root velocities move the source's own root
    at_end   never: there is no clip end

Inference is numpy float32 matrix products (ELU) plus one numba kernel; the
weights file is all it reads (no database).

    ctrl = LearnedController.load("controllers/learned/weights/lmm-locomotion-normal.npz")
    pose = ctrl.step(ControlInput(move=np.array([0.0, 1.0])), 1 / 60)
"""

from __future__ import annotations

import os
import warnings
from dataclasses import replace

import numpy as np

from anim.control import ControlInput
from anim.skeleton import Pose, Skeleton
from controllers.motion_matching.controller import KinematicController
from controllers.motion_matching.runtime import RuntimeConfig

from . import kernels as k
from . import weights as W

# the shipped weights: the name to show (relative to the checkout) and the file,
# found beside this module whatever the working directory
SHIPPED_WEIGHTS_NAME = "controllers/learned/weights/lmm-locomotion-normal.npz"
DEFAULT_WEIGHTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "weights", "lmm-locomotion-normal.npz")


class LearnedSource:
    """The three networks as a `MotionSource`."""

    def __init__(self, weights: W.Weights, contact_hysteresis: float = 0.15):
        self.weights = weights
        self.contact_hysteresis = float(contact_hysteresis)
        meta, a = weights.meta, weights.arrays
        self.dec = weights.net("decompressor")
        self.stepper = weights.net("stepper")
        self.projector = weights.net("projector")
        self.feature_offset = a["features_offset"]
        self.feature_scale = a["features_scale"]
        self.styles = list(meta.get("styles", []))
        self.nf = int(meta["num_features"])
        self.rest = a["rest_positions"].astype(np.float64)
        self.lo, self.hi = a["state_min"], a["state_max"]
        self.moving = np.asarray(meta["layout"]["moving"], np.int64)
        self.num_contacts = int(meta["layout"]["num_contacts"])
        j = self.rest.shape[0]
        self.rot = np.zeros((j, 4), np.float32)
        self.pos = np.zeros((j, 3), np.float32)
        self.vel = np.zeros((j, 3), np.float32)
        self.avel = np.zeros((j, 3), np.float32)
        self.contacts = np.zeros(self.num_contacts, np.bool_)
        self.fps = float(meta["fps"])
        self.style = self.styles[0] if len(self.styles) == 1 else None
        self._refused: set = set()
        self.state = np.concatenate([a["init_features"], a["init_latent"]]).astype(np.float32)
        self.root_pos = np.zeros(3)
        self.root_rot = np.array([1.0, 0.0, 0.0, 0.0])
        self.ticks = 0
        self.stats = {"transitions": 0, "transition_cost": 0.0}

    # ---------------------------------------------------------------- decoding
    def _decode(self, dt: float, hysteresis: float | None = None) -> None:
        y = W.mlp(self.dec, self.state).astype(np.float64)
        self.root_pos, self.root_rot = k.decode_pose(
            y, self.rest, self.moving, self.num_contacts, self.root_pos, self.root_rot, float(dt),
            self.rot, self.pos, self.vel, self.avel, self.contacts,
            self.contact_hysteresis if hysteresis is None else hysteresis)

    # ---------------------------------------------------------------- protocol
    def set_style(self, style: str | None) -> None:
        """The networks are not conditioned on style: a model trained on one
        style plays that style; any other asked style is refused (a warning,
        once per style) and nothing changes."""
        if style is None or style == self.style:
            return
        if style in self.styles and len(self.styles) == 1:
            self.style = style
            return
        if style not in self._refused:
            self._refused.add(style)
            why = (f"not among the styles it was trained on ({', '.join(self.styles) or 'none recorded'})"
                   if style not in self.styles else
                   f"one of several styles it was trained on together ({', '.join(self.styles)}); "
                   f"a learned model cannot pick one")
            warnings.warn(f"learned motion matching ({self.weights.path}): style {style!r} is {why}; "
                          f"style change ignored", stacklevel=3)

    def refuses(self, style) -> bool:
        return style in self._refused

    def reset(self, standing: bool = True) -> None:
        a = self.weights.arrays
        self.state = np.concatenate([a["init_features"], a["init_latent"]]).astype(np.float32)
        self.root_pos = np.zeros(3)
        self.root_rot = np.array([1.0, 0.0, 0.0, 0.0])
        self.ticks = 0
        self.contacts[:] = False
        self._decode(0.0, hysteresis=0.0)

    def features(self) -> np.ndarray:
        return self.state[:self.nf]

    def at_end(self) -> bool:
        return False

    def search(self, query, must_move, margin):
        query = np.asarray(query, np.float32)
        cur_cost = float(np.sum((query - self.state[:self.nf]) ** 2))
        out = W.mlp(self.projector, query)
        cost = float(np.sum((query - out[:self.nf]) ** 2))
        if must_move or cost < cur_cost - margin:
            self.state = out.astype(np.float32)
            self._step_state(1.0 / self.fps)
            self._decode(0.0)
            self.ticks = 0
            self.stats["transitions"] += 1
            self.stats["transition_cost"] += cost
            return True, cost
        return False, cur_cost

    def _step_state(self, dt):
        d = W.mlp(self.stepper, self.state)
        # kept within the database's range: a stepper driven off the data extrapolates
        # linearly and, rolled on, can grow without bound; the projector brings it back
        self.state = np.clip(self.state + np.float32(dt) * d, self.lo, self.hi).astype(np.float32)

    def advance(self, dt):
        self._step_state(dt)
        self.ticks += 1
        self._decode(dt)

    def pose(self):
        return self.rot, self.pos, self.vel, self.avel, self.contacts

    def info(self):
        return {"clip": "learned", "frame": self.ticks}

    def nbytes(self) -> int:
        return self.weights.nbytes


def trajectory_slice(groups) -> slice:
    start, a, b = 0, None, None
    for name, width in groups:
        if name == "trajectory_positions":
            a = start
        if name == "trajectory_directions":
            b = start + width
        start += width
    return slice(a, b)


class LearnedController(KinematicController):
    """Learned motion matching: the kinematic loop over a `LearnedSource`.
    Build it from a weights file only: `LearnedController.load(path)`."""

    name = "learned motion matching"

    def __init__(self, weights: W.Weights, config: RuntimeConfig = RuntimeConfig(), style: str | None = None):
        self.weights = weights
        meta = weights.meta
        sk = meta["skeleton"]
        skeleton = Skeleton(sk["names"], np.asarray(sk["parents"]), np.asarray(sk["offsets"], np.float32))
        source = LearnedSource(weights)
        super().__init__(source=source, skeleton=skeleton, feet=[skeleton.index(f) for f in meta["feet"]],
                         toes=[skeleton.index(t) for t in meta["toes"]],
                         trajectory_frames=meta["trajectory_frames"],
                         traj_slice=trajectory_slice(meta["feature_groups"]), speeds=meta["speeds"],
                         config=config, fps=meta["fps"], style=style,
                         accel_limit=meta.get("accel_limit"),   # files before it: no limit
                         body_joints=[j for j, n in enumerate(skeleton.names) if n not in set(meta.get("helpers", ()))])
        self.coverage = meta.get("coverage")   # of the training database (files before it: none)

    @classmethod
    def load(cls, path: str = DEFAULT_WEIGHTS, config: RuntimeConfig = RuntimeConfig(), style: str | None = None,
             skeleton=None) -> "LearnedController":
        """From a weights file; with `skeleton` (Skeleton or signature), a file
        trained for another skeleton is an error."""
        return cls(W.load(path, skeleton), config, style)

    def set_style(self, style: str | None) -> None:
        self.source.set_style(style)
        self.style = self.source.style

    def _step(self, control: ControlInput, dt: float) -> Pose:
        if control.style is not None and control.style != self.style:
            self.set_style(control.style)      # warns once per refused style; an accepted one is already ours
        if control.style is not None and (self.source.refuses(control.style) or control.style == self.style):
            control = replace(control, style=None)   # nothing changes: no search forced by a refused style
        return super()._step(control, dt)

    def nbytes(self) -> int:
        """Bytes the controller holds for its motion: the run-time weights."""
        return self.weights.nbytes
