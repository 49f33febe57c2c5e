"""2-D convolutions through oneDNN (Intel's deep-learning kernel library, the one PyTorch's CPU
convolutions run on), called through its C API with ctypes.

oneDNN's convolutions are JIT-compiled SIMD code; on the small-plane layers of CIFAR ResNets
they take about half the time of pynn's unfold + BLAS GEMM (benchmarks/speed.py). The library
comes from the `onednn-cpu-gomp` wheel (a dependency of pynn on x86-64 Linux, where that wheel
exists); elsewhere, or with the environment variable PYNN_DNNL=0, or for anything it does not
cover (float64, non-contiguous tensors, CuPy arrays), pynn's NumPy kernels run.

Tensors stay in Torch's NCHW / OIHW layouts (oneDNN's plain formats): no reordered copies.
oneDNN's per-call working memory (its "scratchpad") is handed in by the caller: a buffer of the
module that is dead during the call (finput or fgradInput), so what countUsedMemory reports
stays what the process holds. Threads: as many as the BLAS's (`torch.setnumthreads`,
threadpoolctl), set through OpenMP.
"""
import ctypes
import ctypes.util
import os
import site
import sys
import threading

import numpy as np

_F32 = 3
_ANY_TAG, _NCHW, _OIHW, _X = 1, 5, 5, 2
_FWD_TRAINING = 64
_DIRECT = 1
_Q_SRC, _Q_WEIGHTS, _Q_DST, _Q_SCRATCHPAD = 129, 131, 133, 136
_Q_DIFF_SRC, _Q_DIFF_WEIGHTS, _Q_DIFF_DST = 130, 132, 134
ARG_SRC, ARG_DST, ARG_WEIGHTS, ARG_BIAS = 1, 17, 33, 41
ARG_DIFF_SRC, ARG_DIFF_DST, ARG_DIFF_WEIGHTS, ARG_DIFF_BIAS = 129, 145, 161, 169
ARG_SCRATCHPAD = 80
_SCRATCHPAD_USER = 1

_Dims = ctypes.c_int64 * 12
_vp = ctypes.c_void_p
_pvp = ctypes.POINTER(_vp)


class _Arg(ctypes.Structure):
    _fields_ = [('arg', ctypes.c_int), ('memory', ctypes.c_void_p)]


_lib = None
_gomp = None
_engine = _vp()
_stream = _vp()
_state = {'loaded': False, 'on': False}
_local = threading.local()
_cache = {}
_cache_lock = threading.Lock()


def _library_paths():
    name = 'libdnnl.so.3'
    env = os.environ.get('PYNN_DNNL_LIBRARY')
    if env:
        yield env
    for base in (sys.prefix, sys.exec_prefix, getattr(site, 'USER_BASE', None) or ''):
        if base:
            yield os.path.join(base, 'lib', name)
    found = ctypes.util.find_library('dnnl')
    if found:
        yield found


