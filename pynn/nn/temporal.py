"""Temporal layers (Lua nn's temporal family): sequences are nFrames x frameSize, or
B x nFrames x frameSize in batch mode.

TemporalConvolution is one GEMM per batch over the unfolded frames (pynn.nn.functional's
temporal kernels); TemporalRowConvolution (a per-feature 1-D convolution) keeps THNN's finput
and fgradInput (B x frameSize x kW x nOutputFrame) and runs a loop over the kW kernel offsets;
TemporalMaxPooling keeps THNN's `indices` (LongTensor, the 0-based offset of the maximum in
its window, -1 where none); TemporalDynamicKMaxPooling is Lua's sort/gather module.
"""
import math

import numpy as np

from .. import backend
from ..backend import array_module
from ..tensor import Tensor
from .module import Module, clear, uniform_reset
from . import functional as F


def _x(t, batch):
    a = t.numpy()
    return a if batch else a[None]


def _check_size(self, what, t, want):
    if not isinstance(t, Tensor) or t.size() != tuple(want):
        self._fail('%s of size %s' % (what, 'x'.join(map(str, want))), t)


def _transpose_self(t, d1, d2):
    """t:transpose(d1, d2) in place (Lua's THTensor_(transpose)(t, t, ...)), 0-based dims."""
    size, stride = list(t.size()), list(t.stride())
    size[d1], size[d2] = size[d2], size[d1]
    stride[d1], stride[d2] = stride[d2], stride[d1]
    if t.storage() is not None:
        t.set(t.storage(), t.storageOffset(), tuple(size), tuple(stride))
    return t


class TemporalConvolution(Module):
    """nn.TemporalConvolution(inputFrameSize, outputFrameSize, kW, dW): weight
    outputFrameSize x (inputFrameSize*kW), bias outputFrameSize; no buffers."""

    def __init__(self, inputFrameSize, outputFrameSize, kW, dW=1):
        super().__init__()
        self.inputFrameSize = inputFrameSize
        self.outputFrameSize = outputFrameSize
        self.kW = kW
        self.dW = 1 if dW is None else dW
        self.weight = Tensor(outputFrameSize, inputFrameSize * kW)
        self.bias = Tensor(outputFrameSize)
        self.gradWeight = Tensor(outputFrameSize, inputFrameSize * kW)
        self.gradBias = Tensor(outputFrameSize)
        self.reset()

    def reset(self, stdv=None):
        uniform_reset(self, stdv, self.kW * self.inputFrameSize)

    def _check(self, input, gradOutput=None):
        kW, dW = self.kW, self.dW
        if not kW > 0:
            raise ValueError('%s: kernel size should be greater than zero, but got kW: %d'
                             % (self._name(), kW))
        if not dW > 0:
            raise ValueError('%s: stride should be greater than zero, but got dW: %d'
                             % (self._name(), dW))
        if not isinstance(input, Tensor) or input.dim() not in (2, 3):
            self._fail('a 2D or 3D (batch mode) tensor for input', input)
        if input.type() != self.weight.type():
            self._fail('an input of type %s (the type of the weight)' % self.weight.type(), input)
        batch = input.dim() == 3
        C = self.weight.size(2) // kW
        if input.size(2 + batch) != C:
            self._fail('input frames of size %d (invalid input frame size)' % C, input)
        T = input.size(1 + batch)
        if T < kW:
            self._fail('an input sequence of at least kW = %d frames' % kW, input)
        oT = (T - kW) // dW + 1
        B = input.size(1) if batch else 1
        nOut = self.weight.size(1)
        if gradOutput is not None:
            _check_size(self, 'gradOutput', gradOutput, ((B,) if batch else ()) + (oT, nOut))
            if gradOutput.type() != input.type():
                self._fail('gradOutput of type %s' % input.type(), gradOutput)
        return batch, B, T, oT, nOut

    def updateOutput(self, input):
        batch, B, T, oT, nOut = self._check(input)
        self.output.resize(*(((B,) if batch else ()) + (oT, nOut)))
        if self.output.is_meta():
            return self.output
        bias = self.__dict__.get('bias')
        F.temporal_conv_forward(_x(input, batch), self.weight.numpy(),
                                None if bias is None else bias.numpy(),
                                _x(self.output, batch), self.kW, self.dW)
        return self.output

    def updateGradInput(self, input, gradOutput):
        if self.__dict__.get('gradInput') is None:
            return None
        batch, B, T, oT, nOut = self._check(input, gradOutput)
        self.gradInput.resizeAs(input)
        if self.gradInput.is_meta():
            return self.gradInput
        F.temporal_conv_backward_input(_x(gradOutput, batch), self.weight.numpy(),
                                       _x(self.gradInput, batch), self.kW, self.dW)
        return self.gradInput

    def accGradParameters(self, input, gradOutput, scale=1):
        batch, B, T, oT, nOut = self._check(input, gradOutput)
        if self.gradWeight.is_meta():
            return
        gb = self.__dict__.get('gradBias')
        F.temporal_conv_backward_weight(_x(input, batch), _x(gradOutput, batch),
                                        self.gradWeight.numpy(),
                                        None if gb is None else gb.numpy(), scale,
                                        self.kW, self.dW)

    def sharedAccUpdateGradParameters(self, input, gradOutput, lr):
        # Lua's defaultAccUpdateGradParameters: accumulate into the weights with -lr
        gw, gb = self.gradWeight, self.gradBias
        self.gradWeight, self.gradBias = self.weight, self.bias
        try:
            self.accGradParameters(input, gradOutput, -lr)
        finally:
            self.gradWeight, self.gradBias = gw, gb


