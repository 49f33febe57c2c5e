"""The 'optimal' planner: every output, gradInput and pooled buffer at an offset inside one
arena, placed by exact liveness (liveness.py).

    optimizeMemory(net, input, {'planner': 'optimal', ...}) -> optimize(net, input, mode, opts)

One raw byte buffer holds everything; each tensor type sees it through its own Storage
(`ArenaStorage`, a typed view), and a tensor is placed with Tensor.set(arena, offset, size,
stride). Placing all types in one buffer lets, e.g., max pooling's int64 indices reuse bytes
that float outputs left, which separate per-type arenas cannot.

Placement is offline (Plan, place_all): TFLite's greedy by size (Pisarchyk & Lee 2020: buffers
in decreasing size, each into the smallest gap left by the placed buffers whose lifetimes
intersect its own), greedy by breadth, and a bottom-up skyline best fit (Sekiyama et al.
2018), each with a few orders; the first to reach the liveness lower bound, else the
smallest, wins, and where none reaches it a fixed number of perturbed orders (seeded: a
schedule always gets the same plan) is tried. Scratch buffers, live only inside some calls,
are placed exactly by the greedy strategies (and by the skyline on their hull). Slots are
64-byte aligned (tiny networks, where that padding would cost more than it saves, fall back
to element alignment): a plan never needs more memory than no plan.

A plan holds for the input sizes it was made at. ArenaState (on the root module, as
`_pynn_arena`) has pynn.nn.module's updateOutput wrapper call its pre_forward before every
forward of the root: when the input sizes differ, the plan for the new sizes is taken from a
small cache or made by tracing a *meta* copy of the network (sizes only: no arithmetic, no
change to the real network's state, no random numbers drawn; checked once against the real
plan, else a real copy is traced instead) and applied before the forward runs. Arena storages
refuse to grow: a tensor resized beyond the arena raises instead of silently overlapping its
neighbours, and once per plan, the forward after it checks that the previous run kept every
planned tensor inside its slot (else it warns and replans on a real copy).
"""
import copy
import heapq
import random
import warnings

import numpy as np

from .. import backend
from ..storage import Storage
from ..tensor import Tensor
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


def peak(sizes, spans):
    """The largest total size of buffers live in one span (the liveness lower bound);
    spans[i] lists the [lo, hi] intervals buffer i is live in."""
    ev = {}
    for s, sp in zip(sizes, spans):
        for a, b in sp:
            ev[a] = ev.get(a, 0) + s
            ev[b + 1] = ev.get(b + 1, 0) - s
    cur = top = 0
    for t in sorted(ev):
        cur += ev[t]
        top = max(top, cur)
    return top


def greedy(sizes, spans, order, placed=None):
    """TFLite's greedy by size: visit buffers in `order`; each goes into the smallest gap,
    among the placed buffers live in one of its spans, that holds it, else on top of them.
    `placed` maps buffers already placed to their offsets. Returns (offsets, arena size)."""
    n = len(sizes)
    rows = sum(len(sp) for sp in spans)
    offs = np.zeros(n, dtype=np.int64)
    ends = np.zeros(n, dtype=np.int64)
    r_lo = np.empty(rows, dtype=np.int64)   # one row per live interval of a placed buffer
    r_hi = np.empty(rows, dtype=np.int64)
    r_own = np.empty(rows, dtype=np.int64)
    big = np.iinfo(np.int64).max
    r = top = 0
    for i, off in (placed or {}).items():
        offs[i], ends[i] = off, off + sizes[i]
        for a, b in spans[i]:
            r_lo[r], r_hi[r], r_own[r] = a, b, i
            r += 1
        top = max(top, off + sizes[i])
    for i in order:
        s, sp = sizes[i], spans[i]
        off = 0
        if r:
            a, b = sp[0]
            hit = (r_lo[:r] <= b) & (r_hi[:r] >= a)
            for a, b in sp[1:]:
                hit |= (r_lo[:r] <= b) & (r_hi[:r] >= a)
            own = r_own[:r][hit]  # an owner twice (two of its rows hit) only adds a negative gap
            if own.size:
                o = offs[own]
                e = ends[own]
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
        offs[i], ends[i] = off, off + s
        for a, b in sp:
            r_lo[r], r_hi[r], r_own[r] = a, b, i
            r += 1
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


