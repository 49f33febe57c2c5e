"""SpatialDepthWiseConvolution, SpatialConvolutionLocal, SpatialConvolutionMap,
SpatialFullConvolutionMap and SpatialSubSampling, as THNN computes them.

DepthWise keeps THNN's finput/fgradInput (B x nIn x kH*kW x L) laid out so that each input
plane's columns are one (kH*kW) x (B*L) matrix: one batched GEMM (over the planes) per pass.
Local keeps finput/fgradInput (B x K x L) laid out position-major, (L, K, B), so that its
per-position weights are one batched GEMM over the positions. The Map variants run as a dense
(full) convolution whose weight is scattered from connTable (zeros elsewhere) and gather
their weight gradient back; SubSampling is a window sum scaled per plane.
"""
import math

import numpy as np

from ...backend import array_module
from ...tensor import Tensor
from ..module import Module, clear, uniform_reset
from .. import functional as F


def _x(t, batch):
    a = t.numpy()
    return a if batch else a[None]


def _set_strides(t, size, stride):
    """Give t (already resized to `size`) the element strides `stride` over its storage."""
    if t.nElement() and t.stride() != tuple(stride):
        t.set(t.storage(), t.storageOffset(), tuple(size), tuple(stride))
    return t


def _check_size(self, what, t, want):
    if not isinstance(t, Tensor) or t.size() != tuple(want):
        self._fail('%s of size %s' % (what, 'x'.join(map(str, want))), t)


