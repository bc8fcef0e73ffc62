"""The sparse-VR predictors' networks (torch, for training) and the diffusion
schedule. Run-time inference is numpy (`controllers.vr.infer`); the motion
matching baseline lives in `controllers.vr.baselines`.

AGRoL (Du et al., CVPR 2023): an MLP denoiser over a window of W frames. The
noisy motion x_t [W, 126] and the sparse signal c [W, 54] are projected to the
latent width D and summed (AGRoL concatenates two projections and applies a
linear layer: the same linear function, folded), then `blocks` MLP blocks, each

    x = x + emb_fc(SiLU(emb(t)))                  (diffusion step embedding)
    x = x + SiLU(fc_time(LayerNorm(x)))           (a W x W linear over time)
    x = x + SiLU(fc(LayerNorm(x)))                (a D x D linear over features)

and a linear output predicting x0 (not the noise). Trained on a fixed number
of diffusion steps (1000, cosine schedule of Nichol & Dhariwal 2021); sampled
with few DDIM steps (eta = 0) from a fixed noise sample, so the online output is
a deterministic function of the input window. Online, the window's past frames
are inpainted with the frames already shown (controllers.vr.infer), so each
new frame continues the motion on screen.

Beyond AGRoL (what a 30-minute CPU budget needed, see DiffusionConfig): the
sparse signal is encoded once per window by a window-level MLP and two MLP
blocks before joining the denoiser; the loss weighs the current (last) frame
extra; half the training steps t are drawn from the steps DDIM visits.

Baseline (AvatarPoser spirit): `MLPRegressor`, a plain MLP from the flattened
sparse window to the current frame's pose.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from controllers.learned.networks import matrix_from_6d     # 6D as data._six: the first two columns

from .data import SPARSE_DIM
from .schedule import cosine_alpha_bar, ddim_timesteps
from .schedule import fixed_noise as _fixed_noise

TARGET_DIM = 126      # 6D rotations of the hips and the 20 joints below them on the Bandai Namco rig


@dataclass(frozen=True)
class DiffusionConfig:
    """window: frames per window; latent: width D; blocks: MLP blocks of the
    denoiser; cond_blocks: MLP blocks (no step embedding) encoding the sparse
    signal once per window, before it joins the denoiser (0: AGRoL's single
    linear projection); global_cond: width of a window-level MLP (the whole
    flattened sparse window -> two SiLU layers -> D, added to every frame's
    encoding; 0: none); diffusion_steps: T of training; sample_steps: DDIM
    steps online; noise_seed: seed of the fixed starting noise of sampling.
    Loss: x0 MSE over the window plus last_frame_weight x the MSE of the last
    (current) frame, the one shown online; lower_body_weight multiplies the
    terms of the lower-body joints (data.LOWER_BODY: the hips' rotation and the
    legs), the part the head and hands say least about (2: val
    lower-body error 4.09 -> 3.91 cm, MPJPE 2.48 -> 2.52, against 1).
    step_focus: the share of training
    steps t drawn from the DDIM steps sampling visits (the rest uniform over
    0..T-1): the same 1000-step model, trained harder where it is used.
    Training focuses on the 5 steps and the model runs 3 online (the
    trainer's online_steps): focusing on the 3 steps instead gave val MPJPE
    2.53 / lower body 4.18 cm against 2.48 / 4.09 (8000 iterations)."""

    window: int = 40
    latent: int = 160
    blocks: int = 4
    cond_blocks: int = 2
    global_cond: int = 384
    diffusion_steps: int = 1000
    sample_steps: int = 5
    noise_seed: int = 1234
    last_frame_weight: float = 4.0
    step_focus: float = 0.5
    lower_body_weight: float = 2.0
    target_dim: int = TARGET_DIM     # 6 x (the hips and the joints below them): set from the data


@dataclass(frozen=True)
class MLPConfig:
    """window: frames of sparse input; hidden: width; layers: hidden layers."""

    window: int = 40
    hidden: int = 512
    layers: int = 3
    target_dim: int = TARGET_DIM     # 6 x (the hips and the joints below them): set from the data


# ------------------------------------------------------------- the schedule
def fixed_noise(cfg: DiffusionConfig) -> np.ndarray:
    return _fixed_noise(cfg.window, cfg.target_dim, cfg.noise_seed)


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding [B, dim] of integer steps t [B]."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    a = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(a), torch.sin(a)], dim=-1)


# ------------------------------------------------------------- networks
class Block(nn.Module):
    def __init__(self, dim: int, seq: int, embed: bool = True):
        super().__init__()
        if embed:
            self.emb_fc = nn.Linear(dim, dim)
        self.norm0 = nn.LayerNorm(dim)
        self.fc_time = nn.Linear(seq, seq)
        self.norm1 = nn.LayerNorm(dim)
        self.fc = nn.Linear(dim, dim)

    def forward(self, x, emb=None):
        if emb is not None:
            x = x + self.emb_fc(F.silu(emb))[:, None, :]
        y = self.fc_time(self.norm0(x).transpose(1, 2)).transpose(1, 2)
        x = x + F.silu(y)
        return x + F.silu(self.fc(self.norm1(x)))


class DiffMLP(nn.Module):
    """x0-predicting denoiser: (x_t [B,W,126], t [B], c [B,W,54]) -> x0 [B,W,126]."""

    def __init__(self, cfg: DiffusionConfig):
        super().__init__()
        d = cfg.latent
        self.cfg = cfg
        self.x_in = nn.Linear(cfg.target_dim, d)
        self.c_in = nn.Linear(SPARSE_DIM, d)
        self.c_blocks = nn.ModuleList([Block(d, cfg.window, embed=False) for _ in range(cfg.cond_blocks)])
        g = cfg.global_cond
        self.g_fc = nn.ModuleList([nn.Linear(cfg.window * SPARSE_DIM, g), nn.Linear(g, g), nn.Linear(g, d)]) \
            if g else nn.ModuleList()
        self.t_fc0 = nn.Linear(d, d)
        self.t_fc1 = nn.Linear(d, d)
        self.blocks = nn.ModuleList([Block(d, cfg.window) for _ in range(cfg.blocks)])
        self.out = nn.Linear(d, cfg.target_dim)

    def embed(self, t):
        return self.t_fc1(F.silu(self.t_fc0(timestep_embedding(t, self.cfg.latent))))

    def encode(self, c):
        """The sparse signal's contribution [B, W, D], computed once per window."""
        h = self.c_in(c)
        if len(self.g_fc):
            g = F.silu(self.g_fc[0](c.reshape(c.shape[0], -1)))
            g = F.silu(self.g_fc[1](g))
            h = h + self.g_fc[2](g)[:, None, :]
        for b in self.c_blocks:
            h = b(h)
        return h

    def forward(self, x_t, t, c, hc=None):
        h = self.x_in(x_t) + (self.encode(c) if hc is None else hc)
        emb = self.embed(t)
        for b in self.blocks:
            h = b(h, emb)
        return self.out(h)


class MLPRegressor(nn.Module):
    """Sparse window [B,W,54] -> current frame pose [B,126]."""

    def __init__(self, cfg: MLPConfig):
        super().__init__()
        dims = [cfg.window * SPARSE_DIM] + [cfg.hidden] * cfg.layers
        self.hidden = nn.ModuleList([nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:])])
        self.out = nn.Linear(cfg.hidden, cfg.target_dim)

    def forward(self, c):
        h = c.reshape(c.shape[0], -1)
        for layer in self.hidden:
            h = F.silu(layer(h))
        return self.out(h)


