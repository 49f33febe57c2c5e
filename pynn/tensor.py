"""Tensor: a strided view (storage, 1-based offset, size, stride) with Torch7's methods.

Dims and indices in the API are 1-based as in Lua; `numpy()` gives a zero-copy
ndarray view of the tensor's bytes so layers can compute with NumPy/CuPy `out=`.
This file holds the storage model, Lua's operators and indexing, and the Python protocol;
the math library (TensorMath.lua) is bound onto Tensor from tensor_math.py, the random
fills from rng.py.
"""
import math
import numbers

import numpy as np

from . import backend
from .storage import Storage, _to_module

_default = {'kind': 'Double', 'device': 'cpu'}
_rng = {'gen': np.random.default_rng(0)}


def setdefaulttensortype(name):
    kind, device = backend.parse_typename(name)
    _default['kind'], _default['device'] = kind, device


def getdefaulttensortype():
    return backend.tensor_typename(_default['kind'], _default['device'])


def manualSeed(seed):
    """torch.manualSeed: seeds Torch's Mersenne Twister (pynn.random) and the auxiliary NumPy
    generator that `generator()` returns."""
    from . import rng as _random
    _random.manualSeed(seed)


def generator():
    """An auxiliary NumPy generator (reseeded by manualSeed); Torch's own stream is pynn.random."""
    return _rng['gen']


def _as_sizes(args, what='size'):
    """Accept resize(2, 3), resize((2, 3)), resize([2, 3]) or resize(LongStorage)."""
    if len(args) == 1 and not isinstance(args[0], numbers.Integral):
        a = args[0]
        if isinstance(a, Storage):
            a = a.tolist()
        elif isinstance(a, Tensor):
            a = a.tolist()
        args = tuple(a)
    try:
        sizes = tuple(int(s) for s in args)
    except (TypeError, ValueError):
        raise TypeError("expected a %s given as integers, got %r" % (what, args)) from None
    return sizes


def _contiguous_strides(size):
    stride = [0] * len(size)
    acc = 1
    for d in range(len(size) - 1, -1, -1):
        stride[d] = acc
        acc *= max(size[d], 1)
    return tuple(stride)


def _extent(size, stride):
    """Number of storage elements a view spans (0 for an empty view)."""
    if len(size) == 0 or any(s == 0 for s in size):
        return 0
    return 1 + sum((s - 1) * st for s, st in zip(size, stride))


def _fmt_size(size):
    return 'x'.join(str(s) for s in size) if size else '[]'


