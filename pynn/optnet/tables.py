"""`pynn-optnet tables`: optnet's three published tables, reproduced by pynn, side by side.

The original optnet README gives memory figures for 4 networks x 3 settings:

    inference, nn modules,    float64, batch 1    (total, outputs, buffers, params)
    inference, cudnn modules, float32, batch 128  (total, outputs, params)
    training,  cudnn modules, float32, batch 64   (total, outputs, gradInputs, params)

Each cell is measured as the original's tests did: build the model (optnet's builders), set
evaluate / training mode, convert to cudnn modules where the setting says so, run it once
(forward, and backward with a copy of the output as gradOutput in training) and count
(`before`); then optimizeMemory with the setting's options, run it again and count (`after`).
Beside that: the liveness lower bound (bytes: the largest total size of the activation storages,
outputs and, in training, gradInputs, alive at one moment of the recorded schedule; with
reuseBuffers the pooled buffers too), and, when pynn has it, the 'optimal' planner's after.

Each table runs on the network it was measured on (NETWORKS: ResNet's normalization layers
changed in optnet's models.lua between the tables); `--today` runs today's builders instead.
`--lua2016` emulates the 2016 code that made the figures (optimize_memory_2016, and cudnn.torch's
contiguous copies: pynn.cudnn.luaContiguousCopies); it reproduces the published figures.

`--meta` runs every cell on the meta device (sizes only: no memory, no arithmetic, a few
seconds in all; tests/test_meta.py proves its accounting equals real runs'). By default cells
run on real data, except those in META_BY_DEFAULT (too slow for a 2-core machine), which run on
meta and are marked so; `--real` forces real runs everywhere. docs/tables.md has the results.
"""
import gc
import json
import sys
import time

from .. import threads

MiB = 1048576.0
FIELDS = ('total_size', 'outputs', 'gradInputs', 'buffers', 'params')
SHORT = {'total_size': 'total', 'outputs': 'outputs', 'gradInputs': 'gradInputs', 'buffers': 'buffers',
         'params': 'params'}

# The figures of the original README (MB there = MiB), as shared/reference/optnet_published_tables.json.
PUBLISHED = {
    'inference_nn_cpu_double_batch1': {
        'fields': ['total', 'outputs', 'buffers', 'params'],
        'options': {'mode': 'inference', 'inplace': True, 'reuseBuffers': True, 'removeGradParams': True},
        'alexnet': {'before': [973, 6, 43, 924], 'after': [472, 1.5, 9, 462]},
        'vgg-A': {'before': [2311, 69, 215, 2027], 'after': [1106, 31, 61, 1014]},
        'googlenet': {'before': [505, 69, 145, 292], 'after': [193, 31, 16, 146]},
        'resnet-110-cifar': {'before': [113, 16, 71, 26], 'after': [15, 0.5, 1.3, 13]},
    },
    'inference_cudnn_float_batch128': {
        'fields': ['total', 'outputs', 'params'],
        'note': 'cudnn modules keep no internal buffers',
        'alexnet': {'before': [859, 397, 462], 'after': [328, 97, 231]},
        'vgg-A': {'before': [5340, 4386, 1014], 'after': [2467, 1960, 507]},
        'googlenet': {'before': [4536, 4390, 146], 'after': [2066, 1993, 73]},
        'resnet-110-cifar': {'before': [1049, 1036, 13], 'after': [39, 32, 7]},
    },
    'training_cudnn_float_batch64': {
        'fields': ['total', 'outputs', 'gradInputs', 'params'],
        'options': {'mode': 'training', 'inplace': True},
        'alexnet': {'before': [963, 195, 303, 462], 'after': [816, 195, 156, 462]},
        'vgg-A': {'before': [5433, 2191, 2228, 1014], 'after': [4228, 2191, 1023, 1014]},
        'googlenet': {'before': [6092, 2195, 3346, 146], 'after': [4844, 2195, 2098, 146]},
        'resnet-110-cifar': {'before': [664, 259, 392, 13], 'after': [428, 259, 156, 13]},
    },
}

