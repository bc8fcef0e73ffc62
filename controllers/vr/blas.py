"""One BLAS thread for the per-frame work.

numpy's OpenBLAS splits even tiny matrix products over all cores; on a busy
machine (2 cores shared with other processes here) the threads wait for each
other and a 0.3 ms product takes 10 ms. The controller's per-tick work runs
inside `single_thread()`, which limits the loaded BLAS libraries (numpy's
OpenBLAS, or MKL/BLIS where numpy uses them) to one thread and restores their
previous counts after. OpenMP pools (torch's) are left alone: the per-tick
work is numpy and numba only.

It goes through threadpoolctl, with one `ThreadpoolController` made on first
use and kept: `threadpoolctl.threadpool_limits` scans the process's loaded
libraries on every call (a sizeable share of the VR MLP's tick), the kept
controller's `limit` only sets and restores the counts. A BLAS library loaded
after that first use is not limited.
"""

from __future__ import annotations

import contextlib
import functools


@functools.lru_cache(maxsize=None)
def _blas_pools():
    """threadpoolctl's controller of the loaded BLAS libraries (made once)."""
    import numpy  # noqa: F401  (numpy's BLAS must be loaded before the look-up)
    from threadpoolctl import ThreadpoolController
    return ThreadpoolController().select(user_api="blas")


def blas_threads() -> list[int]:
    """The current thread count of each loaded BLAS library."""
    return [lib.num_threads for lib in _blas_pools().lib_controllers]


@contextlib.contextmanager
def single_thread():
    """Run the body with one BLAS thread."""
    with _blas_pools().limit(limits=1):
        yield
