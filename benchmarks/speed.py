"""Training-step and inference time per batch: pynn versus PyTorch CPU on the same network.

Training step = forward + zeroGradParameters + backward (training mode); inference = forward
in evaluate mode (torch: eval() and no_grad()). Same network (weights copied), batch, dtype
(float32) and thread count for both sides (threadpoolctl limits NumPy's BLAS,
torch.set_num_threads limits torch); each thread count in one run; the two systems
alternate, and each figure is the median of several runs. Each timed run starts after an
idle pause (--gap, seconds): after a parallel call OpenBLAS's and OpenMP's worker threads
spin-wait for a while, and without the pause those of the system that ran just before
share the cores with the one being timed (measured on resnet-20's 2-thread inference:
PyTorch's 2.1-2.3x slower right after pynn's, pynn's 1.1-1.4x after PyTorch's); --gap 0
times them back to back.

The inference columns also time a copy of the network after optnet.optimizeMemory (mode
'inference', the original's defaults): same weights and outputs, its buffers shared, so that
they stay in cache from one layer to the next.

PyTorch's CPU convolutions run through oneDNN (mkldnn): direct convolutions in JIT-generated
SIMD code; so do pynn's float32 ones where oneDNN is installed (pynn.nn.dnnl). --torch-gemm
adds a line per row with PyTorch's own matrix-product convolution
(torch.backends.mkldnn.enabled = False: an unfolding and a BLAS GEMM, the algorithm of
Torch7's nn and of pynn's NumPy kernels), timed in the same alternation, and pynn's ratios to
it. With PYNN_DNNL=0 in the environment pynn runs its NumPy kernels.

    python benchmarks/speed.py [--threads 1,2] [--repeats R] [--gap S] [--nets resnet,...]
                               [--torch-gemm]
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
from pynn import models, optnet  # noqa: E402
from torchnet import to_torch  # noqa: E402

CASES = [
    ('resnet-20 CIFAR b32', 'resnet', lambda: models.resnet({'dataset': 'cifar10', 'depth': 20}, batch=32)),
    ('alexnet b8', 'alexnet', lambda: models.alexnet(batch=8)),
    ('vgg-A b2', 'vgg', lambda: models.vgg('A', batch=2)),
    ('googlenet b4', 'googlenet', lambda: models.googlenet(batch=4)),
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


def infer_pynn(net, x, g=None):
    t0 = time.perf_counter()
    net.forward(x)
    return time.perf_counter() - t0


def infer_torch(tnet, x, g=None):
    t0 = time.perf_counter()
    with torch.no_grad():
        tnet(x)
    return time.perf_counter() - t0


def _without_mkldnn(f):
    """f timed with PyTorch's convolutions on its matrix-product path (oneDNN off)."""
    def run(*a):
        torch.backends.mkldnn.enabled = False
        try:
            return f(*a)
        finally:
            torch.backends.mkldnn.enabled = True
    return run


def _alternate(runs, repeats, gap):
    """Medians of `repeats` timed runs of each (function, args) in runs, taken in turn."""
    for f, a in runs:
        f(*a)  # warm-up (sizes every pynn buffer; lets torch allocate)
    times = [[] for _ in runs]
    for _ in range(repeats):
        for (f, a), t in zip(runs, times):
            time.sleep(gap)
            t.append(f(*a))
    return [statistics.median(t) for t in times]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument('--threads', default='1,2', help='comma-separated thread counts')
    p.add_argument('--repeats', type=int, default=5)
    p.add_argument('--gap', type=float, default=0.1,
                   help='idle seconds before each timed run (0: back to back)')
    p.add_argument('--nets', default=','.join(c[1] for c in CASES))
    p.add_argument('--torch-gemm', action='store_true',
                   help="also time PyTorch's matrix-product convolutions (oneDNN off)")
    args = p.parse_args(argv)
    threads = [int(t) for t in args.threads.split(',')]
    wanted = set(args.nets.split(','))
    pynn.setdefaulttensortype('torch.FloatTensor')
    print('float32; median of %d alternating runs, %.2f s idle before each; training step = '
          'forward + zeroGradParameters + backward; inference = forward in evaluate mode'
          % (args.repeats, args.gap))
    print('%-20s %3s | %9s %9s %6s | %9s %9s %6s | %9s %6s'
          % ('network', 'thr', 'train pynn', 'torch', 'ratio', 'infer pynn', 'torch', 'ratio',
             '+optnet', 'ratio'))
    for name, key, build in CASES:
        if key not in wanted:
            continue
        pynn.manualSeed(1)
        net, x = build()
        net.training()
        tnet = to_torch(net)
        out = net.forward(x)
        g = pynn.rand(*out.size())
        tx = torch.from_numpy(x.numpy().copy()).requires_grad_(True)
        tg = torch.from_numpy(g.numpy().copy())
        pynn.manualSeed(1)
        onet = build()[0]
        onet.evaluate()
        net.evaluate()
        want = net.forward(x).numpy().copy()
        optnet.optimizeMemory(onet, x, {'mode': 'inference'})
        np.testing.assert_array_equal(onet.forward(x).numpy(), want)
        for nt in threads:
            torch.set_num_threads(nt)
            with threadpool_limits(limits=nt, user_api='blas'):
                net.training()
                tnet.train()
                runs = [(time_pynn, (net, x, g)), (time_torch, (tnet, tx, tg))]
                if args.torch_gemm:
                    runs.append((_without_mkldnn(time_torch), (tnet, tx, tg)))
                a, b, *bg = _alternate(runs, args.repeats, args.gap)
                net.evaluate()
                tnet.eval()
                runs = [(infer_pynn, (net, x)), (infer_torch, (tnet, tx)), (infer_pynn, (onet, x))]
                if args.torch_gemm:
                    runs.append((_without_mkldnn(infer_torch), (tnet, tx)))
                c, d, e, *dg = _alternate(runs, args.repeats, args.gap)
                net.training()
                tnet.train()
            print('%-20s %3d | %9.4f %9.4f %5.2fx | %9.4f %9.4f %5.2fx | %9.4f %5.2fx'
                  % (name, nt, a, b, a / b, c, d, c / d, e, e / d))
            if args.torch_gemm:
                print('%-20s %3s | %9s %9.4f %5.2fx | %9s %9.4f %5.2fx | %9s %5.2fx'
                      % ('  torch oneDNN off', '', '', bg[0], a / bg[0], '', dg[0], c / dg[0],
                         '', e / dg[0]))
            sys.stdout.flush()
    blas = [(i['internal_api'], i['num_threads']) for i in threadpool_info() if i['user_api'] == 'blas']
    print('BLAS: %s' % blas)
    return 0


if __name__ == '__main__':
    sys.exit(main())