# ------------------------------------------------------------- diffusion
class Diffusion:
    """Forward process and DDIM sampling around a DiffMLP (torch)."""

    def __init__(self, cfg: DiffusionConfig):
        self.cfg = cfg
        self.alpha_bar = torch.tensor(cosine_alpha_bar(cfg.diffusion_steps), dtype=torch.float32)

    def sample_t(self, n: int, generator) -> torch.Tensor:
        """Training steps: a share `step_focus` from the DDIM steps, the rest uniform."""
        t = torch.randint(0, self.cfg.diffusion_steps, (n,), generator=generator)
        ddim = torch.from_numpy(ddim_timesteps(self.cfg.diffusion_steps, self.cfg.sample_steps))
        pick = ddim[torch.randint(0, len(ddim), (n,), generator=generator)]
        focus = torch.rand(n, generator=generator) < self.cfg.step_focus
        return torch.where(focus, pick, t)

    def loss(self, pred, y, weight=None):
        """x0 MSE over the window + last_frame_weight x the last frame's MSE;
        weight [126] (optional) scales each target feature's squared error."""
        e = (pred - y) ** 2
        if weight is not None:
            e = e * weight
        return e.mean() + self.cfg.last_frame_weight * e[:, -1].mean()

    def q_sample(self, x0, t, noise):
        ab = self.alpha_bar[t][:, None, None]
        return ab.sqrt() * x0 + (1 - ab).sqrt() * noise

    @torch.no_grad()
    def sample(self, net: DiffMLP, c, noise=None):
        """DDIM (eta = 0) over ddim_timesteps from `noise` (default: the fixed
        noise) -> x0 [B, W, 126]."""
        b = c.shape[0]
        x = torch.from_numpy(fixed_noise(self.cfg)).to(c.device).expand(b, -1, -1) if noise is None else noise
        ts = ddim_timesteps(self.cfg.diffusion_steps, self.cfg.sample_steps)
        x0 = x
        hc = net.encode(c)
        for i, t in enumerate(ts):
            tt = torch.full((b,), int(t), dtype=torch.long, device=c.device)
            x0 = net(x, tt, c, hc)
            if i + 1 == len(ts):
                break
            ab, ab_prev = self.alpha_bar[t], self.alpha_bar[ts[i + 1]]
            eps = (x - ab.sqrt() * x0) / (1 - ab).sqrt()
            x = ab_prev.sqrt() * x0 + (1 - ab_prev).sqrt() * eps
        return x0


