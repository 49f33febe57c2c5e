"""Training memory below the liveness bound: recomputation under a memory budget.

    optimizeMemory(net, input, {'mode': 'training', 'planner': 'optimal', 'budget': BYTES})
    optimizeMemory(net, input, {'mode': 'training', 'planner': 'optimal', 'recompute': True})

Segment checkpointing (Chen et al. 2016) over the root nn.Sequential, its nested Sequentials
flattened into one chain of *units* (a leaf, or any other container: Concat, ConcatTable,
ParallelTable... run as a whole). The chain is cut into segments; a recomputed segment keeps
only its input (the checkpoint) across the forward/backward boundary: its values die after
their last forward use, and its forward runs again from the checkpoint right before its
backward. The liveness analysis (liveness.py) sees the recomputation in the traced run (the
runtime opens a *window* on the tracer) and gives each dropped storage two live intervals,
so the arena (arena.py) places the recomputed values in bytes that are free at that moment.

Planning (Planner): segments balanced by the bytes each unit leaves alive for the backward
(from the exact liveness of the run without recomputation), for several segment counts around
sqrt(units); for each count, the segments are recomputed in decreasing order of those bytes per
FLOP, and a binary search finds the shortest prefix whose arena (traced and placed for real on
a meta copy: exact byte counts, not an estimate) fits the budget; the plan with the fewest
recomputed FLOPs wins. 'recompute': True takes the smallest arena with every segment but the
last recomputed once (at most one extra forward). A budget below every plan raises
BudgetError (a ValueError) naming the smallest reachable arena; the net is left as it was.
The budget bounds the arena (outputs, gradInputs, pooled buffers: what the planner places);
parameters and private buffers come on top. Not done: Chen's DP over every checkpoint set,
recomputing inside nested containers (they are units), roots other than nn.Sequential (they
get the plan without recomputation; a budget below it raises).

Exactness: the recomputation runs the same code on the same input, so gradients are bit for
bit those of the unoptimized net; the random generator's state is saved at the start of each
recomputed segment's forward and restored for its recomputation (dropout draws the same
noise), then put back; every `running_*` tensor (batch normalization's running statistics)
of the segment is saved before the recomputation and copied back after it (updated once per
step, as without recomputation); a segment never starts at a unit that writes its own input
(in-place modules, views of the checkpoint written in place): the checkpoint stays intact.

The runtime is RecomputeSequential (typename nn.Sequential: printing, saving and the analysis
see a Sequential), put in place of the root's class; the segments are a string field
`_pynn_recompute` ('a:b:r' per segment, units a..b-1, r recomputed or k kept), so copies
(the arena's meta copy for replanning) keep them. removeOptimization puts the class back.
"""
import time

import numpy as np

from ..tensor import Tensor
from .. import rng as _rng
from ..nn.container import Sequential
from ..nn.module import current_tracer
from .trace import tensors_of

FIELD = '_pynn_recompute'
INFO = '_pynn_recompute_info'
MiB = 1048576.0


# --- the chain ------------------------------------------------------------------------------------
def units_of(net):
    """(units, seqs): the chain of units of a Sequential root with nested Sequentials
    flattened, and those nested Sequentials (deepest last)."""
    units, seqs = [], []

    def walk(s):
        for m in s.modules:
            if type(m) is Sequential and m.__typename__ == 'nn.Sequential':
                seqs.append(m)
                walk(m)
            else:
                units.append(m)
    walk(net)
    return units, seqs


def parse(spec):
    out = []
    for part in (spec or '').split():
        a, b, f = part.split(':')
        out.append((int(a), int(b), f == 'r'))
    return out


def spec_of(bounds, rec):
    """bounds: segment starts (0 first); rec: set of recomputed segment numbers."""
    n = bounds[-1]
    return ' '.join('%d:%d:%s' % (a, b, 'r' if i in rec else 'k')
                    for i, (a, b) in enumerate(zip(bounds[:-1], bounds[1:]))) if n else ''


