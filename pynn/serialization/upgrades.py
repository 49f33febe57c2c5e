"""Fields that older nn versions wrote differently, upgraded as Lua nn's own
back-compatibility code does (UPGRADES), after a class's `read` hook if it has one."""
import warnings

import numpy as np

from ..storage import Storage
from ..tensor import Tensor
from .objects import TYPES, _NAMES, T7FormatError


# --- upgrades of fields written by older nn versions (Lua nn's back-compatibility code) ----------
def _up_padding(d, version):
    if 'padding' in d:
        d['padW'] = d['padH'] = d.pop('padding')


def _up_conv_mm(d, version):
    """nn.SpatialConvolutionMM: `padding` of older versions; files of 2013-2014 have no stride
    or padding fields at all (the layer had stride 1 and no padding then). Today's Lua fails on
    those; pynn runs them as they ran then."""
    _up_padding(d, version)
    missing = [f for f in ('dW', 'dH', 'padW', 'padH') if d.get(f) is None]
    if missing:
        warnings.warn('pynn.load: an nn.SpatialConvolutionMM from before strides and padding '
                      '(no %s): running it with stride 1 and no padding, as it ran then'
                      % '/'.join(missing), stacklevel=6)   # at the load call
        for f in ('dW', 'dH'):
            if d.get(f) is None:
                d[f] = 1
        for f in ('padW', 'padH'):
            if d.get(f) is None:
                d[f] = 0


def _up_conv(d, version):
    if 'padding' in d:
        d['padW'] = d['padH'] = d.pop('padding')
    else:
        d.setdefault('padW', 0)
        d.setdefault('padH', 0)
    for f in ('weight', 'gradWeight'):
        w = d.get(f)
        if isinstance(w, Tensor) and w.dim() == 2:
            d[f] = w.view(d['nOutputPlane'], d['nInputPlane'], d['kH'], d['kW'])


def _up_batchnorm(d, version):
    if version < 2 and isinstance(d.get('running_std'), Tensor):
        std = d.pop('running_std')
        var = std.clone()
        a = var.numpy()
        a[...] = a ** -2 - d.get('eps', 1e-5)
        d['running_var'] = var


def _up_maxpool(d, version):
    d.setdefault('padW', 0)
    d.setdefault('padH', 0)


def _up_avgpool(d, version):
    if d.get('ceil_mode') is None:
        d['ceil_mode'] = False
        d['count_include_pad'] = True
        d['padW'] = 0
        d['padH'] = 0
    d.setdefault('divide', False)   # old files: the sum, not the mean (Lua: `if not self.divide`)


def _up_volmaxpool(d, version):
    if version < 2:
        d['ceil_mode'] = False


def _up_hardtanh(d, version):
    d.setdefault('min_val', -1)
    d.setdefault('max_val', 1)


def _up_fullconv(d, version):
    d.setdefault('adjW', 0)
    d.setdefault('adjH', 0)


def _up_gradrev(d, version):
    if version < 2:
        d['lambda'] = 1


def _up_concat(d, version):
    if d.get('outputSize') is None:
        d['outputSize'] = Storage(0, np.int64)


def _up_clipped_relu(d, version):
    """cudnn.ClippedReLU(ceiling, inplace): min(max(x, 0), ceiling), nn.HardTanh(0, ceiling)."""
    d.setdefault('min_val', 0)
    d.setdefault('max_val', d.get('ceiling'))
    d.setdefault('inplace', False)


# Used for classes without their own `read(file, version)` hook (Lua's read metamethod).
UPGRADES = {
    'cudnn.ClippedReLU': _up_clipped_relu,
    'nn.SpatialConvolution': _up_conv,
    'nn.SpatialConvolutionMM': _up_conv_mm,
    'nn.SpatialDepthWiseConvolution': _up_padding,
    'nn.BatchNormalization': _up_batchnorm,
    'nn.SpatialBatchNormalization': _up_batchnorm,
    'nn.VolumetricBatchNormalization': _up_batchnorm,
    'nn.SpatialMaxPooling': _up_maxpool,
    'nn.SpatialAveragePooling': _up_avgpool,
    'nn.VolumetricMaxPooling': _up_volmaxpool,
    'nn.HardTanh': _up_hardtanh,
    'nn.SpatialFullConvolution': _up_fullconv,
    'nn.GradientReversal': _up_gradrev,
    'nn.Concat': _up_concat,
    'nn.DepthConcat': _up_concat,
}


def _upgrade(node):
    obj = node.obj
    d = obj.__dict__
    hook = getattr(type(obj), 'read', None)
    if callable(hook):   # the class's own Lua-style hook: read(file, version) after the fields
        fn = lambda d, version: obj.read(None, version)  # noqa: E731
    else:
        fn = UPGRADES.get(node.name)
    if fn is not None:
        try:
            fn(d, node.version)
        except Exception as e:   # fields of the wrong kind: the file is not a sane module
            raise T7FormatError('%s: its fields could not be upgraded from an older nn version (%s: %s)'
                                % (node.name, type(e).__name__, e), node.offset) from None
    t = d.get('_type')
    if isinstance(t, str) and t in TYPES and TYPES[t][2] == 'cuda':
        _, kind, _ = TYPES[t]
        d['_type'] = _NAMES[(TYPES[t][0], kind, 'cpu')]