class Tensor:
    """A Torch7 tensor. Construct like Lua: Tensor(), Tensor(2, 3), Tensor({...} as list),
    Tensor(storage, offset1, size, stride), Tensor(other) (shares other's storage)."""

    def __init__(self, *args, kind=None, device=None):
        self._kind = kind or _default['kind']
        self._device = device or _default['device']
        self._storage = None
        self._offset = 0
        self._size = ()
        self._stride = ()
        if not args:
            return
        a0 = args[0]
        if isinstance(a0, Tensor):
            self.set(a0)
        elif isinstance(a0, Storage):
            self.set(*args)
        elif isinstance(a0, (list, tuple)) and (len(args) == 1) and (
                len(a0) == 0 or not isinstance(a0[0], numbers.Integral) or isinstance(a0, list)):
            # nested Lua table of numbers
            arr = np.asarray(a0, dtype=backend.KINDS[self._kind])
            self.resize(*arr.shape)
            if self._storage is not None and self._storage.data is not None:
                self.numpy()[...] = _to_module(arr, backend.array_module(self._storage.data))
        else:
            self.resize(*_as_sizes(args))

    # --- type ---------------------------------------------------------------
    @property
    def dtype(self):
        return np.dtype(backend.KINDS[self._kind])

    @property
    def device(self):
        return self._device

    def is_meta(self):
        return self._device == 'meta'

    def type(self, name=None):
        """type() -> 'torch.FloatTensor'; type(name) -> self if already that type, else a copy."""
        if name is None:
            return backend.tensor_typename(self._kind, self._device)
        kind, device = backend.parse_typename(name)
        if kind == self._kind and device == self._device:
            return self
        res = Tensor(kind=kind, device=device)
        res.resize(*self._size)
        res.copy(self)
        return res

    def typename(self):
        return self.type()

    def float(self):
        return self.type(backend.tensor_typename('Float', self._device if self._device != 'cuda' else 'cpu'))

    def double(self):
        return self.type(backend.tensor_typename('Double', self._device if self._device != 'cuda' else 'cpu'))

    def long(self):
        return self.type(backend.tensor_typename('Long', self._device if self._device != 'cuda' else 'cpu'))

    def byte(self):
        return self.type(backend.tensor_typename('Byte', self._device if self._device != 'cuda' else 'cpu'))

    def int(self):
        return self.type(backend.tensor_typename('Int', self._device if self._device != 'cuda' else 'cpu'))

    def cuda(self):
        return self.type(backend.tensor_typename(self._kind, 'cuda'))

    def new(self, *args):
        return Tensor(*args, kind=self._kind, device=self._device)

    # --- geometry -------------------------------------------------------------
    def dim(self):
        return len(self._size)

    nDimension = dim

    def size(self, d=None):
        if d is None:
            return self._size
        return self._size[self._dim0(d)]

    def stride(self, d=None):
        if d is None:
            return self._stride
        return self._stride[self._dim0(d)]

    def nElement(self):
        if not self._size:
            return 0
        n = 1
        for s in self._size:
            n *= s
        return n

    numel = nElement

    def storage(self):
        return self._storage

    def storageOffset(self):
        return self._offset + 1

    def elementSize(self):
        return self.dtype.itemsize

    def isContiguous(self):
        z = 1
        for s, st in zip(reversed(self._size), reversed(self._stride)):
            if s != 1:
                if st != z:
                    return False
                z *= s
        return True

    def isSameSizeAs(self, other):
        return self._size == other._size

    def isSetTo(self, other):
        return (self._storage is not None and self._storage is other._storage and
                self._offset == other._offset and self._size == other._size and
                self._stride == other._stride)

    def _dim0(self, d):
        n = len(self._size)
        if d < 0:
            d = n + d + 1
        if not 1 <= d <= n:
            raise IndexError("dimension %s out of range of %dD tensor" % (d, n))
        return d - 1

    # --- set / resize ---------------------------------------------------------
    def set(self, *args):
        """set(): empty, no storage. set(tensor): share its view. set(storage[, offset1[, size[, stride]]])."""
        if not args:
            self._storage, self._offset, self._size, self._stride = None, 0, (), ()
            return self
        src = args[0]
        if isinstance(src, Tensor):
            if src._kind != self._kind or src._device != self._device:
                raise TypeError("set: tensor types differ (%s vs %s)" % (self.type(), src.type()))
            self._storage, self._offset, self._size, self._stride = \
                src._storage, src._offset, src._size, src._stride
            return self
        if not isinstance(src, Storage):
            raise TypeError("set expects a Tensor or a Storage, got %s" % type(src).__name__)
        if src.dtype != self.dtype or src.device != self._device:
            raise TypeError("set: storage %s does not match tensor type %s" % (src.type(), self.type()))
        offset = int(args[1]) - 1 if len(args) > 1 and args[1] is not None else 0
        if len(args) > 2 and args[2] is not None:
            size = _as_sizes((args[2],))
        else:
            size = (src.size() - offset,) if src.size() - offset > 0 else ()
        if len(args) > 3 and args[3] is not None:
            stride = _as_sizes((args[3],), 'stride')
            if len(stride) != len(size):
                raise ValueError("set: %d sizes but %d strides" % (len(size), len(stride)))
        else:
            stride = _contiguous_strides(size)
        if offset < 0 or any(s < 0 for s in size) or any(st < 0 for st in stride):
            raise ValueError("set: negative offset, size or stride")
        if offset + _extent(size, stride) > src.size():
            raise ValueError("set: view (offset %d, size %s) does not fit a storage of %d elements"
                             % (offset + 1, _fmt_size(size), src.size()))
        self._storage, self._offset, self._size, self._stride = src, offset, size, stride
        return self

    def resize(self, *sizes):
        """Resize to `sizes` (contiguous strides unless unchanged); grows the storage in place."""
        size = _as_sizes(sizes)
        if any(s < 0 for s in size):
            raise ValueError("resize: sizes must be >= 0, got %s" % (size,))
        if size == self._size:
            return self
        stride = _contiguous_strides(size)
        need = self._offset + _extent(size, stride)
        if need > 0:
            if self._storage is None:
                self._storage = Storage(need, self.dtype, self._device)
            elif need > self._storage.size():
                self._storage.resize(need)
        self._size, self._stride = size, stride
        return self

    def resizeAs(self, other):
        return self.resize(*other._size)

    # --- views ----------------------------------------------------------------
    def _view_of(self, offset, size, stride):
        t = Tensor(kind=self._kind, device=self._device)
        t._storage, t._offset, t._size, t._stride = self._storage, offset, tuple(size), tuple(stride)
        return t

    def view(self, *sizes):
        size = list(_as_sizes(sizes))
        n = self.nElement()
        if size.count(-1) > 1:
            raise ValueError("view: only one dimension can be -1")
        if -1 in size:
            known = 1
            for s in size:
                if s != -1:
                    known *= s
            if known == 0 or n % known:
                raise ValueError("view: cannot infer -1 for %d elements into %s" % (n, size))
            size[size.index(-1)] = n // known
        total = 1
        for s in size:
            total *= s
        if total != n:
            raise ValueError("view: size %s is inconsistent with %d elements (tensor of size %s)"
                             % (_fmt_size(size), n, _fmt_size(self._size)))
        if not self.isContiguous():
            raise ValueError("view: input tensor must be contiguous")
        return self._view_of(self._offset, size, _contiguous_strides(size))

    def viewAs(self, other):
        return self.view(*other._size)

    def narrow(self, dim, index, size):
        d = self._dim0(dim)
        if not (1 <= index and index - 1 + size <= self._size[d] and size >= 0):
            raise IndexError("narrow: range %d..%d out of 1..%d in dim %d"
                             % (index, index + size - 1, self._size[d], dim))
        sz = list(self._size)
        sz[d] = size
        return self._view_of(self._offset + (index - 1) * self._stride[d], sz, self._stride)

    def select(self, dim, index):
        """A view without dimension dim at index (1-based); a number for a 1-D tensor, as Lua."""
        d = self._dim0(dim)
        if index < 0:
            index = self._size[d] + index + 1
        if not 1 <= index <= self._size[d]:
            raise IndexError("select: index %d out of 1..%d in dim %d" % (index, self._size[d], dim))
        sz = self._size[:d] + self._size[d + 1:]
        st = self._stride[:d] + self._stride[d + 1:]
        if not sz:
            return self.numpy()[index - 1].item()
        return self._view_of(self._offset + (index - 1) * self._stride[d], sz, st)

    def transpose(self, d1, d2):
        a, b = self._dim0(d1), self._dim0(d2)
        sz, st = list(self._size), list(self._stride)
        sz[a], sz[b] = sz[b], sz[a]
        st[a], st[b] = st[b], st[a]
        return self._view_of(self._offset, sz, st)

    def t(self):
        if self.dim() != 2:
            raise ValueError("t() expects a 2D tensor, got %dD" % self.dim())
        return self.transpose(1, 2)

    def contiguous(self):
        """A contiguous copy, or (already contiguous) a new tensor on the same storage, as Lua."""
        if self.isContiguous():
            return self._view_of(self._offset, self._size, self._stride)
        return self.clone()

    def clone(self):
        res = self.new()
        res.resize(*self._size)
        return res.copy(self)

    # --- data access ----------------------------------------------------------
    def numpy(self):
        """A zero-copy ndarray (NumPy or CuPy) view of this tensor's elements."""
        if self._device == 'meta':
            raise RuntimeError("a meta tensor (%s) has no data" % self.type())
        xp = backend.xp_for(self._device)
        n = self.nElement()
        if n == 0 or self._storage is None:
            return xp.empty(self._size if self._size else (0,), dtype=self.dtype)
        data = self._storage.data
        if self.isContiguous():
            return data[self._offset:self._offset + n].reshape(self._size)
        item = self.dtype.itemsize
        return xp.lib.stride_tricks.as_strided(
            data[self._offset:], shape=self._size, strides=tuple(s * item for s in self._stride))

    def tolist(self):
        a = self.numpy()
        if backend.array_module(a) is not np:
            a = a.get()
        return a.tolist()

    def copy(self, src):
        """Copy src's elements (any type, same number of elements) into self."""
        if not isinstance(src, Tensor):
            raise TypeError("copy expects a Tensor, got %s" % type(src).__name__)
        if src.nElement() != self.nElement():
            raise ValueError("copy: sizes do not match (%s has %d elements, %s has %d)"
                             % (_fmt_size(self._size), self.nElement(), _fmt_size(src._size), src.nElement()))
        if self._device == 'meta' or src._device == 'meta' or self.nElement() == 0:
            return self
        dst = self.numpy()
        s = _to_module(src.numpy(), backend.array_module(dst))
        if s.shape != dst.shape:
            s = s.reshape(dst.shape)
        dst[...] = s
        return self

    def _inplace(self, fn):
        if self._device != 'meta' and self.nElement():
            fn(self.numpy())
        return self

    def fill(self, value):
        return self._inplace(lambda a: a.fill(value))

    def zero(self):
        return self.fill(0)

    # --- Lua indexing: x[i], x[i, j], x[[a, b], []], x[mask], and assignment -------------------
    def _index_view(self, key, fn):
        """Resolve a Lua index to (view, number_wanted): ints select (1-based, negatives from the
        end), lists are ranges ([] all, [a] one, [a, b] a..b), a ByteTensor is a mask."""
        if isinstance(key, list):
            key = (key,)
        if not isinstance(key, tuple):
            key = (key,)
        if len(key) > self.dim():
            raise IndexError("%s: %d indices for a %dD tensor of size %s"
                             % (fn, len(key), self.dim(), _fmt_size(self._size)))
        v, d, picked = self, 1, 0
        for k in key:
            n = v._size[d - 1]
            if isinstance(k, bool) or not isinstance(k, (numbers.Integral, list)):
                raise TypeError("%s: index entries must be integers or lists (ranges), got %r" % (fn, k))
            if isinstance(k, numbers.Integral):
                i = n + k + 1 if k < 0 else k
                if not 1 <= i <= n:
                    raise IndexError("%s: index %d out of range 1..%d in dimension %d" % (fn, k, n, d))
                v = v.narrow(d, i, 1)
                picked += 1
                d += 1
                continue
            if len(k) == 0:
                d += 1
                continue
            if len(k) > 2:
                raise TypeError("%s: a range is [start] or [start, end], got %r" % (fn, k))
            s = k[0]
            e = k[1] if len(k) > 1 else k[0]
            s = n + s + 1 if s < 0 else s
            e = n + e + 1 if e < 0 else e
            if not (1 <= s <= n and s - 1 <= e <= n):
                raise IndexError("%s: range %r out of 1..%d in dimension %d" % (fn, k, n, d))
            v = v.narrow(d, s, e - s + 1)
            d += 1
        return v, key

    def _drop_selected(self, v, key):
        """Remove the dimensions that integer entries of key selected (Lua's select)."""
        keep = [i for i, k in enumerate(key) if not isinstance(k, numbers.Integral)]
        keep += list(range(len(key), v.dim()))
        if not keep:
            return None
        return v._view_of(v._offset, [v._size[i] for i in keep], [v._stride[i] for i in keep])

    def __getitem__(self, key):
        """Lua's x[i] (1-based; a number for 1-D), x[{i, j}] as x[i, j], ranges x[[1, 2], []],
        x[mask] (ByteTensor: maskedSelect), x[idx] (LongTensor: index(1, idx))."""
        if isinstance(key, Tensor):
            if key._kind == 'Byte':
                return self.maskedSelect(key)
            return self.index(1, key)
        if isinstance(key, numbers.Integral) and not isinstance(key, bool):
            if self.dim() == 0:
                raise IndexError("__getitem__: index %d into an empty tensor" % key)
            if self.dim() == 1:
                return self.numpy()[self._dim_index(key)].item()
            return self.select(1, key)
        v, key = self._index_view(key, '__getitem__')
        out = self._drop_selected(v, key)
        if out is None:
            return v.numpy().reshape(-1)[0].item()
        return out

    def _dim_index(self, i):
        n = self._size[0]
        if i < 0:
            i = n + i + 1
        if not 1 <= i <= n:
            raise IndexError("index %d out of range 1..%d" % (i, n))
        return i - 1

    def __setitem__(self, key, value):
        """x[...] = number fills, x[...] = tensor copies; x[mask] = v (maskedFill / maskedCopy)."""
        if not isinstance(value, (Tensor, numbers.Number)):
            raise TypeError("__setitem__: expected a number or a tensor, got %s" % type(value).__name__)
        if isinstance(key, Tensor):
            if key._kind == 'Byte':
                if isinstance(value, Tensor):
                    self.maskedCopy(key, value)
                else:
                    self.maskedFill(key, value)
                return
            return self.indexCopy(1, key, value) if isinstance(value, Tensor) else \
                self.indexFill(1, key, value)
        v, key = self._index_view(key, '__setitem__')
        if isinstance(value, Tensor):
            if value.nElement() != v.nElement():
                raise ValueError("__setitem__: %d elements given for a slot of size %s"
                                 % (value.nElement(), _fmt_size(v._size)))
            v.copy(value)
        else:
            v.fill(value)

    # --- Lua operators ---------------------------------------------------------------------------
    def __add__(self, other):
        if not isinstance(other, (Tensor, numbers.Number)):
            return NotImplemented
        return self.clone().add(other)

    def __radd__(self, other):
        return self.__add__(other)

    def __sub__(self, other):
        if isinstance(other, Tensor):
            return self.clone().add(-1, other)
        if isinstance(other, numbers.Number):
            return self.clone().add(-other)
        return NotImplemented

    def __rsub__(self, other):
        if not isinstance(other, numbers.Number):
            return NotImplemented
        return self.clone().mul(-1).add(other)

    def __neg__(self):
        return self.clone().mul(-1)

    def __mul__(self, other):
        """x * number scales; x * y: 1-D.1-D dot (a number), 2-D x 1-D mv, 2-D x 2-D mm."""
        if isinstance(other, numbers.Number):
            return self.clone().mul(other)
        if not isinstance(other, Tensor):
            return NotImplemented
        if self.dim() == 1 and other.dim() == 1:
            return self.dot(other)
        if self.dim() == 2 and other.dim() == 1:
            return self.new().resize(self._size[0]).zero().addmv(0, 1, self, other)
        if self.dim() == 2 and other.dim() == 2:
            return self.new().resize(self._size[0], other._size[1]).zero().addmm(0, 1, self, other)
        raise ValueError("__mul__: expected 1D.1D, 2D x 1D or 2D x 2D tensors, got %s and %s"
                         % (_fmt_size(self._size), _fmt_size(other._size)))

    def __rmul__(self, other):
        if not isinstance(other, numbers.Number):
            return NotImplemented
        return self.clone().mul(other)

    def __truediv__(self, other):
        if isinstance(other, numbers.Number):
            return self.clone().div(other)
        if isinstance(other, Tensor):
            return self.clone().cdiv(other)
        return NotImplemented

    __div__ = __truediv__

    def __mod__(self, other):
        if not isinstance(other, numbers.Number):
            return NotImplemented
        return self.clone().remainder(other)

    # --- Python protocol -------------------------------------------------------------------------
    def __len__(self):
        return self._size[0] if self._size else 0

    def __iter__(self):
        """Over the first dimension: sub-tensors (numbers for a 1-D tensor), as x[1], x[2], ..."""
        for i in range(1, len(self) + 1):
            yield self[i]

    def __contains__(self, value):
        if self.is_meta():
            raise RuntimeError("__contains__: a meta tensor has no data")
        if self.nElement() == 0:
            return False
        return bool((self.numpy() == value).any())

    def __array__(self, dtype=None, copy=None):
        """A NumPy view of the elements (zero-copy for CPU tensors), dtype kept unless asked."""
        a = self.numpy()
        if backend.array_module(a) is not np:
            a = a.get()
        if dtype is not None and np.dtype(dtype) != a.dtype:
            return a.astype(dtype)
        if copy:
            return a.copy()
        return a

    def __repr__(self):
        return _lua_format(self)

    __str__ = __repr__


