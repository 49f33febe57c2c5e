"""Index-driven linear layers of Lua nn: LookupTable, SparseLinear, PartialLinear (IndexLinear is in
linear_index.py).

Semantics follow Lua nn and THNN (lib/THNN/generic/{LookupTable,SparseLinear,IndexLinear}.c):
1-based indices, the same fields and lazily created buffers, Lua's quirks kept (LookupTable's
gradInput is zeros of the input's type; SparseLinear's non-batch accGradParameters resizes the
caller's gradOutput to 1 x outputSize; IndexLinear keeps its dense gradients in `running`).
Scatter-adds are whole-array (`add.at`), never Python loops over indices.
"""
import math

import numpy as np

from .. import backend
from ..tensor import Tensor
from .module import Module
from .activation import xpof


def _scale(scale):
    return 1 if scale is None else scale


def _host(a):
    return a if backend.array_module(a) is np else a.get()


def _add_at(xp, target, idx, vals):
    if xp is np:
        np.add.at(target, idx, vals)
    else:  # cupyx.scatter_add
        import cupyx
        cupyx.scatter_add(target, idx, vals)


# --- LookupTable -------------------------------------------------------------------------------
class LookupTable(Module):
    """output = weight[input] for 1-based indices (a vector, or a batch matrix of them)."""

    __version__ = 4

    def __init__(self, nIndex, nOutput, paddingValue=None, maxNorm=None, normType=None):
        super().__init__()
        self.weight = Tensor(nIndex, nOutput)
        self.gradWeight = Tensor(nIndex, nOutput).zero()
        self.paddingValue = paddingValue or 0
        if maxNorm is not None:
            self.maxNorm = maxNorm
        if normType is not None:
            self.normType = normType
        self.reset()

    def backCompatibility(self):
        if self.__dict__.get('_count') is None:
            self._count = Tensor(kind='Int')
        if self.__dict__.get('_input') is None:
            self._input = Tensor(kind='Long')
        if not self.shouldScaleGradByFreq:
            self.shouldScaleGradByFreq = False

    def accUpdateOnly(self):
        self.__dict__.pop('gradWeight', None)
        return self

    def setPadding(self, paddingValue):
        self.paddingValue = paddingValue
        return self

    def setMaxNorm(self, maxNorm):
        self.maxNorm = maxNorm
        return self

    def setNormType(self, normType):
        self.normType = normType
        return self

    def scaleGradByFreq(self):
        self.shouldScaleGradByFreq = True
        return self

    def reset(self, stdv=None):
        self.weight.normal(0, 1 if stdv is None else stdv)

    def _check(self, input):
        if not isinstance(input, Tensor) or input.dim() not in (1, 2):
            self._fail('input must be a vector or matrix of indices', input)
        if input.is_meta() or input.nElement() == 0:
            return
        a = input.numpy()
        n = self.weight.size(1)
        if a.dtype.kind == 'f' and not bool(xpof(a).all(a == xpof(a).floor(a))):
            self._fail('integral indices', input)
        lo, hi = float(a.min()), float(a.max())
        if lo < 1 or hi > n:
            self._fail('indices in 1..%d (got %g..%g)' % (n, lo, hi), input)

    def makeInputContiguous(self, input):
        if not input.isContiguous() or input.type() != self._input.type():
            self.copiedInput = True
            self._input.resize(*input.size()).copy(input)
            return self._input
        self.copiedInput = False
        return input

    def renorm(self, input):
        if not self.maxNorm:
            return
        self._input.resize(*input.size()).copy(input)
        if self.weight.is_meta() or input.nElement() == 0:
            return
        # THNN sorts and dedups the indices in place (in _input), then renormalizes those rows
        flat = self._input.numpy().reshape(-1)
        xp = xpof(flat)
        u = xp.unique(flat)
        flat[:u.size] = u
        w = self.weight.numpy()
        rows = w[u - 1]
        p = self.normType or 2
        if p == 1:
            norm = xp.abs(rows).sum(axis=1)
        elif p == 2:
            norm = (rows * rows).sum(axis=1)
        else:
            norm = (xp.abs(rows) ** p).sum(axis=1)
        norm = norm ** (1.0 / p)
        big = norm > self.maxNorm
        factor = xp.where(big, self.maxNorm / (norm + 1e-7), 1.0).astype(w.dtype)
        w[u - 1] = rows * factor[:, None]

    def updateOutput(self, input):
        self._check(input)
        self.backCompatibility()
        self.renorm(input)
        input = self.makeInputContiguous(input)
        n_out = self.weight.size(2)
        if input.dim() == 1:
            self.output.resize(input.size(1), n_out)
        else:
            out = self.output.resize(input.nElement(), n_out)
            self.output = out.view(input.size(1), input.size(2), n_out)
        if self.output.is_meta():
            return self.output
        idx = input.numpy().reshape(-1) - 1
        w = self.weight.numpy()
        xpof(w).take(w, idx, axis=0, out=self.output.numpy().reshape(-1, n_out))
        return self.output

    def updateGradInput(self, input, gradOutput):
        if self.gradInput.type() != input.type():
            self.gradInput = input.new()
        if not self.gradInput.isSameSizeAs(input):
            self.gradInput.resizeAs(input).zero()
        return self.gradInput

    def accGradParameters(self, input, gradOutput, scale=1):
        self._check(input)
        self.backCompatibility()
        if self.copiedInput:
            input = self._input
        n_out = self.weight.size(2)
        if not isinstance(gradOutput, Tensor) or gradOutput.nElement() != input.nElement() * n_out:
            self._fail('gradOutput of %d x %d elements' % (input.nElement(), n_out), gradOutput)
        if self.shouldScaleGradByFreq:
            self._count.resize(self.gradWeight.size(1))
        if self.gradWeight.is_meta():
            return
        idx = input.numpy().reshape(-1).astype(np.int64)
        g = gradOutput.numpy().reshape(-1, n_out)
        gw = self.gradWeight.numpy()
        xp = xpof(gw)
        keep = idx != (self.paddingValue or 0)
        s = xp.full(idx.shape, _scale(scale), dtype=gw.dtype)
        if self.shouldScaleGradByFreq:
            cnt = self._count.numpy()
            cnt[idx - 1] = 0
            _add_at(xp, cnt, idx - 1, xp.ones(idx.shape, dtype=cnt.dtype))
            s /= cnt[idx - 1]
        s *= keep
        _add_at(xp, gw, idx - 1, g * s[:, None])

    def type(self, name=None, tensorCache=None):
        if name is None:
            return super().type()
        super().type(name, tensorCache)
        self._count = Tensor(kind='Int')   # Lua: the index buffers stay Int/Long on the CPU
        self._input = Tensor(kind='Long')
        return self

    def clearState(self):
        for f in ('_count', '_input'):
            t = self.__dict__.get(f)
            if isinstance(t, Tensor):
                t.set()
        return super().clearState()

    def sharedAccUpdateGradParameters(self, input, gradOutput, lr):
        gw = self.gradWeight
        self.gradWeight = self.weight
        try:
            self.accGradParameters(input, gradOutput, -lr)
        finally:
            self.gradWeight = gw


