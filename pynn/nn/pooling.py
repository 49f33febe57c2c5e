"""Spatial pooling and padding: SpatialMaxPooling, SpatialAveragePooling, SpatialMaxUnpooling,
SpatialZeroPadding, SpatialDilatedMaxPooling, SpatialAdaptive{Max,Average}Pooling,
SpatialFractionalMaxPooling, SpatialLPPooling, FeatureLPPooling, with Lua nn's fields and
THNN's output-size rules (the array kernels of the newer classes are in poolkernels.py)."""
import math

import sys

import numpy as np

from .. import backend
from ..tensor import Tensor
from .module import Module
from .container import Sequential
from . import functional as F
from . import poolkernels as PK


def nn_class(name):
    """pynn.nn's class `name`, looked up when a composite module is built (pynn.nn imports the
    families that define its parts after this one)."""
    return getattr(sys.modules[__package__], name)


def _dims(t):
    """(batch?, C, H, W) of a 3-D or 4-D tensor."""
    b = t.dim() == 4
    return b, t.size(1 + b), t.size(2 + b), t.size(3 + b)


def _as4d(t, batch):
    a = t.numpy()
    return a if batch else a[None]


class _Pooling2d(Module):
    """Shared shape checks of THNN's SpatialMaxPooling / SpatialAveragePooling."""

    def _pool_check(self, input, gradOutput=None, indices=None):
        kW, kH, dW, dH = self.kW, self.kH, self.dW, self.dH
        padW, padH = self.__dict__.get('padW') or 0, self.__dict__.get('padH') or 0
        if not (kW > 0 and kH > 0):
            raise ValueError('%s: kernel size should be greater than zero, but got kH: %d kW: %d'
                             % (self._name(), kH, kW))
        if not (dW > 0 and dH > 0):
            raise ValueError('%s: stride should be greater than zero, but got dH: %d dW: %d'
                             % (self._name(), dH, dW))
        if not isinstance(input, Tensor) or input.dim() not in (3, 4):
            self._fail('a 3D or 4D input tensor (C x H x W or B x C x H x W)', input)
        if not (kW // 2 >= padW and kH // 2 >= padH):
            raise ValueError('%s: pad should be smaller than half of kernel size, but got '
                             'padW = %d, padH = %d, kW = %d, kH = %d'
                             % (self._name(), padW, padH, kW, kH))
        if input.type() != self.output.type():
            self._fail('an input of type %s (the module type; convert the module with :type())'
                       % self.output.type(), input)
        batch, C, iH, iW = _dims(input)
        oH, oW = F.pool_output_size(iH, iW, kH, kW, dH, dW, padH, padW,
                                    bool(self.__dict__.get('ceil_mode')))
        if oW < 1 or oH < 1:
            self._fail('an input big enough for the %dx%d pooling: calculated output size '
                       '%dx%dx%d is too small' % (kW, kH, C, oH, oW), input)
        want = input.size()[:-2] + (oH, oW)
        if gradOutput is not None:
            if not isinstance(gradOutput, Tensor) or gradOutput.size() != want:
                self._fail('gradOutput of size %s' % 'x'.join(map(str, want)), gradOutput)
            if gradOutput.type() != input.type():
                self._fail('gradOutput of type %s' % input.type(), gradOutput)
        if indices is not None and indices.size() != want:
            raise ValueError('%s: indices of size %s expected (call forward first), got %s'
                             % (self._name(), 'x'.join(map(str, want)),
                                'x'.join(map(str, indices.size())) or 'empty'))
        return batch, C, iH, iW, oH, oW, padW, padH

    def __tostring__(self):
        padW, padH = self.__dict__.get('padW'), self.__dict__.get('padH')
        s = '%s(%dx%d, %d,%d' % (self.__typename__, self.kW, self.kH, self.dW, self.dH)
        if (padW or padH) and (padW != 0 or padH != 0):
            s += ', %s,%s' % (padW, padH)
        return s + ')'


class SpatialMaxPooling(_Pooling2d):
    """nn.SpatialMaxPooling(kW, kH, dW=kW, dH=kH, padW=0, padH=0). `indices` is a LongTensor
    (on the input's device) of the output's shape holding 1-based flat positions y*iW+x+1."""

    def __init__(self, kW, kH, dW=None, dH=None, padW=0, padH=0):
        super().__init__()
        self.kW = kW
        self.kH = kH
        self.dW = kW if dW is None else dW
        self.dH = kH if dH is None else dH
        self.padW = 0 if padW is None else padW
        self.padH = 0 if padH is None else padH
        self.ceil_mode = False
        self.indices = Tensor(kind='Long', device='cpu')

    def ceil(self):
        self.ceil_mode = True
        return self

    def floor(self):
        self.ceil_mode = False
        return self

    def updateOutput(self, input):
        batch, C, iH, iW, oH, oW, padW, padH = self._pool_check(input)
        long_type = backend.tensor_typename('Long', input.device)
        ind = self.__dict__.get('indices')
        if ind is None:
            ind = Tensor(kind='Long', device='cpu')
        self.indices = ind.type(long_type)
        self.iheight = iH
        self.iwidth = iW
        self.ceil_mode = bool(self.__dict__.get('ceil_mode'))
        self.padW, self.padH = padW, padH
        size = input.size()[:-2] + (oH, oW)
        self.output.resize(*size)
        self.indices.resize(*size)
        if self.output.is_meta():
            return self.output
        F.maxpool2d_forward(_as4d(input, batch), _as4d(self.output, batch),
                            _as4d(self.indices, batch),
                            self.kH, self.kW, self.dH, self.dW, padH, padW)
        return self.output

    def updateGradInput(self, input, gradOutput):
        batch, C, iH, iW, oH, oW, padW, padH = self._pool_check(input, gradOutput, self.indices)
        self.gradInput.resizeAs(input)
        if self.gradInput.is_meta():
            return self.gradInput
        F.maxpool2d_backward(_as4d(gradOutput, batch), _as4d(self.indices, batch),
                             _as4d(self.gradInput, batch),
                             self.kH, self.kW, self.dH, self.dW, padH, padW)
        return self.gradInput

    def empty(self):
        self.clearState()

    def clearState(self):
        ind = self.__dict__.get('indices')
        if ind is not None:
            ind.set()
        return super().clearState()


class SpatialAveragePooling(_Pooling2d):
    """nn.SpatialAveragePooling(kW, kH, dW=1, dH=1, padW=0, padH=0) with ceil_mode,
    count_include_pad (default true) and the old `divide` flag."""

    def __init__(self, kW, kH, dW=None, dH=None, padW=0, padH=0):
        super().__init__()
        self.kW = kW
        self.kH = kH
        self.dW = 1 if dW is None else dW
        self.dH = 1 if dH is None else dH
        self.padW = 0 if padW is None else padW
        self.padH = 0 if padH is None else padH
        self.ceil_mode = False
        self.count_include_pad = True
        self.divide = True

    def ceil(self):
        self.ceil_mode = True
        return self

    def floor(self):
        self.ceil_mode = False
        return self

    def setCountIncludePad(self):
        self.count_include_pad = True
        return self

    def setCountExcludePad(self):
        self.count_include_pad = False
        return self

    def _back_compat(self):
        if self.__dict__.get('ceil_mode') is None:
            self.ceil_mode = False
            self.count_include_pad = True
            self.padH = 0
            self.padW = 0

    def _divisors(self, a, iH, iW, oH, oW, padH, padW):
        return F.avgpool2d_divisors(backend.array_module(a), a.dtype, iH, iW, oH, oW,
                                    self.kH, self.kW, self.dH, self.dW, padH, padW,
                                    bool(self.__dict__.get('count_include_pad', True)))

    def updateOutput(self, input):
        self._back_compat()
        batch, C, iH, iW, oH, oW, padW, padH = self._pool_check(input)
        self.output.resize(*(input.size()[:-2] + (oH, oW)))
        if self.output.is_meta():
            return self.output
        out = _as4d(self.output, batch)
        F.avgpool2d_forward(_as4d(input, batch), out, self._divisors(out, iH, iW, oH, oW, padH, padW),
                            self.kH, self.kW, self.dH, self.dW, padH, padW)
        if not self.__dict__.get('divide'):
            out *= self.kW * self.kH
        return self.output

    def updateGradInput(self, input, gradOutput):
        if self.__dict__.get('gradInput') is None:
            return None
        batch, C, iH, iW, oH, oW, padW, padH = self._pool_check(input, gradOutput)
        self.gradInput.resizeAs(input)
        if self.gradInput.is_meta():
            return self.gradInput
        gi = _as4d(self.gradInput, batch)
        F.avgpool2d_backward(_as4d(gradOutput, batch), gi, self._divisors(gi, iH, iW, oH, oW, padH, padW),
                             self.kH, self.kW, self.dH, self.dW, padH, padW)
        if not self.__dict__.get('divide'):
            gi *= self.kW * self.kH
        return self.gradInput


class SpatialMaxUnpooling(Module):
    """nn.SpatialMaxUnpooling(poolingModule): scatters its input to the positions the paired
    SpatialMaxPooling recorded in its `indices` (shared as self.indices)."""

    def __init__(self, poolingModule):
        super().__init__()
        if not isinstance(poolingModule, SpatialMaxPooling) or \
                poolingModule.__typename__ != 'nn.SpatialMaxPooling':
            raise ValueError('nn.SpatialMaxUnpooling: Argument must be a nn.SpatialMaxPooling module')
        if not (poolingModule.kH == poolingModule.dH and poolingModule.kW == poolingModule.dW):
            raise ValueError("nn.SpatialMaxUnpooling: The size of pooling module's kernel must be "
                             "equal to its stride")
        self.pooling = poolingModule

    def setParams(self):
        self.indices = self.pooling.indices
        self.oheight = self.pooling.__dict__.get('iheight')
        self.owidth = self.pooling.__dict__.get('iwidth')

    def _unpool_check(self, input, gradOutput=None):
        if not isinstance(input, Tensor) or input.dim() not in (3, 4):
            self._fail('a 3D or 4D (batch mode) input tensor', input)
        if input.type() != self.output.type():
            self._fail('an input of type %s (the module type; convert the module with :type())'
                       % self.output.type(), input)
        ind = self.pooling.__dict__.get('indices')
        oH, oW = self.pooling.__dict__.get('iheight'), self.pooling.__dict__.get('iwidth')
        if ind is None or oH is None or ind.size() != input.size():
            self._fail('an input of the size of the pooling indices (%s)'
                       % ('x'.join(map(str, ind.size())) if ind is not None else 'none: run the '
                          'pooling module forward first'), input)
        if gradOutput is not None:
            want = input.size()[:-2] + (oH, oW)
            if not isinstance(gradOutput, Tensor) or gradOutput.size() != want:
                self._fail('gradOutput of size %s' % 'x'.join(map(str, want)), gradOutput)
        if not ind.is_meta() and ind.nElement():
            a = ind.numpy()
            lo, hi = int(a.min()), int(a.max())
            if lo < 1 or hi > oH * oW:
                bad = lo if lo < 1 else hi
                raise ValueError('%s: found an invalid max index %d (output volumes are of size %dx%d)'
                                 % (self._name(), bad - 1, oH, oW))
        return oH, oW

    def updateOutput(self, input):
        oH, oW = self._unpool_check(input)
        self.setParams()
        batch = input.dim() == 4
        self.output.resize(*(input.size()[:-2] + (oH, oW)))
        if self.output.is_meta():
            return self.output
        F.maxunpool2d_forward(_as4d(input, batch), _as4d(self.indices, batch), _as4d(self.output, batch))
        return self.output

    def updateGradInput(self, input, gradOutput):
        self._unpool_check(input, gradOutput)
        self.setParams()
        batch = input.dim() == 4
        self.gradInput.resizeAs(input)
        if self.gradInput.is_meta():
            return self.gradInput
        F.maxunpool2d_backward(_as4d(gradOutput, batch), _as4d(self.indices, batch),
                               _as4d(self.gradInput, batch))
        return self.gradInput

    def empty(self):
        self.clearState()

    def __tostring__(self):
        return 'nn.SpatialMaxUnpooling associated to ' + self.pooling.__tostring__()


class SpatialZeroPadding(Module):
    """nn.SpatialZeroPadding(pad_l, pad_r=pad_l, pad_t=pad_l, pad_b=pad_l); negative pads crop."""

    def __init__(self, pad_l, pad_r=None, pad_t=None, pad_b=None):
        super().__init__()
        self.pad_l = pad_l
        self.pad_r = pad_l if pad_r is None else pad_r
        self.pad_t = pad_l if pad_t is None else pad_t
        self.pad_b = pad_l if pad_b is None else pad_b

    def _out_size(self, input):
        if not isinstance(input, Tensor) or input.dim() not in (3, 4):
            self._fail('an input that is 3 or 4-dimensional', input)
        h = input.size(-2) + self.pad_t + self.pad_b
        w = input.size(-1) + self.pad_l + self.pad_r
        if w < 1 or h < 1:
            self._fail('an input big enough for padding l=%d, r=%d, t=%d, b=%d (input is too small)'
                       % (self.pad_l, self.pad_r, self.pad_t, self.pad_b), input)
        return input.size()[:-2] + (h, w)

    def _crops(self, big, small):
        """Narrow `big` (the padded side) and `small` (the cropped side) to the shared region."""
        hd, wd = big.dim() - 1, big.dim()
        if self.pad_t < 0:
            small = small.narrow(hd, 1 - self.pad_t, small.size(hd) + self.pad_t)
        if self.pad_b < 0:
            small = small.narrow(hd, 1, small.size(hd) + self.pad_b)
        if self.pad_l < 0:
            small = small.narrow(wd, 1 - self.pad_l, small.size(wd) + self.pad_l)
        if self.pad_r < 0:
            small = small.narrow(wd, 1, small.size(wd) + self.pad_r)
        if self.pad_t > 0:
            big = big.narrow(hd, 1 + self.pad_t, big.size(hd) - self.pad_t)
        if self.pad_b > 0:
            big = big.narrow(hd, 1, big.size(hd) - self.pad_b)
        if self.pad_l > 0:
            big = big.narrow(wd, 1 + self.pad_l, big.size(wd) - self.pad_l)
        if self.pad_r > 0:
            big = big.narrow(wd, 1, big.size(wd) - self.pad_r)
        return big, small

    def updateOutput(self, input):
        size = self._out_size(input)
        self.output.resize(*size)
        self.output.zero()
        c_output, c_input = self._crops(self.output, input)
        if c_output.nElement():
            c_output.copy(c_input)
        return self.output

    def updateGradInput(self, input, gradOutput):
        size = self._out_size(input)
        if not isinstance(gradOutput, Tensor) or gradOutput.size() != size:
            self._fail('gradOutput of size %s' % 'x'.join(map(str, size)), gradOutput)
        self.gradInput.resizeAs(input)
        self.gradInput.zero()
        cg_output, cg_input = self._crops(gradOutput, self.gradInput)
        if cg_input.nElement():
            cg_input.copy(cg_output)
        return self.gradInput

    def __tostring__(self):
        return '%s(l=%d, r=%d, t=%d, b=%d)' % (self.__typename__, self.pad_l, self.pad_r,
                                               self.pad_t, self.pad_b)


# --- helpers of the classes below ------------------------------------------------------------
def _check_in(m, input, dims, text):
    """Validate an input before anything is modified (Tensor, the module's type, dims)."""
    if not isinstance(input, Tensor) or input.dim() not in dims:
        m._fail(text, input)
    if input.type() != m.output.type():
        m._fail('an input of type %s (the module type; convert the module with :type())'
                % m.output.type(), input)


def _check_go(m, gradOutput, want, input):
    if not isinstance(gradOutput, Tensor) or gradOutput.size() != tuple(want):
        m._fail('gradOutput of size %s' % 'x'.join(map(str, want)), gradOutput)
    if gradOutput.type() != input.type():
        m._fail('gradOutput of type %s' % input.type(), gradOutput)


def _batched(t, nsp):
    """t's array with a leading batch dim of 1 added when t has no batch dim."""
    a = t.numpy()
    return a if a.ndim == nsp + 2 else a[None]


def _long_like(m, field, input):
    """Lua's `self.indices = (self.indices or torch.LongTensor()):long()` on the input's device."""
    ind = m.__dict__.get(field)
    if ind is None:
        ind = Tensor(kind='Long', device='cpu')
    ind = ind.type(backend.tensor_typename('Long', input.device))
    setattr(m, field, ind)
    return ind


# --- SpatialDilatedMaxPooling -----------------------------------------------------------------
class SpatialDilatedMaxPooling(SpatialMaxPooling):
    """nn.SpatialDilatedMaxPooling(kW, kH, dW, dH, padW=0, padH=0, dilationW=1, dilationH=1):
    THNN's kernel (indices: 1-based flat positions in the plane, 0 for an empty window)."""

    def __init__(self, kW, kH, dW=None, dH=None, padW=0, padH=0, dilationW=None, dilationH=None):
        super().__init__(kW, kH, dW, dH, padW, padH)
        self.dilationW = dilationW or 1
        self.dilationH = dilationH or 1

    def _geom(self, input, gradOutput=None, indices=None):
        kW, kH, dW, dH = self.kW, self.kH, self.dW, self.dH
        padW, padH = self.padW or 0, self.padH or 0
        dilW, dilH = self.dilationW or 1, self.dilationH or 1
        if not (kW > 0 and kH > 0):
            raise ValueError('%s: kernel size should be greater than zero, but got kH: %d kW: %d'
                             % (self._name(), kH, kW))
        if not (dW > 0 and dH > 0):
            raise ValueError('%s: stride should be greater than zero, but got dH: %d dW: %d'
                             % (self._name(), dH, dW))
        if not (dilW > 0 and dilH > 0):
            raise ValueError('%s: dilation should be greater than zero, but got dilationH: %d '
                             'dilationW: %d' % (self._name(), dilH, dilW))
        _check_in(self, input, (3, 4), 'a 3D or 4D input tensor (C x H x W or B x C x H x W)')
        if not (kW // 2 >= padW and kH // 2 >= padH):
            raise ValueError('%s: pad should be smaller than half of kernel size, but got padW = %d, '
                             'padH = %d, kW = %d, kH = %d' % (self._name(), padW, padH, kW, kH))
        iH, iW = input.size()[-2:]
        oH, oW = PK.pooled_sizes((iH, iW), (kH, kW), (dH, dW), (padH, padW), (dilH, dilW),
                                 bool(self.ceil_mode))
        C = input.size(-3)
        if oW < 1 or oH < 1:
            self._fail('an input big enough: given input size (%dx%dx%d), calculated output size '
                       '(%dx%dx%d) is too small' % (C, iH, iW, C, oH, oW), input)
        want = input.size()[:-2] + (oH, oW)
        if gradOutput is not None:
            _check_go(self, gradOutput, want, input)
        if indices is not None and indices.size() != want:
            raise ValueError('%s: indices of size %s expected (call forward first), got %s'
                             % (self._name(), 'x'.join(map(str, want)),
                                'x'.join(map(str, indices.size())) or 'empty'))
        return want, (kH, kW), (dH, dW), (padH, padW), (dilH, dilW)

    def updateOutput(self, input):
        want, k, d, p, dil = self._geom(input)
        ind = _long_like(self, 'indices', input)
        self.iheight, self.iwidth = input.size()[-2:]
        self.output.resize(*want)
        ind.resize(*want)
        if self.output.is_meta():
            return self.output
        PK.maxpool_forward(_batched(input, 2), _batched(self.output, 2), _batched(ind, 2), k, d, p, dil)
        return self.output

    def updateGradInput(self, input, gradOutput):
        want, k, d, p, dil = self._geom(input, gradOutput, self.indices if self.indices is not None
                                        else Tensor(kind='Long'))
        self.gradInput.resizeAs(input)
        if self.gradInput.is_meta():
            return self.gradInput
        PK.maxpool_backward(_batched(gradOutput, 2), _batched(self.indices, 2),
                            _batched(self.gradInput, 2), k, d, p, dil)
        return self.gradInput

    def __tostring__(self):
        s = '%s(%dx%d, %d,%d' % (self.__typename__, self.kW, self.kH, self.dW, self.dH)
        padW, padH = self.padW, self.padH
        if (padW or padH) and (padW != 0 or padH != 0):
            s += ', %s,%s' % (padW, padH)
        return s + ', %s,%s)' % (self.dilationW, self.dilationH)


# --- adaptive pooling ---------------------------------------------------------------------------
class SpatialAdaptiveMaxPooling(Module):
    """nn.SpatialAdaptiveMaxPooling(W, H): output H x W whatever the input size; indices
    (2 x [B x] C x H x W): 1-based row and column of the maximum inside its window."""

    def __init__(self, W, H):
        super().__init__()
        self.W = W
        self.H = H

    def _want(self, input):
        _check_in(self, input, (3, 4), 'a 3D or 4D (batch mode) input tensor')
        return input.size()[:-2] + (self.H, self.W)

    def updateOutput(self, input):
        want = self._want(input)
        ind = _long_like(self, 'indices', input)
        self.output.resize(*want)
        ind.resize(*((2,) + want))
        if self.output.is_meta():
            return self.output
        ia = ind.numpy()
        ia = ia if input.dim() == 4 else ia[:, None]
        PK.adaptive_max_forward(_batched(input, 2), _batched(self.output, 2), ia)
        return self.output

    def updateGradInput(self, input, gradOutput):
        want = self._want(input)
        _check_go(self, gradOutput, want, input)
        ind = self.__dict__.get('indices')
        if ind is None or ind.size() != (2,) + want:
            self._fail('a backward call after forward on this input size', input)
        self.gradInput.resizeAs(input)
        if self.gradInput.is_meta():
            return self.gradInput
        ia = ind.numpy()
        ia = ia if input.dim() == 4 else ia[:, None]
        PK.adaptive_max_backward(_batched(gradOutput, 2), ia, _batched(self.gradInput, 2))
        return self.gradInput

    def empty(self):
        self.clearState()

    def clearState(self):
        ind = self.__dict__.get('indices')
        if ind is not None:
            ind.set()
        return super().clearState()


class SpatialAdaptiveAveragePooling(Module):
    """nn.SpatialAdaptiveAveragePooling(W, H): the average over THNN's adaptive windows."""

    def __init__(self, W, H):
        super().__init__()
        self.W = W
        self.H = H

    def _want(self, input):
        _check_in(self, input, (3, 4), 'a 3D or 4D (batch mode) input tensor')
        return input.size()[:-2] + (self.H, self.W)

    def updateOutput(self, input):
        want = self._want(input)
        self.output.resize(*want)
        if self.output.is_meta():
            return self.output
        PK.adaptive_avg_forward(_batched(input, 2), _batched(self.output, 2))
        return self.output

    def updateGradInput(self, input, gradOutput):
        want = self._want(input)
        _check_go(self, gradOutput, want, input)
        self.gradInput.resizeAs(input)
        if self.gradInput.is_meta():
            return self.gradInput
        PK.adaptive_avg_backward(_batched(gradOutput, 2), _batched(self.gradInput, 2))
        return self.gradInput

    def empty(self):
        self.clearState()


# --- fractional max pooling ---------------------------------------------------------------------
class _FractionalMaxPooling(Module):
    """Shared by nn.SpatialFractionalMaxPooling and nn.VolumetricFractionalMaxPooling: Lua's
    randomSamples ([B or 1] x C x nDims, drawn with uniform() unless fixPoolingRegions()),
    newRandomPool, indices (1-based flat positions, as THNN)."""
    NSP = 2
    DIMS = 'HW'          # names of the spatial dims in memory order
    # per memory dim: the index of its random sample, pool size and output size fields
    SAMPLE = (1, 0)
    POOL = ('poolSizeH', 'poolSizeW')
    OUT = ('outH', 'outW')
    RATIO = ('ratioH', 'ratioW')

    def fixPoolingRegions(self, val=None):
        self.newRandomPool = True if val is None else val
        return self

    def _dims_text(self):
        return '%dD or %dD (batch mode) tensor expected for input' % (self.NSP + 1, self.NSP + 2)

    def _out_sizes(self, input):
        if self.__dict__.get('ratioW') is not None and self.__dict__.get('ratioH') is not None:
            out = []
            for j, r in enumerate(self.RATIO):
                o = int(math.floor(input.size(input.dim() - self.NSP + 1 + j) * self.__dict__.get(r)))
                if o <= 0:
                    raise ValueError('%s: reduction ratio or input size too small (%s)'
                                     % (self._name(), r))
                out.append(o)
            return tuple(out)
        return tuple(self.__dict__.get(f) for f in self.OUT)

    def _geom(self, input):
        _check_in(self, input, (self.NSP + 1, self.NSP + 2), self._dims_text())
        osz = self._out_sizes(input)
        isz = input.size()[-self.NSP:]
        for j in reversed(range(self.NSP)):
            pool = self.__dict__.get(self.POOL[j])
            if not osz[j] + pool - 1 < isz[j]:
                self._fail('an input larger than the pooling (%s (%d) too large relative to input '
                           '(%d))' % (self.POOL[j], pool, isz[j]), input)
        return osz, tuple(self.__dict__.get(f) for f in self.POOL)

    def _init_samples(self, input):
        n = (1, input.size(1)) if input.dim() == self.NSP + 1 else input.size()[:2]
        rs = self.__dict__.get('randomSamples')
        if rs is None:
            self.randomSamples = input.new().resize(n[0], n[1], self.NSP).uniform()
        elif rs.size(1) != n[0] or rs.size(2) != n[1]:
            rs.resize(n[0], n[1], self.NSP).uniform()
        elif not self.newRandomPool:
            rs.uniform()

    def updateOutput(self, input):
        osz, pool = self._geom(input)
        ind = _long_like(self, 'indices', input)
        self._init_samples(input)
        want = input.size()[:-self.NSP] + osz
        self.output.resize(*want)
        ind.resize(*want)
        if self.output.is_meta():
            return self.output
        x = input.numpy()
        P = x.size // int(np.prod(x.shape[-self.NSP:])) if x.size else 0
        isz = input.size()[-self.NSP:]
        rs = self.randomSamples.numpy()
        xp = backend.array_module(rs)
        rs = rs.reshape(-1, self.NSP)[:P]
        rs = rs.get() if xp is not np else rs
        starts = [xp.asarray(PK.fractional_starts(rs[:, self.SAMPLE[j]], isz[j], osz[j], pool[j], x.dtype))
                  for j in range(self.NSP)]
        PK.fractional_max_forward(x.reshape((P,) + tuple(isz)), self.output.numpy().reshape((P,) + osz),
                                  ind.numpy().reshape((P,) + osz), starts, pool)
        return self.output

    def updateGradInput(self, input, gradOutput):
        if self.__dict__.get('randomSamples') is None:
            raise ValueError('%s: must call updateOutput/forward first' % self._name())
        osz, pool = self._geom(input)
        want = input.size()[:-self.NSP] + osz
        _check_go(self, gradOutput, want, input)
        ind = self.__dict__.get('indices')
        if ind is None or ind.size() != want:
            self._fail('a backward call after forward on this input size', input)
        self.gradInput.resizeAs(input)
        if self.gradInput.is_meta():
            return self.gradInput
        isz = input.size()[-self.NSP:]
        gi = self.gradInput.numpy()
        P = gi.size // int(np.prod(isz)) if gi.size else 0
        PK.fractional_max_backward(gradOutput.numpy().reshape((P,) + osz), ind.numpy().reshape((P,) + osz),
                                   gi.reshape((P,) + tuple(isz)))
        return self.gradInput

    def empty(self):
        self.clearState()

    def clearState(self):
        self.__dict__.pop('indices', None)
        self.__dict__.pop('randomSamples', None)
        return super().clearState()


class SpatialFractionalMaxPooling(_FractionalMaxPooling):
    """nn.SpatialFractionalMaxPooling(poolSizeW, poolSizeH, outW, outH) or (..., ratioW, ratioH)."""

    def __init__(self, poolSizeW, poolSizeH, arg1, arg2):
        super().__init__()
        if not (poolSizeW >= 2 and poolSizeH >= 2):
            raise ValueError('nn.SpatialFractionalMaxPooling: pool sizes must be >= 2')
        self.poolSizeW = poolSizeW
        self.poolSizeH = poolSizeH
        self.newRandomPool = False
        if arg1 >= 1 and arg2 >= 1:
            self.outW = arg1
            self.outH = arg2
        else:
            self.ratioW = arg1
            self.ratioH = arg2
            if not (0 < arg1 < 1 and 0 < arg2 < 1):
                raise ValueError('nn.SpatialFractionalMaxPooling: ratios must be in (0, 1)')

    def __tostring__(self):
        w = self.outW if self.outW else self.ratioW
        h = self.outH if self.outH else self.ratioH
        return '%s(%dx%d, %d,%d)' % (self.__typename__, w, h, self.poolSizeW, self.poolSizeH)


# --- LP pooling ---------------------------------------------------------------------------------
class SpatialLPPooling(Sequential):
    """nn.SpatialLPPooling(nInputPlane, pnorm, kW, kH, dW=kW, dH=kH): Lua's Sequential of
    Square or Power(p), SpatialAveragePooling, MulConstant(kW*kH), Sqrt or Power(1/p); no
    parameters (reset, accGradParameters, zeroGradParameters, updateParameters do nothing)."""

    def __init__(self, nInputPlane, pnorm, kW, kH, dW=None, dH=None):
        super().__init__()
        dW = kW if dW is None else dW
        dH = kH if dH is None else dH
        self.kW, self.kH, self.dW, self.dH = kW, kH, dW, dH
        self.add(nn_class('Square')() if pnorm == 2 else nn_class('Power')(pnorm))
        self.add(SpatialAveragePooling(kW, kH, dW, dH))
        self.add(nn_class('MulConstant')(kW * kH))
        self.add(nn_class('Sqrt')() if pnorm == 2 else nn_class('Power')(1 / pnorm))

    def reset(self, stdv=None):
        pass

    def accGradParameters(self, input, gradOutput, scale=1):
        pass

    def accUpdateGradParameters(self, input, gradOutput, lr=None):
        pass

    def zeroGradParameters(self):
        pass

    def updateParameters(self, learningRate=None):
        pass


class FeatureLPPooling(Module):
    """nn.FeatureLPPooling(width, stride, power, batch_mode): LP pooling over the feature dim
    (dim 1, or 2 in batch mode) of a 1-3D (2-4D in batch mode) input; THNN's kernel
    (float64 accumulation, backward reads the output)."""

    def __init__(self, width, stride, power, batch_mode):
        super().__init__()
        if width < 2 or width > 16:
            raise ValueError('nn.FeatureLPPooling: width must be within 2 to 16')
        if stride < 1 or stride > 4:
            raise ValueError('nn.FeatureLPPooling: stride must be within 1 to 4')
        self.width = width
        self.stride = stride
        self.power = power
        self.batch_mode = batch_mode

    def _geom(self, input):
        b = bool(self.batch_mode)
        dims = (2, 3, 4) if b else (1, 2, 3)
        _check_in(self, input, dims, 'input must be %s dimensions for %sbatch mode'
                  % ('2-4' if b else '1-3', '' if b else 'non-'))
        s = list(input.size())
        if not b:
            s = [1] + s
        s += [1] * (4 - len(s))
        if s[1] < self.width:
            self._fail('an input whose feature dimension is >= width (%d)' % self.width, input)
        oF = (s[1] - self.width) // self.stride + 1
        fd = 1 if b else 0
        want = list(input.size())
        want[fd] = oF
        return tuple(s), oF, tuple(want)

    def updateOutput(self, input):
        s, oF, want = self._geom(input)
        self.output.resize(*want)
        if self.output.is_meta():
            return self.output
        PK.feature_lp_forward(input.numpy().reshape(s), self.output.numpy().reshape(s[:1] + (oF,) + s[2:]),
                              self.power, self.width, self.stride)
        return self.output

    def updateGradInput(self, input, gradOutput):
        s, oF, want = self._geom(input)
        _check_go(self, gradOutput, want, input)
        if self.output.size() != want:
            self._fail('a backward call after forward on this input size', input)
        self.gradInput.resizeAs(input)
        if self.gradInput.is_meta():
            return self.gradInput
        os_ = s[:1] + (oF,) + s[2:]
        PK.feature_lp_backward(gradOutput.numpy().reshape(os_), input.numpy().reshape(s),
                               self.output.numpy().reshape(os_), self.gradInput.numpy().reshape(s),
                               self.power, self.width, self.stride)
        return self.gradInput

    def __tostring__(self):
        # Lua formats the boolean batch_mode with %d (an error in Lua 5.1); printed as 1/0 here
        return '%s(w%d s%d power %d batch %d' % (self.__typename__, self.width, self.stride,
                                                 self.power, 1 if self.batch_mode else 0)