def _fmt_block(a):
    """Lua's column formatting of a 1-D/2-D block of numbers: (lines, scale header or '')."""
    fin = a[np.isfinite(a)] if a.dtype.kind == 'f' else a
    if fin.size == 0:
        return [' '.join('%10s' % v for v in row) for row in np.atleast_2d(a)], ''
    amax = float(np.abs(fin).max())
    if a.dtype.kind != 'f' or np.all(fin == np.floor(fin)):
        width = len('%d' % amax) if amax < 1e15 else 16
        if (fin < 0).any():
            width += 1
        fmt = lambda v: ('%' + str(width) + '.0f') % v
        return [' '.join(' ' + fmt(v) for v in row) for row in np.atleast_2d(a)], ''
    expmax = int(math.floor(math.log10(amax))) if amax > 0 else 0
    scale = ''
    if expmax < -2 or expmax > 4:
        scale = '%.4e *\n' % (10.0 ** expmax)
        scale = '1e%+03d *\n' % expmax
        a = a / (10.0 ** expmax)
        expmax = 0
    width = max(expmax, 0) + 6 + (1 if (fin < 0).any() else 0)
    fmt = lambda v: ('%' + str(width) + '.4f') % v
    return [' '.join(' ' + fmt(v) for v in row) for row in np.atleast_2d(a)], scale


