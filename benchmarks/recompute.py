"""optnet's recomputation under a memory budget: the memory/time curve.

    python benchmarks/recompute.py                  # resnet-110 CIFAR b64, googlenet b32, vgg-A b16
    python benchmarks/recompute.py --quick          # the same networks at batch 8 / 2 / 1
    python benchmarks/recompute.py --model resnet   # one network (repeatable)

The networks of optnet's published training table (cudnn modules, float32; resnet-110 CIFAR
without batch normalization, as the table's network: tables.prepare). For each network:
the budgets go from the no-recompute arena down to the smallest reachable (every segment
recomputed once), taken from the planner's frontier (recompute.Planner.frontier, planned on
the meta device). For each budget, side by side with the unoptimized network in the same run:

    arena      the plan's arena (what the budget bounds)
    total      countUsedMemory's total_size (parameters included), and arena_memory's total
               (each arena counted once: what optnet's tables print)
    peak       the process's real peak during one training step (tracemalloc: every NumPy
               allocation, parameters, arena, input and gradOutput, and the layers'
               temporaries), against countUsedMemory's total plus input and gradOutput
    step       forward+backward time relative to the unoptimized net (median of --runs runs,
               the two measured in turn)
    exact      gradients and gradInput bit for bit equal to the unoptimized net's

BLAS runs on one thread (--threads): on a shared machine more threads make the timings swing.

Measured 2026-11-30 on a busy 2-core machine (load average 5 to 10: step times of the
same network swung from 5 to 12 s between runs, so ratios are medians of 3 (resnet) or 2
(googlenet) steps taken in turn with the unoptimized network; trust them to about +-15%),
cudnn workspace 4 MiB, float32. MiB; total = countUsedMemory total_size (params included);
peak/c = tracemalloc peak / (countUsedMemory total + input + gradOutput).

resnet-110 CIFAR b64, no batch norm (unoptimized: total 664.0, real peak 669.6):
  arena   recomputed/segs  total   peak   peak/c  extra fwd (est.)  step vs unoptimized  exact
  257.0     0/0            270.2   275.8  1.018   0.000             1.24x (noise: nothing recomputed)
  209.0     3/13           222.2   227.8  1.022   0.133             0.88x                 yes
  193.0     1/4            206.2   211.8  1.023   0.151             1.10x                 yes
  131.0     8/13           144.2   149.8  1.033   0.371             1.15x                 yes
   54.0     7/8             67.2    72.8  1.071   0.702             1.33x                 yes
googlenet b32 (unoptimized: total 2758.7, real peak 2797.7):
  931.5     0/0           1077.3  1116.3  1.019   0.000             1.10x                 yes
  732.5     2/6            878.3   917.2  1.023   0.121             1.05x                 yes
  527.3     1/2            673.1   712.0  1.029   0.308             1.07x                 yes
  299.2     5/6            445.0   483.9  1.044   0.665             1.17x                 yes
vgg-A b16: planned on meta only (a real b16 step takes minutes here): arena 557.4 -> 441.1 MiB
  (total 1571.1 -> 1454.7, params and gradients 1013.7) at 0.012 extra forward; the first
  layer's output and its gradient (205 MiB each) bound it: nothing smaller is reachable by
  segment recomputation.
"""
import argparse
import copy
import gc
import json
import os
import statistics
import sys
import time
import tracemalloc


def _threads(argv):
    n = '1'
    for i, a in enumerate(argv):
        if a == '--threads' and i + 1 < len(argv):
            n = argv[i + 1]
        elif a.startswith('--threads='):
            n = a.split('=', 1)[1]
    for k in ('OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'MKL_NUM_THREADS'):
        os.environ[k] = n
    return n


THREADS = _threads(sys.argv[1:]) if __name__ == '__main__' else None
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))

import numpy as np  # noqa: E402
import pynn  # noqa: E402
from pynn import optnet  # noqa: E402
from pynn.optnet import recompute, report, tables  # noqa: E402
from pynn.optnet.trace import recursive_clone, tensors_of  # noqa: E402

MiB = 1048576.0
MODELS = {'resnet': ('resnet-110-cifar', 64, 8, 'nobn'),
          'googlenet': ('googlenet', 32, 2, 'today'),
          'vgg': ('vgg-A', 16, 1, 'today')}
