"""Module: Lua nn's protocol (output/gradInput tensors, forward/backward), parameters,
type conversion, cloning and sharing, printing, and the tracing hook optnet uses.

Tracing: every subclass's updateOutput/updateGradInput/accGradParameters/backward is
wrapped once at class creation. With no tracer active the wrapper costs one check;
with one active (`with tracing(t):`), it reports each call before and after it runs,
so nothing is ever patched on instances and nothing stays patched if a run raises.
"""
import copy
import functools
import math
import re
import threading

import numpy as np

from .. import backend
from ..storage import Storage
from ..tensor import Tensor, _contiguous_strides as _contiguous

TRACED = ('updateOutput', 'updateGradInput', 'accGradParameters', 'backward')
_state = threading.local()


def current_tracer():
    return getattr(_state, 'tracer', None)


class tracing:
    """Context manager: route module calls to `tracer.enter(m, name, args)` / `tracer.exit(...)`."""

    def __init__(self, tracer):
        self.tracer = tracer

    def __enter__(self):
        self.prev = current_tracer()
        _state.tracer = self.tracer
        self.tracer._active = []
        return self.tracer

    def __exit__(self, *exc):
        _state.tracer = self.prev
        return False


class BackwardDisabledError(RuntimeError):
    pass


def _wrap(name, fn):
    forward = name == 'updateOutput'
    grads = name in ('accGradParameters', 'backward')

    @functools.wraps(fn)
    def wrapper(self, *args):
        if forward:  # optnet's arena planner: replan before a forward on new input sizes
            pre = self.__dict__.get('_pynn_arena')
            if pre is not None:
                pre.pre_forward(self, args[0])
        if grads and (self.__dict__.get('gradWeight') is None or self.__dict__.get('gradBias') is None):
            ensure_grads(self)
        if name == 'updateGradInput' and self.__dict__.get('_pynn_backward_disabled'):
            raise BackwardDisabledError(
                "%s: backward pass disabled: the network was optimized for inference by "
                "optnet.optimizeMemory; call optnet.removeOptimization(net) to enable it again"
                % self.__tostring__().split('\n')[0])
        tracer = getattr(_state, 'tracer', None)
        if tracer is None:
            return fn(self, *args)
        key = (id(self), name)
        active = tracer._active
        if active and active[-1] == key:  # a super() call inside the same method: report once
            return fn(self, *args)
        tracer.enter(self, name, args)
        active.append(key)
        try:
            result = fn(self, *args)
        finally:
            active.pop()
        tracer.exit(self, name, args)
        return result
    wrapper._pynn_traced = True
    return wrapper


GRAD_OF = (('weight', 'gradWeight'), ('bias', 'gradBias'))


def lua_nil(obj, name):
    """Lua's nil: a field absent from the instance (never set, or absent from a file written
    by another nn version or saved without gradients) reads as None, as an absent field of a
    Lua table reads as nil (Lua's own `_input`, `_indices`, ... too). Python's special names
    (`__deepcopy__`, ...) still raise AttributeError, so protocols see them absent."""
    if name.startswith('__') and name.endswith('__'):
        raise AttributeError('%r object has no attribute %r' % (type(obj).__name__, name))
    if name in LAZY_STATE:
        # Lua's Module.__init makes them; a file from an nn version whose class did not (an old
        # nn.View) lacks them, and Lua's code then makes them on first use: so does pynn.
        n = TABLE_STATE[name].get(type(obj).__typename__)
        if name == 'output' and isinstance(obj, Criterion):
            value = 0
        elif n is not None:
            value = [_fresh_tensor(obj) for _ in range(n)]
        else:
            value = _fresh_tensor(obj)
        obj.__dict__[name] = value
        return value
    return None


def _fresh_tensor(obj):
    t = obj.__dict__.get('_type')
    if isinstance(t, str):
        kind, device = backend.parse_typename(t)
        return Tensor(kind=kind, device=device)
    return Tensor()


