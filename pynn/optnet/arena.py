"""The 'optimal' planner: every output, gradInput and pooled buffer at an offset inside one
arena storage per tensor type, placed by exact liveness (liveness.py).

    optimizeMemory(net, input, {'planner': 'optimal', ...}) -> optimize(net, input, mode, opts)

Placement is offline, as TFLite's arena planner (Pisarchyk & Lee 2020, "greedy by size"):
buffers in decreasing size, each into the smallest gap, among the buffers already placed
whose lifetimes intersect its own, that holds it (else above them all). A second order
(by lifetime start, then size) is tried too and the smaller arena kept. Offsets are aligned
to 64 bytes.

A plan holds for the input sizes it was made at. The network's root module gets a
pre-forward hook (pynn.nn.module.register_pre_forward) that compares the input's sizes with
the plan's on every forward: when they differ, the plan for the new sizes is taken from a
cache or made by tracing a *meta* copy of the network (sizes only, no arithmetic, no change
to the real network's state, no random numbers drawn) and applied before the forward runs.
Arena storages refuse to grow: a tensor resized beyond the arena raises instead of silently
overlapping its neighbours, and the first forward after each (re)plan checks that every
planned tensor still lies inside its slot.
"""
import copy
import heapq
import warnings

import numpy as np

from .. import backend
from ..storage import Storage
from ..tensor import Tensor, generator
from . import liveness
from .liveness import type_key, resolve
from .trace import tensors_of

ALIGN_BYTES = 64


class ArenaStorage(Storage):
    """A Storage that never grows: growing it would move every tensor placed past the
    growing one onto its neighbours' bytes. Planned tensors never need it to."""
    __slots__ = ()

    def resize(self, n):
        if int(n) > self._size:
            raise RuntimeError(
                'optnet arena: a tensor planned inside the arena (%d elements) needs %d: its size '
                'changed without a replan. The plan is redone when the input sizes change; a layer '
                'whose sizes change otherwise cannot be arena-planned (use planner="optnet")'
                % (self._size, int(n)))
        return self


