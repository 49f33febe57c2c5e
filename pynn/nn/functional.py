"""Array-level kernels for the spatial layers (THNN's algorithms on NumPy/CuPy arrays).

Everything here works on plain ndarrays (NumPy or CuPy), writes into arrays the caller
owns (`out=`), and allocates at most small or chunk-sized temporaries, so the modules
in conv.py / pooling.py (and a later cudnn flavour) can share them.

Layouts follow THNN: images are (B, C, H, W); the unfolded input `cols` of
SpatialConvolutionMM is (B, C*kH*kW, oH*oW), row index c*kH*kW + ky*kW + kx. The
convolution kernels take `cols` with any strides; laid out "K-major" (strides L, B*L, 1 in
elements, see cols_matrix) the whole batch is one (C*kH*kW) x (B*oH*oW) matrix and each
pass is a single GEMM for the batch (a GEMM per image otherwise).
Max-pooling indices are 1-based flat positions y*W + x + 1 inside each plane
(TH_INDEX_BASE = 1); 0 marks a window that saw no element.
"""
import functools
import itertools

import numpy as np

from ..backend import array_module
from . import dnnl

# Chunked kernels keep their temporaries at about 1/_CHUNK_DIV of the arrays they touch,
# but never split below _CHUNK_MIN elements (tiny chunks cost Python overhead).
_CHUNK_DIV = 32
_CHUNK_MIN = 1 << 12
_POOL_BLOCK = 1 << 18


# NumPy's ufuncs on strided (non-contiguous) operands set up iteration buffers of
# np.getbufsize() elements per operand (8192 by default, ~200 KB per call) even when no
# cast is needed. Our kernels never cast, so they run with small buffers: same speed, and
# no allocation that does not scale with the data.
_BUFSIZE = 256


def _small_buffers(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kw):
        if np.getbufsize() == _BUFSIZE:  # nested kernel call: already set
            return fn(*args, **kw)
        old = np.setbufsize(_BUFSIZE)
        try:
            return fn(*args, **kw)
        finally:
            np.setbufsize(old)
    return wrapper


def _matmul(xp, a, b, out):
    """out = a @ b: on oneDNN's GEMM where it serves (see dnnl.matmul), else xp.matmul."""
    if xp is not np or not dnnl.matmul(a, b, out):
        xp.matmul(a, b, out=out)


# --------------------------------------------------------------------------- sizes
def conv_output_size(iH, iW, kH, kW, dH, dW, padH, padW):
    """SpatialConvolutionMM's output size (C integer division, as THNN)."""
    return _cdiv(iH + 2 * padH - kH, dH) + 1, _cdiv(iW + 2 * padW - kW, dW) + 1


def pool_output_size(iH, iW, kH, kW, dH, dW, padH, padW, ceil_mode):
    """THNN's Spatial{Max,Average}Pooling output size.

    floor/ceil of (i - k + 2*pad)/d, plus 1; then, only when some padding is set (padW or
    padH, for both dims), drop a last window that would start in the bottom/right padding.
    (PyTorch applies that last rule in ceil mode whatever the padding; with padW = padH = 0,
    ceil mode and k < d the two can differ: THNN keeps a window that lies outside the image.)
    """
    rnd = _ceil_div if ceil_mode else _floor_div
    oH = rnd(iH - kH + 2 * padH, dH) + 1
    oW = rnd(iW - kW + 2 * padW, dW) + 1
    if padW or padH:
        if (oH - 1) * dH >= iH + padH:
            oH -= 1
        if (oW - 1) * dW >= iW + padW:
            oW -= 1
    return oH, oW


def _cdiv(a, b):  # C's truncating integer division
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def _floor_div(a, b):
    return a // b