class TemporalSubSampling(Module):
    """nn.TemporalSubSampling(inputFrameSize, kW, dW): weight * (sum of the kW frames of each
    window) + bias, per feature; 2-D input (nFrames x inputFrameSize) only, as THNN."""

    def __init__(self, inputFrameSize, kW, dW=1):
        super().__init__()
        self.inputFrameSize = inputFrameSize
        self.kW = kW
        self.dW = 1 if dW is None else dW
        self.weight = Tensor(inputFrameSize)
        self.bias = Tensor(inputFrameSize)
        self.gradWeight = Tensor(inputFrameSize)
        self.gradBias = Tensor(inputFrameSize)
        self.reset()

    def reset(self, stdv=None):
        uniform_reset(self, stdv, self.kW)

    def _check(self, input, gradOutput=None):
        if not self.kW > 0:
            raise ValueError('%s: kernel size should be greater than zero, but got kW: %d'
                             % (self._name(), self.kW))
        if not self.dW > 0:
            raise ValueError('%s: stride should be greater than zero, but got dW: %d'
                             % (self._name(), self.dW))
        if not isinstance(input, Tensor) or input.dim() != 2:
            self._fail('a 2D tensor (nFrames x %d) for input' % self.inputFrameSize, input)
        if input.type() != self.weight.type():
            self._fail('an input of type %s (the type of the weight)' % self.weight.type(), input)
        if input.size(2) != self.inputFrameSize:
            self._fail('input frames of size %d (invalid input frame size)'
                       % self.inputFrameSize, input)
        if input.size(1) < self.kW:
            self._fail('an input sequence of at least kW = %d frames' % self.kW, input)
        oT = (input.size(1) - self.kW) // self.dW + 1
        if gradOutput is not None:
            _check_size(self, 'gradOutput', gradOutput, (oT, self.inputFrameSize))
        return oT

    def _sum(self, x, out):
        """out (1, C, oT) window sums of x as (1, C, T) (frames along the last axis)."""
        F.window_sum_nd(x.T[None], out, (self.kW,), (self.dW,))

    def updateOutput(self, input):
        oT = self._check(input)
        self.output.resize(oT, self.inputFrameSize)
        if self.output.is_meta():
            return self.output
        out = self.output.numpy()
        self._sum(input.numpy(), out.T[None])
        out *= self.weight.numpy()
        out += self.bias.numpy()
        return self.output

    def updateGradInput(self, input, gradOutput):
        if self.__dict__.get('gradInput') is None:
            return None
        self._check(input, gradOutput)
        self.gradInput.resizeAs(input)
        if self.gradInput.is_meta():
            return self.gradInput
        g = gradOutput.numpy() * self.weight.numpy()
        F.window_spread_nd(g.T[None], self.gradInput.numpy().T[None], (self.kW,), (self.dW,))
        return self.gradInput

    def accGradParameters(self, input, gradOutput, scale=1):
        self._check(input, gradOutput)
        if self.gradWeight.is_meta():
            return
        go = gradOutput.numpy()
        s = array_module(go).empty(go.shape, dtype=go.dtype)
        self._sum(input.numpy(), s.T[None])
        s *= go
        gw, gb = s.sum(axis=0), go.sum(axis=0)
        if scale != 1:
            gw *= scale
            gb *= scale
        self.gradWeight.numpy()[...] += gw
        self.gradBias.numpy()[...] += gb