class RecomputeSequential(Sequential):
    """nn.Sequential that recomputes the segments `_pynn_recompute` names during backward."""
    __typename__ = 'nn.Sequential'

    def _segments(self, n):
        segs = parse(self.__dict__.get(FIELD))
        if not segs or segs[-1][1] != n:
            return [(0, n, False)]
        return segs

    def updateOutput(self, input):
        units, seqs = units_of(self)
        rng = {}
        self.__dict__['_pynn_rng'] = rng
        t0 = time.perf_counter()
        cur = input
        for a, b, rec in self._segments(len(units)):
            if rec:
                rng[a] = _rng.streams_state()   # Torch's stream (Dropout) and NumPy's
            for i in range(a, b):
                cur = _call(self, units, i, 'updateOutput', cur)
        for s in reversed(seqs):
            s.output = s.modules[-1].output
        self.output = cur
        self.__dict__['_pynn_fwd_s'] = time.perf_counter() - t0
        return cur

    def _recompute(self, units, a, b, input):
        rng = self.__dict__.get('_pynn_rng') or {}
        x = units[a - 1].output if a > 0 else input
        tr = current_tracer()
        w = tr.begin_recompute(x) if hasattr(tr, 'begin_recompute') else None
        now = _rng.streams_state()
        if a in rng:
            _rng.set_streams_state(rng[a])
        saved = []
        for u in units[a:b]:
            for m in u.listModules():
                for k, v in m.__dict__.items():
                    if k.startswith('running_') and isinstance(v, Tensor) and v._storage is not None \
                            and not v.is_meta():
                        saved.append((v, v.numpy().copy()))
        try:
            for i in range(a, b):
                x = _call(self, units, i, 'updateOutput', x)
        finally:
            for v, arr in saved:
                v.numpy()[...] = arr
            _rng.set_streams_state(now)
            if w is not None:
                tr.end_recompute(w)

    def backward(self, input, gradOutput, scale=1):
        units, seqs = units_of(self)
        segs = self._segments(len(units))
        t_rec = 0.0
        cur = gradOutput
        for si in range(len(segs) - 1, -1, -1):
            a, b, rec = segs[si]
            if rec:
                t0 = time.perf_counter()
                self._recompute(units, a, b, input)
                t_rec += time.perf_counter() - t0
            for i in range(b - 1, a - 1, -1):
                x = units[i - 1].output if i > 0 else input
                cur = _call(self, units, i, 'backward', x, cur, scale)
                units[i].gradInput = cur
        for s in reversed(seqs):
            s.gradInput = s.modules[0].gradInput
        self.gradInput = cur
        self.__dict__['_pynn_rec_s'] = t_rec
        info = self.__dict__.get(INFO)
        if isinstance(info, dict) and self.__dict__.get('_pynn_fwd_s'):
            info['measured_ratio'] = t_rec / self.__dict__['_pynn_fwd_s']
        return cur

    def updateGradInput(self, input, gradOutput):
        if any(r for _, _, r in self._segments(len(units_of(self)[0]))):
            raise RuntimeError('nn.Sequential optimized with recomputation (optnet budget/recompute): '
                               'call backward(input, gradOutput), which recomputes each segment once; '
                               'separate updateGradInput/accGradParameters calls are not planned')
        return Sequential.updateGradInput(self, input, gradOutput)

    def accGradParameters(self, input, gradOutput, scale=1):
        if any(r for _, _, r in self._segments(len(units_of(self)[0]))):
            raise RuntimeError('nn.Sequential optimized with recomputation (optnet budget/recompute): '
                               'call backward(input, gradOutput) instead of accGradParameters')
        return Sequential.accGradParameters(self, input, gradOutput, scale)


def _call(root, units, i, method, *args):
    try:
        return getattr(units[i], method)(*args)
    except Exception as e:
        from ..nn.module import rethrow
        rethrow(e, 'In unit %d (%s) of the recomputed nn.Sequential:' % (i + 1, units[i].__typename__))


def install(net, spec, info=None):
    net.__class__ = RecomputeSequential
    net.__dict__[FIELD] = spec
    if info is not None:
        net.__dict__[INFO] = info


def remove(net):
    """Back to a plain nn.Sequential (removeOptimization)."""
    if isinstance(net, RecomputeSequential):
        net.__class__ = Sequential
    for k in (FIELD, INFO, '_pynn_rng', '_pynn_fwd_s', '_pynn_rec_s'):
        net.__dict__.pop(k, None)


