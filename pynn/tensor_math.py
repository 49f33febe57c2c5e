"""Torch7's tensor math (TensorMath.lua, Tensor.c, Tensor.lua) on pynn tensors.

Every function exists as `pynn.f(...)` and as the method `Tensor.f(...)`, in Lua's forms:
`pynn.f(x, ...)` makes a new result, `pynn.f(r, x, ...)` resizes and fills r, `x.f(...)` works
in place on x for the element-wise functions, `r.f(x, ...)` fills r. Dimensions and indices are
1-based; several results are a tuple; index results are 1-based LongTensors; comparisons give
ByteTensors. All arithmetic runs as whole-array operations of the storage's array module
(NumPy or CuPy). Bad input raises ValueError/IndexError/TypeError naming the function, with
what was expected and what was given, before any tensor is modified.
"""
import math
import numbers

import numpy as np

from . import backend
from .storage import _to_module
from .tensor import Tensor, _as_sizes, _fmt_size

# ----------------------------------------------------------------------------- helpers


def _is_t(x):
    return isinstance(x, Tensor)


def _is_num(x):
    return isinstance(x, numbers.Number) and not isinstance(x, bool)


def _fail(fn, msg, exc=ValueError):
    raise exc('%s: %s' % (fn, msg))


def _desc(x):
    if _is_t(x):
        return '%s of size %s' % (x.type(), _fmt_size(x.size()))
    return '%s %r' % (type(x).__name__, x)


def _need_t(fn, x, what='a tensor'):
    if not _is_t(x):
        _fail(fn, 'expected %s, got %s' % (what, _desc(x)), TypeError)
    return x


def _xp(t):
    if t._storage is not None and t._storage.data is not None:
        return backend.array_module(t._storage.data)
    return backend.xp_for(t._device) or np


def _a(t):
    """The tensor's elements as an array (a view)."""
    return t.numpy()


def _dim0(fn, t, d, extra=0):
    n = t.dim() + extra
    if not isinstance(d, numbers.Integral):
        _fail(fn, 'dimension must be an integer, got %r' % (d,), TypeError)
    if d < 0:
        d = n + d + 1
    if not 1 <= d <= n:
        _fail(fn, 'dimension %d out of range 1..%d (tensor of size %s)' % (d, n, _fmt_size(t.size())),
              IndexError)
    return d - 1


def _same_n(fn, x, y):
    if x.nElement() != y.nElement():
        _fail(fn, 'sizes do not match: %s has %d elements, %s has %d'
              % (_fmt_size(x.size()), x.nElement(), _fmt_size(y.size()), y.nElement()))


def _new(like, kind=None):
    return Tensor(kind=kind or like._kind, device=like._device)


def _put(r, arr, size=None):
    """Resize r to arr's shape (or size) and write arr into it (cast to r's type)."""
    size = tuple(arr.shape) if size is None else tuple(size)
    r.resize(*size)
    if r.is_meta() or r.nElement() == 0:
        return r
    dst = r.numpy()
    src = _to_module(arr, backend.array_module(dst))
    dst[...] = src.reshape(dst.shape)
    return r


class _quiet:
    def __enter__(self):
        self.s = np.seterr(all='ignore')

    def __exit__(self, *a):
        np.seterr(**self.s)


# ----------------------------------------------------------------------------- element-wise, unary

def _c_round(xp, a):
    return xp.sign(a) * xp.floor(xp.abs(a) + 0.5)


_UNARY = {
    'abs': lambda xp, a: xp.abs(a),
    'acos': lambda xp, a: xp.arccos(a), 'asin': lambda xp, a: xp.arcsin(a),
    'atan': lambda xp, a: xp.arctan(a), 'ceil': lambda xp, a: xp.ceil(a),
    'cos': lambda xp, a: xp.cos(a), 'cosh': lambda xp, a: xp.cosh(a),
    'exp': lambda xp, a: xp.exp(a), 'floor': lambda xp, a: xp.floor(a),
    'log': lambda xp, a: xp.log(a), 'log1p': lambda xp, a: xp.log1p(a),
    'neg': lambda xp, a: -a, 'round': _c_round,
    'rsqrt': lambda xp, a: 1.0 / xp.sqrt(a), 'sigmoid': lambda xp, a: 1.0 / (1.0 + xp.exp(-a)),
    'sign': lambda xp, a: xp.sign(a), 'sin': lambda xp, a: xp.sin(a),
    'sinh': lambda xp, a: xp.sinh(a), 'sqrt': lambda xp, a: xp.sqrt(a),
    'tan': lambda xp, a: xp.tan(a), 'tanh': lambda xp, a: xp.tanh(a),
    'trunc': lambda xp, a: xp.trunc(a), 'frac': lambda xp, a: a - xp.trunc(a),
    'cinv': lambda xp, a: 1.0 / a,
}


def _make_unary(name, f):
    def method(self, src=None):
        src = self if src is None else _need_t(name, src)
        if src.is_meta():
            return self.resizeAs(src)
        with _quiet():
            arr = f(_xp(src), _a(src))
        return _put(self, arr, src.size())

    def func(*args):
        if len(args) == 1 and _is_num(args[0]):
            with _quiet():
                v = f(np, np.float64(args[0]))
            return float(v)
        if len(args) == 1:
            x = _need_t(name, args[0])
            return method(_new(x), x)
        if len(args) == 2:
            return method(_need_t(name, args[0], 'a result tensor'), _need_t(name, args[1]))
        _fail(name, 'expected ([result,] tensor) or a number, got %d arguments' % len(args), TypeError)
    method.__name__ = func.__name__ = name
    return method, func


# ----------------------------------------------------------------------------- element-wise, binary

def _any_meta(*xs):
    return any(_is_t(t) and t.is_meta() for t in xs)


def _operand(fn, x, y):
    """y as an array broadcastable to x (a number, or a tensor with as many elements);
    None where x or y is a meta tensor (sizes only: no arithmetic)."""
    if _is_t(y):
        _same_n(fn, x, y)
        if _any_meta(x, y):
            return None
        return _to_module(_a(y), _xp(x)).reshape(x.size()) if x.nElement() else _a(y)
    if _is_num(y):
        return y
    _fail(fn, 'expected a number or a tensor, got %s' % _desc(y), TypeError)


