""".t7 files: loading, type conversion and saving of large networks, pynn next to torchfile.

Cases: vgg-A (float32, saved by pynn: one large file, mostly weights), and deep nested graphs
(nngraph gModules nested in each other, many small shared objects), if pynn.nngraph exists.
pynn.load and torchfile.load read the same file, alternating; each figure is the median of
the repeats.

    python benchmarks/t7.py [--repeats R] [--depth D]
"""
import argparse
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))

import torchfile  # noqa: E402

import pynn  # noqa: E402
from pynn import nn, models  # noqa: E402

MiB = 1048576.0


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def nested_graph(depth, width):
    """A gModule of `width` Linear+Tanh nodes per level, each level's graph nested in the next:
    `depth` levels, so about depth*width*4 objects reachable along many paths."""
    from pynn import nngraph
    inner = None
    for _ in range(depth):
        x = nn.Identity()()
        h = x
        for _ in range(width):
            h = nn.Tanh()(nn.Linear(4, 4)(h))
        if inner is not None:
            h = inner(h)
        inner = nngraph.gModule([x], [h])
    return inner


def count_objects(net):
    seen, todo = set(), [net]
    while todo:
        o = todo.pop()
        if id(o) in seen or not hasattr(o, '__dict__') and not isinstance(o, (list, dict)):
            continue
        seen.add(id(o))
        vals = o if isinstance(o, list) else o.values() if isinstance(o, dict) else vars(o).values()
        todo.extend(v for v in vals if isinstance(v, (list, dict)) or hasattr(v, '__dict__'))
    return len(seen)


def bench(name, net, repeats, tmp):
    path = os.path.join(tmp, name + '.t7')
    t_save, _ = timed(lambda: pynn.save(path, net))
    size = os.path.getsize(path) / MiB
    loads, tfs = [], []
    for _ in range(repeats):     # alternate the two readers
        loads.append(timed(lambda: pynn.load(path))[0])
        tfs.append(timed(lambda: torchfile.load(path))[0])
    loaded = pynn.load(path)
    t_double, _ = timed(lambda: loaded.double())
    t_float, _ = timed(lambda: loaded.float())
    t_save2, _ = timed(lambda: pynn.save(path, loaded))
    lp, lt = statistics.median(loads), statistics.median(tfs)
    print('%-28s %8.1f MiB %7d objects | load pynn %7.3f s (%6.0f MiB/s)  torchfile %7.3f s (%6.0f MiB/s)  '
          'ratio %.2fx | double() %.3f s  float() %.3f s | save %.3f s'
          % (name, size, count_objects(loaded), lp, size / lp, lt, size / lt, lp / lt,
             t_double, t_float, t_save2))
    return lp, lt


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--repeats', type=int, default=5)
    p.add_argument('--depth', type=int, default=20, help='nesting depth of the nested graph')
    args = p.parse_args(argv)
    pynn.setdefaulttensortype('torch.FloatTensor')
    with tempfile.TemporaryDirectory() as tmp:
        pynn.manualSeed(1)
        net, _ = models.vgg('A')
        bench('vgg-A float32', net, args.repeats, tmp)
        try:
            from pynn import nngraph  # noqa: F401
        except ImportError:
            print('(no pynn.nngraph: nested-graph case skipped)')
            return
        for depth in (args.depth // 2, args.depth):
            g = nested_graph(depth, 25)
            bench('nested gModule depth %d' % depth, g, args.repeats, tmp)


if __name__ == '__main__':
    main()