class TemporalMaxPooling(Module):
    """nn.TemporalMaxPooling(kW, dW = kW): max over each window of kW frames, per feature.
    `indices` (LongTensor, created lazily) holds THNN's 0-based offset of the maximum inside
    its window (the first strict maximum; -1 when no element is > -inf, e.g. all NaN)."""

    def __init__(self, kW, dW=None):
        super().__init__()
        self.kW = kW
        self.dW = kW if dW is None else dW

    def _check(self, input, gradOutput=None):
        if not self.kW > 0:
            raise ValueError('%s: kernel size should be greater than zero, but got kW: %d'
                             % (self._name(), self.kW))
        if not self.dW > 0:
            raise ValueError('%s: stride should be greater than zero, but got dW: %d'
                             % (self._name(), self.dW))
        if not isinstance(input, Tensor) or input.dim() not in (2, 3):
            self._fail('a 2D or 3D (batch mode) tensor for input', input)
        batch = input.dim() == 3
        T = input.size(1 + batch)
        if T < self.kW:
            self._fail('an input sequence of at least kW = %d frames' % self.kW, input)
        oT = (T - self.kW) // self.dW + 1
        B = input.size(1) if batch else 1
        C = input.size(2 + batch)
        if gradOutput is not None:
            _check_size(self, 'gradOutput', gradOutput, ((B,) if batch else ()) + (oT, C))
            if gradOutput.type() != input.type():
                self._fail('gradOutput of type %s' % input.type(), gradOutput)
        return batch, B, oT, C

    def updateOutput(self, input):
        batch, B, oT, C = self._check(input)
        long_type = backend.tensor_typename('Long', input.device)
        ind = self.__dict__.get('indices')
        if ind is None:
            ind = Tensor(kind='Long', device='cpu')
        self.indices = ind.type(long_type)
        size = ((B,) if batch else ()) + (oT, C)
        self.output.resize(*size)
        self.indices.resize(*size)
        if self.output.is_meta():
            return self.output
        x = _x(input, batch)
        out, ind = _x(self.output, batch), _x(self.indices, batch)
        xp = array_module(out)
        out.fill(-np.inf)
        ind.fill(-1)
        m = xp.empty(out.shape, dtype=bool)
        dW = self.dW
        for k in range(self.kW):
            v = x[:, k:k + (oT - 1) * dW + 1:dW]
            xp.greater(v, out, out=m)
            xp.copyto(out, v, where=m) if xp is np else out.__setitem__(m, v[m])
            xp.copyto(ind, k, where=m) if xp is np else ind.__setitem__(m, k)
        return self.output

    def updateGradInput(self, input, gradOutput):
        if self.__dict__.get('gradInput') is None:
            return None
        batch, B, oT, C = self._check(input, gradOutput)
        ind = self.__dict__.get('indices')
        if ind is None or ind.size() != gradOutput.size():
            raise ValueError('%s: updateGradInput needs the indices of a forward on this input'
                             % self._name())
        self.gradInput.resizeAs(input)
        if self.gradInput.is_meta():
            return self.gradInput
        gx = _x(self.gradInput, batch)
        go, ix = _x(gradOutput, batch), _x(ind, batch)
        xp = array_module(gx)
        gx.fill(0)
        m = xp.empty(go.shape, dtype=bool)
        dW = self.dW
        for k in range(self.kW):
            xp.equal(ix, k, out=m)
            F._masked_add(xp, gx[:, k:k + (oT - 1) * dW + 1:dW], go, m)
        return self.gradInput

    def empty(self):
        self.clearState()

    def clearState(self):
        ind = self.__dict__.get('indices')
        if ind is not None:
            ind.set()
        return super().clearState()


