"""Index-driven linear layers of Lua nn: LookupTable, SparseLinear, IndexLinear, PartialLinear.

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
from .module import Module, describe
from .activation import check_tensor, xpof


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


# --- IndexLinear ---------------------------------------------------------------------------------
def _seg_cummax(keys, vals):
    """Running maximum of vals within each key, in input order (exact: done on integer ranks)."""
    n = vals.size
    if n == 0:
        return vals
    order = np.lexsort((np.arange(n), keys))               # by key, then position
    rank = np.empty(n, dtype=np.int64)
    vsort = np.argsort(vals, kind='stable')
    rank[vsort] = np.arange(n)
    k = keys[order]
    seg = np.concatenate(([0], np.cumsum(k[1:] != k[:-1])))
    acc = np.maximum.accumulate(rank[order] + seg * n) - seg * n
    out = np.empty_like(vals)
    out[order] = vals[vsort][acc]
    return out


class IndexLinear(Module):
    """Linear on sparse features given as keys (1-based feature indices) and values: a batch as
    {{keys_1, ..., keys_B}, {values_1, ..., values_B}}, one sample as {keys, values}, or the flat
    form {keys, values, sizes}. weight is inputSize x (outputSize [+ 4 with normalize])."""

    def __init__(self, inputSize, outputSize, doGradInput=None, keysOffset=None, weight=None, bias=None,
                 normalize=None):
        super().__init__()
        self.normalize = 4 if normalize else 0
        self.weight = weight if weight is not None else Tensor(inputSize, outputSize + self.normalize).zero()
        self.bias = bias if bias is not None else Tensor(outputSize).zero()
        self.inputSize = self.weight.size(1)
        self.outputSize = self.weight.size(2) - self.normalize
        self.gradWeight = Tensor()
        self.gradBias = Tensor(self.outputSize).zero()
        self.gradWeightBuffer = Tensor()
        self.valuesBuffer = Tensor()
        self.normalizedValues = Tensor()
        self.running = {'cumSumSizes': [], 'keys': [], 'gradWeight': [], 'counter': 1}
        self.sizesCache = []
        self.cumSumSizesCache = []
        self.weightDecay = 0
        self.doGradInput = doGradInput or False
        self.offset = keysOffset - 1 if keysOffset else -1

    def reset(self, stdv=None):
        stdv = stdv * math.sqrt(3) if stdv is not None else 1. / math.sqrt(self.weight.size(2))
        self.weight.uniform(-stdv, stdv)
        self.bias.uniform(-stdv, stdv).mul(0.000001)
        if self.normalize and self.normalize > 0 and not self.weight.is_meta():
            self.weight.numpy()[:, :self.normalize] = 0

    def _fail_format(self, input):
        self._fail('{keys, values} (LongTensor keys, 1D values), a batch {{keys...}, {values...}}, '
                   'or {keys, values, sizes}', input)

    def reshapeInput(self, input):
        if not isinstance(input, list) or len(input) not in (2, 3):
            self._fail_format(input)
        if len(input) == 3:
            fkeys, fvals, fsizes = input
            if not isinstance(fkeys, Tensor) or not isinstance(fvals, Tensor) or \
                    fkeys.nElement() != fvals.nElement() or fkeys.dim() != 1:
                self._fail_format(input)
            if not isinstance(fsizes, Tensor):
                fsizes = Tensor([int(fsizes)], kind='Long')
            self.isFlat = True
            self.noBatch = False
            return fkeys, fvals, fsizes
        keys, values = input
        if isinstance(keys, list) and isinstance(values, list):
            lkeys, lvalues = keys, values
            self.isFlat = False
            self.noBatch = False
        elif isinstance(keys, Tensor) and isinstance(values, Tensor):
            lkeys, lvalues = [keys], [values]
            self.isFlat = False
            self.noBatch = True
        else:
            self._fail_format(input)
        if len(lkeys) != len(lvalues):
            self._fail_format(input)
        for k, v in zip(lkeys, lvalues):
            if not isinstance(k, Tensor) or not isinstance(v, Tensor) or k.dim() != 1 or v.dim() != 1 or \
                    k.nElement() != v.nElement():
                self._fail('keys and values 1D, of the same sizes', input)
        return lkeys, lvalues, None

    def _check_keys(self, input, keys):
        if keys.size == 0:
            return
        lo, hi = int(keys.min()) + self.offset, int(keys.max()) + self.offset
        if lo < 0 or hi >= self.weight.size(1):
            self._fail('keys in %d..%d' % (-self.offset, self.weight.size(1) - self.offset - 1), input)

    def flattenInputs(self, input):
        lkeys, lvalues, sizes = self.reshapeInput(input)
        if self.isFlat:
            self._check_keys(input, _host(lkeys.numpy()))
        else:
            for k in lkeys:
                self._check_keys(input, _host(k.numpy()))
        r = self.running
        counter = r['counter']
        while len(r['keys']) < counter:
            r['keys'].append(Tensor(kind='Long'))
        self.keys = r['keys'][counter - 1]
        if self.isFlat:
            if self.__dict__.get('values') is None:
                self.values = lvalues.new()
            self.keys.resize(*lkeys.size()).copy(lkeys)
            self.values.resize(*lvalues.size()).copy(lvalues)
            self.sizes = sizes
            if self.__dict__.get('cumSumSizes') is None:
                self.cumSumSizes = sizes.new()
            self.cumSumSizes.resize(*sizes.size())
            self.cumSumSizes.numpy()[...] = np.cumsum(sizes.numpy())
        else:
            if self.__dict__.get('values') is None:
                self.values = lvalues[0].new()
            self.lkeys, self.lvalues = lkeys, lvalues
            b = len(lkeys)
            if not self.sizesCache:
                self.sizesCache.append(Tensor(b, kind='Long'))
            if not self.cumSumSizesCache:
                self.cumSumSizesCache.append(Tensor(b, kind='Long'))
            self.sizes = self.sizesCache[0].resize(b)
            self.cumSumSizes = self.cumSumSizesCache[0].resize(b)
            sz = np.array([k.size(1) for k in lkeys], dtype=np.int64)
            self.sizes.numpy()[...] = sz
            self.cumSumSizes.numpy()[...] = np.cumsum(sz)
            n = int(sz.sum())
            self.keys.resize(n)
            self.values.resize(n)
            if n:
                self.keys.numpy()[...] = np.concatenate([k.numpy() for k in lkeys])
                self.values.numpy()[...] = np.concatenate([v.numpy() for v in lvalues])
        while len(r['cumSumSizes']) < counter:
            r['cumSumSizes'].append(None)
        r['cumSumSizes'][counter - 1] = self.cumSumSizes

    def _rows(self):
        """Sample index (0-based) of every key of the flattened batch."""
        sz = self.sizes.numpy()
        return np.repeat(np.arange(sz.size), sz)

    def updateOutput(self, input):
        self.flattenInputs(input)
        out_dim = self.bias.size(1)
        b = self.sizes.size(1)
        self.output.resize(b, out_dim)
        keys = self.keys.numpy() + self.offset
        vals = self.values.numpy()
        w = self.weight.numpy()
        xp = xpof(w)
        if self.normalize:
            self.normalizedValues.resize(keys.size)
            a = xp.abs(vals)
            w0, w1 = w[keys, 0], w[keys, 1]
            if self.train:  # running max |value| per key, in input order, and its inverse
                cm = _seg_cummax(_host(keys), _host(a))
                cm = cm if xp is np else xp.asarray(cm)
                grew = cm > w0
                w1 = xp.where(grew, 1 / xp.where(grew, cm, 1), w1)
                w0 = xp.maximum(w0, cm)
                w[keys, 0] = w0      # duplicates: the last entry holds the key's final state
                w[keys, 1] = w1
                w[keys, 2] = 1
            nv = xp.where(a > w0, xp.sign(vals), vals * w1) + w[keys, 3]
            self.normalizedValues.numpy()[...] = nv
            coeff, wrows = nv, w[keys, self.normalize:]
        else:
            coeff, wrows = vals, w[keys]
        out = self.output.numpy()
        out[...] = self.bias.numpy()
        _add_at(xp, out, self._rows(), wrows * coeff[:, None])
        if self.noBatch:
            self.output.resize(out_dim)
        return self.output

    def accGradParameters(self, input, gradOutput, scale=1):
        scale = _scale(scale)
        r = self.running
        counter = r['counter']
        while len(r['gradWeight']) < counter:
            r['gradWeight'].append(None)
        if r['gradWeight'][counter - 1] is None:
            r['gradWeight'][counter - 1] = self.values.new()
        gw = r['gradWeight'][counter - 1]
        out_dim = self.bias.size(1)
        n = self.keys.nElement()
        gw.resize(n, out_dim * (2 if self.normalize else 1))
        g = gradOutput.numpy().reshape(-1, out_dim)
        vals = (self.normalizedValues if self.normalize else self.values).numpy()
        rows = self._rows()
        a = gw.numpy()
        if self.normalize:
            a[:, :out_dim] = g[rows] * scale
            a[:, out_dim:] = g[rows] * (vals * scale)[:, None]
        else:
            a[...] = g[rows] * (vals * scale)[:, None]
        self.gradBias.numpy()[...] += scale * g.sum(axis=0)
        r['counter'] = counter + 1

    def updateGradInput(self, input, gradOutput):
        self.gradInput = []
        if self.doGradInput and self.normalize > 0:
            raise NotImplementedError('%s: updateGradInput is not implemented in max-normalize mode'
                                      % self._name())
        ini = self.weight.size(1)
        if self.doGradInput:
            W, g = self.weight.numpy(), gradOutput.numpy()
            gi = (W @ g)[None, :] if g.ndim == 1 else g @ W.T
            idx = np.arange(1, ini + 1, dtype=np.int64)
            if self.isFlat:
                k = Tensor(gi.shape[0], ini, kind='Long')
                k.numpy()[...] = idx
                v = gradOutput.new(*gi.shape)
                v.numpy()[...] = gi
                self.gradInput = [k, v]
            else:
                ks, vs = [], []
                for i in range(gi.shape[0]):  # one table entry per sample, as Lua
                    k = Tensor(ini, kind='Long')
                    k.numpy()[...] = idx
                    v = gradOutput.new(ini)
                    v.numpy()[...] = gi[i]
                    ks.append(k)
                    vs.append(v)
                self.gradInput = [ks, vs]
            if self.noBatch:
                if self.isFlat:
                    self.gradInput = [self.gradInput[0].resize(ini), self.gradInput[1].resize(ini)]
                else:
                    self.gradInput = [self.gradInput[0][0], self.gradInput[1][0]]
        return self.gradInput

    @staticmethod
    def _rounds(keys):
        """Entries grouped in rounds: round r holds the r-th occurrence of each key (so a round's
        keys are distinct and its updates vectorize); rounds run in order, as THNN's loop."""
        n = keys.size
        if n == 0:
            return []
        order = np.lexsort((np.arange(n), keys))
        k = keys[order]
        start = np.concatenate(([True], k[1:] != k[:-1]))
        first = np.maximum.accumulate(np.where(start, np.arange(n), 0))
        rank = np.empty(n, dtype=np.int64)
        rank[order] = np.arange(n) - first
        return [np.nonzero(rank == r)[0] for r in range(int(rank.max()) + 1)]

    def _sgd_rows(self, rows, g1, g2, lr, wd):
        """THNN's per-key update of weight rows `rows` (distinct) with gradient halves g1 (the
        normalization part, or None) and g2: IndexLinear_updateParameters for outDim > 1."""
        w = self.weight.numpy()
        if self.normalize:
            lr_ = lr * w[rows, 2]
            wd_ = wd * w[rows, 2]
            w[rows, 3] -= (g1 * w[rows, self.normalize:]).sum(axis=1) * lr_
            W = w[rows, self.normalize:]
            lr_, wd_ = lr_[:, None], wd_[:, None]
        else:
            W = w[rows]
            lr_, wd_ = lr, wd
        if wd:
            W -= W * wd_
        W -= g2 * lr_
        if self.normalize:
            w[rows, self.normalize:] = W
        else:
            w[rows] = W

    def updateParameters(self, lr):
        counter = self.running['counter']
        if counter <= 1:
            return
        keys = [self.running['keys'][i] for i in range(counter - 1)]
        grads = [self.running['gradWeight'][i] for i in range(counter - 1)]
        if counter == 2:
            self.updateKeys, self.gradWeight = keys[0], grads[0]
            G = grads[0].numpy()
        else:
            if self.__dict__.get('updateKeysBuffer') is None:
                self.updateKeysBuffer = Tensor(kind='Long')
            n = sum(k.nElement() for k in keys)
            self.updateKeysBuffer.resize(n)
            self.updateKeysBuffer.numpy()[...] = np.concatenate([k.numpy() for k in keys])
            G = np.concatenate([g.numpy().reshape(-1) for g in grads]).reshape(n, -1)
            self.gradWeightBuffer.resize(G.size)
            self.gradWeightBuffer.numpy()[...] = G.reshape(-1)
            self.gradWeightBuffer.resize(n, self.outputSize)   # Lua's (the data keeps its layout)
            sums, total = [], 0
            for k, c in zip(keys, self.running['cumSumSizes']):
                sums.append(c.numpy() + total)
                total += k.nElement()
            cat = np.concatenate(sums)
            self.cumSumSizes.resize(cat.size)
            self.cumSumSizes.numpy()[...] = cat
            self.gradWeight, self.updateKeys = self.gradWeightBuffer, self.updateKeysBuffer
            G = self.gradWeightBuffer.storage().data[:G.size].reshape(G.shape)
        out_dim = self.bias.size(1)
        wd = self.weightDecay or 0
        self.bias.numpy()[...] -= lr * self.gradBias.numpy()
        w = self.weight.numpy()
        rows_all = self.updateKeys.numpy() + self.offset
        for sel in self._rounds(_host(rows_all)):
            rows, g = rows_all[sel], G[sel]
            if out_dim == 1:
                if self.normalize:
                    c = self.normalize
                    lr_ = lr * w[rows, c - 2]
                    w[rows, c - 1] -= w[rows, c] * g[:, 0] * lr_
                    w[rows, c] -= g[:, 1] * lr_ - (wd * w[rows, c - 2] * w[rows, c] if wd else 0)
                else:
                    w[rows, 0] -= g[:, 0] * lr + (wd * w[rows, 0] if wd else 0)
            elif self.normalize:
                self._sgd_rows(rows, g[:, :out_dim], g[:, out_dim:], lr, wd)
            else:
                self._sgd_rows(rows, None, g, lr, wd)

    def accUpdateGradParameters(self, input, gradOutput, scale=1):
        """THNN IndexLinear_accUpdateGradParameters: weight -= scale * value * gradOutput per key
        (with Lua's sparse weight decay); the bias too when outputSize > 1."""
        if self.normalize:
            raise NotImplementedError('%s: accUpdateGradParameters in max-normalize mode is not '
                                      'supported by pynn' % self._name())
        scale = _scale(scale)
        out_dim = self.bias.size(1)
        wd = self.weightDecay or 0
        g = gradOutput.numpy().reshape(-1, out_dim)
        rows_all = self.keys.numpy() + self.offset
        samples = self._rows()
        vals = self.values.numpy()
        w = self.weight.numpy()
        if out_dim > 1:
            self.bias.numpy()[...] -= scale * g.sum(axis=0)
        for sel in self._rounds(_host(rows_all)):
            rows = rows_all[sel]
            upd = g[samples[sel]] * (vals[sel] * scale)[:, None]
            W = w[rows]
            if wd:
                W -= W * wd
            W -= upd
            w[rows] = W

    def zeroGradParameters(self):
        self.gradBias.zero()
        self.running['counter'] = 1

    def parameters(self):
        return [self.weight, self.bias], [self.running, self.gradBias]

    def clearState(self):
        self.running['keys'] = []
        self.running['gradWeight'] = []
        for f in ('keys', 'zerokeys', 'updateKeys', 'values', 'sizes', 'updateKeysBuffer'):
            self.__dict__.pop(f, None)
        self.lkeys = []
        self.lvalues = []
        self.gradWeightBuffer = self.gradWeightBuffer.new()
        self.valuesBuffer = self.valuesBuffer.new()
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
