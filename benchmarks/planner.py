"""Benchmark of optnet's 'optimal' planner (arena offsets at the liveness lower bound).

    python benchmarks/planner.py                 # resnet-1202 planning, resnet-110 speed
    python benchmarks/planner.py --quick         # resnet-110 planning, resnet-20 speed

1. Planning time on ResNet-1202 (CIFAR, batch 1, training), against one forward+backward of
   the same network (the requirement: below 2x):
     plan on the meta copy   a whole plan, as a replan makes it: forward+backward traced on
                             the meta device (no arithmetic), liveness, placement;
     arena.optimize          what optimizeMemory calls: one traced forward+backward of the
                             real network, liveness, placement, applying the plan; "planning"
                             is its time beyond a plain forward+backward measured alongside;
     optimizeMemory in all   for reference (its own runs before the planner's too).
2. Forward+backward (training) and forward (inference) time of the optimized network
   against the unoptimized one, side by side, and the memory of both.
All times are medians of --runs runs; ratios are taken between medians measured in turn.
"""
import argparse
import gc
import os
import statistics
import sys
import time
import warnings


def _threads(argv):
    """BLAS threads (before NumPy loads): 1 unless --threads N; a loaded machine makes
    multi-threaded BLAS timings swing by an order of magnitude."""
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

import pynn  # noqa: E402
from pynn import optnet  # noqa: E402
from pynn.optnet import arena, liveness, report  # noqa: E402
from pynn.optnet.trace import recursive_clone  # noqa: E402
from pynn import models  # noqa: E402

MiB = 1048576.0


def resnet(depth, batch):
    pynn.manualSeed(1)
    return models.resnet({'dataset': 'cifar10', 'depth': depth}, batch=batch)


def median_time(fn, runs):
    times = []
    for _ in range(runs):
        gc.collect()
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times


def fwd_bwd(net, inp):
    def run():
        out = net.forward(inp)
        net.backward(inp, recursive_clone(out))
    return run


def planning(depth, runs):
    print('== planning: resnet-%d (CIFAR), batch 1, float32, training; medians of %d runs' % (depth, runs))
    net, inp = resnet(depth, 1)
    n_mods = len(net.listModules())
    run = fwd_bwd(net, inp)
    run()
    state = arena.ArenaState('training', True)
    meta = arena.meta_copy(net)
    sample = arena._meta_from(arena._template(inp))
    fb, meta_t, opt_t, extra = [], [], [], []
    plan = None
    for _ in range(runs):  # each measure in turn, so that all see the same machine
        other, _ = resnet(depth, 1)
        fwd_bwd(other, inp)()                 # as optimizeMemory leaves it before planning
        gc.collect()
        f = median_time(run, 1)[0]
        t0 = time.perf_counter()
        plan = arena._plan_on_copy(meta, state, sample)     # a whole plan, as a replan makes it
        meta_t.append(time.perf_counter() - t0)
        gc.collect()
        t0 = time.perf_counter()
        arena.optimize(other, inp, 'training', {'reuseBuffers': True})
        o = time.perf_counter() - t0
        fb.append(f)
        opt_t.append(o)
        extra.append(o - f)
        del other
    fb, meta_t, opt_t, extra = (statistics.median(v) for v in (fb, meta_t, opt_t, extra))

    whole, _ = resnet(depth, 1)
    t0 = time.perf_counter()
    optnet.optimizeMemory(whole, inp, {'mode': 'training', 'planner': 'optimal'})
    total_t = time.perf_counter() - t0
    del whole

    print('  modules %d, buffers %d, spans %d' % (n_mods, len(plan.schedule.buffers), plan.schedule.spans))
    print('  %-50s %8.3f s' % ('forward+backward (unoptimized)', fb))
    print('  %-50s %8.3f s   %.3fx of forward+backward' % ('plan on the meta copy (trace, liveness, placement)',
                                                           meta_t, meta_t / fb))
    print('  %-50s %8.3f s   %.3fx' % ('arena.optimize (traced real run, plan, apply)', opt_t, opt_t / fb))
    print('  %-50s %8.3f s   %.3fx' % ('  of which planning (beyond the run itself)', extra, extra / fb))
    print('  %-50s %8.3f s   %.3fx' % ('optimizeMemory in all (its own runs too)', total_t, total_t / fb))
    worst = max(meta_t, extra)
    print('  planning / forward+backward = %.3f (required < 2): %s'
          % (worst / fb, 'ok' if worst < 2 * fb else 'TOO SLOW'))
    lb = plan.schedule.lower_bound()
    print('  arena %.2f MiB, liveness lower bound %.2f MiB (%.4fx)' % (plan.nbytes / MiB, lb / MiB, plan.nbytes / lb))
    return worst / fb


def speed(depth, batch, runs):
    print('== speed: resnet-%d (CIFAR), batch %d, float32; medians of %d runs' % (depth, batch, runs))
    rows = []
    for mode in ('training', 'inference'):
        base, inp = resnet(depth, batch)
        opt, _ = resnet(depth, batch)
        if mode == 'inference':
            base.evaluate()
            opt.evaluate()
            run_b, run_o = (lambda: base.forward(inp)), (lambda: opt.forward(inp))
        else:
            run_b, run_o = fwd_bwd(base, inp), fwd_bwd(opt, inp)
        run_b()
        optnet.optimizeMemory(opt, inp, {'mode': mode, 'planner': 'optimal'})
        run_o()
        tb, to = [], []
        for _ in range(runs):  # alternate, so that both see the same machine
            tb.append(median_time(run_b, 1)[0])
            to.append(median_time(run_o, 1)[0])
        mb = optnet.countUsedMemory(base)
        mo = report.arena_memory(opt)
        keys = ('outputs', 'gradInputs', 'buffers')
        rows.append((mode, statistics.median(tb), statistics.median(to),
                     sum(mb[k] for k in keys), sum(mo[k] for k in keys)))
    print('  %-10s %14s %14s %8s   %16s %16s' % ('mode', 'unoptimized s', 'optimized s', 'ratio',
                                               'unopt. MiB', 'optimized MiB'))
    for mode, b, o, mb, mo in rows:
        print('  %-10s %14.4f %14.4f %8.3f   %16.2f %16.2f' % (mode, b, o, o / b, mb / MiB, mo / MiB))
    print('  (time: forward+backward in training, forward in inference; memory: outputs + gradInputs'
          ' + buffers, the arena counted once)')
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--plan-depth', type=int, default=1202)
    p.add_argument('--speed-depth', type=int, default=110)
    p.add_argument('--batch', type=int, default=8)
    p.add_argument('--runs', type=int, default=5)
    p.add_argument('--threads', default='1', help='BLAS threads (default 1)')
    p.add_argument('--quick', action='store_true', help='resnet-110 planning, resnet-20 speed, 3 runs')
    a = p.parse_args(argv)
    warnings.simplefilter('ignore', RuntimeWarning)  # resnet-1202 without batch norm overflows
    print('BLAS threads: %s; numpy %s' % (os.environ.get('OPENBLAS_NUM_THREADS'), __import__('numpy').__version__))
    if a.quick:
        a.plan_depth, a.speed_depth, a.runs = 110, 20, 3
    pynn.setdefaulttensortype('torch.FloatTensor')
    planning(a.plan_depth, a.runs)
    speed(a.speed_depth, a.batch, a.runs)


if __name__ == '__main__':
    main()