# --- placement ---------------------------------------------------------------------------------
def _align(n, a):
    return -(-n // a) * a


def peak(sizes, lo, hi):
    """The largest total size of buffers live in one span (the liveness lower bound)."""
    ev = {}
    for s, a, b in zip(sizes, lo, hi):
        ev[a] = ev.get(a, 0) + s
        ev[b + 1] = ev.get(b + 1, 0) - s
    cur = top = 0
    for t in sorted(ev):
        cur += ev[t]
        top = max(top, cur)
    return top


def greedy(sizes, lo, hi, order):
    """TFLite's greedy by size: visit buffers in `order`; each goes into the smallest gap,
    among the placed buffers whose spans intersect its own, that holds it, else on top of
    them. Returns (offsets, arena size)."""
    n = len(sizes)
    offs = np.zeros(n, dtype=np.int64)
    p_lo = np.empty(n, dtype=np.int64)
    p_hi = np.empty(n, dtype=np.int64)
    p_off = np.empty(n, dtype=np.int64)
    p_end = np.empty(n, dtype=np.int64)
    big = np.iinfo(np.int64).max
    k = top = 0
    for i in order:
        s, a, b = sizes[i], lo[i], hi[i]
        off = 0
        if k:
            hit = np.nonzero((p_lo[:k] <= b) & (p_hi[:k] >= a))[0]
            if hit.size:
                o = p_off[hit]
                e = p_end[hit]
                srt = np.argsort(o, kind='stable')
                o, e = o[srt], e[srt]
                reach = np.maximum.accumulate(e)
                starts = np.empty_like(o)
                starts[0] = 0
                starts[1:] = reach[:-1]
                gaps = o - starts
                ok = gaps >= s
                if ok.any():
                    off = int(starts[int(np.argmin(np.where(ok, gaps, big)))])
                else:
                    off = int(reach[-1])
        offs[i] = off
        p_lo[k], p_hi[k], p_off[k], p_end[k] = a, b, off, off + s
        k += 1
        top = max(top, off + s)
    return offs, top


def skyline(sizes, lo, hi, spans, prio):
    """Bottom-up best fit (Burke et al.'s strip packing, as Sekiyama et al. 2018 apply it to
    DNN memory): take the lowest (then leftmost) stretch of time of the skyline of placed
    buffers, put there the unplaced buffer of highest `prio` whose lifetime lies within the
    stretch; when none does, raise the stretch to its lower neighbour. (offsets, arena size)."""
    n = len(sizes)
    S = np.asarray(sizes, dtype=np.int64)
    L = np.asarray(lo, dtype=np.int64)
    H = np.asarray(hi, dtype=np.int64)
    P = np.asarray(prio, dtype=np.float64)
    off = np.zeros(n, dtype=np.int64)
    idx = np.arange(n)
    end, height, prev, nxt = {0: spans - 1}, {0: 0}, {0: None}, {0: None}
    heap = [(0, 0)]

    def merge(a):  # merge stretch a with neighbours of its height; its (new) start
        p = prev[a]
        if p is not None and height[p] == height[a]:
            end[p] = end[a]
            nx = nxt[p] = nxt[a]
            if nx is not None:
                prev[nx] = p
            del end[a], height[a], prev[a], nxt[a]
            a = p
        nx = nxt[a]
        if nx is not None and height[nx] == height[a]:
            end[a] = end[nx]
            nn = nxt[a] = nxt[nx]
            if nn is not None:
                prev[nn] = a
            del end[nx], height[nx], prev[nx], nxt[nx]
        return a

    left = n
    while left:
        h, a = heapq.heappop(heap)
        if height.get(a) != h:
            continue  # stale entry
        b = end[a]
        sel = idx[(L[idx] >= a) & (H[idx] <= b)]
        if sel.size:
            i = int(sel[np.argmax(P[sel])])
            off[i] = h
            idx = idx[idx != i]
            left -= 1
            li, hi_ = int(L[i]), int(H[i])
            p, nx = prev[a], nxt[a]
            parts = []
            if li > a:
                parts.append((a, li - 1, h))
            parts.append((li, hi_, h + int(S[i])))
            if hi_ < b:
                parts.append((hi_ + 1, b, h))
            del end[a], height[a], prev[a], nxt[a]
            last = p
            for s0, e0, h0 in parts:
                end[s0], height[s0], prev[s0], nxt[s0] = e0, h0, last, None
                if last is not None:
                    nxt[last] = s0
                last = s0
            nxt[last] = nx
            if nx is not None:
                prev[nx] = last
            merge(li)
            for s0, _, _ in parts:
                if s0 in height:
                    heapq.heappush(heap, (height[s0], s0))
        else:
            height[a] = min(height[q] for q in (prev[a], nxt[a]) if q is not None)
            a = merge(a)
            heapq.heappush(heap, (height[a], a))
    return off, (int((off + S).max()) if n else 0)


def place_all(sizes, lo, hi, spans):
    """Offsets (same unit as sizes) for buffers with sizes and live spans [lo, hi]: the
    smallest arena among greedy by size (three orders) and skyline best fit (three
    priorities), stopping early at the lower bound. Returns (offsets, arena size, bound)."""
    n = len(sizes)
    if not n:
        return np.zeros(0, dtype=np.int64), 0, 0
    bound = peak(sizes, lo, hi)
    S = np.asarray(sizes, dtype=np.float64)
    life = np.asarray(hi, dtype=np.float64) - np.asarray(lo, dtype=np.float64) + 1
    idx = range(n)
    tries = (
        lambda: greedy(sizes, lo, hi, sorted(idx, key=lambda i: (-sizes[i], lo[i], i))),
        lambda: skyline(sizes, lo, hi, spans, life * (S.max() + 1) + S),
        lambda: skyline(sizes, lo, hi, spans, S * life),
        lambda: skyline(sizes, lo, hi, spans, S * (life.max() + 1) + life),
        lambda: greedy(sizes, lo, hi, sorted(idx, key=lambda i: (-sizes[i], lo[i] - hi[i], i))),
        lambda: greedy(sizes, lo, hi, sorted(idx, key=lambda i: (lo[i], -sizes[i], i))),
    )
    best = None
    for make in tries:
        offs, top = make()
        if best is None or top < best[1]:
            best = (offs, top)
        if top <= bound:
            break
    return best[0], best[1], bound


class Plan:
    """Placed buffers, as plain data (paths, no tensors). All types share one arena of
    `nbytes` bytes (typed views of one raw buffer); `dtypes` maps a type key to its dtype;
    `entries` lists (path, type key, 0-based element offset in the typed view, size, stride)
    for every planned tensor; `slots` maps a path to (type key, slot start, slot end) in
    elements; `schedule` is the (frozen) liveness it was made from."""

    def __init__(self, schedule):
        self.schedule = schedule
        bs = schedule.buffers
        sizes = [_align(b.nbytes, ALIGN_BYTES) for b in bs]
        offs, top, self.aligned_bound = place_all(sizes, [b.lo for b in bs], [b.hi for b in bs],
                                                  schedule.spans)
        self.nbytes = int(top)
        self.dtypes = {}
        self.entries = []
        self.slots = {}
        for b, o in zip(bs, offs):
            item = b.itemsize
            key = type_key(b.storage)
            self.dtypes[key] = np.dtype(b.storage.dtype)
            b.offset = int(o) // item
            for t, path, off, size, stride in b.members:
                self.entries.append((path, key, b.offset + off, size, stride))
                self.slots[path] = (key, b.offset, b.offset + b.size)
        _freeze(schedule)

    def signature(self):
        """What a plan is, independent of the network object it was made on."""
        return self.nbytes, sorted(self.entries)


class _StorageInfo:
    """Type and size of a traced storage, without holding it."""
    __slots__ = ('dtype', 'device', '_size')

    def __init__(self, st):
        self.dtype, self.device, self._size = st.dtype, st.device, st.size()

    def size(self):
        return self._size


def _freeze(schedule):
    """Drop the schedule's references to tensors, storages and modules (keep sizes and paths)."""
    for b in schedule.buffers:
        if not isinstance(b.storage, _StorageInfo):
            b.storage = _StorageInfo(b.storage)
        b.members = [(None,) + m[1:] for m in b.members]
    schedule.calls = None


# --- state, apply ---------------------------------------------------------------------------------
class ArenaState:
    """Kept on the root module as `_pynn_arena` (a plain object: Module.type leaves it alone).
    Module's updateOutput wrapper calls its pre_forward(module, input) before every forward."""

    def __init__(self, mode, reuse_buffers, rule='layer'):
        self.mode, self.reuse_buffers, self.rule = mode, reuse_buffers, rule
        self.sig = None          # input signature the applied plan was made for
        self.template = None     # that input's structure: nested lists of (kind, sizes)
        self.plan = None
        self.plans = {}          # input signature -> Plan (the last few)
        self.raw = None          # the arena's bytes (an ndarray; None on meta)
        self.raw_size = 0
        self.device = None
        self.arenas = {}         # type key -> ArenaStorage viewing raw
        self.verified = False
        self.busy = False
        self.meta = None         # meta copy of the network, made on the first replan
        self.meta_ok = None      # None: not checked yet; False: replan on a real copy
        self.replans = 0

    def pre_forward(self, net, input):
        if not self.busy:
            _pre_forward(net, self, input)

    def __deepcopy__(self, memo):
        # a copy of the network keeps the plan: its tensors and arenas are copied alike
        new = ArenaState(self.mode, self.reuse_buffers, self.rule)
        new.sig, new.template, new.plan = self.sig, self.template, self.plan
        new.plans = dict(self.plans)
        # the copied tensors hold copies of the typed views (one copy per type: they no
        # longer share bytes, which is still sound); the next replan makes one raw arena again
        new.arenas = copy.deepcopy(self.arenas, memo)
        new.raw, new.raw_size, new.device = None, self.raw_size, self.device
        new.verified, new.meta_ok = self.verified, self.meta_ok
        return new

    def __getstate__(self):  # pickling: the plan and arenas, not the meta copy
        d = dict(self.__dict__)
        d['meta'] = None
        d['busy'] = False
        return d


def input_signature(input):
    return tuple((t._kind, t._device, t._size) for t in tensors_of(input))


def _template(x):
    if isinstance(x, Tensor):
        return (x._kind, x._size)
    return [_template(v) for v in x]


def _meta_from(template):
    if isinstance(template, tuple):
        return Tensor(kind=template[0], device='meta').resize(*template[1])
    return [_meta_from(v) for v in template]


def new_arena(nbytes, device):
    """A zeroed raw byte buffer of nbytes on device, 64-byte aligned (None on meta)."""
    xp = backend.xp_for(device)
    if xp is None:
        return None
    if xp is np:
        raw = np.zeros(nbytes + ALIGN_BYTES, dtype=np.uint8)
        shift = (-raw.ctypes.data) % ALIGN_BYTES
        return raw[shift:shift + nbytes]
    return xp.zeros(nbytes, dtype=np.uint8)


def typed_views(raw, nbytes, dtypes, device):
    """One ArenaStorage per type, all viewing the same raw bytes."""
    out = {}
    for key, dt in dtypes.items():
        if raw is None:
            out[key] = ArenaStorage(nbytes // dt.itemsize, dt, device)
        else:
            out[key] = ArenaStorage(0, dt, device, data=raw.view(dt))
    return out


def apply_plan(net, state, plan):
    """Point every planned tensor of net at its offset in the arena."""
    mods = net.listModules()
    resolved = []
    for e in plan.entries:
        t = resolve(mods, e[0])
        if t is None:
            raise RuntimeError('optnet arena: no tensor at %s' % liveness.describe_path(mods, e[0]))
        resolved.append(t)
    device = resolved[0]._device if resolved else 'cpu'
    nbytes = max(plan.nbytes, ALIGN_BYTES)
    if state.raw_size == nbytes and state.device == device and set(state.arenas) >= set(plan.dtypes):
        arenas = state.arenas
    else:
        raw = new_arena(nbytes, device)
        arenas = typed_views(raw, nbytes, plan.dtypes, device)
        state.raw, state.raw_size, state.device = raw, nbytes, device
    # tensors the old plan placed and the new one does not: back to their own storage
    if state.plan is not None and state.plan is not plan:
        for path in state.plan.slots:
            if path not in plan.slots:
                t = resolve(mods, path)
                if t is not None and isinstance(t._storage, ArenaStorage):
                    t.set()
    for (path, key, off, size, stride), t in zip(plan.entries, resolved):
        t.set(arenas[key], off + 1, size, stride)
    state.arenas = arenas
    state.plan = plan
    state.verified = False


def verify(net, state):
    """Paths of planned tensors that left their slot (empty when all is well)."""
    mods = net.listModules()
    bad = []
    for path, (key, a, b) in state.plan.slots.items():
        t = resolve(mods, path)
        if t is None or t._storage is None:
            continue
        if t._storage is state.arenas.get(key):
            if t._offset < a or liveness._extent(t) > b:
                bad.append(liveness.describe_path(mods, path))
        elif isinstance(t._storage, ArenaStorage):
            bad.append(liveness.describe_path(mods, path))
    return bad


# --- the entry point ---------------------------------------------------------------------------
def optimize(net, input, mode, opts):
    """Plan and apply (optimizeMemory has already run the net and set in-place flags)."""
    reuse = bool(opts.get('reuseBuffers', True))
    state = ArenaState(mode, reuse)
    pooled = liveness.pooled_fields(net, reuse)
    liveness.privatize_pooled(net, pooled)
    sched = liveness.analyse(net, input, mode, state.rule, pooled=pooled)
    plan = Plan(sched)
    apply_plan(net, state, plan)
    state.sig = input_signature(input)
    state.template = _template(input)
    state.plans[state.sig] = plan
    state.verified = True  # the sizes come from this very run
    net._pynn_arena = state
    return plan


# --- replanning ------------------------------------------------------------------------------------
def _pre_forward(net, state, input):
    sig = input_signature(input)
    if sig == state.sig:
        if not state.verified:
            bad = verify(net, state)
            if bad:
                warnings.warn('optnet arena: %d planned tensor(s) left their slots (%s); the plan is '
                              'redone on a real copy of the network' % (len(bad), ', '.join(bad[:3])))
                state.meta_ok = False
                state.plans.clear()
                replan(net, state, input, sig)
                return
            state.verified = True
        return
    replan(net, state, input, sig)


def replan(net, state, input, sig):
    state.busy = True
    try:
        plan = state.plans.get(sig)
        if plan is None:
            plan = make_plan(net, state, input)
            if len(state.plans) >= 8:
                state.plans.pop(next(iter(state.plans)))
            state.plans[sig] = plan
        apply_plan(net, state, plan)
        state.sig = sig
        state.template = _template(input)
        state.replans += 1
    finally:
        state.busy = False


def make_plan(net, state, input):
    """A plan for `input`'s sizes, made on a copy of net: the meta copy when it is exact for
    this net (checked once: at the current plan's sizes it must give the current plan)."""
    if state.meta_ok is not False:
        try:
            if state.meta is None:
                state.meta = meta_copy(net, state.reuse_buffers)
            if state.meta_ok is None:
                probe = _plan_on_copy(state.meta, state, _meta_from(state.template))
                state.meta_ok = probe.signature() == state.plan.signature()
            if state.meta_ok:
                return _plan_on_copy(state.meta, state, _meta_from(_template(input)))
        except Exception:
            state.meta_ok = False
        state.meta = None
    return _plan_on_real_copy(net, state, input)


def _plan_on_copy(clone, state, input):
    pooled = liveness.pooled_fields(clone, state.reuse_buffers)
    _detach_planned(clone, pooled)
    try:
        sched = liveness.analyse(clone, input, state.mode, state.rule, pooled=pooled)
        return Plan(sched)
    finally:
        _detach_planned(clone, pooled)   # the copy holds no sized tensors between replans


def _plan_on_real_copy(net, state, input):
    """Fallback: trace a deep copy of the real network (its arithmetic runs; the random
    generator's state is restored, so the real network draws the same numbers)."""
    gen = generator()
    saved = copy.deepcopy(gen.bit_generator.state)
    memo = {}
    _memo_skip(net, memo)
    clone = copy.deepcopy(net, memo)
    try:
        for m in clone.listModules():
            m.__dict__.pop('_pynn_backward_disabled', None)
        sample = _rebuild(input, iter([t.clone() for t in tensors_of(input)]))
        return _plan_on_copy(clone, state, sample)
    finally:
        gen.bit_generator.state = saved


def _rebuild(x, it):
    if isinstance(x, Tensor):
        return next(it)
    return [_rebuild(v, it) for v in x]


def _memo_skip(net, memo):
    """Leave optnet's bookkeeping (arena state, removed gradient info) out of a deep copy."""
    for m in net.listModules():
        for k, v in m.__dict__.items():
            if k.startswith('_pynn_') and not isinstance(v, (bool, str, int, type(None))):
                memo[id(v)] = None


def _detach_planned(net, pooled):
    """Empty every output, gradInput and pooled buffer of net (a private copy)."""
    for i, m in enumerate(net.listModules()):
        planned, _ = liveness.module_fields(m, i, pooled)
        for t, path, cat in planned:
            t.set()


def meta_copy(net, reuse_buffers=True):
    """A copy of net on the meta device: same modules, flags and tensor sharing; parameters
    and private buffers as sized meta tensors; outputs, gradInputs and pooled buffers empty."""
    pooled = liveness.pooled_fields(net, reuse_buffers)
    memo = {}
    _memo_skip(net, memo)
    stores = {}
    for i, m in enumerate(net.listModules()):
        planned, other = liveness.module_fields(m, i, pooled)
        for t, path, cat in planned:
            if id(t) not in memo:
                memo[id(t)] = Tensor(kind=t._kind, device='meta')
        for t, path in other:
            if id(t) in memo:
                continue
            new = Tensor(kind=t._kind, device='meta')
            st = t._storage
            if st is not None:
                ms = stores.get(id(st))
                if ms is None:
                    ms = stores[id(st)] = Storage(0, st.dtype, 'meta')
                    ms._size = st.size()
                new._storage, new._offset, new._size, new._stride = ms, t._offset, t._size, t._stride
            memo[id(t)] = new
    clone = copy.deepcopy(net, memo)
    for m in clone.listModules():
        kind, device = backend.parse_typename(m._type)
        m._type = backend.tensor_typename(kind, 'meta')
        m.__dict__.pop('_pynn_backward_disabled', None)
    return clone