# ------------------------------------------------------------- feet in training
class FootKinematics(nn.Module):
    """The contact joints (toes) of predicted target features relative to the
    head joint, in the window's canonical frame: forward kinematics of the
    hips' rotation and the local rotations below it over the skeleton's
    offsets, differentiable, so a loss can charge the predicted feet for
    sliding. Online the hips are placed so that the head joint lands on the
    tracked head (data.poses_from_features), so the head's position plus this
    is where the predicted toes stand.

    forward(y [..., target_dim] denormalized features) -> [..., F, 3]."""

    def __init__(self, skeleton):
        super().__init__()
        from .data import joint_groups
        parents = np.asarray(skeleton.parents)
        j = skeleton.num_joints
        # target joint k is skeleton joint k + 1 (the hips, then the joints below them in order)
        self.parent = [-1] + [int(parents[k + 1]) - 1 for k in range(1, j - 1)]
        if any(p < 0 or p >= k for k, p in enumerate(self.parent) if k):
            raise ValueError("FootKinematics: the joints below the hips must follow their parents")
        self.register_buffer("offsets", torch.tensor(np.asarray(skeleton.offsets[1:], np.float32)))
        groups = joint_groups(skeleton)
        self.head = skeleton.index(groups["devices"][0]) - 1
        self.feet = [skeleton.index(n) - 1 for n in groups["feet"]]

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        m = matrix_from_6d(y.reshape(y.shape[:-1] + (-1, 6)))       # [..., J-1, 3, 3]
        rot, pos = [m[..., 0, :, :]], [torch.zeros_like(m[..., 0, :, 0])]
        for k in range(1, m.shape[-3]):
            p = self.parent[k]
            pos.append(pos[p] + (rot[p] @ self.offsets[k, :, None])[..., 0])
            rot.append(rot[p] @ m[..., k, :, :])
        head = pos[self.head]
        return torch.stack([pos[f] - head for f in self.feet], dim=-2)


def foot_slide_loss(toes_pred: torch.Tensor, toes_true: torch.Tensor, contacts: torch.Tensor,
                    fps: float, last_frame_weight: float = 0.0) -> torch.Tensor:
    """Mean squared error (m/s)^2 of the predicted toes' ground-plane velocity
    against the data's, over the frame steps where the data has the foot in
    contact at both ends; toes [B, W, F, 3] world-consistent (head + relative),
    contacts [B, W, F] bool. The window's last step (the frame shown online)
    counts 1 + last_frame_weight times."""
    vp = (toes_pred[:, 1:] - toes_pred[:, :-1])[..., [0, 2]] * fps
    vt = (toes_true[:, 1:] - toes_true[:, :-1])[..., [0, 2]] * fps
    both = (contacts[:, 1:] & contacts[:, :-1]).to(vp.dtype)
    w = torch.ones(both.shape[1], dtype=vp.dtype, device=vp.device)
    w[-1] += last_frame_weight
    both = both * w[None, :, None]
    return (both * ((vp - vt) ** 2).sum(-1)).sum() / both.sum().clamp(min=1.0)
