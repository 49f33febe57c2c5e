"""Reports on the 'optimal' planner: the liveness lower bound, the plan, memory counts, and
checks that replay the schedule against the arena offsets.

    lowerBound(net, input, opts)   bytes no plan of that schedule can go below
    planReport(net, input, opts)   per storage: live spans, size, offset (str() and .json())
    arena_memory(net, input, mode) countUsedMemory with each arena counted once
    overlaps(net)                  pairs of simultaneously live tensors whose bytes overlap
    replay(net, input, ...)        run the schedule again, poisoning every byte not live
"""
import copy
import json

import numpy as np

from ..tensor import Tensor
from ..nn.module import Module, tracing
from . import liveness
from .apply import set_inplace
from .arena import ArenaState, Plan, meta_copy, _meta_from, _template, _memo_skip, _detach_planned
from .memory import storages_by_category, CATEGORIES
from .trace import recursive_clone, tensors_of

MiB = 1048576.0
MODES = ('inference', 'training')
RULES = ('layer', 'conservative')
LB_DEFAULTS = {'mode': 'inference', 'needs': 'layer', 'reuseBuffers': True, 'inplace': True}


def _lb_options(opts, kw, who):
    o = dict(LB_DEFAULTS)
    o.update(opts or {})
    o.update(kw)
    o.pop('planner', None)
    o.pop('removeGradParams', None)
    unknown = set(o) - set(LB_DEFAULTS)
    if unknown:
        raise ValueError('%s: unknown option(s) %s; known: %s'
                         % (who, ', '.join(sorted(unknown)), ', '.join(sorted(LB_DEFAULTS))))
    if o['mode'] not in MODES:
        raise ValueError("%s: mode must be 'inference' or 'training', got %r" % (who, o['mode']))
    if o['needs'] not in RULES:
        raise ValueError("%s: needs must be 'layer' or 'conservative', got %r" % (who, o['needs']))
    return o


def _check(net, input, who):
    if not isinstance(net, Module):
        raise TypeError('%s: expected an nn.Module, got %s' % (who, type(net).__name__))
    if not list(tensors_of(input)):
        raise TypeError('%s: input must be a Tensor or a (nested) list of Tensors, got %s'
                        % (who, type(input).__name__))


def schedule_of(net, input, o):
    """The Schedule of net on input's sizes with options o, traced on a meta copy (the
    network itself is not run, changed or re-planned)."""
    clone = meta_copy(net, o['reuseBuffers'])
    state = clone.__dict__.get('__memoryOptimized')
    if not state:
        set_inplace(clone, o['inplace'])
    pooled = liveness.pooled_fields(clone, o['reuseBuffers'])
    _detach_planned(clone, pooled)
    try:
        return liveness.analyse(clone, _meta_from(_template(input)), o['mode'], o['needs'], pooled=pooled)
    except Exception:
        # a layer without meta support: trace a real copy instead
        memo = {}
        _memo_skip(net, memo)
        real = copy.deepcopy(net, memo)
        for m in real.listModules():
            m.__dict__.pop('_pynn_backward_disabled', None)
        if not real.__dict__.get('__memoryOptimized'):
            set_inplace(real, o['inplace'])
        _detach_planned(real, pooled)
        sample = [t.clone() for t in tensors_of(input)]
        return liveness.analyse(real, _rebuild(input, iter(sample)), o['mode'], o['needs'], pooled=pooled)


def _rebuild(x, it):
    if isinstance(x, Tensor):
        return next(it)
    return [_rebuild(v, it) for v in x]


def lowerBound(net, input, opts=None, **kw):
    """The liveness lower bound, in bytes, of the storages the 'optimal' planner places
    (outputs; gradInputs in training; pooled buffers with reuseBuffers) for the schedule of
    `mode`: the largest total size of storages live at the same time. Options: mode
    ('inference'), needs ('layer': each layer's declared backward reads, or 'conservative':
    every backward reads its module's input and output), reuseBuffers (True), inplace (True,
    as optimizeMemory sets it). Computed on a meta copy: the network is left as it is."""
    _check(net, input, 'lowerBound')
    o = _lb_options(opts, kw, 'lowerBound')
    return schedule_of(net, input, o).lower_bound()


