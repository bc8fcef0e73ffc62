"""The diffusion schedule (numpy, shared by training and run-time inference)."""

from __future__ import annotations

import math

import numpy as np


def cosine_alpha_bar(steps: int, s: float = 0.008) -> np.ndarray:
    """[steps] cumulative alpha-bar of the cosine schedule (Nichol & Dhariwal
    2021), float64; betas clipped at 0.999 as in improved DDPM."""
    t = np.arange(steps + 1, dtype=np.float64) / steps
    f = np.cos((t + s) / (1 + s) * math.pi / 2) ** 2
    betas = np.clip(1 - f[1:] / f[:-1], 0, 0.999)
    return np.cumprod(1 - betas)


def ddim_timesteps(steps: int, sample_steps: int) -> np.ndarray:
    """The respaced timesteps, high to low (AGRoL's 'ddim5' of 1000: 800, 600, 400, 200, 0)."""
    return (np.arange(sample_steps)[::-1] * (steps // sample_steps)).astype(np.int64)


def fixed_noise(window: int, dim: int, seed: int) -> np.ndarray:
    """The fixed starting noise of sampling [window, dim]."""
    return np.random.default_rng(seed).standard_normal((window, dim)).astype(np.float32)