SETTING = next(s for s in tables.SETTINGS if s['key'] == 'training_cudnn_float_batch64')


def build(model, batch, meta=False):
    name, _, _, network = MODELS[model]
    net, x = tables.prepare(dict(SETTING, batch=batch), name, meta=meta, network=network)
    return net, x


def gradient_for(net, x):
    pynn.manualSeed(5)
    g = recursive_clone(net.forward(x))
    for t in tensors_of(g):
        t.copy(pynn.rand(*t.size()).type(t.type()))
    return g


def step(net, x, g):
    pynn.manualSeed(11)
    net.zeroGradParameters()
    net.forward(x)
    return net.backward(x, g)


def arrays(x):
    return [t.numpy().copy() for t in tensors_of(x)]


def nbytes(x):
    return sum(t.nElement() * t.elementSize() for t in tensors_of(x))


def peak_of(make, x, g):
    """Real peak (bytes, tracemalloc) during one step of the network make() builds, with
    everything it holds allocated under tracing; and countUsedMemory's total then."""
    gc.collect()
    tracemalloc.start()
    try:
        net = make()
        xs, gs = recursive_clone(x), recursive_clone(g)
        step(net, xs, gs)
        gc.collect()
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        step(net, xs, gs)
        cur, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    total = optnet.countUsedMemory(net)['total_size']
    del net
    gc.collect()
    return peak, base, total


def timed(net, x, g):
    t = time.perf_counter()
    step(net, x, g)
    return time.perf_counter() - t


