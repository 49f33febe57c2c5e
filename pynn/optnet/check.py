"""Replaying a network's schedule to prove that no two live tensors share memory.

Every value a module writes (its output after updateOutput, its gradInput after
updateGradInput) is stamped with a copy; every value a module reads when it is called
(its input, its gradOutput, and in backward its input and output again) is compared with
its stamp. A read that differs means something overwrote a tensor while it was still
needed: two live tensors shared a storage. In-place modules overwrite their input by
design; their stamps are refreshed so that only foreign writes count.
"""
import numpy as np

from ..nn.module import tracing
from .trace import Recorder, recursive_clone, tensors_of, CONCAT_LIKE
from .needs import backward_reads, INPUT, OUTPUT, GRAD_OUTPUT


def _snap(t):
    if t.is_meta() or t.nElement() == 0:
        return None
    a = t.numpy()
    a = a.get() if hasattr(a, 'get') else a
    return (t.storage(), t._offset, t.size(), t.stride(), np.array(a, copy=True))


def schedule_violations(net, input, mode='inference'):
    """Run forward (and backward in training) checking every read against its stamp.
    Returns a list of (module index in net.listModules(), method, what) for each bad read."""
    index = {id(m): i for i, m in enumerate(net.listModules())}
    stamps = {}      # id(tensor) -> snapshot at its last legitimate write
    keep = []        # keep stamped tensors alive so their ids stay unique
    bad = []

    def stamp(x):
        for t in tensors_of(x):
            s = _snap(t)
            if s is not None:
                stamps[id(t)] = s
                keep.append(t)

    def check(m, name, what, x):
        for t in tensors_of(x):
            s = stamps.get(id(t))
            if s is None or t.is_meta():
                continue
            st, off, size, stride, data = s
            if t.storage() is not st or t._offset != off or t.size() != size:
                continue  # re-pointed since (e.g. a new forward): not a stale read
            a = t.numpy()
            a = a.get() if hasattr(a, 'get') else a
            if not np.array_equal(a, data, equal_nan=True):
                bad.append((index.get(id(m)), name, what))

    leaf = lambda m: m.__dict__.get('modules') is None  # noqa: E731

    def on_enter(c, m, name, args):
        if not leaf(m):
            return
        if name == 'updateOutput':
            check(m, name, 'input', args[0])
            return
        need = backward_reads(m, name)  # only values this method really reads
        if GRAD_OUTPUT in need:
            check(m, name, 'gradOutput', args[1])
        if INPUT in need:
            check(m, name, 'input', args[0])
        if OUTPUT in need:
            check(m, name, 'output', m.output)

    def on_exit(c, m, name, args):
        if name == 'updateOutput' and m.__typename__ in CONCAT_LIKE:
            for b in m.modules:  # the copy just made read each branch's output
                sub = b.__dict__.get('modules')
                check(m, name, 'branch output', (sub[-1] if sub else b).output)
        if not leaf(m):
            return
        if name == 'updateOutput':
            stamp(m.output)
            if m.__dict__.get('inplace'):
                stamp(args[0])  # overwritten by design
        elif name in ('updateGradInput', 'backward'):
            stamp(m.gradInput)
            if m.__dict__.get('inplace'):
                stamp(args[1])

    stamp(input)
    with tracing(Recorder(on_enter, on_exit)):
        out = net.forward(input)
        if mode == 'training':
            g = recursive_clone(out)
            stamp(g)
            net.backward(input, g)
    return bad


# --- conflicts with their writers: what optimizeMemory's repair acts on -----------------------------
class Conflict:
    """A stale read: `reader` (a module) read `tensor` in `method` (`what`: input, gradOutput,
    output, branch output), and its value was no longer the one its producer wrote, because
    `writer` (a module, or None if unknown) last wrote `written` into the same storage."""
    __slots__ = ('reader', 'method', 'what', 'tensor', 'writer', 'written')

    def __init__(self, reader, method, what, tensor, writer, written):
        self.reader, self.method, self.what = reader, method, what
        self.tensor, self.writer, self.written = tensor, writer, written

    def key(self, index):
        return (index.get(id(self.reader)), self.method, self.what, index.get(id(self.writer)))


def _restores_input(m):
    """In-place modules whose updateGradInput writes their input back (AddConstant: x - c,
    MulConstant: x / c)."""
    return m.__dict__.get('inplace') and m.__typename__ in ('nn.AddConstant', 'nn.MulConstant')