def _make_binary(name, f, k=1, result_kind=None, number_fn=None):
    """A function of x and k further operands (numbers or tensors).

    method: x.f(*k) in place on x (or a new result of result_kind, for comparisons);
            r.f(x, *k) fills r. function: f(x, *k) new; f(r, x, *k) fills r."""
    def compute(r, x, ops):
        x = _need_t(name, x)
        vals = [_operand(name, x, o) for o in ops]
        if _any_meta(r, x, *ops):
            return r.resizeAs(x)
        with _quiet():
            arr = f(_xp(x), _a(x), *vals)
        return _put(r, arr, x.size())

    def method(self, *args):
        if len(args) == k:
            r = self if result_kind is None else _new(self, result_kind)
            return compute(r, self, args)
        if len(args) == k + 1 and _is_t(args[0]):
            return compute(self, args[0], args[1:])
        if len(args) == k + 2 and _is_t(args[0]) and _is_t(args[1]):
            # Lua's x.f(r, x, y) written in Python: the bound method of x, r explicit
            return compute(args[0], args[1], args[2:])
        _fail(name, 'expected %d operand(s) [after a source tensor], got %d arguments' % (k, len(args)),
              TypeError)

    def func(*args):
        if number_fn is not None and args and all(_is_num(a) for a in args):
            return number_fn(*args)
        if len(args) == k + 1 and _is_t(args[0]):
            return compute(_new(args[0], result_kind), args[0], args[1:])
        if len(args) == k + 2 and _is_t(args[0]) and _is_t(args[1]):
            return compute(args[0], args[1], args[2:])
        _fail(name, 'expected ([result,] tensor, %d operand(s)), got %s'
              % (k, ', '.join(_desc(a) for a in args)), TypeError)
    method.__name__ = func.__name__ = name
    return method, func


def _remainder(xp, a, b):
    return a - b * xp.floor(a / b)


def _cmp(op):
    return lambda xp, a, b: op(a, b)


_BINARY = {
    'mul': (lambda xp, a, v: a * v, 1, None), 'div': (lambda xp, a, v: a / v, 1, None),
    'cmul': (lambda xp, a, b: a * b, 1, None), 'cdiv': (lambda xp, a, b: a / b, 1, None),
    'cpow': (lambda xp, a, b: xp.power(a, b), 1, None),
    'fmod': (lambda xp, a, b: xp.fmod(a, b), 1, None), 'cfmod': (lambda xp, a, b: xp.fmod(a, b), 1, None),
    'mod': (lambda xp, a, b: xp.fmod(a, b), 1, None), 'cmod': (lambda xp, a, b: xp.fmod(a, b), 1, None),
    'remainder': (_remainder, 1, None), 'cremainder': (_remainder, 1, None),
    'cmax': (lambda xp, a, b: xp.maximum(a, b), 1, None), 'cmin': (lambda xp, a, b: xp.minimum(a, b), 1, None),
    'atan2': (lambda xp, a, b: xp.arctan2(a, b), 1, None),
    'lshift': (lambda xp, a, b: a * (2.0 ** b) if a.dtype.kind == 'f' else a << b, 1, None),
    'rshift': (lambda xp, a, b: a / (2.0 ** b) if a.dtype.kind == 'f' else a >> b, 1, None),
    'clshift': (lambda xp, a, b: a * xp.power(2.0, b) if a.dtype.kind == 'f' else a << b, 1, None),
    'crshift': (lambda xp, a, b: a / xp.power(2.0, b) if a.dtype.kind == 'f' else a >> b, 1, None),
    'clamp': (lambda xp, a, lo, hi: xp.minimum(xp.maximum(a, lo), hi), 2, None),
    'lerp': (lambda xp, a, b, w: a + w * (b - a), 2, None),
    'lt': (_cmp(lambda a, b: a < b), 1, 'Byte'), 'le': (_cmp(lambda a, b: a <= b), 1, 'Byte'),
    'gt': (_cmp(lambda a, b: a > b), 1, 'Byte'), 'ge': (_cmp(lambda a, b: a >= b), 1, 'Byte'),
    'eq': (_cmp(lambda a, b: a == b), 1, 'Byte'), 'ne': (_cmp(lambda a, b: a != b), 1, 'Byte'),
}
_NUMBER_FNS = {
    'atan2': lambda a, b: math.atan2(a, b), 'lerp': lambda a, b, w: a + w * (b - a),
    'fmod': math.fmod, 'remainder': lambda a, b: a - b * math.floor(a / b),
}


def add(self, *args):
    """x.add(v) | x.add(y) | x.add(v, y) in place; r.add(x, y) | r.add(x, v, y) | r.add(x, v) fill r."""
    fn = 'add'
    if len(args) == 1:
        x, v, y = self, 1, args[0]
    elif len(args) == 2 and not _is_t(args[0]):
        x, v, y = self, args[0], args[1]
        _need_t(fn, y)
    elif len(args) == 2:
        x, v, y = args[0], 1, args[1]
    elif len(args) == 3:
        x, v, y = args
    else:
        _fail(fn, 'expected (value | tensor | value, tensor | src, [value,] tensor), got %d arguments'
              % len(args), TypeError)
    x = _need_t(fn, x)
    if not _is_num(v):
        _fail(fn, 'expected a number as the scale, got %s' % _desc(v), TypeError)
    b = _operand(fn, x, y)
    if _any_meta(self, x, y):
        return self.resizeAs(x)
    arr = _a(x) + (v * b if _is_t(y) else b)
    return _put(self, arr, x.size())


def _add_fn(*args):
    if args and all(_is_num(a) for a in args):
        return sum(args)
    if len(args) >= 3 and _is_t(args[0]) and _is_t(args[1]):
        return add(args[0], *args[1:])
    if len(args) in (2, 3) and _is_t(args[0]):
        return add(_new(args[0]), *args)
    _fail('add', 'expected ([result,] tensor, [value,] tensor|value), got %s'
          % ', '.join(_desc(a) for a in args), TypeError)


def csub(self, *args):
    """x.csub(v) | x.csub(y) | x.csub(v, y): x - v*y; r.csub(x, ...) fills r."""
    fn = 'csub'
    if len(args) == 1:
        x, v, y = self, 1, args[0]
    elif len(args) == 2 and not _is_t(args[0]):
        x, v, y = self, args[0], args[1]
    elif len(args) == 2:
        x, v, y = args[0], 1, args[1]
    elif len(args) == 3:
        x, v, y = args
    else:
        _fail(fn, 'expected (value | tensor | value, tensor), got %d arguments' % len(args), TypeError)
    x = _need_t(fn, x)
    b = _operand(fn, x, y)
    if _any_meta(self, x, y):
        return self.resizeAs(x)
    return _put(self, _a(x) - (v * b if _is_t(y) else b), x.size())