# --------------------------------------------------------------------------- depthwise
class SpatialDepthWiseConvolution(Module):
    """nn.SpatialDepthWiseConvolution(nIn, nOut, kW, kH, dW, dH, padW, padH): nOut output
    planes per input plane (output plane i*nOut + o); weight nOut x (nIn*kH*kW), bias
    nOut x nIn. As THNN, each input plane is read with its height and width exchanged
    (the contiguous H x W plane taken as W x H); square inputs are unaffected."""

    def __init__(self, nInputPlane, nOutputPlane, kW, kH, dW=1, dH=1, padW=0, padH=None):
        super().__init__()
        self.nInputPlane = nInputPlane
        self.nOutputPlane = nOutputPlane
        self.kW, self.kH = kW, kH
        self.dW = 1 if dW is None else dW
        self.dH = 1 if dH is None else dH
        self.padW = padW or 0
        self.padH = self.padW if padH is None else padH
        self.weight = Tensor(nOutputPlane, nInputPlane * kH * kW)
        self.bias = Tensor(nOutputPlane, nInputPlane)
        self.gradWeight = Tensor(nOutputPlane, nInputPlane * kH * kW)
        self.gradBias = Tensor(nOutputPlane, nInputPlane)
        self.reset()

    def reset(self, stdv=None):
        uniform_reset(self, stdv, self.kW * self.kH * self.nInputPlane)

    def noBias(self):
        self.__dict__.pop('bias', None)
        self.__dict__.pop('gradBias', None)
        return self

    def _planes(self):
        w = self.weight
        nIn = w.size(2) // (self.kH * self.kW) if w.dim() == 2 else w.size(2)
        return nIn, w.size(1)

    def _as4d(self, t):
        """THNN resizes a 2-D weight (gradWeight) to nOut x nIn x kH x kW in place."""
        if t is not None and t.dim() == 2:
            nIn, nOut = self._planes()
            t.resize(nOut, nIn, self.kH, self.kW)

    def _check(self, input, gradOutput=None):
        kW, kH, dW, dH = self.kW, self.kH, self.dW, self.dH
        if not (kW > 0 and kH > 0):
            raise ValueError('%s: kernel size should be greater than zero, but got kH: %d kW: %d'
                             % (self._name(), kH, kW))
        if not (dW > 0 and dH > 0):
            raise ValueError('%s: stride should be greater than zero, but got dH: %d dW: %d'
                             % (self._name(), dH, dW))
        nIn, nOut = self._planes()
        if not isinstance(input, Tensor) or input.dim() not in (3, 4):
            self._fail('a 3D or 4D input tensor (%d x H x W, or B x %d x H x W)' % (nIn, nIn), input)
        if input.type() != self.weight.type():
            self._fail('an input of type %s (the type of the weight)' % self.weight.type(), input)
        batch = input.dim() == 4
        if input.size(1 + batch) != nIn:
            self._fail('%d input planes (dimension %d)' % (nIn, 1 + batch), input)
        H, W = input.size(2 + batch), input.size(3 + batch)
        for a, b in ((H, W), (W, H)):
            oh = (a + 2 * self.padH - kH) // dH + 1
            ow = (b + 2 * self.padW - kW) // dW + 1
            if a + 2 * self.padH < kH or b + 2 * self.padW < kW or oh < 1 or ow < 1:
                self._fail('an input big enough for a %dx%d kernel' % (kW, kH), input)
        # THNN's frames: the plane read as W rows of H
        oH = (W + 2 * self.padH - kH) // dH + 1
        oW = (H + 2 * self.padW - kW) // dW + 1
        B = input.size(1) if batch else 1
        if gradOutput is not None:
            want = ((B,) if batch else ()) + (nIn * nOut, oH, oW)
            _check_size(self, 'gradOutput', gradOutput, want)
            if gradOutput.type() != input.type():
                self._fail('gradOutput of type %s' % input.type(), gradOutput)
        return batch, B, nIn, nOut, H, W, oH, oW

    def _layout(self, t, B, nIn, K, L):
        """(B, nIn, K, L) with storage (nIn, K, B*L): each plane's columns one matrix."""
        t.resize(B, nIn, K, L)
        return _set_strides(t, (B, nIn, K, L), (L, K * B * L, B * L, 1))

    @staticmethod
    def _mats(t, nIn, K, B, L):
        """(nIn, K, B*L) matrices of a buffer laid out by _layout."""
        return F.view(t.numpy().transpose(1, 2, 0, 3), (nIn, K, B * L))

    def _frames(self, t, batch, B, nIn, H, W):
        xp = array_module(t.numpy())
        a = xp.ascontiguousarray(_x(t, batch))
        return a.reshape(B, nIn, W, H)

    def updateOutput(self, input):
        batch, B, nIn, nOut, H, W, oH, oW = self._check(input)
        self._as4d(self.weight)
        d = self.__dict__
        if d.get('finput') is None:
            self.finput = input.new()
        if d.get('fgradInput') is None:
            self.fgradInput = input.new()
        if d.get('padding') is not None:
            self.padW = self.padH = d.pop('padding')
        K, L = self.kH * self.kW, oH * oW
        self.output.resize(*(((B,) if batch else ()) + (nIn * nOut, oH, oW)))
        self._layout(self.finput, B, nIn, K, L)
        if self.output.is_meta():
            return self.output
        xp = array_module(self.output.numpy())
        x = self._frames(input, batch, B, nIn, H, W)
        cols = F.view(self.finput.numpy(), (B, nIn, self.kH, self.kW, oH, oW))
        F.im2col_nd(x, cols, (self.kH, self.kW), (self.dH, self.dW), (self.padH, self.padW),
                    (1, 1))
        w3 = self.weight.numpy().reshape(nOut, nIn, K).transpose(1, 0, 2)
        r = xp.matmul(w3, self._mats(self.finput, nIn, K, B, L))      # (nIn, nOut, B*L)
        out = F.view(_x(self.output, batch), (B, nIn, nOut, L))
        src = r.reshape(nIn, nOut, B, L).transpose(2, 0, 1, 3)
        bias = d.get('bias')
        if bias is None:
            xp.copyto(out, src)
        else:
            xp.add(src, bias.numpy().T.reshape(1, nIn, nOut, 1), out=out)
        return self.output

    def _go_mats(self, gradOutput, batch, B, nIn, nOut, L):
        """gradOutput as (nIn, nOut, B*L) matrices (a copy)."""
        xp = array_module(gradOutput.numpy())
        g = _x(gradOutput, batch).reshape(B, nIn, nOut, L)
        m = xp.empty((nIn, nOut, B, L), dtype=g.dtype)
        xp.copyto(m, g.transpose(1, 2, 0, 3))
        return m.reshape(nIn, nOut, B * L)

    def updateGradInput(self, input, gradOutput):
        if self.__dict__.get('gradInput') is None:
            return None
        batch, B, nIn, nOut, H, W, oH, oW = self._check(input, gradOutput)
        self._as4d(self.weight)
        if self.__dict__.get('fgradInput') is None:
            self.fgradInput = input.new()
        K, L = self.kH * self.kW, oH * oW
        self.gradInput.resizeAs(input)
        self._layout(self.fgradInput, B, nIn, K, L)
        if self.gradInput.is_meta():
            return self.gradInput
        xp = array_module(self.gradInput.numpy())
        w3 = self.weight.numpy().reshape(nOut, nIn, K).transpose(1, 0, 2)
        g = self._go_mats(gradOutput, batch, B, nIn, nOut, L)
        fg = self._mats(self.fgradInput, nIn, K, B, L)
        xp.matmul(w3.transpose(0, 2, 1), g, out=fg)
        gx = _x(self.gradInput, batch)
        if not gx.flags.c_contiguous:  # pragma: no cover - resizeAs gives contiguous
            raise ValueError('%s: gradInput must be contiguous' % self._name())
        gx = gx.reshape(B, nIn, W, H)
        gx.fill(0)
        F.col2im_nd_add(self.fgradInput.numpy().reshape(B, nIn, self.kH, self.kW, oH, oW), gx,
                        (self.kH, self.kW), (self.dH, self.dW), (self.padH, self.padW), (1, 1))
        return self.gradInput

    def accGradParameters(self, input, gradOutput, scale=1):
        batch, B, nIn, nOut, H, W, oH, oW = self._check(input, gradOutput)
        d = self.__dict__
        if (d.get('bias') is None) != (d.get('gradBias') is None):
            raise ValueError('%s: bias and gradBias must both be set or both be absent' % self._name())
        K, L = self.kH * self.kW, oH * oW
        finput = d.get('finput')
        if finput is None or finput.size() != (B, nIn, K, L):
            raise ValueError('%s: accGradParameters needs the finput of a forward on this input'
                             % self._name())
        self._as4d(self.gradWeight)
        if self.gradWeight.is_meta():
            return
        g = self._go_mats(gradOutput, batch, B, nIn, nOut, L)
        t = array_module(g).matmul(g, self._mats(finput, nIn, K, B, L).transpose(0, 2, 1))
        if scale != 1:
            t *= scale
        gw = F.view(self.gradWeight.numpy(), (nOut, nIn, K))
        gw += t.transpose(1, 0, 2)
        gb = d.get('gradBias')
        if gb is not None:
            s = g.sum(axis=2)                       # (nIn, nOut)
            if scale != 1:
                s *= scale
            gb.numpy()[...] += s.T

    def type(self, name=None, tensorCache=None):
        d = self.__dict__
        if d.get('finput') is not None:
            self.finput = Tensor()
        if d.get('fgradInput') is not None:
            self.fgradInput = Tensor()
        return super().type(name, tensorCache)

    def clearState(self):
        clear(self, 'finput', 'fgradInput', '_input', '_gradOutput')
        return super().clearState()

    def __tostring__(self):
        s = '%s(%d -> %d, %dx%d' % (self.__typename__, self.nInputPlane, self.nOutputPlane,
                                    self.kW, self.kH)
        if self.dW != 1 or self.dH != 1 or self.padW != 0 or self.padH != 0:
            s += ', %d,%d' % (self.dW, self.dH)
        if (self.padW or self.padH) and (self.padW != 0 or self.padH != 0):
            s += ', %s,%s' % (self.padW, self.padH)
        return s + (')' if self.__dict__.get('bias') is not None else ') without bias')