LAZY_STATE = ('output', 'gradInput')
# The classes whose Lua constructor makes `output` / `gradInput` a table, with the number of
# (empty) tensors in it (nn's __init functions).
_EMPTY = ('ConcatTable FlattenTable MapTable NarrowTable ParallelTable ZipTable ZipTableOneToMany')
TABLE_STATE = {
    'output': {'nn.' + c: 0 for c in _EMPTY.split()},
    'gradInput': dict(
        {'nn.' + c: 0 for c in ('CAddTable CAddTensorTable CDivTable CMaxTable CMinTable CMulTable '
                                'CSubTable FlattenTable JoinTable MapTable MixtureTable NarrowTable '
                                'PairwiseDistance ParallelCriterion ParallelTable SelectTable '
                                'SparseLinear ZipTable ZipTableOneToMany CriterionTable').split()},
        **{'nn.' + c: 2 for c in ('Bilinear CosineDistance CosineEmbeddingCriterion DotProduct Index '
                                  'L1HingeEmbeddingCriterion MM MV MarginRankingCriterion').split()}),
}


def ensure_grads(m):
    """Create the gradient of each weight/bias that has none (a file saved without gradients),
    zero-filled, so that backward and getParameters work where Lua's would fail."""
    d = m.__dict__
    for w, g in GRAD_OF:
        if isinstance(d.get(w), Tensor) and d.get(g) is None:
            d[g] = d[w].new().resizeAs(d[w]).zero()


def _with_grads(fn):
    """A class's own zeroGradParameters (which zeroes gradWeight/gradBias by name) on a module
    loaded without gradients: make them first, as backward does."""
    @functools.wraps(fn)
    def zeroGradParameters(self, *args):
        ensure_grads(self)
        return fn(self, *args)
    zeroGradParameters._pynn_grads = True
    return zeroGradParameters


def _wrap_init(init):
    """Constructor errors name the Lua class and the arguments it was given:
    'nn.SpatialConvolution(3): missing 3 required positional arguments: ...'. Only the
    outermost constructor rewrites (a layer built from other layers reports itself)."""

    @functools.wraps(init)
    def __init__(self, *args, **kw):
        depth = getattr(_state, 'ctor_depth', 0)
        _state.ctor_depth = depth + 1
        try:
            init(self, *args, **kw)
        except (TypeError, ValueError) as e:
            if depth or not (len(e.args) == 1 and isinstance(e.args[0], str)):
                raise
            call = ', '.join([repr(a) for a in args] + ['%s=%r' % kv for kv in kw.items()])
            msg = re.sub(r'^[\w.]*__init__\(\) ', '', e.args[0])
            head = '%s(%s)' % (type(self).__typename__, call)
            if not msg.startswith(type(self).__typename__):
                msg = '%s: %s' % (head, msg)
            raise type(e)(msg).with_traceback(e.__traceback__) from None
        finally:
            _state.ctor_depth = depth
    __init__._pynn_ctor = True
    return __init__


def _wrap_ctor(cls):
    init = cls.__dict__.get('__init__')
    if init is not None and not getattr(init, '_pynn_ctor', False):
        cls.__init__ = _wrap_init(init)


def ordinal(i):
    suffix = 'th' if 10 <= i % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(i % 10, 'th')
    return '%d%s' % (i, suffix)


def rethrow(exc, prefix):
    """Re-raise exc with `prefix` before its message, keeping its type where possible."""
    msg = '%s %s' % (prefix, exc.args[0] if len(exc.args) == 1 and isinstance(exc.args[0], str) else exc)
    try:
        new = type(exc)(msg)
    except Exception:
        new = RuntimeError(msg)
    raise new.with_traceback(exc.__traceback__) from None


def describe(x):
    """A short text for error messages: '2x3x8x8 torch.FloatTensor', 'table of 2', ..."""
    if isinstance(x, Tensor):
        return '%s %s' % ('x'.join(map(str, x.size())) or 'empty', x.type())
    if isinstance(x, (list, tuple)):
        return 'table of %d {%s}' % (len(x), ', '.join(describe(v) for v in x))
    return type(x).__name__


def is_tensor(x):
    return isinstance(x, Tensor)