def _no_op(m):
    """A forward that leaves its input's values as they are: a Dropout in evaluate mode
    (v2, or p = 0), whose in-place output is its input."""
    if m.__typename__ != 'nn.Dropout':
        return False
    p = m.__dict__.get('p') or 0
    noisy = m.__dict__.get('train') or m.__dict__.get('stochastic_inference')
    return p == 0 or (not noisy and m.__dict__.get('v2') is not False)


def _written(m, ts, src):
    """The tensors of ts that m wrote: not those that are views of its source (a View, a
    Narrow, an Identity hand their input on), unless m computes in place."""
    if m.__dict__.get('inplace'):
        return ts
    srcs = {id(t.storage()) for t in tensors_of(src) if t.storage() is not None}
    return [t for t in ts if t.storage() is None or id(t.storage()) not in srcs]


def _own(m, field):
    """The tensors of m.<field> that m writes itself: for a container, those that are not a
    child's output or gradInput handed on (a ConcatTable's output list, a Sequential's ends)."""
    ts = list(tensors_of(m.__dict__.get(field)))
    mods = m.__dict__.get('modules')
    if mods is None:
        return ts
    child = set()
    for c in mods:
        for f in ('output', 'gradInput'):
            child.update(id(t) for t in tensors_of(c.__dict__.get(f)))
    return [t for t in ts if id(t) not in child]