# --- SparseLinear --------------------------------------------------------------------------------
NO_LAST_INPUT, ONE_LAST_INPUT, ACC_MULTIPLE_TIMES = 0, 1, 2


class SparseLinear(Module):
    """Linear on sparse input: one sample is an nnz x 2 tensor of (1-based index, value) rows; a
    batch is a table of them; a 3D batch x nnz x 2 tensor is Lua's legacy format."""

    def __init__(self, inputSize, outputSize, doGradInput=None):
        super().__init__()
        self.weightDecay = 0
        self.doGradInput = doGradInput or False
        if not isinstance(self.doGradInput, bool):
            raise ValueError('nn.SparseLinear: doGradInput must be a boolean')
        self.weight = Tensor(outputSize, inputSize).zero()
        self.bias = Tensor(outputSize).zero()
        self.gradWeight = Tensor(outputSize, inputSize).zero()
        self.gradBias = Tensor(outputSize).zero()
        self.sparseUpdate = NO_LAST_INPUT
        self.gradInput = []
        self.output.resize(outputSize)
        self.reset()

    def reset(self, stdv=None):
        stdv = stdv * math.sqrt(3) if stdv is not None else 1. / math.sqrt(self.weight.size(2))
        self.weight.uniform(-stdv, stdv)
        self.bias.uniform(-stdv, stdv).mul(0.000001)

    def reshapeInput(self, input):
        if isinstance(input, list):
            return input, True, False
        if input.dim() == 2:
            return [input], False, False
        return input, True, True

    def _check(self, input):
        n_in = self.weight.size(2)
        if isinstance(input, list):
            items = input
        elif isinstance(input, Tensor) and input.dim() in (2, 3):
            items = [input] if input.dim() == 2 else [input.select(1, i + 1) for i in range(input.size(1))]
        else:
            self._fail('an nnz x 2 tensor of (index, value), a table of them, or a batch x nnz x 2 tensor',
                       input)
        for t in items:
            if not isinstance(t, Tensor) or t.dim() != 2 or (t.nElement() and t.size(2) != 2) or \
                    t.type() != self._type:
                self._fail('nnz x 2 %s tensors of (index, value)' % self._type, input)
            if t.nElement() and not t.is_meta():
                c = t.numpy()[:, 0]
                if float(c.min()) < 1 or float(c.max()) > n_in:
                    self._fail('indices in 1..%d' % n_in, input)

    def updateOutput(self, input):
        self._check(input)
        if self.sparseUpdate == ONE_LAST_INPUT:
            self.sparseUpdate = ACC_MULTIPLE_TIMES
        input, batchMode, legacyMode = self.reshapeInput(input)
        self.legacyMode = legacyMode
        n_out = self.weight.size(1)
        if legacyMode:
            self.output.resize(input.size(1), n_out)
            if self.output.is_meta():
                return self.output
            x = input.numpy()
            rows = np.repeat(np.arange(x.shape[0]), x.shape[1])
            self._scatter(rows, x[:, :, 0].reshape(-1), x[:, :, 1].reshape(-1))
            return self.output
        nb = len(input)
        if nb == 0:
            self.output.copy(self.bias)
            return self.output
        if self.__dict__.get('formatted_input') is None:
            self.formatted_input = input[0].new()
        size = sum(t.size(1) for t in input)
        self.formatted_input.resize(size, 3)
        self.output.resize(nb, n_out)
        if not self.output.is_meta():
            f = self.formatted_input.numpy()
            xp = xpof(f)
            sizes = [t.size(1) for t in input]
            if size:   # rows: (sample number, index, value), samples in table order
                xp.concatenate([t.numpy().reshape(-1, 2) for t in input if t.nElement()], axis=0, out=f[:, 1:])
                f[:, 0] = xp.repeat(xp.arange(1, nb + 1, dtype=f.dtype), xp.asarray(sizes))
            self._scatter(f[:, 0].astype(np.int64) - 1, f[:, 1], f[:, 2])
        if not batchMode:
            self.output = self.output.select(1, 1)
        return self.output

    def _scatter(self, rows, cols, vals):
        """output = bias + sum over nonzeros of val * weight[:, col] into row `row`."""
        out = self.output.numpy()
        xp = xpof(out)
        w = self.weight.numpy()
        out[...] = 0
        keep = vals != 0
        rows, cols, vals = rows[keep], cols[keep].astype(np.int64) - 1, vals[keep]
        _add_at(xp, out, rows, w[:, cols].T * vals[:, None])
        out += self.bias.numpy()

    def accGradParameters(self, input, gradOutput, scale=1):
        self._check(input)
        input, batchMode, legacyMode = self.reshapeInput(input)
        self.legacyMode = legacyMode
        if self.__dict__.get('lastInput') is None:
            self.lastInput = gradOutput.new()
        if self.sparseUpdate == NO_LAST_INPUT:
            v = input if legacyMode else self.formatted_input
            self.lastInput.resizeAs(v).copy(v)
            self.sparseUpdate = ONE_LAST_INPUT
        elif self.sparseUpdate == ONE_LAST_INPUT:
            self.sparseUpdate = ACC_MULTIPLE_TIMES
        scale = _scale(scale)
        n_out = self.weight.size(1)
        if legacyMode:
            gradOutput.resize(input.size(1), n_out)
            if self.gradWeight.is_meta():
                return
            x = input.numpy()
            rows = np.repeat(np.arange(x.shape[0]), x.shape[1])
            cols, vals = x[:, :, 0].reshape(-1), x[:, :, 1].reshape(-1)
        else:
            if not batchMode:
                gradOutput.resize(1, gradOutput.size(1))
            if self.gradWeight.is_meta():
                return
            f = self.formatted_input.numpy()
            rows, cols, vals = f[:, 0].astype(np.int64) - 1, f[:, 1], f[:, 2]
        g = gradOutput.numpy()
        gw = self.gradWeight.numpy()
        xp = xpof(gw)
        cols = cols.astype(np.int64) - 1
        # gradWeight[:, col] += scale * val * gradOutput[row]
        _add_at(xp, gw.T, cols, g[rows] * (scale * vals)[:, None])
        self.gradBias.numpy()[...] += scale * g.sum(axis=0)
        if self.weightDecay:
            gw += self.weightDecay * self.weight.numpy()

    def updateGradInput(self, input, gradOutput):
        if self.legacyMode:
            if not isinstance(self.gradInput, Tensor) or self.gradInput.type() != gradOutput.type():
                self.gradInput = gradOutput.new()
            self.gradInput.resizeAs(input)
        else:
            self.gradInput = []
        if self.doGradInput:
            W = self.weight.numpy()
            g = gradOutput.numpy()
            xp = xpof(W)
            gi = g @ W if g.ndim == 2 else (W.T @ g)[None, :]
            ini = self.weight.size(2)
            rng = xp.arange(1, ini + 1, dtype=W.dtype)
            if self.legacyMode:
                b = self.gradInput.size(1)
                self.gradInput.resize(b, ini, 2)
                a = self.gradInput.numpy()
                a[:, :, 0] = rng
                a[:, :, 1] = gi.reshape(b, ini)
            else:
                for i in range(gi.shape[0]):  # one table entry per sample, as Lua
                    t = gradOutput.new(ini, 2)
                    a = t.numpy()
                    a[:, 1] = gi[i]
                    a[:, 0] = rng
                    self.gradInput.append(t)
        return self.gradInput

    def _columns(self):
        li = self.lastInput.numpy()
        if self.legacyMode:
            cols, vals = li[:, :, 0].reshape(-1), li[:, :, 1].reshape(-1)
        else:
            cols, vals = li[:, 1], li[:, 2]
        return xpof(li).unique(cols[vals != 0].astype(np.int64) - 1)

    def updateParameters(self, learningRate):
        if self.__dict__.get('lastInput') is not None and self.sparseUpdate == ONE_LAST_INPUT:
            cols = self._columns()
            if cols.size == 0 and not self.legacyMode:
                return
            self.bias.numpy()[...] -= learningRate * self.gradBias.numpy()
            w, gw = self.weight.numpy(), self.gradWeight.numpy()
            w[:, cols] -= learningRate * gw[:, cols]
        else:
            super().updateParameters(learningRate)

    def zeroGradParameters(self):
        if self.__dict__.get('lastInput') is not None and self.sparseUpdate == ONE_LAST_INPUT:
            self.gradBias.zero()
            self.gradWeight.numpy()[:, self._columns()] = 0
        else:
            super().zeroGradParameters()
        self.sparseUpdate = NO_LAST_INPUT

    def clearState(self):
        if self.__dict__.get('lastInput') is not None:
            self.lastInput.set()
        return super().clearState()


