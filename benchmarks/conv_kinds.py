"""Forward+backward time per batch of the new convolution kinds: pynn versus PyTorch CPU.

Three small networks, each built in pynn and copied (same weights) into PyTorch:
  * C3D-like: VolumetricConvolution 3x3x3 stack (strided instead of pooled) + ReLU;
  * text CNN: TemporalConvolution stack over (batch x words x embedding) + ReLU;
  * encoder-decoder: SpatialConvolution 4x4/2 down, SpatialFullConvolution 4x4/2 up + ReLU;
  * (extra) dilated context net: SpatialDilatedConvolution 3x3, dilations 1, 2, 4.
Same batch, dtype (float32) and thread count for both sides (threadpoolctl for NumPy's BLAS,
torch.set_num_threads); the two systems alternate, each figure is the median of the runs.

    python benchmarks/conv_kinds.py [--threads N] [--repeats R]
"""
import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from threadpoolctl import threadpool_limits, threadpool_info  # noqa: E402

import pynn  # noqa: E402
from pynn import nn  # noqa: E402


def _t(x):
    return torch.nn.Parameter(torch.from_numpy(x.numpy().copy()))


class _TimeFirst(torch.nn.Module):
    """(B, T, C) in and out, as TemporalConvolution takes it: transposes around Conv1d."""

    def __init__(self, body):
        super().__init__()
        self.body = body

    def forward(self, x):
        return self.body(x.transpose(1, 2)).transpose(1, 2)


def to_torch(net):
    """A torch.nn.Sequential with the same layers and weights as a pynn Sequential."""
    mods = []
    temporal = False
    for m in net.modules:
        t = m.__typename__
        if t == 'nn.ReLU':
            mods.append(torch.nn.ReLU())
            continue
        if t == 'nn.VolumetricConvolution':
            c = torch.nn.Conv3d(m.nInputPlane, m.nOutputPlane, (m.kT, m.kH, m.kW),
                                (m.dT, m.dH, m.dW), (m.padT, m.padH, m.padW))
            c.weight = _t(m.weight)
        elif t == 'nn.TemporalConvolution':
            temporal = True
            c = torch.nn.Conv1d(m.inputFrameSize, m.outputFrameSize, m.kW, m.dW)
            w = m.weight.numpy().reshape(m.outputFrameSize, m.kW, m.inputFrameSize)
            c.weight = torch.nn.Parameter(torch.from_numpy(w.transpose(0, 2, 1).copy()))
        elif t in ('nn.SpatialConvolution', 'nn.SpatialDilatedConvolution'):
            dil = (m.dilationH or 1, m.dilationW or 1)
            c = torch.nn.Conv2d(m.nInputPlane, m.nOutputPlane, (m.kH, m.kW), (m.dH, m.dW),
                                (m.padH, m.padW), dil)
            c.weight = _t(m.weight)
        elif t == 'nn.SpatialFullConvolution':
            c = torch.nn.ConvTranspose2d(m.nInputPlane, m.nOutputPlane, (m.kH, m.kW),
                                         (m.dH, m.dW), (m.padH, m.padW), (m.adjH, m.adjW))
            c.weight = _t(m.weight)
        else:
            raise ValueError('no torch copy for %s' % t)
        c.bias = _t(m.bias)
        mods.append(c)
    seq = torch.nn.Sequential(*mods)
    return _TimeFirst(seq) if temporal else seq


def c3d(batch=4):
    net = (nn.Sequential()
           .add(nn.VolumetricConvolution(3, 32, 3, 3, 3, 1, 1, 1, 1, 1, 1)).add(nn.ReLU(True))
           .add(nn.VolumetricConvolution(32, 64, 3, 3, 3, 1, 2, 2, 1, 1, 1)).add(nn.ReLU(True))
           .add(nn.VolumetricConvolution(64, 64, 3, 3, 3, 2, 2, 2, 1, 1, 1)).add(nn.ReLU(True)))
    return net, pynn.randn(batch, 3, 8, 56, 56)


def text_cnn(batch=32):
    net = (nn.Sequential()
           .add(nn.TemporalConvolution(128, 256, 5)).add(nn.ReLU(True))
           .add(nn.TemporalConvolution(256, 256, 5, 2)).add(nn.ReLU(True))
           .add(nn.TemporalConvolution(256, 256, 3)).add(nn.ReLU(True)))
    return net, pynn.randn(batch, 200, 128)


def encoder_decoder(batch=8):
    net = (nn.Sequential()
           .add(nn.SpatialConvolution(3, 32, 4, 4, 2, 2, 1, 1)).add(nn.ReLU(True))
           .add(nn.SpatialConvolution(32, 64, 4, 4, 2, 2, 1, 1)).add(nn.ReLU(True))
           .add(nn.SpatialFullConvolution(64, 32, 4, 4, 2, 2, 1, 1)).add(nn.ReLU(True))
           .add(nn.SpatialFullConvolution(32, 3, 4, 4, 2, 2, 1, 1)))
    return net, pynn.randn(batch, 3, 96, 96)


def dilated(batch=8):
    net = (nn.Sequential()
           .add(nn.SpatialDilatedConvolution(16, 32, 3, 3, 1, 1, 1, 1, 1, 1)).add(nn.ReLU(True))
           .add(nn.SpatialDilatedConvolution(32, 32, 3, 3, 1, 1, 2, 2, 2, 2)).add(nn.ReLU(True))
           .add(nn.SpatialDilatedConvolution(32, 32, 3, 3, 1, 1, 4, 4, 4, 4)).add(nn.ReLU(True)))
    return net, pynn.randn(batch, 16, 64, 64)


CASES = [('C3D-like (volumetric)', c3d), ('text CNN (temporal)', text_cnn),
         ('encoder-decoder (full)', encoder_decoder), ('dilated context', dilated)]


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
    p.add_argument('--repeats', type=int, default=5)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    pynn.setdefaulttensortype('torch.FloatTensor')
    with threadpool_limits(limits=args.threads, user_api='blas'):
        blas = [(i['internal_api'], i['num_threads']) for i in threadpool_info()
                if i['user_api'] == 'blas']
        print('threads: torch %d, numpy BLAS %s; float32; median of %d alternating runs'
              % (torch.get_num_threads(), blas, args.repeats))
        print('%-24s %12s %13s %8s %10s' % ('network', 'pynn s/batch', 'torch s/batch', 'ratio',
                                            'max|dy|'))
        for name, build in CASES:
            pynn.manualSeed(1)
            net, x = build()
            net.training()
            tnet = to_torch(net)
            tnet.train()
            tx = torch.from_numpy(x.numpy().copy()).requires_grad_(True)
            out = net.forward(x)
            # same numbers on both sides (a check that the copy is the same network)
            err = float(np.abs(out.numpy() - tnet(tx).detach().numpy()).max())
            g = pynn.rand(*out.size())
            tg = torch.from_numpy(g.numpy().copy())
            time_pynn(net, x, g)       # warm-up (sizes every pynn buffer; lets torch allocate)
            time_torch(tnet, tx, tg)
            ours, theirs = [], []
            for _ in range(args.repeats):
                ours.append(time_pynn(net, x, g))
                theirs.append(time_torch(tnet, tx, tg))
            a, b = statistics.median(ours), statistics.median(theirs)
            print('%-24s %12.4f %13.4f %7.2fx %10.2g' % (name, a, b, a / b, err))
            sys.stdout.flush()
    return 0


if __name__ == '__main__':
    sys.exit(main())
