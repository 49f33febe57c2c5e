"""Which convolution algorithm for which layer: SpatialConvolution forward + backward per batch
with each of pynn's algorithms forced, next to PyTorch CPU on the same layer.

  * mm:   THNN's im2col + GEMM, GEMM + col2im (always possible);
  * grid: functional.conv2d_grid_* (stride 1; one GEMM of (kH*nOut) x (kW*nIn) over the
          zero-separated planes, see conv2d_grid_fits);
  * flip: updateGradInput as im2col(gradOutput) + GEMM with the flipped kernels (stride 1);
  * numpy: what pynn picks among those three (pynn without oneDNN).
'auto' is what pynn picks: oneDNN's convolutions (pynn.nn.dnnl) where installed and the
module's buffers hold their working memory, else 'numpy'. float32, one batch size per layer, same thread count for both
sides; the variants and PyTorch alternate (each timed run follows an untimed one of the
same variant, so that none starts on the caches another left), medians of the runs (ms).
With more than one thread each timed pair starts after an idle pause (--gap, 0.1 s by
default there) so that the worker threads of the previous system, spin-waiting after their
last call, have gone to sleep (see benchmarks/speed.py).

    python benchmarks/conv_algorithms.py [--threads 1] [--repeats R] [--gap S]
"""
import argparse
import contextlib
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))

import torch  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

import pynn  # noqa: E402
from pynn import nn  # noqa: E402
from pynn.nn import dnnl  # noqa: E402
from pynn.nn import functional as F  # noqa: E402
from pynn.nn.conv import spatial  # noqa: E402

# (batch, nIn, nOut, size, k, stride, pad): CIFAR ResNet's layers, then a few wider ones
LAYERS = [(32, 3, 16, 32, 3, 1, 1), (32, 8, 8, 32, 3, 1, 1), (32, 12, 12, 32, 3, 1, 1),
          (32, 16, 16, 32, 3, 1, 1), (32, 21, 21, 32, 3, 1, 1), (32, 32, 32, 16, 3, 1, 1),
          (32, 64, 64, 8, 3, 1, 1), (32, 16, 32, 32, 3, 2, 1), (32, 16, 32, 32, 1, 2, 0),
          (4, 16, 32, 28, 5, 1, 2), (8, 128, 128, 13, 3, 1, 1), (2, 256, 256, 28, 3, 1, 1)]

_fits = F.conv2d_grid_fits
_flip = spatial._SpatialConvolutionMMBase._flipped_conv_cols


def _force(kind):
    F.conv2d_grid_fits = _fits if kind in ('auto', 'numpy', 'grid') else (lambda *a: False)
    if kind == 'grid':
        F.conv2d_grid_fits = lambda B, C, H, W, kH, kW, dH, dW, pH, pW, room: (
            dH == dW == 1 and kH > 1 and kW > 1 and pH < kH and pW < kW
            and kW * C * F.grid_row_length(B, H, W, kH, kW, pH, pW) <= room)
    spatial._SpatialConvolutionMMBase._flipped_conv_cols = (
        _flip if kind in ('auto', 'numpy', 'flip') else (lambda self, *a: None))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument('--threads', type=int, default=1)
    p.add_argument('--repeats', type=int, default=7)
    p.add_argument('--gap', type=float, default=None,
                   help='idle seconds before each timed pair (default 0.1 with threads > 1, else 0)')
    args = p.parse_args(argv)
    gap = args.gap if args.gap is not None else (0.1 if args.threads > 1 else 0.0)
    pynn.setdefaulttensortype('torch.FloatTensor')
    torch.set_num_threads(args.threads)
    kinds = ['auto', 'numpy', 'mm', 'grid', 'flip']
    print('forward + backward, ms (median of %d, %d thread(s)); - : algorithm not applicable'
          % (args.repeats, args.threads))
    print('%-34s' % 'B x nIn -> nOut, size, k/stride' + ''.join('%8s' % k for k in kinds)
          + '%8s %6s' % ('torch', 'auto/t'))
    with threadpool_limits(limits=args.threads, user_api='blas'):
        for (B, nIn, nOut, size, k, d, pad) in LAYERS:
            pynn.manualSeed(1)
            m = nn.SpatialConvolution(nIn, nOut, k, k, d, d, pad, pad)
            x = pynn.randn(B, nIn, size, size)
            y = m.forward(x)
            g = pynn.randn(*y.size())
            tc = torch.nn.Conv2d(nIn, nOut, k, d, pad)
            tx = torch.randn(B, nIn, size, size, requires_grad=True)
            tg = torch.randn(*y.size())

            def run_pynn(kind):
                with contextlib.nullcontext() if kind == 'auto' else dnnl.disabled():
                    t0 = time.perf_counter()
                    m.forward(x)
                    m.backward(x, g)
                    return time.perf_counter() - t0

            def run_torch():
                t0 = time.perf_counter()
                tc(tx).backward(tg)
                return time.perf_counter() - t0

            applicable = {'auto': True, 'numpy': True, 'mm': True,
                          'grid': d == 1 and k > 1, 'flip': d == 1 and nOut * k * k <= 1024}
            times = {kd: [] for kd in kinds + ['torch']}
            for r in range(args.repeats + 1):
                for kd in kinds:   # each timed run right after an untimed one of its own
                    if applicable[kd]:
                        _force(kd)
                        time.sleep(gap)
                        run_pynn(kd)
                        t = run_pynn(kd)
                        if r:
                            times[kd].append(t)
                time.sleep(gap)
                run_torch()
                t = run_torch()
                if r:
                    times['torch'].append(t)
            _force('auto')
            med = {kd: statistics.median(v) * 1e3 for kd, v in times.items() if v}
            print('%-34s' % ('%d x %d -> %d, %d, %d/%d' % (B, nIn, nOut, size, k, d))
                  + ''.join('%8.2f' % med[kd] if kd in med else '%8s' % '-' for kd in kinds)
                  + '%8.2f %5.2fx' % (med['torch'], med['auto'] / med['torch']))
            sys.stdout.flush()
    return 0


if __name__ == '__main__':
    sys.exit(main())
