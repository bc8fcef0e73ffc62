"""The four networks of learned motion matching, and forward kinematics in torch.

Sizes as in Holden's Motion-Matching demo (train_decompressor.py,
train_stepper.py, train_projector.py): 512 hidden units, ELU.

    compressor    full pose (local + character space) -> latent       3 hidden layers
    decompressor  (features, latent) -> pose vector                    1 hidden layer
    stepper       (features, latent) at t -> their velocity at t       2 hidden layers
    projector     query features -> (features, latent) of its nearest  4 hidden layers

Every network works on normalized inputs and outputs: `Net` holds the means
and stds and applies them, so that exporting a network is exporting its
layers plus four vectors (`export`), evaluated in numpy by `weights.mlp`.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

HIDDEN = 512
DEPTH = {"compressor": 3, "decompressor": 1, "stepper": 2, "projector": 4}


class Net(nn.Module):
    """An ELU MLP between normalized spaces: y = mlp((x - mean_in) / std_in) * std_out + mean_out."""

    def __init__(self, n_in: int, n_out: int, depth: int, hidden: int = HIDDEN,
                 mean_in=None, std_in=None, mean_out=None, std_out=None):
        super().__init__()
        sizes = [n_in] + [hidden] * depth + [n_out]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))

        def buf(x, n, fill):
            return torch.full((n,), fill, dtype=torch.float32) if x is None else torch.as_tensor(x, dtype=torch.float32)

        self.register_buffer("mean_in", buf(mean_in, n_in, 0.0))
        self.register_buffer("std_in", buf(std_in, n_in, 1.0))
        self.register_buffer("mean_out", buf(mean_out, n_out, 0.0))
        self.register_buffer("std_out", buf(std_out, n_out, 1.0))

    def forward(self, x):
        h = (x - self.mean_in) / self.std_in
        for layer in self.layers[:-1]:
            h = nn.functional.elu(layer(h))
        return self.layers[-1](h) * self.std_out + self.mean_out

    def export(self) -> dict:
        """float32 numpy arrays: W{i} [in, out], b{i}, mean_in, std_in, mean_out, std_out."""
        out = {}
        for i, layer in enumerate(self.layers):
            out[f"W{i}"] = layer.weight.detach().cpu().numpy().T.astype(np.float32).copy()
            out[f"b{i}"] = layer.bias.detach().cpu().numpy().astype(np.float32).copy()
        for k in ("mean_in", "std_in", "mean_out", "std_out"):
            out[k] = getattr(self, k).detach().cpu().numpy().astype(np.float32).copy()
        return out


def make(kind: str, n_in: int, n_out: int, hidden: int = HIDDEN, **norm) -> Net:
    return Net(n_in, n_out, DEPTH[kind], hidden, **norm)


# ------------------------------------------------------------------ rotations
def quat_to_matrix(q: torch.Tensor) -> torch.Tensor:
    """(w, x, y, z) [..., 4] -> [..., 3, 3] (column vectors), as anim.quat.to_matrix."""
    w, x, y, z = q.unbind(-1)
    xx, yy, zz = 2 * x * x, 2 * y * y, 2 * z * z
    xy, xz, yz = 2 * x * y, 2 * x * z, 2 * y * z
    wx, wy, wz = 2 * w * x, 2 * w * y, 2 * w * z
    m = torch.stack([1 - yy - zz, xy - wz, xz + wy,
                     xy + wz, 1 - xx - zz, yz - wx,
                     xz - wy, yz + wx, 1 - xx - yy], dim=-1)
    return m.reshape(q.shape[:-1] + (3, 3))


def matrix_from_6d(x: torch.Tensor) -> torch.Tensor:
    """Two columns (quat.to_6d layout: col0, col1) [..., 6] -> rotation matrix by
    Gram-Schmidt (Holden's xform_orthogonalize_from_xy)."""
    c0 = nn.functional.normalize(x[..., :3], dim=-1, eps=1e-8)
    c1 = x[..., 3:]
    c1 = nn.functional.normalize(c1 - (c0 * c1).sum(-1, keepdim=True) * c0, dim=-1, eps=1e-8)
    c2 = torch.cross(c0, c1, dim=-1)
    return torch.stack([c0, c1, c2], dim=-1)


def matrix_to_6d(m: torch.Tensor) -> torch.Tensor:
    return torch.cat([m[..., :, 0], m[..., :, 1]], dim=-1)


# ------------------------------------------------------------------ kinematics
def depth_levels(parents) -> list:
    """Joint indices grouped by depth in the tree (the root level first)."""
    parents = np.asarray(parents)
    depth = np.zeros(len(parents), np.int64)
    for j, p in enumerate(parents):
        depth[j] = 0 if p < 0 else depth[p] + 1
    return [np.flatnonzero(depth == d) for d in range(1, int(depth.max()) + 1)]


def fk_vel(lrot, lpos, lvel, lang, parents, levels=None):
    """Forward kinematics with velocities, level by level (one batched step per
    tree depth instead of one per joint). lrot [..., J, 3, 3] local rotation
    matrices, lpos/lvel/lang [..., J, 3] local positions, velocities and
    angular velocities; joint 0 is in world space. Returns world
    (rot, pos, vel, ang), the same formulas as anim.database's."""
    parents = np.asarray(parents)
    levels = depth_levels(parents) if levels is None else levels
    grot, gpos, gvel, gang = lrot, lpos, lvel, lang
    for idx in levels:
        ji = torch.as_tensor(idx, dtype=torch.long, device=lrot.device)
        pi = torch.as_tensor(parents[idx], dtype=torch.long, device=lrot.device)
        prot = grot[..., pi, :, :]
        rp = (prot @ lpos[..., ji, :, None])[..., 0]
        r = prot @ lrot[..., ji, :, :]
        p = gpos[..., pi, :] + rp
        pang = gang[..., pi, :]
        v = gvel[..., pi, :] + (prot @ lvel[..., ji, :, None])[..., 0] + torch.cross(pang, rp, dim=-1)
        a = (prot @ lang[..., ji, :, None])[..., 0] + pang
        grot = grot.index_copy(-3, ji, r)
        gpos = gpos.index_copy(-2, ji, p)
        gvel = gvel.index_copy(-2, ji, v)
        gang = gang.index_copy(-2, ji, a)
    return grot, gpos, gvel, gang


def character_space(grot, gpos, gvel, gang):
    """World quantities relative to joint 0 (the simulation bone), joints 1.. only."""
    rinv = grot[..., :1, :, :].transpose(-1, -2)
    qrot = rinv @ grot[..., 1:, :, :]
    qpos = (rinv @ (gpos[..., 1:, :] - gpos[..., :1, :])[..., None])[..., 0]
    qvel = (rinv @ gvel[..., 1:, :, None])[..., 0]
    qang = (rinv @ gang[..., 1:, :, None])[..., 0]
    return qrot, qpos, qvel, qang