SETTINGS = [
    {'key': 'inference_nn_cpu_double_batch1', 'mode': 'inference', 'cudnn': False, 'kind': 'Double',
     'batch': 1, 'title': 'Inference, nn modules, float64, batch 1'},
    {'key': 'inference_cudnn_float_batch128', 'mode': 'inference', 'cudnn': True, 'kind': 'Float',
     'batch': 128, 'title': 'Inference, cudnn modules, float32, batch 128'},
    {'key': 'training_cudnn_float_batch64', 'mode': 'training', 'cudnn': True, 'kind': 'Float',
     'batch': 64, 'title': 'Training, cudnn modules, float32, batch 64'},
]
# the published table's name -> (builder, its argument)
MODELS = [
    ('alexnet', 'alexnet', None),
    ('vgg-A', 'vgg', 'A'),
    ('googlenet', 'googlenet', None),
    ('resnet-110-cifar', 'resnet', {'dataset': 'cifar10', 'depth': 110}),
]
# cells too slow for real arithmetic on a 2-core machine within the 15 minutes of the whole
# command run on meta unless --real (their accounting equals a real run's: test_meta.py). None
# is: with one BLAS thread all 12 cells take about 7 minutes on 2 cores (VGG: 1.5 and 2 min).
META_BY_DEFAULT = set()

# The networks as they were when each table was made (optnet's git history): ResNet's batch
# normalizations were real nn.SpatialBatchNormalization layers on 2016-03-15/16 (the two
# inference tables) and commented out on 2016-03-19 (the training table); today's models.lua
# (and models.resnet) puts nn.MulConstant(1) stand-ins there instead.
NETWORKS = {
    'today': "today's builder (models.builders)",
    'bn': 'ResNet with real SpatialBatchNormalization (models.lua of 2016-03-15/16)',
    'nobn': 'ResNet without normalization layers (models.lua of 2016-03-17 to 2016-05-09)',
}


def network_of(setting_key, model, today=False):
    """Which network a cell runs: NETWORKS key."""
    if today or not model.startswith('resnet'):
        return 'today'
    return 'nobn' if setting_key.startswith('training') else 'bn'


def options_of(setting_key):
    """optimizeMemory's options for a setting: the published table's "options", else optnet's
    defaults (the original's tests called optimizeMemory(net, input) for that table)."""
    return dict(PUBLISHED[setting_key].get('options') or
                {'mode': 'inference', 'inplace': True, 'reuseBuffers': True, 'removeGradParams': True})


def published_bytes(setting_key, model):
    """The published before/after as {field: bytes} (fields of that table only)."""
    pub = PUBLISHED[setting_key]
    names = [('total_size' if f == 'total' else f) for f in pub['fields']]
    return {w: {n: v * MiB for n, v in zip(names, pub[model][w])} for w in ('before', 'after')}


# --- building and running ------------------------------------------------------------------------
def build(model, kind, batch, meta=False, network='today'):
    """(net, input) of a published model in float kind 'Double'/'Float', on meta or real data."""
    import pynn
    from pynn import models as _models
    _, builder, arg = next(m for m in MODELS if m[0] == model)
    if network == 'bn':
        arg = dict(arg, batchNorm=True)
    old = pynn.getdefaulttensortype()
    pynn.setdefaulttensortype('torch.%s%sTensor' % ('Meta' if meta else '', kind))
    try:
        pynn.manualSeed(0)
        b = _models.builders[builder]
        net, inp = b(arg, batch=batch) if arg is not None else b(batch=batch)
    finally:
        pynn.setdefaulttensortype(old)
    if network == 'nobn':
        strip_normalization(net)
    return net, inp


def strip_normalization(net):
    """Remove the nn.MulConstant(1) batch-normalization stand-ins of models.resnet (those whose
    `inplace` is None), as models.lua had them commented out in March 2016."""
    for m in net.listModules():
        mods = m.__dict__.get('modules')
        if not mods or m.__typename__ != 'nn.Sequential':
            continue
        keep = [c for c in mods if not (c.__typename__ == 'nn.MulConstant' and c.__dict__.get('inplace', False) is None
                                        and c.constant_scalar == 1)]
        if len(keep) != len(mods):
            mods[:] = keep
            m.gradInput = keep[0].gradInput
            m.output = keep[-1].output
    return net


