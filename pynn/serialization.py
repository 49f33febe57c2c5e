"""Torch7's serialization format (.t7 files): `pynn.load` and `pynn.save`.

Reads what Lua Torch's `torch.save` writes (binary, little-endian, 8-byte longs as on
x86_64 Linux; 'b32' files with 4-byte longs on request; ascii files too) and writes
binary (or ascii) files that Lua Torch's `torch.load` reads.

How Lua values map to Python
----------------------------
=====================  ==============================================================
Lua                    pynn
=====================  ==============================================================
nil                    None
number                 int when the double is integral with |x| <= 2^53 (and not -0.0),
                       else float. Python ints and floats are written as doubles; an
                       int a double cannot hold exactly is refused (ValueError).
boolean                bool
string                 str when the bytes are valid UTF-8, else bytes (Lua strings are
                       bytes). str is written as UTF-8, bytes as they are.
table, keys 1..n       list (the empty table too: it loads as []).
other table            dict. A table used as a key loads wrapped in `TableKey`. A dict
                       whose keys are exactly 1..n, or an empty dict, saves as a table
                       that loads as a list. Tuples save as tables (load as lists).
torch.*Tensor          pynn.Tensor of the same element type, sharing its Storage object
                       with every other tensor that shared it in the file. CUDA types
                       (torch.CudaTensor, torch.CudaDoubleTensor, ...) load onto the CPU
                       with the same element type (CudaTensor -> FloatTensor); modules'
                       `_type` field is renamed alike. A Lua empty tensor (no storage)
                       loads as pynn's empty tensor and saves back as one.
torch.*Storage         pynn.Storage (LongStorage fields such as nn.Concat.outputSize
                       are int64 Storages).
nn.X, known to pynn    an instance of `pynn.nn.registry()['nn.X']`, made without calling
                       its constructor, whose __dict__ is the file's fields. Fields older
                       nn versions wrote differently are then upgraded as Lua nn's own
                       back-compatibility code does: by the class's `read(file, version)`
                       hook when it has one (Lua's read metamethod; file is None), else
                       by `UPGRADES` (SpatialConvolution's 2-D weight and `padding`,
                       BatchNormalization's running_std of version 1, pooling's ceil_mode
                       and padding, Dropout v1, ...).
torch.Timer            `Timer` (nn.Profile holds one): Lua nn writes it as its class name
                       only and reads a fresh timer; so does pynn.
nn.GPU, nn.WeightNorm  classes with their own Lua write: `write(file)` gets a file whose
                       writeObject queues what follows the class name (nn.WeightNorm: its
                       fields without weight and gradWeight). Where Lua writes several
                       objects (`__t7_objects__`; nn.GPU: a header {_type, device}, then the
                       fields), `read(file, version)` gets a file whose readObject returns
                       them in order.
other torch class      `UnknownModule` (looks like an nn module: named nn.* / cudnn.*, or
                       has output/gradInput fields) or `TorchObject`: keeps its class
                       name (`torch_typename()`, `__typename__`), version and fields, and
                       saves back unchanged. Running an UnknownModule raises
                       NotImplementedError naming the class.
tds.Vec / tds.Hash     `TdsVec` (a list) / `TdsHash` (a dict), saved back as tds objects.
Lua function           refused by default (`T7FunctionError`); with allow_functions=True
                       an inert `LuaFunction` holding the bytecode and upvalues as bytes
                       and data. pynn never runs Lua code, whatever the option.
=====================  ==============================================================

Shared references and cycles in the file are kept: one Python object per referenced file
object. Saving writes each Python object (list, dict, tensor, storage, module) once and
refers back to it after that, as Lua's File:writeObject does; tuples are written afresh
every time (small tuples are shared by Python for no reason of the program's).

Modules are written as their class name (`__typename__`) and version ('V 2' for the batch
normalizations, as Lua's `__version`; see `LUA_VERSIONS`, else the class's own `__version__`,
else 1) with their fields: the module's __dict__ minus keys starting with '_pynn' (pynn's
private book-keeping). A None field is written as an explicit nil entry (Lua ignores it;
pynn gets the attribute back). A file re-saved after loading is byte for byte the file Lua
wrote (checked on every reference file).

Limitation: a Lua table with both `true` and `1` (or `false` and `0`) as keys cannot be a
Python dict; such a file raises T7FormatError.

Safety: files from strangers
----------------------------
Loading runs no code from the file: classes are looked up in pynn's registry and filled
with data. Every count in the file (string and table lengths, storage sizes, tensor
dimensions) is checked against the bytes that remain before anything is allocated, so a
header that claims a huge storage fails at once. Truncated or malformed files, unknown type
tags, bad version strings, unsupported Torch classes, tensors whose view does not fit their
storage and reference indices that point to no object (a new object must carry the next
index, as every Lua writer numbers them) raise `T7FormatError`, which gives the byte offset. Nesting is handled without Python recursion (up to MAX_DEPTH levels).

Saving refuses (ValueError, before anything is written) a network that optnet's
optimizeMemory changed (the root's `__memoryOptimized` flag, or any module with backward
or getParameters disabled): call `pynn.optnet.removeOptimization(net)` first.
"""
import gc
import io
import math
import mmap
import numbers
import os
import re
import struct
import sys
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from . import backend
from .storage import Storage
from .tensor import Tensor, _extent
from .nn.module import Module, Criterion

__all__ = ['load', 'save', 'loads', 'dumps', 'T7FormatError', 'T7FunctionError', 'TorchObject',
           'UnknownModule', 'LuaFunction', 'TdsVec', 'TdsHash', 'TableKey', 'TYPES', 'UPGRADES', 'Timer']

TYPE_NIL = 0
TYPE_NUMBER = 1
TYPE_STRING = 2
TYPE_TABLE = 3
TYPE_TORCH = 4
TYPE_BOOLEAN = 5
TYPE_FUNCTION = 6
LEGACY_TYPE_RECUR_FUNCTION = 7
TYPE_RECUR_FUNCTION = 8

MAX_DEPTH = 10000   # nested objects (Lua's own reader would run out of stack long before)
MAX_DIMS = 64       # NumPy's limit on dimensions


# --- the one table of Torch type names (reader and writer) ------------------------------------
def _type_table():
    table = {}
    for kind in backend.KINDS:
        for device in ('cpu', 'cuda'):
            tname = backend.tensor_typename(kind, device)
            table[tname] = ('tensor', kind, device)
            table[tname[:-len('Tensor')] + 'Storage'] = ('storage', kind, device)
    return table


TYPES = _type_table()                      # 'torch.CudaStorage' -> ('storage', 'Float', 'cuda')
_NAMES = {v: k for k, v in TYPES.items()}  # ('tensor', 'Double', 'cpu') -> 'torch.DoubleTensor'

# Torch classes written as raw C structs (or not at all): no way to read them as data.
_UNREADABLE = {'torch.Generator', 'torch.File', 'torch.DiskFile', 'torch.MemoryFile',
               'torch.PipeFile', 'torch.Allocator'}


