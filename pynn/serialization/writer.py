"""The .t7 writer: save, dumps (binary or ascii), as Lua's File:writeObject."""
import io
import numbers
import os

import numpy as np

from .. import backend
from ..storage import Storage
from ..tensor import Tensor
from ..nn.module import Module, Criterion
from .objects import (TYPE_NIL, TYPE_NUMBER, TYPE_STRING, TYPE_TABLE, TYPE_TORCH, TYPE_BOOLEAN,
                      TYPE_FUNCTION, _NAMES, Timer, _WriteObjects, LUA_VERSIONS, _CLASS_NAME,
                      TorchObject, UnknownModule, LuaFunction, TdsVec, TdsHash, TableKey)
from .sources import _I32, _I64, _F64


# --- writing -------------------------------------------------------------------------------------
class _BinaryWriter:
    def __init__(self):
        self.chunks = []

    def int(self, v):
        self.chunks.append(_I32.pack(v))

    def long(self, v):
        self.chunks.append(_I64.pack(v))

    def longs(self, vs):
        self.chunks.append(np.asarray(vs, dtype='<i8').tobytes())

    def double(self, v):
        self.chunks.append(_F64.pack(v))

    def raw(self, b):
        self.chunks.append(bytes(b))

    def array(self, arr, kind):
        arr = np.ascontiguousarray(arr).astype(np.dtype(arr.dtype).newbyteorder('<'), copy=False)
        self.chunks.append(arr.reshape(-1).view(np.uint8))   # no copy of the data until written

    def getvalue(self):
        return b''.join(self.chunks)

    def writeto(self, f):
        for chunk in self.chunks:
            f.write(chunk)


_ASCII_FORMATS = {'Short': '%d', 'Int': '%d', 'Long': '%d', 'Float': '%.9g', 'Half': '%.9g',
                  'Double': '%.17g'}


class _AsciiWriter(_BinaryWriter):
    """The layout of THDiskFile in ascii mode with auto-spacing."""

    def _line(self, texts):
        if texts:
            self.chunks.append((' '.join(texts) + '\n').encode('ascii'))

    def int(self, v):
        self._line(['%d' % v])

    long = int

    def longs(self, vs):
        self._line(['%d' % v for v in vs])

    def double(self, v):
        self._line([_c_float('%.17g', v)])

    def raw(self, b):
        if len(b):
            self.chunks.append(bytes(b) + b'\n')

    def array(self, arr, kind):
        if kind in ('Byte', 'Char'):
            self.raw(arr.tobytes())
            return
        fmt = _ASCII_FORMATS[kind]
        vals = arr.tolist()
        self._line([_c_float(fmt, v) for v in vals] if arr.dtype.kind == 'f' else [fmt % v for v in vals])


def _c_float(fmt, v):
    return fmt % v   # Python's %g prints inf/nan as C's printf does


def _is_module_like(obj):
    return isinstance(obj, (Module, Criterion, TorchObject)) or \
        isinstance(getattr(type(obj), '__typename__', None), str)


_OPTIMIZED = ('__memoryOptimized', '_pynn_backward_disabled', '_pynn_getParameters_disabled', '_pynn_arena')


def _version_text(v):
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    return 'V %s' % (v if isinstance(v, int) else '%.14g' % v)