def place_all(sizes, spans, nspans):
    """Offsets (same unit as sizes) for buffers with sizes and live intervals (spans[i], a
    list of [lo, hi]; nspans: the length of the schedule): the smallest arena among greedy by
    size (three orders; with scratch buffers also two-phase and by breadth) and skyline best
    fit (three priorities; it packs a buffer with several intervals by their hull), stopping
    at the lower bound; then, if none reached it, seeded perturbed orders.
    Returns (offsets, arena size, bound)."""
    n = len(sizes)
    if not n:
        return np.zeros(0, dtype=np.int64), 0, 0
    bound = peak(sizes, spans)
    lo = [sp[0][0] for sp in spans]
    hi = [sp[-1][1] for sp in spans]
    S = np.asarray(sizes, dtype=np.float64)
    life = np.asarray(hi, dtype=np.float64) - np.asarray(lo, dtype=np.float64) + 1
    idx = range(n)
    tries = (
        lambda: greedy(sizes, spans, sorted(idx, key=lambda i: (-sizes[i], lo[i], i))),
        lambda: skyline(sizes, lo, hi, nspans, life * (S.max() + 1) + S),
        lambda: skyline(sizes, lo, hi, nspans, S * life),
        lambda: skyline(sizes, lo, hi, nspans, S * (life.max() + 1) + life),
        lambda: greedy(sizes, spans, sorted(idx, key=lambda i: (-sizes[i], lo[i] - hi[i], i))),
        lambda: greedy(sizes, spans, sorted(idx, key=lambda i: (lo[i], -sizes[i], i))),
    )
    multi = [i for i in idx if len(spans[i]) > 1]
    if multi:  # scratch buffers: also the others first, then these into the gaps of their calls
        tries = tries[:1] + (lambda: _two_phase(sizes, spans, nspans, multi),
                             lambda: greedy(sizes, spans, _breadth(sizes, spans, nspans))) + tries[1:]
    best = None
    for make in tries:
        offs, top = make()
        if best is None or top < best[1]:
            best = (offs, top)
        if top <= bound:
            return best[0], best[1], bound
    # no strategy reached the bound: perturbed orders, a fixed number of them (seeded, so
    # the same schedule always gets the same plan)
    rng = random.Random(n)
    base = (sorted(idx, key=lambda i: (-sizes[i], lo[i], i)), _breadth(sizes, spans, nspans))
    for k in range(max(8, min(400, 20000 // n))):
        noise = [rng.uniform(0.5, 2.0) for _ in idx]
        if k % 3 == 0:
            order = sorted(idx, key=lambda i: (-sizes[i] * noise[i], i))
        elif k % 3 == 1:
            order = sorted(idx, key=lambda i: (lo[i] * noise[i], -sizes[i], i))
        else:
            order = list(base[1])
            for _ in range(5):
                a, b = rng.randrange(n), rng.randrange(n)
                order[a], order[b] = order[b], order[a]
        offs, top = greedy(sizes, spans, order)
        if top < best[1]:
            best = (offs, top)
            if top <= bound:
                break
    return best[0], best[1], bound


def _breadth(sizes, spans, nspans):
    """Greedy by breadth's order: buffers of the most loaded spans first, largest first."""
    load = np.zeros(nspans + 2)
    for s, sp in zip(sizes, spans):
        for a, b in sp:
            load[a] += s
            load[b + 1] -= s
    load = np.cumsum(load)
    top = [max(float(load[a:b + 1].max()) for a, b in sp) for sp in spans]
    return sorted(range(len(sizes)), key=lambda i: (-top[i], -sizes[i], i))


def _two_phase(sizes, spans, nspans, multi):
    """Place the buffers live in one interval (place_all), then insert those live in several
    (scratch buffers, each live only inside some calls) greedily, largest first."""
    single = [i for i in range(len(sizes)) if len(spans[i]) == 1]
    offs1, _, _ = place_all([sizes[i] for i in single], [spans[i] for i in single], nspans)
    placed = {i: int(o) for i, o in zip(single, offs1)}
    order = sorted(multi, key=lambda i: (-sizes[i], spans[i][0][0], i))
    return greedy(sizes, spans, order, placed)


def _placement(bs, spans):
    """(offsets in bytes, arena bytes, alignment, bound at that alignment) for buffers bs.

    Slots are 64-byte aligned. Where the padding that costs would make the arena larger than
    the buffers kept in storages of their own (tiny networks), the alignment drops to the
    largest element size, and if even that loses, the buffers are laid end to end (the
    widest types first, so that nothing is padded): a plan never needs more memory than no
    plan."""
    private = sum(b.nbytes for b in bs)
    live = [b.spans for b in bs]
    widest = max([b.itemsize for b in bs] or [1])
    for align in (ALIGN_BYTES, widest):
        sizes = [_align(b.nbytes, align) for b in bs]
        offs, top, bound = place_all(sizes, live, spans)
        if top <= private:
            return offs, top, align, bound
    order = sorted(range(len(bs)), key=lambda i: (-bs[i].itemsize, i))
    offs = np.zeros(len(bs), dtype=np.int64)
    top = 0
    for i in order:
        offs[i] = top
        top += bs[i].nbytes
    return offs, top, min(b.itemsize for b in bs), top


class Plan:
    """Placed buffers, as plain data (paths, no tensors). All types share one arena of
    `nbytes` bytes (typed views of one raw buffer); `dtypes` maps a type key to its dtype;
    `entries` lists (path, type key, 0-based element offset in the typed view, size, stride)
    for every planned tensor; `slots` maps a path to (type key, slot start, slot end) in
    elements; `schedule` is the (frozen) liveness it was made from."""

    def __init__(self, schedule, keep_tensors=False):
        self.schedule = schedule
        bs = schedule.buffers
        self._tensors = [] if keep_tensors else None  # the traced net's tensors, for its first apply
        offs, top, self.align, self.aligned_bound = _placement(bs, schedule.spans)
        self.nbytes = int(top)
        self.verified = False   # set once a run on these sizes kept every tensor in its slot
        self.dtypes = {}
        self.entries = []
        self.slots = {}
        keys = {}
        for b, o in zip(bs, offs):
            dt = b.storage.dtype
            key = keys.get(dt)
            if key is None:
                key = keys[dt] = type_key(b.storage)
                self.dtypes[key] = np.dtype(dt)
            b.offset = start = int(o) // b.itemsize
            slot = (key, start, start + b.size)
            for t, path, off, size, stride in b.members:
                self.entries.append((path, key, start + off, size, stride))
                self.slots[path] = slot
                if self._tensors is not None:
                    self._tensors.append(t)
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
        self.shared = False      # whether the typed arenas view the one raw buffer
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
        new.raw, new.raw_size, new.device, new.shared = None, self.raw_size, self.device, False
        new.verified, new.meta_ok = self.verified, self.meta_ok
        return new

    def __getstate__(self):  # pickling: the plan and arenas, not the meta copy
        d = dict(self.__dict__)
        d['meta'] = None
        d['busy'] = False
        d['shared'] = False  # unpickled views hold copies of their own
        d['raw'] = None
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


def _point(views, raw, nbytes, dtypes, device):
    """Make views (type key -> ArenaStorage) view raw: the existing storage objects are kept
    (their data swapped), so that whatever refers to them (removeOptimization's record of
    the storages it owns) still does; missing types get new ones. Returns the new ones."""
    made = []
    for key in [k for k in views if k not in dtypes]:  # types of an older plan: let go of its bytes
        del views[key]
    for key, dt in dtypes.items():
        st = views.get(key)
        if st is None or st.device != device or st.dtype != dt:
            st = views[key] = ArenaStorage(0, dt, device) if raw is not None else \
                ArenaStorage(nbytes // dt.itemsize, dt, device)
            made.append(st)
        if raw is None:
            st.data, st._size = None, nbytes // dt.itemsize
        else:
            st.data = raw.view(dt)
            st._size = st.data.shape[0]
    return made


def apply_plan(net, state, plan):
    """Point every planned tensor of net at its offset in the arena."""
    mods = net.listModules()
    resolved = plan._tensors
    plan._tensors = None
    if resolved is None:
        resolved = []
        for e in plan.entries:
            t = resolve(mods, e[0])
            if t is None:
                raise RuntimeError('optnet arena: no tensor at %s' % liveness.describe_path(mods, e[0]))
            resolved.append(t)
    device = resolved[0]._device if resolved else 'cpu'
    # every typed view must cover whole elements
    nbytes = _align(max(plan.nbytes, 1), max([dt.itemsize for dt in plan.dtypes.values()] or [1]))
    if not (state.raw_size == nbytes and state.device == device and state.shared
            and all(k in state.arenas for k in plan.dtypes)):
        raw = new_arena(nbytes, device)
        made = _point(state.arenas, raw, nbytes, plan.dtypes, device)
        state.raw, state.raw_size, state.device, state.shared = raw, nbytes, device, True
        owned = getattr(net.__dict__.get('_pynn_owned'), 'storages', None)
        if owned is not None:  # removeOptimization must clear tensors in new arena storages too
            for st in made:
                owned.add(st)
    arenas = state.arenas
    # tensors the old plan placed and the new one does not: back to their own storage
    if state.plan is not None and state.plan is not plan:
        for path in state.plan.slots:
            if path not in plan.slots:
                t = resolve(mods, path)
                if t is not None and isinstance(t._storage, ArenaStorage):
                    t.set()
    kinds = {key: backend.kind_of_dtype(st.dtype) for key, st in arenas.items()}
    for (path, key, off, size, stride), t in zip(plan.entries, resolved):
        if t._kind != kinds[key]:
            raise RuntimeError('optnet arena: %s is a %s, its plan says %s'
                               % (liveness.describe_path(mods, path), t.type(), key))
        # Tensor.set without its checks: the kind is checked above, the view fits its slot
        t._storage, t._offset, t._size, t._stride = arenas[key], off, size, stride
    state.plan = plan
    state.verified = plan.verified


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
    sched = liveness.analyse(net, input, mode, state.rule, pooled=pooled)
    with liveness.no_gc():
        plan = Plan(sched, keep_tensors=True)
        apply_plan(net, state, plan)
    state.sig = input_signature(input)
    state.template = _template(input)
    state.plans[state.sig] = plan
    plan.verified = state.verified = True  # the sizes come from this very run
    net._pynn_arena = state
    return plan


# --- replanning ------------------------------------------------------------------------------------
def _pre_forward(net, state, input):
    """Before each forward of the root: check, once per plan, that the last run kept every
    planned tensor inside its slot; replan when the input sizes differ from the plan's."""
    forced = False
    if not state.verified:
        bad = verify(net, state)
        if bad:
            warnings.warn('optnet arena: %d planned tensor(s) left their slots (%s): the sizes '
                          'the plan was made for were wrong; replanning on a real copy of the '
                          'network' % (len(bad), ', '.join(bad[:3])))
            state.meta_ok, state.meta = False, None
            state.plans.clear()
            forced = True
        else:
            state.plan.verified = True
        state.verified = True
    sig = input_signature(input)
    if forced or sig != state.sig:
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
    this net (checked once: at the current plan's sizes it must give the current plan), else
    a real copy. An input the network itself rejects raises the network's own error."""
    if state.meta_ok is not False:
        before = state.meta_ok
        try:
            if state.meta is None:
                state.meta = meta_copy(net, state.reuse_buffers)
            if state.meta_ok is None:
                probe = _plan_on_copy(state.meta, state, _meta_from(state.template))
                state.meta_ok = probe.signature() == state.plan.signature()
            if state.meta_ok:
                return _plan_on_copy(state.meta, state, _meta_from(_template(input)))
        except Exception:
            try:
                plan = _plan_on_real_copy(net, state, input)
            except Exception:
                state.meta_ok = before  # the input is at fault, not the meta copy
                raise
            state.meta_ok, state.meta = False, None
            return plan
        state.meta = None
    return _plan_on_real_copy(net, state, input)


def _plan_on_copy(clone, state, input):
    """Trace a private copy of the network (its planned tensors start empty, so each gets a
    storage of its own) and plan."""
    pooled = liveness.pooled_fields(clone, state.reuse_buffers)
    _detach_planned(clone, pooled)
    sched = liveness.analyse(clone, input, state.mode, state.rule, pooled=pooled)
    with liveness.no_gc():
        return Plan(sched)


def _plan_on_real_copy(net, state, input):
    """Fallback: trace a deep copy of the real network (its arithmetic runs; the random
    generator's state is restored, so the real network draws the same numbers)."""
    from .. import rng
    saved = rng.streams_state()   # Torch's stream (Dropout's masks, ...) and NumPy's
    memo = {}
    _memo_skip(net, memo)
    clone = copy.deepcopy(net, memo)
    try:
        for m in clone.listModules():
            m.__dict__.pop('_pynn_backward_disabled', None)
        sample = _rebuild(input, iter([t.clone() for t in tensors_of(input)]))
        return _plan_on_copy(clone, state, sample)
    finally:
        rng.set_streams_state(saved)


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
    for m in net.listModules():
        d = m.__dict__
        for f in ('output', 'gradInput') + tuple(pooled.get(m.__typename__, ())):
            for t in tensors_of(d.get(f)):
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
