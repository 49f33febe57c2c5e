"""Applying a plan to a network, and undoing it.

Everything here changes tensors only through `Tensor.set`, so what a plan did can be
undone (removeOptimization) and a failed optimization can be rolled back (Snapshot).
"""
import weakref

from ..storage import Storage
from ..tensor import Tensor
from .trace import K_ALWAYS_LIVE

# type -> (buffers shared in inference, buffers shared in training), as the original
REUSABLE_BUFFERS = {
    'nn.SpatialConvolution': (('finput', 'fgradInput'), ('fgradInput',)),
    'nn.SpatialConvolutionMM': (('finput', 'fgradInput'), ('fgradInput',)),
    'nn.Normalize': (('norm', 'buffer', 'normp', '_indices'), ()),
    'nn.SpatialCrossMapLRN': (('scale',), ()),
    'nn.SpatialMaxPooling': (('indices',), ()),
}


def apply_groups(groups):
    """Point every member of a group at one fresh storage (the original's applyAssignments)."""
    for g in groups:
        storage = None
        for row in g:
            if row.used == K_ALWAYS_LIVE and row.defined == -K_ALWAYS_LIVE:
                break  # the network's input (or the gradient fed to it): never moved
            if storage is None:
                storage = row.tensor.new(1).storage()
            row.tensor.set(storage)


def set_inplace(net, on, steps=None, mode='inference', net_input=()):
    """Switch modules that have an `inplace` flag to in-place (Threshold excepted, as the original);
    returns the modules switched.

    With the forward schedule `steps`, a module is switched only where that is safe: nobody
    reads its input's value after it (in forward, or in training in a backward that needs that
    value), and the input is not the network's own input. The original switched every such
    module, which silently corrupts gradients where, e.g., CAddTable(inplace) overwrites a
    ReLU output that the ReLU's backward still reads.
    """
    if not on:
        return []
    candidates = [m for m in net.listModules()
                  if m.__dict__.get('inplace') is not None and m.__typename__ != 'nn.Threshold']
    if steps is None:
        switched = [m for m in candidates if not m.inplace]
        for m in switched:
            m.inplace = True
        return switched
    switched = []
    parent = {}

    def find(st):
        k = id(st)
        while parent.get(k, k) != k:
            k = parent[k]
        return k

    protected = {find(t.storage()) for t in net_input if t.storage() is not None}
    calls = {}
    for k, s in enumerate(steps):
        calls.setdefault(id(s.module), []).append(k)
    for k, s in enumerate(steps):
        m = s.module
        if m.__dict__.get('inplace') is not False or m not in candidates or len(calls[id(m)]) != 1:
            continue
        if not s.reads or s.reads[0].storage() is None or not s.writes:
            continue
        target = find(s.reads[0].storage())
        if target in protected or _read_after(steps, k, target, find) or \
                (mode == 'training' and (_needed_in_backward(steps, m, target, find) or
                                         _own_value_overwritten(steps, k, find))):
            continue
        m.inplace = True
        switched.append(m)
        for t in s.writes:
            if t.storage() is not None:
                parent[find(t.storage())] = target
    return switched


def _same(tensors, target, find):
    return any(t.storage() is not None and find(t.storage()) == target for t in tensors)


def _read_after(steps, k, target, find):
    return any(_same(s.reads, target, find) for s in steps[k + 1:])


def _own_value_overwritten(steps, k, find):
    """In place, m's backward reads the storage its output then shares with its input: unsafe
    if a later in-place module writes over that output (e.g. a user's CAddTable(true))."""
    from .needs import backward_reads, INPUT, OUTPUT
    s = steps[k]
    if not backward_reads(s.module) & {INPUT, OUTPUT}:
        return False
    outs = {find(t.storage()) for t in s.writes if t.storage() is not None}
    return any(_same(later.writes or (), o, find) for later in steps[k + 1:] for o in outs)


def _needed_in_backward(steps, m, target, find):
    from .needs import backward_reads, INPUT, OUTPUT
    for s in steps:
        if s.module is m:
            continue
        need = backward_reads(s.module)
        if (INPUT in need and _same(s.reads, target, find)) or \
                (OUTPUT in need and _same(s.writes or (), target, find)):
            return True
    return False


