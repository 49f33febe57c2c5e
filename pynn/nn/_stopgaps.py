"""Minimal stand-ins for Lua classes that the composite pooling/normalization modules are built
from (SpatialLPPooling, LayerNormalization, Spatial{Subtractive,Divisive,Contrastive}
Normalization) while their own families are written elsewhere: nn.Square, nn.Sqrt, nn.Power,
nn.Replicate, nn.CDivTable, nn.Add, nn.CMul, nn.SpatialConvolutionMap.

They are used only where pynn has no real implementation of that class: `nn_class(name)` returns
the class exported by pynn.nn when there is one, and volumetric.py (the last family imported)
exports a stand-in only for a name that no family defines. Fields follow Lua; numerics follow
THNN / the Lua code (float64 exact); no meta or CuPy subtleties beyond what these modules need.
"""
import sys

import numpy as np

from ..backend import array_module
from ..tensor import Tensor
from .module import Module


def nn_class(name):
    """pynn.nn's class `name` (e.g. 'Square'), else the stand-in defined here."""
    pkg = sys.modules.get(__package__)
    cls = pkg.__dict__.get(name) if pkg is not None else None
    return cls if cls is not None else STOPGAPS[name]


class _Base(Module):
    _pynn_stopgap = True

    def _check(self, x, what='input'):
        if not isinstance(x, Tensor):
            self._fail('a Tensor as %s' % what, x)
        if x.type() != self.output.type():
            self._fail('%s of type %s' % (what, self.output.type()), x)


class Square(_Base):
    __typename__ = 'nn.Square'

    def updateOutput(self, input):
        self._check(input)
        self.output.resizeAs(input)
        if not self.output.is_meta():
            x = input.numpy()
            array_module(x).multiply(x, x, out=self.output.numpy())
        return self.output

    def updateGradInput(self, input, gradOutput):
        self._check(gradOutput, 'gradOutput')
        self.gradInput.resizeAs(input)
        if not self.gradInput.is_meta():
            gi = self.gradInput.numpy()
            gi[...] = 2.0 * gradOutput.numpy().reshape(gi.shape) * input.numpy()
        return self.gradInput


class Sqrt(_Base):
    __typename__ = 'nn.Sqrt'

    def __init__(self, b=None):
        super().__init__()
        self.eps = b or 0

    def updateOutput(self, input):
        self._check(input)
        self.output.resizeAs(input)
        if not self.output.is_meta():
            xp = array_module(input.numpy())
            self.output.numpy()[...] = xp.sqrt(input.numpy())
        return self.output

    def updateGradInput(self, input, gradOutput):
        self._check(gradOutput, 'gradOutput')
        self.gradInput.resizeAs(input)
        if not self.gradInput.is_meta():
            gi = self.gradInput.numpy()
            out = self.output.numpy().reshape(gi.shape)
            with np.errstate(divide='ignore', invalid='ignore'):
                gi[...] = 0.5 * (gradOutput.numpy().reshape(gi.shape) / out)
        return self.gradInput


class Power(_Base):
    __typename__ = 'nn.Power'

    def __init__(self, p=None):
        super().__init__()
        if p is None:
            raise ValueError('nn.Power(power)')
        self.pow = p

    def updateOutput(self, input):
        self._check(input)
        self.output.resizeAs(input)
        if not self.output.is_meta():
            xp = array_module(input.numpy())
            self.output.numpy()[...] = xp.power(input.numpy(), self.pow)
        return self.output

    def updateGradInput(self, input, gradOutput):
        self._check(gradOutput, 'gradOutput')
        self.gradInput.resizeAs(input)
        if not self.gradInput.is_meta():
            xp = array_module(input.numpy())
            gi = self.gradInput.numpy()
            gi[...] = xp.power(input.numpy(), self.pow - 1)
            gi *= gradOutput.numpy().reshape(gi.shape)
            gi *= self.pow
        return self.gradInput

    def __tostring__(self):
        return 'nn.Power'


class Replicate(_Base):
    """output: a view of the input with a stride-0 dimension inserted (as Lua)."""
    __typename__ = 'nn.Replicate'

    def __init__(self, nf, dim=1, ndim=None):
        super().__init__()
        self.nfeatures = nf
        self.dim = dim or 1
        self.ndim = ndim

    def _rdim(self, input):
        off = 1 if self.ndim and input.dim() > self.ndim else 0
        return (self.dim or 1) + off

    def updateOutput(self, input):
        self._check(input)
        r = self._rdim(input) - 1
        if r > input.dim():
            self._fail('an input with at least %d dimensions' % r, input)
        sz = list(input.size())
        st = list(input.stride())
        sz.insert(r, self.nfeatures)
        st.insert(r, 0)
        if input.storage() is None:
            self.output.resize(*sz)
        else:
            self.output.set(input.storage(), input.storageOffset(), tuple(sz), tuple(st))
        return self.output

    def updateGradInput(self, input, gradOutput):
        r = self._rdim(input) - 1
        self.gradInput.resizeAs(input)
        if not self.gradInput.is_meta():
            self.gradInput.numpy()[...] = gradOutput.numpy().sum(axis=r)
        return self.gradInput