def _bind(lib):
    i32 = ctypes.c_int
    sigs = {
        'dnnl_engine_create': [_pvp, i32, ctypes.c_size_t],
        'dnnl_stream_create': [_pvp, _vp, ctypes.c_uint],
        'dnnl_memory_desc_create_with_tag': [_pvp, i32, _Dims, i32, i32],
        'dnnl_memory_desc_destroy': [_vp],
        'dnnl_memory_desc_equal': [_vp, _vp],
        'dnnl_memory_desc_get_size': [_vp],
        'dnnl_primitive_attr_create': [_pvp],
        'dnnl_primitive_attr_set_scratchpad_mode': [_vp, i32],
        'dnnl_primitive_attr_destroy': [_vp],
        'dnnl_convolution_forward_primitive_desc_create':
            [_pvp, _vp, i32, i32, _vp, _vp, _vp, _vp, _Dims, _Dims, _Dims, _Dims, _vp],
        'dnnl_convolution_backward_data_primitive_desc_create':
            [_pvp, _vp, i32, _vp, _vp, _vp, _Dims, _Dims, _Dims, _Dims, _vp, _vp],
        'dnnl_convolution_backward_weights_primitive_desc_create':
            [_pvp, _vp, i32, _vp, _vp, _vp, _vp, _Dims, _Dims, _Dims, _Dims, _vp, _vp],
        'dnnl_primitive_desc_query_md': [_vp, i32, i32],
        'dnnl_primitive_desc_destroy': [_vp],
        'dnnl_primitive_create': [_pvp, _vp],
        'dnnl_memory_create': [_pvp, _vp, _vp, _vp],
        'dnnl_memory_set_data_handle': [_vp, _vp],
        'dnnl_primitive_execute': [_vp, _vp, i32, _vp],
        'dnnl_stream_wait': [_vp],
        'dnnl_reorder_primitive_desc_create': [_pvp, _vp, _vp, _vp, _vp, _vp],
        'dnnl_sgemm': [ctypes.c_char, ctypes.c_char, ctypes.c_int64, ctypes.c_int64,
                       ctypes.c_int64, ctypes.c_float, _vp, ctypes.c_int64, _vp, ctypes.c_int64,
                       ctypes.c_float, _vp, ctypes.c_int64],
    }
    for name, args in sigs.items():
        f = getattr(lib, name)
        f.argtypes = args
        f.restype = i32
    lib.dnnl_primitive_desc_query_md.restype = _vp
    lib.dnnl_memory_desc_get_size.restype = ctypes.c_size_t


def _load():
    global _lib, _gomp
    _state['loaded'] = True
    if os.environ.get('PYNN_DNNL', '1').strip().lower() in ('0', 'false', 'no', 'off'):
        return
    for path in _library_paths():
        try:
            lib = ctypes.CDLL(path)
            _bind(lib)
            gomp = ctypes.CDLL('libgomp.so.1')
        except (OSError, AttributeError):
            continue
        if (lib.dnnl_engine_create(ctypes.byref(_engine), 1, 0) != 0
                or lib.dnnl_stream_create(ctypes.byref(_stream), _engine, 1) != 0):
            continue
        gomp.omp_set_num_threads.argtypes = [ctypes.c_int]
        _lib, _gomp = lib, gomp
        _state['on'] = True
        return


def available():
    """Whether oneDNN's convolutions are in use (see the module's docstring)."""
    if not _state['loaded']:
        _load()
    return _state['on'] and not getattr(_local, 'off', False)


class disabled:
    """A context in which this thread runs pynn's NumPy kernels (convolutions, and NumPy's
    BLAS for their GEMMs and Linear's)."""

    def __enter__(self):
        self.old = getattr(_local, 'off', False)
        _local.off = True
        return self

    def __exit__(self, *exc):
        _local.off = self.old


def serves(*arrays):
    """Whether oneDNN runs a convolution of these arrays: all NumPy float32, C-contiguous."""
    if not available():
        return False
    for a in arrays:
        if a is not None and (type(a) is not np.ndarray or a.dtype != np.float32
                              or not a.flags.c_contiguous):
            return False
    return True


def _threads():
    from .. import threads
    if not _state['loaded']:
        _load()
    if _gomp is None:
        raise RuntimeError('oneDNN is not available here (pynn.nn.dnnl.available())')
    n = threads.blas_threads() or 1
    if getattr(_local, 'threads', None) != n:   # OpenMP's count is per calling thread
        _gomp.omp_set_num_threads(n)
        _local.threads = n
    return n


def _check(status, what):
    if status != 0:
        raise RuntimeError('oneDNN %s failed (status %d)' % (what, status))


def _md(shape, tag):
    m = _vp()
    _check(_lib.dnnl_memory_desc_create_with_tag(ctypes.byref(m), len(shape), _Dims(*shape),
                                                 _F32, tag), 'memory descriptor')
    return m