def prepare(setting, model, meta=False, network='today', lua2016=False):
    """The network of one cell, in the setting's mode and modules, not yet run."""
    net, inp = build(model, setting['kind'], setting['batch'], meta, network)
    if setting['cudnn']:
        from .. import cudnn
        net = cudnn.convert(net)
        if lua2016:
            cudnn.luaContiguousCopies(net)
    if setting['mode'] == 'inference':
        net.evaluate()
    else:
        net.training()
    return net, inp


def run_once(net, inp, mode):
    """forward, and in training backward with a copy of the output (the original's tests)."""
    from .trace import recursive_clone
    out = net.forward(inp)
    if mode == 'training':
        net.backward(inp, recursive_clone(out))


def lower_bound(net, inp, opts):
    """The liveness lower bound in bytes: pynn.optnet.lowerBound when pynn has it, else
    activation_lower_bound (outputs, and gradInputs in training, conservative reads)."""
    from .. import optnet
    if hasattr(optnet, 'lowerBound'):
        try:
            from . import report  # noqa: F401  (lowerBound needs it)
        except ImportError:
            pass
        else:
            o = {k: v for k, v in opts.items() if k in ('mode', 'inplace', 'reuseBuffers')}
            return int(optnet.lowerBound(net, inp, o))
    return activation_lower_bound(net, inp, opts.get('mode', 'inference'))


def activation_lower_bound(net, inp, mode='inference'):
    """The largest total size (bytes) of activation storages alive at one moment of the schedule
    of one run of `net` (forward, and backward in training): outputs of every module, plus
    gradInputs in training, excluding the network's input. A storage is alive from the first to
    the last traced call that touches it (reads it as input or gradOutput, writes it as output
    or gradInput; a leaf module's backward is taken to read its input and output); the network's
    output (and gradInput, in training) stays alive to the end. Runs the network once (on meta
    tensors this costs nothing)."""
    from ..nn.module import tracing
    from .trace import tensors_of, recursive_clone

    seen = {}
    clock = [0]

    def touch(x):
        for t in tensors_of(x):
            st = t.storage()
            if st is not None:
                k = id(st)
                if k in seen:
                    seen[k][1] = clock[0]
                else:
                    seen[k] = [clock[0], clock[0], st]

    class Tracer:
        def enter(self, m, name, args):
            clock[0] += 1
            for a in args[:2]:
                touch(a)
            leaf = m.__dict__.get('modules') is None
            if leaf:
                touch(m.__dict__.get('output'))
                if name != 'updateOutput':
                    touch(m.__dict__.get('gradInput'))

        def exit(self, m, name, args):
            clock[0] += 1
            touch(m.__dict__.get('output'))
            if name != 'updateOutput':
                touch(m.__dict__.get('gradInput'))
                for a in args[:2]:
                    touch(a)

    with tracing(Tracer()):
        out = net.forward(inp)
        if mode == 'training':
            net.backward(inp, recursive_clone(out))
    clock[0] += 1
    touch(net.output)
    if mode == 'training':
        touch(net.gradInput)
    counted = set()
    for m in net.listModules():
        for t in tensors_of(m.__dict__.get('output')):
            if t.storage() is not None:
                counted.add(id(t.storage()))
        if mode == 'training':
            for t in tensors_of(m.__dict__.get('gradInput')):
                if t.storage() is not None:
                    counted.add(id(t.storage()))
    for t in tensors_of(inp):
        if t.storage() is not None:
            counted.discard(id(t.storage()))
    events = {}
    for k in counted:
        lo, hi, st = seen.get(k, (None, None, None))
        if st is None:
            continue
        n = st.size() * st.elementSize()
        events[lo] = events.get(lo, 0) + n
        events[hi + 1] = events.get(hi + 1, 0) - n
    cur = top = 0
    for t in sorted(events):
        cur += events[t]
        top = max(top, cur)
    return top


