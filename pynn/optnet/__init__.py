"""pynn.optnet: memory optimization of nn networks (the original optnet, in Python).

    optimizeMemory(net, input, opts)   share storages between tensors that are never alive together
    removeOptimization(net)            undo it all
    countUsedMemory(net)               bytes per category
    graphgen(net, input, opts)         a graphviz.Digraph of the data flow, coloured by storage
"""
import warnings

from ..tensor import Tensor
from .. import rng as _rng
from . import apply as _apply
from .apply import Snapshot
from .memory import countUsedMemory, check_network
from .graphgen import graphgen  # noqa: E402  (the function shadows the submodule name)
from .plan import assign_optnet
from .trace import optnet_analysis, recursive_clone, tensors_of, forward_schedule
from .check import find_conflicts, same_values

MODES = ('inference', 'training')
PLANNERS = ('optnet', 'optimal')  # the original's greedy sharing; arena offsets at the liveness bound
DEFAULTS = {'inplace': True, 'mode': 'inference', 'reuseBuffers': True, 'removeGradParams': True,
            'planner': 'optnet', 'budget': None, 'recompute': False}
_FLAG = '__memoryOptimized'


def _options(opts, kw):
    o = dict(DEFAULTS)
    o.update(opts or {})
    o.update(kw)
    unknown = set(o) - set(DEFAULTS)
    if unknown:
        raise ValueError('optimizeMemory: unknown option(s) %s; known: %s'
                         % (', '.join(sorted(unknown)), ', '.join(sorted(DEFAULTS))))
    if o['mode'] not in MODES:
        raise ValueError("optimizeMemory: mode must be 'inference' or 'training', got %r" % (o['mode'],))
    if o['planner'] not in PLANNERS:
        raise ValueError('optimizeMemory: unknown planner %r; known: %s'
                         % (o['planner'], ', '.join(repr(p) for p in PLANNERS)))
    if o['budget'] is not None or o['recompute']:
        # recomputation under a memory budget (recompute.py): planner 'optimal', training only
        if o['planner'] != 'optimal' or o['mode'] != 'training':
            raise ValueError("optimizeMemory: 'budget'/'recompute' need planner='optimal' and "
                             "mode='training' (got planner=%r, mode=%r)" % (o['planner'], o['mode']))
        b = o['budget']
        if b is not None and (isinstance(b, bool) or not isinstance(b, (int, float)) or b <= 0):
            raise ValueError('optimizeMemory: budget must be a positive number of bytes, got %r' % (b,))
    return o


def _check_input(net, input):
    ts = list(tensors_of(input))
    if not ts:
        raise TypeError('optimizeMemory: input must be a Tensor or a (nested) list of Tensors, got %s'
                        % type(input).__name__)
    p = net.parameters()
    if p and p[0]:
        want = p[0][0].type()
        for t in ts:
            if t.type() != want:
                raise TypeError('optimizeMemory: input is a %s but the network\'s parameters are %s; '
                                'convert one of them (e.g. net.type(%r))' % (t.type(), want, t.type()))


def optimizeMemory(net, input, opts=None, **kw):
    """Run net once on `input`, then let tensors whose lifetimes do not overlap share storages.

    Options (dict or keywords), with the original's defaults: inplace=True, mode='inference'
    ('inference' or 'training'), reuseBuffers=True, removeGradParams=True (inference only),
    planner='optnet' (the original's algorithm, then the repair of what a replay proves
    wrong: see _optimize_optnet and _repair) or 'optimal' (one arena at exact liveness).
    Runs the network several times (forward, and backward in training) on the input and on
    two inputs made from it; the input's values are left as given.
    On any error the network is left exactly as it was.
    """
    check_network('optimizeMemory', net)
    o = _options(opts, kw)
    if net.__dict__.get(_FLAG):
        warnings.warn('Skipping memory optimization: network is already optimized for %s mode.'
                      % net.__dict__[_FLAG])
        return net
    _check_input(net, input)
    mode = o['mode']
    snap = Snapshot(net)
    try:
        if o['planner'] == 'optnet':
            switched = _optimize_optnet(net, input, o)
        else:
            from . import arena
            out, steps = forward_schedule(net, input)
            if mode == 'training':
                net.backward(input, recursive_clone(out))
            switched = _apply.set_inplace(net, o['inplace'], steps, mode, list(tensors_of(input)))
            del steps, out
            _apply.reuse_state_buffers(net, o['reuseBuffers'], mode)
            _apply.remove_grad_params(net, o['removeGradParams'], mode)
            if o['budget'] is not None or o['recompute']:
                from . import recompute
                recompute.optimize(net, input, mode, o)
            else:
                arena.optimize(net, input, mode, o)
        if mode == 'inference':
            for m in net.listModules():
                m._pynn_backward_disabled = True
        params = net.parameters()
        keep = list(tensors_of(input)) + (params[0] + params[1] if params else [])
        net._pynn_owned = _apply.Owned(_apply.module_storages(net, keep), switched)
        net.__dict__[_FLAG] = mode
    except BaseException:
        snap.restore()
        raise
    return net