def find_conflicts(net, input, mode='inference', values=False, accumulate=True, proof=None):
    """Run forward (and backward in training, gradOutput a copy of the output) and return the
    stale reads as Conflicts, each with the module that last wrote the storage.

    A read is compared with a copy of the value its producer wrote (its stamp), within a few
    rounding errors (an in-place AddConstant gives its input back as (x + c) - c); a module
    switched to in-place overwrites its input, so a later read of that input is stale unless
    the write changed nothing (an in-place Dropout in evaluate mode) or was undone in time
    (an in-place AddConstant/MulConstant restores its input in its own updateGradInput,
    before any earlier module's backward reads it).

    With values=True, returns (conflicts, values): copies of the output, and in training of
    the gradInput and of what the backward added to each parameter gradient (kept added with
    accumulate, as a backward does; taken back without). `proof`, a list, receives the stale
    reads of the value-free replay (each storage's writes numbered: a read is stale when its
    storage was written after the value was; views and no-op Dropouts are no writes, an
    in-place AddConstant/MulConstant's restore gives the old number back); on the meta device
    these are the conflicts returned."""
    stamps, last, keep, bad = {}, {}, [], []
    meta = any(t.is_meta() for t in tensors_of(input))
    version = {}   # id(storage) -> number of its last write: the value-free replay
    vstamps, vbad = {}, []   # id(tensor) -> version of its storage when it was written

    def stamp(x):
        for t in tensors_of(x):
            if t.storage() is not None:
                vstamps[id(t)] = version.get(id(t.storage()))
                keep.append(t)
            if meta:
                continue
            s = _snap(t)
            if s is not None:
                stamps[id(t)] = s
                keep.append(t)

    def wrote(m, ts):
        for t in ts:
            if t.storage() is not None:
                last[id(t.storage())] = (m, t)
                version[id(t.storage())] = len(version) + len(keep) + 1
                keep.append(t)

    def check(m, name, what, x):
        for t in tensors_of(x):
            if id(t) in vstamps and t.storage() is not None and \
                    version.get(id(t.storage())) != vstamps[id(t)]:
                w = last.get(id(t.storage()), (None, None))
                vbad.append(Conflict(m, name, what, t, w[0], w[1]))
            s = stamps.get(id(t))
            if meta or s is None or t.is_meta():
                continue
            st, off, size, stride, data = s
            if t.storage() is not st or t._offset != off or t.size() != size:
                continue
            a = t.numpy()
            a = a.get() if hasattr(a, 'get') else a
            if a.dtype.kind == 'f' and data.size:
                ok = _close(a, data, 256)
            else:
                ok = np.array_equal(a, data)
            if not ok:
                w = last.get(id(t.storage()), (None, None))
                bad.append(Conflict(m, name, what, t, w[0], w[1]))

    def exact(x):
        # an in-place AddConstant/MulConstant gives its input back within rounding: make it
        # exact, so that the replay's values compare bit for bit where the plan is right
        for t in tensors_of(x):
            if id(t) in vstamps and t.storage() is not None:
                version[id(t.storage())] = vstamps[id(t)]
            s = stamps.get(id(t))
            if meta or s is None or t.is_meta() or t.storage() is not s[0] or t._offset != s[1] \
                    or t.size() != s[2]:
                continue
            a = t.numpy()
            h = a.get() if hasattr(a, 'get') else a
            if h.dtype.kind == 'f' and _close(h, s[4], 256):
                a[...] = xp_of(a).asarray(s[4])

    leaf = lambda m: m.__dict__.get('modules') is None  # noqa: E731

    class Tracer:
        def enter(self, m, name, args):
            if not leaf(m):
                return
            if name == 'updateOutput':
                check(m, name, 'input', args[0])
                return
            need = backward_reads(m, name)
            if GRAD_OUTPUT in need:
                check(m, name, 'gradOutput', args[1])
            inplace = m.__dict__.get('inplace')
            if INPUT in need and not inplace:
                check(m, name, 'input', args[0])
            if OUTPUT in need or (INPUT in need and inplace):  # in place, its input is its output
                check(m, name, 'output', m.output)

        def exit(self, m, name, args):
            if name == 'updateOutput':
                if m.__typename__ in CONCAT_LIKE:
                    for b in m.modules:
                        sub = b.__dict__.get('modules')
                        check(m, name, 'branch output', (sub[-1] if sub else b).output)
                own = _own(m, 'output')
                if not _no_op(m):
                    wrote(m, _written(m, own, args[0]))
                stamp(own)
            elif name in ('updateGradInput', 'backward'):
                own = _own(m, 'gradInput')
                wrote(m, _written(m, own, args[1]))
                stamp(own)
                if leaf(m) and _restores_input(m):
                    wrote(m, list(tensors_of(args[0])))
                    exact(args[0])

    stamp(input)
    grads, stores = [], {}
    if values and not meta and mode == 'training':
        # the gradients this backward adds, exactly: start the parameter gradients at zero,
        # then add back what they held (accumulate) or put it back (not)
        p = net.parameters()
        grads = list(p[1]) if p else []
        for g in grads:
            st = g.storage()
            if st is not None and st.data is not None and id(st) not in stores:
                stores[id(st)] = (st, st.data.copy())
                st.data.fill(0)
    vals = []
    collect = values and not meta
    with tracing(Tracer()):
        out = net.forward(input)
        if collect:
            vals += [_copy(t) for t in tensors_of(out)]
        if mode == 'training':
            g = recursive_clone(out)
            stamp(g)
            gin = net.backward(input, g)
            if collect:
                vals += [_copy(t) for t in tensors_of(gin)]
                vals += [_copy(t) for t in grads]
    for st, held in stores.values():
        if accumulate:
            st.data += held
        else:
            st.data[...] = held
    if meta:
        bad = vbad
    if proof is not None:
        proof.extend(vbad)
    return (bad, vals) if values else bad


def xp_of(a):
    from ..backend import array_module
    return array_module(a)


def _close(a, data, ulps):
    """Whether float arrays a and data agree within `ulps` rounding errors of data's magnitude
    (NaN where data is NaN)."""
    if a.shape != data.shape:
        return False
    fin = np.isfinite(data)
    scale = max(1.0, float(np.abs(data[fin]).max()) if fin.any() else 1.0)
    nan = np.isnan(data)
    if not np.array_equal(np.isnan(a), nan):
        return False
    return bool(np.all(np.abs(a[~nan] - data[~nan]) <= ulps * np.finfo(a.dtype).eps * scale))


def _copy(t):
    a = t.numpy()
    return np.array(a.get() if hasattr(a, 'get') else a, copy=True)


def same_values(a, b):
    """Whether two lists of arrays agree within a few rounding errors of their magnitude
    (an in-place AddConstant's (x + c) - c is not always x)."""
    if len(a) != len(b):
        return False
    for x, y in zip(a, b):
        if x.shape != y.shape:
            return False
        if not x.size:
            continue
        if x.dtype.kind != 'f':
            if not np.array_equal(x, y):
                return False
        elif not _close(x, y, 64):
            return False
    return True