# --- optnet as of March 2016 (the code that made the published figures) ---------------------------
def optimize_memory_2016(net, input, opts):
    """optnet's optimizeMemory as of 2016-03-16/19 (commits 0a47dc4, 4541971), which produced the
    published figures; pynn.optnet.optimizeMemory is today's optnet. Two differences matter:
    the assignment takes the first compatible storage (today: the compatible storage closest in
    size), and in training the analysis also tracks nn.Sequential's gradOutput and gradInput
    (today it skips containers of that type). Every module with an `inplace` field other than
    nn.Threshold is switched to in place (no safety check), as then."""
    from ..nn.module import tracing
    from . import apply as A
    from .plan import lua_sort, Group, _compatible
    from .trace import (optnet_analysis, recursive_clone, tensors_of, _Track, Recorder,
                        K_NOT_USED, K_NOT_DEFINED, K_ALWAYS_LIVE)
    mode = opts.get('mode', 'inference')
    run_once(net, input, mode)
    A.set_inplace(net, opts.get('inplace', True))
    A.reuse_state_buffers(net, opts.get('reuseBuffers', True), mode)
    A.remove_grad_params(net, opts.get('removeGradParams', True), mode)
    if mode == 'inference':
        rows = optnet_analysis(net, input, mode)
    else:
        track = _Track()

        def on_enter(c, m, name, args):
            if name != 'updateOutput':   # the March-2016 rule: Sequential included
                track.keep(args[1], 'used', c, max, K_NOT_USED, m.__typename__)
                track.keep(m.gradInput, 'defined', c, min, K_NOT_DEFINED, m.__typename__)

        with tracing(Recorder(on_enter)):
            out = net.forward(input)
            grad = recursive_clone(out)
            net.backward(input, grad)
        for x, name in ((input, 'input'), (grad, 'grad')):
            for t in tensors_of(x):
                if t.storage() is not None:
                    track.keep(t, 'used', K_ALWAYS_LIVE, lambda a, b: a, 0, name)
                    track.keep(t, 'defined', -K_ALWAYS_LIVE, lambda a, b: a, 0, name)
        rows = track.rows
    lua_sort(rows, lambda x, y: x.used < y.used)
    groups = []
    for row in rows:                     # first fit
        for g in groups:
            if _compatible(row, g):
                g.append(row)
                break
        else:
            groups.append(Group([row]))
    A.apply_groups(groups)
    return net


def has_optimal():
    from .. import optnet
    if 'optimal' not in getattr(optnet, 'PLANNERS', ()):
        return False
    try:
        from . import arena, report  # noqa: F401
    except ImportError:
        return False
    return hasattr(report, 'arena_memory')


def optimal_after(setting, model, network='today'):
    """countUsedMemory's fields after optimizeMemory(planner='optimal') and a run (each arena
    counted once: report.arena_memory), on the meta device (no memory, no arithmetic; the
    accounting equals a real run's), or None when pynn has no such planner."""
    if not has_optimal():
        return None
    from .. import optnet
    from .report import arena_memory
    opts = options_of(setting['key'])
    net, inp = prepare(setting, model, True, network)
    optnet.optimizeMemory(net, inp, dict(opts, planner='optimal'))
    run_once(net, inp, opts.get('mode', 'inference'))
    m = arena_memory(net)
    return {k: int(m[k]) for k in FIELDS + ('arena', 'lower_bound') if k in m}


