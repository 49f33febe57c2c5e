"""Torch7's shape and indexing functions (cat diag tril/triu cross gather/scatter nonzero
index* masked* reshape repeatTensor expand permute split/chunk squeeze unfold sub histc match
renorm), in Lua's forms; bound onto Tensor by tensor_math.bind(). Views share the storage.
"""
import numpy as np

from .storage import _to_module
from .tensor import _as_sizes
from .tensor_math import (_a, _desc, _dim0, _fail, _fmt_size, _is_t, _need_t, _new, _number, _put,
                          _split_result, _xp)


# ----------------------------------------------------------------------------- shape and indexing

def cat(*args):
    """cat([r,] x, y [, dim]) | cat([r,] {x, y, ...} [, dim]); dim defaults to the last."""
    r = None
    args = list(args)
    if len(args) >= 2 and _is_t(args[0]) and (isinstance(args[1], (list, tuple)) or
                                               (len(args) >= 3 and _is_t(args[1]) and _is_t(args[2]))):
        r = args.pop(0)
    if args and isinstance(args[0], (list, tuple)):
        ts = list(args[0])
        rest = args[1:]
    else:
        ts = [a for a in args if _is_t(a)]
        rest = [a for a in args if not _is_t(a)]
    if not ts:
        _fail('cat', 'expected tensors to concatenate', TypeError)
    for t in ts:
        _need_t('cat', t)
    ts_ne = [t for t in ts if t.nElement() > 0 or t.dim() > 0]
    if not ts_ne:
        return r if r is not None else _new(ts[0])
    nd = max(t.dim() for t in ts_ne)
    d = rest[0] if rest and rest[0] is not None else nd
    if d < 0:
        d = nd + d + 1
    if not 1 <= d <= nd:
        _fail('cat', 'dimension %d out of range 1..%d' % (d, nd), IndexError)
    base = ts_ne[0].size()
    for t in ts_ne:
        s = t.size()
        if len(s) != len(base) or any(s[i] != base[i] for i in range(len(s)) if i != d - 1):
            _fail('cat', 'sizes do not match outside dimension %d: %s vs %s'
                  % (d, _fmt_size(base), _fmt_size(s)))
    xp = _xp(ts_ne[0])
    arr = xp.concatenate([_a(t) for t in ts_ne], axis=d - 1)
    r = r if r is not None else _new(ts_ne[0])
    return _put(r, arr)


def diag(*args):
    res, args = _split_result(args, 1)
    x = _need_t('diag', args[0])
    k = int(args[1]) if len(args) > 1 else 0
    xp = _xp(x)
    if x.dim() == 1:
        arr = xp.diag(_a(x), k)
    elif x.dim() == 2:
        arr = xp.diagonal(_a(x), k).copy()
    else:
        _fail('diag', 'expected a 1D or 2D tensor, got %s' % _desc(x))
    r = res[0] if res else _new(x)
    return _put(r, arr)


def _tri(name, upper):
    def func(*args):
        res, args = _split_result(args, 1)
        x = _need_t(name, args[0])
        if x.dim() != 2:
            _fail(name, 'expected a 2D tensor, got %s' % _desc(x))
        k = int(args[1]) if len(args) > 1 else 0
        xp = _xp(x)
        arr = xp.triu(_a(x), k) if upper else xp.tril(_a(x), k)
        r = res[0] if res else _new(x)
        return _put(r, arr)

    def method(self, *args):
        return func(self, *args)
    return method, func


def cross(*args):
    res, args = _split_result(args, 1) if len(args) >= 3 and _is_t(args[2]) else (None, args)
    a, b = _need_t('cross', args[0]), _need_t('cross', args[1])
    if a.size() != b.size():
        _fail('cross', 'sizes differ: %s vs %s' % (_fmt_size(a.size()), _fmt_size(b.size())))
    if len(args) > 2:
        d = _dim0('cross', a, args[2])
    else:
        ds = [i for i, s in enumerate(a.size()) if s == 3]
        if not ds:
            _fail('cross', 'no dimension of size 3 in %s' % _desc(a))
        d = ds[0]
    if a.size(d + 1) != 3:
        _fail('cross', 'dimension %d has size %d, expected 3' % (d + 1, a.size(d + 1)))
    xp = _xp(a)
    arr = xp.cross(_a(a), _a(b), axis=d)
    r = res[0] if res else _new(a)
    return _put(r, arr)


