"""The cudnn.* layers other than convolution: nn's numerics, no persistent internal buffers.

cudnn.torch's modules keep no tensors besides output, gradInput and parameters (batch
normalization also keeps save_mean/save_std, of nFeature elements). Where nn keeps a buffer
(max pooling's indices, LRN's scale, batch normalization's contiguous copies), these recompute
or work in small transient chunks instead:

* SpatialMaxPooling: the window maxima are recomputed from the input in backward (cuDNN's
  pooling backward reads input and output too); no `indices`.
* SpatialCrossMapLRN: the scale is recomputed per sample in backward; no `scale`,
  `paddedRatio`, `accumRatio`.
* Batch normalization: as cudnn.torch, updateGradInput also accumulates gradWeight/gradBias
  (accGradParameters does nothing), backward needs training mode; no `_input`/`_gradOutput`.
"""
import numpy as np

from .. import nn as _nn
from ..backend import array_module
from ..nn import functional as F
from ..nn.activation import lowbuf, check_tensor, check_same_shape
from ..nn.pooling import _Pooling2d, _as4d


LUA_COPIES = '_pynn_lua_copies'


def lua_contiguous(m, t, field):
    """cudnn.torch (2016) copied a non-contiguous input/gradOutput into a persistent buffer
    field (`_input`, `_gradOutput`) before calling cuDNN. pynn's kernels take strides and do not;
    a module with `_pynn_lua_copies` set (pynn.cudnn.luaContiguousCopies) does, to reproduce
    the memory figures of that time. Returns the tensor to compute with."""
    if not m.__dict__.get(LUA_COPIES) or t is None or t.isContiguous():
        return t
    buf = m.__dict__.get(field)
    if buf is None:
        buf = t.new()
        m.__dict__[field] = buf
    buf.resizeAs(t).copy(t)
    return buf


class _LuaCopiesGrad(_nn.Module):
    """Mixin: updateGradInput on a contiguous copy of gradOutput (cudnn.torch's _gradOutput),
    only for modules with `_pynn_lua_copies` set. (A Module subclass, so that its
    updateGradInput is the traced one and tracers see the caller's gradOutput, as in Lua.)"""

    def updateGradInput(self, input, gradOutput):
        return super().updateGradInput(input, lua_contiguous(self, gradOutput, '_gradOutput'))


# --- pointwise -----------------------------------------------------------------------------------
class ReLU(_LuaCopiesGrad, _nn.ReLU):
    """cudnn.ReLU(inplace=False): max(x, 0), in place when `inplace` (gradInput shares gradOutput)."""
    __typename__ = 'cudnn.ReLU'

    def __init__(self, inplace=False):
        super().__init__(inplace)


class Tanh(_LuaCopiesGrad, _nn.Tanh):
    __typename__ = 'cudnn.Tanh'


class Sigmoid(_LuaCopiesGrad, _nn.Sigmoid):
    __typename__ = 'cudnn.Sigmoid'


class SoftMax(_LuaCopiesGrad, _nn.SoftMax):
    """cudnn.SoftMax: nn.SoftMax's numerics for every input shape (cuDNN's INSTANCE mode, which
    cudnn.torch selects, would normalise a 3-D/4-D input over all of C x H x W instead)."""
    __typename__ = 'cudnn.SoftMax'


class LogSoftMax(_LuaCopiesGrad, _nn.LogSoftMax):
    __typename__ = 'cudnn.LogSoftMax'


# --- pooling -------------------------------------------------------------------------------------
class SpatialMaxPooling(_Pooling2d):
    """cudnn.SpatialMaxPooling(kW, kH, dW=kW, dH=kH, padW=0, padH=0), with ceil()/floor().
    nn's output sizes and values; no `indices`: backward finds the maxima again, chunk by chunk."""
    __typename__ = 'cudnn.SpatialMaxPooling'

    def __init__(self, kW, kH, dW=None, dH=None, padW=0, padH=0):
        super().__init__()
        self.kW = kW
        self.kH = kH
        self.dW = kW if dW is None else dW
        self.dH = kH if dH is None else dH
        self.padW = 0 if padW is None else padW
        self.padH = 0 if padH is None else padH
        self.ceil_mode = False

    def ceil(self):
        self.ceil_mode = True
        return self

    def floor(self):
        self.ceil_mode = False
        return self

    def updateOutput(self, input):
        batch, C, iH, iW, oH, oW, padW, padH = self._pool_check(input)
        self.output.resize(*(input.size()[:-2] + (oH, oW)))
        if self.output.is_meta():
            return self.output
        x, out = _as4d(input, batch), _as4d(self.output, batch)
        xp = array_module(out)
        B = x.shape[0]
        ind = None
        for b0, b1, c0, c1 in F._chunks(B, C, oH * oW):
            oc = out[b0:b1, c0:c1]
            if ind is None:
                ind = xp.empty(oc.shape, dtype=np.int64)
            F.maxpool2d_forward(x[b0:b1, c0:c1], oc, ind[:oc.shape[0], :oc.shape[1]],
                                self.kH, self.kW, self.dH, self.dW, padH, padW)
        return self.output

    def updateGradInput(self, input, gradOutput):
        batch, C, iH, iW, oH, oW, padW, padH = self._pool_check(input, gradOutput)
        gradOutput = lua_contiguous(self, gradOutput, '_gradOutput')
        self.gradInput.resizeAs(input)
        if self.gradInput.is_meta():
            return self.gradInput
        x, go, gi = _as4d(input, batch), _as4d(gradOutput, batch), _as4d(self.gradInput, batch)
        xp = array_module(gi)
        B = x.shape[0]
        val = ind = None
        for b0, b1, c0, c1 in F._chunks(B, C, oH * oW):
            gc = go[b0:b1, c0:c1]
            if ind is None:
                val = xp.empty(gc.shape, dtype=gi.dtype)
                ind = xp.empty(gc.shape, dtype=np.int64)
            n, c = gc.shape[:2]
            F.maxpool2d_forward(x[b0:b1, c0:c1], val[:n, :c], ind[:n, :c],
                                self.kH, self.kW, self.dH, self.dW, padH, padW)
            F.maxpool2d_backward(gc, ind[:n, :c], gi[b0:b1, c0:c1],
                                 self.kH, self.kW, self.dH, self.dW, padH, padW)
        return self.gradInput


