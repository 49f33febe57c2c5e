"""Torch7's tensor math (TensorMath.lua, Tensor.c, Tensor.lua) on pynn tensors.

Every function exists as `pynn.f(...)` and as the method `Tensor.f(...)`, in Lua's forms:
`pynn.f(x, ...)` makes a new result, `pynn.f(r, x, ...)` resizes and fills r, `x.f(...)` works
in place on x for the element-wise functions, `r.f(x, ...)` fills r. Dimensions and indices are
1-based; several results are a tuple; index results are 1-based LongTensors; comparisons give
ByteTensors. All arithmetic runs as whole-array operations of the storage's array module
(NumPy or CuPy). Bad input raises ValueError/IndexError/TypeError naming the function, with
what was expected and what was given, before any tensor is modified.

This file: element-wise math, BLAS, reductions, constructors, and the binding onto Tensor;
shape/indexing functions live in tensor_shape.py, LAPACK and convolutions in tensor_linalg.py.
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
    return func, func   # the method is the function: self comes as its first argument


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

    return func, func   # the method is the function: self comes as its first argument


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

    return func, func   # the method is the function: self comes as its first argument


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

    return func, func   # the method is the function: self comes as its first argument


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

    return func, func   # the method is the function: self comes as its first argument


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

    return func, func   # the method is the function: self comes as its first argument


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


# ----------------------------------------------------------------------------- binding

def _export_table():
    from .tensor_shape import (cat, diag, _tri, cross, gather, scatter, nonzero, index, indexCopy,
                               indexAdd, indexFill, maskedSelect, maskedFill, maskedCopy, reshape,
                               repeatTensor, expand, expandAs, permute, split, chunk, squeeze,
                               unsqueeze, totable, unfold, sub, isSize, histc, bhistc, match, renorm,
                               _renorm_method)
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
    from . import tensor_linalg as la
    for name in ('gesv', 'gels', 'trtrs', 'symeig', 'eig', 'svd', 'inverse', 'potrf', 'potrs', 'potri',
                 'qr', 'geqrf', 'orgqr'):
        meth[name] = ns[name] = getattr(la, name)
    ns['conv2'] = meth['conv2'] = la._conv('conv2', 2, True)
    ns['xcorr2'] = meth['xcorr2'] = la._conv('xcorr2', 2, False)
    ns['conv3'] = meth['conv3'] = la._conv('conv3', 3, True)
    ns['xcorr3'] = meth['xcorr3'] = la._conv('xcorr3', 3, False)
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