# --------------------------------------------------------------------------- local
class SpatialConvolutionLocal(Module):
    """nn.SpatialConvolutionLocal(nIn, nOut, iW, iH, kW, kH, dW, dH, padW, padH): an unshared
    weight per output position (oH x oW x nOut x nIn x kH x kW), bias nOut x oH x oW."""

    def __init__(self, nInputPlane, nOutputPlane, iW, iH, kW, kH, dW=1, dH=1, padW=0, padH=None):
        super().__init__()
        self.nInputPlane = nInputPlane
        self.nOutputPlane = nOutputPlane
        self.kW, self.kH, self.iW, self.iH = kW, kH, iW, iH
        self.dW = 1 if dW is None else dW
        self.dH = 1 if dH is None else dH
        self.padW = padW or 0
        self.padH = self.padW if padH is None else padH
        self.oW = (self.padW * 2 + iW - kW) // self.dW + 1
        self.oH = (self.padH * 2 + iH - kH) // self.dH + 1
        if not (1 <= self.oW and 1 <= self.oH):
            raise ValueError('illegal configuration: output width or height less than 1')
        self.weight = Tensor(self.oH, self.oW, nOutputPlane, nInputPlane, kH, kW)
        self.bias = Tensor(nOutputPlane, self.oH, self.oW)
        self.gradWeight = Tensor().resizeAs(self.weight)
        self.gradBias = Tensor().resizeAs(self.bias)
        self.reset()

    def reset(self, stdv=None):
        uniform_reset(self, stdv, self.kW * self.kH * self.nInputPlane)

    def _check(self, input, gradOutput=None):
        if not isinstance(input, Tensor) or input.dim() not in (3, 4):
            self._fail('3D or 4D(batch mode) tensor', input)
        batch = input.dim() == 4
        if input.size()[batch:] != (self.nInputPlane, self.iH, self.iW):
            self._fail('an input of size %s(%dx%dx%d)' % ('batchsize x ' if batch else '',
                       self.nInputPlane, self.iH, self.iW), input)
        if input.type() != self.weight.type():
            self._fail('an input of type %s (the type of the weight)' % self.weight.type(), input)
        B = input.size(1) if batch else 1
        if gradOutput is not None:
            _check_size(self, 'gradOutput', gradOutput,
                        ((B,) if batch else ()) + (self.nOutputPlane, self.oH, self.oW))
            if gradOutput.type() != input.type():
                self._fail('gradOutput of type %s' % input.type(), gradOutput)
        return batch, B

    def _geom(self):
        return (self.kH, self.kW), (self.dH, self.dW), (self.padH, self.padW), (1, 1)

    def _layout(self, t, batch, B, K, L):
        """finput/fgradInput at THNN's size, stored as (L, K, B): per position one matrix."""
        if batch:
            t.resize(B, K, L)
            return _set_strides(t, (B, K, L), (1, B, K * B))
        t.resize(K, L)
        return _set_strides(t, (K, L), (1, K))

    @staticmethod
    def _lkb(t, batch):
        a = t.numpy()
        return (a if batch else a[None]).transpose(2, 1, 0)

    def _w3(self, t):
        L, nOut = self.oH * self.oW, self.nOutputPlane
        return F.view(t.numpy(), (L, nOut, -1))

    def updateOutput(self, input):
        batch, B = self._check(input)
        d = self.__dict__
        if d.get('finput') is None:
            self.finput = input.new()
        if d.get('fgradInput') is None:
            self.fgradInput = input.new()
        nIn, nOut, oH, oW = self.nInputPlane, self.nOutputPlane, self.oH, self.oW
        K, L = nIn * self.kH * self.kW, oH * oW
        self._layout(self.finput, batch, B, K, L)
        self.output.resize(*(((B,) if batch else ()) + (nOut, oH, oW)))
        if self.output.is_meta():
            return self.output
        xp = array_module(self.output.numpy())
        k, dd, pad, dil = self._geom()
        cols = F.view(_x(self.finput, batch), (B, nIn) + k + (oH, oW))
        F.im2col_nd(_x(input, batch), cols, k, dd, pad, dil)
        r = xp.matmul(self._w3(self.weight), self._lkb(self.finput, batch))   # (L, nOut, B)
        out = F.view(_x(self.output, batch), (B, nOut, L))
        xp.add(r.transpose(2, 1, 0), self.bias.numpy().reshape(1, nOut, L), out=out)
        return self.output

    def _go_lob(self, gradOutput, batch, B):
        xp = array_module(gradOutput.numpy())
        L, nOut = self.oH * self.oW, self.nOutputPlane
        g = xp.empty((L, nOut, B), dtype=gradOutput.numpy().dtype)
        xp.copyto(g, _x(gradOutput, batch).reshape(B, nOut, L).transpose(2, 1, 0))
        return g

    def updateGradInput(self, input, gradOutput):
        if self.__dict__.get('gradInput') is None:
            return None
        batch, B = self._check(input, gradOutput)
        if self.__dict__.get('fgradInput') is None:
            self.fgradInput = input.new()
        nIn, oH, oW = self.nInputPlane, self.oH, self.oW
        K, L = nIn * self.kH * self.kW, oH * oW
        self.gradInput.resizeAs(input)
        self._layout(self.fgradInput, batch, B, K, L)
        if self.gradInput.is_meta():
            return self.gradInput
        xp = array_module(self.gradInput.numpy())
        fg = self._lkb(self.fgradInput, batch)
        xp.matmul(self._w3(self.weight).transpose(0, 2, 1), self._go_lob(gradOutput, batch, B),
                  out=fg)
        gx = _x(self.gradInput, batch)
        gx.fill(0)
        k, dd, pad, dil = self._geom()
        F.col2im_nd_add(_x(self.fgradInput, batch).reshape((B, nIn) + k + (oH, oW)), gx,
                        k, dd, pad, dil)
        return self.gradInput

    def accGradParameters(self, input, gradOutput, scale=1):
        batch, B = self._check(input, gradOutput)
        nIn, oH, oW = self.nInputPlane, self.oH, self.oW
        K, L = nIn * self.kH * self.kW, oH * oW
        finput = self.__dict__.get('finput')
        if finput is None or finput.nElement() != B * K * L:
            raise ValueError('%s: accGradParameters needs the finput of a forward on this input'
                             % self._name())
        if self.gradWeight.is_meta():
            return
        xp = array_module(self.gradWeight.numpy())
        g = self._go_lob(gradOutput, batch, B)
        t = xp.matmul(g, self._lkb(finput, batch).transpose(0, 2, 1))    # (L, nOut, K)
        if scale != 1:
            t *= scale
        gw = self._w3(self.gradWeight)
        gw += t
        s = _x(gradOutput, batch).sum(axis=0)
        if scale != 1:
            s *= scale
        self.gradBias.numpy()[...] += s

    def type(self, name=None, tensorCache=None):
        d = self.__dict__
        if d.get('finput') is not None:
            self.finput = Tensor()
        if d.get('fgradInput') is not None:
            self.fgradInput = Tensor()
        return super().type(name, tensorCache)

    def clearState(self):
        clear(self, 'finput', 'fgradInput', '_input', '_gradOutput')
        return super().clearState()

    def __tostring__(self):
        s = '%s(%d -> %d, %dx%d, %dx%d' % (self.__typename__, self.nInputPlane,
                                           self.nOutputPlane, self.iW, self.iH, self.kW, self.kH)
        if self.dW != 1 or self.dH != 1 or self.padW != 0 or self.padH != 0:
            s += ', %d,%d' % (self.dW, self.dH)
        if (self.padW or self.padH) and (self.padW != 0 or self.padH != 0):
            s += ', %s,%s' % (self.padW, self.padH)
        return s + ')'


