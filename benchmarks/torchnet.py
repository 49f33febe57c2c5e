"""A PyTorch copy of a pynn network (same layers, same weights), for side-by-side benchmarks.

Benchmark-only: torch is a test/benchmark dependency, never a runtime one.
"""
import torch
import torch.nn.functional as F

import pynn


def _t(x):
    return torch.from_numpy(x.numpy().copy())


class _Fn(torch.nn.Module):
    def __init__(self, fn, params=()):
        super().__init__()
        self.fn = fn
        self.ps = torch.nn.ParameterList([torch.nn.Parameter(p) for p in params])

    def forward(self, x):
        return self.fn(x, *self.ps)


class _Seq(torch.nn.Module):
    def __init__(self, mods):
        super().__init__()
        self.mods = torch.nn.ModuleList(mods)

    def forward(self, x):
        for m in self.mods:
            x = m(x)
        return x


class _Branches(torch.nn.Module):
    def __init__(self, mods, join):
        super().__init__()
        self.mods = torch.nn.ModuleList(mods)
        self.join = join

    def forward(self, x):
        return self.join([m(x) for m in self.mods])


def _pad_to(outs, dim):
    """DepthConcat: zero-pad every output (centred) to the largest size in the other dims."""
    sizes = [max(o.shape[k] for o in outs) for k in range(outs[0].dim())]
    res = []
    for o in outs:
        pads = []
        for k in range(o.dim() - 1, -1, -1):
            if k == dim:
                pads += [0, 0]
            else:
                extra = sizes[k] - o.shape[k]
                pads += [extra // 2, extra - extra // 2]
        res.append(F.pad(o, pads))
    return torch.cat(res, dim)


def to_torch(m):
    """The torch equivalent of pynn module m (weights copied)."""
    name = pynn.typename(m)
    d = m.__dict__
    if name == 'nn.Sequential':
        return _Seq([to_torch(c) for c in m.modules])
    if name == 'nn.ConcatTable':
        return _Branches([to_torch(c) for c in m.modules], list)
    if name == 'nn.Concat':
        dim = m.dimension - 1
        return _Branches([to_torch(c) for c in m.modules], lambda xs: torch.cat(xs, dim))
    if name == 'nn.DepthConcat':
        dim = m.dimension - 1
        return _Branches([to_torch(c) for c in m.modules], lambda xs: _pad_to(xs, dim))
    if name == 'nn.CAddTable':
        return _Fn(lambda xs: sum(xs[1:], xs[0]))
    if name == 'nn.JoinTable':
        return _Fn(lambda xs: torch.cat(xs, m.dimension - 1 + (1 if xs[0].dim() > (m.nInputDims or 99) else 0)))
    if name == 'nn.SpatialZeroPadding':  # F.pad crops for negative pads, as Lua does
        pads = (m.pad_l, m.pad_r, m.pad_t, m.pad_b)
        return _Fn(lambda x: F.pad(x, pads))
    if name == 'nn.Identity':
        return _Fn(lambda x: x)
    if name in ('nn.SpatialConvolution', 'nn.SpatialConvolutionMM', 'cudnn.SpatialConvolution'):
        w = _t(m.weight).reshape(m.nOutputPlane, m.nInputPlane, m.kH, m.kW)
        ps = [w] + ([_t(m.bias)] if d.get('bias') is not None else [])
        stride, pad = (m.dH, m.dW), (m.padH, m.padW)
        return _Fn(lambda x, w, *b: F.conv2d(x, w, b[0] if b else None, stride, pad), ps)
    if name in ('nn.ReLU', 'cudnn.ReLU'):
        return _Fn(F.relu)
    if name == 'nn.Threshold':
        return _Fn(lambda x: F.threshold(x, m.threshold, m.val))
    if name in ('nn.SpatialMaxPooling', 'cudnn.SpatialMaxPooling'):
        return _Fn(lambda x: F.max_pool2d(x, (m.kH, m.kW), (m.dH, m.dW), (m.padH, m.padW),
                                          ceil_mode=bool(m.ceil_mode)))
    if name in ('nn.SpatialAveragePooling', 'cudnn.SpatialAveragePooling'):
        return _Fn(lambda x: F.avg_pool2d(x, (m.kH, m.kW), (m.dH, m.dW), (m.padH, m.padW),
                                          ceil_mode=bool(m.ceil_mode),
                                          count_include_pad=bool(d.get('count_include_pad', True))))
    if name in ('nn.SpatialBatchNormalization', 'nn.BatchNormalization'):
        bn = torch.nn.BatchNorm2d(m.running_mean.nElement(), eps=m.eps, momentum=m.momentum) \
            if name.startswith('nn.Spatial') else \
            torch.nn.BatchNorm1d(m.running_mean.nElement(), eps=m.eps, momentum=m.momentum)
        with torch.no_grad():
            bn.running_mean.copy_(_t(m.running_mean))
            bn.running_var.copy_(_t(m.running_var))
            if d.get('weight') is not None:
                bn.weight.copy_(_t(m.weight))
                bn.bias.copy_(_t(m.bias))
        return bn
    if name == 'nn.Linear':
        ps = [_t(m.weight)] + ([_t(m.bias)] if d.get('bias') is not None else [])
        return _Fn(lambda x, w, *b: F.linear(x, w, b[0] if b else None), ps)
    if name in ('nn.View', 'nn.Reshape'):
        size = tuple(m.size) if not isinstance(m.size, int) else (m.size,)
        total = 1
        for s in size:
            total *= s if s > 0 else 1
        return _Fn(lambda x: x.reshape(-1, *size) if x.numel() != total else x.reshape(*size))
    if name == 'nn.Dropout':
        return _Fn(lambda x: x)  # benchmarks compare evaluate-free compute; dropout cost is tiny
    if name in ('nn.LogSoftMax', 'cudnn.LogSoftMax'):
        return _Fn(lambda x: F.log_softmax(x, dim=-1 if x.dim() == 1 else 1))
    if name in ('nn.SoftMax', 'cudnn.SoftMax'):
        return _Fn(lambda x: F.softmax(x, dim=-1 if x.dim() == 1 else 1))
    if name == 'nn.MulConstant':
        return _Fn(lambda x: x * m.constant_scalar)
    if name in ('nn.SpatialCrossMapLRN', 'cudnn.SpatialCrossMapLRN'):
        return _Fn(lambda x: F.local_response_norm(x, m.size, m.alpha, m.beta, m.k))
    raise NotImplementedError('no torch equivalent for %s' % name)