class CDivTable(_Base):
    __typename__ = 'nn.CDivTable'

    def __init__(self):
        super().__init__()
        self.gradInput = []

    def updateOutput(self, input):
        a, b = input[0], input[1]
        self.output.resizeAs(a)
        if not self.output.is_meta():
            self.output.numpy()[...] = a.numpy() / b.numpy().reshape(a.numpy().shape)
        return self.output

    def updateGradInput(self, input, gradOutput):
        a, b = input[0], input[1]
        gi = self.gradInput
        while len(gi) < 2:
            gi.append(a.new())
        del gi[len(input):]
        gi[0].resizeAs(a)
        gi[1].resizeAs(b)
        if not gi[0].is_meta():
            g0 = gi[0].numpy()
            g0[...] = gradOutput.numpy().reshape(g0.shape) / b.numpy().reshape(g0.shape)
            g1 = gi[1].numpy()
            g1[...] = (0 - g0 / b.numpy().reshape(g0.shape)).reshape(g1.shape)
            g1 *= a.numpy().reshape(g1.shape)
        return gi


class Add(_Base):
    __typename__ = 'nn.Add'

    def __init__(self, inputSize, scalar=None):
        super().__init__()
        size = 1 if scalar else inputSize
        self.scalar = scalar
        self.bias = Tensor(size)
        self.gradBias = Tensor(size)
        self._ones = Tensor([1])
        self.reset()

    def reset(self, stdv=None):
        stdv = stdv * 3 ** 0.5 if stdv else 1 / self.bias.size(1) ** 0.5
        self.bias.uniform(-stdv, stdv)

    def updateOutput(self, input):
        self.output.resizeAs(input).copy(input)
        if not self.output.is_meta():
            out = self.output.numpy()
            b = self.bias.numpy()
            if self.scalar:
                out += b[0]
            elif input.nElement() == self.bias.nElement() and input.size() == self.bias.size():
                out += b
            else:
                out.reshape(input.size(1), -1)[...] += b.reshape(1, -1)
        return self.output

    def updateGradInput(self, input, gradOutput):
        self.gradInput.resizeAs(gradOutput).copy(gradOutput)
        return self.gradInput

    def accGradParameters(self, input, gradOutput, scale=1):
        if gradOutput.is_meta():
            return
        g = gradOutput.numpy()
        gb = self.gradBias.numpy()
        if gb.size == 1:
            gb[0] += scale * g.sum()
        elif input.size() == self.bias.size():
            gb += scale * g
        else:
            gb += scale * g.reshape(input.size(1), -1).sum(axis=0).reshape(gb.shape)


class CMul(_Base):
    __typename__ = 'nn.CMul'

    def __init__(self, *size):
        super().__init__()
        self.size = tuple(size)
        self.weight = Tensor(*size)
        self.gradWeight = Tensor(*size)
        self.output.resize(*size)
        self.reset()

    def reset(self, stdv=None):
        stdv = stdv * 3 ** 0.5 if stdv else 1 / self.weight.nElement() ** 0.5
        self.weight.uniform(-stdv, stdv)

    def _w(self, input):
        w = self.weight.numpy()
        if input.nElement() == w.size:
            return w.reshape(input.size())
        if w.ndim == input.dim():
            return w
        return w.reshape((1,) + w.shape)

    def updateOutput(self, input):
        self.output.resizeAs(input).copy(input)
        if not self.output.is_meta():
            out = self.output.numpy()
            w = self._w(input)
            out.reshape((input.size(1), -1) if w.shape[0] == 1 and w.ndim != input.dim() else out.shape)[...] *= \
                w.reshape(1, -1) if w.shape[0] == 1 and w.ndim != input.dim() else w
        return self.output

    def updateGradInput(self, input, gradOutput):
        self.gradInput.resizeAs(input)
        if not self.gradInput.is_meta():
            gi = self.gradInput.numpy()
            w = self._w(input)
            if w.shape[0] == 1 and w.ndim != input.dim():
                gi.reshape(input.size(1), -1)[...] = gradOutput.numpy().reshape(input.size(1), -1) * w.reshape(1, -1)
            else:
                gi[...] = gradOutput.numpy().reshape(gi.shape) * w
        return self.gradInput

    def accGradParameters(self, input, gradOutput, scale=1):
        if gradOutput.is_meta():
            return
        gw = self.gradWeight.numpy()
        prod = input.numpy() * gradOutput.numpy().reshape(input.size())
        if input.nElement() == gw.size:
            gw += scale * prod.reshape(gw.shape)
        else:
            gw += scale * prod.reshape(input.size(1), -1).sum(axis=0).reshape(gw.shape)


