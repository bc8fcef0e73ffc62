"""Motion-matching baseline of the sparse-VR task: search the training split's
frames for the one whose head and hand signal is nearest, and show its pose.

Features of a frame (36, from the current frame of the sparse window, all in the
head's heading frame): per device the 6D rotation (6), position (3) and linear
velocity (3). Each group (rotations, positions, velocities) is scaled by its
standard deviation over the database, times a weight. Search: the engine's
kd-tree (`anim.search.make_index('kdtree', ...)`), exact. Every frame the
continuation of the current match (the next frame of its clip) is compared
with the nearest frame; the search result is taken only when its cost is below
`switch_ratio` times the continuation's (so that the pose does not hop between
near-equal frames every tick). No blending: a raw baseline. The shown pose is
the matched frame's hips rotation (in its own heading frame) and local joint
rotations, placed like every predictor's output: in the query's heading frame,
hung from the tracked head.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from anim import search

from . import data as vd


@dataclass(frozen=True)
class MMConfig:
    """weights: (rotation, position, velocity) group weights; switch_ratio:
    take a search result when cost < switch_ratio * continuation cost."""

    weights: tuple = (1.0, 1.5, 0.75)
    switch_ratio: float = 0.8


def mm_features(sparse_last: np.ndarray) -> np.ndarray:
    """[..., 54] current-frame sparse signal -> [..., 36] raw matching features."""
    s = sparse_last.reshape(sparse_last.shape[:-1] + (3, vd.SPARSE_PER_DEVICE))
    return np.concatenate([s[..., 0:6], s[..., 12:15], s[..., 15:18]], axis=-1).reshape(
        sparse_last.shape[:-1] + (36,))


class MotionMatchingBaseline:
    """Stateful predictor with the same interface as controllers.vr.infer.Predictor."""

    kind = "mm"

    def __init__(self, data: vd.VRData, head_forward=None, config: MMConfig = MMConfig(), window: int = 40,
                 split: str = "train", chunk: int = 50_000):
        self.data = data
        self.config = config
        self.window = window
        self.skeleton = data.skeleton
        self.calibration = data.calibration
        self.head_forward = vd.head_forward_axis(data.calibration) if head_forward is None else head_forward
        self.frames = data.frames(split)
        raw = np.empty((len(self.frames), 36), np.float32)
        for a in range(0, len(self.frames), chunk):
            x, _, _, _ = vd.windows(data, self.frames[a:a + chunk], self.head_forward, window=1,
                                    with_target=False)
            raw[a:a + chunk] = mm_features(x[:, -1])
        self.offset = raw.mean(0)
        scale = np.empty(36, np.float32)
        groups = [np.r_[0:6, 12:18, 24:30], np.r_[6:9, 18:21, 30:33], np.r_[9:12, 21:24, 33:36]]
        for g, w in zip(groups, config.weights):
            scale[g] = max(float(raw[:, g].std(0).mean()), 1e-6) / w
        self.scale = scale
        self.X = ((raw - self.offset) / self.scale).astype(np.float32)
        # the next frame of the same clip (-1 at a clip's end)
        stops = np.repeat(data.stops, data.stops - data.starts)[self.frames]
        nxt = np.arange(1, len(self.frames) + 1)
        self.next = np.where(self.frames + 1 < stops, nxt, -1)
        self.index = search.make_index("kdtree", self.X, np.ones(len(self.X), bool))
        self.cur = -1
        self.stats = {"searches": 0, "switches": 0}

    def reset(self):
        self.cur = -1

    def match(self, sparse_last: np.ndarray) -> int:
        q = ((mm_features(sparse_last) - self.offset) / self.scale).astype(np.float32)
        best, cost = self.index.query(q)
        self.stats["searches"] += 1
        cont = self.next[self.cur] if self.cur >= 0 else -1
        if cont >= 0:
            d = self.X[cont] - q
            c_cost = float(d @ d)
            if not cost < self.config.switch_ratio * c_cost:
                best = cont
            else:
                self.stats["switches"] += 1
        self.cur = int(best)
        return self.cur

    def predict(self, sparse: np.ndarray, theta=None) -> np.ndarray:
        """Sparse windows [B, W, 54], taken as B consecutive frames -> [B, 126]."""
        rows = [self.match(s[-1]) for s in np.asarray(sparse)]
        _, y, _, _ = vd.windows(self.data, self.frames[np.array(rows)], self.head_forward, window=1)
        return y[:, -1]