def run_cell(setting, model, meta=False, optimal=True, bound=True, today=False, lua2016=False):
    """One cell: {'setting', 'model', 'network', 'emulation', 'meta', 'options', 'before', 'after',
    'lower_bound', 'optimal_after', 'published', 'seconds'} (memory figures in bytes).
    today: run today's builders (else the networks of the time, see network_of); lua2016:
    emulate the code of the time (optimize_memory_2016 and cudnn.torch's contiguous copies)."""
    from .. import optnet
    t0 = time.perf_counter()
    opts = options_of(setting['key'])
    mode = opts.get('mode', 'inference')
    network = network_of(setting['key'], model, today)
    net, inp = prepare(setting, model, meta, network, lua2016)
    lb = lower_bound(net, inp, opts) if bound else None
    run_once(net, inp, mode)
    before = optnet.countUsedMemory(net)
    if lua2016:
        optimize_memory_2016(net, inp, opts)
    else:
        optnet.optimizeMemory(net, inp, opts)
    run_once(net, inp, mode)
    after = optnet.countUsedMemory(net)
    del net
    gc.collect()
    opt_after = optimal_after(setting, model, network) if optimal and not lua2016 else None
    return {'setting': setting['key'], 'model': model, 'network': network,
            'emulation': 'lua2016' if lua2016 else None, 'meta': bool(meta), 'options': opts,
            'before': {k: int(before[k]) for k in FIELDS}, 'after': {k: int(after[k]) for k in FIELDS},
            'lower_bound': lb, 'optimal_after': opt_after,
            'published': published_bytes(setting['key'], model),
            'seconds': round(time.perf_counter() - t0, 3)}


# --- formatting ------------------------------------------------------------------------------------
def _mib(b):
    v = b / MiB
    if v >= 100:
        return '%.0f' % v
    if v >= 10:
        return '%.1f' % v
    return '%.2f' % v


def _tuple(mem, names):
    return '(' + ', '.join(_mib(mem[n]) for n in names) + ')'


def _saves(before, after, names):
    out = []
    for n in names:
        b, a = before[n], after[n]
        out.append('%d%%' % round(100 * (1 - a / b)) if b else '-')
    return '(' + ', '.join(out) + ')'


def format_tables(records):
    """The records as three text tables, pynn's row above the published one (MiB)."""
    lines = []
    notes = {}
    for s in SETTINGS:
        rows = [r for r in records if r['setting'] == s['key']]
        if not rows:
            continue
        pub = PUBLISHED[s['key']]
        names = [('total_size' if f == 'total' else f) for f in pub['fields']]
        lines.append('%s  [%s]' % (s['title'], s['key']))
        lines.append('  MiB as (%s); options %s' % (', '.join(pub['fields']),
                                                    json.dumps(options_of(s['key']), sort_keys=True)))
        head = ('  %-18s %-10s %-28s %-28s %-22s %9s %9s %7s'
                % ('network', 'source', 'before', 'after', 'relative save', 'lower bd', 'optimal', 'secs'))
        lines.append(head)
        lines.append('  ' + '-' * (len(head) - 2))
        for r in rows:
            p = r['published']
            lb = '' if r['lower_bound'] is None else _mib(r['lower_bound'])
            oa = r.get('optimal_after')
            ot = '' if not oa else _mib(oa['total_size'])
            src = ('lua2016' if r.get('emulation') else 'pynn') + (' meta' if r['meta'] else '')
            name = r['model']
            net = r.get('network', 'today')
            if net != 'today':
                mark = '*' * (sorted(NETWORKS).index(net) + 1)
                notes[mark] = NETWORKS[net]
                name += mark
            flag = ' !' if r['after']['total_size'] > p['after']['total_size'] + 0.5 * MiB else ''
            lines.append('  %-18s %-10s %-28s %-28s %-22s %9s %9s %7.1f%s'
                         % (name, src, _tuple(r['before'], names), _tuple(r['after'], names),
                            _saves(r['before'], r['after'], names), lb, ot, r['seconds'], flag))
            lines.append('  %-18s %-10s %-28s %-28s %-22s'
                         % ('', 'published', _tuple(p['before'], names), _tuple(p['after'], names),
                            _saves(p['before'], p['after'], names)))
            extra = [n for n in FIELDS if n not in names and (r['before'][n] or r['after'][n])]
            if extra:
                lines.append('  %-18s %-10s not in the published fields: %s' % (
                    '', '', ', '.join('%s %s -> %s' % (SHORT[n], _mib(r['before'][n]), _mib(r['after'][n]))
                                      for n in extra)))
        lines.append('')
    for mark in sorted(notes, key=len):
        lines.append('%s %s' % (mark, notes[mark]))
    lines.append('lower bd: liveness lower bound (outputs; gradInputs in training; pooled buffers with '
                 'reuseBuffers), MiB.')
    lines.append("optimal: total after optimizeMemory with planner='optimal' (arena counted once; planned on the "
                 "meta device), MiB.")
    lines.append('!: after above the published after (beyond its rounding); see docs/tables.md.')
    return '\n'.join(lines)