# --------------------------------------------------------------------------- maps
class _MapBase(Module):
    """Shared code of SpatialConvolutionMap and SpatialFullConvolutionMap: weight
    nConnections x kH x kW, bias nOutputPlane, connTable nConnections x 2 (1-based in, out)."""

    def __init__(self, conMatrix, kW, kH, dW=1, dH=1):
        super().__init__()
        self.kW, self.kH = kW, kH
        self.dW = 1 if dW is None else dW
        self.dH = 1 if dH is None else dH
        self.connTable = conMatrix
        c = conMatrix.numpy()
        self.nInputPlane = int(c[:, 0].max())
        self.nOutputPlane = int(c[:, 1].max())
        n = conMatrix.size(1)
        self.weight = Tensor(n, kH, kW)
        self.bias = Tensor(self.nOutputPlane)
        self.gradWeight = Tensor(n, kH, kW)
        self.gradBias = Tensor(self.nOutputPlane)
        self.reset()

    def reset(self, stdv=None):
        if stdv is not None:
            stdv = stdv * math.sqrt(3)
            self.weight.uniform(-stdv, stdv)
            self.bias.uniform(-stdv, stdv)
            return
        c = self.connTable.numpy()
        ninp = np.zeros(self.nOutputPlane)
        for o in c[:, 1]:
            ninp[int(o) - 1] += 1
        for k in range(self.connTable.size(1)):
            s = 1 / math.sqrt(self.kW * self.kH * ninp[int(c[k, 1]) - 1])
            self.weight.select(1, k + 1).uniform(-s, s)
        for k in range(self.nOutputPlane):
            s = 1 / math.sqrt(self.kW * self.kH * ninp[k])
            self.bias.narrow(1, k + 1, 1).uniform(-s, s)

    def decayParameters(self, decay):
        self.weight.add(-decay, self.weight)
        self.bias.add(-decay, self.bias)

    def _conn(self):
        c = self.connTable.numpy()
        return c[:, 0].astype(np.int64) - 1, c[:, 1].astype(np.int64) - 1

    def _check_common(self, input):
        w = self.weight
        if w.dim() != 3 or self.connTable.size(1) != w.size(1):
            raise ValueError('%s: 3D weight tensor expected (connTable:size(1) x kH x kW)'
                             % self._name())
        if not isinstance(input, Tensor) or input.dim() not in (3, 4):
            self._fail('3D or 4D(batch mode) tensor', input)
        if input.type() != w.type():
            self._fail('an input of type %s (the type of the weight)' % w.type(), input)
        batch = input.dim() == 4
        return batch, (input.size(1) if batch else 1), input.size(1 + batch)

    def _dense(self, C, transposed):
        """The dense weight: (nOut, C, kH, kW), or (C, nOut, kH, kW) when transposed."""
        w = self.weight.numpy()
        xp = array_module(w)
        i, o = self._conn()
        shape = ((C, self.nOutputPlane) if transposed else (self.nOutputPlane, C)) + w.shape[1:]
        dense = xp.zeros(shape, dtype=w.dtype)
        idx = (xp.asarray(i), xp.asarray(o)) if transposed else (xp.asarray(o), xp.asarray(i))
        F._scatter_add(xp, dense, idx, w)
        return dense

    def _gather_grad(self, dense, transposed, scale):
        i, o = self._conn()
        xp = array_module(dense)
        idx = (xp.asarray(i), xp.asarray(o)) if transposed else (xp.asarray(o), xp.asarray(i))
        g = dense[idx]
        if scale != 1:
            g *= scale
        self.gradWeight.numpy()[...] += g