def run_model(model, batch, runs, points, out, target=None):
    pynn.manualSeed(0)
    net0, x = build(model, batch)
    net0.training()
    g = gradient_for(net0, x)
    mnet, mx = build(model, batch, meta=True)
    mnet.training()
    t0 = time.perf_counter()
    planner = recompute.Planner(mnet, mx, {'mode': 'training', 'planner': 'optimal'})
    frontier = planner.frontier()
    plan_s = time.perf_counter() - t0
    base = planner.base()
    if len(frontier) > points:  # keep the ends, spread the rest over the memory range
        idx = sorted(set(int(round(i)) for i in np.linspace(0, len(frontier) - 1, points)))
        chosen = [frontier[i] for i in idx]
    else:
        chosen = list(frontier)
    params = sum(t.nElement() * t.elementSize() for ts in net0.parameters() for t in ts)
    if target:  # the cheapest plan whose total (arena + parameters and gradients) is within target
        fit = [c for c in frontier if c.arena + params <= target * MiB]
        if fit and fit[0] not in chosen:
            chosen = sorted(chosen + [fit[0]], key=lambda c: -c.arena)
    print('\n%s batch %d float32 (cudnn modules%s): %d units, forward %.3g FLOPs; no-recompute arena '
          '%.2f MiB, smallest reachable %.2f MiB (frontier of %d plans, %.1f s on meta)'
          % (MODELS[model][0], batch, ', no batch norm' if model == 'resnet' else '', planner.n,
             planner.forward_flops, base.arena / MiB, frontier[-1].arena / MiB, len(frontier), plan_s))
    sys.stdout.flush()

    # the unoptimized network: gradients, time, peak
    ref = copy.deepcopy(net0)
    step(ref, x, g)
    want = arrays(ref.gradInput) + [p.numpy().copy() for p in ref.parameters()[1]]
    ref_peak, ref_base, ref_total = peak_of(lambda: copy.deepcopy(net0), x, g)
    io = nbytes(x) + nbytes(g)
    print('  unoptimized: countUsedMemory %.1f MiB, real peak %.1f MiB (+ input/gradOutput %.1f MiB)'
          % (ref_total / MiB, ref_peak / MiB, io / MiB))
    hdr = ('  %-10s %8s %9s %9s %9s %9s %7s %8s %8s %6s'
           % ('budget', 'segments', 'arena', 'total', 'tot.arena', 'peak', 'peak/c', 'extra_fw', 'step', 'exact'))
    print(hdr)
    rows = []
    for c in chosen:
        opts = {'mode': 'training', 'planner': 'optimal', 'budget': int(c.arena)}
        opt = copy.deepcopy(net0)
        t0 = time.perf_counter()
        optnet.optimizeMemory(opt, x, opts)
        opt_s = time.perf_counter() - t0
        got_arena = opt._pynn_arena.plan.nbytes
        step(opt, x, g)
        got = arrays(opt.gradInput) + [p.numpy().copy() for p in opt.parameters()[1]]
        exact = len(got) == len(want) and all(np.array_equal(a, b) for a, b in zip(got, want))
        total = optnet.countUsedMemory(opt)['total_size']
        at = report.arena_memory(opt)['total_size']
        tr, to = [], []
        for _ in range(runs):   # in turn: the machine's load hits both alike
            tr.append(timed(ref, x, g))
            to.append(timed(opt, x, g))
        ratio = statistics.median(to) / statistics.median(tr)
        info = opt.__dict__.get('_pynn_recompute_info') or {}
        measured = info.get('measured_ratio')
        keep = opt
        del opt
        gc.collect()
        peak, _, ptotal = peak_of(lambda: copy.deepcopy(keep), x, g)  # the arena allocated under tracing
        del keep
        pc = peak / (ptotal + io)
        row = {'model': MODELS[model][0], 'batch': batch, 'budget': int(c.arena), 'arena': got_arena,
               'segments': c.segments, 'recomputed': c.recomputed, 'countUsedMemory_total': total,
               'arena_memory_total': at, 'real_peak': peak, 'input_gradOutput': io,
               'peak_over_count': pc, 'extra_flops': c.flops,
               'extra_forwards': c.flops / max(1, planner.forward_flops),
               'measured_extra_forwards': measured, 'step_ratio': ratio,
               'step_s': statistics.median(to), 'ref_step_s': statistics.median(tr), 'exact': exact,
               'optimizeMemory_s': opt_s}
        rows.append(row)
        print('  %-10.1f %4d/%-3d %9.1f %9.1f %9.1f %9.1f %7.3f %8.3f %7.3fx %6s'
              % (c.arena / MiB, c.recomputed, c.segments, got_arena / MiB, total / MiB, at / MiB,
                 peak / MiB, pc, row['extra_forwards'], ratio, exact))
        sys.stdout.flush()
    out.extend(rows)
    return rows


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--quick', action='store_true', help='smaller batches (resnet 8, googlenet 2, vgg 1)')
    p.add_argument('--model', action='append', choices=sorted(MODELS), help='repeatable; default all')
    p.add_argument('--batch', type=int, help='override the batch size')
    p.add_argument('--runs', type=int, default=3, help='timed steps per plan and reference (median)')
    p.add_argument('--points', type=int, default=6, help='budgets per network (frontier ends included)')
    p.add_argument('--threads', default='1', help='BLAS threads (default 1)')
    p.add_argument('--target', type=float, default=214.0,
                   help='resnet: also the cheapest plan whose total (arena + parameters) is within this '
                        'many MiB (default 214, half the original optnet\'s published 428)')
    p.add_argument('--json', help='write the rows to this file')
    p.add_argument('--workspace', type=float, default=4.0,
                   help="MiB of the cudnn convolutions' transient unfold workspace (pynn.cudnn."
                        "setWorkspaceLimit; default 4, pynn's default 64: a transient that "
                        "countUsedMemory, as Lua's, does not count, and the real peak does)")
    a = p.parse_args()
    from pynn import cudnn
    cudnn.setWorkspaceLimit(int(a.workspace * MiB))
    print('pynn recomputation benchmark: BLAS threads %s, numpy %s, %d CPU(s) (shared machine: '
          'timings are medians measured in turn with the unoptimized net); cudnn workspace %.1f MiB'
          % (os.environ.get('OPENBLAS_NUM_THREADS'), np.__version__, os.cpu_count(), a.workspace))
    out = []
    for model in a.model or ['resnet', 'googlenet', 'vgg']:
        batch = a.batch or (MODELS[model][2] if a.quick else MODELS[model][1])
        run_model(model, batch, a.runs, a.points, out, a.target if model == 'resnet' else None)
        if a.json:
            with open(a.json, 'w') as f:
                json.dump(out, f, indent=1)


if __name__ == '__main__':
    main()