class Timer:
    """torch.Timer (nn.Profile holds one). Lua nn makes it serializable with an empty write and
    a read that keeps a fresh timer: it is written as its class name only, and loads as a new,
    running Timer. time() -> {'real', 'user', 'sys'} seconds, as Lua's."""

    __typename__ = 'torch.Timer'

    def __init__(self):
        self.reset()

    @staticmethod
    def _now():
        import os
        import time
        t = os.times()
        return time.perf_counter(), t.user, t.system

    def reset(self):
        self._total = [0.0, 0.0, 0.0]
        self._start = self._now()
        self._running = True
        return self

    def stop(self):
        if self._running:
            now = self._now()
            self._total = [a + n - s for a, n, s in zip(self._total, now, self._start)]
            self._running = False
        return self

    def resume(self):
        if not self._running:
            self._start = self._now()
            self._running = True
        return self

    def time(self):
        tot = self._total
        if self._running:
            now = self._now()
            tot = [a + n - s for a, n, s in zip(tot, now, self._start)]
        return {'real': tot[0], 'user': tot[1], 'sys': tot[2]}

    def __getstate__(self):
        return {}

    def __setstate__(self, state):
        self.reset()

    def __repr__(self):
        return 'torch.Timer'


class _ReadObjects:
    """The `file` a class's read(file, version) gets: readObject() returns, in order, the objects
    its Lua write wrote after the class name (already loaded)."""

    def __init__(self, objects):
        self._objects = list(objects)

    def readObject(self):
        return self._objects.pop(0) if self._objects else None


class _WriteObjects:
    """The `file` a class's write(file) gets: writeObject(x) queues x to be written."""

    def __init__(self):
        self.objects = []

    def writeObject(self, obj):
        self.objects.append(obj)


def _lua_objects(cls, version):
    """How many objects the Lua class writes after its name (its own write/read: nn.GPU 2;
    cunn's DataParallelTable 2 from version 2 on): an int, or a function of the version."""
    n = getattr(cls, '__t7_objects__', 1) if cls is not None else 1
    return n(version) if callable(n) else n

# Class versions (Lua's `__version`; 1 when a class does not set it). Written as 'V <n>'.
LUA_VERSIONS = {'nn.BatchNormalization': 2, 'nn.SpatialBatchNormalization': 2,
                'nn.LookupTable': 4, 'nn.VolumetricMaxPooling': 2, 'nn.GradientReversal': 2,
                'tds.Vec': 0, 'tds.Hash': 0}

_PREAD_MIN = 1 << 20   # bytes: storages at least this large are read with preadv

_CLASS_NAME = re.compile(r'[A-Za-z_][A-Za-z0-9_.:\-]*\Z')


# Where classes that pynn does not implement come from: named in the error when such an
# object is run, so that a user knows which Lua package the file needs.
_PACKAGE_OF_CLASS = {
    # Element-Research's rnn (and its dpnn base)
    **{'nn.' + c: "Element-Research's rnn" for c in (
        'Sequencer', 'Recurrent', 'Recursor', 'AbstractRecurrent', 'FastLSTM', 'SeqLSTM',
        'SeqLSTMP', 'SeqGRU', 'SeqBRNN', 'BiSequencer', 'BiSequencerLM', 'MaskZero', 'TrimZero',
        'LookupTableMaskZero', 'Repeater', 'RecurrentAttention', 'Recurrence', 'NormStabilizer',
        'SequencerCriterion', 'RepeaterCriterion', 'MaskZeroCriterion', 'LSTMP', 'RecGRU',
        'RecLSTM')},
    **{'nn.' + c: "Element-Research's dpnn" for c in (
        'Inception', 'Serial', 'SpatialGlimpse', 'ReinforceNormal', 'ReinforceBernoulli',
        'ReinforceCategorical', 'VRClassReward', 'Collapse', 'SpatialUniformCrop',
        'SpatialFeatNormalization', 'SpatialBinaryConvolution', 'SimpleColorTransform',
        'PCAColorTransform', 'ArgMax', 'CategoricalEntropy', 'TotalDropout',
        'BinaryLogisticRegression', 'BinaryClassReward', 'Clip', 'SpatialRegionDropout',
        'Dictionary', 'NCEModule', 'NCECriterion')},
    # jcjohnson's torch-rnn (its nn.LSTM too; Element-Research's rnn has one of that name)
    'nn.LanguageModel': "jcjohnson's torch-rnn", 'nn.VanillaRNN': "jcjohnson's torch-rnn",
    'nn.TemporalAdapter': "jcjohnson's torch-rnn",
    'nn.LSTM': "Element-Research's rnn or jcjohnson's torch-rnn",
    'nn.GRU': "Element-Research's rnn",
    # nnx
    **{'nn.' + c: 'clementfarabet\'s nnx' for c in (
        'SpatialReSampling', 'SpatialDownSampling', 'SpatialMatching', 'SpatialPyramid',
        'SpatialFovea', 'SpatialRecursiveFovea', 'SoftMaxTree', 'TreeNLLCriterion', 'PushTable',
        'PullTable', 'MultiSoftMax', 'Balance', 'SpatialNormalization', 'QDRiemaNNLinear',
        'SpatialReSamplingEx', 'SpatialColorTransform', 'DistNLLCriterion', 'SuperCriterion',
        'SpatialClassifier', 'SpatialLinear', 'SpatialMaxSampling', 'SpatialRadialMatching',
        'SpatialUpSampling', 'FunctionWrapper', 'Probe', 'DataSetLabelMe', 'Tic', 'Toc')},
    # cudnn.torch's recurrent modules (the convolutional ones load as their nn counterparts)
    **{'cudnn.' + c: "soumith's cudnn.torch (its cuDNN recurrent networks)" for c in (
        'RNN', 'LSTM', 'GRU', 'BLSTM', 'BGRU', 'RNNReLU', 'RNNTanh')},
    'nn.SpatialConvolutionCUDA': 'cunn (its old CUDA-only layers)',
    'nn.SpatialMaxPoolingCUDA': 'cunn (its old CUDA-only layers)',
    'nn.Jacobian': 'nn (a test helper, not a module)',
}
_PACKAGE_OF_PREFIX = (
    ('ccn2.', 'cuda-convnet2.torch'), ('fbnn.', "facebook's fbnn"), ('fbcunn.', "facebook's fbcunn"),
    ('inn.', "szagoruyko's inn"), ('w2nn.', 'waifu2x'), ('nngraph.', 'nngraph'), ('graph.', 'graph (nngraph)'),
    ('rnn.', "Element-Research's rnn"), ('dpnn.', "Element-Research's dpnn"), ('cudnn.', "soumith's cudnn.torch"),
    ('cunn.', 'cunn'), ('nnx.', "clementfarabet's nnx"), ('tds.', 'tds'), ('image.', 'image'),
    ('optim.', 'optim'), ('torch.', 'torch7'),
)


# cudnn.torch classes whose nn counterpart has another name (see _Classes.get); their fields
# are translated by UPGRADES.
_CUDNN_AS_NN = {'cudnn.ClippedReLU': 'nn.HardTanh'}


def lua_package(typename):
    """The Lua package a class name comes from, as far as pynn knows ('' if it does not)."""
    pkg = _PACKAGE_OF_CLASS.get(typename)
    if pkg is None:
        pkg = next((p for pre, p in _PACKAGE_OF_PREFIX if typename.startswith(pre)), '')
    return pkg


def _missing_class_text(typename):
    pkg = lua_package(typename)
    return "the Lua class '%s'%s is not implemented in pynn" % (
        typename, ' (from the Lua package %s)' % pkg if pkg else '')


class T7FormatError(ValueError):
    """A .t7 file that cannot be read: malformed, truncated, or unsupported. `offset` is the
    byte offset in the file where the problem was found."""

    def __init__(self, message, offset=None):
        self.reason = message
        self.offset = offset
        super().__init__(message if offset is None else '%s (at byte %d)' % (message, offset))