class SpatialConvolutionMap(_MapBase):
    """nn.SpatialConvolutionMap(connTable, kW, kH, dW, dH): valid cross-correlations of the
    connected planes, summed per output plane, plus bias."""

    def _check(self, input, gradOutput=None):
        batch, B, C = self._check_common(input)
        if C < self.nInputPlane:
            self._fail('at least %d input planes' % self.nInputPlane, input)
        H, W = input.size(2 + batch), input.size(3 + batch)
        kH, kW = self.weight.size(2), self.weight.size(3)
        if W < kW or H < kH:
            self._fail('an input image at least as large as the %dx%d kernel' % (kW, kH), input)
        oH, oW = (H - kH) // self.dH + 1, (W - kW) // self.dW + 1
        if gradOutput is not None:
            _check_size(self, 'gradOutput', gradOutput,
                        ((B,) if batch else ()) + (self.nOutputPlane, oH, oW))
        return batch, B, C, (kH, kW), (oH, oW)

    def updateOutput(self, input):
        batch, B, C, k, osz = self._check(input)
        self.output.resize(*(((B,) if batch else ()) + (self.nOutputPlane,) + osz))
        if self.output.is_meta():
            return self.output
        nOut = self.nOutputPlane
        F.conv_nd_forward(_x(input, batch), self._dense(C, False).reshape(nOut, -1),
                          self.bias.numpy(), F.view(_x(self.output, batch), (B, nOut, -1)),
                          k, (self.dH, self.dW), (0, 0), (1, 1))
        return self.output

    def updateGradInput(self, input, gradOutput):
        if self.__dict__.get('gradInput') is None:
            return None
        batch, B, C, k, osz = self._check(input, gradOutput)
        self.gradInput.resizeAs(input)
        if self.gradInput.is_meta():
            return self.gradInput
        nOut = self.nOutputPlane
        F.conv_nd_backward_input(_x(gradOutput, batch).reshape(B, nOut, -1),
                                 self._dense(C, False).reshape(nOut, -1),
                                 _x(self.gradInput, batch), k, (self.dH, self.dW), (0, 0), (1, 1))
        return self.gradInput

    def accGradParameters(self, input, gradOutput, scale=1):
        batch, B, C, k, osz = self._check(input, gradOutput)
        if self.gradWeight.is_meta():
            return
        nOut = self.nOutputPlane
        x = _x(input, batch)
        dense = array_module(x).zeros((nOut, C) + k, dtype=x.dtype)
        F.conv_nd_backward_weight(x, _x(gradOutput, batch).reshape(B, nOut, -1),
                                  dense.reshape(nOut, -1), self.gradBias.numpy(), scale,
                                  k, (self.dH, self.dW), (0, 0), (1, 1))
        self._gather_grad(dense, False, 1)


