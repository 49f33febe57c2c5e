"""Volumetric (T x H x W) layers other than the convolutions: VolumetricMaxPooling,
VolumetricDilatedMaxPooling, VolumetricAveragePooling, VolumetricMaxUnpooling,
VolumetricFractionalMaxPooling, VolumetricBatchNormalization, VolumetricDropout,
VolumetricReplicationPadding; Lua nn's fields and THNN's kernels (poolkernels.py).

Volumetric max-pooling indices are THNN's packed form (see poolkernels): bytes 0, 1, 2 of each
int64 hold the kernel offsets (t, y, x) of the maximum.
"""
import sys

from .. import backend
from ..tensor import Tensor
from .module import Module
from .normalization import BatchNormalization
from .pooling import _FractionalMaxPooling, _check_in, _check_go, _long_like
from . import poolkernels as PK

def _b5(t):
    a = t.numpy()
    return a if a.ndim == 5 else a[None]


# --- max pooling ----------------------------------------------------------------------------------
class VolumetricMaxPooling(Module):
    """nn.VolumetricMaxPooling(kT, kW, kH, dT=kT, dW=kW, dH=kH, padT=0, padW=0, padH=0), with
    :ceil() / :floor(); fields itime, iheight, iwidth (set by forward), indices (packed)."""
    __version__ = 2

    def __init__(self, kT, kW, kH, dT=None, dW=None, dH=None, padT=None, padW=None, padH=None):
        super().__init__()
        self.kT, self.kH, self.kW = kT, kH, kW
        self.dT = kT if dT is None else dT
        self.dW = kW if dW is None else dW
        self.dH = kH if dH is None else dH
        self.padT = padT or 0
        self.padW = padW or 0
        self.padH = padH or 0
        self.ceil_mode = False
        self.indices = Tensor(kind='Long', device='cpu')

    def ceil(self):
        self.ceil_mode = True
        return self

    def floor(self):
        self.ceil_mode = False
        return self

    def read(self, file=None, version=None):
        if version is not None and version < 2:
            self.ceil_mode = False
        return self

    def _dil(self):
        return (1, 1, 1)

    def _geom(self, input, gradOutput=None, indices=None):
        k = (self.kT, self.kH, self.kW)
        d = (self.dT, self.dH, self.dW)
        p = (self.padT or 0, self.padH or 0, self.padW or 0)
        dil = self._dil()
        if not all(v > 0 for v in k):
            raise ValueError('%s: kernel size should be greater than zero, but got kT: %d kH: %d kW: %d'
                             % ((self._name(),) + k))
        if not all(v > 0 for v in d):
            raise ValueError('%s: stride should be greater than zero, but got dT: %d dH: %d dW: %d'
                             % ((self._name(),) + d))
        if not all(v > 0 for v in dil):
            raise ValueError('%s: dilation should be greater than 0, but got dilationT: %d '
                             'dilationH: %d dilationW: %d' % ((self._name(),) + dil))
        _check_in(self, input, (4, 5), '4D or 5D (batch mode) tensor expected for input')
        if not all(kk // 2 >= pp for kk, pp in zip(k, p)):
            raise ValueError('%s: pad should be smaller than half of kernel size, but got kT: %d kW: %d, '
                             'kH: %d, padT: %d, padW: %d, padH: %d'
                             % (self._name(), k[0], k[2], k[1], p[0], p[2], p[1]))
        isz = input.size()[-3:]
        osz = PK.pooled_sizes(isz, k, d, p, dil, bool(self.ceil_mode))
        if min(osz) < 1:
            C = input.size(-4)
            self._fail('an input big enough: given input size (%dx%dx%dx%d), calculated output size '
                       '(%dx%dx%dx%d) is too small' % ((C,) + isz + (C,) + osz), input)
        want = input.size()[:-3] + osz
        if gradOutput is not None:
            _check_go(self, gradOutput, want, input)
        if indices is not None and indices.size() != want:
            raise ValueError('%s: indices of size %s expected (call forward first), got %s'
                             % (self._name(), 'x'.join(map(str, want)),
                                'x'.join(map(str, indices.size())) or 'empty'))
        return want, k, d, p, dil

    def updateOutput(self, input):
        want, k, d, p, dil = self._geom(input)
        self.itime, self.iheight, self.iwidth = input.size()[-3:]
        ind = _long_like(self, 'indices', input)
        self.output.resize(*want)
        ind.resize(*want)
        if self.output.is_meta():
            return self.output
        PK.maxpool_forward(_b5(input), _b5(self.output), _b5(ind), k, d, p, dil, packed=True)
        return self.output

    def updateGradInput(self, input, gradOutput):
        want, k, d, p, dil = self._geom(input, gradOutput, self.indices if self.indices is not None
                                        else Tensor(kind='Long'))
        self.gradInput.resizeAs(input)
        if self.gradInput.is_meta():
            return self.gradInput
        PK.maxpool_backward(_b5(gradOutput), _b5(self.indices), _b5(self.gradInput), k, d, p, dil,
                            packed=True)
        return self.gradInput

    def empty(self):
        self.clearState()

    def clearState(self):
        ind = self.__dict__.get('indices')
        if ind is not None:
            ind.set()
        return super().clearState()

    def _head(self):
        s = '%s(%dx%dx%d, %d,%d,%d' % (self.__typename__, self.kT, self.kW, self.kH,
                                       self.dT, self.dW, self.dH)
        pT, pW, pH = self.padT, self.padW, self.padH
        if (pT or pW or pH) and (pT != 0 or pW != 0 or pH != 0):
            s += ', %s,%s,%s' % (pT, pW, pH)
        return s

    def __tostring__(self):
        return self._head() + ')'


class VolumetricDilatedMaxPooling(VolumetricMaxPooling):
    """nn.VolumetricDilatedMaxPooling(kT, kW, kH, dT, dW, dH, padT, padW, padH, dilationT,
    dilationW, dilationH)."""
    # no __version__ of its own: Lua writes 'V 1' (rawget of the class's own __version), and
    # on reading the inherited read() then sets ceil_mode false, as Lua's does

    def __init__(self, kT, kW, kH, dT=None, dW=None, dH=None, padT=None, padW=None, padH=None,
                 dilationT=None, dilationW=None, dilationH=None):
        super().__init__(kT, kW, kH, dT, dW, dH, padT, padW, padH)
        self.dilationT = dilationT or 1
        self.dilationW = dilationW or 1
        self.dilationH = dilationH or 1

    def _dil(self):
        return (self.dilationT or 1, self.dilationH or 1, self.dilationW or 1)

    def __tostring__(self):
        return self._head() + ', %s,%s,%s)' % (self.dilationT, self.dilationW, self.dilationH)


# --- average pooling ------------------------------------------------------------------------------
class VolumetricAveragePooling(Module):
    """nn.VolumetricAveragePooling(kT, kW, kH, dT=kT, dW=kW, dH=kH): no padding, floor mode,
    divided by the window size (THNN called with pad 0, ceil false, count_include_pad true)."""

    def __init__(self, kT, kW, kH, dT=None, dW=None, dH=None):
        super().__init__()
        self.kT, self.kH, self.kW = kT, kH, kW
        self.dT = kT if dT is None else dT
        self.dW = kW if dW is None else dW
        self.dH = kH if dH is None else dH

    def _geom(self, input, gradOutput=None):
        k = (self.kT, self.kH, self.kW)
        d = (self.dT, self.dH, self.dW)
        if not all(v > 0 for v in k):
            raise ValueError('%s: kernel size should be greater than zero, but got kT: %d kH: %d kW: %d'
                             % ((self._name(),) + k))
        if not all(v > 0 for v in d):
            raise ValueError('%s: stride should be greater than zero, but got dT: %d dH: %d dW: %d'
                             % ((self._name(),) + d))
        _check_in(self, input, (4, 5), '4D or 5D (batch mode) tensor expected for input')
        isz = input.size()[-3:]
        if not all(i >= kk for i, kk in zip(isz, k)):
            self._fail('an input image (T: %d H: %d W: %d) not smaller than the kernel size '
                       '(kT: %d kH: %d kW: %d)' % (isz + k), input)
        osz = PK.pooled_sizes(isz, k, d, (0, 0, 0), (1, 1, 1), False)
        want = input.size()[:-3] + osz
        if gradOutput is not None:
            _check_go(self, gradOutput, want, input)
        return want, k, d

    def updateOutput(self, input):
        want, k, d = self._geom(input)
        self.output.resize(*want)
        if self.output.is_meta():
            return self.output
        PK.avgpool_forward(_b5(input), _b5(self.output), k, d, (0, 0, 0), True)
        return self.output

    def updateGradInput(self, input, gradOutput):
        want, k, d = self._geom(input, gradOutput)
        self.gradInput.resizeAs(input)
        if self.gradInput.is_meta():
            return self.gradInput
        PK.avgpool_backward(_b5(gradOutput), _b5(self.gradInput), k, d, (0, 0, 0), True)
        return self.gradInput

    def empty(self):
        return super().clearState()

    def __tostring__(self):
        s = '%s(%dx%dx%d, %d,%d,%d' % (self.__typename__, self.kT, self.kW, self.kH,
                                       self.dT, self.dW, self.dH)
        pT, pW, pH = self.padT, self.padW, self.padH
        if (pT or pW or pH) and (pT != 0 or pW != 0 or pH != 0):
            s += ', %s,%s,%s' % (pT, pW, pH)
        return s + ')'


# --- max unpooling --------------------------------------------------------------------------------
class VolumetricMaxUnpooling(Module):
    """nn.VolumetricMaxUnpooling(poolingModule): puts each input value where the paired
    VolumetricMaxPooling found its maximum (its packed indices, shared as self.indices)."""

    def __init__(self, poolingModule):
        super().__init__()
        if getattr(poolingModule, '__typename__', None) != 'nn.VolumetricMaxPooling':
            raise ValueError('nn.VolumetricMaxUnpooling: Argument must be a nn.VolumetricMaxPooling module')
        pm = poolingModule
        if not (pm.kT == pm.dT and pm.kH == pm.dH and pm.kW == pm.dW):
            raise ValueError("nn.VolumetricMaxUnpooling: The size of pooling module's kernel must be "
                             "equal to its stride")
        self.pooling = poolingModule

    def setParams(self):
        pm = self.pooling
        self.indices = pm.indices
        self.otime, self.oheight, self.owidth = pm.itime, pm.iheight, pm.iwidth
        self.dT, self.dH, self.dW = pm.dT, pm.dH, pm.dW
        self.padT, self.padH, self.padW = pm.padT, pm.padH, pm.padW

    def _geom(self, input, gradOutput=None):
        _check_in(self, input, (4, 5), '4D or 5D (batch mode) tensor expected for input')
        pm = self.pooling
        ind = pm.__dict__.get('indices')
        osz = (pm.itime, pm.iheight, pm.iwidth)
        if ind is None or None in osz or ind.size() != input.size():
            self._fail('an input of the size of the pooling indices (%s)'
                       % ('x'.join(map(str, ind.size())) if ind is not None and None not in osz
                          else 'none: run the pooling module forward first'), input)
        d = (pm.dT, pm.dH, pm.dW)
        if not all(v > 0 for v in d):
            raise ValueError('%s: stride should be greater than zero, but got dT: %d dH: %d dW: %d'
                             % ((self._name(),) + d))
        want = input.size()[:-3] + osz
        if gradOutput is not None:
            _check_go(self, gradOutput, want, input)
        p = (pm.padT or 0, pm.padH or 0, pm.padW or 0)
        flat = None
        if not ind.is_meta() and ind.nElement():
            flat, bad = PK.unpool_packed_positions(_b5(ind), d, p, osz)
            if bad is not None:
                raise ValueError('%s: found an invalid max index %d (output volumes are of size %dx%dx%d)'
                                 % ((self._name(), bad) + osz))
        return want, flat

    def updateOutput(self, input):
        want, flat = self._geom(input)
        self.setParams()
        self.output.resize(*want)
        if self.output.is_meta():
            return self.output
        out = self.output.numpy()
        out.fill(0)
        if flat is not None:
            out.reshape(-1)[flat.reshape(-1)] = _b5(input).reshape(-1)
        return self.output

    def updateGradInput(self, input, gradOutput):
        want, flat = self._geom(input, gradOutput)
        self.setParams()
        self.gradInput.resizeAs(input)
        if self.gradInput.is_meta():
            return self.gradInput
        gi = self.gradInput.numpy()
        if flat is not None:
            g = gradOutput.numpy()
            g = g if g.flags.c_contiguous else backend.array_module(g).ascontiguousarray(g)
            gi[...] = g.reshape(-1)[flat.reshape(-1)].reshape(gi.shape)
        return self.gradInput

    def empty(self):
        self.clearState()

    def __tostring__(self):
        return 'nn.VolumetricMaxUnpooling associated to ' + self.pooling.__tostring__()


# --- fractional max pooling -----------------------------------------------------------------------
class VolumetricFractionalMaxPooling(_FractionalMaxPooling):
    """nn.VolumetricFractionalMaxPooling(poolSizeT, poolSizeW, poolSizeH, outT, outW, outH) or
    (..., ratioT, ratioW, ratioH). As THNN, the input's dims 3, 4, 5 (of a batch) are taken as
    height, width and time; randomSamples[..., 1/2/3] belong to time/width/height."""
    NSP = 3
    SAMPLE = (2, 1, 0)
    POOL = ('poolSizeH', 'poolSizeW', 'poolSizeT')
    OUT = ('outH', 'outW', 'outT')
    RATIO = ('ratioH', 'ratioW', 'ratioT')

    def __init__(self, poolSizeT, poolSizeW, poolSizeH, arg1, arg2, arg3):
        super().__init__()
        if not (poolSizeT >= 2 and poolSizeW >= 2 and poolSizeH >= 2):
            raise ValueError('nn.VolumetricFractionalMaxPooling: pool sizes must be >= 2')
        self.poolSizeT = poolSizeT
        self.poolSizeW = poolSizeW
        self.poolSizeH = poolSizeH
        self.newRandomPool = False
        if arg1 >= 1 and arg2 >= 1 and arg3 >= 1:
            self.outT, self.outW, self.outH = arg1, arg2, arg3
        else:
            self.ratioT, self.ratioW, self.ratioH = arg1, arg2, arg3
            if not all(0 < r < 1 for r in (arg1, arg2, arg3)):
                raise ValueError('nn.VolumetricFractionalMaxPooling: ratios must be in (0, 1)')

    def __tostring__(self):
        f = lambda a, b: self.__dict__.get(a) if self.__dict__.get(a) else self.__dict__.get(b)
        return '%s(%dx%dx%d, %d,%d,%d)' % (self.__typename__, f('outT', 'ratioT'), f('outW', 'ratioW'),
                                           f('outH', 'ratioH'), self.poolSizeT, self.poolSizeW,
                                           self.poolSizeH)


# --- batch normalization, dropout, padding --------------------------------------------------------
class VolumetricBatchNormalization(BatchNormalization):
    """BatchNormalization over the planes of N x C x T x H x W input."""
    nDim = 5   # no __version__ of its own: Lua writes 'V 1' for it


class VolumetricDropout(Module):
    """nn.VolumetricDropout(p=0.5, stochasticInference=false): zeroes whole planes in training
    (noise: N x C x 1 x 1 x 1, or C x 1 x 1 x 1), scales by 1-p in evaluation."""

    def __init__(self, p=0.5, stochasticInference=False):
        super().__init__()
        self.p = 0.5 if p is None else p
        self.train = True
        self.stochastic_inference = stochasticInference or False
        self.noise = Tensor()

    def updateOutput(self, input):
        if not isinstance(input, Tensor):
            self._fail('a Tensor', input)
        stoch = self.train or self.stochastic_inference
        if stoch and input.dim() not in (4, 5):
            self._fail('Input must be 5D (nbatch, nfeat, t, h, w) or 4D (nfeat, t, h, w)', input)
        if input.type() != self.output.type():
            self._fail('an input of type %s' % self.output.type(), input)
        self.output.resizeAs(input).copy(input)
        if stoch:
            if self.__dict__.get('noise') is None:
                self.noise = input.new()
            n = input.size()[:2] if input.dim() == 5 else input.size()[:1]
            self.noise.resize(*(n + (1,) * (input.dim() - len(n))))
            self.noise.bernoulli(1 - self.p)
            if self.output.is_meta():
                return self.output
            out = self.output.numpy()
            out *= self.noise.numpy()
        elif not self.output.is_meta():
            out = self.output.numpy()
            out *= (1 - self.p)
        return self.output

    def updateGradInput(self, input, gradOutput):
        if not self.train:
            raise ValueError('%s: backprop only defined while training' % self._name())
        if not isinstance(gradOutput, Tensor) or gradOutput.size() != input.size():
            self._fail('gradOutput of size %s' % 'x'.join(map(str, input.size())), gradOutput)
        noise = self.__dict__.get('noise')
        if noise is None or noise.size()[:input.dim() - 3] != input.size()[:input.dim() - 3]:
            self._fail('a backward call after a training forward on this input size', input)
        self.gradInput.resizeAs(gradOutput).copy(gradOutput)
        if self.gradInput.is_meta():
            return self.gradInput
        gi = self.gradInput.numpy()
        gi *= noise.numpy()
        return self.gradInput

    def setp(self, p):
        self.p = p

    def __tostring__(self):
        return '%s(%f)' % (self.__typename__, self.p)

    def clearState(self):
        noise = self.__dict__.get('noise')
        if noise is not None:
            noise.set()
        return super().clearState()


class VolumetricReplicationPadding(Module):
    """nn.VolumetricReplicationPadding(pleft, pright, ptop, pbottom, pfront, pback): pads the
    W, H and T dims by repeating the border values (negative pads crop)."""

    def __init__(self, pleft, pright=None, ptop=None, pbottom=None, pfront=None, pback=None):
        super().__init__()
        self.pleft = pleft
        self.pright = pleft if pright is None else pright
        self.ptop = pleft if ptop is None else ptop
        self.pbottom = pleft if pbottom is None else pbottom
        self.pfront = pleft if pfront is None else pfront
        self.pback = pleft if pback is None else pback

    def _pads(self):
        return ((self.pfront, self.pback), (self.ptop, self.pbottom), (self.pleft, self.pright))

    def _want(self, input):
        _check_in(self, input, (4, 5), 'input must be 4 or 5-dimensional')
        osz = tuple(i + a + b for i, (a, b) in zip(input.size()[-3:], self._pads()))
        if min(osz) < 1:
            self._fail('an input big enough for the padding (calculated output D: %d H: %d W: %d)'
                       % osz, input)
        return input.size()[:-3] + osz

    def updateOutput(self, input):
        want = self._want(input)
        self.output.resize(*want)
        if self.output.is_meta():
            return self.output
        PK.replication_pad_forward(input.numpy(), self.output.numpy(), self._pads())
        return self.output

    def updateGradInput(self, input, gradOutput):
        want = self._want(input)
        if not isinstance(gradOutput, Tensor) or gradOutput.dim() != input.dim():
            self._fail('input and gradOutput must be 4 or 5-dimensional and have equal number of '
                       'dimensions; gradOutput', gradOutput)
        _check_go(self, gradOutput, want, input)
        self.gradInput.resizeAs(input)
        if self.gradInput.is_meta():
            return self.gradInput
        PK.replication_pad_backward(gradOutput.numpy(), self.gradInput.numpy(), self._pads())
        return self.gradInput

    def __tostring__(self):
        return self.__typename__ + '(left=%d, right=%d, top=%d, bottom=%d, front=%d, back=%d)' % (
            self.pleft, self.pright, self.ptop, self.pbottom, self.pfront, self.pback)
