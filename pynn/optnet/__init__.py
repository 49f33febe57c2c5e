"""pynn.optnet: memory optimization of nn networks (the original optnet, in Python).

    optimizeMemory(net, input, opts)   share storages between tensors that are never alive together
    removeOptimization(net)            undo it all
    countUsedMemory(net)               bytes per category
    graphgen(net, input, opts)         a graphviz.Digraph of the data flow, coloured by storage
"""
import warnings

from ..tensor import Tensor
from ..nn.module import Module
from . import apply as _apply
from .apply import Snapshot
from .memory import countUsedMemory, check_network
from .graphgen import graphgen  # noqa: E402  (the function shadows the submodule name)
from .plan import assign_optnet
from .trace import optnet_analysis, recursive_clone, tensors_of, forward_schedule, forward_conflicts

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
    ('inference' or 'training'), reuseBuffers=True, removeGradParams=True (inference only).
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
        out, steps = forward_schedule(net, input)
        if mode == 'training':
            net.backward(input, recursive_clone(out))
        switched = _apply.set_inplace(net, o['inplace'], steps, mode, list(tensors_of(input)))
        del steps, out
        if switched and o['planner'] == 'optnet':
            # Let outputs take their in-place storages before the analysis looks at them: the
            # original analysed stale outputs of modules it had just switched, which lets a
            # Concat's branch output share with a later branch's tensor (a wrong result).
            net.forward(input)
        _apply.reuse_state_buffers(net, o['reuseBuffers'], mode)
        _apply.remove_grad_params(net, o['removeGradParams'], mode)
        if o['planner'] == 'optnet':
            baseline = forward_conflicts(net, input)   # the network's own aliasing, if any
            rows = optnet_analysis(net, input, mode)
            _apply.apply_groups(assign_optnet(rows))
            if not _repair(net, input, set(baseline)):
                # last resort: no output/gradInput sharing at all for this network
                warnings.warn('optimizeMemory: the shared plan for this network could not be made '
                              'consistent; its outputs and gradInputs are left unshared')
                _apply.apply_groups([[row] for row in rows])
                if not _repair(net, input, set(baseline)):
                    raise RuntimeError('optimizeMemory: could not make the plan consistent '
                                       '(please report this network)')
            del rows
        elif o['budget'] is not None or o['recompute']:
            from . import recompute
            recompute.optimize(net, input, mode, o)
        else:
            from . import arena
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


def _repair(net, input, baseline, rounds=50):
    """The original's rows miss some reads (a Concat copying its branches), so on some nets its
    plan lets a tensor overwrite a value still to be read. Replay the forward, and move each
    such writer to a storage of its own, until no read is stale. Plans the original makes
    correctly (all of its own models) are left exactly as they are."""
    tried = {}
    for _ in range(rounds):
        bad = [v for k, v in forward_conflicts(net, input).items() if k not in baseline]
        if not bad:
            return True
        for writer, read in bad:
            # the writer's own storage, unless moving it did not stick (an in-place writer
            # takes its input's storage again): then the value it overwrote moves instead
            t = read if id(writer) in tried else writer
            tried[id(t)] = t
            t.set(t.new(1).storage())
    return False


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
        _apply.clear_view(m.__dict__.get('output'), owned.storages)
        _apply.clear_view(m.__dict__.get('gradInput'), owned.storages)
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