class SpatialFullConvolutionMap(_MapBase):
    """nn.SpatialFullConvolutionMap(connTable, kW, kH, dW, dH): full convolutions of the
    connected planes (output (i - 1) * d + k), summed per output plane, plus bias."""

    def _check(self, input, gradOutput=None):
        batch, B, C = self._check_common(input)
        if C < self.nInputPlane:
            self._fail('at least %d input planes' % self.nInputPlane, input)
        H, W = input.size(2 + batch), input.size(3 + batch)
        kH, kW = self.weight.size(2), self.weight.size(3)
        oH, oW = (H - 1) * self.dH + kH, (W - 1) * self.dW + kW
        if gradOutput is not None:
            _check_size(self, 'gradOutput', gradOutput,
                        ((B,) if batch else ()) + (self.nOutputPlane, oH, oW))
        return batch, B, C, (kH, kW), (oH, oW)

    def updateOutput(self, input):
        batch, B, C, k, osz = self._check(input)
        self.output.resize(*(((B,) if batch else ()) + (self.nOutputPlane,) + osz))
        if self.output.is_meta():
            return self.output
        F.full_conv_nd_forward(_x(input, batch), self._dense(C, True).reshape(C, -1),
                               self.bias.numpy(), _x(self.output, batch), k,
                               (self.dH, self.dW), (0, 0), (1, 1))
        return self.output

    def updateGradInput(self, input, gradOutput):
        if self.__dict__.get('gradInput') is None:
            return None
        batch, B, C, k, osz = self._check(input, gradOutput)
        self.gradInput.resizeAs(input)
        if self.gradInput.is_meta():
            return self.gradInput
        F.full_conv_nd_backward_input(_x(gradOutput, batch), self._dense(C, True).reshape(C, -1),
                                      _x(self.gradInput, batch), k, (self.dH, self.dW),
                                      (0, 0), (1, 1))
        return self.gradInput

    def accGradParameters(self, input, gradOutput, scale=1):
        batch, B, C, k, osz = self._check(input, gradOutput)
        if self.gradWeight.is_meta():
            return
        x = _x(input, batch)
        dense = array_module(x).zeros((C, self.nOutputPlane) + k, dtype=x.dtype)
        F.full_conv_nd_backward_weight(x, _x(gradOutput, batch), dense.reshape(C, -1),
                                       self.gradBias.numpy(), scale, k, (self.dH, self.dW),
                                       (0, 0), (1, 1))
        self._gather_grad(dense, True, 1)


