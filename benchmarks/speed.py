"""Forward+backward time per batch: pynn versus PyTorch CPU on the same network.

Same network (weights copied), batch, dtype (float32) and thread count for both sides;
the two systems alternate, and each figure is the median of several runs.

    python benchmarks/speed.py [--threads N] [--repeats R]
"""
import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from threadpoolctl import threadpool_limits, threadpool_info  # noqa: E402

import pynn  # noqa: E402
from pynn import models  # noqa: E402
from torchnet import to_torch  # noqa: E402

CASES = [
    ('resnet-20 CIFAR', lambda: models.resnet({'dataset': 'cifar10', 'depth': 20}, batch=32)),
    ('alexnet', lambda: models.alexnet(batch=8)),
]


def time_pynn(net, x, g):
    t0 = time.perf_counter()
    net.forward(x)
    net.zeroGradParameters()
    net.backward(x, g)
    return time.perf_counter() - t0


def time_torch(tnet, x, g):
    t0 = time.perf_counter()
    out = tnet(x)
    tnet.zero_grad(set_to_none=False)
    if x.grad is not None:
        x.grad.zero_()
    out.backward(g)
    return time.perf_counter() - t0


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument('--threads', type=int, default=os.cpu_count())
    p.add_argument('--repeats', type=int, default=7)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    pynn.setdefaulttensortype('torch.FloatTensor')
    with threadpool_limits(limits=args.threads, user_api='blas'):
        blas = [(i['internal_api'], i['num_threads']) for i in threadpool_info() if i['user_api'] == 'blas']
        print('threads: torch %d, numpy BLAS %s; float32; median of %d alternating runs'
              % (torch.get_num_threads(), blas, args.repeats))
        print('%-18s %12s %12s %8s' % ('network', 'pynn s/batch', 'torch s/batch', 'ratio'))
        for name, build in CASES:
            pynn.manualSeed(1)
            net, x = build()
            net.training()
            tnet = to_torch(net)
            tnet.train()
            out = net.forward(x)
            g = pynn.rand(*out.size())
            tx = torch.from_numpy(x.numpy().copy()).requires_grad_(True)
            tg = torch.from_numpy(g.numpy().copy())
            # warm-up (sizes every pynn buffer; lets torch allocate)
            time_pynn(net, x, g)
            time_torch(tnet, tx, tg)
            ours, theirs = [], []
            for _ in range(args.repeats):
                ours.append(time_pynn(net, x, g))
                theirs.append(time_torch(tnet, tx, tg))
            a, b = statistics.median(ours), statistics.median(theirs)
            print('%-18s %12.4f %12.4f %7.2fx' % (name, a, b, a / b))
            sys.stdout.flush()
    return 0


if __name__ == '__main__':
    sys.exit(main())