def _ceil_div(a, b):
    return -((-a) // b)


def window_range(o, k_off, d, pad, size):
    """Output positions [lo, hi) whose input position o*d - pad + k_off lies in [0, size),
    and the input position of lo. Empty when hi <= lo."""
    lo = max(0, _ceil_div(pad - k_off, d))
    hi = min(o, _floor_div(size - 1 + pad - k_off, d) + 1)
    return lo, hi, lo * d - pad + k_off


def _in_slice(start, n, d):
    return slice(start, start + (n - 1) * d + 1, d)


def _offsets(kH, kW, dH, dW, padH, padW, iH, iW, oH, oW):
    """For each kernel offset (ky, kx) in THNN's order: the output region it touches and the
    matching strided input region; offsets that touch nothing are skipped."""
    rows = [window_range(oH, ky, dH, padH, iH) for ky in range(kH)]
    cols = [window_range(oW, kx, dW, padW, iW) for kx in range(kW)]
    for ky, (ylo, yhi, iy) in enumerate(rows):
        if yhi <= ylo:
            continue
        for kx, (xlo, xhi, ix) in enumerate(cols):
            if xhi <= xlo:
                continue
            yield (ky, kx, slice(ylo, yhi), slice(xlo, xhi),
                   _in_slice(iy, yhi - ylo, dH), _in_slice(ix, xhi - xlo, dW), iy, ix)


def _window_view(x, ky, kx, oH, oW, dH, dW):
    """x's elements under kernel offset (ky, kx) of every window: (B, C, oH, oW), strided."""
    return x[:, :, ky:ky + (oH - 1) * dH + 1:dH, kx:kx + (oW - 1) * dW + 1:dW]


def _window_views(x, kH, kW, oH, oW, dH, dW):
    """_window_view of every kernel offset, in THNN's order (rows, then columns)."""
    for ky in range(kH):
        for kx in range(kW):
            yield _window_view(x, ky, kx, oH, oW, dH, dW)


def _index_grid(xp, iy, ny, ix, nx, dH, dW, iW):
    """1-based flat indices (ny, nx) of the input positions iy + a*dH, ix + b*dW."""
    r = (xp.arange(ny, dtype=np.int64) * dH + iy) * iW
    c = xp.arange(nx, dtype=np.int64) * dW + (ix + 1)
    return r[:, None] + c[None, :]


def _chunks(B, C, plane, total=None, floor=0):
    """Split (B, C) planes into blocks (b0, b1, c0, c1) of bounded size: whole batch items
    when a sample is small, else channel ranges of one sample. `floor`: elements a block may
    hold whatever the total (kernels with many passes per block amortise their calls)."""
    total = B * C * plane if total is None else total
    limit = max(_CHUNK_MIN, total // _CHUNK_DIV, floor)
    per = max(1, limit // max(plane, 1))
    if per >= C:
        nb = max(1, per // C)
        for b0 in range(0, B, nb):
            yield b0, min(B, b0 + nb), 0, C
    else:
        for b in range(B):
            for c0 in range(0, C, per):
                yield b, b + 1, c0, min(C, c0 + per)


def _masked_add(xp, dst, src, mask):
    if xp is np:
        np.add(dst, src, out=dst, where=mask)
    else:  # CuPy ufuncs take no where=
        dst += xp.where(mask, src, 0)


# --------------------------------------------------------------------------- im2col
def _view_reshape(a, shape):
    """a.reshape(shape) as a view of a's memory; None when that needs a copy."""
    try:
        return a.reshape(shape, copy=False)
    except TypeError:  # pragma: no cover - array modules without reshape(copy=)
        r = a.reshape(shape)
        return r if r.size == 0 or array_module(a).shares_memory(r, a) else None
    except ValueError:
        return None


def view(a, shape):
    """a.reshape(shape) that must be a view of a's memory (results are written into it):
    ValueError when the layout needs a copy (a non-contiguous output or gradient tensor)."""
    v = _view_reshape(a, tuple(shape))
    if v is None:
        raise ValueError('a tensor of size %s and strides %s cannot be viewed as %s: '
                         'it must be contiguous' % (a.shape, a.strides, tuple(shape)))
    return v


def _flat_planes(a):
    """A (B, C, H*W) view of a (B, C, H, W) array whose planes are contiguous, else None."""
    it = a.itemsize
    if a.strides[3] != it or a.strides[2] != a.shape[3] * it:
        return None
    return a.reshape(a.shape[0], a.shape[1], a.shape[2] * a.shape[3])


def _same_width(x, cols, kH, kW, dH, dW):
    """Stride 1 and oW == iW, and each (oH, oW) plane of cols is contiguous: then a kernel
    offset is one constant shift of the flat plane."""
    it = cols.itemsize
    return (dH == 1 and dW == 1 and x.shape[3] == cols.shape[-1]
            and (cols.shape[-1] == 1 or cols.strides[-1] == it)
            and (cols.shape[-2] == 1 or cols.strides[-2] == cols.shape[-1] * it))


def _planes5(cols):
    """(B, C, kH, kW, oH*oW) view of a (B, C, kH, kW, oH, oW) cols with contiguous planes."""
    B, C, kH, kW, oH, oW = cols.shape
    v = _view_reshape(cols, (B, C, kH, kW, oH * oW))
    if v is None:  # pragma: no cover - _same_width guarantees contiguous planes
        raise ValueError('cols planes are not contiguous')
    return v


def _unfolded6(cols, C, kH, kW, oH, oW):
    """(B, C, kH, kW, oH, oW) view of a (B, C*kH*kW, oH*oW) cols array (any strides)."""
    v = _view_reshape(cols, (cols.shape[0], C, kH, kW, oH, oW))
    if v is None:  # pragma: no cover - splitting axes never needs a copy
        raise ValueError('cannot view cols as (B, C, kH, kW, oH, oW)')
    return v


@_small_buffers
def im2col(x, cols, kH, kW, dH, dW, padH, padW):
    """THNN's unfolded_copy for a whole batch: x (B, C, iH, iW) -> cols (B, C, kH, kW, oH, oW).

    One strided slice copy per kernel offset (plus zero fills of the padding strips); no
    temporaries. For stride 1 with oW == iW ("same" width) each offset is a single long
    copy of the flat plane, then the wrapped border columns are zeroed."""
    xp = array_module(cols)
    B, C, iH, iW = x.shape
    oH, oW = cols.shape[-2:]
    if kH == kW == 1 and padH == padW == 0:   # 1x1 (ResNet's strided shortcut): a subsample
        xp.copyto(cols[:, :, 0, 0], _window_view(x, 0, 0, oH, oW, dH, dW))
        return
    x3 = _flat_planes(x) if _same_width(x, cols, kH, kW, dH, dW) else None
    if x3 is None and _by_phases(kH, kW, dH, dW):
        return _im2col_phases(xp, x, cols, kH, kW, dH, dW, padH, padW)
    c5 = None if x3 is None else _planes5(cols)
    for ky in range(kH):
        ylo, yhi, iy = window_range(oH, ky, dH, padH, iH)
        for kx in range(kW):
            xlo, xhi, ix = window_range(oW, kx, dW, padW, iW)
            dst = cols[:, :, ky, kx]
            if yhi <= ylo or xhi <= xlo:
                dst.fill(0)
                continue
            if x3 is not None:
                s = (ky - padH) * iW + (kx - padW)
                j0, j1 = max(ylo * oW, -s), min(yhi * oW, iH * iW - s)
                d = c5[:, :, ky, kx]
                if ylo > 0:
                    d[:, :, :ylo * oW].fill(0)
                if yhi < oH:
                    d[:, :, yhi * oW:].fill(0)
                xp.copyto(d[:, :, j0:j1], x3[:, :, j0 + s:j1 + s])
            else:
                if ylo > 0:
                    dst[:, :, :ylo].fill(0)
                if yhi < oH:
                    dst[:, :, yhi:].fill(0)
                xp.copyto(dst[:, :, ylo:yhi, xlo:xhi],
                          x[:, :, _in_slice(iy, yhi - ylo, dH), _in_slice(ix, xhi - xlo, dW)])
            if xlo > 0:
                dst[:, :, ylo:yhi, :xlo].fill(0)
            if xhi < oW:
                dst[:, :, ylo:yhi, xhi:].fill(0)


def _by_phases(kH, kW, dH, dW):
    """Strided im2col/col2im through _PhasePlanes pays when the kernel has many offsets
    (alexnet's 11x11/4: 121 strided passes); up to 3x3 direct strided copies are faster."""
    return (dH > 1 or dW > 1) and kH * kW > 9


def _im2col_phases(xp, x, cols, kH, kW, dH, dW, padH, padW):
    """im2col for a stride above 1: each chunk of planes goes once into zero-padded
    _PhasePlanes, where every kernel offset is a block of contiguous rows (instead of rows
    read with a stride)."""
    oH, oW = cols.shape[-2:]
    for b0, b1, c0, c1, _, pp in _phase_chunks(xp, x.dtype, x.shape, oH, oW, kH, kW, dH, dW,
                                               padH, padW, 0, cols.size * 4):   # ~1/8 of cols
        pp.load(x[b0:b1, c0:c1])
        for ky, kx in pp.offsets():
            xp.copyto(cols[b0:b1, c0:c1, ky, kx], pp.region(ky, kx, b1 - b0, c1 - c0))


def _col2im_phases(xp, cols, x, kH, kW, dH, dW, padH, padW):
    """col2im for a stride above 1 (x = fold(cols)): each kernel offset is added to a block
    of contiguous rows of zeroed _PhasePlanes, which then go back to x (chunks of planes)."""
    oH, oW = cols.shape[-2:]
    for b0, b1, c0, c1, _, pp in _phase_chunks(xp, x.dtype, x.shape, oH, oW, kH, kW, dH, dW,
                                               padH, padW, 0, cols.size * 4):   # ~1/8 of cols
        pp.buf.fill(0)
        for ky, kx in pp.offsets():
            dst = pp.region(ky, kx, b1 - b0, c1 - c0)
            xp.add(dst, cols[b0:b1, c0:c1, ky, kx], out=dst)
        pp.unload(x[b0:b1, c0:c1])


@_small_buffers
def col2im_add(cols, x, kH, kW, dH, dW, padH, padW, zero=False):
    """THNN's unfolded_acc for a whole batch: x (B, C, iH, iW) += fold(cols); with zero=True
    x = fold(cols) (x's content is ignored), else x must be zeroed by the caller. One strided
    in-place add per kernel offset.

    For stride 1 with oW == iW each offset is one long add over the flat plane; the
    entries of cols that THNN skips (border columns outside the image) are zeroed first,
    so cols is used as scratch."""
    xp = array_module(cols)
    B, C, iH, iW = x.shape
    oH, oW = cols.shape[-2:]
    x3 = _flat_planes(x) if _same_width(x, cols, kH, kW, dH, dW) else None
    # "same" convolution (stride 1, oH*oW == iH*iW, centre offset inside the kernel): the
    # centre offset covers every input position once, so x = that plane, then add the rest
    assign = (x3 is not None and oH == iH and padH < kH and padW < kW)
    if kH == kW == 1 and padH == padW == 0:   # 1x1: each input element gets at most one value
        if zero:
            x.fill(0)
        dst = _window_view(x, 0, 0, oH, oW, dH, dW)
        xp.add(dst, cols[:, :, 0, 0], out=dst)   # 0 + v, as THNN (-0.0 becomes +0.0)
        return
    if zero and x3 is None and _by_phases(kH, kW, dH, dW):
        return _col2im_phases(xp, cols, x, kH, kW, dH, dW, padH, padW)
    if assign:
        xp.copyto(x3, _planes5(cols)[:, :, padH, padW])
    elif zero:
        x.fill(0)
    if x3 is None:
        for ky, kx, ys, xs, iys, ixs, _, _ in _offsets(kH, kW, dH, dW, padH, padW, iH, iW, oH, oW):
            dst = x[:, :, iys, ixs]
            xp.add(dst, cols[:, :, ky, kx, ys, xs], out=dst)
        return
    c5 = _planes5(cols)
    for ky, kx, ys, xs, _, _, _, _ in _offsets(kH, kW, dH, dW, padH, padW, iH, iW, oH, oW):
        if assign and ky == padH and kx == padW:
            continue  # already copied
        src = cols[:, :, ky, kx]
        if xs.start > 0:
            src[:, :, ys, :xs.start].fill(0)
        if xs.stop < oW:
            src[:, :, ys, xs.stop:].fill(0)
        s = (ky - padH) * iW + (kx - padW)
        j0, j1 = max(ys.start * oW, -s), min(ys.stop * oW, iH * iW - s)
        dst = x3[:, :, j0 + s:j1 + s]
        xp.add(dst, c5[:, :, ky, kx, j0:j1], out=dst)


# --------------------------------------------------------------------------- convolution (MM)
def cols_matrix(cols):
    """The (K, B*L) matrix under a (B, K, L) cols array laid out "K-major" (strides L, B*L, 1
    in elements: cols[b, k, p] at k*B*L + b*L + p), or None for any other layout."""
    B, K, L = cols.shape
    return _view_reshape(cols.transpose(1, 0, 2), (K, B * L))


def kmajor_strides(B, K, L):
    """Element strides of a (B, K, L) tensor whose storage is the (K, B*L) matrix."""
    return (L, B * L, 1)


def _images_per_chunk(B, per_image, budget):
    """Images per GEMM chunk whose (rows x images*L) temporary holds at most `budget`
    elements (at least one image)."""
    if budget is None:
        return B
    return max(1, min(B, budget // max(per_image, 1)))


def _chunk_buffer(xp, B, per_image, budget, scratch, dtype, fixed=False):
    """(images per chunk, flat buffer) for a (rows x images*L) GEMM temporary: the whole
    batch in `scratch` (a flat array the caller may overwrite) when it is large enough,
    else chunks in a fresh buffer of at most `budget` elements (at least one image).
    fixed=True: chunks of the budget whatever the scratch (which then only saves the
    allocation), for a product whose bits must not depend on which buffers happen to be
    free: a GEMM's rounding depends on its width (OpenBLAS), and a network must compute the
    same outputs whatever its history or memory plan (optnet's outputs are bit-identical to
    the original's; gradients agree to rounding)."""
    chunk = _images_per_chunk(B, per_image, budget)
    if scratch is not None and scratch.dtype == dtype:
        nb = chunk if fixed else B
        if scratch.size >= nb * per_image:
            return nb, scratch
    return chunk, xp.empty(chunk * per_image, dtype=dtype)


@_small_buffers
def conv2d_mm_forward(x, w2, bias, cols, out, kH, kW, dH, dW, padH, padW, budget=None,
                      scratch=None):
    """x (B, C, iH, iW); w2 (nOut, C*kH*kW); bias (nOut,) or None;
    cols (B, C*kH*kW, oH*oW) buffer (finput); out (B, nOut, oH*oW).

    With cols laid out K-major (see cols_matrix) the whole batch is one K x (B*L) matrix and
    the product is one GEMM per chunk of images, into a (nOut, images*L) temporary that is
    then copied (plus bias) into out's NCHW layout: chunks of at most `budget` elements (all
    images when None), in `scratch` (a flat array that may be overwritten, e.g. a dead buffer
    of the module) when it can hold one, else in a fresh temporary. Any other layout of cols
    takes one GEMM per image."""
    xp = array_module(out)
    B, C = x.shape[:2]
    nOut, L = out.shape[1:]
    oH, oW = conv_output_size(x.shape[2], x.shape[3], kH, kW, dH, dW, padH, padW)
    im2col(x, _unfolded6(cols, C, kH, kW, oH, oW), kH, kW, dH, dW, padH, padW)
    m = cols_matrix(cols)
    if m is None or B == 1:
        _matmul(xp, w2, cols, out)
        if bias is not None:
            out += bias[:, None]
        return
    nb, buf = _chunk_buffer(xp, B, nOut * L, budget, scratch, out.dtype, fixed=True)
    for b0 in range(0, B, nb):
        n = min(B, b0 + nb) - b0
        t = buf[:nOut * n * L].reshape(nOut, n * L)
        _matmul(xp, w2, m[:, b0 * L:(b0 + n) * L], t)
        if bias is not None:   # on the contiguous product: faster than a strided add-copy
            t += bias[:, None]
        xp.copyto(out[b0:b0 + n], t.reshape(nOut, n, L).transpose(1, 0, 2))


def _gather_go(xp, go, b0, n, buf):
    """gradOutput images b0..b0+n-1 (n, nOut, L) as one (nOut, n*L) matrix (a copy in buf)."""
    nOut, L = go.shape[1:]
    t = buf[:nOut * n * L].reshape(nOut, n * L)
    xp.copyto(t.reshape(nOut, n, L), go[b0:b0 + n].transpose(1, 0, 2))
    return t


@_small_buffers
def conv2d_mm_backward_input(go, w2, fcols, gx, kH, kW, dH, dW, padH, padW, budget=None,
                             scratch=None):
    """go (B, nOut, oH*oW); fcols (B, C*kH*kW, oH*oW) buffer (fgradInput); gx (B, C, iH, iW).

    K-major fcols: fcols = w2^T @ gradOutput as one GEMM per chunk of images, gradOutput's
    chunk gathered as (nOut, images*L): the whole batch in `scratch` when it is large enough
    (gx's own elements are free until the col2im: the caller may pass them), else chunks in
    a temporary of at most `budget` elements."""
    xp = array_module(gx)
    B, C = gx.shape[:2]
    nOut, L = go.shape[1:]
    oH, oW = conv_output_size(gx.shape[2], gx.shape[3], kH, kW, dH, dW, padH, padW)
    m = cols_matrix(fcols)
    if m is None or B == 1:
        _matmul(xp, w2.T, go, fcols)
    else:
        nb, buf = _chunk_buffer(xp, B, nOut * L, budget, scratch, gx.dtype)
        for b0 in range(0, B, nb):
            n = min(B, b0 + nb) - b0
            _matmul(xp, w2.T, _gather_go(xp, go, b0, n, buf), m[:, b0 * L:(b0 + n) * L])
    col2im_add(_unfolded6(fcols, C, kH, kW, oH, oW), gx, kH, kW, dH, dW, padH, padW, zero=True)


@_small_buffers
def conv2d_mm_backward_weight(go, cols, gw2, gbias, scale, budget=None, scratch=None):
    """gw2 (nOut, K) += scale * sum_b go[b] @ cols[b]^T; gbias += scale * sum(go) over b, pixels.

    K-major cols: one GEMM per chunk of images, computed transposed, cols_chunk (K, images*L)
    @ G^T, G being gradOutput's chunk gathered as (nOut, images*L). (OpenBLAS threads a GEMM
    whose long inner dimension meets a short first operand (nOut rows) with one sync per
    inner block: G @ cols_chunk^T can be 100x slower on a busy machine.) Temporaries: a block
    of gw2 (transposed) and the gathered chunk, about `budget` elements in all; the whole
    batch is gathered at once into `scratch` instead when it is large enough."""
    xp = array_module(gw2)
    B, nOut, L = go.shape
    K = cols.shape[1]
    if budget is None:
        budget = nOut * K + B * nOut * L
    m = cols_matrix(cols) if B > 1 else None
    if m is None:
        rows = max(1, min(nOut, budget // max(K, 1)))
        tmp = xp.empty((rows, K), dtype=gw2.dtype)
        for r0 in range(0, nOut, rows):
            r1 = min(nOut, r0 + rows)
            t = tmp[:r1 - r0]
            dst = gw2[r0:r1]
            for b in range(B):
                _matmul(xp, go[b, r0:r1], cols[b].T, t)
                if scale != 1:
                    t *= scale
                dst += t
    else:
        krows = max(1, min(K, (budget // 2) // max(nOut, 1)))
        tmp = xp.empty((krows, nOut), dtype=gw2.dtype)
        nb, buf = _chunk_buffer(xp, B, nOut * L, max(nOut * L, budget - krows * nOut),
                                scratch, gw2.dtype)
        for b0 in range(0, B, nb):
            n = min(B, b0 + nb) - b0
            gt = _gather_go(xp, go, b0, n, buf).T
            mc = m[:, b0 * L:(b0 + n) * L]
            for k0 in range(0, K, krows):
                k1 = min(K, k0 + krows)
                t = tmp[:k1 - k0]
                _matmul(xp, mc[k0:k1], gt, t)
                if scale != 1:
                    t *= scale
                dst = gw2[:, k0:k1]
                xp.add(dst, t.T, out=dst)
    if gbias is not None:
        s = go.sum(axis=(0, 2))
        if scale != 1:
            s *= scale
        gbias += s


# --------------------------------------------------------------------------- convolution (grid)
# Stride-1 convolutions with few input planes (e.g. the 16-plane layers of CIFAR ResNets) make
# im2col's GEMM a poor one: K = C*kH*kW is short, and the unfolded input is kH*kW copies of
# the data. Here the batch is laid out once as a "grid" (C, images x rows x Wg): the planes
# with zero rows between them, so that every kernel row offset ky is the constant shift ky*Wg
# of the flat grid. The kW column shifts are materialised (kW copies, rows (kx, c), with the
# columns that fall in the padding zeroed, so that rows need no zero columns between them and
# whole planes copy as one run); the kH row shifts are folded into the GEMM's output rows
# (ky, o) and summed with shifted slices afterwards: one GEMM of (kH*nOut) x (kW*C) by
# (kW*C) x (grid length), whose dimensions suit BLAS better, over kW/(kH*kW) of im2col's data.
_GRID_CHUNK = 1 << 18   # elements of the GEMM's output block (~1 MiB in float32: stays in cache)


def grid_geometry(H, W, kH, kW, padH, padW):
    """(rows per image, row width) of the grid of H x W planes: zero rows between planes,
    enough for the padding on both sides of any kernel offset; rows as wide as the wider of
    the input and the output (the column padding is masked, not stored)."""
    return H + max(padH, kH - 1 - padH), max(W, W + 2 * padW - kW + 1)


def grid_row_length(B, H, W, kH, kW, padH, padW):
    """Elements per (kx, c) row of the shifted grid of B planes: the output positions of all
    images plus the reach of the last row shift."""
    Hs, Wg = grid_geometry(H, W, kH, kW, padH, padW)
    return (B * Hs + kH - 1) * Wg


def conv2d_grid_fits(B, C, H, W, kH, kW, dH, dW, padH, padW, room):
    """Whether the grid algorithm is the one to use for a convolution of B x C x H x W input
    planes, and its shifted grid fits in `room` elements (finput's, for the forward): stride
    1, a 2-D kernel, the padding within the kernel, kW*C from 24 to 96 (the regime where it
    beats im2col + GEMM at 1 and 2 BLAS threads; benchmarks/conv_algorithms.py), and at most
    ~15% of the grid spent on separating zeros."""
    if dH != 1 or dW != 1 or kH < 2 or kW < 2 or padH > kH - 1 or padW > kW - 1:
        return False
    if not 24 <= kW * C <= 96:
        return False
    Hs, Wg = grid_geometry(H, W, kH, kW, padH, padW)
    oH, oW = H + 2 * padH - kH + 1, W + 2 * padW - kW + 1
    if oH < 1 or oW < 1 or Hs * Wg > 1.15 * oH * oW:
        return False
    return kW * C * grid_row_length(B, H, W, kH, kW, padH, padW) <= room


def conv2d_grid_load(x, gbuf, kH, kW, padH, padW):
    """Lay x (B, C, H, W) out in gbuf (flat) as the kW column shifts of its grid; returns the
    (kW*C, S) matrix (rows (kx, c)) whose column q + ky*Wg is the input under kernel offset
    (ky, kx) of the output at grid position q (zero where that offset falls in the padding)."""
    xp = array_module(gbuf)
    B, C, H, W = x.shape
    Hs, Wg = grid_geometry(H, W, kH, kW, padH, padW)
    S = grid_row_length(B, H, W, kH, kW, padH, padW)
    g3 = gbuf[:kW * C * S].reshape(kW, C, S)
    # the unshifted copy (kx = padW): image b's row r at grid row b*Hs + padH + r
    c = g3[padW]
    body = c[:, :B * Hs * Wg].reshape(C, B, Hs, Wg)
    body[:, :, :padH].fill(0)
    body[:, :, padH + H:].fill(0)
    if Wg > W:
        body[:, :, padH:padH + H, W:].fill(0)
    c[:, B * Hs * Wg:].fill(0)
    xp.copyto(body[:, :, padH:padH + H, :W], x.transpose(1, 0, 2, 3))
    # the other offsets: one flat shifted copy of all C rows each (NumPy copies the 2-D
    # shifted view up to 12x slower), then the columns that left the plane zeroed; the
    # elements the flat copy carries across from a neighbouring row are such columns too
    n = C * S
    flat = g3.reshape(kW, n)
    for kx in range(kW):
        s = kx - padW
        if s == 0:
            continue
        rows = g3[kx].reshape(C, S // Wg, Wg)
        if s > 0:
            xp.copyto(flat[kx, :n - s], flat[padW, s:])
            rows[:, :, max(0, W - s):].fill(0)
        else:
            xp.copyto(flat[kx, -s:], flat[padW, :n + s])
            rows[:, :, :-s].fill(0)
    return g3.reshape(kW * C, S)


def _grid_images(B, rows, per, room):
    """Images per GEMM block whose (rows x images*per) output stays within _GRID_CHUNK
    elements and 1/16 of `room` (the buffer it works beside), at least one image."""
    return max(1, min(B, min(_GRID_CHUNK, room // 16) // max(1, rows * per)))


@_small_buffers
def conv2d_grid_forward(x, w4, bias, gbuf, out, padH, padW):
    """out (B, nOut, oH, oW) = conv(x (B, C, H, W), w4 (nOut, C, kH, kW)) + bias, stride 1.

    gbuf: flat array of at least kW*C*grid_row_length(...) elements (finput's storage); it
    keeps the shifted grid for conv2d_grid_backward_weight. Temporaries: the GEMM's output
    for a block of images (about _GRID_CHUNK elements) and the rearranged weight."""
    xp = array_module(out)
    B, C, H, W = x.shape
    nOut, _, kH, kW = w4.shape
    oH, oW = out.shape[2:]
    Hs, Wg = grid_geometry(H, W, kH, kW, padH, padW)
    m = conv2d_grid_load(x, gbuf, kH, kW, padH, padW)
    wm = xp.ascontiguousarray(w4.transpose(2, 0, 3, 1)).reshape(kH * nOut, kW * C)
    per, reach = Hs * Wg, (kH - 1) * Wg
    nb = _grid_images(B, kH * nOut, per, gbuf.size)
    r_buf = xp.empty(kH * nOut * (nb * per + reach), dtype=out.dtype)
    for b0 in range(0, B, nb):
        n = min(B, b0 + nb) - b0
        nq = n * per
        r = r_buf[:kH * nOut * (nq + reach)].reshape(kH * nOut, nq + reach)
        _matmul(xp, wm, m[:, b0 * per:b0 * per + nq + reach], r)
        # output = sum over ky of rows (ky, o) at grid position q + ky*Wg: summed in place
        # over whole grid rows (long contiguous runs), then the planes copied out once
        acc = r[:nOut, :nq]
        for ky in range(1, kH):
            xp.add(acc, r[ky * nOut:(ky + 1) * nOut, ky * Wg:ky * Wg + nq], out=acc)
        if bias is not None:
            acc += bias[:, None]
        xp.copyto(out[b0:b0 + n].transpose(1, 0, 2, 3),
                  acc.reshape(nOut, n, Hs, Wg)[:, :, :oH, :oW])


def conv2d_grid_backward_input(go, w4, gbuf, gx, padH, padW):
    """gx (B, C, H, W) = the gradient of conv2d_grid_forward's input for gradOutput go: the
    convolution of go with w4's flipped kernels (input and output planes exchanged) and the
    complementary padding kH-1-padH, kW-1-padW. gbuf: scratch for go's shifted grid."""
    kH, kW = w4.shape[2:]
    conv2d_grid_forward(go, w4.transpose(1, 0, 2, 3)[:, :, ::-1, ::-1], None, gbuf, gx,
                        kH - 1 - padH, kW - 1 - padW)


@_small_buffers
def conv2d_grid_backward_weight(go, m, H, W, gw4, gbias, scale, padH, padW):
    """gw4 (nOut, C, kH, kW) += scale * dL/dw, gbias += scale * sum(go), for go (B, nOut, oH,
    oW) and m, the shifted grid of the input (conv2d_grid_load's matrix). gradOutput is laid
    out on the output grid (zeros between planes) a block of images at a time, kH times with
    the row shifts ky*Wg (rows (ky, o)); then one GEMM per block, m @ those rows^T, gives
    the (kx, c) x (ky, o) entries of the weight gradient."""
    xp = array_module(gw4)
    B, nOut, oH, oW = go.shape
    _, C, kH, kW = gw4.shape
    Hs, Wg = grid_geometry(H, W, kH, kW, padH, padW)
    per, reach = Hs * Wg, (kH - 1) * Wg
    nb = _grid_images(B, kH * nOut, per, 4 * m.size)   # m is ~1/kH of finput
    g_buf = xp.empty(kH * nOut * (nb * per + reach), dtype=gw4.dtype)
    acc = xp.zeros((kW * C, kH * nOut), dtype=gw4.dtype)
    t = xp.empty_like(acc) if nb < B else acc
    for b0 in range(0, B, nb):
        n = min(B, b0 + nb) - b0
        nq = n * per + reach
        g = g_buf[:kH * nOut * nq].reshape(kH, nOut, nq)
        g0 = g[0, :, :n * per].reshape(nOut, n, Hs, Wg)
        g0[:, :, oH:].fill(0)
        g0[:, :, :oH, oW:].fill(0)
        xp.copyto(g0[:, :, :oH, :oW], go[b0:b0 + n].transpose(1, 0, 2, 3))
        g[0, :, n * per:].fill(0)
        for ky in range(1, kH):   # row shift ky: g[ky, :, q] = g[0, :, q - ky*Wg]
            g[ky, :, :ky * Wg].fill(0)
            xp.copyto(g[ky, :, ky * Wg:], g[0, :, :nq - ky * Wg])
        q0 = b0 * per
        _matmul(xp, m[:, q0:q0 + nq], g.reshape(kH * nOut, nq).T, t)
        if t is not acc:
            acc += t
    if scale != 1:
        acc *= scale
    gw4 += acc.reshape(kW, C, kH, nOut).transpose(3, 1, 2, 0)   # (kx, c, ky, o) -> (o, c, ky, kx)
    if gbias is not None:
        s = go.sum(axis=(0, 2, 3))
        if scale != 1:
            s *= scale
        gbias += s


# --------------------------------------------------------------------------- max pooling
@_small_buffers
def maxpool2d_forward(x, out, ind, kH, kW, dH, dW, padH, padW):
    """THNN SpatialMaxPooling: out (B, C, oH, oW) = window max, ind = 1-based flat argmax.

    THNN keeps the first element that is strictly greater than the running max (start -inf),
    so: NaN never wins, the first maximum in window order wins, and a window without any
    element > -inf gives -inf and index 0. Computed branch-free (masked copies with random
    masks are ~10x slower): fmax over the kernel offsets gives the values (NaN ignored), then
    the offsets in reverse order overwrite the index wherever the element equals the max.
    (Only the sign of a zero maximum can differ: fmax(-0., 0.) may give either zero.)"""
    xp = array_module(out)
    B, C, iH, iW = x.shape
    oH, oW = out.shape[-2:]
    if kH * kW < 255:
        return _maxpool2d_forward_flat(xp, x, out, ind, kH, kW, dH, dW, padH, padW)
    offs = list(_offsets(kH, kW, dH, dW, padH, padW, iH, iW, oH, oW))
    grids = [_index_grid(xp, iy, ys.stop - ys.start, ix, xs.stop - xs.start, dH, dW, iW)
             for _, _, ys, xs, _, _, iy, ix in offs]
    mask = tmp = None
    for b0, b1, c0, c1 in _chunks(B, C, oH * oW):
        xc, oc, ic = x[b0:b1, c0:c1], out[b0:b1, c0:c1], ind[b0:b1, c0:c1]
        oc.fill(-np.inf)
        ic.fill(0)
        if mask is None:
            mask = xp.empty(oc.shape, dtype=bool)
            tmp = xp.empty(oc.shape, dtype=ind.dtype)
        nb, nc = oc.shape[:2]
        for _, _, ys, xs, iys, ixs, _, _ in offs:
            o = oc[:, :, ys, xs]
            xp.fmax(o, xc[:, :, iys, ixs], out=o)
        for (_, _, ys, xs, iys, ixs, _, _), g in zip(reversed(offs), reversed(grids)):
            o, i = oc[:, :, ys, xs], ic[:, :, ys, xs]
            m = mask[:nb, :nc, :o.shape[2], :o.shape[3]]
            t = tmp[:nb, :nc, :o.shape[2], :o.shape[3]]
            xp.equal(xc[:, :, iys, ixs], o, out=m)
            xp.subtract(g, i, out=t)      # i = m ? g : i
            xp.multiply(t, m, out=t)
            xp.add(i, t, out=i)
        m = mask[:nb, :nc]
        xp.greater(oc, -np.inf, out=m)    # no element > -inf: index 0
        xp.multiply(ic, m, out=ic)


class _PhasePlanes:
    """Pooling on flat buffers. A chunk of n planes (n, iH, iW) is laid out as dH*dW phase
    planes (the padded input's rows and columns of one residue modulo the stride), each
    (n, QH, QW) flat, the padding holding `pad_value`. Kernel offset (ky, kx) then reads
    phase (ky % dH, kx % dW) shifted by (ky // dH, kx // dW): for all outputs of the chunk
    at once, one contiguous 1-D slice (`window`), on the (n, QH, QW) output grid whose
    [:, :oH, :oW] part holds the outputs (the rest is scratch). One long 1-D pass per
    offset instead of one short strided row at a time."""

    def __init__(self, xp, dtype, n, iH, iW, oH, oW, kH, kW, dH, dW, padH, padW, pad_value):
        self.xp, self.n, self.iH, self.iW, self.oH, self.oW = xp, n, iH, iW, oH, oW
        self.dH, self.dW, self.kH, self.kW = dH, dW, kH, kW
        self.QH = _ceil_div(max(padH + iH, (oH - 1) * dH + kH), dH)
        self.QW = _ceil_div(max(padW + iW, (oW - 1) * dW + kW), dW)
        self.N = n * self.QH * self.QW
        # each phase plane, plus a tail that the shifted reads of the last plane reach
        self.stride = self.N + (kH // dH + 1) * self.QW + kW
        self.buf = xp.empty(dH * dW * self.stride, dtype=dtype)
        self.pad_value = pad_value
        self.buf.fill(pad_value)

        def spans(d, pad, size, q_max):   # per phase: grid rows q0..q1 = input rows i0::d
            out = []
            for ph in range(d):
                q0 = max(0, _ceil_div(pad - ph, d))
                q1 = min(q_max, _floor_div(pad + size - 1 - ph, d) + 1)
                out.append((q0, q1, ph + d * q0 - pad))
            return out
        self.spans = [(py * dW + px, r, c)
                      for py, r in enumerate(spans(dH, padH, iH, self.QH))
                      for px, c in enumerate(spans(dW, padW, iW, self.QW))
                      if r[1] > r[0] and c[1] > c[0]]

    def offsets(self):
        """(ky, kx) in THNN's window order."""
        return [(ky, kx) for ky in range(self.kH) for kx in range(self.kW)]

    def window(self, ky, kx, n):
        ph = (ky % self.dH) * self.dW + kx % self.dW
        start = ph * self.stride + (ky // self.dH) * self.QW + kx // self.dW
        return self.buf[start:start + n * self.QH * self.QW]

    def _interiors(self, b, c):
        """(phase plane region, matching input index) pairs for a (b, c) block of planes."""
        n = b * c
        for ph, (q0, q1, i0), (r0, r1, j0) in self.spans:
            plane = self.buf[ph * self.stride:][:n * self.QH * self.QW].reshape(b, c, self.QH, self.QW)
            yield (plane[:, :, q0:q1, r0:r1],
                   (slice(None), slice(None), _in_slice(i0, q1 - q0, self.dH),
                    _in_slice(j0, r1 - r0, self.dW)))

    def load(self, xc):
        """A (b, c, iH, iW) block of input planes into the phase planes."""
        for dst, idx in self._interiors(*xc.shape[:2]):
            self.xp.copyto(dst, xc[idx])

    def add_window(self, ky, kx, g):
        """Phase planes [offset (ky, kx)] += g (a flat (n, QH, QW) grid, zero outside the
        outputs): the transpose of window()."""
        w = self.window(ky, kx, g.size // (self.QH * self.QW))
        self.xp.add(w, g, out=w)

    def unload(self, gxc):
        """The phase planes back into a (b, c, iH, iW) block of input planes."""
        for src, idx in self._interiors(*gxc.shape[:2]):
            self.xp.copyto(gxc[idx], src)

    def region(self, ky, kx, b, c):
        """The (b, c, oH, oW) block of the phase planes that offset (ky, kx) reads for the
        outputs: rows of oW contiguous elements."""
        ph = (ky % self.dH) * self.dW + kx % self.dW
        plane = self.buf[ph * self.stride:][:b * c * self.QH * self.QW].reshape(b, c, self.QH, self.QW)
        y, x = ky // self.dH, kx // self.dW
        return plane[:, :, y:y + self.oH, x:x + self.oW]

    def grid(self, flat, n):
        """The outputs (n, oH, oW) of a flat (n, QH, QW) grid."""
        return flat.reshape(n, self.QH, self.QW)[:, :self.oH, :self.oW]


def _pool_floor(size):
    """Block size floor for the pooling kernels, which make several NumPy calls per kernel
    offset on each block: up to 1/16 of the array (at most _POOL_BLOCK elements, about
    L2-sized) rather than _chunks' 1/32, so that the calls' overhead stays small."""
    return min(_POOL_BLOCK, size // 16)


def _phase_chunks(xp, dtype, shape, oH, oW, kH, kW, dH, dW, padH, padW, pad_value, total=None,
                  floor=0):
    """Chunks (b0, b1, c0, c1, n planes) of a (B, C, iH, iW) batch with one _PhasePlanes for
    all, sized by the first (largest) chunk; yields (b0, b1, c0, c1, n, planes)."""
    B, C, iH, iW = shape
    pp = None
    for b0, b1, c0, c1 in _chunks(B, C, iH * iW, total, floor):
        n = (b1 - b0) * (c1 - c0)
        if pp is None:
            pp = _PhasePlanes(xp, dtype, n, iH, iW, oH, oW, kH, kW, dH, dW, padH, padW, pad_value)
        yield b0, b1, c0, c1, n, pp


def _maxpool2d_forward_flat(xp, x, out, ind, kH, kW, dH, dW, padH, padW):
    """maxpool2d_forward with fewer than 255 kernel offsets, on _PhasePlanes padded with
    -inf (the padding never wins: -inf is never strictly greater). The winning offset is
    tracked as its number (1-based, uint8), then ind = base(oy, ox) + delta[number] with one
    take, where base is the flat 1-based index of the window's top-left corner and delta
    the offset's flat shift (ky*iW + kx)."""
    B, C, iH, iW = x.shape
    oH, oW = out.shape[-2:]
    base = ((xp.arange(oH, dtype=ind.dtype) * dH - padH) * iW)[:, None] \
        + (xp.arange(oW, dtype=ind.dtype) * dW + (1 - padW))[None, :]
    delta = xp.asarray([0] + [ky * iW + kx for ky in range(kH) for kx in range(kW)],
                       dtype=ind.dtype)
    mx = None
    for b0, b1, c0, c1, n, pp in _phase_chunks(xp, x.dtype, x.shape, oH, oW, kH, kW, dH, dW,
                                               padH, padW, -np.inf, floor=_pool_floor(x.size)):
        if mx is None:   # sized by the first (largest) chunk
            mx, nm = xp.empty(pp.N, dtype=x.dtype), xp.empty(pp.N, dtype=np.uint8)
            mask, tmp = xp.empty(pp.N, dtype=bool), xp.empty(pp.N, dtype=np.uint8)
        N = n * pp.QH * pp.QW
        pp.load(x[b0:b1, c0:c1])
        src = [pp.window(ky, kx, n) for ky, kx in pp.offsets()]
        o, nn_, m, t = mx[:N], nm[:N], mask[:N], tmp[:N]
        o.fill(-np.inf)   # NaN never wins: a window of NaN and -inf gives -inf
        for v in src:
            xp.fmax(o, v, out=o)
        nn_.fill(0)
        for j in range(len(src), 0, -1):   # the first offset holding the max wins
            xp.equal(src[j - 1], o, out=m)
            xp.subtract(np.uint8(j), nn_, out=t)     # n = m ? j : n (modulo 256)
            xp.multiply(t, m, out=t)
            xp.add(nn_, t, out=nn_)
        oc, ic = out[b0:b1, c0:c1], ind[b0:b1, c0:c1]
        shape = oc.shape
        xp.copyto(oc, pp.grid(o, n).reshape(shape))
        xp.take(delta, pp.grid(nn_, n).reshape(shape), out=ic)
        ic += base
        mc = m[:oc.size].reshape(shape)
        xp.greater(oc, -np.inf, out=mc)    # no element > -inf: index 0
        xp.multiply(ic, mc, out=ic)


def _scatter_add(xp, dst, idx, vals):
    if xp is np:
        np.add.at(dst, idx, vals)
    else:  # pragma: no cover - CuPy
        import cupyx
        cupyx.scatter_add(dst, idx, vals)


@_small_buffers
def maxpool2d_backward(go, ind, gx, kH, kW, dH, dW, padH, padW):
    """gx (B, C, iH, iW) = scatter-add of go at the argmax positions in ind (0 = none), in
    THNN's order (output positions in raster order per plane)."""
    xp = array_module(gx)
    B, C, iH, iW = gx.shape
    oH, oW = go.shape[-2:]
    gx.fill(0)
    if not gx.flags.c_contiguous:
        return _maxpool2d_backward_offsets(go, ind, gx, kH, kW, dH, dW, padH, padW)
    P, L = iH * iW, oH * oW
    flat = gx.reshape(-1)
    for b0, b1, c0, c1 in _chunks(B, C, L, floor=_pool_floor(B * C * L)):
        n = (b1 - b0) * (c1 - c0)
        ic = ind[b0:b1, c0:c1]
        idx = ic.reshape(n, L) - 1
        idx += ((b0 * C + c0 + xp.arange(n, dtype=np.int64)) * P)[:, None]
        idx = idx.reshape(-1)
        vals = go[b0:b1, c0:c1].reshape(-1)
        if int(ic.min()) <= 0:  # windows that saw no element: no gradient
            keep = ic.reshape(-1) > 0
            idx, vals = idx[keep], vals[keep]
        _scatter_add(xp, flat, idx, vals)


def _maxpool2d_backward_offsets(go, ind, gx, kH, kW, dH, dW, padH, padW):
    """Fallback for a non-contiguous gx: one masked add per kernel offset."""
    xp = array_module(gx)
    B, C, iH, iW = gx.shape
    oH, oW = go.shape[-2:]
    offs = list(_offsets(kH, kW, dH, dW, padH, padW, iH, iW, oH, oW))
    grids = [_index_grid(xp, iy, ys.stop - ys.start, ix, xs.stop - xs.start, dH, dW, iW)
             for _, _, ys, xs, _, _, iy, ix in offs]
    mask = None
    for b0, b1, c0, c1 in _chunks(B, C, oH * oW):
        gc, ic, gxc = go[b0:b1, c0:c1], ind[b0:b1, c0:c1], gx[b0:b1, c0:c1]
        if mask is None:
            mask = xp.empty(gc.shape, dtype=bool)
        for (_, _, ys, xs, iys, ixs, _, _), g in zip(offs, grids):
            ir = ic[:, :, ys, xs]
            m = mask[:gc.shape[0], :gc.shape[1], :ir.shape[2], :ir.shape[3]]
            xp.equal(ir, g, out=m)
            _masked_add(xp, gxc[:, :, iys, ixs], gc[:, :, ys, xs], m)


# --------------------------------------------------------------------------- average pooling
def avgpool2d_divisors(xp, dtype, iH, iW, oH, oW, kH, kW, dH, dW, padH, padW, count_include_pad):
    """THNN's per-output divide factor (oH, oW), including its corner cases (a window past the
    image can give 0 or a negative count; sum/0 is then NaN as in C)."""
    def dim(o, k, d, pad, size):
        start = np.arange(o, dtype=np.int64) * d - pad
        end = np.minimum(start + k, size + pad)
        if count_include_pad:
            return end - start
        return np.minimum(end, size) - np.maximum(start, 0)
    div = dim(oH, kH, dH, padH, iH)[:, None] * dim(oW, kW, dW, padW, iW)[None, :]
    return xp.asarray(div.astype(dtype))


def _subsample(kH, kW, padH, padW, iH, iW, oH, oW, dH, dW):
    """A 1x1 pool without padding whose windows all start inside the planes (THNN's ceil
    mode can add windows past the end): a strided copy."""
    return (kH == kW == 1 and padH == padW == 0
            and (oH - 1) * dH < iH and (oW - 1) * dW < iW)


def _few_windows(kH, kW, padH, padW, iH, iW, oH, oW, dH, dW):
    """Big windows, few outputs (at most 16 per plane and 1/4 of the input), no padding, all
    windows inside the planes: summing kernel offsets over strided views of the input is
    cheaper than phase planes (global average pooling: 64 adds of B*C elements)."""
    return (padH == padW == 0 and oH * oW <= 16 and 4 * oH * oW <= iH * iW
            and (oH - 1) * dH + kH <= iH and (oW - 1) * dW + kW <= iW)


@_small_buffers
def avgpool2d_forward(x, out, div, kH, kW, dH, dW, padH, padW):
    """out (B, C, oH, oW) = (sum over the window, in THNN's order) / div, on _PhasePlanes
    padded with zeros (chunk-sized buffers)."""
    xp = array_module(out)
    B, C, iH, iW = x.shape
    oH, oW = out.shape[-2:]
    if _subsample(kH, kW, padH, padW, iH, iW, oH, oW, dH, dW):   # ResNet's shortcut A
        with np.errstate(divide='ignore', invalid='ignore'):
            xp.divide(_window_view(x, 0, 0, oH, oW, dH, dW), div, out=out)
        out += 0   # THNN's sum starts at 0: -0.0 comes out as +0.0
        return
    if _few_windows(kH, kW, padH, padW, iH, iW, oH, oW, dH, dW):   # e.g. global pooling
        out.fill(0)
        for v in _window_views(x, kH, kW, oH, oW, dH, dW):
            xp.add(out, v, out=out)
        with np.errstate(divide='ignore', invalid='ignore'):
            xp.divide(out, div, out=out)
        return
    acc = None
    for b0, b1, c0, c1, n, pp in _phase_chunks(xp, x.dtype, x.shape, oH, oW, kH, kW, dH, dW,
                                               padH, padW, 0, floor=_pool_floor(x.size)):
        if acc is None:
            acc = xp.empty(pp.N, dtype=x.dtype)
        o = acc[:n * pp.QH * pp.QW]
        pp.load(x[b0:b1, c0:c1])
        o.fill(0)
        for ky, kx in pp.offsets():
            xp.add(o, pp.window(ky, kx, n), out=o)
        oc = out[b0:b1, c0:c1]
        with np.errstate(divide='ignore', invalid='ignore'):
            xp.divide(pp.grid(o, n).reshape(oc.shape), div, out=oc)


@_small_buffers
def avgpool2d_backward(go, gx, div, kH, kW, dH, dW, padH, padW):
    """gx (B, C, iH, iW) = sum over windows of go/div: go/div on a zero (n, QH, QW) grid is
    added, shifted, into zeroed _PhasePlanes, which then go back to gx (chunk-sized
    buffers)."""
    xp = array_module(gx)
    B, C, iH, iW = gx.shape
    oH, oW = go.shape[-2:]
    if _subsample(kH, kW, padH, padW, iH, iW, oH, oW, dH, dW):   # one input per output
        gx.fill(0)
        dst = _window_view(gx, 0, 0, oH, oW, dH, dW)
        with np.errstate(divide='ignore', invalid='ignore'):
            xp.divide(go, div, out=dst)
        dst += 0
        return
    if _few_windows(kH, kW, padH, padW, iH, iW, oH, oW, dH, dW):
        gx.fill(0)
        with np.errstate(divide='ignore', invalid='ignore'):
            g = xp.divide(go, div)   # output-sized: at most 1/4 of gx (_few_windows)
        for dst in _window_views(gx, kH, kW, oH, oW, dH, dW):
            xp.add(dst, g, out=dst)
        return
    g = None
    for b0, b1, c0, c1, n, pp in _phase_chunks(xp, gx.dtype, gx.shape, oH, oW, kH, kW, dH, dW,
                                               padH, padW, 0, floor=_pool_floor(gx.size)):
        if g is None:
            g = xp.zeros(pp.N, dtype=gx.dtype)   # zero outside the outputs, for good
        gc = g[:n * pp.QH * pp.QW]
        oc = go[b0:b1, c0:c1]
        with np.errstate(divide='ignore', invalid='ignore'):
            xp.divide(oc, div, out=pp.grid(gc, n).reshape(oc.shape))
        pp.buf.fill(0)
        with np.errstate(invalid='ignore'):   # inf - inf (a zero divisor): NaN, as in C
            for ky, kx in pp.offsets():
                pp.add_window(ky, kx, gc)
        pp.unload(gx[b0:b1, c0:c1])


# --------------------------------------------------------------------------- max unpooling
@_small_buffers
def maxunpool2d_forward(x, ind, out):
    """out (B, C, oH, oW) zeroed, then out.flat_plane[ind - 1] = x (ind valid, 1-based)."""
    xp = array_module(out)
    B, C, iH, iW = x.shape
    oH, oW = out.shape[-2:]
    out.fill(0)
    L = oH * oW
    for b0, b1, c0, c1 in _chunks(B, C, iH * iW):
        n = (b1 - b0) * (c1 - c0)
        oc = out[b0:b1, c0:c1].reshape(n, L)  # out is contiguous: a view
        idx = ind[b0:b1, c0:c1].reshape(n, iH * iW) - 1
        idx += (xp.arange(n, dtype=np.int64) * L)[:, None]
        oc.reshape(-1)[idx.reshape(-1)] = x[b0:b1, c0:c1].reshape(-1)


@_small_buffers
def maxunpool2d_backward(go, ind, gx):
    """gx (B, C, iH, iW) = go.flat_plane[ind - 1]."""
    xp = array_module(gx)
    B, C, iH, iW = gx.shape
    oH, oW = go.shape[-2:]
    L = oH * oW
    for b0, b1, c0, c1 in _chunks(B, C, iH * iW):
        n = (b1 - b0) * (c1 - c0)
        gc = go[b0:b1, c0:c1].reshape(n * L)
        idx = ind[b0:b1, c0:c1].reshape(n, iH * iW) - 1
        idx += (xp.arange(n, dtype=np.int64) * L)[:, None]
        dst = gx[b0:b1, c0:c1]
        if dst.flags.c_contiguous:
            xp.take(gc, idx.reshape(-1), out=dst.reshape(-1), mode='clip')
        else:
            dst[...] = xp.take(gc, idx.reshape(-1)).reshape(dst.shape)


# --------------------------------------------------------------------------- N-d im2col
# THNN's im2col / vol2col / unfolded_copy generalised: any number of spatial dims (1-D
# temporal, 2-D spatial, 3-D volumetric), stride, zero padding and dilation. cols is a
# (B, C, *k, *o) array of any strides (e.g. a view of a K-major (C*prod(k), B*prod(o))
# matrix), x is (B, C, *i). Row order of the unfolded matrix is c, then the kernel offsets in
# C order (kT, kH, kW), as THNN's.

def conv_output_size_nd(isz, k, d, pad, dil):
    """THNN's (dilated) convolution output size per dim (C integer division)."""
    return tuple(_cdiv(i + 2 * p - (dl * (kk - 1) + 1), dd) + 1
                 for i, kk, dd, p, dl in zip(isz, k, d, pad, dil))


def full_output_size_nd(isz, k, d, pad, dil, adj):
    """THNN's full (transposed) convolution output size per dim."""
    return tuple((i - 1) * dd - 2 * p + dl * (kk - 1) + 1 + a
                 for i, kk, dd, p, dl, a in zip(isz, k, d, pad, dil, adj))


def _offsets_nd(k, d, pad, dil, isz, osz):
    """For each kernel offset (C order): (offset tuple, output slices, input slices, state),
    state 0 = touches nothing, 1 = partial, 2 = covers the whole output."""
    per = []
    for kk, dd, p, dl, i, o in zip(k, d, pad, dil, isz, osz):
        per.append([window_range(o, j * dl, dd, p, i) for j in range(kk)])
    for idx in itertools.product(*[range(kk) for kk in k]):
        rs = [per[n][j] for n, j in enumerate(idx)]
        if any(hi <= lo for lo, hi, _ in rs):
            yield idx, None, None, 0
            continue
        osl = tuple(slice(lo, hi) for lo, hi, _ in rs)
        isl = tuple(_in_slice(st, hi - lo, dd) for (lo, hi, st), dd in zip(rs, d))
        full = all(lo == 0 and hi == o for (lo, hi, _), o in zip(rs, osz))
        yield idx, osl, isl, 2 if full else 1


@_small_buffers
def im2col_nd(x, cols, k, d, pad, dil):
    """cols (B, C, *k, *o) = unfold(x (B, C, *i)); one strided copy per kernel offset."""
    n = len(k)
    if n == 2 and tuple(dil) == (1, 1):
        return im2col(x, cols, k[0], k[1], d[0], d[1], pad[0], pad[1])
    xp = array_module(cols)
    osz = cols.shape[2 + n:]
    S = (slice(None), slice(None))
    for idx, osl, isl, state in _offsets_nd(k, d, pad, dil, x.shape[2:], osz):
        dst = cols[S + idx]
        if state == 0:
            dst.fill(0)
            continue
        if state == 1:
            _fill_outside(dst, osl)
        xp.copyto(dst[S + osl], x[S + isl])


def _fill_outside(dst, box):
    """Zero the elements of dst (B, C, *o) outside the box of slices `box` (one slab per
    side and dim, so every element is written once)."""
    pre = (slice(None), slice(None))
    for j, sl in enumerate(box):
        size = dst.shape[2 + j]
        if sl.start > 0:
            dst[pre + (slice(0, sl.start),)].fill(0)
        if sl.stop < size:
            dst[pre + (slice(sl.stop, size),)].fill(0)
        pre = pre + (sl,)


@_small_buffers
def col2im_nd_add(cols, x, k, d, pad, dil):
    """x (B, C, *i) += fold(cols (B, C, *k, *o)) (THNN's col2im / col2vol order: kernel
    offsets in C order). x must be initialised by the caller; cols may be used as scratch."""
    n = len(k)
    if n == 2 and tuple(dil) == (1, 1):
        return col2im_add(cols, x, k[0], k[1], d[0], d[1], pad[0], pad[1])
    xp = array_module(x)
    osz = cols.shape[2 + n:]
    S = (slice(None), slice(None))
    for idx, osl, isl, state in _offsets_nd(k, d, pad, dil, x.shape[2:], osz):
        if state:
            dst = x[S + isl]
            xp.add(dst, cols[S + idx + osl], out=dst)


# --------------------------------------------------------------------------- N-d conv GEMMs
# The batch's unfolded input is one K x (B*L) matrix (K = C*prod(k), L = prod(o)), so that
# each pass is one GEMM for the batch. Where the module keeps THNN's per-image buffer
# (columns of K x L) the matrix is a temporary; it is split into chunks of images only
# when it would pass _COLS_BUDGET elements.
_COLS_BUDGET = 1 << 25


def _nb_chunk(B, per_image, budget):
    return max(1, min(B, (budget or _COLS_BUDGET) // max(per_image, 1)))


def _cols_view(m, B, C, k, o):
    """(B, C, *k, *o) view of a (C*prod(k), B*prod(o)) matrix."""
    K, L = m.shape[0], m.shape[1] // max(B, 1)
    v = m.reshape(K, B, L).transpose(1, 0, 2)
    r = _view_reshape(v, (B, C) + tuple(k) + tuple(o))
    if r is None:  # pragma: no cover - splitting axes never needs a copy
        raise ValueError('cannot view the columns as (B, C, *k, *o)')
    return r


def _gather(xp, a, out=None):
    """(B, R, L) array -> (R, B*L) matrix (copy)."""
    B, R, L = a.shape
    if out is None:
        out = xp.empty((R, B * L), dtype=a.dtype)
    xp.copyto(out.reshape(R, B, L), a.transpose(1, 0, 2))
    return out


def _scatter(xp, m, a, bias=None):
    """(R, B*L) matrix -> (B, R, L) array a (+ bias per row)."""
    B, R, L = a.shape
    src = m.reshape(R, B, L).transpose(1, 0, 2)
    if bias is None:
        xp.copyto(a, src)
    else:
        xp.add(src, bias.reshape(R, 1), out=a)


def _unfolded(xp, src, B, C, K, L, nb, dtype, k, o, d, pad, dil, cols=None, unfold_cols=True):
    """The batch in chunks of nb images: (b0, n, m) with m (K, n*L) the unfolded
    src[b0:b0+n] (C planes, output positions o), in `cols` (the whole batch: unfolded there
    unless unfold_cols is False, when it already holds them) or in one reused chunk buffer."""
    buf = None
    for b0 in range(0, B, nb):
        n = min(B, b0 + nb) - b0
        if cols is not None:
            m = cols
            if not unfold_cols:
                yield b0, n, m
                continue
        else:
            if buf is None:
                buf = xp.empty(K * n * L, dtype=dtype)
            m = buf[:K * n * L].reshape(K, n * L)
        im2col_nd(src[b0:b0 + n], _cols_view(m, n, C, k, o), k, d, pad, dil)
        yield b0, n, m


@_small_buffers
def conv_nd_forward(x, w2, bias, out, k, d, pad, dil, cols=None, budget=None):
    """out (B, nOut, L) = w2 (nOut, C*prod(k)) @ unfold(x (B, C, *i)) + bias.

    cols: an optional (K, B*L) matrix (e.g. a K-major finput) that receives the whole
    batch's columns; else chunk temporaries (at most `budget` elements)."""
    xp = array_module(out)
    B, C = x.shape[:2]
    isz = x.shape[2:]
    o = conv_output_size_nd(isz, k, d, pad, dil)
    nOut, L = out.shape[1:]
    K = w2.shape[1]
    nb = B if cols is not None else _nb_chunk(B, K * L, budget)
    for b0, n, m in _unfolded(xp, x, B, C, K, L, nb, out.dtype, k, o, d, pad, dil, cols):
        if n == 1:
            xp.matmul(w2, m, out=out[b0])
            if bias is not None:
                out[b0] += bias.reshape(nOut, 1)
        else:
            t = xp.matmul(w2, m)
            _scatter(xp, t, out[b0:b0 + n], bias)


@_small_buffers
def conv_nd_backward_input(go, w2, gx, k, d, pad, dil, budget=None, cols=None):
    """gx (B, C, *i) = fold(w2^T @ gradOutput (B, nOut, L)). cols: an optional (K, B*L)
    matrix (e.g. a K-major fgradInput) that receives the whole batch's gradient columns."""
    xp = array_module(gx)
    B, C = gx.shape[:2]
    isz = gx.shape[2:]
    o = conv_output_size_nd(isz, k, d, pad, dil)
    nOut, L = go.shape[1:]
    K = w2.shape[1]
    gx.fill(0)
    nb = B if cols is not None else _nb_chunk(B, K * L, budget)
    for b0 in range(0, B, nb):
        n = min(B, b0 + nb) - b0
        g = go[b0] if n == 1 else _gather(xp, go[b0:b0 + n])
        if cols is not None:
            m = cols
            xp.matmul(w2.T, g, out=m)
        else:
            m = xp.matmul(w2.T, g)
        col2im_nd_add(_cols_view(m, n, C, k, o), gx[b0:b0 + n], k, d, pad, dil)


@_small_buffers
def conv_nd_backward_weight(x, go, gw2, gbias, scale, k, d, pad, dil, cols=None, budget=None):
    """gw2 (nOut, K) += scale * gradOutput @ unfold(x)^T; gbias += scale * sum(gradOutput).
    cols: the (K, B*L) matrix of the forward (e.g. a K-major finput); else x is unfolded
    again (as THNN does for its per-image columns)."""
    xp = array_module(gw2)
    B, nOut, L = go.shape
    K = gw2.shape[1]
    C = x.shape[1] if x is not None else None
    o = None if x is None else conv_output_size_nd(x.shape[2:], k, d, pad, dil)
    nb = B if cols is not None else _nb_chunk(B, K * L, budget)
    for b0, n, m in _unfolded(xp, x, B, C, K, L, nb, gw2.dtype, k, o, d, pad, dil, cols,
                              unfold_cols=False):
        g = go[b0] if n == 1 else _gather(xp, go[b0:b0 + n])
        t = xp.matmul(m, g.T)              # (K, nOut): see conv2d_mm_backward_weight
        if scale != 1:
            t *= scale
        gw2 += t.T
    if gbias is not None:
        s = go.sum(axis=(0, 2))
        if scale != 1:
            s *= scale
        gbias += s


@_small_buffers
def full_conv_nd_forward(x, w2, bias, out, k, d, pad, dil, budget=None):
    """Transposed convolution: out (B, nOut, *o) = fold(w2^T @ x) + bias, x (B, nIn, *i),
    w2 (nIn, nOut*prod(k)) (THNN's SpatialFullDilatedConvolution / Volumetric...)."""
    xp = array_module(out)
    B, nIn = x.shape[:2]
    isz = x.shape[2:]
    nOut = out.shape[1]
    Li = int(np.prod(isz))
    K = w2.shape[1]
    out.fill(0)
    nb = _nb_chunk(B, K * Li, budget)
    for b0 in range(0, B, nb):
        n = min(B, b0 + nb) - b0
        xs = x[b0:b0 + n].reshape(n, nIn, Li)
        g = xs[0] if n == 1 else _gather(xp, xs)
        m = xp.matmul(w2.T, g)
        col2im_nd_add(_cols_view(m, n, nOut, k, isz), out[b0:b0 + n], k, d, pad, dil)
    if bias is not None:
        out += bias.reshape((1, nOut) + (1,) * len(k))


@_small_buffers
def full_conv_nd_backward_input(go, w2, gx, k, d, pad, dil, budget=None):
    """gx (B, nIn, *i) = w2 @ unfold(gradOutput (B, nOut, *o))."""
    xp = array_module(gx)
    B, nIn = gx.shape[:2]
    isz = gx.shape[2:]
    nOut = go.shape[1]
    Li = int(np.prod(isz))
    K = w2.shape[1]
    nb = _nb_chunk(B, K * Li, budget)
    for b0, n, m in _unfolded(xp, go, B, nOut, K, Li, nb, gx.dtype, k, isz, d, pad, dil):
        dst = gx[b0:b0 + n].reshape(n, nIn, Li)
        if n == 1:
            xp.matmul(w2, m, out=dst[0])
        else:
            _scatter(xp, xp.matmul(w2, m), dst)


@_small_buffers
def full_conv_nd_backward_weight(x, go, gw2, gbias, scale, k, d, pad, dil, budget=None):
    """gw2 (nIn, nOut*prod(k)) += scale * x @ unfold(gradOutput)^T; gbias += scale * sum."""
    xp = array_module(gw2)
    B, nIn = x.shape[:2]
    isz = x.shape[2:]
    nOut = go.shape[1]
    Li = int(np.prod(isz))
    K = gw2.shape[1]
    nb = _nb_chunk(B, K * Li, budget)
    for b0, n, m in _unfolded(xp, go, B, nOut, K, Li, nb, gw2.dtype, k, isz, d, pad, dil):
        xs = x[b0:b0 + n].reshape(n, nIn, Li)
        g = xs[0] if n == 1 else _gather(xp, xs)
        t = xp.matmul(m, g.T)              # (K, nIn)
        if scale != 1:
            t *= scale
        gw2 += t.T
    if gbias is not None:
        s = go.sum(axis=tuple(i for i in range(go.ndim) if i != 1))
        if scale != 1:
            s *= scale
        gbias += s


# --------------------------------------------------------------------------- window sums
@_small_buffers
def window_sum_nd(x, out, k, d):
    """out (B, C, *o) = sum of x (B, C, *i) over the k windows (no padding), in kernel order."""
    xp = array_module(out)
    o = out.shape[2:]
    out.fill(0)
    S = (slice(None), slice(None))
    for idx, osl, isl, state in _offsets_nd(k, d, (0,) * len(k), (1,) * len(k), x.shape[2:], o):
        if state:
            dst = out[S + osl]
            xp.add(dst, x[S + isl], out=dst)


@_small_buffers
def window_spread_nd(go, gx, k, d):
    """gx (B, C, *i) = sum over the windows that contain each element of go (B, C, *o)."""
    xp = array_module(gx)
    o = go.shape[2:]
    gx.fill(0)
    S = (slice(None), slice(None))
    for idx, osl, isl, state in _offsets_nd(k, d, (0,) * len(k), (1,) * len(k), gx.shape[2:], o):
        if state:
            dst = gx[S + isl]
            xp.add(dst, go[S + osl], out=dst)


# --------------------------------------------------------------------------- temporal conv
# THNN's TemporalConvolution: frames are rows (B, T, C); the window of output frame t is the
# kW*C contiguous elements from row t*dW, so the unfolded input is (B*oT, kW*C), row-major,
# and each pass is one GEMM for the batch (chunks of sequences only past _COLS_BUDGET).

def _frames_unfold(x, cols, kW, dW):
    """cols (n, oT, kW, C) = the windows of x (n, T, C); one strided copy per kernel offset."""
    xp = array_module(cols)
    oT = cols.shape[1]
    for k in range(kW):
        xp.copyto(cols[:, :, k], x[:, k:k + (oT - 1) * dW + 1:dW])


@_small_buffers
def temporal_conv_forward(x, w2, bias, out, kW, dW, budget=None):
    """out (B, oT, nOut) = unfold(x (B, T, C)) @ w2^T (w2: nOut x kW*C) + bias."""
    xp = array_module(out)
    B, T, C = x.shape
    oT, nOut = out.shape[1:]
    K = kW * C
    nb = _nb_chunk(B, oT * K, budget)
    buf = xp.empty(nb * oT * K, dtype=out.dtype)
    for b0 in range(0, B, nb):
        n = min(B, b0 + nb) - b0
        cols = buf[:n * oT * K].reshape(n, oT, kW, C)
        _frames_unfold(x[b0:b0 + n], cols, kW, dW)
        o = view(out[b0:b0 + n], (n * oT, nOut))
        xp.matmul(cols.reshape(n * oT, K), w2.T, out=o)
        if bias is not None:
            o += bias
    return out


@_small_buffers
def temporal_conv_backward_input(go, w2, gx, kW, dW, budget=None):
    """gx (B, T, C) = fold(gradOutput (B, oT, nOut) @ w2)."""
    xp = array_module(gx)
    B, T, C = gx.shape
    oT, nOut = go.shape[1:]
    K = kW * C
    gx.fill(0)
    nb = _nb_chunk(B, oT * K, budget)
    buf = xp.empty(nb * oT * K, dtype=gx.dtype)
    for b0 in range(0, B, nb):
        n = min(B, b0 + nb) - b0
        g = go[b0:b0 + n].reshape(n * oT, nOut)
        cols = buf[:n * oT * K].reshape(n * oT, K)
        xp.matmul(g, w2, out=cols)
        c4 = cols.reshape(n, oT, kW, C)
        for k in range(kW):
            dst = gx[b0:b0 + n, k:k + (oT - 1) * dW + 1:dW]
            xp.add(dst, c4[:, :, k], out=dst)


@_small_buffers
def temporal_conv_backward_weight(x, go, gw2, gbias, scale, kW, dW, budget=None):
    """gw2 (nOut, kW*C) += scale * gradOutput^T @ unfold(x); gbias += scale * sum(gradOutput)."""
    xp = array_module(gw2)
    B, T, C = x.shape
    oT, nOut = go.shape[1:]
    K = kW * C
    nb = _nb_chunk(B, oT * K, budget)
    buf = xp.empty(nb * oT * K, dtype=gw2.dtype)
    for b0 in range(0, B, nb):
        n = min(B, b0 + nb) - b0
        cols = buf[:n * oT * K].reshape(n, oT, kW, C)
        _frames_unfold(x[b0:b0 + n], cols, kW, dW)
        g = go[b0:b0 + n].reshape(n * oT, nOut)
        t = xp.matmul(cols.reshape(n * oT, K).T, g)      # (K, nOut): see conv2d_mm_backward_weight
        if scale != 1:
            t *= scale
        gw2 += t.T
    if gbias is not None:
        s = go.sum(axis=(0, 1))
        if scale != 1:
            s *= scale
        gbias += s