def _csub_fn(*args):
    if len(args) >= 3 and _is_t(args[0]) and _is_t(args[1]):
        return csub(args[0], *args[1:])
    _need_t('csub', args[0] if args else None)
    return csub(_new(args[0]), *args)


def pow_(self, *args):
    """x.pow(v) in place; r.pow(x, v) | r.pow(v, x) fill r."""
    fn = 'pow'
    if len(args) == 1:
        x, e = self, args[0]
        with _quiet():
            return _put(self, _xp(x).power(_a(x), _operand(fn, x, e)), x.size())
    if len(args) == 2:
        a, b = args
        if _is_t(a) and _is_num(b):
            with _quiet():
                return _put(self, _xp(a).power(_a(a), b), a.size())
        if _is_num(a) and _is_t(b):
            with _quiet():
                return _put(self, _xp(b).power(float(a), _a(b)), b.size())
    _fail(fn, 'expected (value) or (tensor, value) or (value, tensor), got %s'
          % ', '.join(_desc(a) for a in args), TypeError)


def _pow_fn(*args):
    if len(args) == 2 and all(_is_num(a) for a in args):
        return float(args[0]) ** args[1]
    if len(args) == 2:
        t = args[0] if _is_t(args[0]) else _need_t('pow', args[1])
        return pow_(_new(t), *args)
    if len(args) == 3:
        return pow_(_need_t('pow', args[0], 'a result tensor'), *args[1:])
    _fail('pow', 'expected ([result,] tensor, value) or (value, tensor), got %d arguments' % len(args),
          TypeError)


def _addc(name, op):
    """x.addcmul([v,] y, z) in place; r.addcmul(x, [v,] y, z); pynn.addcmul([r,] x, [v,] y, z)."""
    def method(self, *args):
        nt = sum(_is_t(a) for a in args)
        if nt == 3:
            x, rest = args[0], args[1:]
        elif nt == 2:
            x, rest = self, args
        else:
            _fail(name, 'expected ([src,] [value,] tensor1, tensor2), got %s'
                  % ', '.join(_desc(a) for a in args), TypeError)
        v, (y, z) = (rest[0], rest[1:]) if len(rest) == 3 else (1, rest)
        yb, zb = _operand(name, x, y), _operand(name, x, z)
        if _any_meta(self, x, y, z):
            return self.resizeAs(x)
        with _quiet():
            arr = _a(x) + v * op(yb, zb)
        return _put(self, arr, x.size())

    def func(*args):
        nt = sum(_is_t(a) for a in args)
        if nt == 4:
            return method(args[0], *args[1:])
        return method(_new(_need_t(name, args[0])), *args)
    return method, func


# ----------------------------------------------------------------------------- BLAS

def _blas_args(name, self, args, method):
    """Parse ([res,] [beta,] M, [alpha,] A, B): returns (r, beta, M, alpha, A, B)."""
    pos_t = [i for i, a in enumerate(args) if _is_t(a)]
    if method:
        r = self
        if len(pos_t) == 2:
            M, (A, B) = self, (args[pos_t[0]], args[pos_t[1]])
            nums = [a for a in args if not _is_t(a)]
            beta, alpha = (1, nums[0]) if len(nums) == 1 else ((nums[0], nums[1]) if nums else (1, 1))
            return r, beta, M, alpha, A, B
    else:
        if len(pos_t) == 4:
            r, args = args[pos_t[0]], args[pos_t[0] + 1:]
            pos_t = [i for i, a in enumerate(args) if _is_t(a)]
        else:
            r = None
    if len(pos_t) != 3:
        _fail(name, 'expected ([result,] [beta,] M, [alpha,] mat1, mat2), got %s'
              % ', '.join(_desc(a) for a in args), TypeError)
    M, A, B = (args[i] for i in pos_t)
    before = [a for a in args[:pos_t[0]] if not _is_t(a)]
    between = [a for a in args[pos_t[0] + 1:pos_t[1]] if not _is_t(a)]
    beta = before[0] if before else 1
    alpha = between[0] if between else 1
    if r is None:
        r = _new(M)
    return r, beta, M, alpha, A, B


def _check_dims(name, t, n, what):
    _need_t(name, t)
    if t.dim() != n:
        _fail(name, '%s must be a %dD tensor, got %s' % (what, n, _desc(t)))


def _blas(name, core):
    def run(r, beta, M, alpha, A, B):
        if _any_meta(r, M, A, B):
            core(name, None, None, None, A, B, M)      # size checks only
            return r.resizeAs(M)
        arr = core(name, _a(M), _a(A), _a(B), A, B, M)
        out = beta * _a(M) + alpha * arr if beta != 0 else alpha * arr
        return _put(r, out, M.size())

    def method(self, *args):
        return run(*_blas_args(name, self, args, True))

    def func(*args):
        return run(*_blas_args(name, None, args, False))
    return method, func


def _core_mm(name, m, a, b, A, B, M):
    _check_dims(name, A, 2, 'mat1')
    _check_dims(name, B, 2, 'mat2')
    if A.size(2) != B.size(1) or M.size() != (A.size(1), B.size(2)):
        _fail(name, 'size mismatch: M %s, mat1 %s, mat2 %s' % (_fmt_size(M.size()), _fmt_size(A.size()),
                                                                 _fmt_size(B.size())))
    return None if a is None else a @ b


def _core_mv(name, m, a, b, A, B, M):
    _check_dims(name, A, 2, 'mat')
    _check_dims(name, B, 1, 'vec')
    if A.size(2) != B.size(1) or M.size() != (A.size(1),):
        _fail(name, 'size mismatch: vector %s, mat %s, vec %s' % (_fmt_size(M.size()), _fmt_size(A.size()),
                                                                   _fmt_size(B.size())))
    return None if a is None else a @ b


def _core_r(name, m, a, b, A, B, M):
    _check_dims(name, A, 1, 'vec1')
    _check_dims(name, B, 1, 'vec2')
    if M.size() != (A.size(1), B.size(1)):
        _fail(name, 'size mismatch: M %s, vec1 %s, vec2 %s' % (_fmt_size(M.size()), _fmt_size(A.size()),
                                                                _fmt_size(B.size())))
    return None if a is None else a[:, None] * b[None, :]