def _check_index(name, idx, n):
    _need_t(name, idx, 'a LongTensor of indices')
    if idx._kind not in ('Long', 'Int', 'Short', 'Char', 'Byte'):
        _fail(name, 'expected a LongTensor of indices, got %s' % _desc(idx), TypeError)
    ia = _a(idx).astype(np.int64)
    if ia.size and (int(ia.min()) < 1 or int(ia.max()) > n):
        _fail(name, 'index out of range: indices %d..%d, expected 1..%d' % (int(ia.min()), int(ia.max()), n),
              IndexError)
    return ia - 1


def gather(*args):
    res, args = (_split_result(args, 1) if len(args) == 4 else (None, args))
    x = _need_t('gather', args[0])
    d = _dim0('gather', x, args[1])
    idx = _need_t('gather', args[2], 'a LongTensor of indices')
    if idx.dim() != x.dim():
        _fail('gather', 'index must have %d dimensions, got %s' % (x.dim(), _desc(idx)))
    ia = _check_index('gather', idx, x.size(d + 1))
    arr = _xp(x).take_along_axis(_a(x), ia, d)
    r = res[0] if res else _new(x)
    return _put(r, arr)


def scatter(self, dim, idx, src):
    """x.scatter(dim, idx, src | value): x[..., idx[i], ...] = src[i] along dim, in place."""
    d = _dim0('scatter', self, dim)
    ia = _check_index('scatter', idx, self.size(d + 1))
    if idx.dim() != self.dim() or any(idx.size(i + 1) > self.size(i + 1)
                                      for i in range(self.dim()) if i != d):
        _fail('scatter', 'index of size %s does not fit a tensor of size %s along dimension %d'
              % (_fmt_size(idx.size()), _fmt_size(self.size()), dim))
    if _is_t(src) and (src.dim() != idx.dim() or any(a < b for a, b in zip(src.size(), idx.size()))):
        _fail('scatter', 'source of size %s is smaller than the index %s'
              % (_fmt_size(src.size()), _fmt_size(idx.size())))
    a = _a(self)
    xp = _xp(self)
    if _is_t(src):
        vals = _a(src)
        sl = tuple(slice(0, s) for s in ia.shape)
        vals = vals[sl]
    else:
        vals = xp.full(ia.shape, src, dtype=a.dtype)
    grid = list(xp.indices(ia.shape))
    grid[d] = ia
    a[tuple(grid)] = vals
    return self


def nonzero(*args):
    res, args = _split_result(args, 1)
    x = _need_t('nonzero', args[0])
    xp = _xp(x)
    nz = xp.stack(xp.nonzero(_a(x)), axis=1) + 1 if x.nElement() else xp.zeros((0, x.dim()), np.int64)
    r = res[0] if res else _new(x, 'Long')
    return _put(r, nz)


def index(*args):
    """x.index(dim, idx) -> new tensor; pynn.index(r, x, dim, idx) fills r."""
    if len(args) == 4:
        r, x, dim, idx = args
    else:
        x, dim, idx = args
        r = None
    _need_t('index', x)
    d = _dim0('index', x, dim)
    ia = _check_index('index', idx, x.size(d + 1)).reshape(-1)
    arr = _xp(x).take(_a(x), ia, axis=d)
    r = r if r is not None else _new(x)
    return _put(r, arr)