def _lua_format(t):
    foot = '[%s of size %s]' % (t.type(), _fmt_size(t.size()))
    if t.is_meta() or t.nElement() == 0:
        return '[%s with no dimension]' % t.type() if t.nElement() == 0 and not t.is_meta() else foot
    a = t.numpy()
    if backend.array_module(a) is not np:
        a = a.get()
    a = np.asarray(a)
    if a.ndim == 1:
        lines, scale = _fmt_block(a.reshape(-1, 1))
        return scale + '\n'.join(lines) + '\n' + foot
    if a.ndim == 2:
        lines, scale = _fmt_block(a)
        return scale + '\n'.join(lines) + '\n' + foot
    out = []
    for idx in np.ndindex(*a.shape[:-2]):
        lines, scale = _fmt_block(a[idx])
        out.append('(%s,.,.) = \n%s%s' % (','.join(str(i + 1) for i in idx), scale, '\n'.join(lines)))
    return '\n\n'.join(out) + '\n' + foot

def is_tensor(x):
    return isinstance(x, Tensor)


def from_numpy(arr):
    """A tensor over an ndarray, sharing its memory when it is C-contiguous, else a copy."""
    xp = backend.array_module(arr)
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8)
    kind = backend.kind_of_dtype(arr.dtype)
    device = 'cpu' if xp is np else 'cuda'
    if not arr.flags.c_contiguous:
        arr = xp.ascontiguousarray(arr)
    flat = arr.reshape(-1)
    t = Tensor(kind=kind, device=device)
    if flat.size:
        t.set(Storage(data=flat, dtype=arr.dtype, device=device), 1, arr.shape)
    return t


def typed(kind, device='cpu'):
    """A constructor for one fixed tensor type: pynn.FloatTensor(2, 3)."""
    def ctor(*args):
        return Tensor(*args, kind=kind, device=device)
    ctor.__name__ = backend.tensor_typename(kind, device).split('.')[-1]
    return ctor


def _filled(fill):
    def make(*sizes):
        t = Tensor(*_as_sizes(sizes)) if sizes else Tensor()
        return fill(t)
    return make


zeros = _filled(lambda t: t.zero())
ones = _filled(lambda t: t.fill(1))
