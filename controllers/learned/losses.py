"""Losses of learned motion matching, pure functions of tensors (Holden, Kanoun,
Perepichka, Popa 2020, sec. 4; weights from Holden's demo scripts).

Every function returns a dict of named scalar losses; the training loop sums
them and logs each.
"""

from __future__ import annotations

import torch

from . import networks as nw
from .data import PoseLayout

DT = 1.0 / 60.0


def assemble(y: torch.Tensor, root: dict, layout: PoseLayout, rest: torch.Tensor):
    """Full local pose from a pose vector y [..., P] and the root joint's world
    state (root['rot'] [..., 3, 3], 'pos', 'vel', 'ang' [..., 3]): local rotation
    matrices [..., J, 3, 3] and positions, velocities, angular velocities [..., J, 3].
    Joints that do not move keep their rest offset and zero velocity."""
    g = layout.split(y)
    lead = y.shape[:-1]
    j, moving = layout.num_joints, list(layout.moving)
    rot = nw.matrix_from_6d(g["rot"].reshape(lead + (j - 1, 6)))
    lrot = torch.cat([root["rot"][..., None, :, :], rot], dim=-3)
    mid = torch.as_tensor(moving, dtype=torch.long, device=y.device)
    lpos = rest.expand(lead + rest.shape).index_copy(-2, mid, g["pos"].reshape(lead + (len(moving), 3)))
    lpos = torch.cat([root["pos"][..., None, :], lpos[..., 1:, :]], dim=-2)
    lvel = torch.zeros(lead + (j, 3), dtype=y.dtype, device=y.device)
    lvel = lvel.index_copy(-2, mid, g["vel"].reshape(lead + (len(moving), 3)))
    lvel = torch.cat([root["vel"][..., None, :], lvel[..., 1:, :]], dim=-2)
    lang = torch.cat([root["ang"][..., None, :], g["avel"].reshape(lead + (j - 1, 3))], dim=-2)
    return lrot, lpos, lvel, lang


def _l1(a, b, weight, share: float = 1.0):
    """weight * mean |a - b|; `share` scales the mean as if it ran over more
    elements (Holden's losses run over all joints, also the ones that never move)."""
    return weight * share * torch.mean(torch.abs(a - b))


def decompressor(y_til, y_gnd, q_gnd, z, root, layout: PoseLayout, rest, parents, levels, dt: float = DT) -> dict:
    """Reconstruction losses of compressor + decompressor over windows of frames.

    y_til, y_gnd: [B, W, P] predicted / true pose vectors; q_gnd: true character
    space (rot [B, W, J-1, 3, 3], pos, vel, ang [B, W, J-1, 3]); z [B, W, L]
    latent; root: true root joint (see `assemble`).
    Local losses (pose vector), character-space losses after forward
    kinematics, losses on their finite differences in time, and latent
    regularization (sparse, small, slow)."""
    share = len(layout.moving) / layout.num_joints
    gt, gp = layout.split(y_gnd), layout.split(y_til)
    qrot, qpos, qvel, qang = nw.character_space(*nw.fk_vel(*assemble(y_til, root, layout, rest), parents, levels))
    rot_t = nw.matrix_from_6d(gp["rot"].reshape(gp["rot"].shape[:-1] + (-1, 6)))
    rot_g = nw.matrix_from_6d(gt["rot"].reshape(gt["rot"].shape[:-1] + (-1, 6)))

    def d(x):
        return (x[:, 1:] - x[:, :-1]) / dt

    out = {
        "loc_pos": _l1(gp["pos"], gt["pos"], 75.0, share),
        "loc_rot": _l1(gp["rot"], gt["rot"], 10.0),
        "loc_vel": _l1(gp["vel"], gt["vel"], 10.0, share),
        "loc_ang": _l1(gp["avel"], gt["avel"], 1.25),
        "loc_rvel": _l1(gp["rvel"], gt["rvel"], 2.0),
        "loc_rang": _l1(gp["rang"], gt["rang"], 2.0),
        "loc_contact": _l1(gp["cont"], gt["cont"], 2.0),
        "chr_pos": _l1(qpos, q_gnd["pos"], 15.0),
        "chr_rot": _l1(qrot, q_gnd["rot"], 5.0),
        "chr_vel": _l1(qvel, q_gnd["vel"], 2.0),
        "chr_ang": _l1(qang, q_gnd["ang"], 0.75),
        "lvel_pos": _l1(d(gp["pos"]), d(gt["pos"]), 10.0, share),
        "lvel_rot": _l1(d(rot_t), d(rot_g), 1.75),
        "cvel_pos": _l1(d(qpos), d(q_gnd["pos"]), 2.0),
        "cvel_rot": _l1(d(qrot), d(q_gnd["rot"]), 0.75),
        "z_sparse": 0.1 * torch.mean(torch.abs(z)),
        "z_small": 0.1 * torch.mean(torch.square(z)),
        "z_slow": 0.01 * torch.mean(torch.abs(d(z))),
    }
    return out


def stepper(x_til, z_til, x_gnd, z_gnd, dt: float = DT) -> dict:
    """Rollout losses over a window [B, W, *]: values and their velocities."""
    def d(x):
        return (x[:, 1:] - x[:, :-1]) / dt

    return {
        "x_val": _l1(x_til, x_gnd, 2.0),
        "z_val": _l1(z_til, z_gnd, 7.5),
        "x_vel": _l1(d(x_til), d(x_gnd), 0.2),
        "z_vel": _l1(d(z_til), d(z_gnd), 0.5),
    }


def projector(x_til, z_til, x_gnd, z_gnd, query) -> dict:
    """The projected state must be the nearest frame's (features, latent), and
    its distance to the query the nearest frame's distance."""
    d_gnd = torch.sqrt(torch.sum(torch.square(query - x_gnd), dim=-1) + 1e-8)
    d_til = torch.sqrt(torch.sum(torch.square(query - x_til), dim=-1) + 1e-8)
    return {
        "x_val": _l1(x_til, x_gnd, 1.0),
        "z_val": _l1(z_til, z_gnd, 5.0),
        "dist": _l1(d_til, d_gnd, 0.3),
    }