class T7FunctionError(T7FormatError):
    """The file holds a serialized Lua function and allow_functions was False."""


# --- objects that stand for Lua things pynn has no class for ------------------------------------
class TorchObject:
    """An instance of a Torch class pynn does not implement: its fields are attributes;
    `torch_typename()` (and `__typename__`) give the Lua class name. Saved back unchanged.
    If the file's payload was not a table of named fields it is kept in `_pynn_payload`."""

    def __init__(self, typename, fields=None, version=1):
        self.__dict__['_pynn_typename'] = typename
        self.__dict__['_pynn_version'] = version
        if fields:
            self.__dict__.update(fields)

    @property
    def __typename__(self):
        return self.__dict__.get('_pynn_typename')

    def torch_typename(self):
        return self.__dict__.get('_pynn_typename')

    def _unsupported(self, *args, **kwargs):
        raise NotImplementedError(
            "%s: it was loaded from a .t7 file as an inert object that keeps its fields (%s) and "
            "tensors, but it cannot run. If you have a Python implementation, define it as a "
            "subclass of nn.Module named after the Lua class before pynn.load, or register it with "
            "pynn.registerClass(%r, cls)"
            % (_missing_class_text(self.torch_typename()),
               ', '.join(sorted(k for k in self.__dict__
                                if isinstance(k, str) and not k.startswith('_pynn'))) or 'none',
               self.torch_typename()))

    forward = backward = updateOutput = updateGradInput = accGradParameters = __call__ = _unsupported

    def __repr__(self):
        return '<%s (loaded as a generic object: no pynn implementation)>' % self.torch_typename()


class UnknownModule(Module):
    """An nn module whose Lua class pynn does not implement. It keeps its fields and its class
    name and takes part in what needs no computation (listModules, parameters, type, save);
    forward/backward raise NotImplementedError naming the class."""

    @property
    def __typename__(self):
        return self.__dict__.get('_pynn_typename')

    def torch_typename(self):
        return self.__dict__.get('_pynn_typename')

    _unsupported = TorchObject._unsupported

    def updateOutput(self, input):
        self._unsupported()

    def updateGradInput(self, input, gradOutput):
        self._unsupported()

    def accGradParameters(self, input, gradOutput, scale=1):
        self._unsupported()

    def backward(self, input, gradOutput, scale=1):
        self._unsupported()

    def __tostring__(self):
        return '%s (not implemented in pynn)' % self.torch_typename()


class LuaFunction:
    """A Lua function read from a file, as inert data: `bytecode` (bytes: Lua/LuaJIT bytecode,
    never run) and `upvalues` (as loaded). Saved back as it was. Calling it raises TypeError."""

    def __init__(self, bytecode, upvalues=None, tag=TYPE_RECUR_FUNCTION):
        self.bytecode = bytes(bytecode)
        self.upvalues = upvalues
        self.tag = tag

    def __call__(self, *args, **kwargs):
        raise TypeError('a Lua function loaded from a .t7 file cannot be called: pynn never runs Lua code')

    def __repr__(self):
        return '<LuaFunction: %d bytes of bytecode (inert)>' % len(self.bytecode)


class TdsVec(list):
    """A tds.Vec (Lua's `tds` vector), as a Python list."""


class TdsHash(dict):
    """A tds.Hash (Lua's `tds` hash map), as a Python dict."""


class TableKey:
    """A Lua table (list or dict here) used as a key of another table; `table` is the key.
    Equal only to a TableKey of the very same table (Lua compares tables by identity)."""
    __slots__ = ('table',)

    def __init__(self, table):
        self.table = table

    def __hash__(self):
        return id(self.table)

    def __eq__(self, other):
        return isinstance(other, TableKey) and other.table is self.table

    def __repr__(self):
        return 'TableKey(%s at 0x%x)' % (type(self.table).__name__, id(self.table))


# --- byte sources ----------------------------------------------------------------------------------
_I32 = struct.Struct('<i')
_I64 = struct.Struct('<q')
_F64 = struct.Struct('<d')


_PREAD_PART = 32 << 20   # bytes per thread when one storage is read by several
_PREAD_THREADS = min(4, os.cpu_count() or 1)


def _pread_into(fd, view, lo, hi, offset, what):
    """Bytes lo..hi of the array `view` from the file at offset + lo."""
    done = lo
    while done < hi:
        got = os.preadv(fd, [view[done:hi]], offset + done)
        if got <= 0:
            raise T7FormatError('the file ended inside %s' % what, offset + done)
        done += got