def _optimize_optnet(net, input, o):
    """The original optnet, step by step: forward (and backward in training), every module
    with an `inplace` field but Threshold switched to in-place, buffers shared per type, the
    analysis of the next forward (which, as the original's, sees the outputs of the modules
    just switched as they were before: stale), the greedy assignment; then the repair of
    what the replay proves wrong (see _repair). Returns the modules left switched."""
    mode = o['mode']
    index = {id(m): i for i, m in enumerate(net.listModules())}
    rng = _rng.streams_state()
    # the original's first forward/backward, replayed on the input and on a second input:
    # the values every later run must give, and the network's own stale reads (user in-place
    # modules), which are not the plan's doing. The second input runs first: the analysis
    # reads the outputs the last run left, as the original's reads those of its first run.
    probes = [_Probe(input, rng)] + [_Probe(x, _other_stream(rng, k))
                                     for k, x in enumerate(_other_inputs(input))]
    baseline = set()
    running = _running_stats(net)   # batch normalization's running averages, as the user had them
    proof = []
    for p in reversed(probes):
        p.rewind()
        if p is probes[0]:
            _put(running)
        first, p.ref = find_conflicts(net, p.input, mode, values=True, accumulate=p is probes[0],
                                      proof=proof if p is probes[0] else None)
        baseline |= {c.key(index) for c in first}
    proven = {c.key(index) for c in proof}   # the value-free replay's, of the network itself
    switched = _apply.set_inplace(net, o['inplace'])
    _apply.reuse_state_buffers(net, o['reuseBuffers'], mode)
    _apply.remove_grad_params(net, o['removeGradParams'], mode)
    probes[0].rewind()
    rows = optnet_analysis(net, input, mode)
    _apply.apply_groups(assign_optnet(rows))
    del rows
    after = _rng.streams_state()
    running = _running_stats(net)   # updated by two forwards, as the original's
    try:
        return _repair(net, mode, baseline, switched, index, probes, proven)
    finally:
        probes[0].rewind()
        _rng.set_streams_state(after)
        _put(running)


def _running_stats(net):
    """(tensor, copy) of every running average (batch normalization's running_mean/var/std),
    which each training forward updates: the replays must leave them as the original's two
    forwards do."""
    out = []
    for m in net.listModules():
        for k, v in m.__dict__.items():
            if k.startswith('running_') and hasattr(v, 'storage') and not v.is_meta() \
                    and v.nElement() > 0:
                out.append((v, v.clone()))
    return out


def _put(saved):
    for t, v in saved:
        t.copy(v)


class _Probe:
    """An input the replay runs on, its values to restore before each run (an in-place first
    module scales the tensor it is given), the random stream to restart from (the same Dropout
    noise), and `ref`, what the unoptimized network computed from it."""

    def __init__(self, x, rng):
        self.input, self.rng, self.ref = x, rng, None
        self.ins = list(tensors_of(x))
        self.saved = [t.clone() for t in self.ins]

    def rewind(self):
        for t, v in zip(self.ins, self.saved):
            t.copy(v)
        _rng.set_streams_state(self.rng)


def _other_stream(rng, k):
    """The random streams restarted from a fixed seed of their own (the k-th other input's):
    the replays on the other inputs draw other Dropout noise, so that a stale read the
    first input's noise happens to hide (a corrupted value it drops, or one a max pooling
    then ignores) shows on them. The caller's streams are left as they were."""
    _rng.manualSeed(20161 + k)
    other = _rng.streams_state()
    _rng.set_streams_state(rng)
    return other


def _other_inputs(input):
    """Two more inputs of the same sizes, from a fixed seed of their own (pynn's random stream
    is not touched): the floating-point tensors of `input` plus noise of their spread, and
    standard normal values scaled to their largest magnitude (both signs). A stale read whose
    harm the values of one input happen to hide shows on them."""
    import numpy as np
    from ..backend import array_module
    rs = np.random.default_rng(20161)
    outs = [recursive_clone(input), recursive_clone(input)]
    for k, out in enumerate(outs):
        for t in tensors_of(out):
            if t.is_meta() or t.nElement() == 0:
                continue
            a = t.numpy()
            host = a.get() if hasattr(a, 'get') else a
            if host.dtype.kind != 'f':
                continue
            noise = rs.standard_normal(host.shape)
            if k == 0:
                new = host + noise * (float(host.std()) or 1.0)
            else:
                new = noise * max(1.0, float(np.abs(host).max()))
            a[...] = array_module(a).asarray(new.astype(host.dtype))
    return outs


def _fresh(t):
    for x in tensors_of(t):
        x.set(x.new(1).storage())