class TemporalDynamicKMaxPooling(Module):
    """nn.TemporalDynamicKMaxPooling(minK, factor): the k = max(minK, ceil(factor * nFrames))
    largest values of each feature along the sequence, kept in sequence order; `indices`
    (LongTensor, 1-based frame positions) as Lua's sort/narrow/sort leaves them."""

    def __init__(self, minK, factor=None):
        super().__init__()
        self.minK = minK
        self.factor = factor or 0

    def updateOutput(self, input):
        if not isinstance(input, Tensor) or input.dim() not in (2, 3):
            self._fail('a 2D or 3D (batch mode) tensor (Only 2D or 3D(batch mode) accepted)', input)
        seq = input.dim() - 2                      # 0-based sequence dim
        T = input.size(seq + 1)
        k = max(self.minK, int(math.ceil((self.factor or 0) * T)))
        if T < self.minK or T < k:
            self._fail('an input sequence of at least k = %d frames' % k, input)
        size = list(input.size())
        size[seq] = k
        long_type = backend.tensor_typename('Long', input.device)
        ind = Tensor(kind='Long', device='cpu').type(long_type)
        ind.resize(*size)
        out = input.new().resize(*size)
        self.indices = ind
        self.output = out
        if out.is_meta():
            return out
        x = input.numpy()
        xp = array_module(x)
        order = xp.argsort(-x, axis=seq, kind='stable')
        top = xp.sort(xp.take(order, xp.arange(k), axis=seq), axis=seq)
        ind.numpy()[...] = top + 1
        out.numpy()[...] = xp.take_along_axis(x, top, axis=seq)
        return out

    def updateGradInput(self, input, gradOutput):
        if self.__dict__.get('gradInput') is None:
            return None
        ind = self.__dict__.get('indices')
        if not isinstance(input, Tensor) or input.dim() not in (2, 3):
            self._fail('a 2D or 3D (batch mode) tensor', input)
        if ind is None or not isinstance(gradOutput, Tensor) or gradOutput.size() != ind.size():
            self._fail('gradOutput of the size of the last output', gradOutput)
        self.gradInput.resizeAs(input)
        if self.gradInput.is_meta():
            return self.gradInput
        seq = input.dim() - 2
        gx = self.gradInput.numpy()
        gx.fill(0)
        xp = array_module(gx)
        i = ind.numpy() - 1
        vals = xp.take_along_axis(gx, i, axis=seq) + gradOutput.numpy()
        xp.put_along_axis(gx, i, vals, axis=seq)
        return self.gradInput

    def clearState(self):
        clear(self, 'indices')
        return super().clearState()


