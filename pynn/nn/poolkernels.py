"""Array kernels of THNN's N-d poolings and padding (dilated/volumetric max pooling, average
pooling, adaptive and fractional pooling, replication padding, feature LP pooling), on NumPy or
CuPy arrays.

Every kernel works on the whole batch at once: a loop runs over the kernel offsets only (each
offset is one strided or gathered block of the whole array), never over samples, planes or
positions. Arrays are (B, C, *spatial) (B*C planes); the caller owns the output arrays.

Max-pooling indices follow THNN:
* 'flat' (SpatialDilatedMaxPooling, fractional poolings): the 1-based position inside the plane
  (y*W + x + 1); 0 where the window saw no element greater than -inf;
* 'packed' (Volumetric[Dilated]MaxPooling): the kernel offsets (t, y, x) of the maximum as the
  bytes 0, 1, 2 of the (little-endian) int64, byte 3 zero; an empty window stores 255 for each.
  THNN's volumetric forward walks a window that starts in the padding from the first in-image
  position it reaches by steps of the dilation and records offset z + (k - kernel_size_left),
  and its backward puts the gradient at offset*dilation + start: both reproduced here exactly,
  also where dilation and padding together make them disagree.
"""
import itertools

import numpy as np

from ..backend import array_module

_FLT_MAX = float(np.finfo(np.float32).max)