def _inplace_culprit(c, switched, index):
    """The module optnet switched to in-place through which the stale read's writer reached
    the value read: the writer itself, or else the last switched module before the writer
    whose output aliases the value read (e.g. an AddConstant switched in place, then a user's
    in-place MulConstant after it writes over the AddConstant's input)."""
    st = c.tensor.storage()
    if st is None or c.writer is None:
        return None
    cands = [m for m in switched if m.inplace and
             any(t.storage() is st for t in tensors_of(m.__dict__.get('output')))]
    if any(m is c.writer for m in cands):
        return c.writer
    w = index.get(id(c.writer), -1)
    before = [m for m in cands if index.get(id(m), -1) <= w]
    pick = before or cands
    return max(pick, key=lambda m: index.get(id(m), -1)) if pick else None


def _repair(net, mode, baseline, switched, index, probes, proven=frozenset(), rounds=500):
    """Replay the optimized network (check.find_conflicts) on each probe input until it
    computes the values of the unoptimized one; while it does not, mend the first stale read
    the replay finds. The original's plan is kept wherever its values are right. On the meta
    device (no values), every stale read the plan adds is mended.

    A stale read is mended where its writer is: a module optnet switched to in-place that
    overwrote its input while that value was still to be read goes back to out-of-place (with
    storages of its own); any other writer moves to a storage of its own, or, when that does
    not stick (an in-place writer takes its input's storage again), the value it overwrote
    moves instead. Returns the modules left switched to in-place."""
    switched = list(switched)
    moved = {id(t) for p in probes for t in p.ins}   # inputs are never moved
    meta = any(t.is_meta() for t in tensors_of(probes[0].input))
    for _ in range(rounds):
        bad = None
        for k, p in enumerate(probes[:1] if meta else probes):
            p.rewind()
            proof = []
            found, vals = find_conflicts(net, p.input, mode, values=True, accumulate=False,
                                         proof=proof)
            found = [c for c in found if c.key(index) not in baseline]
            if meta and found or not meta and not same_values(vals, p.ref):
                bad = found
                break
            if k == 0 and not any(c.key(index) not in proven for c in proof):
                break   # proven: no stale read beyond the network's own, whatever the input
        if bad is None:
            return switched
        if not bad:
            break
        c = bad[0]
        culprit = _inplace_culprit(c, switched, index)
        if culprit is not None:
            culprit.inplace = False
            _fresh(culprit.__dict__.get('output'))
            _fresh(culprit.__dict__.get('gradInput'))
            switched = [x for x in switched if x is not culprit]
        elif c.written is not None and id(c.written) not in moved:
            moved.add(id(c.written))
            _fresh(c.written)
        elif id(c.tensor) not in moved:
            moved.add(id(c.tensor))
            _fresh(c.tensor)
        else:
            break
    raise RuntimeError('optimizeMemory: could not make the plan consistent (please report this '
                       'network)')


def removeOptimization(net):
    """Undo optimizeMemory: fresh storages for the outputs, gradInputs and buffers it shared,
    in-place flags it switched back off, gradient parameters rebuilt with their original
    sharing, backward enabled again."""
    check_network('removeOptimization', net)
    if not net.__dict__.get(_FLAG):
        warnings.warn('Skipping memory optimization removal, as the network was not optimized.')
        return net
    owned = net.__dict__.pop('_pynn_owned', None) or _apply.Owned()
    for m in net.listModules():
        for field in ('output', 'gradInput'):
            if field in m.__dict__:
                m.__dict__[field] = _apply.cleared(m.__dict__[field])
        for field in _apply.REUSABLE_BUFFERS.get(m.__typename__, ((), ()))[0]:
            t = m.__dict__.get(field)
            if isinstance(t, Tensor):
                t.set()
        m.__dict__.pop('_pynn_backward_disabled', None)
        m.__dict__.pop('_pynn_arena', None)
    for m in owned.switched:  # the original left them in-place; an unoptimized net is not
        m.inplace = False
    from .recompute import remove as _remove_recompute
    _remove_recompute(net)
    _apply.add_grad_params(net)
    del net.__dict__[_FLAG]
    return net


def lowerBound(net, input, opts=None, **kw):
    """Bytes: the liveness lower bound of net's outputs, gradInputs (training) and pooled
    buffers for the schedule of `mode` (see report.lowerBound)."""
    from .report import lowerBound as _lb
    return _lb(net, input, opts, **kw)


def planReport(net, input=None, opts=None, **kw):
    """Per-storage intervals, sizes and offsets of the 'optimal' planner (see report.planReport)."""
    from .report import planReport as _pr
    return _pr(net, input, opts, **kw)


def __getattr__(name):
    if name == 'models':  # lazy: building models needs every layer family loaded
        import importlib
        return importlib.import_module(__name__ + '.models')
    raise AttributeError(name)