class SpatialAveragePooling(_LuaCopiesGrad, _nn.SpatialAveragePooling):
    """cudnn.SpatialAveragePooling(kW, kH, dW=kW, dH=kH, padW=0, padH=0) (cudnn's pooling
    defaults the stride to the kernel size); nn's numerics (ceil mode, count_include_pad)."""
    __typename__ = 'cudnn.SpatialAveragePooling'

    def __init__(self, kW, kH, dW=None, dH=None, padW=0, padH=0):
        super().__init__(kW, kH, kW if dW is None else dW, kH if dH is None else dH, padW, padH)


# --- normalization -------------------------------------------------------------------------------
class BatchNormalization(_nn.BatchNormalization):
    """cudnn.BatchNormalization: nn's numerics and running statistics. As cudnn.torch,
    updateGradInput computes gradInput and accumulates gradWeight/gradBias (scale 1),
    accGradParameters does nothing, backward(input, gradOutput, scale) does both with scale,
    and backward needs training mode."""
    __typename__ = 'cudnn.BatchNormalization'

    def _contiguous(self, input, gradOutput=None):
        return input, gradOutput       # no _input/_gradOutput copies: the kernels take strides

    def _need_train(self):
        if not self.train:
            raise ValueError("%s: backward is supported in training mode only (cudnn.torch's "
                             "'doesnt support backward in evaluate'); convert it back to nn for that"
                             % self._name())

    @lowbuf
    def backward(self, input, gradOutput, scale=1):
        self._need_train()
        return self._backward(input, gradOutput, scale, self.gradInput,
                              self.__dict__.get('gradWeight'), self.__dict__.get('gradBias'))

    @lowbuf
    def updateGradInput(self, input, gradOutput):
        self._need_train()
        return self._backward(input, gradOutput, 1, self.gradInput,
                              self.__dict__.get('gradWeight'), self.__dict__.get('gradBias'))

    def accGradParameters(self, input, gradOutput, scale=1):
        pass


class SpatialBatchNormalization(BatchNormalization):
    __typename__ = 'cudnn.SpatialBatchNormalization'
    nDim = 4


class SpatialCrossMapLRN(_nn.SpatialCrossMapLRN):
    """cudnn.SpatialCrossMapLRN(size=5, alpha=1e-4, beta=0.75, k=1): nn's numerics, no buffers
    (the scale is recomputed sample by sample in backward)."""
    __typename__ = 'cudnn.SpatialCrossMapLRN'

    def __init__(self, size=5, alpha=1e-4, beta=0.75, k=1.0):
        super().__init__(5 if size is None else size, alpha, beta, k)

    @lowbuf
    def updateOutput(self, input):
        self._check(input)
        self.output.resizeAs(input)
        if self.output.is_meta():
            return self.output
        batch = input.dim() == 4
        x, out = _as4d(input, batch), _as4d(self.output, batch)
        sc = array_module(out).empty((1,) + out.shape[1:], dtype=out.dtype)
        for n in range(x.shape[0]):
            self._forward(x[n:n + 1], out[n:n + 1], sc)
        return self.output

    @lowbuf
    def updateGradInput(self, input, gradOutput):
        self._check(input)
        check_tensor(self, gradOutput, 'gradOutput')
        check_same_shape(self, input, gradOutput)
        gradOutput = lua_contiguous(self, gradOutput, '_gradOutput')
        self.gradInput.resizeAs(input)
        if self.gradInput.is_meta():
            return self.gradInput
        batch = input.dim() == 4
        x, g, gi = _as4d(input, batch), _as4d(gradOutput, batch), _as4d(self.gradInput, batch)
        xp = array_module(gi)
        N, C, H, W = x.shape
        sc = xp.empty((1, C, H, W), dtype=gi.dtype)
        out = xp.empty((1, C, H, W), dtype=gi.dtype)
        padded = xp.empty((C + self.size - 1, H, W), dtype=gi.dtype)
        accum = xp.empty((H, W), dtype=gi.dtype)
        for n in range(N):
            self._forward(x[n:n + 1], out, sc)
            self._backward(x[n:n + 1], g[n:n + 1], out, sc, gi[n:n + 1], padded, accum)
        return self.gradInput

    def clearState(self):
        from ..nn.module import clear
        clear(self, '_gradOutput')
        return _nn.Module.clearState(self)
