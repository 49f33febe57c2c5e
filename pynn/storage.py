"""Storage: a flat typed buffer that several tensors share (Torch7's THStorage)."""
import numpy as np

from . import backend


class Storage:
    """A flat, typed, resizable buffer on one device.

    `data` is a 1-D NumPy (cpu) or CuPy (cuda) array, or None on the meta device,
    where only the size is kept. `resize` swaps the buffer *in place*, so every
    tensor that holds this Storage object sees the new buffer (what optnet's sharing
    relies on). Indexing is 1-based as in Lua.
    """

    __slots__ = ('data', 'dtype', 'device', '_size', '__weakref__')

    def __init__(self, size=0, dtype=np.float64, device='cpu', data=None):
        self.dtype = np.dtype(dtype)
        self.device = device
        if data is not None:
            if data.ndim != 1:
                raise ValueError("Storage data must be 1-D, got %d dims" % data.ndim)
            self.data = data
            self._size = int(data.shape[0])
            return
        if isinstance(size, (list, tuple)):  # torch.LongStorage{1,2,3}
            values = size
            size = len(values)
        else:
            values = None
        size = int(size)
        if size < 0:
            raise ValueError("Storage size must be >= 0, got %d" % size)
        self._size = size
        xp = backend.xp_for(device)
        self.data = None if xp is None else xp.zeros(size, dtype=self.dtype)
        if values is not None and self.data is not None:
            self.data[:] = xp.asarray(values, dtype=self.dtype)

    # --- Torch7 API -------------------------------------------------------
    def size(self):
        return self._size

    def __len__(self):
        return self._size

    def elementSize(self):
        return self.dtype.itemsize

    def nbytes(self):
        return self._size * self.dtype.itemsize

    def type(self):
        return backend.tensor_typename(backend.kind_of_dtype(self.dtype), self.device)[:-6] + 'Storage'

    typename = property(type)

    def resize(self, n):
        """Grow or shrink in place, keeping the first min(old, n) elements (realloc)."""
        n = int(n)
        if n < 0:
            raise ValueError("Storage.resize: size must be >= 0, got %d" % n)
        if n == self._size:
            return self
        if self.data is not None:
            xp = backend.array_module(self.data)
            new = xp.zeros(n, dtype=self.dtype) if n > self._size else xp.empty(n, dtype=self.dtype)
            keep = min(n, self._size)
            if keep:
                new[:keep] = self.data[:keep]
            self.data = new
        self._size = n
        return self

    def fill(self, value):
        if self.data is not None:
            self.data.fill(value)
        return self

    def copy(self, other):
        if other.size() != self._size:
            raise ValueError("Storage.copy: sizes differ (%d vs %d)" % (self._size, other.size()))
        if self.data is not None and other.data is not None:
            self.data[:] = _to_module(other.data, backend.array_module(self.data))
        return self

    def tolist(self):
        if self.data is None:
            raise RuntimeError("meta storage has no data")
        return backend.array_module(self.data).asnumpy(self.data).tolist() \
            if backend.array_module(self.data) is not np else self.data.tolist()

    def __getitem__(self, i):
        if not 1 <= i <= self._size:
            raise IndexError("Storage index %d out of range 1..%d" % (i, self._size))
        return self.data[i - 1].item()

    def __setitem__(self, i, v):
        if not 1 <= i <= self._size:
            raise IndexError("Storage index %d out of range 1..%d" % (i, self._size))
        self.data[i - 1] = v

    def __iter__(self):
        return iter(self.tolist())

    def __repr__(self):
        return '%s of size %d' % (self.type(), self._size)


def _to_module(arr, xp):
    """Move an array to the array module xp (host<->device copies where needed)."""
    src = backend.array_module(arr)
    if src is xp:
        return arr
    if xp is np:
        return arr.get()
    return xp.asarray(arr)


def LongStorage(values=()):
    return Storage(list(values), dtype=np.int64)