def recursive_type(param, name, cache):
    """Convert tensors in param (tensor, list, dict, module) to type `name`, keeping sharing."""
    if isinstance(param, (Module, Criterion, list, dict)):
        # each shared module or table is converted once: a network whose modules are reachable
        # along many paths (an nngraph gModule: modules, nodes, nested graphs) stays linear
        key = ('seen', id(param))
        if key in cache:
            return param
        cache[key] = param
        if isinstance(param, (Module, Criterion)):  # Lua's recursiveType converts criteria too
            return param.type(name, cache)
        if isinstance(param, list):
            for i, v in enumerate(param):
                param[i] = recursive_type(v, name, cache)
            return param
        for k in list(param):
            param[k] = recursive_type(param[k], name, cache)
        return param
    if isinstance(param, Tensor) and param.type() != name:
        if id(param) in cache:
            return cache[id(param)][1]
        kind, device = backend.parse_typename(name)
        new = Tensor(kind=kind, device=device)
        st = param.storage()
        if st is not None:
            skey = ('storage', id(st))
            if skey not in cache:
                cache[skey] = (st, convert_storage(st, kind, device))
            new.set(cache[skey][1], param.storageOffset(), param.size(), param.stride())
        cache[id(param)] = (param, new)  # keep param alive so ids stay unique
        return new
    return param


def convert_storage(st, kind, device):
    dtype = backend.KINDS[kind]
    new = Storage(0, dtype, device)
    new._size = st.size()
    xp = backend.xp_for(device)
    if xp is None:
        return new
    if st.data is None:
        new.data = xp.zeros(st.size(), dtype=dtype)
        return new
    src = st.data
    if backend.array_module(src) is not xp:
        src = src.get() if xp is np else xp.asarray(src)
    new.data = src.astype(dtype, copy=True)
    return new


