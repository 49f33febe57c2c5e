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
from .arena import ArenaState, ArenaStorage, Plan, meta_copy, _meta_from, _template, _memo_skip, _detach_planned
from .memory import storages_by_category, CATEGORIES
from .trace import forward_schedule, recursive_clone, tensors_of

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


def _prepare(copy_net, input, o):
    """Set in-place flags on a copy as optimizeMemory would (only where it is safe)."""
    if copy_net.__dict__.get('__memoryOptimized') or not o['inplace']:
        return
    _, steps = forward_schedule(copy_net, input)
    set_inplace(copy_net, True, steps, o['mode'], list(tensors_of(input)))


def schedule_of(net, input, o):
    """The Schedule of net on input's sizes with options o (the in-place flags optimizeMemory
    would set included), traced on a meta copy: the network is not run, changed or re-planned.
    Where a layer cannot run on the meta device, a real copy is traced instead."""
    pooled = liveness.pooled_fields(net, o['reuseBuffers'])
    try:
        clone = meta_copy(net, o['reuseBuffers'])
        _strip_recompute(clone)
        sample = _meta_from(_template(input))
        _prepare(clone, sample, o)
        _detach_planned(clone, pooled)
        return liveness.analyse(clone, sample, o['mode'], o['needs'], pooled=pooled)
    except Exception:
        memo = {}
        _memo_skip(net, memo)
        real = copy.deepcopy(net, memo)
        for m in real.listModules():
            m.__dict__.pop('_pynn_backward_disabled', None)
        _strip_recompute(real)
        sample = _rebuild(input, iter([t.clone() for t in tensors_of(input)]))
        _prepare(real, sample, o)
        _detach_planned(real, pooled)
        return liveness.analyse(real, sample, o['mode'], o['needs'], pooled=pooled)


def _strip_recompute(clone):
    """The schedule without recomputation (lowerBound's meaning), on a copy."""
    from .recompute import remove
    remove(clone)


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

    def __init__(self, plan, o, applied, recompute=None):
        s = plan.schedule
        self.mode, self.needs, self.applied = s.mode, s.rule, applied
        self.spans = s.spans
        self.rows = []
        for b in sorted(s.buffers, key=lambda b: (b.offset * b.itemsize, b.lo)):
            self.rows.append({'label': b.label, 'category': b.category, 'type': liveness.type_key(b.storage),
                              'bytes': b.nbytes, 'first': b.lo, 'last': b.hi,
                              'spans': [list(sp) for sp in b.spans],
                              'offset': b.offset * b.itemsize, 'tensors': len(b.members),
                              'value': 'recomputed' if getattr(b, 'recomputed', False) else 'kept'})
        # recomputation (recompute.py): segments, estimated extra FLOPs, the measured ratio
        # (recomputation time / forward time of the last step) once the net has run
        self.recompute = dict(recompute) if recompute else None
        self.types = sorted(plan.dtypes)
        self.lower_bounds = s.lower_bound(per_type=True)
        self.lower_bound = s.lower_bound()
        self.aligned_bound = plan.aligned_bound
        self.align = plan.align
        self.arena_bytes = plan.nbytes
        self.options = dict(o)

    @property
    def ratio(self):
        return self.arena_bytes / self.lower_bound if self.lower_bound else 1.0

    def as_dict(self):
        return {'mode': self.mode, 'needs': self.needs, 'applied': self.applied, 'spans': self.spans,
                'arena_bytes': self.arena_bytes, 'lower_bound': self.lower_bound, 'ratio': self.ratio,
                'aligned_lower_bound': self.aligned_bound, 'alignment': self.align, 'types': self.types,
                'lower_bounds_per_type': self.lower_bounds, 'buffers': self.rows,
                'recompute': self.recompute}

    def json(self, **kw):
        return json.dumps(self.as_dict(), **kw)

    to_json = json

    def __str__(self):
        lines = ['optnet arena plan (%s, needs=%s, %d spans%s): arena %.3f MiB, lower bound %.3f MiB, '
                 'ratio %.4f' % (self.mode, self.needs, self.spans, '' if self.applied else ', not applied',
                                 self.arena_bytes / MiB, self.lower_bound / MiB, self.ratio)]
        lines.append('  one arena of %d bytes for %s (lower bound %d; %d with %d-byte aligned sizes)'
                     % (self.arena_bytes, ', '.join(self.types), self.lower_bound, self.aligned_bound, self.align))
        rc = self.recompute
        if rc:
            nrec = sum(1 for r in self.rows if r['value'] == 'recomputed')
            lines.append('  recomputation: %d of %d segments recomputed (%s); %d values recomputed, %d kept; '
                         'extra compute %.4g FLOPs estimated = %.3f forward(s)%s; arena without it %d bytes'
                         % (sum(1 for sg in rc['segments'] if sg[2]), len(rc['segments']),
                            ' '.join('%d-%d%s' % (a + 1, b, '*' if r else '') for a, b, r in rc['segments']),
                            nrec, len(self.rows) - nrec, rc['extra_flops'], rc['extra_forwards'],
                            '' if rc.get('measured_ratio') is None else
                            ', measured %.3f of a forward\'s time' % rc['measured_ratio'],
                            rc['no_recompute_arena']))
        lines.append('  %-44s %-10s %-8s %12s %12s %7s %7s %-10s' % ('storage (first tenant)', 'category', 'type',
                                                                   'offset', 'bytes', 'first', 'last', 'value'))
        for r in self.rows:
            lines.append('  %-44s %-10s %-8s %12d %12d %7d %7d %-10s%s' % (
                r['label'][:44], r['category'], r['type'], r['offset'], r['bytes'], r['first'], r['last'],
                r['value'], '' if len(r['spans']) == 1 else '  (live in %d intervals)' % len(r['spans'])))
        return '\n'.join(lines)

    __repr__ = __str__