def indexCopy(self, dim, idx, src):
    d = _dim0('indexCopy', self, dim)
    ia = _check_index('indexCopy', idx, self.size(d + 1)).reshape(-1)
    _need_t('indexCopy', src)
    want = list(self.size())
    want[d] = len(ia)
    if src.nElement() != int(np.prod(want)):
        _fail('indexCopy', 'source has %d elements, expected %s' % (src.nElement(), _fmt_size(want)))
    a = _a(self)
    sl = [slice(None)] * self.dim()
    sl[d] = ia
    a[tuple(sl)] = _a(src).reshape(want)
    return src


def indexAdd(self, dim, idx, src):
    d = _dim0('indexAdd', self, dim)
    ia = _check_index('indexAdd', idx, self.size(d + 1)).reshape(-1)
    _need_t('indexAdd', src)
    want = list(self.size())
    want[d] = len(ia)
    if src.nElement() != int(np.prod(want)):
        _fail('indexAdd', 'source has %d elements, expected %s' % (src.nElement(), _fmt_size(want)))
    a = _a(self)
    moved = _xp(self).moveaxis(a, d, 0)
    _xp(self).add.at(moved, ia, _xp(self).moveaxis(_a(src).reshape(want), d, 0))
    return src


def indexFill(self, dim, idx, value):
    d = _dim0('indexFill', self, dim)
    ia = _check_index('indexFill', idx, self.size(d + 1)).reshape(-1)
    sl = [slice(None)] * self.dim()
    sl[d] = ia
    _a(self)[tuple(sl)] = value
    return value


def _mask(name, x, mask):
    _need_t(name, mask, 'a ByteTensor mask')
    if mask.nElement() != x.nElement():
        _fail(name, 'mask has %d elements, tensor %d' % (mask.nElement(), x.nElement()))
    return _to_module(_a(mask), _xp(x)).reshape(x.size()).astype(bool)


def maskedSelect(*args):
    if len(args) == 3:
        r, x, mask = args
    else:
        (x, mask), r = args, None
    m = _mask('maskedSelect', x, mask)
    r = r if r is not None else _new(x)
    return _put(r, _a(x)[m])


def maskedFill(self, mask, value):
    m = _mask('maskedFill', self, mask)
    _a(self)[m] = value
    return value


def maskedCopy(self, mask, src):
    m = _mask('maskedCopy', self, mask)
    _need_t('maskedCopy', src)
    n = int(m.sum())
    if src.nElement() < n:
        _fail('maskedCopy', 'source has %d elements, mask selects %d' % (src.nElement(), n))
    _a(self)[m] = _a(src).reshape(-1)[:n]
    return self


def reshape(*args):
    res = None
    if len(args) >= 2 and _is_t(args[0]) and _is_t(args[1]):
        res, args = args[0], args[1:]
    x = _need_t('reshape', args[0])
    size = _as_sizes(args[1:])
    if int(np.prod(size)) != x.nElement():
        _fail('reshape', 'size %s has %d elements, tensor %d' % (_fmt_size(size), int(np.prod(size)),
                                                                 x.nElement()))
    r = res if res is not None else _new(x)
    return _put(r, _a(x).reshape(size))


def repeatTensor(*args):
    res = None
    if len(args) >= 2 and _is_t(args[0]) and _is_t(args[1]):
        res, args = args[0], args[1:]
    x = _need_t('repeatTensor', args[0])
    reps = _as_sizes(args[1:])
    if len(reps) < x.dim():
        _fail('repeatTensor', 'expected at least %d repetitions, got %d' % (x.dim(), len(reps)))
    a = _a(x).reshape((1,) * (len(reps) - x.dim()) + tuple(x.size()))
    r = res if res is not None else _new(x)
    return _put(r, _xp(x).tile(a, reps))


def expand(x, *sizes):
    _need_t('expand', x)
    size = _as_sizes(sizes)
    if len(size) != x.dim():
        _fail('expand', 'expected %d sizes, got %s' % (x.dim(), _fmt_size(size)))
    stride = []
    for s, xs, st in zip(size, x.size(), x.stride()):
        if xs == s:
            stride.append(st)
        elif xs == 1:
            stride.append(0)
        else:
            _fail('expand', 'cannot expand size %s to %s' % (_fmt_size(x.size()), _fmt_size(size)))
    return x._view_of(x._offset, size, stride)


