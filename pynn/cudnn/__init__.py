"""pynn.cudnn: cuDNN-style modules (Lua's cudnn.torch) and `convert`, on NumPy and on CuPy.

    net = pynn.cudnn.convert(net)            # Lua: cudnn.convert(net, cudnn)
    net = pynn.cudnn.convert(net, pynn.nn)   # Lua: cudnn.convert(net, nn)

The cudnn.* modules keep no persistent internal buffers: besides output, gradInput and the
parameters they hold only batch normalization's nFeature-sized save_mean/save_std, as
cudnn.torch's. Convolution scratch space is a transient workspace, bounded per call
(setWorkspaceLimit); pooling keeps no indices. Numerics are nn's (same kernels), on NumPy; on
CuPy the convolution calls cuDNN through cupyx.cudnn where available, else the same kernels.

Types: cudnn.SpatialConvolution, cudnn.ReLU, cudnn.Tanh, cudnn.Sigmoid, cudnn.SoftMax,
cudnn.LogSoftMax, cudnn.SpatialMaxPooling, cudnn.SpatialAveragePooling,
cudnn.BatchNormalization, cudnn.SpatialBatchNormalization, cudnn.SpatialCrossMapLRN.
"""
import sys

from ..nn.module import Module
from .conv import SpatialConvolution, setWorkspaceLimit, getWorkspaceLimit
from .layers import LUA_COPIES
from .layers import (ReLU, Tanh, Sigmoid, SoftMax, LogSoftMax, SpatialMaxPooling,
                     SpatialAveragePooling, BatchNormalization, SpatialBatchNormalization,
                     SpatialCrossMapLRN)

_CLASSES = (SpatialConvolution, ReLU, Tanh, Sigmoid, SoftMax, LogSoftMax, SpatialMaxPooling,
            SpatialAveragePooling, BatchNormalization, SpatialBatchNormalization, SpatialCrossMapLRN)

# cudnn.torch's convert.lua layer_list (the ones pynn has), nn.<name> <-> cudnn.<name>
LAYERS = ('BatchNormalization', 'SpatialBatchNormalization', 'SpatialConvolution', 'SpatialCrossMapLRN',
          'SpatialMaxPooling', 'SpatialAveragePooling', 'ReLU', 'Tanh', 'Sigmoid', 'SoftMax', 'LogSoftMax')

# Fields of nn modules the cudnn versions do not keep (nn's internal buffers): not copied over.
DROPPED = {
    'SpatialConvolution': ('finput', 'fgradInput', '_input', '_gradOutput'),
    'SpatialMaxPooling': ('indices',),
    'SpatialCrossMapLRN': ('scale', 'paddedRatio', 'accumRatio'),
    'BatchNormalization': ('_input', '_gradOutput'),
    'SpatialBatchNormalization': ('_input', '_gradOutput'),
}


def luaContiguousCopies(net, on=True):
    """Emulate cudnn.torch (2016) on every cudnn.* module of net: a non-contiguous input or
    gradOutput is first copied into a persistent `_input` / `_gradOutput` buffer (and an in-place
    activation's gradInput is that copy), as cudnn.torch did before calling cuDNN. Off by default:
    pynn's kernels take strided tensors. Used to reproduce the memory figures of that time."""
    for m in net.listModules():
        if m.__typename__.startswith('cudnn.'):
            if on:
                m.__dict__[LUA_COPIES] = True
            else:
                m.__dict__.pop(LUA_COPIES, None)
    return net


def registry():
    """Lua class name -> pynn class, for the cudnn.* modules (used by pynn.load)."""
    return {c.__typename__: c for c in _CLASSES}


def _target(dst):
    """True to convert nn -> cudnn, False for cudnn -> nn."""
    from .. import nn
    if dst is None or dst is sys.modules[__name__] or dst == 'cudnn':
        return True
    if dst is nn or dst == 'nn':
        return False
    raise ValueError("cudnn.convert: dst must be pynn.cudnn or pynn.nn (or 'cudnn' / 'nn'), got %r" % (dst,))


def convert(net, dst=None, exclusion_fn=None):
    """Replace, in place, every module of a type in cudnn.torch's list by its `dst` version
    (pynn.cudnn, the default, or pynn.nn), as cudnn.torch's convert does: a new object of the
    other class holding the same fields (the same weight, bias, gradWeight, gradBias, output and
    gradInput tensor objects; inplace flags, ceil_mode, train mode...), nn.SpatialConvolutionMM
    going to cudnn.SpatialConvolution. The nn-only internal buffers (finput, fgradInput, indices,
    LRN's scale, contiguous copies) are not carried over. Modules for which exclusion_fn(m) is
    true are left alone, and so is a max pooling whose indices an nn.SpatialMaxUnpooling of the
    net reads. Returns the (new) root module."""
    if not isinstance(net, Module):
        raise TypeError('cudnn.convert: expected an nn.Module, got %s' % type(net).__name__)
    to_cudnn = _target(dst)
    from .. import nn
    src_prefix, dst_prefix = ('nn.', 'cudnn.') if to_cudnn else ('cudnn.', 'nn.')
    dst_ns = sys.modules[__name__] if to_cudnn else nn
    table = {src_prefix + name: getattr(dst_ns, name) for name in LAYERS}
    if to_cudnn:
        table['nn.SpatialConvolutionMM'] = SpatialConvolution
    keep = set()
    if to_cudnn:
        for m in net.findModules('nn.SpatialMaxUnpooling'):
            keep.add(id(m.pooling))
    for m in net.listModules():   # validate everything before changing anything
        if not to_cudnn and m.__typename__ == 'cudnn.SpatialConvolution' and (m.__dict__.get('groups') or 1) != 1:
            raise ValueError('cudnn.convert: %s has groups=%d; nn.SpatialConvolution has no groups'
                             % (m._name(), m.groups))

    def swap(x):
        if exclusion_fn is not None and exclusion_fn(x):
            return x
        cls = table.get(x.__typename__)
        if cls is None or id(x) in keep:
            return x
        short = cls.__typename__.split('.', 1)[1]
        drop = DROPPED.get(short, ()) if to_cudnn else ()
        y = cls.__new__(cls)
        y.__dict__.update((k, v) for k, v in x.__dict__.items() if k not in drop)
        if not to_cudnn and short == 'SpatialConvolution':
            y.__dict__.pop('groups', None)
        return y

    return net.replace(swap)


__all__ = (['convert', 'registry', 'luaContiguousCopies', 'setWorkspaceLimit', 'getWorkspaceLimit'] +
           [c.__name__ for c in _CLASSES])
