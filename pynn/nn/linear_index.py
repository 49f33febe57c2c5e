"""Lua nn's IndexLinear: a linear layer on sparse features given as keys and values (batches as
tables, or the flat {keys, values, sizes} form), with THNN's dense gradient rows kept in the
`running` table (its gradients in parameters()) and its optional max-normalization of the values
(normalize: 4 extra weight columns per feature). THNN's loops over keys are whole-array
operations; where an update depends on an earlier one for the same key (the running maxima, the
SGD steps), entries are processed in rounds of distinct keys, in order.
"""
import math

import numpy as np

from ..tensor import Tensor
from .module import Module
from .activation import xpof
from .linear_sparse import _add_at, _host, _scale


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