def _core_bmm_sum(name, m, a, b, A, B, M):
    _check_dims(name, A, 3, 'batch1')
    _check_dims(name, B, 3, 'batch2')
    if A.size(1) != B.size(1) or A.size(3) != B.size(2) or M.size() != (A.size(2), B.size(3)):
        _fail(name, 'size mismatch: M %s, batch1 %s, batch2 %s' % (
            _fmt_size(M.size()), _fmt_size(A.size()), _fmt_size(B.size())))
    return None if a is None else (a @ b).sum(0)


def _core_bmm(name, m, a, b, A, B, M):
    _check_dims(name, A, 3, 'batch1')
    _check_dims(name, B, 3, 'batch2')
    if A.size(1) != B.size(1) or A.size(3) != B.size(2) or M.size() != (A.size(1), A.size(2), B.size(3)):
        _fail(name, 'size mismatch: M %s, batch1 %s, batch2 %s' % (
            _fmt_size(M.size()), _fmt_size(A.size()), _fmt_size(B.size())))
    return None if a is None else a @ b


def _product(name, core, size_of):
    """mm/mv/bmm/ger: pynn.f([r,] a, b); r.f(a, b)."""
    def method(self, a, b):
        _need_t(name, a)
        _need_t(name, b)
        size = size_of(name, a, b)
        if _any_meta(self, a, b):
            return self.resize(*size)
        arr = core(_a(a), _a(b))
        return _put(self, arr, size)

    def func(*args):
        if len(args) == 3:
            return method(_need_t(name, args[0], 'a result tensor'), args[1], args[2])
        if len(args) == 2:
            return method(_new(_need_t(name, args[0])), *args)
        _fail(name, 'expected ([result,] a, b), got %d arguments' % len(args), TypeError)
    return method, func


def _sz_mm(name, a, b):
    if a.dim() != 2 or b.dim() != 2 or a.size(2) != b.size(1):
        _fail(name, 'expected 2D matrices n x k and k x m, got %s and %s' % (_desc(a), _desc(b)))
    return (a.size(1), b.size(2))


def _sz_mv(name, a, b):
    if a.dim() != 2 or b.dim() != 1 or a.size(2) != b.size(1):
        _fail(name, 'expected a 2D n x k matrix and a k-vector, got %s and %s' % (_desc(a), _desc(b)))
    return (a.size(1),)


def _sz_bmm(name, a, b):
    if a.dim() != 3 or b.dim() != 3 or a.size(1) != b.size(1) or a.size(3) != b.size(2):
        _fail(name, 'expected 3D batches b x n x k and b x k x m, got %s and %s' % (_desc(a), _desc(b)))
    return (a.size(1), a.size(2), b.size(3))


def _sz_ger(name, a, b):
    if a.dim() != 1 or b.dim() != 1:
        _fail(name, 'expected two vectors, got %s and %s' % (_desc(a), _desc(b)))
    return (a.size(1), b.size(1))


def dot(x, y):
    _need_t('dot', x)
    _need_t('dot', y)
    _same_n('dot', x, y)
    return float((_a(x).reshape(-1) * _to_module(_a(y), _xp(x)).reshape(-1)).sum())


# ----------------------------------------------------------------------------- reductions

def _number(v):
    v = v.item() if hasattr(v, 'item') else v
    return v


def _split_result(args, nres):
    """Leading result tensors of a (res..., x, ...) call: (results or None, rest)."""
    if len(args) > nres and all(_is_t(a) for a in args[:nres + 1]):
        return list(args[:nres]), args[nres:]
    return None, args


def _reduce(name, f, default=None):
    """sum/prod/mean: f(x) -> number; f(x, d) -> tensor keeping d; f(r, x, d)."""
    def method(self, *args):
        return func(self, *args)

    def func(*args):
        res, args = _split_result(args, 1)
        x = _need_t(name, args[0])
        if len(args) == 1 and res is None:
            if x.nElement() == 0:
                return default
            return _number(f(_xp(x), _a(x), None))
        d = _dim0(name, x, args[1] if len(args) > 1 else 1)
        arr = f(_xp(x), _a(x), d)
        r = res[0] if res else _new(x)
        return _put(r, arr)
    return method, func


def _extreme(name, pick):
    """max/min: f(x) -> number; f(x, d) -> (values, indices); f(vals, idx, x, d)."""
    def func(*args):
        res, args = _split_result(args, 2)
        x = _need_t(name, args[0])
        if len(args) == 1 and res is None:
            if x.nElement() == 0:
                _fail(name, 'tensor must have at least one element')
            return _number(getattr(_a(x), pick)())
        if len(args) > 1 and _is_t(args[1]):
            # max(x, y): element-wise
            return (cmax_fn if name == 'max' else cmin_fn)(*args)
        d = _dim0(name, x, args[1] if len(args) > 1 else x.dim())
        a = _a(x)
        xp = _xp(x)
        idx = (xp.argmax if pick == 'max' else xp.argmin)(a, axis=d)
        idx = xp.expand_dims(idx, d)
        vals = xp.take_along_axis(a, idx, d)
        r, ri = res if res else (_new(x), _new(x, 'Long'))
        return _put(r, vals), _put(ri, idx + 1)

    def method(self, *args):
        return func(self, *args)
    return method, func


def _kth(name, choose):
    """median/mode/kthvalue along a dim (last by default): (values, indices), keeping the dim."""
    def func(*args):
        res, args = _split_result(args, 2)
        x = _need_t(name, args[0])
        rest = list(args[1:])
        k = None
        if name == 'kthvalue':
            if not rest:
                _fail(name, 'expected k', TypeError)
            k = int(rest.pop(0))
        d = _dim0(name, x, rest[0] if rest else x.dim())
        n = x.size(d + 1)
        if name == 'kthvalue' and not 1 <= k <= n:
            _fail(name, 'k %d out of range 1..%d' % (k, n), IndexError)
        a = _a(x)
        xp = _xp(x)
        order = xp.argsort(a, axis=d, kind='stable')
        srt = xp.take_along_axis(a, order, d)
        pos = choose(xp, srt, n, k, d)
        idx = xp.take_along_axis(order, pos, d)
        vals = xp.take_along_axis(a, idx, d)
        r, ri = res if res else (_new(x), _new(x, 'Long'))
        return _put(r, vals), _put(ri, idx + 1)

    def method(self, *args):
        return func(self, *args)
    return method, func