class SpatialConvolutionMap(_Base):
    """Convolution with a connection table (rows: input plane, output plane; 1-based). THNN's
    SpatialConvolutionMap: weight (nConnections, kH, kW), bias (nOutputPlane)."""
    __typename__ = 'nn.SpatialConvolutionMap'

    def __init__(self, conMatrix, kW, kH, dW=1, dH=1):
        super().__init__()
        self.kW, self.kH, self.dW, self.dH = kW, kH, dW or 1, dH or 1
        self.connTable = conMatrix
        c = conMatrix.numpy()
        self.nInputPlane = int(c[:, 0].max())
        self.nOutputPlane = int(c[:, 1].max())
        self.weight = Tensor(c.shape[0], kH, kW)
        self.bias = Tensor(self.nOutputPlane)
        self.gradWeight = Tensor(c.shape[0], kH, kW)
        self.gradBias = Tensor(self.nOutputPlane)
        self.reset()

    def reset(self, stdv=None):
        stdv = stdv * 3 ** 0.5 if stdv else 1 / (self.kW * self.kH) ** 0.5
        self.weight.uniform(-stdv, stdv)
        self.bias.uniform(-stdv, stdv)

    def _geom(self, input):
        batch = input.dim() == 4
        x = input.numpy() if batch else input.numpy()[None]
        B, C, H, W = x.shape
        oH = (H - self.kH) // self.dH + 1
        oW = (W - self.kW) // self.dW + 1
        return batch, x, oH, oW

    def _win(self, x, ky, kx, oH, oW):
        return x[:, :, ky:ky + (oH - 1) * self.dH + 1:self.dH, kx:kx + (oW - 1) * self.dW + 1:self.dW]

    def updateOutput(self, input):
        batch, x, oH, oW = self._geom(input)
        size = ((x.shape[0],) if batch else ()) + (self.nOutputPlane, oH, oW)
        self.output.resize(*size)
        out = self.output.numpy() if batch else self.output.numpy()[None]
        conn = self.connTable.numpy().astype(np.int64) - 1
        w = self.weight.numpy()
        out[...] = self.bias.numpy()[None, :, None, None]
        for k, (i, o) in enumerate(conn):
            for ky in range(self.kH):
                for kx in range(self.kW):
                    out[:, o] += w[k, ky, kx] * self._win(x, ky, kx, oH, oW)[:, i]
        return self.output

    def updateGradInput(self, input, gradOutput):
        batch, x, oH, oW = self._geom(input)
        self.gradInput.resizeAs(input)
        gi = self.gradInput.numpy() if batch else self.gradInput.numpy()[None]
        g = gradOutput.numpy() if batch else gradOutput.numpy()[None]
        gi.fill(0)
        conn = self.connTable.numpy().astype(np.int64) - 1
        w = self.weight.numpy()
        for k, (i, o) in enumerate(conn):
            for ky in range(self.kH):
                for kx in range(self.kW):
                    self._win(gi, ky, kx, oH, oW)[:, i] += w[k, ky, kx] * g[:, o]
        return self.gradInput

    def accGradParameters(self, input, gradOutput, scale=1):
        batch, x, oH, oW = self._geom(input)
        g = gradOutput.numpy() if batch else gradOutput.numpy()[None]
        conn = self.connTable.numpy().astype(np.int64) - 1
        gw = self.gradWeight.numpy()
        gb = self.gradBias.numpy()
        gb += scale * g.sum(axis=(0, 2, 3))
        for k, (i, o) in enumerate(conn):
            for ky in range(self.kH):
                for kx in range(self.kW):
                    gw[k, ky, kx] += scale * (self._win(x, ky, kx, oH, oW)[:, i] * g[:, o]).sum()


def one_to_one(n):
    """nn.tables.oneToOne(n): rows (i, i), 1-based, as a Tensor."""
    t = Tensor(n, 2)
    t.numpy()[:, 0] = np.arange(1, n + 1)
    t.numpy()[:, 1] = np.arange(1, n + 1)
    return t


STOPGAPS = {c.__typename__[3:]: c for c in (Square, Sqrt, Power, Replicate, CDivTable, Add, CMul,
                                            SpatialConvolutionMap)}