class _Step:
    """A oneDNN primitive and where each of its arguments lives: a caller's array (by name)
    or an offset into the call's working memory."""

    def __init__(self, pd, roles):
        prim = _vp()
        _check(_lib.dnnl_primitive_create(ctypes.byref(prim), pd), 'primitive')
        self.prim = prim
        self.mems, self.where, args = [], [], []
        for arg, md, where in roles:
            m = _vp()
            _check(_lib.dnnl_memory_create(ctypes.byref(m), md, _engine, None), 'memory')
            self.mems.append(m)
            self.where.append(where)
            args.append(_Arg(arg, m.value))
        self.args = (_Arg * len(args))(*args)

    def run(self, ptrs, base):
        for m, w in zip(self.mems, self.where):
            p = ptrs[w] if isinstance(w, str) else base + w
            _check(_lib.dnnl_memory_set_data_handle(m, p), 'set data handle')
        _check(_lib.dnnl_primitive_execute(self.prim, _stream, len(self.mems), self.args),
               'execute')


def _size(md):
    return -(-_lib.dnnl_memory_desc_get_size(md) // 64) * 64


class _Plan:
    """One pass (forward, input or weight gradient) as a list of steps: the reorders of
    Torch's plain layouts into the blocked ones oneDNN's kernels chose, the convolution, and
    the reorders back; the blocked copies and every step's scratchpad in the working memory
    the caller hands in (`elements` float32)."""

    def __init__(self, attr):
        self.attr = attr
        self.steps = []
        self.bytes = 0
        self.scratch = 0   # bytes of the biggest scratchpad (steps run one after another)
        self.lock = threading.Lock()

    def place(self, md):
        off = self.bytes
        self.bytes += _size(md)
        return off

    def step(self, pd, roles):
        sp = _lib.dnnl_primitive_desc_query_md(pd, _Q_SCRATCHPAD, 0)
        n = _lib.dnnl_memory_desc_get_size(sp) if sp else 0
        if n:
            roles = roles + [(ARG_SCRATCHPAD, sp, 'scratchpad')]
            self.scratch = max(self.scratch, -(-n // 64) * 64)
        self.steps.append(_Step(pd, roles))

    def reorder(self, src_md, src_where, dst_md, dst_where):
        rpd = _vp()
        _check(_lib.dnnl_reorder_primitive_desc_create(ctypes.byref(rpd), src_md, _engine, dst_md,
                                                       _engine, self.attr), 'reorder')
        self.step(rpd, [(ARG_SRC, src_md, src_where), (ARG_DST, dst_md, dst_where)])
        _lib.dnnl_primitive_desc_destroy(rpd)

    def into(self, chosen, plain, name, before):
        """Where the kernel reads `name` (plain layout): the caller's array, or a blocked copy
        reordered into the working memory first (before=True: an input of the kernel)."""
        if _lib.dnnl_memory_desc_equal(chosen, plain):
            return name
        off = self.place(chosen)
        if before:
            self.reorder(plain, name, chosen, off)
        return off

    @property
    def elements(self):
        return (self.bytes + self.scratch) // 4

    def run(self, ptrs, work):
        base = work.ctypes.data if work is not None else 0
        ptrs = dict(ptrs, scratchpad=base + self.bytes)
        with self.lock:
            for s in self.steps:
                s.run(ptrs, base)
            _check(_lib.dnnl_stream_wait(_stream), 'stream wait')


def _plans(key):
    """The forward, input-gradient and weight-gradient plans of a convolution (built once
    per shape, thread count and bias), or None where oneDNN declines the convolution."""
    with _cache_lock:
        if key in _cache:
            return _cache[key]
    try:
        out = _build_plans(key)
    except RuntimeError:
        out = None
    with _cache_lock:
        if len(_cache) > 512:
            _cache.clear()
        _cache[key] = out
    return out


def _build_plans(key):
    B, C, H, W, O, kH, kW, dH, dW, padH, padW, oH, oW, bias, _ = key
    src, wei, dst = _md((B, C, H, W), _NCHW), _md((O, C, kH, kW), _OIHW), _md((B, O, oH, oW), _NCHW)
    asrc, awei, adst = (_md((B, C, H, W), _ANY_TAG), _md((O, C, kH, kW), _ANY_TAG),
                        _md((B, O, oH, oW), _ANY_TAG))
    b = _md((O,), _X) if bias else None
    attr = _vp()
    _check(_lib.dnnl_primitive_attr_create(ctypes.byref(attr)), 'attributes')
    _check(_lib.dnnl_primitive_attr_set_scratchpad_mode(attr, _SCRATCHPAD_USER), 'attributes')
    strides, dil = _Dims(dH, dW), _Dims(0, 0)
    pl = _Dims(padH, padW)
    pr = _Dims((oH - 1) * dH + kH - H - padH, (oW - 1) * dW + kW - W - padW)
    q = _lib.dnnl_primitive_desc_query_md

    fpd = _vp()
    _check(_lib.dnnl_convolution_forward_primitive_desc_create(
        ctypes.byref(fpd), _engine, _FWD_TRAINING, _DIRECT, asrc, awei, b, adst, strides, dil,
        pl, pr, attr), 'convolution forward')
    f = _Plan(attr)
    sm, wm, dm = q(fpd, _Q_SRC, 0), q(fpd, _Q_WEIGHTS, 0), q(fpd, _Q_DST, 0)
    # the input is always copied, first in the working memory (the module's finput): the
    # weight gradient reads it there, as THNN's reads the unfolded input from finput (the
    # input itself may be overwritten by then: optnet plans on that)
    xs = f.place(sm)
    f.reorder(src, 'x', sm, xs)
    ws, ys = f.into(wm, wei, 'w', True), f.into(dm, dst, 'y', False)
    f.step(fpd, [(ARG_SRC, sm, xs), (ARG_WEIGHTS, wm, ws)] + ([(ARG_BIAS, b, 'b')] if bias else [])
           + [(ARG_DST, dm, ys)])
    if ys != 'y':
        f.reorder(dm, ys, dst, 'y')

    dpd = _vp()
    _check(_lib.dnnl_convolution_backward_data_primitive_desc_create(
        ctypes.byref(dpd), _engine, _DIRECT, asrc, awei, adst, strides, dil, pl, pr, fpd, attr),
        'convolution backward data')
    d = _Plan(attr)
    gsm, wm2, gdm = q(dpd, _Q_DIFF_SRC, 0), q(dpd, _Q_WEIGHTS, 0), q(dpd, _Q_DIFF_DST, 0)
    gos, ws2, gxs = d.into(gdm, dst, 'go', True), d.into(wm2, wei, 'w', True), d.into(gsm, src, 'gx', False)
    d.step(dpd, [(ARG_DIFF_DST, gdm, gos), (ARG_WEIGHTS, wm2, ws2), (ARG_DIFF_SRC, gsm, gxs)])
    if gxs != 'gx':
        d.reorder(gsm, gxs, src, 'gx')

    wpd = _vp()
    _check(_lib.dnnl_convolution_backward_weights_primitive_desc_create(
        ctypes.byref(wpd), _engine, _DIRECT, asrc, awei, b, adst, strides, dil, pl, pr, fpd, attr),
        'convolution backward weights')
    w_ = _Plan(attr)
    w_.bytes = _size(sm)   # the forward's copy of the input, where the forward left it
    sm3, gwm, gdm3 = q(wpd, _Q_SRC, 0), q(wpd, _Q_DIFF_WEIGHTS, 0), q(wpd, _Q_DIFF_DST, 0)
    if _lib.dnnl_memory_desc_equal(sm3, sm):
        xs3 = 0
    else:
        xs3 = w_.place(sm3)
        w_.reorder(sm, 0, sm3, xs3)
    gos3, gws = w_.into(gdm3, dst, 'go', True), w_.into(gwm, wei, 'gw', False)
    w_.step(wpd, [(ARG_SRC, sm3, xs3), (ARG_DIFF_DST, gdm3, gos3), (ARG_DIFF_WEIGHTS, gwm, gws)]
            + ([(ARG_DIFF_BIAS, b, 'gb')] if bias else []))
    if gws != 'gw':
        w_.reorder(gwm, gws, wei, 'gw')

    for pd in (fpd, dpd, wpd):
        _lib.dnnl_primitive_desc_destroy(pd)
    for m in (src, wei, dst, asrc, awei, adst, b):
        if m is not None:
            _lib.dnnl_memory_desc_destroy(m)
    return {'forward': f, 'input': d, 'weight': w_}


# --------------------------------------------------------------------------- GEMM
def _operand(a, rows, cols):
    """(b'N' or b'T', leading dimension) of a 2-D float32 operand stored row- or column-major,
    or None."""
    s0, s1 = a.strides
    if (s1 == 4 or cols == 1) and s0 % 4 == 0 and (rows == 1 or s0 >= 4 * cols):
        return b'N', max(s0 // 4 if rows > 1 else cols, cols, 1)
    if (s0 == 4 or rows == 1) and s1 % 4 == 0 and (cols == 1 or s1 >= 4 * rows):
        return b'T', max(s1 // 4 if cols > 1 else rows, rows, 1)
    return None


def matmul(a, b, out, alpha=1.0, beta=0.0):
    """out = alpha * (a @ b) + beta * out (beta 0: out's content is not read) on oneDNN's
    GEMM, for 2-D float32 NumPy arrays; False (nothing done) where it does not apply. Used for
    the GEMMs of pynn's own convolution and linear kernels, so that with oneDNN's
    convolutions all the parallel work of a step runs on one thread pool (OpenBLAS's and
    OpenMP's pools, alternating, each spin-waits on the cores the other needs)."""
    if not available():
        return False
    for t in (a, b, out):
        if type(t) is not np.ndarray or t.dtype != np.float32 or t.ndim != 2:
            return False
    M, K = a.shape
    N = b.shape[1]
    if b.shape[0] != K or out.shape != (M, N) or M == 0 or N == 0 or K == 0:
        return False
    oc = _operand(out, M, N)
    oa, ob = _operand(a, M, K), _operand(b, K, N)
    if oc is None or oc[0] != b'N' or oa is None or ob is None:
        return False
    if np.may_share_memory(out, a) or np.may_share_memory(out, b):
        return False
    _threads()
    _check(_lib.dnnl_sgemm(oa[0], ob[0], M, N, K, alpha, a.ctypes.data, oa[1], b.ctypes.data,
                           ob[1], beta, out.ctypes.data, oc[1]), 'sgemm')
    return True


# --------------------------------------------------------------------------- convolutions
def _key(x, w4, out_hw, stride, pad, bias):
    B, C, H, W = x.shape
    O, _, kH, kW = w4.shape
    return (B, C, H, W, O, kH, kW, stride[0], stride[1], pad[0], pad[1], out_hw[0], out_hw[1],
            bias, _threads())


def scratch_elements(x, w4, out_hw, stride, pad, bias, kind):
    """float32 elements of working memory the pass of `kind` ('forward', 'input', 'weight')
    needs: blocked copies of its tensors and oneDNN's scratchpad; None where oneDNN does not
    take the convolution."""
    p = _plans(_key(x, w4, out_hw, stride, pad, bias))
    return None if p is None else p[kind].elements


def forward(x, w4, bias, out, stride, pad, work):
    """out (B, O, oH, oW) = conv2d(x (B, C, H, W), w4 (O, C, kH, kW)) + bias (or None)."""
    p = _plans(_key(x, w4, out.shape[2:], stride, pad, bias is not None))['forward']
    p.run({'x': x.ctypes.data, 'w': w4.ctypes.data, 'y': out.ctypes.data,
           'b': bias.ctypes.data if bias is not None else 0}, work)


def backward_input(go, w4, gx, stride, pad, work, bias):
    """gx (B, C, H, W) = the gradient of the input for gradOutput go (B, O, oH, oW)."""
    p = _plans(_key(gx, w4, go.shape[2:], stride, pad, bias))['input']
    p.run({'go': go.ctypes.data, 'w': w4.ctypes.data, 'gx': gx.ctypes.data}, work)


def backward_weight(x, go, gw4, gbias, stride, pad, work, bias):
    """gw4 (O, C, kH, kW) = dL/dw, gbias (O,) = dL/db (overwritten; bias=False: no gbias),
    for the input of shape x.shape whose copy the forward left in `work` (the same working
    memory, untouched since: only x's shape is read here)."""
    p = _plans(_key(x, gw4, go.shape[2:], stride, pad, bias))['weight']
    p.run({'go': go.ctypes.data, 'gw': gw4.ctypes.data,
           'gb': gbias.ctypes.data if bias else 0}, work)