def _pick_median(xp, srt, n, k, d):
    shape = list(srt.shape)
    shape[d] = 1
    return xp.full(shape, (n - 1) // 2, dtype=np.int64)


def _pick_kth(xp, srt, n, k, d):
    shape = list(srt.shape)
    shape[d] = 1
    return xp.full(shape, k - 1, dtype=np.int64)


def _pick_mode(xp, srt, n, k, d):
    """Position (in sorted order) of the end of the first longest run, as TH's mode scan."""
    s = xp.moveaxis(srt, d, -1)
    rows = s.reshape(-1, n)
    starts = xp.ones(rows.shape, dtype=np.int64)
    starts[:, 1:] = rows[:, 1:] != rows[:, :-1]
    run = xp.cumsum(starts, axis=1) - 1 + (xp.arange(rows.shape[0]) * n)[:, None]
    counts = xp.bincount(run.reshape(-1), minlength=rows.size)
    ends = xp.ones(rows.shape, dtype=bool)
    ends[:, :-1] = rows[:, :-1] != rows[:, 1:]
    freq = xp.where(ends, counts[run], 0)
    best = xp.argmax(freq, axis=1).reshape(s.shape[:-1] + (1,))   # first run of the top count
    return xp.moveaxis(best, -1, d)


def sort(*args):
    """sort([vals, idx,] x [, dim] [, descending]) along dim (last by default)."""
    res, args = _split_result(args, 2)
    x = _need_t('sort', args[0])
    rest = list(args[1:])
    desc = False
    if rest and isinstance(rest[-1], bool):
        desc = rest.pop()
    d = _dim0('sort', x, rest[0] if rest else x.dim())
    a = _a(x)
    xp = _xp(x)
    order = xp.argsort(-a if desc else a, axis=d, kind='stable')
    vals = xp.take_along_axis(a, order, d)
    r, ri = res if res else (_new(x), _new(x, 'Long'))
    return _put(r, vals), _put(ri, order + 1)


def topk(*args):
    """topk([vals, idx,] x, k [, dim [, largest [, sorted]]]): the k smallest by default."""
    res, args = _split_result(args, 2)
    x = _need_t('topk', args[0])
    if len(args) < 2:
        _fail('topk', 'expected k', TypeError)
    k = int(args[1])
    d = _dim0('topk', x, args[2] if len(args) > 2 and args[2] is not None else x.dim())
    largest = bool(args[3]) if len(args) > 3 else False
    if not 0 <= k <= x.size(d + 1):
        _fail('topk', 'k %d out of range 0..%d' % (k, x.size(d + 1)), IndexError)
    a = _a(x)
    xp = _xp(x)
    order = xp.argsort(-a if largest else a, axis=d, kind='stable')
    order = xp.take(order, xp.arange(k), axis=d)
    vals = xp.take_along_axis(a, order, d)
    r, ri = res if res else (_new(x), _new(x, 'Long'))
    return _put(r, vals), _put(ri, order + 1)


def _cum(name, f):
    def func(*args):
        res, args = _split_result(args, 1)
        x = _need_t(name, args[0])
        d = _dim0(name, x, args[1] if len(args) > 1 else 1)
        r = res[0] if res else _new(x)
        return _put(r, f(_xp(x), _a(x), d))

    def method(self, *args):
        return func(self, *args)
    return method, func


def _var_like(name, take_sqrt):
    def func(*args):
        res, args = _split_result(args, 1)
        x = _need_t(name, args[0])
        rest = list(args[1:])
        flag = False
        if rest and isinstance(rest[-1], bool):
            flag = rest.pop()
        a = _a(x)
        xp = _xp(x)
        if not rest and res is None:
            n = x.nElement()
            v = float(((a - a.mean()) ** 2).sum() / (n if flag else n - 1))
            return math.sqrt(v) if take_sqrt else v
        d = _dim0(name, x, rest[0])
        n = x.size(d + 1)
        v = ((a - a.mean(axis=d, keepdims=True)) ** 2).sum(axis=d, keepdims=True) / (n if flag else n - 1)
        r = res[0] if res else _new(x)
        return _put(r, xp.sqrt(v) if take_sqrt else v)

    def method(self, *args):
        return func(self, *args)
    return method, func


def _pnorm(xp, a, p, axis=None):
    if p == 0:
        return (a != 0).sum(axis=axis, keepdims=axis is not None).astype(np.float64)
    if p == math.inf:
        return xp.abs(a).max(axis=axis, keepdims=axis is not None)
    return (xp.abs(a) ** p).sum(axis=axis, keepdims=axis is not None) ** (1.0 / p)


def norm(*args):
    """norm(x [, p=2]) -> number; norm([r,] x, p, dim) -> tensor keeping dim."""
    res, args = _split_result(args, 1)
    x = _need_t('norm', args[0])
    p = args[1] if len(args) > 1 else 2
    if len(args) <= 2 and res is None:
        return float(_pnorm(_xp(x), _a(x), p))
    d = _dim0('norm', x, args[2])
    r = res[0] if res else _new(x)
    return _put(r, _pnorm(_xp(x), _a(x), p, d))


def dist(x, y, p=2):
    _need_t('dist', x)
    _need_t('dist', y)
    _same_n('dist', x, y)
    return float(_pnorm(_xp(x), _a(x) - _operand('dist', x, y), p))


def trace(x):
    _need_t('trace', x)
    if x.dim() != 2:
        _fail('trace', 'expected a 2D tensor, got %s' % _desc(x))
    return _number(_xp(x).trace(_a(x)))


def all_(x):
    return bool(_a(x).all()) if x.nElement() else True


def any_(x):
    return bool(_a(x).any()) if x.nElement() else False


def equal(x, y):
    _need_t('equal', x)
    _need_t('equal', y)
    return tuple(x.size()) == tuple(y.size()) and bool((_a(x) == _a(y)).all())


# ----------------------------------------------------------------------------- constructors

def _res_and_sizes(name, args):
    r = None
    if args and _is_t(args[0]):
        r, args = args[0], args[1:]
    return r, _as_sizes(args)


def _filled_ctor(name, value):
    def func(*args):
        r, size = _res_and_sizes(name, args)
        r = r if r is not None else Tensor()
        r.resize(*size)
        return r.fill(value)

    def method(self, *args):
        return func(self, *args)
    return method, func


def eye(*args):
    r = None
    if args and _is_t(args[0]):
        r, args = args[0], args[1:]
    n = int(args[0])
    m = int(args[1]) if len(args) > 1 else n
    r = r if r is not None else Tensor()
    xp = _xp(r)
    return _put(r, xp.eye(n, m))


def linspace(*args):
    r = None
    if args and _is_t(args[0]):
        r, args = args[0], args[1:]
    a, b = float(args[0]), float(args[1])
    n = int(args[2]) if len(args) > 2 else 100
    if n < 1:
        _fail('linspace', 'number of points must be at least 1, got %d' % n)
    r = r if r is not None else Tensor()
    if n == 1:
        return _put(r, np.array([a]))
    i = np.arange(n, dtype=np.float64)
    return _put(r, a + i * (b - a) / (n - 1))


def logspace(*args):
    r = None
    if args and _is_t(args[0]):
        r, args = args[0], args[1:]
    a, b = float(args[0]), float(args[1])
    n = int(args[2]) if len(args) > 2 else 100
    r = r if r is not None else Tensor()
    if n == 1:
        return _put(r, np.array([10.0 ** a]))
    i = np.arange(n, dtype=np.float64)
    return _put(r, 10.0 ** (a + i * (b - a) / (n - 1)))


def range_(*args):
    r = None
    if args and _is_t(args[0]):
        r, args = args[0], args[1:]
    a, b = args[0], args[1]
    step = args[2] if len(args) > 2 else 1
    if step == 0:
        _fail('range', 'step must be nonzero')
    if (b - a) / step < 0:
        _fail('range', 'upper bound and step are inconsistent (%r to %r by %r)' % (a, b, step))
    n = int(math.floor((b - a) / step)) + 1
    r = r if r is not None else Tensor()
    return _put(r, a + np.arange(n, dtype=np.float64) * step)


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


# ----------------------------------------------------------------------------- LAPACK

def _host(t):
    a = _a(t)
    return a if isinstance(a, np.ndarray) else a.get()


def _mat(name, t, what='a matrix'):
    _need_t(name, t)
    if t.dim() != 2:
        _fail(name, 'expected %s (2D), got %s' % (what, _desc(t)))
    return _host(t).astype(np.float64)


def _lapack_out(like, arrs, res):
    outs = []
    for i, a in enumerate(arrs):
        r = res[i] if res and i < len(res) else _new(like)
        outs.append(_put(r, np.ascontiguousarray(a)))
    return tuple(outs)


def _getrf(a):
    """LU with partial pivoting as LAPACK's dgetrf: packed L\\U (loop over columns)."""
    a = a.copy()
    n = min(a.shape)
    for k in range(n):
        p = k + int(np.argmax(np.abs(a[k:, k])))
        if p != k:
            a[[k, p]] = a[[p, k]]
        if a[k, k] != 0:
            a[k + 1:, k] /= a[k, k]
        a[k + 1:, k + 1:] -= np.outer(a[k + 1:, k], a[k, k + 1:])
    return a


def gesv(*args):
    """gesv([rb, ra,] b, a) -> (X, LU): solves a X = b."""
    res, args = (list(args[:2]), args[2:]) if len(args) == 4 else (None, args)
    b, a = _mat('gesv', args[0], 'B'), _mat('gesv', args[1], 'A')
    if a.shape[0] != a.shape[1] or b.shape[0] != a.shape[0]:
        _fail('gesv', 'A must be square and B have as many rows: A %s, B %s' % (a.shape, b.shape))
    x = np.linalg.solve(a, b)
    return _lapack_out(args[1], [x, _getrf(a)], res)


def _householder(a):
    """LAPACK dgeqrf: (packed R and reflectors, tau)."""
    h, tau = np.linalg.qr(a, mode='raw')
    return h.T.copy(), tau


def gels(*args):
    """gels([rb, ra,] b, a) -> (solution (first n rows of LAPACK's B), QR-factored A)."""
    res, args = (list(args[:2]), args[2:]) if len(args) == 4 else (None, args)
    b, a = _mat('gels', args[0], 'B'), _mat('gels', args[1], 'A')
    if b.shape[0] != a.shape[0]:
        _fail('gels', 'A and B must have the same number of rows: A %s, B %s' % (a.shape, b.shape))
    m, n = a.shape
    x = np.linalg.lstsq(a, b, rcond=None)[0]
    fa = _householder(a)[0] if m >= n else a
    return _lapack_out(args[1], [x, fa], res)


def trtrs(*args):
    """trtrs([rb, ra,] b, a [, uplo='U' [, trans='N' [, diag='N']]]) -> (X, A)."""
    res, args = (list(args[:2]), args[2:]) if len(args) >= 4 and _is_t(args[3]) else (None, args)
    b, a = _mat('trtrs', args[0], 'B'), _mat('trtrs', args[1], 'A')
    uplo = args[2] if len(args) > 2 else 'U'
    trans = args[3] if len(args) > 3 else 'N'
    unit = (args[4] if len(args) > 4 else 'N') == 'U'
    t = np.triu(a) if uplo == 'U' else np.tril(a)
    if unit:
        np.fill_diagonal(t, 1.0)
    if trans == 'T':
        t = t.T
    x = np.linalg.solve(t, b)
    return _lapack_out(args[1], [x, a], res)


def _sytd2_upper(a):
    """What LAPACK's dsyev(JOBZ='N', UPLO='U') leaves in A: dsytd2's tridiagonal reduction
    (superdiagonal e, reflectors above it, updated diagonal); the lower triangle untouched.
    One Householder step per column (a loop over columns, whole-array steps inside)."""
    f = a.copy()
    n = f.shape[0]
    for i in range(n - 1, 0, -1):           # LAPACK's i = n-1 .. 1 (column i+1 is f[:, i])
        alpha = f[i - 1, i]
        x = f[:i - 1, i]
        xnorm = float(np.sqrt((x * x).sum())) if x.size else 0.0
        taui = 0.0
        if xnorm != 0.0:
            beta = -math.copysign(math.hypot(alpha, xnorm), alpha)
            taui = (beta - alpha) / beta
            f[:i - 1, i] = x * (1.0 / (alpha - beta))
            alpha = beta
        f[i - 1, i] = alpha
        if taui != 0.0:
            v = f[:i, i].copy()
            v[i - 1] = 1.0
            up = np.triu(f[:i, :i])
            sym = up + np.triu(up, 1).T
            w = taui * (sym @ v)
            w += (-0.5 * taui * float(w @ v)) * v
            upd = -(np.outer(v, w) + np.outer(w, v))
            iu = np.triu_indices(i)
            f[:i, :i][iu] += upd[iu]
            f[i - 1, i] = alpha
    return f


def symeig(*args):
    """symeig([re, rv,] a [, 'N'|'V' [, 'U'|'L']]) -> (eigenvalues ascending, eigenvectors)."""
    res, args = (list(args[:2]), args[2:]) if len(args) >= 3 and _is_t(args[2]) else (None, args)
    a = _mat('symeig', args[0])
    jobz = args[1] if len(args) > 1 else 'N'
    uplo = args[2] if len(args) > 2 else 'U'
    e, v = np.linalg.eigh(a, UPLO=uplo)
    if jobz != 'V':
        v = _sytd2_upper(a) if uplo == 'U' else a
    return _lapack_out(args[0], [e, v], res)


def eig(*args):
    """eig([re, rv,] a [, 'N'|'V']) -> (n x 2 (real, imaginary) eigenvalues, eigenvectors or empty)."""
    res, args = (list(args[:2]), args[2:]) if len(args) >= 3 and _is_t(args[2]) else (None, args)
    a = _mat('eig', args[0])
    jobz = args[1] if len(args) > 1 else 'N'
    w, v = np.linalg.eig(a)
    e = np.stack([w.real, w.imag], axis=1)
    outs = _lapack_out(args[0], [e], res)
    rv = res[1] if res else _new(args[0])
    if jobz == 'V':
        _put(rv, np.ascontiguousarray(v.real))
    else:
        rv.set()
    return outs[0], rv


def svd(*args):
    """svd([ru, rs, rv,] a [, 'S'|'A']) -> (U, S, V) with a = U diag(S) V^T."""
    res, args = (list(args[:3]), args[3:]) if len(args) >= 4 and _is_t(args[3]) else (None, args)
    a = _mat('svd', args[0])
    some = (args[1] if len(args) > 1 else 'S') == 'S'
    u, s, vt = np.linalg.svd(a, full_matrices=not some)
    return _lapack_out(args[0], [u, s, vt.T], res)


def inverse(*args):
    res, args = (list(args[:1]), args[1:]) if len(args) == 2 else (None, args)
    a = _mat('inverse', args[0])
    if a.shape[0] != a.shape[1]:
        _fail('inverse', 'expected a square matrix, got %s' % _desc(args[0]))
    try:
        inv = np.linalg.inv(a)
    except np.linalg.LinAlgError:
        _fail('inverse', 'matrix is singular')
    return _lapack_out(args[0], [inv], res)[0]


def potrf(*args):
    res, args = (list(args[:1]), args[1:]) if len(args) >= 2 and _is_t(args[1]) else (None, args)
    a = _mat('potrf', args[0])
    uplo = args[1] if len(args) > 1 else 'U'
    try:
        low = np.linalg.cholesky(a)
    except np.linalg.LinAlgError:
        _fail('potrf', 'matrix is not positive definite')
    return _lapack_out(args[0], [low if uplo == 'L' else low.T], res)[0]


def potrs(*args):
    res, args = (list(args[:1]), args[1:]) if len(args) >= 3 and _is_t(args[2]) else (None, args)
    b, c = _mat('potrs', args[0], 'B'), _mat('potrs', args[1], 'the Cholesky factor')
    uplo = args[2] if len(args) > 2 else 'U'
    a = c.T @ c if uplo == 'U' else c @ c.T
    return _lapack_out(args[0], [np.linalg.solve(a, b)], res)[0]


def potri(*args):
    res, args = (list(args[:1]), args[1:]) if len(args) >= 2 and _is_t(args[1]) else (None, args)
    c = _mat('potri', args[0], 'the Cholesky factor')
    uplo = args[1] if len(args) > 1 else 'U'
    a = c.T @ c if uplo == 'U' else c @ c.T
    return _lapack_out(args[0], [np.linalg.inv(a)], res)[0]


def qr(*args):
    res, args = (list(args[:2]), args[2:]) if len(args) >= 3 else (None, args)
    a = _mat('qr', args[0])
    q, r = np.linalg.qr(a)
    return _lapack_out(args[0], [q, r], res)


def geqrf(*args):
    res, args = (list(args[:2]), args[2:]) if len(args) >= 3 else (None, args)
    a = _mat('geqrf', args[0])
    h, tau = _householder(a)
    return _lapack_out(args[0], [h, tau], res)


def orgqr(*args):
    res, args = (list(args[:1]), args[1:]) if len(args) >= 3 else (None, args)
    h = _mat('orgqr', args[0])
    tau = _host(_need_t('orgqr', args[1])).astype(np.float64).reshape(-1)
    m, n = h.shape
    q = np.eye(m, n)
    for i in range(len(tau) - 1, -1, -1):          # apply H_k ... H_1 to the identity's columns
        v = np.zeros(m)
        v[i] = 1.0
        v[i + 1:] = h[i + 1:, i]
        q -= tau[i] * np.outer(v, v @ q)
    return _lapack_out(args[0], [q], res)[0]


# ----------------------------------------------------------------------------- convolutions

def _conv(name, nd, flip):
    def func(*args):
        res = None
        if len(args) >= 3 and _is_t(args[2]):
            res, args = args[0], args[1:]
        x, k = _need_t(name, args[0]), _need_t(name, args[1])
        mode = (args[2] if len(args) > 2 else 'V').upper()
        if x.dim() != nd or k.dim() != nd:
            _fail(name, 'expected %dD input and kernel, got %s and %s' % (nd, _desc(x), _desc(k)))
        a, w = _a(x), _a(k)
        xp = _xp(x)
        if flip:
            w = w[(slice(None, None, -1),) * nd]
        if mode == 'F':
            pads = [(s - 1, s - 1) for s in w.shape]
            a = xp.pad(a, pads)
            w_ = w
        elif mode == 'V':
            w_ = w
        else:
            _fail(name, "mode must be 'V' or 'F', got %r" % mode)
        if any(sa < sw for sa, sw in zip(a.shape, w_.shape)):
            _fail(name, 'kernel %s larger than input %s' % (_fmt_size(k.size()), _fmt_size(x.size())))
        win = xp.lib.stride_tricks.sliding_window_view(a, w_.shape)
        axes = tuple(range(nd, 2 * nd))
        out = (win * w_).sum(axis=axes)
        r = res if res is not None else _new(x)
        return _put(r, out)
    return func


# ----------------------------------------------------------------------------- binding

def _export_table():
    ns = {}
    meth = {}
    for name, f in _UNARY.items():
        m, fn = _make_unary(name, f)
        meth[name], ns[name] = m, fn
    for name, (f, k, kind) in _BINARY.items():
        m, fn = _make_binary(name, f, k, kind, _NUMBER_FNS.get(name))
        meth[name], ns[name] = m, fn
    meth['add'], ns['add'] = add, _add_fn
    meth['csub'], ns['csub'] = csub, _csub_fn
    meth['pow'], ns['pow'] = pow_, _pow_fn
    import operator
    for name, op in (('addcmul', operator.mul), ('addcdiv', operator.truediv)):
        meth[name], ns[name] = _addc(name, op)
    for name, core in (('addmm', _core_mm), ('addmv', _core_mv), ('addr', _core_r),
                       ('addbmm', _core_bmm_sum), ('baddbmm', _core_bmm)):
        meth[name], ns[name] = _blas(name, core)
    for name, core, sz in (('mm', lambda a, b: a @ b, _sz_mm), ('mv', lambda a, b: a @ b, _sz_mv),
                           ('bmm', lambda a, b: a @ b, _sz_bmm),
                           ('ger', lambda a, b: a[:, None] * b[None, :], _sz_ger)):
        meth[name], ns[name] = _product(name, core, sz)
    meth['dot'] = ns['dot'] = dot
    meth['sum'], ns['sum'] = _reduce('sum', lambda xp, a, d: a.sum() if d is None else a.sum(d, keepdims=True), 0)
    meth['prod'], ns['prod'] = _reduce('prod', lambda xp, a, d: a.prod() if d is None else a.prod(d, keepdims=True), 1)
    meth['mean'], ns['mean'] = _reduce('mean', lambda xp, a, d: a.mean() if d is None else a.mean(d, keepdims=True))
    meth['max'], ns['max'] = _extreme('max', 'max')
    meth['min'], ns['min'] = _extreme('min', 'min')
    meth['median'], ns['median'] = _kth('median', _pick_median)
    meth['kthvalue'], ns['kthvalue'] = _kth('kthvalue', _pick_kth)
    meth['mode'], ns['mode'] = _kth('mode', _pick_mode)
    meth['sort'] = ns['sort'] = sort
    meth['topk'] = ns['topk'] = topk
    meth['cumsum'], ns['cumsum'] = _cum('cumsum', lambda xp, a, d: xp.cumsum(a, axis=d))
    meth['cumprod'], ns['cumprod'] = _cum('cumprod', lambda xp, a, d: xp.cumprod(a, axis=d))
    meth['var'], ns['var'] = _var_like('var', False)
    meth['std'], ns['std'] = _var_like('std', True)
    meth['norm'] = ns['norm'] = norm
    meth['dist'] = ns['dist'] = dist
    meth['trace'] = ns['trace'] = trace
    meth['all'] = ns['all'] = all_
    meth['any'] = ns['any'] = any_
    meth['equal'] = ns['equal'] = equal
    meth['ones'], ns['ones'] = _filled_ctor('ones', 1)
    meth['zeros'], ns['zeros'] = _filled_ctor('zeros', 0)
    meth['eye'] = ns['eye'] = eye
    meth['linspace'] = ns['linspace'] = linspace
    meth['logspace'] = ns['logspace'] = logspace
    meth['range'] = ns['range'] = range_
    meth['cat'] = ns['cat'] = cat
    meth['diag'] = ns['diag'] = diag
    meth['tril'], ns['tril'] = _tri('tril', False)
    meth['triu'], ns['triu'] = _tri('triu', True)
    meth['cross'] = ns['cross'] = cross
    meth['gather'] = ns['gather'] = gather
    meth['scatter'] = scatter
    meth['nonzero'] = ns['nonzero'] = nonzero
    meth['index'] = index
    meth['indexCopy'], meth['indexAdd'], meth['indexFill'] = indexCopy, indexAdd, indexFill
    meth['maskedSelect'], meth['maskedFill'], meth['maskedCopy'] = maskedSelect, maskedFill, maskedCopy
    meth['reshape'] = ns['reshape'] = reshape
    meth['repeatTensor'] = ns['repeatTensor'] = repeatTensor
    meth['expand'] = ns['expand'] = expand
    meth['expandAs'] = ns['expandAs'] = expandAs
    meth['permute'] = ns['permute'] = permute
    meth['split'] = ns['split'] = split
    meth['chunk'] = ns['chunk'] = chunk
    meth['squeeze'] = ns['squeeze'] = squeeze
    meth['unsqueeze'] = unsqueeze
    meth['totable'] = ns['totable'] = totable
    meth['unfold'] = unfold
    meth['sub'] = sub
    meth['isSize'] = isSize
    meth['histc'] = ns['histc'] = histc
    meth['bhistc'] = ns['bhistc'] = bhistc
    meth['match'] = ns['match'] = match
    meth['renorm'], ns['renorm'] = _renorm_method, renorm
    for name in ('gesv', 'gels', 'trtrs', 'symeig', 'eig', 'svd', 'inverse', 'potrf', 'potrs', 'potri',
                 'qr', 'geqrf', 'orgqr'):
        meth[name] = ns[name] = globals()[name]
    ns['conv2'] = meth['conv2'] = _conv('conv2', 2, True)
    ns['xcorr2'] = meth['xcorr2'] = _conv('xcorr2', 2, False)
    ns['conv3'] = meth['conv3'] = _conv('conv3', 3, True)
    ns['xcorr3'] = meth['xcorr3'] = _conv('xcorr3', 3, False)
    for name in ('numel', 'nElement', 'dim', 'nDimension', 'clone', 'contiguous'):
        ns[name] = (lambda nm: lambda x, *a: getattr(x, nm)(*a))(name)
    return ns, meth


FUNCTIONS, METHODS = _export_table()
cmax_fn, cmin_fn = FUNCTIONS['cmax'], FUNCTIONS['cmin']


def bind():
    """Attach the methods to Tensor (called once from pynn/__init__)."""
    from . import rng as rnd
    for name, m in METHODS.items():
        setattr(Tensor, name, m)
    for name in ('uniform', 'normal', 'exponential', 'cauchy', 'logNormal', 'geometric', 'bernoulli'):
        setattr(Tensor, name, getattr(rnd, name))
    Tensor.random = rnd.random_
    return FUNCTIONS
