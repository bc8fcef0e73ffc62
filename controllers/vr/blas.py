"""One BLAS thread for the per-frame work.

numpy's OpenBLAS splits even tiny matrix products over all cores; on a busy
machine (2 cores shared with other processes here) the threads wait for each
other and a 0.3 ms product takes 10 ms. The controller's per-tick work runs
inside `single_thread()`, which sets OpenBLAS to one thread and restores the
previous count after (threadpoolctl when installed, else OpenBLAS's own
set/get_num_threads found in the loaded library; a no-op where neither works).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools


@functools.lru_cache(maxsize=None)
def _openblas():
    """(get, set) of the OpenBLAS numpy loaded, or None."""
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if "openblas" in line.lower() and ".so" in line}
    except OSError:
        return None
    for path in sorted(paths):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for get_name, set_name in (("scipy_openblas_get_num_threads64_", "scipy_openblas_set_num_threads64_"),
                                   ("openblas_get_num_threads64_", "openblas_set_num_threads64_"),
                                   ("openblas_get_num_threads", "openblas_set_num_threads")):
            get_, set_ = getattr(lib, get_name, None), getattr(lib, set_name, None)
            if get_ is not None and set_ is not None:
                get_.restype = ctypes.c_int
                set_.argtypes = [ctypes.c_int]
                return get_, set_
    return None


@functools.lru_cache(maxsize=None)
def _threadpoolctl():
    try:
        from threadpoolctl import threadpool_limits
        return threadpool_limits
    except ImportError:
        return None


@contextlib.contextmanager
def single_thread():
    """Run the body with one BLAS thread."""
    threadpool_limits = _threadpoolctl()
    if threadpool_limits is not None:
        with threadpool_limits(limits=1, user_api="blas"):
            yield
        return
    import numpy  # noqa: F401  (the library must be loaded before it is looked up)
    fns = _openblas()
    if fns is None:
        yield
        return
    get_, set_ = fns
    before = get_()
    if before != 1:
        set_(1)
    try:
        yield
    finally:
        if before != 1:
            set_(before)