def expandAs(x, y):
    return expand(x, *y.size())


def permute(x, *dims):
    dims = _as_sizes(dims)
    if sorted(dims) != list(range(1, x.dim() + 1)):
        _fail('permute', 'expected a permutation of 1..%d, got %s' % (x.dim(), list(dims)))
    return x._view_of(x._offset, [x.size(d) for d in dims], [x.stride(d) for d in dims])


def split(*args):
    res = None
    if args and isinstance(args[0], list) and len(args) > 1 and _is_t(args[1]):
        res, args = args[0], args[1:]
    x = _need_t('split', args[0])
    size = int(args[1])
    d = _dim0('split', x, args[2] if len(args) > 2 else 1)
    if size <= 0:
        _fail('split', 'size must be positive, got %d' % size)
    n = x.size(d + 1)
    out = [x.narrow(d + 1, i + 1, min(size, n - i)) for i in range(0, n, size)]
    if res is not None:
        res[:] = out
        return res
    return out


def chunk(*args):
    res = None
    if args and isinstance(args[0], list) and len(args) > 1 and _is_t(args[1]):
        res, args = args[0], args[1:]
    x = _need_t('chunk', args[0])
    n = int(args[1])
    d = args[2] if len(args) > 2 else 1
    size = -(-x.size(_dim0('chunk', x, d) + 1) // n)
    return split(*( [res] if res is not None else []), x, size, d)


def squeeze(*args):
    res = None
    if len(args) >= 2 and _is_t(args[0]) and _is_t(args[1]):
        res, args = args[0], args[1:]
    x = _need_t('squeeze', args[0])
    if len(args) > 1:
        d = _dim0('squeeze', x, args[1])
        if x.size(d + 1) == 1 and x.dim() > 1:
            keep = [i for i in range(x.dim()) if i != d]
        else:
            keep = list(range(x.dim()))
    else:
        keep = [i for i in range(x.dim()) if x.size(i + 1) != 1]
        if not keep and x.dim() > 0:
            if res is None:
                return _number(_a(x).reshape(-1)[0])
            keep = [0]
            return res.set(x._view_of(x._offset, [1], [1]))
    v = x._view_of(x._offset, [x.size(i + 1) for i in keep], [x.stride(i + 1) for i in keep])
    if res is not None:
        return res.set(v)
    return v


def unsqueeze(x, dim):
    d = _dim0('unsqueeze', x, dim, extra=1)
    size = list(x.size())
    stride = list(x.stride())
    st = size[d] * stride[d] if d < len(size) else 1
    size.insert(d, 1)
    stride.insert(d, st)
    return x._view_of(x._offset, size, stride)


def totable(x):
    return x.tolist()


def unfold(x, dim, size, step):
    d = _dim0('unfold', x, dim)
    n = x.size(d + 1)
    if not 0 < size <= n or step <= 0:
        _fail('unfold', 'size %d and step %d invalid for dimension %d of size %d' % (size, step, dim, n))
    sz = list(x.size())
    st = list(x.stride())
    sz[d] = (n - size) // step + 1
    st_d = st[d]
    st[d] = st_d * step
    return x._view_of(x._offset, sz + [size], st + [st_d])


def sub(x, *ranges):
    """x.sub(d1s, d1e [, d2s, d2e ...]): a view; negative indices count from the end."""
    if len(ranges) % 2 or len(ranges) // 2 > x.dim():
        _fail('sub', 'expected pairs of (start, end) for at most %d dimensions, got %d numbers'
              % (x.dim(), len(ranges)))
    v = x
    for i in range(len(ranges) // 2):
        s, e = int(ranges[2 * i]), int(ranges[2 * i + 1])
        n = x.size(i + 1)
        s = n + s + 1 if s < 0 else s
        e = n + e + 1 if e < 0 else e
        if not 1 <= s <= e <= n:
            _fail('sub', 'range %d..%d out of 1..%d in dimension %d' % (s, e, n, i + 1), IndexError)
        v = v.narrow(i + 1, s, e - s + 1)
    return v


def isSize(x, size):
    return tuple(x.size()) == tuple(_as_sizes((size,)))


def histc(*args):
    res, args = _split_result(args, 1)
    x = _need_t('histc', args[0])
    nbins = int(args[1]) if len(args) > 1 else 100
    lo = float(args[2]) if len(args) > 2 else 0.0
    hi = float(args[3]) if len(args) > 3 else 0.0
    a = _a(x).astype(np.float64).reshape(-1)
    xp = _xp(x)
    if lo == hi and a.size:
        lo, hi = float(a.min()), float(a.max())
    if lo == hi:
        lo, hi = lo - 1, hi + 1
    sel = a[(a >= lo) & (a <= hi)]
    b = xp.minimum(((sel - lo) / (hi - lo) * nbins).astype(np.int64), nbins - 1)
    r = res[0] if res else _new(x)
    return _put(r, xp.bincount(b, minlength=nbins).astype(np.float64))


def bhistc(*args):
    res, args = _split_result(args, 1)
    x = _need_t('bhistc', args[0])
    nbins = int(args[1]) if len(args) > 1 else 100
    lo = float(args[2]) if len(args) > 2 else 0.0
    hi = float(args[3]) if len(args) > 3 else 0.0
    a = _a(x).astype(np.float64)
    a = a.reshape(1, -1) if a.ndim == 1 else a
    xp = _xp(x)
    if lo == hi and a.size:
        lo, hi = float(a.min()), float(a.max())
    if lo == hi:
        lo, hi = lo - 1, hi + 1
    ok = (a >= lo) & (a <= hi)
    b = xp.minimum(((a - lo) / (hi - lo) * nbins).astype(np.int64), nbins - 1)
    rows = xp.broadcast_to(xp.arange(a.shape[0])[:, None], a.shape)
    flat = (rows * nbins + xp.clip(b, 0, nbins - 1))[ok]
    h = xp.bincount(flat, minlength=a.shape[0] * nbins).reshape(a.shape[0], nbins).astype(np.float64)
    r = res[0] if res else _new(x)
    return _put(r, h)


def match(*args):
    res = None
    if len(args) >= 3 and _is_t(args[2]):
        res, args = args[0], args[1:]
    m1, m2 = _need_t('match', args[0]), _need_t('match', args[1])
    gain = args[2] if len(args) > 2 else 1
    a = _a(m1).reshape(m1.size(1), -1)
    b = _a(m2).reshape(m2.size(1), -1)
    if a.shape[1] != b.shape[1]:
        _fail('match', 'inner vector sizes differ: %d vs %d' % (a.shape[1], b.shape[1]))
    d = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1) * gain
    r = res if res is not None else _new(m1)
    return _put(r, d)


def renorm(*args):
    res = None
    if len(args) == 5:
        res, args = args[0], args[1:]
    x, p, dim, maxnorm = args
    _need_t('renorm', x)
    if not p > 0:
        _fail('renorm', 'non-positive norm %r not supported' % (p,))
    if x.dim() < 2:
        _fail('renorm', 'need at least 2 dimensions, got %s' % _desc(x))
    d = _dim0('renorm', x, dim)
    a = _a(x)
    xp = _xp(x)
    other = tuple(i for i in range(x.dim()) if i != d)
    nrm = (xp.abs(a) ** p).sum(axis=other, keepdims=True) ** (1.0 / p)
    scale = xp.where(nrm > maxnorm, maxnorm / (nrm + 1e-7), 1.0)
    r = res if res is not None else _new(x)
    return _put(r, a * scale)


def _renorm_method(self, *args):
    if len(args) == 4:
        return renorm(self, *args)
    return renorm(self, self, *args)