class PlanReport:
    """A plan's buffers (label, category, type, bytes, first/last span, offset in bytes)."""

    def __init__(self, plan, o, applied):
        s = plan.schedule
        self.mode, self.needs, self.applied = s.mode, s.rule, applied
        self.spans = s.spans
        self.rows = []
        for b in sorted(s.buffers, key=lambda b: (liveness.type_key(b.storage), b.offset, b.lo)):
            self.rows.append({'label': b.label, 'category': b.category, 'type': liveness.type_key(b.storage),
                              'bytes': b.nbytes, 'first': b.lo, 'last': b.hi,
                              'offset': b.offset * b.itemsize, 'tensors': len(b.members)})
        self.arenas = {k: n * dt.itemsize for k, (dt, n) in plan.arenas.items()}
        self.lower_bounds = s.lower_bound(per_type=True)
        self.lower_bound = s.lower_bound()
        self.arena_bytes = plan.nbytes()
        self.options = dict(o)

    @property
    def ratio(self):
        return self.arena_bytes / self.lower_bound if self.lower_bound else 1.0

    def as_dict(self):
        return {'mode': self.mode, 'needs': self.needs, 'applied': self.applied, 'spans': self.spans,
                'arena_bytes': self.arena_bytes, 'lower_bound': self.lower_bound, 'ratio': self.ratio,
                'arenas': self.arenas, 'lower_bounds': self.lower_bounds, 'buffers': self.rows}

    def json(self, **kw):
        return json.dumps(self.as_dict(), **kw)

    to_json = json

    def __str__(self):
        lines = ['optnet arena plan (%s, needs=%s, %d spans%s): arena %.3f MiB, lower bound %.3f MiB, '
                 'ratio %.4f' % (self.mode, self.needs, self.spans, '' if self.applied else ', not applied',
                                 self.arena_bytes / MiB, self.lower_bound / MiB, self.ratio)]
        for k, n in sorted(self.arenas.items()):
            lines.append('  arena %-8s %12d bytes (lower bound %d)' % (k, n, self.lower_bounds.get(k, 0)))
        lines.append('  %-44s %-10s %-8s %12s %12s %7s %7s' % ('storage (first tenant)', 'category', 'type',
                                                              'offset', 'bytes', 'first', 'last'))
        for r in self.rows:
            lines.append('  %-44s %-10s %-8s %12d %12d %7d %7d' % (r['label'][:44], r['category'], r['type'],
                                                                  r['offset'], r['bytes'], r['first'], r['last']))
        return '\n'.join(lines)

    __repr__ = __str__


def planReport(net, input=None, opts=None, **kw):
    """The plan of an arena-optimized net (input may be None), or, for any other net, the plan
    the 'optimal' planner would make for input (made on a meta copy; nothing is applied).
    print() it, or take .json() / .as_dict()."""
    state = net.__dict__.get('_pynn_arena') if isinstance(net, Module) else None
    if isinstance(state, ArenaState) and state.plan is not None and input is None and not opts and not kw:
        return PlanReport(state.plan, {'mode': state.mode, 'needs': state.rule,
                                       'reuseBuffers': state.reuse_buffers}, True)
    if input is None:
        raise TypeError('planReport: the network is not arena-optimized: pass an input')
    _check(net, input, 'planReport')
    o = _lb_options(opts, kw, 'planReport')
    return PlanReport(Plan(schedule_of(net, input, o)), o, False)


def arena_memory(net, input=None, mode=None):
    """countUsedMemory's categories for a net optimized with planner='optimal', each arena
    storage counted once, under the category of its first tenant (in listModules order:
    outputs, then gradInputs, then buffers), plus 'arena' (bytes of the arenas) and
    'lower_bound' (of the plan). With an input and mode, an unoptimized net is first
    optimized (planner 'optimal') and run once (forward, and backward in training)."""
    from . import optimizeMemory
    state = net.__dict__.get('_pynn_arena')
    if not isinstance(state, ArenaState):
        if input is None:
            raise ValueError('arena_memory: the network is not arena-optimized; pass input and mode')
        mode = mode or 'inference'
        if net.__dict__.get('__memoryOptimized'):
            raise ValueError('arena_memory: the network is optimized by the optnet planner')
        optimizeMemory(net, input, {'mode': mode, 'planner': 'optimal'})
        out = net.forward(input)
        if mode == 'training':
            net.backward(input, recursive_clone(out))
        state = net.__dict__['_pynn_arena']
    arenas = set(id(a) for a in state.arenas.values())
    sizes, counted = {}, set()
    for cat, stores in storages_by_category(net).items():
        total = 0
        for k, st in stores.items():
            if k in arenas:
                if k in counted:
                    continue
                counted.add(k)
            total += st.size() * st.elementSize()
        sizes[cat] = total
    sizes['total_size'] = sum(sizes[c] for c in CATEGORIES)
    sizes['arena'] = sum(a.size() * a.elementSize() for a in state.arenas.values())
    sizes['lower_bound'] = state.plan.schedule.lower_bound()
    return sizes