def planReport(net, input=None, opts=None, **kw):
    """The plan of an arena-optimized net (input may be None), or, for any other net, the plan
    the 'optimal' planner would make for input (made on a meta copy; nothing is applied).
    print() it, or take .json() / .as_dict()."""
    state = net.__dict__.get('_pynn_arena') if isinstance(net, Module) else None
    if isinstance(state, ArenaState) and state.plan is not None and input is None and not opts and not kw:
        return PlanReport(state.plan, {'mode': state.mode, 'needs': state.rule,
                                       'reuseBuffers': state.reuse_buffers}, True,
                          net.__dict__.get('_pynn_recompute_info'))
    if input is None:
        raise TypeError('planReport: the network is not arena-optimized: pass an input')
    _check(net, input, 'planReport')
    merged = dict(opts or {})
    merged.update(kw)
    budget, rec = merged.pop('budget', None), merged.pop('recompute', False)
    o = _lb_options(merged, {}, 'planReport')
    if budget is not None or rec:
        return _recompute_report(net, input, o, budget)
    return PlanReport(Plan(schedule_of(net, input, o)), o, False)


def _recompute_report(net, input, o, budget):
    """The plan optimizeMemory would make with recomputation (budget bytes, or the smallest
    with one extra forward when None), made on a copy: nothing is applied."""
    from . import recompute
    if o['mode'] != 'training':
        raise ValueError("planReport: 'budget'/'recompute' need mode='training'")
    clone = copy.deepcopy(net)
    _prepare(clone, input, o)
    c, p = recompute.choose(clone, input, dict(o, budget=budget))
    if c is None:
        return PlanReport(Plan(schedule_of(net, input, o)), o, False)
    sched = p._schedule(c.spec)
    info = {'segments': recompute.parse(c.spec), 'extra_flops': c.flops, 'forward_flops': p.forward_flops,
            'extra_forwards': c.flops / max(1, p.forward_flops), 'planned_arena': c.arena,
            'no_recompute_arena': p.base().arena, 'budget': budget}
    return PlanReport(Plan(sched), dict(o, budget=budget), False, info)


def arena_memory(net, input=None, mode=None):
    """countUsedMemory's categories for a net optimized with planner='optimal', plus 'arena'
    (bytes of the arena: all its typed views count once) and 'lower_bound' (of the plan).

    Storages outside the arena count as countUsedMemory counts them. The arena's bytes are
    split among the categories by what it holds at its peak: at the span where the plan's live
    buffers add up to the most bytes (the first such span), each category (outputs,
    gradInputs, buffers) gets the bytes of its live buffers there, and the arena's bytes not
    live at that span (alignment and fragmentation) are shared out in proportion to those
    (largest remainders, so that the arena's shares add up to `arena` exactly). So outputs +
    gradInputs + buffers + params == total_size, and each category compares with the default
    planner's figure for it. With an input and mode, an unoptimized net is first optimized
    (planner 'optimal') and run once (forward, and backward in training)."""
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
    shared = state.shared
    sizes = {}
    for cat, stores in storages_by_category(net).items():
        sizes[cat] = sum(st.size() * st.elementSize() for k, st in stores.items() if k not in arenas)
    total = state.raw_size if shared else sum(a.size() * a.elementSize() for a in state.arenas.values())
    for cat, share in arena_shares(state.plan.schedule, total).items():
        sizes[cat] += share
    sizes['total_size'] = sum(sizes[c] for c in CATEGORIES)
    sizes['arena'] = total
    sizes['lower_bound'] = state.plan.schedule.lower_bound()
    return sizes


