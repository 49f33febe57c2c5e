"""Lua type tags, Torch type names, the objects that stand for Lua things pynn has no
class for, and the lookup of Lua class names (pynn.serialization)."""
import re

from .. import backend
from ..nn.module import Module, Criterion

_PYNN = __package__.rpartition('.')[0]   # 'pynn': where pynn's own modules live

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


# --- Lua class names -> pynn classes ------------------------------------------------------------
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
            if isinstance(name, str) and not sub.__module__.startswith(_PYNN + '.'):
                out.setdefault(name, sub)
    return out


class _Classes:
    """Lua class name -> pynn class: classes registered with registerClass, pynn.nn.registry(),
    a user's own Module/Criterion subclasses (defined before the load), and pynn.cudnn's
    registry (if that package exists and has one) only when a file names a cudnn.* class."""

    def __init__(self):
        from .. import nn
        self.reg = dict(nn.registry())
        from .. import cunn
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
                cudnn = importlib.import_module(_PYNN + '.cudnn')
                for k, v in cudnn.registry().items():
                    self.reg.setdefault(k, v)
            except Exception:   # no pynn.cudnn (or no CUDA): cudnn.* load as generic modules
                pass
        if name not in self.reg and (name.startswith(('nngraph.', 'graph.')) or name == 'nn.gModule'):
            try:   # nngraph and graph classes (pynn.nngraph registers them)
                import importlib
                for k, v in importlib.import_module(_PYNN + '.nngraph').registry().items():
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