# --- checks --------------------------------------------------------------------------------------
def _slots(net, state):
    """Per buffer of the applied plan: (lo, hi, arena, byte start, byte end) of the bytes its
    tensors actually view now (read from the tensors, not from the planner's numbers)."""
    mods = net.listModules()
    out = []
    for b in state.plan.schedule.buffers:
        lo_b, hi_b, arena = None, None, None
        for _, path, _, _, _ in b.members:
            t = liveness.resolve(mods, path)
            if t is None or t._storage is None or t.nElement() == 0:
                continue
            item = t.dtype.itemsize
            a, e = t._offset * item, liveness._extent(t) * item
            if arena is None:
                arena = t._storage
            elif t._storage is not arena:
                raise AssertionError('%s: the tensors of one buffer lie in different storages' % b.label)
            lo_b = a if lo_b is None else min(lo_b, a)
            hi_b = e if hi_b is None else max(hi_b, e)
        if arena is not None:
            out.append((b.lo, b.hi, arena, lo_b, hi_b, b.label))
    return out


def overlaps(net):
    """Pairs (label, label) of buffers that are live in a common span and whose tensors
    share bytes in the arena, after the net ran (empty when the plan is sound)."""
    state = net.__dict__.get('_pynn_arena')
    if not isinstance(state, ArenaState):
        raise ValueError('overlaps: the network is not arena-optimized')
    slots = _slots(net, state)
    bad = []
    if not slots:
        return bad
    lo = np.array([s[0] for s in slots])
    hi = np.array([s[1] for s in slots])
    a = np.array([s[3] for s in slots])
    e = np.array([s[4] for s in slots])
    st = np.array([id(s[2]) for s in slots])
    for i in range(len(slots)):
        hit = (lo <= hi[i]) & (hi >= lo[i]) & (a < e[i]) & (e > a[i]) & (st == st[i])
        hit[:i + 1] = False
        for j in np.nonzero(hit)[0]:
            bad.append((slots[i][5], slots[j][5]))
    return bad


class _Poisoner:
    """A tracer that, at every event, fills every arena byte that no live buffer holds with
    NaN (float arenas) or -1 (integer arenas): a planner that let a buffer die too early makes
    the network read poison."""

    def __init__(self, slots, arenas):
        self.clock = 0
        self.slots = slots
        self.arenas = arenas
        self.starts = {}
        for s in slots:
            self.starts.setdefault(s[0], []).append(s)

    def _poison(self):
        t = self.clock
        for arena in self.arenas:
            data = arena.data
            if data is None:
                continue
            item = data.dtype.itemsize
            keep = np.zeros(data.shape[0] + 1, dtype=np.int32)
            for lo, hi, st, a, e, _ in self.slots:
                if st is arena and lo <= t <= hi:
                    keep[a // item] += 1
                    keep[-(-e // item)] -= 1
            free = np.cumsum(keep[:-1]) == 0
            data[free] = np.nan if data.dtype.kind == 'f' else -1

    def enter(self, m, name, args):
        self._poison()
        self.clock += 1

    def exit(self, m, name, args):
        self._poison()
        self.clock += 1


def _copy(t):
    if t.is_meta():
        return None
    a = t.numpy()
    return a.get() if hasattr(a, 'get') else a.copy()


def replay(net, input, gradOutput=None, poison=True):
    """Run an arena-optimized net's schedule again (forward, and backward with gradOutput in
    training; a copy of the output when None), after checking that no two buffers live in a
    common span share bytes; with poison, every arena byte not held by a live buffer is
    overwritten at every event. Returns (output, gradInput or None) as lists of ndarray copies
    (None on the meta device); a plan whose
    liveness is right gives the same values as without poison."""
    state = net.__dict__.get('_pynn_arena')
    if not isinstance(state, ArenaState):
        raise ValueError('replay: the network is not arena-optimized')
    net.forward(input)  # replans if needed, and settles every tensor view
    bad = overlaps(net)
    if bad:
        raise AssertionError('simultaneously live buffers overlap: %s' % bad[:5])
    slots = _slots(net, state)
    tracer = _Poisoner(slots, list(state.arenas.values())) if poison else None
    gin = None

    def run():
        out = net.forward(input)
        out = [_copy(t) for t in tensors_of(out)]
        if state.mode == 'training':
            g = gradOutput if gradOutput is not None else recursive_clone(net.output)
            return out, [_copy(t) for t in tensors_of(net.backward(input, g))]
        return out, None
    if tracer is None:
        out, gin = run()
    else:
        with tracing(tracer):
            out, gin = run()
        if tracer.clock != state.plan.schedule.spans:
            raise AssertionError('replay: %d events, the plan has %d' % (tracer.clock, state.plan.schedule.spans))
    return out, gin
