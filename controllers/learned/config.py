"""Training hyperparameters of learned motion matching (no torch here, so the
command line can show them without importing it)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TrainConfig:
    """Training hyperparameters (Holden's demo: batch 32, 500k iterations per
    network on a GPU; here fewer, larger batches and a faster decay fit a 2-core CPU).

    latent:            size of the latent vector (Holden: 32).
    hidden:            hidden units of every network (512).
    *_iterations:      optimizer steps of each stage.
    *_batch:           samples per step (decompressor: windows of 2 frames;
                       stepper: windows of `stepper_window` frames).
    lr, lr_final:      AdamW (amsgrad) learning rate, decayed exponentially
                       from lr to lr_final over each stage.
    weight_decay:      AdamW weight decay (Holden: 0.001).
    projector_noise:   query noise: feature + U(0, r) * N(0, 1) per sample (Holden: r = 1).
    seed:              seeds weight init, batches and noise (recorded in the weights).
    checkpoint_every:  iterations between checkpoints; log_every: between log lines.
    threads:           torch CPU threads.
    """

    latent: int = 32
    hidden: int = 512
    decompressor_iterations: int = 2000
    stepper_iterations: int = 2500
    projector_iterations: int = 8000
    decompressor_batch: int = 128
    stepper_batch: int = 64
    stepper_window: int = 20
    projector_batch: int = 256
    lr: float = 1e-3
    lr_final: float = 1e-4
    weight_decay: float = 1e-3
    projector_noise: float = 1.0
    seed: int = 1234
    checkpoint_every: int = 500
    log_every: int = 50
    threads: int = 2

    def iterations(self, stage: str) -> int:
        return getattr(self, f"{stage}_iterations")