# Modules whose output, when it shares its input's storage, is a view of it (never written):
# they do not overwrite a checkpoint. Containers that only pass their children's tensors too.
ALIASING = frozenset(('nn.Identity', 'nn.View', 'nn.Reshape', 'nn.Narrow', 'nn.Select', 'nn.Transpose',
                      'nn.Squeeze', 'nn.Unsqueeze', 'nn.Contiguous', 'nn.SelectTable', 'nn.NarrowTable',
                      'nn.FlattenTable', 'nn.Sequential', 'nn.ConcatTable', 'nn.ParallelTable'))


# --- cost model -----------------------------------------------------------------------------------
def flops(unit):
    """Estimated FLOPs of a unit's forward (its outputs' sizes, from the last run): a layer with
    a weight (nOut x ...): 2 x output elements x weight elements / nOut; any other leaf: its
    output elements."""
    total = 0
    for m in unit.listModules():
        if m.__dict__.get('modules') is not None:
            continue
        outs = [t for t in tensors_of(m.__dict__.get('output')) if isinstance(t, Tensor)]
        n = sum(t.nElement() for t in outs)
        w = m.__dict__.get('weight')
        if isinstance(w, Tensor) and w.nElement() and w.dim() >= 2:
            total += 2 * n * (w.nElement() // w.size(1))
        else:
            total += n
    return total


# --- planning -------------------------------------------------------------------------------------
class Candidate:
    __slots__ = ('spec', 'arena', 'lower_bound', 'flops', 'segments', 'recomputed')

    def __init__(self, spec, arena, lb, fl, nseg, nrec):
        self.spec, self.arena, self.lower_bound, self.flops = spec, arena, lb, fl
        self.segments, self.recomputed = nseg, nrec

    def __repr__(self):
        return 'Candidate(%s segs, %d recomputed, arena %.2f MiB, +%.3g FLOPs)' % (
            self.segments, self.recomputed, self.arena / MiB, self.flops)


class Planner:
    """Plans on a meta copy of the network (or a real copy where a layer cannot run on meta):
    each candidate segmentation is traced and placed for real (liveness.analyse + arena.Plan)."""

    def __init__(self, net, input, o):
        from . import arena, liveness, report
        self.o = o
        self.reuse = bool(o.get('reuseBuffers', True))
        self.pooled = liveness.pooled_fields(net, self.reuse)
        self.cache = {}
        template = arena._template(input)
        try:
            self.clone = arena.meta_copy(net, self.reuse)
            self.sample = lambda: arena._meta_from(template)
            self.clone.__class__ = RecomputeSequential
            self._eval('')
        except Exception:
            import copy
            memo = {}
            arena._memo_skip(net, memo)
            self.clone = copy.deepcopy(net, memo)
            for m in self.clone.listModules():
                m.__dict__.pop('_pynn_backward_disabled', None)
            data = [t.clone() for t in tensors_of(input)]
            # a fresh input each run: a module may hold the input itself as its output
            self.sample = lambda: report._rebuild(input, iter([t.clone() for t in data]))
            self.clone.__class__ = RecomputeSequential
            self.cache.clear()
            self._eval('')

    def _schedule(self, spec):
        from . import arena, liveness
        self.clone.__dict__[FIELD] = spec
        arena._detach_planned(self.clone, self.pooled)
        self.last_input = self.sample()
        return liveness.analyse(self.clone, self.last_input, 'training', 'layer', pooled=self.pooled)

    def _eval(self, spec):
        c = self.cache.get(spec)
        if c is not None:
            return c
        from . import arena, liveness
        sched = self._schedule(spec)
        if spec == '':
            self.units, _ = units_of(self.clone)
            self.n = len(self.units)
            self.unit_flops = [flops(u) for u in self.units]
            self.forward_flops = sum(self.unit_flops)
            self._analyse_base(sched)
        with liveness.no_gc():
            plan = arena.Plan(sched)
        segs = parse(spec)
        fl = sum(sum(self.unit_flops[a:b]) for a, b, r in segs if r)
        c = Candidate(spec, plan.nbytes, sched.lower_bound(), fl, len(segs),
                      sum(1 for s in segs if s[2]))
        self.cache[spec] = c
        return c

    def _analyse_base(self, sched):
        """Allowed boundaries and, per unit, the bytes it leaves alive for the backward."""
        units = self.units
        root_call = next((c for c in sched.calls if c.m is self.clone and c.name == 'updateOutput'), None)
        fwd = {}
        bwd_start = None
        for c in sched.calls:
            if c.parent is root_call and c.name == 'updateOutput':
                fwd[id(c.m)] = (c.E, c.X)
            if c.m is self.clone and c.name == 'backward':
                bwd_start = c.E
        self.keep_bytes = [0] * self.n
        spans = [fwd.get(id(u), (0, -1)) for u in units]
        starts = np.array([s[0] for s in spans])
        for b in sched.buffers:
            if bwd_start is not None and b.hi > bwd_start and b.lo < bwd_start:
                j = int(np.searchsorted(starts, b.lo, side='right')) - 1
                if 0 <= j < self.n and b.lo <= spans[j][1]:
                    self.keep_bytes[j] += b.nbytes
        # a segment may start at unit i only if no module from unit i on writes unit i-1's output
        later = set()
        self.allowed = [False] * self.n
        for i in range(self.n - 1, 0, -1):
            for m in units[i].listModules():
                if m.__typename__ in ALIASING:
                    continue
                later.update(id(t._storage) for t in tensors_of(m.__dict__.get('output'))
                             if t._storage is not None)
            ck = [id(t._storage) for t in tensors_of(units[i - 1].output) if t._storage is not None]
            self.allowed[i] = bool(ck) and not any(k in later for k in ck)
        # the first segment's checkpoint is the network's input: not if a module writes it
        if self.n:
            for m in units[0].listModules():
                if m.__typename__ not in ALIASING:
                    later.update(id(t._storage) for t in tensors_of(m.__dict__.get('output'))
                                 if t._storage is not None)
        self.first_ok = not any(id(t._storage) in later for t in tensors_of(self.last_input)
                                if t._storage is not None)

    def bounds(self, k):
        """Starts of k segments (fewer when boundaries are scarce), balanced by kept bytes."""
        cum = np.cumsum([0] + self.keep_bytes)
        total = cum[-1] or 1
        ok = [i for i in range(1, self.n) if self.allowed[i]]
        if not ok or k <= 1:
            return [0, self.n]
        chosen = []
        for j in range(1, k):
            target = total * j / k
            i = min(ok, key=lambda i: abs(cum[i] - target))
            if i not in chosen:
                chosen.append(i)
        return [0] + sorted(chosen) + [self.n]

    def recomputable(self, bounds):
        """Segment numbers that may be recomputed: not the last (its values are live when the
        backward starts), not the first when a module writes the network's input in place."""
        return [s for s in range(len(bounds) - 2) if s or self.first_ok]

    def order(self, bounds):
        """Recomputable segments by decreasing kept bytes per FLOP."""
        segs = self.recomputable(bounds)
        def ratio(s):
            a, b = bounds[s], bounds[s + 1]
            kb = sum(self.keep_bytes[a:b])
            return kb / max(1, sum(self.unit_flops[a:b]))
        return sorted(segs, key=ratio, reverse=True)

    def ks(self):
        nb = sum(self.allowed) + 1
        if nb <= 1:
            return []
        r = int(round(np.sqrt(self.n)))
        cand = set([2, 3, 4, 6, 8, 12, 16, 24, 32, r // 2, r, r + 1, 2 * r, 3 * r])
        return sorted(k for k in cand if 2 <= k <= nb)

    def base(self):
        return self._eval('')

    def full(self, k):
        bd = self.bounds(k)
        return self._eval(spec_of(bd, set(self.recomputable(bd))))

    def smallest(self):
        """The smallest arena with every segment (but the last) recomputed once."""
        best = self.base()
        for k in self.ks():
            c = self.full(k)
            if (c.arena, c.flops) < (best.arena, best.flops):
                best = c
        return best

    def for_budget(self, budget):
        """The fitting candidate with the fewest recomputed FLOPs (then the smallest), or None."""
        b0 = self.base()
        if b0.arena <= budget:
            return b0
        best = None
        for k in self.ks():
            bd = self.bounds(k)
            order = self.order(bd)
            specs = [spec_of(bd, set(order[:m])) for m in range(len(order) + 1)]
            if self._eval(specs[-1]).arena > budget:
                continue
            lo, hi = 1, len(order)   # smallest prefix that fits (binary search)
            while lo < hi:
                mid = (lo + hi) // 2
                if self._eval(specs[mid]).arena <= budget:
                    hi = mid
                else:
                    lo = mid + 1
            c = self._eval(specs[lo])
            if best is None or (c.flops, c.arena) < (best.flops, best.arena):
                best = c
        return best

    def frontier(self):
        """Every prefix of every segment count: (arena, flops) candidates, Pareto-filtered."""
        allc = [self.base()]
        for k in self.ks():
            bd = self.bounds(k)
            order = self.order(bd)
            for m in range(1, len(order) + 1):
                allc.append(self._eval(spec_of(bd, set(order[:m]))))
        allc.sort(key=lambda c: (c.flops, c.arena))
        out, best = [], None
        for c in allc:
            if best is None or c.arena < best:
                out.append(c)
                best = c.arena
        return out


class BudgetError(ValueError):
    pass


def choose(net, input, o):
    """The Candidate for options o ('budget' bytes and/or 'recompute'), on a copy of net."""
    budget = o.get('budget')
    if not isinstance(net, Sequential) or type(net) not in (Sequential, RecomputeSequential):
        p = None
    else:
        p = Planner(net, input, o)
    if p is None or not p.ks():
        # nothing to recompute: the plain plan, if it fits
        from . import report
        lb = report.lowerBound(net, input, {'mode': 'training', 'reuseBuffers': o.get('reuseBuffers', True)})
        if budget is not None and budget < lb:
            raise BudgetError('optimizeMemory: budget %d bytes (%.2f MiB) is below what is reachable: '
                              'this network (root %s) has no nn.Sequential chain to recompute; the '
                              'smallest reachable arena is %d bytes (%.2f MiB)'
                              % (budget, budget / MiB, net.__typename__, lb, lb / MiB))
        return None, None
    if budget is None:
        return p.smallest(), p
    c = p.for_budget(budget)
    if c is None:
        s = p.smallest()
        raise BudgetError('optimizeMemory: budget %d bytes (%.2f MiB) is below what is reachable: the '
                          'smallest reachable arena (every segment recomputed once, %d segments) is '
                          '%d bytes (%.2f MiB); without recomputation %d bytes (%.2f MiB)'
                          % (budget, budget / MiB, s.segments, s.arena, s.arena / MiB,
                             p.base().arena, p.base().arena / MiB))
    return c, p


def optimize(net, input, mode, o):
    """optimizeMemory's step for budget/recompute (the net has run; in-place flags are set)."""
    from . import arena  # noqa: F401
    if mode != 'training':
        raise ValueError("optimizeMemory: 'budget' and 'recompute' need mode='training'")
    c, p = choose(net, input, o)
    try:
        return _apply(net, input, mode, o, c, p)
    except BaseException:
        remove(net)
        raise


def _apply(net, input, mode, o, c, p):
    from . import arena  # noqa: F401
    if c is not None and c.recomputed:
        info = {'segments': parse(c.spec), 'extra_flops': c.flops, 'forward_flops': p.forward_flops,
                'extra_forwards': c.flops / max(1, p.forward_flops), 'planned_arena': c.arena,
                'no_recompute_arena': p.base().arena, 'budget': o.get('budget'),
                'units': [u.__typename__ for u in p.units]}
        install(net, c.spec, info)
    plan = arena.optimize(net, input, mode, o)
    if c is not None and c.recomputed and o.get('budget') is not None and plan.nbytes > o['budget']:
        # (the meta copy's plan equals the real one; a mismatch would be a bug)
        raise BudgetError('optimizeMemory: the applied plan (%d bytes) exceeds the budget %d'
                          % (plan.nbytes, o['budget']))
    return plan