class _Progress:
    """A one-line progress bar on stderr."""

    def __init__(self, total, stream=None, enabled=True):
        self.total, self.done, self.t0 = total, 0, time.perf_counter()
        self.stream = stream or sys.stderr
        self.enabled = enabled

    def show(self, label):
        if not self.enabled:
            return
        width = 30
        k = int(width * self.done / max(self.total, 1))
        self.stream.write('\r[%s%s] %2d/%d %6.1fs  %-55s' % ('#' * k, '.' * (width - k), self.done, self.total,
                                                             time.perf_counter() - self.t0, label[:55]))
        self.stream.flush()

    def step(self, label):
        self.done += 1
        self.show(label)

    def close(self):
        if self.enabled:
            self.stream.write('\n')
            self.stream.flush()


def run_all(settings=None, models=None, meta=False, real=False, optimal=True, progress=True,
            today=False, lua2016=False):
    """Run the selected cells; `meta` forces meta for all, `real` forces real data for all, else
    META_BY_DEFAULT decides. Returns the list of records."""
    sel_s = [s for s in SETTINGS if not settings or s['key'] in settings]
    sel_m = [m[0] for m in MODELS if not models or m[0] in models]
    cells = [(s, m) for s in sel_s for m in sel_m]
    bar = _Progress(len(cells), enabled=progress)
    records = []
    for s, m in cells:
        on_meta = meta or (not real and (s['key'], m) in META_BY_DEFAULT)
        bar.show('%s %s%s' % (s['key'], m, ' (meta)' if on_meta else ''))
        records.append(run_cell(s, m, meta=on_meta, optimal=optimal, today=today, lua2016=lua2016))
        bar.step('%s %s done' % (s['key'], m))
    bar.close()
    return records


def main(args):
    t0 = time.perf_counter()
    # one BLAS thread by default: on a shared 2-core machine OpenBLAS's spinning threads can
    # make GEMMs 10x slower than one thread does
    with threads.limited(getattr(args, 'threads', 1)):
        records = run_all(settings=args.setting, models=args.model, meta=args.meta, real=args.real,
                          optimal=not args.no_optimal, progress=not args.no_progress,
                          today=args.today, lua2016=args.lua2016)
    print(format_tables(records))
    wall = time.perf_counter() - t0
    print('wall time: %.1f s (%s)' % (wall, 'meta' if args.meta else 'real data' + (
        '' if args.real or not META_BY_DEFAULT else "; cells marked 'meta' on the meta device")))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(records, f, indent=1)
    return 0


def add_parser(sub):
    t = sub.add_parser('tables', help="optnet's three published tables, reproduced side by side",
                       description=__doc__.split('\n\n')[0])
    t.add_argument('--meta', action='store_true', help='run every cell on the meta device (instant)')
    t.add_argument('--real', action='store_true', help='run every cell on real data (slow cells too)')
    t.add_argument('--json', metavar='FILE', help='also write the records as JSON to FILE')
    t.add_argument('--setting', action='append', choices=[s['key'] for s in SETTINGS],
                   help='only this setting (repeatable)')
    t.add_argument('--model', action='append', choices=[m[0] for m in MODELS],
                   help='only this network (repeatable)')
    t.add_argument('--today', action='store_true',
                   help="today's model builders everywhere (default: ResNet as it was when each table was made)")
    t.add_argument('--lua2016', action='store_true',
                   help="emulate the code that made the published figures: optnet's March-2016 assignment "
                        "and cudnn.torch's contiguous copies (see docs/tables.md)")
    t.add_argument('--threads', type=int, default=1, metavar='N',
                   help='BLAS threads during the runs (default 1, robust on a shared machine; 0: leave as is)')
    t.add_argument('--no-optimal', action='store_true', help="skip the planner='optimal' column")
    t.add_argument('--no-progress', action='store_true', help='no progress bar on stderr')
    t.set_defaults(func=main)
    return t