class TemporalRowConvolution(Module):
    """nn.TemporalRowConvolution(inputFrameSize, kW, dW, featFirst): a 1-D convolution of each
    feature row with its own kernel (weight inputFrameSize x 1 x kW, bias inputFrameSize).
    Input nFrames x inputFrameSize (featFirst: inputFrameSize x nFrames), batch in front;
    without featFirst the output (and gradInput) is THNN's transposed, non-contiguous view.
    finput / fgradInput: (B x) inputFrameSize x kW x nOutputFrame."""

    def __init__(self, inputFrameSize, kW, dW=1, featFirst=False):
        super().__init__()
        self.inputFrameSize = inputFrameSize
        self.kW = kW
        self.dW = 1 if dW is None else dW
        self.weight = Tensor(inputFrameSize, 1, kW)
        self.bias = Tensor(inputFrameSize)
        self.gradWeight = Tensor(inputFrameSize, 1, kW)
        self.gradBias = Tensor(inputFrameSize)
        self.featFirst = bool(featFirst)
        self.reset()

    def noBias(self):
        self.__dict__.pop('bias', None)
        self.__dict__.pop('gradBias', None)
        return self

    def reset(self, stdv=None):
        uniform_reset(self, stdv, self.kW * self.inputFrameSize)

    def _check(self, input, gradOutput=None):
        kW, dW = self.kW, self.dW
        if not kW > 0:
            raise ValueError('%s: kernel size should be greater than zero, but got kW: %d'
                             % (self._name(), kW))
        if not dW > 0:
            raise ValueError('%s: stride should be greater than zero, but got dW: %d'
                             % (self._name(), dW))
        w = self.weight
        if w.dim() != 3:
            raise ValueError('%s: 3D weight tensor expected' % self._name())
        if not isinstance(input, Tensor) or input.dim() not in (2, 3):
            self._fail('a 2D or 3D (batch mode) tensor for input', input)
        if input.type() != w.type():
            self._fail('an input of type %s (the type of the weight)' % w.type(), input)
        batch = input.dim() == 3
        C = w.size(1)
        ff = bool(self.featFirst)
        cdim, tdim = (1 + batch, 2 + batch) if ff else (2 + batch, 1 + batch)
        if input.size(cdim) != C:
            self._fail('%d features (dimension %d)' % (C, cdim), input)
        T = input.size(tdim)
        if T < kW:
            self._fail('an input sequence of at least kW = %d frames' % kW, input)
        oT = (T - kW) // dW + 1
        B = input.size(1) if batch else 1
        if gradOutput is not None:
            want = ((B,) if batch else ()) + ((C, oT) if ff else (oT, C))
            _check_size(self, 'gradOutput', gradOutput, want)
            if gradOutput.type() != input.type():
                self._fail('gradOutput of type %s' % input.type(), gradOutput)
        return batch, B, C, T, oT

    def _bct(self, t, batch):
        """(B, C, T) view of a sequence tensor (transposed when not featFirst)."""
        a = _x(t, batch)
        return a if self.featFirst else a.transpose(0, 2, 1)

    def _bufs(self, input):
        d = self.__dict__
        if d.get('finput') is None:
            self.finput = input.new()
        if d.get('fgradInput') is None:
            self.fgradInput = input.new()

    def updateOutput(self, input):
        batch, B, C, T, oT = self._check(input)
        self._bufs(input)
        kW, dW = self.kW, self.dW
        lead = (B,) if batch else ()
        self.finput.resize(*(lead + (C, kW, oT)))
        self.output.resize(*(lead + (C, oT)))
        if not self.output.is_meta():
            x = self._bct(input, batch)
            fin = _x(self.finput, batch)
            out = _x(self.output, batch)
            xp = array_module(out)
            for k in range(kW):
                xp.copyto(fin[:, :, k], x[:, :, k:k + (oT - 1) * dW + 1:dW])
            bias = self.__dict__.get('bias')
            if bias is None:
                out.fill(0)
            else:
                xp.copyto(out, bias.numpy().reshape(1, C, 1))
            w = self.weight.numpy().reshape(C, kW)
            tmp = xp.empty(out.shape, dtype=out.dtype)
            for k in range(kW):
                xp.multiply(fin[:, :, k], w[:, k:k + 1], out=tmp)
                out += tmp
        if not self.featFirst:
            _transpose_self(self.output, self.output.dim() - 1, self.output.dim() - 2)
        return self.output

    def updateGradInput(self, input, gradOutput):
        if self.__dict__.get('gradInput') is None:
            return None
        batch, B, C, T, oT = self._check(input, gradOutput)
        self._bufs(input)
        kW, dW = self.kW, self.dW
        lead = (B,) if batch else ()
        self.fgradInput.resize(*(lead + (C, kW, oT)))
        self.gradInput.resize(*(lead + (C, T)))
        if not self.gradInput.is_meta():
            go = self._bct(gradOutput, batch)
            fg = _x(self.fgradInput, batch)
            gx = _x(self.gradInput, batch)
            xp = array_module(gx)
            w = self.weight.numpy().reshape(C, kW)
            gx.fill(0)
            for k in range(kW):
                xp.multiply(go, w[:, k:k + 1], out=fg[:, :, k])
                dst = gx[:, :, k:k + (oT - 1) * dW + 1:dW]
                xp.add(dst, fg[:, :, k], out=dst)
        if not self.featFirst:
            _transpose_self(self.gradInput, self.gradInput.dim() - 1, self.gradInput.dim() - 2)
        return self.gradInput

    def accGradParameters(self, input, gradOutput, scale=1):
        batch, B, C, T, oT = self._check(input, gradOutput)
        finput = self.__dict__.get('finput')
        lead = (B,) if batch else ()
        if finput is None or finput.size() != lead + (C, self.kW, oT):
            raise ValueError('%s: accGradParameters needs the finput of a forward on this input'
                             % self._name())
        if self.gradWeight.is_meta():
            return
        go = self._bct(gradOutput, batch)
        fin = _x(finput, batch)
        xp = array_module(fin)
        gw = F.view(self.gradWeight.numpy(), (C, self.kW))
        t = xp.einsum('bckt,bct->ck', fin, go, optimize=True)
        if scale != 1:
            t *= scale
        gw += t
        gb = self.__dict__.get('gradBias')
        if gb is not None:
            s = go.sum(axis=(0, 2))
            if scale != 1:
                s *= scale
            gb.numpy()[...] += s

    def type(self, name=None, tensorCache=None):
        d = self.__dict__
        if d.get('finput') is not None:
            self.finput.set()
        if d.get('fgradInput') is not None:
            self.fgradInput.set()
        return super().type(name, tensorCache)

    def clearState(self):
        clear(self, 'finput', 'fgradInput', '_input', '_gradOutput')
        return super().clearState()

    def __tostring__(self):
        s = '%s(%d, %d' % (self.__typename__, self.inputFrameSize, self.kW)
        if self.dW != 1:
            s += ', %d' % self.dW
        padW = self.__dict__.get('padW')
        if padW and padW != 0:
            s += ', %s' % padW
        return s + (')' if self.__dict__.get('bias') is not None else ') without bias')
