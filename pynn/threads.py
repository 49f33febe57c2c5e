"""torch.setnumthreads / torch.getnumthreads: the threads of NumPy's BLAS.

Torch7 sets its OpenMP and BLAS thread count here; pynn's parallel work is the BLAS calls
(GEMMs of convolutions and linear layers) and oneDNN's convolutions (pynn.nn.dnnl), so these
read and set the thread count of the BLAS library NumPy loaded (OpenBLAS, MKL, BLIS), through
threadpoolctl, and oneDNN's OpenMP threads follow it.
"""
import operator

_blas = None


def _controllers():
    """threadpoolctl's controllers of the BLAS libraries loaded with NumPy (found once)."""
    global _blas
    if _blas is None:
        import numpy  # noqa: F401  (its BLAS must be loaded before the search)
        from threadpoolctl import ThreadpoolController
        try:
            _blas = ThreadpoolController().select(user_api='blas').lib_controllers
        except Exception:  # pragma: no cover - a library threadpoolctl cannot inspect
            _blas = []     # the thread count is then unknown; nothing else depends on it
    return _blas


def blas_threads():
    """The thread count NumPy's BLAS runs with now, or None where no BLAS could be found
    (e.g. Apple's Accelerate, which threadpoolctl cannot see)."""
    libs = _controllers()
    return max(lib.num_threads for lib in libs) if libs else None


def getnumthreads():
    """torch.getnumthreads(): the threads of NumPy's BLAS (1 where it cannot be read)."""
    return blas_threads() or 1


def setnumthreads(n):
    """torch.setnumthreads(n): run NumPy's BLAS on n threads (n >= 1)."""
    try:
        count = None if isinstance(n, bool) else operator.index(n)
    except TypeError:
        count = None
    if count is None or count < 1:
        raise ValueError('setnumthreads: expected a thread count (an integer >= 1), got %r'
                         % (n,))
    for lib in _controllers():
        lib.set_num_threads(count)


def limited(n):
    """A context running NumPy's BLAS on n threads (restored on exit); n = 0 or None: leave
    them as they are."""
    import contextlib
    if not n:
        return contextlib.nullcontext()
    _controllers()   # NumPy's BLAS loaded before threadpoolctl looks
    from threadpoolctl import threadpool_limits
    return threadpool_limits(limits=n, user_api='blas')