def reuse_state_buffers(net, on, mode):
    """Modules of one type share their internal buffers (finput, indices, ...)."""
    if not on:
        return
    table = dict(REUSABLE_BUFFERS)
    if net.findModules('nn.SpatialMaxUnpooling'):  # unpooling reads the pooling indices later
        table['nn.SpatialMaxPooling'] = ((), ())
    idx = 1 if mode == 'training' else 0
    shared = {}
    for m in net.listModules():
        for field in table.get(m.__typename__, ((), ()))[idx]:
            t = m.__dict__.get(field)
            if isinstance(t, Tensor):
                key = (m.__typename__, field)
                if shared.get(key) is None:
                    shared[key] = t.storage()
                if shared[key] is not None:
                    t.set(shared[key])


def remove_grad_params(net, on, mode):
    """Inference only: free gradWeight/gradBias, remembering how they shared storages."""
    if not on or mode == 'training':
        return
    info = {}
    for m in net.listModules():
        for k in ('gradWeight', 'gradBias'):
            t = m.__dict__.get(k)
            if isinstance(t, Tensor) and t.storage() is not None:
                info[id(t)] = (t, t.storage(), t.storageOffset(), t.storage().size(), t.stride())
                t.set()
        m._pynn_getParameters_disabled = True
    net._pynn_grad_params_info = info


def add_grad_params(net):
    """Rebuild the gradWeight/gradBias storages removed by remove_grad_params, sharing as before."""
    info = net.__dict__.pop('_pynn_grad_params_info', None)
    made = {}
    for m in net.listModules():
        m.__dict__.pop('_pynn_getParameters_disabled', None)
        if info is None:
            continue
        for w, g in (('weight', 'gradWeight'), ('bias', 'gradBias')):
            t = m.__dict__.get(g)
            if isinstance(t, Tensor) and id(t) in info:
                _, old, offset, size, stride = info[id(t)]
                if id(old) not in made:
                    made[id(old)] = Storage(size, t.dtype, t.device)
                t.set(made[id(old)], offset, m.__dict__[w].size(), stride)


class Snapshot:
    """Every module's fields and every tensor's view, to roll a failed optimization back."""

    def __init__(self, net):
        self.modules = [(m, dict(m.__dict__)) for m in net.listModules()]
        self.views = {}
        for m, fields in self.modules:
            for v in fields.values():
                self._record(v)

    def _record(self, v):
        if isinstance(v, Tensor):
            self.views[id(v)] = (v, v._storage, v._offset, v._size, v._stride)
        elif isinstance(v, (list, tuple)):
            for x in v:
                self._record(x)
        elif isinstance(v, dict):
            for x in v.values():
                self._record(x)

    def restore(self):
        for m, fields in self.modules:
            m.__dict__.clear()
            m.__dict__.update(fields)
        for t, st, off, size, stride in self.views.values():
            t._storage, t._offset, t._size, t._stride = st, off, size, stride


class Owned:
    """What optimizeMemory changed, kept on the root module so removeOptimization can undo it:
    the storages its plan put module tensors in (weakly: no memory is kept alive by this),
    and the modules it switched to in-place."""

    def __init__(self, storages=(), switched=()):
        self.storages = weakref.WeakSet(storages)
        self.switched = list(switched)

    def __deepcopy__(self, memo):  # a cloned network's record points at the clone's objects
        import copy
        new = Owned()
        new.storages = weakref.WeakSet(memo[id(st)] for st in self.storages if id(st) in memo)
        new.switched = [copy.deepcopy(m, memo) for m in self.switched]
        return new


def module_storages(net, exclude=()):
    """Storages of every module's output, gradInput and buffer tensors, but those in `exclude`."""
    skip = {id(t.storage()) for t in exclude if t.storage() is not None}
    out = []
    for m in net.listModules():
        for v in m.__dict__.values():
            for t in _tensors(v):
                st = t.storage()
                if st is not None and id(st) not in skip:
                    out.append(st)
    return out


def cleared(x):
    """A fresh, empty counterpart of a module's output or gradInput x (a tensor, or a list of
    them, nested): the module's next pass sizes it anew. The objects in x are left as they
    are: they may be a caller's (the input an Identity hands on as its output) or, after
    in-place switches, views of some other tensor's storage that an emptied field would go
    on writing into."""
    if isinstance(x, Tensor):
        return x.new()
    if isinstance(x, list):
        return [cleared(v) for v in x]
    return x


def _tensors(x):
    if isinstance(x, Tensor):
        yield x
    elif isinstance(x, list):
        for v in x:
            yield from _tensors(v)