class Module:
    """Base of every layer. Fields follow Lua nn: `output`, `gradInput`, `train`, `_type`."""

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        for name in TRACED:
            fn = cls.__dict__.get(name)
            if fn is not None and not getattr(fn, '_pynn_traced', False):
                setattr(cls, name, _wrap(name, fn))
        if '__typename__' not in cls.__dict__:
            cls.__typename__ = 'nn.' + cls.__name__
        _wrap_ctor(cls)
        zg = cls.__dict__.get('zeroGradParameters')
        if zg is not None and not getattr(zg, '_pynn_grads', False):
            cls.zeroGradParameters = _with_grads(zg)

    __typename__ = 'nn.Module'

    def __init__(self):
        self.gradInput = Tensor()
        self.output = Tensor()
        self._type = self.output.type()
        self.train = True

    def __getattr__(self, name):
        return lua_nil(self, name)

    # --- protocol -------------------------------------------------------------
    def updateOutput(self, input):
        return self.output

    def forward(self, input):
        return self.updateOutput(input)

    def backward(self, input, gradOutput, scale=1):
        self.updateGradInput(input, gradOutput)
        self.accGradParameters(input, gradOutput, scale)
        return self.gradInput

    def updateGradInput(self, input, gradOutput):
        return self.gradInput

    def accGradParameters(self, input, gradOutput, scale=1):
        pass

    def __call__(self, *args, **kwargs):
        # nngraph (Lua's Module:__call__ once nngraph is loaded): no argument, a node or a list
        # of nodes builds a graph node; a tensor (or table of tensors) runs forward as before.
        if not args and not kwargs or _is_node_arg(args[0] if args else kwargs.get('input')):
            from ..nngraph.node import module_call
            return module_call(self, *args, *kwargs.values())
        return self._forward_call(*args, **kwargs)

    def _forward_call(self, input, gradOutput=None):
        self.forward(input)
        if gradOutput is not None:
            self.backward(input, gradOutput)
            return self.output, self.gradInput
        return self.output

    # --- parameters -----------------------------------------------------------
    def parameters(self):
        # Lua builds {weight, bias}, {gradWeight, gradBias}: nil entries (a file saved without
        # gradients) simply leave the second list shorter.
        d = self.__dict__
        params = [d[k] for k in ('weight', 'bias') if d.get(k) is not None]
        if not params:
            return None
        return params, [d[k] for k in ('gradWeight', 'gradBias') if d.get(k) is not None]

    def zeroGradParameters(self):
        p = self.parameters()
        if p:
            for g in p[1]:
                if g is not None:   # Lua's table simply lacks a nil gradient
                    g.zero()

    def updateParameters(self, learningRate):
        p = self.parameters()
        if p:
            for w, g in zip(*p):
                if g is not None:
                    w.add(-learningRate, g)

    def getParameters(self):
        """Flatten all weights and all grads into one storage each (Torch's Module.flatten)."""
        if self.__dict__.get('_pynn_getParameters_disabled'):
            raise RuntimeError('getParameters was disabled by optnet (option removeGradParams=true); '
                               'call optnet.removeOptimization(net) to enable it again')
        for m in self.listModules():
            ensure_grads(m)
        p = self.parameters() or ([], [])
        params, grads = p
        fp, fg = flatten(params), flatten(grads)
        if fp.nElement() != fg.nElement():
            raise RuntimeError("getParameters: %d parameters but %d gradParameters: check that you "
                               "share parameters and gradParameters alike" % (fp.nElement(), fg.nElement()))
        for i, (w, g) in enumerate(zip(params, grads)):
            if w.storageOffset() != g.storageOffset():
                raise RuntimeError("getParameters: misaligned parameter at %d" % (i + 1))
        return fp, fg

    def reset(self, stdv=None):
        pass

    # --- modes, traversal ------------------------------------------------------
    def training(self):
        self.train = True
        return self

    def evaluate(self):
        self.train = False
        return self

    def apply(self, fn):
        fn(self)
        for m in self.__dict__.get('modules') or ():
            m.apply(fn)

    def listModules(self):
        out = [self]
        for m in self.__dict__.get('modules') or ():
            out.extend(m.listModules())
        return out

    def findModules(self, typename):
        return [m for m in self.listModules() if m.__typename__ == typename]

    def replace(self, fn):
        out = fn(self)
        mods = self.__dict__.get('modules')
        if mods:
            for i, m in enumerate(mods):
                mods[i] = m.replace(fn)
        return out

    def clearState(self):
        return clear(self, 'output', 'gradInput')

    # --- types ------------------------------------------------------------------
    def type(self, name=None, tensorCache=None):
        if name is None:
            return self._type
        backend.parse_typename(name)  # validate before touching anything
        cache = {} if tensorCache is None else tensorCache
        cache[('seen', id(self))] = self
        for k in list(self.__dict__):
            self.__dict__[k] = recursive_type(self.__dict__[k], name, cache)
        self._type = name
        return self

    def float(self):
        return self.type('torch.FloatTensor')

    def double(self):
        return self.type('torch.DoubleTensor')

    def cuda(self):
        return self.type('torch.CudaTensor')

    # --- clone / share ------------------------------------------------------------
    def share(self, other, *fields):
        for f in fields:
            if isinstance(self.__dict__.get(f), Tensor):
                self.__dict__[f].set(other.__dict__[f])
                self.shared = True
                other.shared = True
        return self

    def clone(self, *shared):
        """A deep copy; the named fields (e.g. 'weight', 'bias') are then shared with self."""
        memo = {}
        if set(shared) & {'gradWeight', 'gradBias'}:   # absent gradients cannot be shared: make them
            for m in self.listModules():
                ensure_grads(m)
        if shared:
            for m in self.listModules():
                for f in shared:
                    t = m.__dict__.get(f)
                    if isinstance(t, Tensor):
                        memo[id(t)] = t.new()
        c = copy.deepcopy(self, memo)
        if shared:
            c.share(self, *shared)
        return c

    # --- printing -------------------------------------------------------------------
    def __tostring__(self):
        return self.__typename__

    def __repr__(self):
        return self.__tostring__()

    def _name(self):
        """First line of the printed form, used in error messages."""
        return self.__tostring__().split('\n')[0]

    def _fail(self, expected, got):
        raise ValueError('%s: expected %s, got %s' % (self._name(), expected, describe(got)))


def _is_node_arg(x):
    """An nngraph.Node, or a non-empty list/tuple whose first element is one."""
    if isinstance(x, (list, tuple)) and x:
        x = x[0]
    return getattr(type(x), '__typename__', None) == 'nngraph.Node'