def arena_shares(schedule, total):
    """{category: bytes}: the arena's `total` bytes split by what is live at its peak span
    (see arena_memory); the shares add up to `total`."""
    cats = ('outputs', 'gradInputs', 'buffers')
    ev = {}
    for b in schedule.buffers:
        for lo, hi in b.spans:
            ev.setdefault(lo, []).append((b, 1))
            ev.setdefault(hi + 1, []).append((b, -1))
    live = dict.fromkeys(cats, 0)
    best, cur = dict(live), 0
    peak = -1
    for t in sorted(ev):
        for b, sign in ev[t]:
            c = b.category if b.category in live else 'buffers'
            live[c] += sign * b.nbytes
            cur += sign * b.nbytes
        if cur > peak:
            peak, best = cur, dict(live)
    used = sum(best.values())
    if used <= 0:
        return {'outputs': total, 'gradInputs': 0, 'buffers': 0}
    free = max(0, total - used)
    shares = {c: best[c] + free * best[c] // used for c in cats}
    rest = total - sum(shares.values())
    for c in sorted(cats, key=lambda c: -((free * best[c]) % used))[:max(0, rest)]:
        shares[c] += 1
    return shares


# --- checks --------------------------------------------------------------------------------------
def _slots(net, state):
    """Per buffer of the applied plan: (lo, hi, arena storage, byte start, byte end, label) of
    the bytes its tensors view now (read from the tensors, not from the planner's numbers).
    All typed arenas view one raw buffer, so byte positions are comparable across types."""
    mods = net.listModules()
    out = []
    for b in state.plan.schedule.buffers:
        lo_b = hi_b = arena = None
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
            out.append((b.lo, b.hi, arena, lo_b, hi_b, b.label, b.spans))
    return out


def _meet(p, q):
    """Whether two lists of [lo, hi] intervals share a span."""
    return any(a <= d and c <= b for a, b in p for c, d in q)


def overlaps(net):
    """Pairs (label, label) of buffers live in a common span whose tensors share bytes of the
    arena, read from the network's tensors as they are now (empty when the plan is sound)."""
    state = net.__dict__.get('_pynn_arena')
    if not isinstance(state, ArenaState):
        raise ValueError('overlaps: the network is not arena-optimized')
    slots = _slots(net, state)
    shared = state.shared
    bad = []
    if not slots:
        return bad
    lo = np.array([s[0] for s in slots])
    hi = np.array([s[1] for s in slots])
    a = np.array([s[3] for s in slots])
    e = np.array([s[4] for s in slots])
    mem = np.array([0 if shared and isinstance(s[2], ArenaStorage) else id(s[2]) for s in slots])
    for i in range(len(slots)):
        hit = (lo <= hi[i]) & (hi >= lo[i]) & (a < e[i]) & (e > a[i]) & (mem == mem[i])
        hit[:i + 1] = False
        for j in np.nonzero(hit)[0]:
            if _meet(slots[i][6], slots[j][6]):
                bad.append((slots[i][5], slots[j][5]))
    return bad


class _Poisoner:
    """A tracer that overwrites a buffer's bytes with 0xFF (NaN for floats, -1 for integers)
    at the event that starts each of its live intervals (before it is written) and at the
    event that follows each (after its last read): a liveness that starts a buffer too late
    or ends it too early makes the network compute with poison."""

    def __init__(self, slots, raw):
        self.clock = 0
        self.raw = raw
        self.at = {}
        for slot in slots:
            a, e = slot[3], slot[4]
            for lo, hi in slot[6]:
                self.at.setdefault(lo, []).append((a, e))
                self.at.setdefault(hi + 1, []).append((a, e))

    def _poison(self):
        for a, e in self.at.get(self.clock, ()):
            self.raw[a:e] = 0xFF

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
    training, a copy of the output when None) after checking that no two buffers live in a
    common span share bytes (overlaps); with poison, each buffer's bytes are overwritten just
    before its first span and just after its last. Returns (output, gradInput or None) as
    lists of ndarray copies (None on the meta device): with a sound liveness they equal the
    unpoisoned results bit for bit."""
    state = net.__dict__.get('_pynn_arena')
    if not isinstance(state, ArenaState):
        raise ValueError('replay: the network is not arena-optimized')
    net.forward(input)  # replans if needed, and settles every tensor view
    bad = overlaps(net)
    if bad:
        raise AssertionError('simultaneously live buffers overlap: %s' % bad[:5])
    tracer = None
    if poison and state.raw is not None:
        tracer = _Poisoner(_slots(net, state), state.raw)

    def run():
        out = [_copy(t) for t in tensors_of(net.forward(input))]
        if state.mode == 'training':
            g = gradOutput if gradOutput is not None else recursive_clone(net.output)
            return out, [_copy(t) for t in tensors_of(net.backward(input, g))]
        return out, None
    if tracer is None:
        return run()
    with tracing(tracer):
        res = run()
    if tracer.clock != state.plan.schedule.spans:
        raise AssertionError('replay: %d events, the plan has %d' % (tracer.clock, state.plan.schedule.spans))
    return res