# --------------------------------------------------------------------------- sizes
def pooled_size(i, k, d, p, dil, ceil_mode):
    """THNN's output length of one dimension, before the padding rule of pooled_sizes."""
    span = i - (dil * (k - 1) + 1) + 2 * p
    q = -((-span) // d) if ceil_mode else span // d
    return q + 1


def pooled_sizes(isz, k, d, p, dil, ceil_mode):
    """Output sizes of a THNN max/average pooling: when any padding is set, a last window that
    would start in the bottom padding is dropped (for each dimension)."""
    out = [pooled_size(i, kk, dd, pp, ll, ceil_mode) for i, kk, dd, pp, ll in zip(isz, k, d, p, dil)]
    if any(p):
        out = [o - 1 if (o - 1) * dd >= i + pp else o for o, i, dd, pp in zip(out, isz, d, p)]
    return tuple(out)


# --------------------------------------------------------------------------- selections
def _positions(o_n, k, d, p, dil, size, packed):
    """(k, o_n) int64 input positions of each kernel slot for each output (-1: none)."""
    o = np.arange(o_n, dtype=np.int64)
    start = o * d - p
    pos = np.empty((k, o_n), dtype=np.int64)
    if not packed:      # regular windows: start + m*dil inside the image
        for m in range(k):
            q = start + m * dil
            pos[m] = np.where((q >= 0) & (q < size), q, -1)
        return pos
    kn = np.minimum(k, k + start)                       # THNN's kernel_t = min(k, k + start)
    adv = np.where(start < 0, start + ((-start + dil - 1) // dil) * dil, start)
    for m in range(k):
        z = m - (k - kn)
        q = adv + z * dil
        pos[m] = np.where((z >= 0) & (q < size), q, -1)
    return pos


def _select(row, d):
    """One dimension's selection for a kernel slot: ('s', out slice, in slice) when the valid
    outputs are one run with positions step d, else ('i', out index, in index); None if empty."""
    valid = np.nonzero(row >= 0)[0]
    if valid.size == 0:
        return None
    lo, hi = int(valid[0]), int(valid[-1]) + 1
    seg = row[lo:hi]
    if valid.size == hi - lo and (seg.size == 1 or bool((np.diff(seg) == d).all())):
        p0 = int(seg[0])
        return ('s', slice(lo, hi), slice(p0, p0 + (hi - lo - 1) * d + 1, d))
    return ('i', valid, row[valid])


def _combine(sels, xp):
    """Index tuples (over the spatial dims) for the output block and the input block."""
    if all(s[0] == 's' for s in sels):
        return tuple(s[1] for s in sels), tuple(s[2] for s in sels), True
    n = len(sels)
    oi, ii = [], []
    for j, s in enumerate(sels):
        shape = [1] * n
        if s[0] == 's':
            o = np.arange(s[1].start, s[1].stop)
            i = np.arange(s[2].start, s[2].stop, s[2].step)
        else:
            o, i = s[1], s[2]
        shape[j] = o.size
        oi.append(xp.asarray(o.reshape(shape)))
        ii.append(xp.asarray(i.reshape(shape)))
    return tuple(oi), tuple(ii), False


def _window_blocks(isz, osz, k, d, p, dil, packed, xp):
    """For each kernel offset (lexicographic, THNN's order): (slots, out index, in index, is_view,
    input positions per dim as broadcastable arrays over the output block)."""
    per_dim = [_positions(o, kk, dd, pp, ll, i, packed)
               for i, o, kk, dd, pp, ll in zip(isz, osz, k, d, p, dil)]
    sels = [[_select(pos[m], dd) for m in range(kk)] for pos, kk, dd in zip(per_dim, k, d)]
    for combo in itertools.product(*[range(kk) for kk in k]):
        s = [sels[j][m] for j, m in enumerate(combo)]
        if any(v is None for v in s):
            continue
        oidx, iidx, view = _combine(s, xp)
        yield combo, oidx, iidx, view, s


def _block_positions(s, xp):
    """Input positions of a block, one broadcastable int64 array per dim."""
    n = len(s)
    out = []
    for j, v in enumerate(s):
        shape = [1] * n
        if v[0] == 's':
            a = np.arange(v[2].start, v[2].stop, v[2].step, dtype=np.int64)
        else:
            a = v[2].astype(np.int64)
        shape[j] = a.size
        out.append(xp.asarray(a.reshape(shape)))
    return out


_ALL2 = (slice(None), slice(None))


# --------------------------------------------------------------------------- max pooling
def maxpool_forward(x, out, ind, k, d, p, dil, packed=False):
    """out = window max (first maximum in window order; NaN never wins; -inf where no element is
    greater than -inf), ind = THNN's indices ('flat' or 'packed', see the module docstring)."""
    xp = array_module(out)
    isz, osz = x.shape[2:], out.shape[2:]
    blocks = list(_window_blocks(isz, osz, k, d, p, dil, packed, xp))
    out.fill(-np.inf)
    for _, oidx, iidx, view, _ in blocks:
        if view:
            o = out[_ALL2 + oidx]
            xp.fmax(o, x[_ALL2 + iidx], out=o)
        else:
            out[_ALL2 + oidx] = xp.fmax(out[_ALL2 + oidx], x[_ALL2 + iidx])
    empty = (255 | 255 << 8 | 255 << 16) if packed else 0
    ind.fill(empty)
    strides = [int(np.prod(isz[j + 1:])) for j in range(len(isz))]
    for combo, oidx, iidx, view, s in reversed(blocks):   # the first maximum wins
        if packed:
            code = sum(m << (8 * j) for j, m in enumerate(combo))
        else:
            pos = _block_positions(s, xp)
            code = 1
            for a, st in zip(pos, strides):
                code = code + a * st
        hit = x[_ALL2 + iidx] == out[_ALL2 + oidx]
        if view:
            i = ind[_ALL2 + oidx]
            i += (code - i) * hit
        else:
            i = ind[_ALL2 + oidx]
            ind[_ALL2 + oidx] = i + (code - i) * hit
    xp.copyto(ind, empty, where=~(out > -np.inf))


def _flat_scatter(gx, idx, vals):
    """gx (contiguous, zeroed by the caller) += vals at flat positions idx, in the given order."""
    xp = array_module(gx)
    flat = gx.reshape(-1)
    if xp is np:
        acc = np.bincount(idx, weights=vals, minlength=flat.size)
        flat += acc.astype(flat.dtype, copy=False)
    else:  # pragma: no cover - CuPy
        import cupyx
        cupyx.scatter_add(flat, idx, vals)


def maxpool_backward(go, ind, gx, k, d, p, dil, packed=False):
    """gx = zero, then += go at the recorded argmax positions (THNN's order)."""
    xp = array_module(gx)
    B, C = gx.shape[:2]
    isz, osz = gx.shape[2:], go.shape[2:]
    plane = int(np.prod(isz))
    base = (xp.arange(B * C, dtype=np.int64) * plane).reshape((B, C) + (1,) * len(isz))
    if packed:
        flat = None
        keep = None
        for j, (o_n, dd, pp, ll, size) in enumerate(zip(osz, d, p, dil, isz)):
            m = (ind >> (8 * j)) & 255
            shape = [1] * len(osz)
            shape[j] = o_n
            grid = (xp.arange(o_n, dtype=np.int64) * dd - pp).reshape(shape)
            q = m * ll + grid
            ok = (m != 255) & (q >= 0) & (q < size)
            keep = ok if keep is None else keep & ok
            st = int(np.prod(isz[j + 1:]))
            flat = q * st if flat is None else flat + q * st
        flat = flat + base
    else:
        flat = ind - 1 + base
        keep = ind > 0
    gx.fill(0)
    g = go if go.flags.c_contiguous else xp.ascontiguousarray(go)
    if bool(keep.all()):
        _flat_scatter(gx, flat.reshape(-1), g.reshape(-1))
    else:
        _flat_scatter(gx, flat[keep], g[keep])


# --------------------------------------------------------------------------- average pooling
def avg_divisors(isz, osz, k, d, p, count_include_pad, xp, dtype):
    """THNN's divide factor per output position (broadcastable over the spatial dims)."""
    div = None
    n = len(isz)
    for j, (i, o, kk, dd, pp) in enumerate(zip(isz, osz, k, d, p)):
        start = np.arange(o, dtype=np.int64) * dd - pp
        end = np.minimum(start + kk, i + pp)
        c = end - start if count_include_pad else np.minimum(end, i) - np.maximum(start, 0)
        shape = [1] * n
        shape[j] = o
        c = c.reshape(shape)
        div = c if div is None else div * c
    return xp.asarray(div.astype(dtype))


def avgpool_forward(x, out, k, d, p, count_include_pad=True):
    xp = array_module(out)
    isz, osz = x.shape[2:], out.shape[2:]
    out.fill(0)
    for _, oidx, iidx, view, _ in _window_blocks(isz, osz, k, d, p, (1,) * len(k), False, xp):
        o = out[_ALL2 + oidx]
        xp.add(o, x[_ALL2 + iidx], out=o)
    with np.errstate(divide='ignore', invalid='ignore'):
        xp.divide(out, avg_divisors(isz, osz, k, d, p, count_include_pad, xp, out.dtype), out=out)


def avgpool_backward(go, gx, k, d, p, count_include_pad=True):
    xp = array_module(gx)
    isz, osz = gx.shape[2:], go.shape[2:]
    gx.fill(0)
    with np.errstate(divide='ignore', invalid='ignore'):
        t = go / avg_divisors(isz, osz, k, d, p, count_include_pad, xp, gx.dtype)
    for _, oidx, iidx, view, _ in _window_blocks(isz, osz, k, d, p, (1,) * len(k), False, xp):
        g = gx[_ALL2 + iidx]
        xp.add(g, t[_ALL2 + oidx], out=g)


# --------------------------------------------------------------------------- adaptive pooling
def adaptive_ranges_max(i, o):
    """SpatialAdaptiveMaxPooling's windows: floor/ceil of (float)j / o * i in single precision."""
    f = np.float32
    j = np.arange(o, dtype=np.float32)
    start = np.floor(j / f(o) * f(i)).astype(np.int64)
    end = np.ceil((j + f(1)) / f(o) * f(i)).astype(np.int64)
    return start, end


def adaptive_ranges_avg(i, o):
    """SpatialAdaptiveAveragePooling's windows: floor/ceil of (float)(j*i) / o."""
    f = np.float32
    j = np.arange(o, dtype=np.int64)
    start = np.floor((j * i).astype(np.float32) / f(o)).astype(np.int64)
    end = np.ceil(((j + 1) * i).astype(np.float32) / f(o)).astype(np.int64)
    return start, end


def _gather_axis(xp, a, axis, idx):
    return xp.take(a, xp.asarray(idx), axis=axis)


def adaptive_max_forward(x, out, indices):
    """x (B, C, H, W) -> out (B, C, oH, oW); indices (2, B, C, oH, oW): 1-based y and x offsets
    of the maximum inside its window (THNN starts the max at -FLT_MAX). Separable: the max of
    each row segment, then the max over the rows (first maximum in raster order)."""
    xp = array_module(out)
    H, W = x.shape[2:]
    oH, oW = out.shape[2:]
    ys, ye = adaptive_ranges_max(H, oH)
    xs, xe = adaptive_ranges_max(W, oW)
    kw = xe - xs
    kh = ye - ys
    if (kh == kh[0]).all() and (kw == kw[0]).all() and (ys == np.arange(oH) * kh[0]).all() and \
            (xs == np.arange(oW) * kw[0]).all():
        # equal, adjacent windows: a strided max pooling, its flat argmax turned into offsets;
        # THNN starts from -FLT_MAX: windows without a greater element keep it (index -1)
        k = (int(kh[0]), int(kw[0]))
        flat = xp.empty(out.shape, dtype=np.int64)
        maxpool_forward(x, out, flat, k, k, (0, 0), (1, 1))
        flat -= 1
        yy = flat // W - xp.asarray(ys)[:, None]
        xx = flat % W - xp.asarray(xs)[None, :]
        none = ~(out > -_FLT_MAX)
        out[none] = -_FLT_MAX
        kwb = int(kw[0])
        q, r = (0, -1) if kwb > 1 else (-1, 0)          # C's -1 / kW and -1 % kW
        indices[0][...] = xp.where(none, q, yy) + 1
        indices[1][...] = xp.where(none, r, xx) + 1
        return
    # pass 1 over W: rowmax (B, C, H, oW), argx (0-based offset, -1 = none)
    rowmax = xp.full(x.shape[:3] + (oW,), -_FLT_MAX, dtype=x.dtype)
    argx = xp.full(rowmax.shape, -1, dtype=np.int64)
    for m in range(int(kw.max())):
        ok = xp.asarray(m < kw)
        v = _gather_axis(xp, x, 3, np.minimum(xs + m, W - 1))
        better = (v > rowmax) & ok
        xp.copyto(rowmax, v, where=better)
        xp.copyto(argx, m, where=better)
    res = xp.full(out.shape, -_FLT_MAX, dtype=x.dtype)
    argy = xp.full(out.shape, -1, dtype=np.int64)
    bx = xp.full(out.shape, -1, dtype=np.int64)
    for m in range(int(kh.max())):
        ok = xp.asarray(m < kh)[:, None]
        rows = np.minimum(ys + m, H - 1)
        v = _gather_axis(xp, rowmax, 2, rows)
        ax = _gather_axis(xp, argx, 2, rows)
        better = (v > res) & ok & (ax >= 0)
        xp.copyto(res, v, where=better)
        xp.copyto(argy, m, where=better)
        xp.copyto(bx, ax, where=better)
    out[...] = res
    # THNN: maxindex = y*kW + x (or -1); stores maxindex / kW + 1 and maxindex % kW + 1 (C ops)
    kwb = xp.asarray(kw)
    maxindex = xp.where(argy >= 0, argy * kwb + bx, -1)
    q = xp.where(maxindex >= 0, maxindex // kwb, -((-maxindex) // kwb))
    r = maxindex - q * kwb
    indices[0][...] = q + 1
    indices[1][...] = r + 1


def adaptive_max_backward(go, indices, gx):
    xp = array_module(gx)
    B, C, H, W = gx.shape
    oH, oW = go.shape[2:]
    ys, _ = adaptive_ranges_max(H, oH)
    xs, _ = adaptive_ranges_max(W, oW)
    yy = indices[0] - 1 + xp.asarray(ys)[:, None]
    xx = indices[1] - 1 + xp.asarray(xs)[None, :]
    base = (xp.arange(B * C, dtype=np.int64) * (H * W)).reshape(B, C, 1, 1)
    flat = base + yy * W + xx
    gx.fill(0)
    keep = (yy >= 0) & (yy < H) & (xx >= 0) & (xx < W)
    g = go if go.flags.c_contiguous else xp.ascontiguousarray(go)
    _flat_scatter(gx, flat[keep], g[keep])


def _adaptive_sum_axis(xp, a, axis, start, end):
    """Sums of a over [start, end) along axis (one gathered block per window offset)."""
    k = end - start
    n = a.shape[axis]
    shape = list(a.shape)
    shape[axis] = start.size
    res = xp.zeros(shape, dtype=a.dtype)
    bshape = [1] * a.ndim
    bshape[axis] = start.size
    for m in range(int(k.max())):
        v = _gather_axis(xp, a, axis, np.minimum(start + m, n - 1))
        v *= xp.asarray((m < k).reshape(bshape))
        res += v
    return res


def adaptive_avg_forward(x, out):
    xp = array_module(out)
    H, W = x.shape[2:]
    oH, oW = out.shape[2:]
    if H % oH == 0 and W % oW == 0:     # equal windows: a plain strided average pooling
        k = (H // oH, W // oW)
        avgpool_forward(x, out, k, k, (0, 0), True)
        return
    ys, ye = adaptive_ranges_avg(H, oH)
    xs, xe = adaptive_ranges_avg(W, oW)
    s = _adaptive_sum_axis(xp, _adaptive_sum_axis(xp, x, 3, xs, xe), 2, ys, ye)
    s /= xp.asarray((xe - xs).astype(out.dtype))[None, :]
    s /= xp.asarray((ye - ys).astype(out.dtype))[:, None]
    out[...] = s


def adaptive_avg_backward(go, gx):
    """gx[y, x] = sum over the windows holding (y, x) of go / kW / kH."""
    xp = array_module(gx)
    H, W = gx.shape[2:]
    oH, oW = go.shape[2:]
    if H % oH == 0 and W % oW == 0:
        k = (H // oH, W // oW)
        avgpool_backward(go, gx, k, k, (0, 0), True)
        return
    ys, ye = adaptive_ranges_avg(H, oH)
    xs, xe = adaptive_ranges_avg(W, oW)
    g = go / xp.asarray((xe - xs).astype(gx.dtype))[None, :]
    g /= xp.asarray((ye - ys).astype(gx.dtype))[:, None]
    gx.fill(0)
    # scatter along W then along H: one add per window offset
    tmp = _scatter_axis(xp, g, 2, ys, ye, H)
    gx[...] = _scatter_axis(xp, tmp, 3, xs, xe, W)


def _add_at(xp, dst, idx, vals):
    if xp is np:
        np.add.at(dst, idx, vals)
    else:  # pragma: no cover - CuPy
        import cupyx
        cupyx.scatter_add(dst, idx, vals)


def _scatter_axis(xp, a, axis, start, end, n):
    """res (size n along axis) with res[start_i + m] += a[i] for m < end_i - start_i."""
    k = end - start
    shape = list(a.shape)
    shape[axis] = n
    res = xp.zeros(shape, dtype=a.dtype)
    for m in range(int(k.max())):
        sel = np.nonzero(m < k)[0]
        pos = start[sel] + m      # distinct within one m (starts strictly increase)
        idx = [slice(None)] * a.ndim
        idx[axis] = xp.asarray(pos)
        src = [slice(None)] * a.ndim
        src[axis] = xp.asarray(sel)
        if np.unique(pos).size == pos.size:
            res[tuple(idx)] += a[tuple(src)]
        else:                     # starts repeat when upsampling
            _add_at(xp, res, tuple(idx), a[tuple(src)])
    return res


# --------------------------------------------------------------------------- fractional pooling
def fractional_starts(samples, isz, osz, pool, dtype):
    """THNN's generateIntervals for each plane: samples (P,) -> (P, osz) int64 window starts."""
    P = samples.shape[0]
    seq = np.empty((P, osz), dtype=np.int64)
    f = np.dtype(dtype).type
    s = samples.astype(dtype)
    if osz > 1:
        with np.errstate(divide='ignore', invalid='ignore'):
            alpha = f(isz - pool) / f(osz - 1)
        i = np.arange(osz - 1).astype(dtype)
        seq[:, :-1] = ((i[None, :] + s[:, None]) * alpha).astype(np.int64) - \
            (s * alpha).astype(np.int64)[:, None]
    seq[:, -1] = isz - pool
    return seq


def fractional_max_forward(x, out, ind, starts, pool):
    """x (P, *isz) planes; starts: per dim (P, o_d) window starts; out/ind (P, *osz): max over
    the pool-size window in raster order, ind the 1-based flat position in the plane."""
    xp = array_module(out)
    P = x.shape[0]
    isz, osz = x.shape[1:], out.shape[1:]
    n = len(isz)
    X = x.reshape(P, -1)
    strides = [int(np.prod(isz[j + 1:])) for j in range(n)]
    base = []
    for j, (st, s) in enumerate(zip(strides, starts)):
        shape = [P] + [1] * n
        shape[1 + j] = osz[j]
        base.append(xp.asarray(s.reshape(shape)) * st)
    flats = []
    for combo in itertools.product(*[range(q) for q in pool]):
        f = sum(b + m * st for b, m, st in zip(base, combo, strides))
        flats.append(xp.broadcast_to(f, (P,) + tuple(osz)).reshape(P, -1))
    O = out.reshape(P, -1)
    O.fill(-np.inf)
    for f in flats:
        xp.fmax(O, xp.take_along_axis(X, f, axis=1), out=O)
    I = ind.reshape(P, -1)
    I.fill(0)
    for f in reversed(flats):
        hit = xp.take_along_axis(X, f, axis=1) == O
        I += (f + 1 - I) * hit
    I *= O > -np.inf


def fractional_max_backward(go, ind, gx):
    """gx (P, *isz) = zero, += go at ind - 1 per plane."""
    xp = array_module(gx)
    P = gx.shape[0]
    plane = int(np.prod(gx.shape[1:]))
    flat = ind.reshape(P, -1) - 1 + (xp.arange(P, dtype=np.int64) * plane)[:, None]
    g = go.reshape(P, -1)
    keep = ind.reshape(P, -1) > 0
    gx.fill(0)
    _flat_scatter(gx, flat[keep], g[keep])


# --------------------------------------------------------------------------- replication padding
def _pad_ranges(i, pl, pr):
    """Output [o0, o1) <- input [i0, i1) of one dim; the output has length i + pl + pr."""
    i0, i1 = max(0, -pl), i - max(0, -pr)
    o0 = max(0, pl)
    return o0, o0 + (i1 - i0), i0, i1


def replication_pad_forward(x, out, pads):
    """pads: per spatial dim (before, after). out[j] = x[clamp(j - before, 0, i - 1)]."""
    nd = len(pads)
    lead = x.ndim - nd
    r = [_pad_ranges(i, a, b) for i, (a, b) in zip(x.shape[lead:], pads)]
    pre = (slice(None),) * lead
    out[pre + tuple(slice(o0, o1) for o0, o1, _, _ in r)] = \
        x[pre + tuple(slice(i0, i1) for _, _, i0, i1 in r)]
    for j in reversed(range(nd)):     # last dim first, over the interior of the earlier dims
        o0, o1 = r[j][0], r[j][1]
        idx = [slice(None)] * out.ndim
        for jj in range(j):
            idx[lead + jj] = slice(r[jj][0], r[jj][1])
        n = out.shape[lead + j]
        if o0 > 0:
            dst = list(idx)
            dst[lead + j] = slice(0, o0)
            src = list(idx)
            src[lead + j] = slice(o0, o0 + 1)
            out[tuple(dst)] = out[tuple(src)]
        if o1 < n:
            dst = list(idx)
            dst[lead + j] = slice(o1, n)
            src = list(idx)
            src[lead + j] = slice(o1 - 1, o1)
            out[tuple(dst)] = out[tuple(src)]


def replication_pad_backward(go, gx, pads):
    """gx[a] = sum of go over the output positions that copy input position a."""
    xp = array_module(gx)
    nd = len(pads)
    lead = gx.ndim - nd
    r = [_pad_ranges(i, a, b) for i, (a, b) in zip(gx.shape[lead:], pads)]
    gx.fill(0)
    regions = []
    for j, (o0, o1, i0, i1) in enumerate(r):
        n = go.shape[lead + j]
        opts = [(slice(o0, o1), slice(i0, i1), False)]
        if o0 > 0:
            opts.append((slice(0, o0), slice(i0, i0 + 1), True))
        if o1 < n:
            opts.append((slice(o1, n), slice(i1 - 1, i1), True))
        regions.append(opts)
    pre = (slice(None),) * lead
    for combo in itertools.product(*regions):
        src = go[pre + tuple(c[0] for c in combo)]
        axes = tuple(lead + j for j, c in enumerate(combo) if c[2])
        if axes:
            src = src.sum(axis=axes, keepdims=True)
        dst = gx[pre + tuple(c[1] for c in combo)]
        xp.add(dst, src, out=dst)


# --------------------------------------------------------------------------- feature LP pooling
def feature_lp_forward(x, out, power, width, stride):
    """x, out: (B, F, A, C) views (4-d); out[f] = (sum_{i<width, f*stride+i < F} x^p)^(1/p),
    the sum in float64 (THNN's accreal) for float32 too."""
    xp = array_module(out)
    F, oF = x.shape[1], out.shape[1]
    acc = xp.zeros(out.shape, dtype=np.float64)
    for i in range(width):
        n = min(oF, (F - 1 - i) // stride + 1) if F - 1 - i >= 0 else 0
        if n <= 0:
            continue
        v = x[:, i:i + (n - 1) * stride + 1:stride].astype(np.float64)
        acc[:, :n] += xp.power(v, power)
    out[...] = xp.power(acc, 1.0 / power)


def feature_lp_backward(go, x, out, gx, power, width, stride):
    """gx[f*stride + i] += go[f] * (x / out[f])^(p-1), skipping outputs equal to 0."""
    xp = array_module(gx)
    oF = out.shape[1]
    gx.fill(0)
    nz = out != 0
    for i in range(width):
        sl = slice(i, i + (oF - 1) * stride + 1, stride)
        xi = x[:, sl]
        with np.errstate(divide='ignore', invalid='ignore'):
            r = xp.power((xi / out).astype(np.float64), power - 1.0)
            v = (go * r).astype(gx.dtype)
        v[~nz] = 0
        g = gx[:, sl]
        xp.add(g, v, out=g)


# --------------------------------------------------------------------------- volumetric unpooling
def unpool_packed_positions(ind, d, p, osz):
    """VolumetricMaxUnpooling: flat output positions (B, C, *isz) of packed indices (kernel offset
    + input position * stride - pad per dim); also the first invalid flat index (THNN's error)
    or None."""
    xp = array_module(ind)
    B, C = ind.shape[:2]
    isz = ind.shape[2:]
    n = len(isz)
    flat = None
    ok = None
    for j in range(n):
        m = (ind >> (8 * j)) & 255
        shape = [1] * n
        shape[j] = isz[j]
        q = m + (xp.arange(isz[j], dtype=np.int64) * d[j] - p[j]).reshape(shape)
        v = (q >= 0) & (q < osz[j])
        ok = v if ok is None else ok & v
        st = int(np.prod(osz[j + 1:]))
        flat = q * st if flat is None else flat + q * st
    plane = int(np.prod(osz))
    bad = None
    if not bool(ok.all()):
        c = xp.arange(C, dtype=np.int64).reshape((1, C) + (1,) * n) * plane
        bad = int((xp.broadcast_to(c, flat.shape) + flat)[~ok].reshape(-1)[0])
    flat = flat + (xp.arange(B * C, dtype=np.int64) * plane).reshape((B, C) + (1,) * n)
    return flat, bad