class _Writer:
    def __init__(self, emit):
        self.e = emit
        self.memo = {}     # id(obj) -> reference index
        self.keep = []     # keeps written objects alive so that their ids stay unique
        self.count = 0

    def run(self, root):
        stack = [self._object(root, 'obj')]
        while stack:
            try:
                child = next(stack[-1])
            except StopIteration:
                stack.pop()
                continue
            stack.append(self._object(*child))

    def _new_ref(self, obj, tag):
        """Write tag and reference index; True when obj was written before (index only)."""
        e = self.e
        e.int(tag)
        index = self.memo.get(id(obj))
        if index is not None:
            e.int(index)
            return True
        self.count += 1
        self.memo[id(obj)] = self.count
        self.keep.append(obj)
        e.int(self.count)
        return False

    def _string(self, s):
        b = s.encode('utf-8') if isinstance(s, str) else bytes(s)
        self.e.int(len(b))
        self.e.raw(b)

    def _torch_head(self, version, name):
        self._string(_version_text(version))
        self._string(name)

    def _object(self, obj, path):
        e = self.e
        if obj is None:
            e.int(TYPE_NIL)
            return
        if isinstance(obj, (bool, np.bool_)):
            e.int(TYPE_BOOLEAN)
            e.int(1 if obj else 0)
            return
        if isinstance(obj, (numbers.Integral, float, np.floating)):
            e.int(TYPE_NUMBER)
            e.double(_to_double(obj, path))
            return
        if isinstance(obj, (str, bytes, bytearray)):
            e.int(TYPE_STRING)
            try:
                self._string(obj)
            except UnicodeEncodeError as err:
                raise ValueError('cannot save the string at %s: %s' % (path, err)) from None
            return
        if isinstance(obj, (tuple, list)) and not isinstance(obj, TdsVec):   # TdsVec: below
            if isinstance(obj, tuple):   # a fresh table each time: no reference
                e.int(TYPE_TABLE)
                self.count += 1
                e.int(self.count)
            elif self._new_ref(obj, TYPE_TABLE):
                return
            e.int(len(obj))
            for i, v in enumerate(obj):
                e.int(TYPE_NUMBER)
                e.double(float(i + 1))
                yield v, '%s[%d]' % (path, i)
            return
        if isinstance(obj, LuaFunction):
            if obj.tag == TYPE_FUNCTION:
                e.int(TYPE_FUNCTION)
            elif self._new_ref(obj, obj.tag):
                return
            e.int(len(obj.bytecode))
            e.raw(obj.bytecode)
            yield obj.upvalues, path + '.upvalues'
            return
        if isinstance(obj, (TdsVec, TdsHash)):
            if self._new_ref(obj, TYPE_TORCH):
                return
            name = 'tds.Vec' if isinstance(obj, TdsVec) else 'tds.Hash'
            self._torch_head(LUA_VERSIONS[name], name)
            e.long(len(obj))
            if isinstance(obj, TdsVec):
                for i, v in enumerate(obj):
                    yield v, '%s[%d]' % (path, i)
            else:
                for k, v in obj.items():
                    yield _unkey(k, path), path + '<key>'
                    yield v, '%s[%r]' % (path, k)
            return
        if isinstance(obj, dict):
            if self._new_ref(obj, TYPE_TABLE):
                return
            e.int(len(obj))
            for k, v in obj.items():
                yield _unkey(k, path), path + '<key>'
                yield v, '%s.%s' % (path, k) if isinstance(k, str) else '%s[%r]' % (path, k)
            return
        if isinstance(obj, Tensor):
            if obj.is_meta():
                raise ValueError('cannot save the meta tensor at %s: it has no data' % path)
            if self._new_ref(obj, TYPE_TORCH):
                return
            self._torch_head(1, _NAMES[('tensor', obj._kind, obj.device)])
            size, stride = obj.size(), obj.stride()
            e.int(len(size))
            e.longs(size)
            e.longs(stride)
            e.long(obj.storageOffset())
            yield obj.storage(), path + '.storage'
            return
        if isinstance(obj, Storage):
            if obj.data is None:
                raise ValueError('cannot save the meta storage at %s: it has no data' % path)
            if self._new_ref(obj, TYPE_TORCH):
                return
            kind = backend.kind_of_dtype(obj.dtype)
            self._torch_head(1, _NAMES[('storage', kind, obj.device)])
            data = obj.data
            if backend.array_module(data) is not np:
                data = data.get()
            e.long(obj.size())
            e.array(data, kind)
            return
        if isinstance(obj, Timer):
            if self._new_ref(obj, TYPE_TORCH):
                return
            self._torch_head(1, 'torch.Timer')
            return
        if _is_module_like(obj):
            d = obj.__dict__
            for flag in _OPTIMIZED:
                if d.get(flag):
                    raise ValueError(
                        'refusing to save %s (at %s): it was changed by optnet.optimizeMemory (%s is set), '
                        'and a file of it would not load as a working network; call '
                        'pynn.optnet.removeOptimization(net) first' % (_typename(obj), path, flag))
            if self._new_ref(obj, TYPE_TORCH):
                return
            name = _typename(obj)
            if isinstance(obj, (TorchObject, UnknownModule)):
                version = d.get('_pynn_version', 1)
            else:   # Lua's rawget(metatable, '__version'): the class's own, not inherited
                version = LUA_VERSIONS.get(name, type(obj).__dict__.get('__version__', 1))
            self._torch_head(version, name)
            if '_pynn_payload' in d:
                yield d['_pynn_payload'], path
                return
            if callable(getattr(type(obj), 'write', None)):   # the class's own Lua-style write
                sink = _WriteObjects()
                obj.write(sink)
                for i, x in enumerate(sink.objects):
                    yield x, '%s<object %d>' % (path, i + 1)
                return
            fields = {}
            for k, v in d.items():
                if not isinstance(k, str):
                    raise TypeError('cannot save %s at %s: field name %r is not a string' % (name, path, k))
                if not k.startswith('_pynn'):
                    fields[k] = v
            yield fields, path
            return
        if isinstance(obj, np.ndarray):
            raise TypeError('cannot save a numpy array (at %s): make it a tensor with pynn.from_numpy' % path)
        raise TypeError('cannot save an object of type %s (at %s): Torch files hold nil, numbers, '
                        'booleans, strings, tables (lists, dicts), tensors, storages and torch classes'
                        % (type(obj).__name__, path))