for _name in TRACED:  # the base implementations are traced too (Module.backward calls updateGradInput)
    setattr(Module, _name, _wrap(_name, Module.__dict__[_name]))


def clear(module, *fields):
    """Lua nn.utils.clear: empty the named tensor fields (tables become empty lists)."""
    for f in fields:
        v = module.__dict__.get(f)
        if isinstance(v, Tensor):
            v.set()
        elif isinstance(v, list):
            module.__dict__[f] = []
    return module


def uniform_reset(m, stdv, fanin):
    """Lua nn's reset of most layers: weight (and bias, if any) uniform in [-stdv, stdv], with
    stdv given (then times sqrt(3)) or 1/sqrt(fanin), weight drawn first."""
    stdv = stdv * math.sqrt(3) if stdv is not None else 1 / math.sqrt(fanin)
    m.weight.uniform(-stdv, stdv)
    if m.__dict__.get('bias') is not None:
        m.bias.uniform(-stdv, stdv)


def flatten(params):
    """Torch's Module.flatten: one storage for all tensors, sharing kept, holes compacted."""
    if not params:
        return Tensor()
    proto = params[0]
    storages, metas, n = {}, [], 0
    for p in params:
        st = p.storage()
        if st is None:
            raise RuntimeError("getParameters: a parameter has no storage")
        if id(st) not in storages:
            storages[id(st)] = (st, n)
            n += st.size()
        metas.append((p.storageOffset() - 1 + storages[id(st)][1], p.size(), p.stride()))
    flat = proto.new(n).zero()
    flat_storage = flat.storage()
    meta = proto.is_meta()
    used = None if meta else np.zeros(n, dtype=bool)
    for off, size, stride in metas:
        if not meta:
            count = 1
            for s in size:
                count *= s
            if tuple(stride) == _contiguous(size):
                used[off:off + count] = True
            else:
                used[_indices(off, size, stride)] = True
    if not meta:
        for st, base in storages.values():
            flat.narrow(1, base + 1, st.size()).copy(Tensor(kind=proto._kind, device=proto.device).set(st))
    for p in params:
        p.set()
    if used is not None and not used.all():
        newpos = np.cumsum(used) - 1
        data = flat.numpy()[used]
        flat = proto.new(int(used.sum()))
        flat.numpy()[...] = data
        flat_storage = flat.storage()
        metas = [(int(newpos[off]), size, stride) for off, size, stride in metas]
    for p, (off, size, stride) in zip(params, metas):
        p.set(flat_storage, off + 1, size, stride)
    return flat


def _indices(off, size, stride):
    idx = np.array([off], dtype=np.int64)
    for s, st in zip(size, stride):
        idx = (idx[:, None] + np.arange(s, dtype=np.int64)[None, :] * st).reshape(-1)
    return idx


class Criterion:
    """Base of criteria: forward(input, target) -> number, backward(input, target) -> gradInput."""

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        if '__typename__' not in cls.__dict__:
            cls.__typename__ = 'nn.' + cls.__name__
        _wrap_ctor(cls)

    __typename__ = 'nn.Criterion'

    def __init__(self):
        self.gradInput = Tensor()
        self.output = 0

    def __getattr__(self, name):
        return lua_nil(self, name)

    def forward(self, input, target):
        return self.updateOutput(input, target)

    def backward(self, input, target):
        return self.updateGradInput(input, target)

    def __call__(self, input, target):
        return self.forward(input, target)

    def type(self, name=None, tensorCache=None):
        if name is None:
            return self.gradInput.type()
        cache = {} if tensorCache is None else tensorCache
        cache[('seen', id(self))] = self
        for k in list(self.__dict__):
            self.__dict__[k] = recursive_type(self.__dict__[k], name, cache)
        return self

    def float(self):
        return self.type('torch.FloatTensor')

    def double(self):
        return self.type('torch.DoubleTensor')

    def cuda(self):
        return self.type('torch.CudaTensor')

    def clone(self):
        return copy.deepcopy(self)

    def __repr__(self):
        return self.__typename__