class _BinaryReader:
    def __init__(self, data, long_size=8):
        self.data = data
        self.pos = 0
        self.end = len(data)
        self.long = self._long8 if long_size == 8 else self._long4
        self.long_size = long_size
        self.min_object = 4      # the smallest object (nil) takes one int

    def need(self, nbytes, what):
        left = self.end - self.pos
        if nbytes > left:
            raise T7FormatError('file ends early: %s needs %d bytes but only %d remain'
                                % (what, nbytes, left), self.pos)

    def int(self, what):
        self.need(4, what)
        v = _I32.unpack_from(self.data, self.pos)[0]
        self.pos += 4
        return v

    def _long8(self, what):
        self.need(8, what)
        v = _I64.unpack_from(self.data, self.pos)[0]
        self.pos += 8
        return v

    def _long4(self, what):
        return self.int(what)

    def longs(self, n, what):
        self.need(n * self.long_size, what)
        dt = '<i8' if self.long_size == 8 else '<i4'
        v = np.frombuffer(self.data, dtype=dt, count=n, offset=self.pos).tolist()
        self.pos += n * self.long_size
        return v

    def double(self, what):
        self.need(8, what)
        v = _F64.unpack_from(self.data, self.pos)[0]
        self.pos += 8
        return v

    def raw(self, n, what):
        self.need(n, what)
        v = bytes(self.data[self.pos:self.pos + n])
        self.pos += n
        return v

    def array(self, kind, n, what):
        dtype = np.dtype(backend.KINDS[kind])
        nbytes = n * dtype.itemsize
        self.need(nbytes, what)
        fd = getattr(self, 'fd', None)
        if fd is not None and nbytes >= _PREAD_MIN and sys.byteorder == 'little':
            # big storages straight from the file into their own array: one sequential read
            # instead of page faults on the mapping (as fast as a plain read of the file)
            arr = np.empty(n, dtype=dtype)
            view = memoryview(arr).cast('B')
            # very large ones in parts by several threads: the kernel's copy (and the page
            # faults of the new array) run on several cores, about 1.7x faster on two
            parts = max(1, min(_PREAD_THREADS, nbytes // _PREAD_PART))
            step = -(-nbytes // parts)
            spans = [(i * step, min(nbytes, (i + 1) * step)) for i in range(parts)]
            if parts == 1:
                _pread_into(fd, view, 0, nbytes, self.pos, what)
            else:
                with ThreadPoolExecutor(parts) as pool:
                    list(pool.map(lambda s: _pread_into(fd, view, s[0], s[1], self.pos, what), spans))
            self.pos += nbytes
            return arr
        arr = np.frombuffer(self.data, dtype=dtype.newbyteorder('<'), count=n, offset=self.pos)
        self.pos += nbytes
        return arr.astype(dtype, copy=True)   # native order, writable, owned

    def check_end(self):
        if self.pos != self.end:
            raise T7FormatError('%d unexpected bytes after the end of the object' % (self.end - self.pos),
                                self.pos)


_TOKEN = re.compile(rb'[ \t\n\r\v\f]*([^ \t\n\r\v\f]+)')
_INT_TOKEN = re.compile(rb'[+-]?[0-9]+\Z')
_WHITESPACE = re.compile(rb'[ \t\n\r\v\f]*\Z')


def _parse_int(tok):
    if not _INT_TOKEN.match(tok):
        raise ValueError
    return int(tok)


def _parse_float(tok):
    return float(tok.replace(b'_', b'!'))   # float() would take '1_0'; C's scanf would not


class _AsciiReader:
    """Torch's ascii mode (THDiskFile with auto-spacing): numbers as text separated by spaces,
    each write ending with a newline; chars (strings, byte storages) raw, then a newline."""
    long_size = 1    # the fewest bytes a long takes here (one digit): for bounds checks
    min_object = 1

    def __init__(self, data):
        self.data = data
        self.pos = 0
        self.end = len(data)

    need = _BinaryReader.need

    def _eol(self):
        if self.pos < self.end and self.data[self.pos] == 0x0a:
            self.pos += 1

    def _numbers(self, n, parse, what):
        self.need(n, what)   # at least one byte a number
        out = []
        for _ in range(n):
            m = _TOKEN.match(self.data, self.pos)
            if m is None:
                raise T7FormatError('file ends early: %s expected' % what, self.pos)
            try:
                out.append(parse(m.group(1)))
            except ValueError:
                raise T7FormatError('%s: %r is not a number' % (what, m.group(1)[:40]), m.start(1)) from None
            self.pos = m.end()
        if n > 0:
            self._eol()
        return out

    def int(self, what):
        return self._numbers(1, _parse_int, what)[0]

    long = int

    def longs(self, n, what):
        return self._numbers(n, _parse_int, what)

    def double(self, what):
        return self._numbers(1, _parse_float, what)[0]

    def raw(self, n, what):
        self.need(n, what)
        v = bytes(self.data[self.pos:self.pos + n])
        self.pos += n
        if n > 0:
            self._eol()
        return v

    def array(self, kind, n, what):
        dtype = np.dtype(backend.KINDS[kind])
        if kind in ('Byte', 'Char'):
            return np.frombuffer(self.raw(n, what), dtype=dtype).copy()
        start = self.pos
        vals = self._numbers(n, _parse_float if dtype.kind == 'f' else _parse_int, what)
        try:
            return np.array(vals, dtype=dtype)
        except (OverflowError, ValueError):
            raise T7FormatError('%s: a value does not fit a %s' % (what, dtype), start) from None

    def check_end(self):
        if not _WHITESPACE.match(self.data, self.pos):
            raise T7FormatError('%d unexpected bytes after the end of the object' % (self.end - self.pos),
                                self.pos)


# --- parsing: file bytes -> nodes ---------------------------------------------------------------
class _Node:
    __slots__ = ('offset', 'obj')


class _Table(_Node):
    __slots__ = ('keys', 'vals')


class _Torch(_Node):
    __slots__ = ('name', 'version', 'what', 'kind', 'device', 'size', 'stride', 'soffset', 'payload', 'multi')


class _Func(_Node):
    __slots__ = ('tag', 'code', 'upvalues')


_PLAIN_KEYS = frozenset((str, int, float, bool, bytes))


_INT_LIMIT = 2.0 ** 53   # beyond it doubles no longer hold every integer


def _number(x):
    if x.is_integer() and abs(x) <= _INT_LIMIT and not (x == 0 and math.copysign(1.0, x) < 0):
        return int(x)
    return x


def _string(b):
    try:
        return b.decode('utf-8')
    except UnicodeDecodeError:
        return b


_LONGS = [struct.Struct('<%dq' % (2 * n + 1)) for n in range(MAX_DIMS + 1)]   # sizes, strides, offset


_PENDING = object()


class _Fallback(Exception):
    """The fast binary reader met something irregular: the careful reader reads the file
    again and reports exactly what and where."""


_NONE_TYPE = type(None)


def _table_done(node, vals):
    """A table's flat key, value, key, value... list -> node.keys, node.vals; None when a key
    is nil or NaN (the caller reports it)."""
    keys = vals[0::2]
    types = set(map(type, keys))
    if _NONE_TYPE in types or (float in types and any(k != k for k in keys if type(k) is float)):
        return None
    node.keys, node.vals = keys, vals[1::2]
    return node


def _finish(node, vals):
    """Hand a node the child objects it waited for (see _Parser._open)."""
    if isinstance(node, _Torch):
        if node.what == 'tensor':
            node.payload = vals[0]
        elif node.what == 'object' and node.multi is not None:
            node.multi, node.payload = vals, None
        elif node.what == 'object':
            node.payload = vals[0]
        else:   # tds.Vec / tds.Hash
            node.payload = vals
    else:       # a function: its upvalues
        node.upvalues = vals[0]
    return node


class _Parser:
    def __init__(self, reader, allow_functions):
        self.r = reader
        self.allow_functions = allow_functions
        self.objects = []   # objects[i - 1]: the node with reference index i
        self.nodes = []     # every node, referenced or not, in file order
        self.classes = None
        self.lua_objects = {}   # class name -> how many objects its Lua write emits, by version
        self.heads = {}         # (version bytes, name bytes) -> what _torch_head made of them

    def parse(self):
        """Read one object. Binary files take the fast loop; on anything irregular (or for
        ascii files) the careful reader reads it and names what is wrong and where."""
        if isinstance(self.r, _BinaryReader):
            start = self.r.pos
            try:
                return self._parse_fast()
            except (_Fallback, struct.error):
                self.r.pos = start
                self.objects, self.nodes, self.classes = [], [], None
        return self._parse_careful()

    def _parse_fast(self):
        """Binary files, without Python recursion or a generator per object: one loop over
        the values in file order with an explicit stack of the objects still waiting for
        children ([node, number of children, children so far]). Irregular input raises
        _Fallback (or struct.error past the end) and the careful reader takes over."""
        r = self.r
        data, end, pos = r.data, r.end, r.pos
        i32, f64 = _I32.unpack_from, _F64.unpack_from
        objects, nodes = self.objects, self.nodes
        nobj = len(objects)
        # the object being filled (top: None for the root's slot), how many children it
        # takes and has; the frames of its waiting ancestors on the stack
        top, need, vals = None, 1, []
        stack = []
        while True:
            tag, = i32(data, pos)
            if tag == TYPE_STRING:
                n, = i32(data, pos + 4)
                pos += 8
                if n < 0 or n > end - pos:
                    raise _Fallback
                value = data[pos:pos + n]
                pos += n
                try:
                    value = value.decode('utf-8')
                except UnicodeDecodeError:
                    pass
            elif tag == TYPE_NUMBER:
                value, = f64(data, pos + 4)
                pos += 12
                if value.is_integer() and -_INT_LIMIT <= value <= _INT_LIMIT and (
                        value or math.copysign(1.0, value) > 0):
                    value = int(value)
            elif tag == TYPE_TABLE or tag == TYPE_TORCH or tag == TYPE_RECUR_FUNCTION \
                    or tag == LEGACY_TYPE_RECUR_FUNCTION:
                index, = i32(data, pos + 4)
                if 0 < index <= nobj:
                    value = objects[index - 1]
                    pos += 8
                elif index != nobj + 1:
                    raise _Fallback
                elif tag == TYPE_TABLE:
                    n, = i32(data, pos + 8)
                    node = _Table()
                    node.offset = pos
                    pos += 12
                    objects.append(node)
                    nodes.append(node)
                    nobj += 1
                    if n < 0 or 8 * n > end - pos:
                        raise _Fallback
                    if n:
                        if len(stack) >= MAX_DEPTH:
                            raise _Fallback
                        stack.append((top, need, vals))
                        top, need, vals = node, 2 * n, []
                        continue
                    node.keys, node.vals = [], []
                    value = node
                else:
                    r.pos = pos + 8
                    node, n = (self._torch_fast(pos) if tag == TYPE_TORCH
                                else self._function(tag, pos, True))
                    pos = r.pos
                    nobj += 1
                    if n:
                        if len(stack) >= MAX_DEPTH:
                            raise _Fallback
                        stack.append((top, need, vals))
                        top, need, vals = node, n, []
                        continue
                    value = node
            elif tag == TYPE_NIL:
                value = None
                pos += 4
            elif tag == TYPE_BOOLEAN:
                value, = i32(data, pos + 4)
                value = value == 1
                pos += 8
            elif tag == TYPE_FUNCTION:   # legacy, not referenced: no index
                r.pos = pos + 4
                node, n = self._function(tag, pos, False)
                pos = r.pos
                if len(stack) >= MAX_DEPTH:
                    raise _Fallback
                stack.append((top, need, vals))
                top, need, vals = node, n, []
                continue
            else:
                raise _Fallback
            vals.append(value)   # hand the value to the object waiting for it
            while len(vals) == need:   # which is complete: hand it to its own parent
                if top is None:
                    r.pos = pos
                    return value
                if type(top) is _Table:
                    if _table_done(top, vals) is None:
                        raise _Fallback
                    value = top
                else:
                    value = _finish(top, vals)
                top, need, vals = stack.pop()
                vals.append(value)

    def _parse_careful(self):
        """Read one object without Python recursion: each _object() is a generator that
        yields when it needs a child object and receives it back."""
        stack = [self._object()]
        value = None
        while True:
            try:
                stack[-1].send(value)
            except StopIteration as stop:
                stack.pop()
                value = stop.value
                if not stack:
                    return value
                continue
            if len(stack) >= MAX_DEPTH:
                raise T7FormatError('objects nested more than %d deep' % MAX_DEPTH, self.r.pos)
            stack.append(self._object())
            value = None

    def _string_field(self, what):
        n = self.r.int(what + ' length')
        if n < 0:
            raise T7FormatError('negative %s length %d' % (what, n), self.r.pos - 4)
        return self.r.raw(n, what)

    def _object(self):
        r = self.r
        start = r.pos
        tag = r.int('type tag')
        if tag == TYPE_NIL:
            return None
        if tag == TYPE_NUMBER:
            return _number(r.double('number'))
        if tag == TYPE_BOOLEAN:
            return r.int('boolean') == 1
        if tag == TYPE_STRING:
            return _string(self._string_field('string'))
        if tag == TYPE_FUNCTION:   # legacy, not referenced: no index
            node, _ = self._function(tag, start, False)
            return _finish(node, [(yield)])
        if tag not in (TYPE_TABLE, TYPE_TORCH, TYPE_RECUR_FUNCTION, LEGACY_TYPE_RECUR_FUNCTION):
            raise T7FormatError('unknown type tag %d' % tag, start)
        ipos = r.pos
        index = r.int('reference index')
        if 1 <= index <= len(self.objects):
            return self.objects[index - 1]
        if index != len(self.objects) + 1:
            raise T7FormatError('reference index %d points to no object (%d objects read so far)'
                                % (index, len(self.objects)), ipos)
        if tag == TYPE_TABLE:
            node = _Table()
            node.offset = start
            self.objects.append(node)
            self.nodes.append(node)
            n = r.int('table size')
            if n < 0:
                raise T7FormatError('negative table size %d' % n, r.pos - 4)
            r.need(2 * n * r.min_object, 'a table of %d entries' % n)
            vals = []
            for _ in range(n):
                kpos = r.pos
                k = yield
                if k is None:
                    raise T7FormatError('table key is nil', kpos)
                if isinstance(k, float) and k != k:
                    raise T7FormatError('table key is NaN', kpos)
                vals.append(k)
                vals.append((yield))
            return _table_done(node, vals)
        if tag == TYPE_TORCH:
            node, need = self._torch_head(start)
        else:
            node, need = self._function(tag, start, True)
        if not need:
            return node
        vals = []
        for _ in range(need):
            vals.append((yield))
        return _finish(node, vals)

    def _function(self, tag, start, referenced):
        """A function's head (its bytecode); its upvalues follow as one child object."""
        if not self.allow_functions:
            raise T7FunctionError(
                'the file holds a serialized Lua function (bytecode); pynn never runs code from a '
                'file and refuses functions by default: pass allow_functions=True to load them as '
                'inert pynn.serialization.LuaFunction objects', start)
        node = _Func()
        node.offset = start
        node.tag = tag
        n = self.r.int('function size')
        if n < 0:
            raise T7FormatError('negative function size %d' % n, self.r.pos - 4)
        node.code = self.r.raw(n, 'function bytecode')
        if referenced:
            self.objects.append(node)
        self.nodes.append(node)
        return node, 1

    def _torch_fast(self, start):
        """_torch_head for a tensor or an object whose version and class name were seen
        before: read in place (most objects of a network file); else _torch_head."""
        r = self.r
        data, pos = r.data, r.pos
        i32 = _I32.unpack_from
        n, = i32(data, pos)
        head = data[pos + 4:pos + 4 + n]
        if r.long_size != 8 or not head.startswith(b'V '):
            return self._torch_head(start)
        p = pos + 4 + n
        m, = i32(data, p)
        name = data[p + 4:p + 4 + m]
        seen = self.heads.get((head, name))
        if seen is None or m < 0 or n < 0:
            node, need = self._torch_head(start)
            if node.what in ('tensor', 'object') and node.multi is None:
                self.heads[head, name] = (node.name, node.version, node.what, getattr(node, 'kind', None),
                                          getattr(node, 'device', None))
            return node, need
        p += 4 + m
        node = _Torch()
        node.offset = start
        node.multi = None
        node.name, node.version, what, node.kind, node.device = seen
        node.what = what
        self.objects.append(node)
        self.nodes.append(node)
        if what == 'object':
            r.pos = p
            return node, 1
        ndim, = i32(data, p)
        if not 0 <= ndim <= MAX_DIMS:
            raise _Fallback
        longs = _LONGS[ndim]
        vals = longs.unpack_from(data, p + 4)
        node.size, node.stride = vals[:ndim], vals[ndim:2 * ndim]
        node.soffset = vals[-1] - 1
        r.pos = p + 4 + longs.size
        return node, 1

    def _torch_head(self, start):
        """A torch object up to its children (reader after the reference index): the node,
        registered, and how many child objects it takes (_finish hands them over)."""
        r = self.r
        node = _Torch()
        node.offset = start
        node.multi = None
        self.objects.append(node)
        self.nodes.append(node)
        vpos = r.pos
        head = self._string_field('version string')
        if head.startswith(b'V '):
            try:
                version = float(head[2:].decode('ascii'))
                if not math.isfinite(version):
                    raise ValueError
            except (UnicodeDecodeError, ValueError):
                raise T7FormatError('bad version string %r' % head[:40], vpos) from None
            version = _number(version)
            npos = r.pos
            name = self._string_field('class name')
        else:   # written before versions existed: the class name comes first
            version, npos, name = 0, vpos, head
        try:
            name = name.decode('ascii')
            if not _CLASS_NAME.match(name):
                raise ValueError
        except (UnicodeDecodeError, ValueError):
            raise T7FormatError('bad version string or class name %r' % name[:40], npos) from None
        node.name, node.version = name, version
        spec = TYPES.get(name)
        if spec is not None:
            node.what, node.kind, node.device = spec
            if node.what == 'storage':
                n = r.long('storage size')
                if n < 0:
                    raise T7FormatError('negative storage size %d' % n, r.pos - r.long_size)
                node.payload = r.array(node.kind, n, '%s of %d elements' % (name, n))
                return node, 0
            dpos = r.pos
            ndim = r.int('tensor dimension count')
            if not 0 <= ndim <= MAX_DIMS:
                raise T7FormatError('tensor with %d dimensions (0..%d supported)' % (ndim, MAX_DIMS), dpos)
            r.need((2 * ndim + 1) * r.long_size, 'tensor sizes and strides')
            node.size = tuple(r.longs(ndim, 'tensor sizes'))
            node.stride = tuple(r.longs(ndim, 'tensor strides'))
            node.soffset = r.long('tensor storage offset') - 1
            return node, 1
        if name in _UNREADABLE or (name.startswith('torch.') and name.endswith(('Tensor', 'Storage'))):
            raise T7FormatError('unsupported Torch type %r' % name, npos)
        if name in ('tds.Vec', 'tds.Hash'):
            node.what = name
            spos = r.pos
            n = r.long(name + ' size')
            if n < 0:
                raise T7FormatError('negative %s size %d' % (name, n), spos)
            per = 1 if name == 'tds.Vec' else 2
            r.need(per * n * r.min_object, 'a %s of %d elements' % (name, n))
            node.payload = []
            return node, per * n
        if name == 'torch.Timer':   # Lua nn's dummy serialization: nothing after the name
            node.what = 'timer'
            node.payload = None
            return node, 0
        node.what = 'object'
        n = self.lua_objects.get((name, version))
        if n is None:
            if self.classes is None:
                self.classes = _Classes()
            n = self.lua_objects[name, version] = _lua_objects(self.classes.get(name), version)
        if n != 1:   # a class whose Lua write emits several objects (nn.GPU: header, fields)
            node.multi = []
            node.payload = None
            return node, n
        return node, 1


# --- building: nodes -> Python objects ----------------------------------------------------------
def _val(x):
    return x.obj if isinstance(x, _Node) else x


def _is_list(keys):
    """Keys exactly 1..n (in any order): the table loads as a list."""
    n = len(keys)
    if not n:
        return True
    if set(map(type, keys)) != {int}:
        return False
    return min(keys) == 1 and max(keys) == n and len(set(keys)) == n


def _looks_like_module(name, payload):
    if name.startswith(('nn.', 'cudnn.', 'cunn.', 'nngraph.')):
        return True
    if isinstance(payload, _Table):
        return 'output' in payload.keys or 'gradInput' in payload.keys
    return False


def _str_keyed(keys):
    return all(isinstance(k, str) for k in keys)


_REGISTERED = {}


def registerClass(typename, cls):
    """Load every object of the Lua class `typename` (e.g. 'nn.MyLayer') in a .t7 file as an
    instance of `cls`: made without calling its constructor, its __dict__ filled with the
    file's fields (then its `read(file, version)` hook, if it has one, may upgrade them).
    Overrides pynn's own class of that name. Returns cls, so it also works as a decorator
    factory's result: `registerClass('nn.X', X)`."""
    if not isinstance(typename, str) or not _CLASS_NAME.match(typename):
        raise ValueError('registerClass: expected a Lua class name such as \'nn.MyLayer\', got %r'
                         % (typename,))
    if not isinstance(cls, type):
        raise TypeError('registerClass: expected a class, got %s' % type(cls).__name__)
    _REGISTERED[typename] = cls
    return cls


def _user_classes():
    """Subclasses of nn.Module / nn.Criterion defined outside pynn (a user's own layers):
    found by their Lua class name, `__typename__` ('nn.' + the class name by default)."""
    out, todo = {}, [Module, Criterion]
    while todo:
        c = todo.pop()
        for sub in c.__subclasses__():
            todo.append(sub)
            name = sub.__dict__.get('__typename__')
            if isinstance(name, str) and not sub.__module__.startswith(__package__ + '.'):
                out.setdefault(name, sub)
    return out


class _Classes:
    """Lua class name -> pynn class: classes registered with registerClass, pynn.nn.registry(),
    a user's own Module/Criterion subclasses (defined before the load), and pynn.cudnn's
    registry (if that package exists and has one) only when a file names a cudnn.* class."""

    def __init__(self):
        from . import nn
        self.reg = dict(nn.registry())
        from . import cunn
        for k, v in cunn.registry().items():
            self.reg.setdefault(k, v)
        for k, v in _user_classes().items():
            self.reg.setdefault(k, v)
        self.reg.update(_REGISTERED)
        self.cudnn_done = False

    def get(self, name):
        if name.startswith('cudnn.') and not self.cudnn_done:
            self.cudnn_done = True
            try:
                import importlib
                cudnn = importlib.import_module(__package__ + '.cudnn')
                for k, v in cudnn.registry().items():
                    self.reg.setdefault(k, v)
            except Exception:   # no pynn.cudnn (or no CUDA): cudnn.* load as generic modules
                pass
        if name not in self.reg and (name.startswith(('nngraph.', 'graph.')) or name == 'nn.gModule'):
            try:   # nngraph and graph classes (pynn.nngraph registers them)
                import importlib
                for k, v in importlib.import_module(__package__ + '.nngraph').registry().items():
                    self.reg.setdefault(k, v)
            except ImportError:
                pass
        cls = self.reg.get(name)
        if cls is None and name.startswith('cudnn.'):
            # cudnn.torch's classes extend nn's and keep their fields: one that pynn.cudnn
            # does not have loads as its nn counterpart (cudnn.VolumetricConvolution ->
            # nn.VolumetricConvolution, cudnn.ClippedReLU -> nn.HardTanh(0, ceiling), ...)
            cls = self.reg.get(_CUDNN_AS_NN.get(name, 'nn.' + name[len('cudnn.'):]))
        return cls


class _Builder:
    def __init__(self, nodes):
        self.nodes = nodes
        self.classes = _Classes()
        self.class_of = {}   # Lua class name -> pynn class (None: not known)
        self.warned = set()

    def build(self, root):
        """Make every object empty first (so that references and cycles resolve), then fill
        tables, tensors, objects, then upgrade old fields. One pass sorts the nodes by kind."""
        tables, tensors, objects = [], [], []
        shell = self._shell
        for node in self.nodes:
            t = type(node)
            if t is _Table:
                node.obj = [] if _is_list(node.keys) else {}
                tables.append(node)
                continue
            shell(node)
            if t is _Func or node.what in ('tds.Vec', 'tds.Hash'):
                tables.append(node)
            elif node.what == 'tensor':
                tensors.append(node)
            elif node.what == 'object':
                objects.append(node)
        fill_table = self._fill_table
        for node in tables:
            if type(node) is _Table:
                fill_table(node)
            elif type(node) is _Func:
                node.obj.upvalues = _val(node.upvalues)
            else:
                self._fill_tds(node)
        fill_tensor = self._fill_tensor
        for node in tensors:
            fill_tensor(node)
        fill_object = self._fill_object
        known = [node for node in objects if fill_object(node)]
        for node in known:
            _upgrade(node)
        return _val(root)

    def _shell(self, node):
        if isinstance(node, _Table):
            node.obj = [] if _is_list(node.keys) else {}
        elif isinstance(node, _Func):
            node.obj = LuaFunction(node.code, None, node.tag)
        elif node.what == 'storage':
            node.obj = Storage(data=node.payload, dtype=node.payload.dtype, device='cpu')
        elif node.what == 'tensor':
            node.obj = Tensor(kind=node.kind, device='cpu')
        elif node.what == 'tds.Vec':
            node.obj = TdsVec()
        elif node.what == 'tds.Hash':
            node.obj = TdsHash()
        elif node.what == 'timer':
            node.obj = Timer()
        else:
            cls = self.class_of.get(node.name, _PENDING)
            if cls is _PENDING:
                cls = self.class_of[node.name] = self.classes.get(node.name)
            payload = node.payload
            if cls is not None:
                try:
                    node.obj = cls.__new__(cls)
                except Exception as e:  # a class that cannot be made empty
                    raise T7FormatError('cannot make an instance of %s: %s' % (node.name, e), node.offset) from None
            elif _looks_like_module(node.name, payload) and (
                    not isinstance(payload, _Table) or _str_keyed(payload.keys)):
                node.obj = UnknownModule.__new__(UnknownModule)
                if node.name not in self.warned:
                    self.warned.add(node.name)
                    warnings.warn('pynn.load: %s; it loads as an inert object whose fields and '
                                  'tensors are reachable, and raises if run'
                                  % _missing_class_text(node.name), stacklevel=3)
            else:
                node.obj = TorchObject.__new__(TorchObject)

    def _fill_table(self, node):
        obj, keys = node.obj, node.keys
        vals = [v.obj if isinstance(v, _Node) else v for v in node.vals]
        if type(obj) is list:
            if keys != sorted(keys):
                vals = [v for _, v in sorted(zip(keys, vals), key=lambda kv: kv[0])]
            obj.extend(vals)
            return
        ktypes = set(map(type, keys))
        if _Table not in ktypes:   # no Lua table as a key (those need TableKey): at C speed
            if _Torch in ktypes or _Func in ktypes:   # objects as keys (nngraph's node maps)
                keys = [k.obj if isinstance(k, _Node) else k for k in keys]
            if not any(isinstance(k, (list, dict)) for k in keys if type(k) not in _PLAIN_KEYS):
                obj.update(zip(keys, vals))
                if len(obj) == len(keys):
                    return
                obj.clear()   # a key twice (Lua's true and 1): the general loop below names it
            keys = node.keys
        for k, v in zip(keys, vals):
            key = _key(_val(k))
            if key in obj:
                raise T7FormatError('table has the key %r twice (Lua true/1 and false/0 cannot both be '
                                    'keys of one table in pynn)' % (key,), node.offset)
            obj[key] = v

    def _fill_tds(self, node):
        items = [_val(x) for x in node.payload]
        if node.what == 'tds.Vec':
            node.obj.extend(items)
            return
        for i in range(0, len(items), 2):
            key = _key(items[i])
            if key is None:
                raise T7FormatError('tds.Hash key is nil', node.offset)
            node.obj[key] = items[i + 1]

    def _fill_tensor(self, node):
        t, size, stride, off = node.obj, node.size, node.stride, node.soffset
        st = _val(node.payload)
        where = node.offset
        if any(s < 0 for s in size) or any(s < 0 for s in stride) or off < 0:
            raise T7FormatError('%s with a negative size, stride or offset (size %s, stride %s, offset %d)'
                                % (node.name, size, stride, off + 1), where)
        if st is None:
            n = 1
            for s in size:
                n *= s
            if size and n:
                raise T7FormatError('%s of %d elements has no storage' % (node.name, n), where)
            t._size, t._stride, t._offset = size, stride, off
            return
        want = _NAMES[('storage', node.kind, node.device)]
        pnode = node.payload
        if not isinstance(st, Storage) or not isinstance(pnode, _Torch) or pnode.name != want:
            raise T7FormatError('%s has a storage of type %s, expected %s'
                                % (node.name, getattr(pnode, 'name', type(st).__name__), want), where)
        if off + _extent(size, stride) > st.size():
            raise T7FormatError('%s view (offset %d, size %s, stride %s) does not fit its storage of %d '
                                'elements' % (node.name, off + 1, size, stride, st.size()), where)
        # checked above: the storage's type is the tensor's, the view fits
        t._storage, t._offset, t._size, t._stride = st, off, size, stride

    def _fill_object(self, node):
        """Fill a torch object's fields; True when it is an instance of a pynn class."""
        obj = node.obj
        multi = getattr(node, 'multi', None)
        if multi is not None and not isinstance(obj, (TorchObject, UnknownModule)):
            obj.read(_ReadObjects([_val(x) for x in multi]), node.version)
            return True
        fields = _val(node.payload)
        if isinstance(fields, list) and not fields:
            fields = {}
        named = isinstance(fields, dict) and set(map(type, fields)) <= {str}
        if named and '\x00_pynn' in '\x00' + '\x00'.join(fields):   # the test at C speed
            bad = [k for k in fields if k.startswith('_pynn')]
            if bad:
                raise T7FormatError('%s has a field named %r: names starting with _pynn are reserved'
                                    % (node.name, bad[0]), node.offset)
        if isinstance(obj, (TorchObject, UnknownModule)):
            obj.__dict__['_pynn_typename'] = node.name
            obj.__dict__['_pynn_version'] = node.version
            if named:
                obj.__dict__.update(fields)
            else:
                obj.__dict__['_pynn_payload'] = fields
            return False
        if not named:
            raise T7FormatError('%s: its fields are not a table of named fields (got %s)'
                                % (node.name, type(fields).__name__), node.offset)
        obj.__dict__.update(fields)
        return True


def _key(k):
    if isinstance(k, (list, dict)):
        return TableKey(k)
    return k


# --- upgrades of fields written by older nn versions (Lua nn's back-compatibility code) ----------
def _up_padding(d, version):
    if 'padding' in d:
        d['padW'] = d['padH'] = d.pop('padding')


def _up_conv_mm(d, version):
    """nn.SpatialConvolutionMM: `padding` of older versions; files of 2013-2014 have no stride
    or padding fields at all (the layer had stride 1 and no padding then). Today's Lua fails on
    those; pynn runs them as they ran then."""
    _up_padding(d, version)
    missing = [f for f in ('dW', 'dH', 'padW', 'padH') if d.get(f) is None]
    if missing:
        warnings.warn('pynn.load: an nn.SpatialConvolutionMM from before strides and padding '
                      '(no %s): running it with stride 1 and no padding, as it ran then'
                      % '/'.join(missing), stacklevel=4)
        for f in ('dW', 'dH'):
            if d.get(f) is None:
                d[f] = 1
        for f in ('padW', 'padH'):
            if d.get(f) is None:
                d[f] = 0


def _up_conv(d, version):
    if 'padding' in d:
        d['padW'] = d['padH'] = d.pop('padding')
    else:
        d.setdefault('padW', 0)
        d.setdefault('padH', 0)
    for f in ('weight', 'gradWeight'):
        w = d.get(f)
        if isinstance(w, Tensor) and w.dim() == 2:
            d[f] = w.view(d['nOutputPlane'], d['nInputPlane'], d['kH'], d['kW'])


def _up_batchnorm(d, version):
    if version < 2 and isinstance(d.get('running_std'), Tensor):
        std = d.pop('running_std')
        var = std.clone()
        a = var.numpy()
        a[...] = a ** -2 - d.get('eps', 1e-5)
        d['running_var'] = var


def _up_maxpool(d, version):
    d.setdefault('padW', 0)
    d.setdefault('padH', 0)


def _up_avgpool(d, version):
    if d.get('ceil_mode') is None:
        d['ceil_mode'] = False
        d['count_include_pad'] = True
        d['padW'] = 0
        d['padH'] = 0
    d.setdefault('divide', False)   # old files: the sum, not the mean (Lua: `if not self.divide`)


def _up_volmaxpool(d, version):
    if version < 2:
        d['ceil_mode'] = False


def _up_hardtanh(d, version):
    d.setdefault('min_val', -1)
    d.setdefault('max_val', 1)


def _up_fullconv(d, version):
    d.setdefault('adjW', 0)
    d.setdefault('adjH', 0)


def _up_gradrev(d, version):
    if version < 2:
        d['lambda'] = 1


def _up_concat(d, version):
    if d.get('outputSize') is None:
        d['outputSize'] = Storage(0, np.int64)


def _up_clipped_relu(d, version):
    """cudnn.ClippedReLU(ceiling, inplace): min(max(x, 0), ceiling), nn.HardTanh(0, ceiling)."""
    d.setdefault('min_val', 0)
    d.setdefault('max_val', d.get('ceiling'))
    d.setdefault('inplace', False)


# Used for classes without their own `read(file, version)` hook (Lua's read metamethod).
UPGRADES = {
    'cudnn.ClippedReLU': _up_clipped_relu,
    'nn.SpatialConvolution': _up_conv,
    'nn.SpatialConvolutionMM': _up_conv_mm,
    'nn.SpatialDepthWiseConvolution': _up_padding,
    'nn.BatchNormalization': _up_batchnorm,
    'nn.SpatialBatchNormalization': _up_batchnorm,
    'nn.VolumetricBatchNormalization': _up_batchnorm,
    'nn.SpatialMaxPooling': _up_maxpool,
    'nn.SpatialAveragePooling': _up_avgpool,
    'nn.VolumetricMaxPooling': _up_volmaxpool,
    'nn.HardTanh': _up_hardtanh,
    'nn.SpatialFullConvolution': _up_fullconv,
    'nn.GradientReversal': _up_gradrev,
    'nn.Concat': _up_concat,
    'nn.DepthConcat': _up_concat,
}


def _upgrade(node):
    obj = node.obj
    d = obj.__dict__
    hook = getattr(type(obj), 'read', None)
    if callable(hook):   # the class's own Lua-style hook: read(file, version) after the fields
        fn = lambda d, version: obj.read(None, version)  # noqa: E731
    else:
        fn = UPGRADES.get(node.name)
    if fn is not None:
        try:
            fn(d, node.version)
        except Exception as e:   # fields of the wrong kind: the file is not a sane module
            raise T7FormatError('%s: its fields could not be upgraded from an older nn version (%s: %s)'
                                % (node.name, type(e).__name__, e), node.offset) from None
    t = d.get('_type')
    if isinstance(t, str) and t in TYPES and TYPES[t][2] == 'cuda':
        _, kind, _ = TYPES[t]
        d['_type'] = _NAMES[(TYPES[t][0], kind, 'cpu')]


# --- reading: public API ------------------------------------------------------------------------
def _detect_mode(data):
    """A binary file starts with a type tag 0..8 as a little-endian int32: bytes 0x00..0x08;
    an ascii file with the tag as text."""
    if data[:1].isdigit() or (data[:1] in (b'+', b'-', b' ', b'\t', b'\n', b'\r', b'\v', b'\f')
                              and b'\x00' not in data[:4]):
        return 'ascii'
    return 'binary'


def loads(data, mode='auto', allow_functions=False):
    """Load one object from the bytes of a .t7 file. See `load`."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError('loads expects bytes, got %s' % type(data).__name__)
    return _load_buffer(bytes(data), mode, allow_functions)


def _load_buffer(data, mode, allow_functions, fd=None):
    """data: bytes or an mmap (arrays are copied out of it, never kept as views); fd: the
    file's descriptor when data maps a whole file (large arrays are then read from it)."""
    if mode == 'auto':
        mode = _detect_mode(data)
    if mode in ('binary', 'b64'):
        reader = _BinaryReader(data, 8)
    elif mode == 'b32':
        reader = _BinaryReader(data, 4)
    if mode in ('binary', 'b64', 'b32') and hasattr(os, 'preadv'):
        reader.fd = fd
    elif mode == 'ascii':
        reader = _AsciiReader(data)
    else:
        raise ValueError("mode must be 'auto', 'binary', 'b64', 'b32' or 'ascii', got %r" % (mode,))
    # The collector would walk the growing graph of small objects again and again while
    # nothing can be garbage yet (a 23,000-object network loads 1.5x faster without it).
    collecting = gc.isenabled()
    gc.disable()
    try:
        parser = _Parser(reader, allow_functions)
        root = parser.parse()
        reader.check_end()
        return _Builder(parser.nodes).build(root)
    finally:
        if collecting:
            gc.enable()


def load(path_or_file, mode='auto', allow_functions=False):
    """Load a file written by Lua Torch's torch.save (or by pynn.save).

    path_or_file: a path, or a binary file object (anything with .read()).
    mode: 'auto' (ascii when the file starts with a digit, else binary), 'binary' (= 'b64':
        8-byte longs, Linux x86_64), 'b32' (4-byte longs) or 'ascii'.
    allow_functions: serialized Lua functions are refused by default (T7FunctionError), since
        a model from an untrusted source has no business holding code. True loads them as
        inert LuaFunction objects (bytecode kept as bytes). pynn never runs them either way.

    Raises T7FormatError (with the byte offset) for anything malformed or unsupported.
    """
    if isinstance(path_or_file, (str, os.PathLike)):
        with open(path_or_file, 'rb') as f:
            if os.fstat(f.fileno()).st_size == 0:
                return loads(b'', mode=mode, allow_functions=allow_functions)
            mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)   # no second copy of big files
            try:
                return _load_buffer(mm, mode, allow_functions, f.fileno())
            finally:
                try:
                    mm.close()
                except BufferError:   # a view still alive (only after an error): the GC closes it
                    pass
    if hasattr(path_or_file, 'read'):
        data = path_or_file.read()
        if isinstance(data, str):
            raise TypeError('load needs a file opened in binary mode (rb)')
    else:
        raise TypeError('load expects a path or a binary file object, got %s' % type(path_or_file).__name__)
    return loads(data, mode=mode, allow_functions=allow_functions)


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
        if isinstance(obj, tuple):   # a fresh table each time: no reference
            e.int(TYPE_TABLE)
            self.count += 1
            e.int(self.count)
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
        if isinstance(obj, list):
            if self._new_ref(obj, TYPE_TABLE):
                return
            e.int(len(obj))
            for i, v in enumerate(obj):
                e.int(TYPE_NUMBER)
                e.double(float(i + 1))
                yield v, '%s[%d]' % (path, i)
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

