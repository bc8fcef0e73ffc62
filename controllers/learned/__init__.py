"""Learned motion matching (Holden, Kanoun, Perepichka, Popa, SIGGRAPH 2020).

Motion matching's database replaced by three small networks trained on it:
a decompressor (features + latent -> pose), a stepper (advance features and
latent by one tick) and a projector (query -> nearest state), so that the
run time holds a few MB of weights instead of the database.

    controllers.learned.train       train the networks (torch), write a weights file
    controllers.learned.controller  LearnedSource / LearnedController (numpy + numba, no torch)
    controllers.learned.evaluate    memory, latency, reconstruction, drift, projector agreement
    controllers.learned.weights     the weights file format and the numpy network evaluation
    controllers.learned.cli         `anim train lmm` wiring

Importing this package is light (no torch): only train.py and evaluate.py's
compressor need torch.
"""

import os as _os

# torch's OpenMP threads spin while waiting; on a shared machine (other
# processes busy) that makes 2 threads ~10x slower than 1. Passive waiting
# costs nothing alone and avoids it. Takes effect if torch is not imported yet.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from .controller import DEFAULT_WEIGHTS, LearnedController, LearnedSource  # noqa: E402
from .weights import WeightsError  # noqa: E402

__all__ = ["LearnedController", "LearnedSource", "WeightsError", "DEFAULT_WEIGHTS"]