# --------------------------------------------------------------------------- subsampling
class SpatialSubSampling(Module):
    """nn.SpatialSubSampling(nInputPlane, kW, kH, dW, dH): per plane, weight * (sum over the
    kW x kH window) + bias, no padding."""

    def __init__(self, nInputPlane, kW, kH, dW=1, dH=1):
        super().__init__()
        self.nInputPlane = nInputPlane
        self.kW, self.kH = kW, kH
        self.dW = 1 if dW is None else dW
        self.dH = 1 if dH is None else dH
        self.weight = Tensor(nInputPlane)
        self.bias = Tensor(nInputPlane)
        self.gradWeight = Tensor(nInputPlane)
        self.gradBias = Tensor(nInputPlane)
        self.reset()

    def reset(self, stdv=None):
        uniform_reset(self, stdv, self.kW * self.kH)

    def _check(self, input, gradOutput=None):
        if not (self.kW > 0 and self.kH > 0):
            raise ValueError('%s: kernel size should be greater than zero, but got kH: %d kW: %d'
                             % (self._name(), self.kH, self.kW))
        if not (self.dW > 0 and self.dH > 0):
            raise ValueError('%s: stride should be greater than zero, but got dH: %d dW: %d'
                             % (self._name(), self.dH, self.dW))
        if not isinstance(input, Tensor) or input.dim() not in (3, 4):
            self._fail('a 3D or 4D input tensor', input)
        if input.type() != self.weight.type():
            self._fail('an input of type %s (the type of the weight)' % self.weight.type(), input)
        batch = input.dim() == 4
        nIn = self.weight.size(1)
        if input.size(1 + batch) != nIn:
            self._fail('%d input planes (dimension %d)' % (nIn, 1 + batch), input)
        H, W = input.size(2 + batch), input.size(3 + batch)
        if W < self.kW or H < self.kH:
            self._fail('an input image at least as large as the %dx%d kernel'
                       % (self.kW, self.kH), input)
        oH, oW = (H - self.kH) // self.dH + 1, (W - self.kW) // self.dW + 1
        B = input.size(1) if batch else 1
        if gradOutput is not None:
            _check_size(self, 'gradOutput', gradOutput, ((B,) if batch else ()) + (nIn, oH, oW))
        return batch, B, nIn, (oH, oW)

    def _wb(self, a):
        return a.numpy().reshape(1, -1, 1, 1)

    def updateOutput(self, input):
        batch, B, nIn, osz = self._check(input)
        self.output.resize(*(((B,) if batch else ()) + (nIn,) + osz))
        if self.output.is_meta():
            return self.output
        out = _x(self.output, batch)
        F.window_sum_nd(_x(input, batch), out, (self.kH, self.kW), (self.dH, self.dW))
        out *= self._wb(self.weight)
        out += self._wb(self.bias)
        return self.output

    def updateGradInput(self, input, gradOutput):
        if self.__dict__.get('gradInput') is None:
            return None
        batch, B, nIn, osz = self._check(input, gradOutput)
        self.gradInput.resizeAs(input)
        if self.gradInput.is_meta():
            return self.gradInput
        g = _x(gradOutput, batch) * self._wb(self.weight)
        F.window_spread_nd(g, _x(self.gradInput, batch), (self.kH, self.kW), (self.dH, self.dW))
        return self.gradInput

    def accGradParameters(self, input, gradOutput, scale=1):
        batch, B, nIn, osz = self._check(input, gradOutput)
        if self.gradWeight.is_meta():
            return
        x, go = _x(input, batch), _x(gradOutput, batch)
        xp = array_module(x)
        s = xp.empty(go.shape, dtype=go.dtype)
        F.window_sum_nd(x, s, (self.kH, self.kW), (self.dH, self.dW))
        s *= go
        gw = s.sum(axis=(0, 2, 3))
        gb = go.sum(axis=(0, 2, 3))
        if scale != 1:
            gw *= scale
            gb *= scale
        self.gradWeight.numpy()[...] += gw
        self.gradBias.numpy()[...] += gb