def _typename(obj):
    name = obj.__typename__
    if not isinstance(name, str) or not _CLASS_NAME.match(name):
        raise TypeError('cannot save %s: bad class name %r' % (type(obj).__name__, name))
    return name


def _unkey(k, path):
    if isinstance(k, TableKey):
        return k.table
    if k is None:
        raise TypeError('cannot save a table with a None key (at %s)' % path)
    if isinstance(k, float) and k != k:
        raise TypeError('cannot save a table with a NaN key (at %s)' % path)
    return k


def _to_double(x, path):
    if isinstance(x, numbers.Integral):
        x = int(x)
        try:
            d = float(x)
        except OverflowError:
            d = None
        if d is None or int(d) != x:
            raise ValueError('cannot save the integer %d (at %s): Lua numbers are doubles and this one '
                             'would not survive the trip' % (x, path))
        return d
    return float(x)


def _serialize(obj, mode):
    if mode == 'binary':
        emit = _BinaryWriter()
    elif mode == 'ascii':
        emit = _AsciiWriter()
    else:
        raise ValueError("mode must be 'binary' or 'ascii', got %r" % (mode,))
    _Writer(emit).run(obj)
    return emit


def dumps(obj, mode='binary'):
    """The bytes of a .t7 file holding obj. See `save`."""
    return _serialize(obj, mode).getvalue()


def save(path_or_file, obj, mode='binary'):
    """Write obj as Lua Torch's torch.save(path, obj[, mode]) would: the same type names,
    layouts and reference sharing, so that Lua's torch.load (and pynn.load) read it back.

    mode: 'binary' (default; little-endian, 8-byte longs) or 'ascii'.
    The whole file is built in memory first: on any error (an unwritable value, a network
    optimized by optnet, ...) nothing is written.
    """
    if not isinstance(path_or_file, (str, os.PathLike)) and not hasattr(path_or_file, 'write'):
        raise TypeError('save expects a path or a binary file object, got %s' % type(path_or_file).__name__)
    if isinstance(path_or_file, io.TextIOBase):
        raise TypeError('save needs a file opened in binary mode (wb)')
    emit = _serialize(obj, mode)   # everything checked before the file is touched
    if isinstance(path_or_file, (str, os.PathLike)):
        with open(path_or_file, 'wb') as f:
            emit.writeto(f)
    else:
        emit.writeto(path_or_file)