# --- PartialLinear -------------------------------------------------------------------------------
class PartialLinear(Module):
    """A Linear restricted to a set of output units (setPartition): Lua builds it as the network
    ParallelTable(Identity, LookupTable(outputsize, inputsize)) -> MM(false, true), applied to
    {input, partition}; the bias is added for the partition's columns."""

    def __init__(self, inputsize, outputsize, bias=None):
        super().__init__()
        from . import registry
        from .container import Sequential, ParallelTable
        reg = registry()
        bias = True if bias is None else bias
        pt = ParallelTable()
        pt.add(reg['nn.Identity']()).add(LookupTable(outputsize, inputsize))
        if 'nn.MM' not in reg:
            raise NotImplementedError('nn.PartialLinear needs nn.MM, which this pynn lacks')
        self.network = Sequential().add(pt).add(reg['nn.MM'](False, True))
        if bias:
            self.bias = Tensor(1, outputsize).zero()
            self.gradBias = Tensor(1, outputsize).zero()
        self.inputsize = inputsize
        self.outputsize = outputsize
        self.allcolumns = Tensor(outputsize)
        if not self.allcolumns.is_meta():
            self.allcolumns.numpy()[...] = np.arange(1, outputsize + 1)
        self.resetPartition()

    def setPartition(self, indices):
        self.partition = indices.type(self.allcolumns.type())
        return self

    def resetPartition(self):
        self.partition = self.allcolumns
        return self

    def _lookup(self):
        return self.network.modules[0].modules[1]

    def parameters(self):
        lt = self._lookup()
        w, g = [lt.weight], [lt.gradWeight]
        if self.__dict__.get('bias') is not None:
            w.append(self.bias)
            g.append(self.gradBias)
        return w, g

    def _check(self, input):
        if not isinstance(input, Tensor) or input.dim() != 2 or input.size(2) != self.inputsize:
            self._fail('a batch x %d matrix' % self.inputsize, input)
        if input.type() != self._type:
            self._fail('an input of type %s' % self._type, input)

    def updateOutput(self, input):
        self._check(input)
        self.output.set(self.network.forward([input, self.partition]))
        if self.__dict__.get('bias') is not None:
            if self.__dict__.get('addBuffer') is None:
                self.addBuffer = input.new()
            if self.addBuffer.nElement() != input.size(1):
                self.addBuffer.resize(input.size(1)).fill(1)
            if not self.output.is_meta():
                cols = _host(self.partition.numpy()).astype(np.int64) - 1
                self.output.numpy()[...] += self.bias.numpy()[:, cols]
        return self.output

    def updateGradInput(self, input, gradOutput):
        if self.__dict__.get('gradInput') is not None:
            self._check(input)
            self.network.updateGradInput([input, self.partition], gradOutput)
            self.gradInput.set(self.network.gradInput[0])
        return self.gradInput

    def accGradParameters(self, input, gradOutput, scale=1):
        scale = _scale(scale)
        self._check(input)
        self.network.accGradParameters([input, self.partition], gradOutput, scale)
        if self.__dict__.get('bias') is not None:
            if self.__dict__.get('buffer') is None:
                self.buffer = input.new()
            self.buffer.resize(gradOutput.size(2))
            if self.buffer.is_meta():
                return
            b = self.buffer.numpy()
            xp = xpof(b)
            xp.matmul(gradOutput.numpy().T, self.addBuffer.numpy(), out=b)
            b *= scale
            cols = self.partition.numpy().astype(np.int64) - 1
            _add_at(xp, self.gradBias.numpy()[0], cols, b)

    def accUpdateGradParameters(self, input, gradOutput, lr):
        lt = self._lookup()
        gw, gb = lt.gradWeight, self.__dict__.get('gradBias')
        lt.gradWeight = lt.weight
        if gb is not None:
            self.gradBias = self.bias
        try:
            self.accGradParameters(input, gradOutput, -lr)
        finally:
            lt.gradWeight = gw
            if gb is not None:
                self.gradBias = gb

    sharedAccUpdateGradParameters = accUpdateGradParameters

    def zeroGradParameters(self):
        self.network.zeroGradParameters()
        if self.__dict__.get('gradBias') is not None:
            self.gradBias.zero()

    def updateParameters(self, learningRate):
        self.network.updateParameters(learningRate)
        if self.__dict__.get('bias') is not None:
            self.bias.add(-learningRate, self.gradBias)

    def __tostring__(self):
        return '%s(%d -> %d)%s' % (self.__typename__, self.inputsize, self.outputsize,
                                   ' without bias' if self.__dict__.get('bias') is None else '')