# --------------------------------------------------------------------------- nn.tables
class tables:
    """Lua's nn.tables (defined in SpatialConvolutionMap.lua): connection tables, nConn x 2
    tensors of 1-based (input plane, output plane) pairs, of the default tensor type."""

    @staticmethod
    def full(nin, nout):
        t = Tensor(nin * nout, 2)
        a = t.numpy()
        a[:, 0] = np.tile(np.arange(1, nin + 1), nout)
        a[:, 1] = np.repeat(np.arange(1, nout + 1), nin)
        return t

    @staticmethod
    def oneToOne(nfeat):
        t = Tensor(nfeat, 2)
        a = t.numpy()
        a[:, 0] = a[:, 1] = np.arange(1, nfeat + 1)
        return t

    @staticmethod
    def random(nin, nout, nto):
        """Each output plane connected to nto input planes, drawn as Lua draws them (chunks
        of torch.randperm(nin), a fresh permutation when the distinct chunks run out)."""
        import pynn
        randperm = getattr(pynn, 'randperm', None)
        if randperm is None:
            raise NotImplementedError('nn.tables.random needs torch.randperm (pynn.randperm)')
        tbl = Tensor(nto * nout, 2)
        a = tbl.numpy()
        fi = randperm(nin).numpy().copy()
        nfi = nin // nto
        cntr = 0
        for i in range(nout):
            a[i * nto:(i + 1) * nto, 0] = fi[cntr * nto:(cntr + 1) * nto]
            cntr += 1
            if cntr == nfi:
                fi = randperm(nin).numpy().copy()
                cntr = 0
        a[:, 1] = np.repeat(np.arange(1, nout + 1), nto)
        return tbl
