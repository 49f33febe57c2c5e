"""Lua nn's misc family (those not in shape.py/activation.py): Constant, GradientReversal,
Kmeans, L1Penalty, Max, Min, OneHot, SpatialDropout, WhiteNoise, ZeroGrad.

(Copy, Identity, Sum and Mean live in shape.py, Dropout in activation.py.) Fields, lazy
buffers, and their sizes follow the final nn's Lua files; whole-array computations.
"""
import math
import numbers

from ..tensor import Tensor, generator
from .module import Module, describe
from .activation import lowbuf, xpof, blocks, check_tensor, _is_number


def _long_like(t):
    """An empty LongTensor on t's device (CudaLongTensor for CUDA tensors), as Lua's
    `torch.LongTensor()` / `torch.CudaLongTensor()`."""
    return Tensor(kind='Long', device=t._device)


def _scatter(xp, dst, axis, idx0, src):
    """dst[..., idx0, ...] = src along axis (0-based idx0 shaped as src, size 1 at axis or
    not): Torch's scatter, through open index arrays (NumPy and CuPy alike)."""
    nd = idx0.ndim
    index = [xp.arange(s).reshape([-1 if i == d else 1 for i in range(nd)]) for d, s in enumerate(idx0.shape)]
    index[axis] = idx0
    dst[tuple(index)] = src


# --- Max / Min ------------------------------------------------------------------------------------
class _Reduce(Module):
    """nn.Max/nn.Min(dimension=1, nInputDims): the extreme along a 1-based dimension (one more
    for batch input when nInputDims is given; negative counts from the end). Buffers `_output`
    (the result with the dim kept as 1) and `_indices` (1-based, LongTensor), created lazily;
    output is `_output` with the dim selected away (1-D input: `_output` itself)."""

    _reduce = None      # 'max' or 'min'

    def __init__(self, dimension=None, nInputDims=None):
        super().__init__()
        dimension = 1 if dimension is None else dimension
        if not isinstance(dimension, numbers.Integral):
            raise ValueError('%s(dimension, nInputDims): an integer dimension expected, got %r'
                             % (self.__typename__, dimension))
        self.dimension = dimension
        self.nInputDims = nInputDims

    def _positive(self, input):
        d = self.dimension
        if d < 0:
            d = input.dim() + d + 1
        elif self.nInputDims and input.dim() == self.nInputDims + 1:
            d = d + 1
        if not 1 <= d <= input.dim():
            self._fail('a tensor with dimension %d (dimension %d, nInputDims %s)'
                       % (d, self.dimension, self.nInputDims), input)
        return d

    def _lazy_init(self):
        d = self.__dict__
        if d.get('_output') is None:
            d['_output'] = self.output.new()
        if d.get('_indices') is None:
            d['_indices'] = _long_like(self.output)

    def updateOutput(self, input):
        check_tensor(self, input)
        dim = self._positive(input)
        self._lazy_init()
        o, ind = self.__dict__['_output'], self.__dict__['_indices']
        size = list(input.size())
        size[dim - 1] = 1
        o.resize(*size)
        ind.resize(*size)
        if not o.is_meta() and input.nElement():
            x, oa, ia = input.numpy(), o.numpy(), ind.numpy()
            xp = xpof(x)
            if self._reduce == 'max':
                xp.amax(x, axis=dim - 1, keepdims=True, out=oa)
                ia[...] = xp.argmax(x, axis=dim - 1, keepdims=True)
            else:
                xp.amin(x, axis=dim - 1, keepdims=True, out=oa)
                ia[...] = xp.argmin(x, axis=dim - 1, keepdims=True)
            ia += 1
        if input.dim() > 1:
            self.output.set(o.select(dim, 1))
        else:
            self.output.set(o)
        return self.output

    def updateGradInput(self, input, gradOutput):
        check_tensor(self, input)
        check_tensor(self, gradOutput, 'gradOutput')
        dim = self._positive(input)
        self._lazy_init()
        ind = self.__dict__['_indices']
        size = list(input.size())
        size[dim - 1] = 1
        if ind.size() != tuple(size):
            self._fail('a backward after a forward on this input size (indices are %s)'
                       % 'x'.join(map(str, ind.size())), input)
        if gradOutput.nElement() != ind.nElement():
            self._fail('gradOutput with %d elements' % ind.nElement(), gradOutput)
        self.gradInput.resizeAs(input)
        if self.gradInput.is_meta():
            return self.gradInput
        gi = self.gradInput.numpy()
        gi.fill(0)
        if gi.size:
            ia = ind.numpy()
            g = gradOutput.numpy().reshape(ia.shape)
            _scatter(xpof(gi), gi, dim - 1, ia - 1, g)
        return self.gradInput

    def type(self, name=None, tensorCache=None):
        if name is not None:
            self.__dict__['_indices'] = None
        return super().type(name, tensorCache)

    def clearState(self):
        for f in ('_indices', '_output'):
            t = self.__dict__.get(f)
            if isinstance(t, Tensor):
                t.set()
        return super().clearState()


class Max(_Reduce):
    _reduce = 'max'


class Min(_Reduce):
    _reduce = 'min'


# --- Constant / GradientReversal / ZeroGrad / L1Penalty ----------------------------------------------
class Constant(Module):
    """nn.Constant(value, nInputDim): outputs `value` (a number becomes a 1-element tensor),
    replicated over the batch when the input has more than nInputDim dims; gradInput zeros."""

    def __init__(self, value, nInputDim=None):
        if _is_number(value):
            value = Tensor([value])
        if not isinstance(value, Tensor):
            raise ValueError('nn.Constant: Expecting number or tensor at arg 1, got %s' % describe(value))
        self.value = value
        self.nInputDim = nInputDim
        super().__init__()

    def updateOutput(self, input):
        if not isinstance(input, Tensor):
            self._fail('a Tensor', input)
        v = self.value
        if self.nInputDim and input.dim() > self.nInputDim:
            self.output.resize(input.size(1), *v.size())
            if not self.output.is_meta() and not v.is_meta() and self.output.nElement():
                o = self.output.numpy()
                o[...] = v.numpy()[None]
        else:
            self.output.resize(*v.size()).copy(v)
        return self.output

    def updateGradInput(self, input, gradOutput):
        if not isinstance(input, Tensor):
            self._fail('a Tensor', input)
        self.gradInput.resizeAs(input).zero()
        return self.gradInput


class GradientReversal(Module):
    """nn.GradientReversal(lambda=1): identity forward (output set to input), gradInput =
    -lambda * gradOutput. Field `lambda` (files of version < 2 have none: serialization's
    upgrade sets 1, as Lua's read does; a missing one reads as 1 here too)."""

    def __init__(self, lam=None):
        super().__init__()
        self.setLambda(1 if lam is None else lam)

    def setLambda(self, lam):
        if not _is_number(lam):
            raise ValueError('nn.GradientReversal: lambda must be a number, got %r' % (lam,))
        self.__dict__['lambda'] = lam

    def updateOutput(self, input):
        check_tensor(self, input)
        self.output.set(input)
        return self.output

    @lowbuf
    def updateGradInput(self, input, gradOutput):
        check_tensor(self, gradOutput, 'gradOutput')
        lam = self.__dict__.get('lambda')
        lam = 1 if lam is None else lam
        self.gradInput.resizeAs(gradOutput)
        if self.gradInput.is_meta():
            return self.gradInput
        gi = self.gradInput.numpy()
        xpof(gi).multiply(gradOutput.numpy(), -lam, out=gi)
        return self.gradInput


def _resize_zero(gi, x):
    """nn.utils.recursiveResizeAs + recursiveFill(0): tensors or (nested) tables."""
    if isinstance(x, (list, tuple)):
        gi = gi if isinstance(gi, list) else []
        del gi[len(x):]
        for i, v in enumerate(x):
            if i < len(gi):
                gi[i] = _resize_zero(gi[i], v)
            else:
                gi.append(_resize_zero(None, v))
        return gi
    if not isinstance(gi, Tensor):
        gi = x.new()
    return gi.resizeAs(x).zero()


class ZeroGrad(Module):
    """Identity forward (output set to input); gradInput zeros shaped as the input."""

    def updateOutput(self, input):
        if not isinstance(input, Tensor):
            self._fail('a Tensor', input)
        self.output.set(input)
        return self.output

    def updateGradInput(self, input, gradOutput):
        if not isinstance(input, (Tensor, list, tuple)):
            self._fail('a Tensor or a table', input)
        self.gradInput = _resize_zero(self.gradInput, input)
        return self.gradInput


class L1Penalty(Module):
    """nn.L1Penalty(l1weight, sizeAverage=false, provideOutput=true): output *is* the input;
    self.loss = l1weight * |input|_1 (divided by nElement when sizeAverage); gradInput =
    sign(input) * weight (+ gradOutput when provideOutput)."""

    def __init__(self, l1weight, sizeAverage=None, provideOutput=None):
        super().__init__()
        if not _is_number(l1weight):
            raise ValueError('nn.L1Penalty(l1weight, ...): a number expected, got %r' % (l1weight,))
        self.l1weight = l1weight
        self.sizeAverage = sizeAverage or False
        self.provideOutput = True if provideOutput is None else provideOutput

    def _m(self, input):
        m = self.l1weight
        if self.sizeAverage is True:
            m = m / input.nElement()
        return m

    def updateOutput(self, input):
        check_tensor(self, input)
        m = self._m(input)
        if not input.is_meta():
            x = input.numpy()
            xp = xpof(x)
            self.loss = m * sum(float(xp.abs(b).sum()) for (b,) in blocks(x))   # |x|_1, block by block
        self.output = input
        return self.output

    @lowbuf
    def updateGradInput(self, input, gradOutput):
        check_tensor(self, input)
        if self.provideOutput is True:
            check_tensor(self, gradOutput, 'gradOutput')
            if gradOutput.nElement() != input.nElement():
                self._fail('gradOutput with %d elements' % input.nElement(), gradOutput)
        m = self._m(input)
        self.gradInput.resizeAs(input)
        if self.gradInput.is_meta():
            return self.gradInput
        gi = self.gradInput.numpy()
        xp = xpof(gi)
        xp.sign(input.numpy(), out=gi)
        gi *= m
        if self.provideOutput is True:
            gi += gradOutput.numpy().reshape(gi.shape)
        return self.gradInput


# --- OneHot -----------------------------------------------------------------------------------------
class OneHot(Module):
    """nn.OneHot(outputSize): indices (a number, or a tensor of 1-based indices) to one-hot
    rows: output size = input size .. outputSize. Non-Long input goes through `_input` (a
    LongTensor, values truncated as Torch's copy does); a number through `_single`."""

    def __init__(self, outputSize):
        super().__init__()
        if not isinstance(outputSize, numbers.Integral) or outputSize < 1:
            raise ValueError('nn.OneHot(outputSize): a positive size expected, got %r' % (outputSize,))
        self.outputSize = outputSize

    def updateOutput(self, input):
        if _is_number(input):
            if self.__dict__.get('_single') is None:
                self.__dict__['_single'] = _long_like(self.output).resize(1)
            single = self.__dict__['_single']
            idx = input
            if not (1 <= idx <= self.outputSize) or idx != int(idx):
                self._fail('an index in 1..%d' % self.outputSize, input)
            single.fill(int(idx))
            input, size = single, []
        elif isinstance(input, Tensor):
            size = list(input.size())
            if not input.is_meta() and input.nElement():
                a = input.numpy()
                xp = xpof(a)
                lo, hi = a.min(), a.max()
                if bool(xp.isnan(lo)) if a.dtype.kind == 'f' else False:
                    self._fail('indices in 1..%d' % self.outputSize, input)
                if int(lo) < 1 or int(hi) > self.outputSize:
                    self._fail('indices in 1..%d (got %s..%s)' % (self.outputSize, lo, hi), input)
        else:
            self._fail('a Tensor of indices or a number', input)
        self.output.resize(*(size + [self.outputSize])).zero()
        if input.type() != 'torch.LongTensor' and input._device != 'cuda':
            if self.__dict__.get('_input') is None:
                self.__dict__['_input'] = Tensor(kind='Long', device='cpu')
            ti = self.__dict__['_input']
            ti.resize(*(size + [1])).copy(input)
            input = ti
        if self.output.is_meta() or input.is_meta() or not self.output.nElement():
            return self.output
        o = self.output.numpy()
        xp = xpof(o)
        idx = input.numpy().reshape(tuple(size) + (1,)).astype('int64') - 1
        if xpof(idx) is not xp:
            idx = xp.asarray(idx)
        _scatter(xp, o, o.ndim - 1, idx, 1)
        return self.output

    def updateGradInput(self, input, gradOutput):
        if _is_number(input):
            return 0
        if not isinstance(input, Tensor):
            self._fail('a Tensor of indices or a number', input)
        self.gradInput.resize(*input.size()).zero()
        return self.gradInput

    def clearState(self):
        self.__dict__['_single'] = None
        self.__dict__['_input'] = None
        return self

    def type(self, name=None, tensorCache=None):
        if name is not None:
            self.clearState()
        return super().type(name, tensorCache)


# --- SpatialDropout / WhiteNoise ------------------------------------------------------------------
class SpatialDropout(Module):
    """nn.SpatialDropout(p=0.5, stochasticInference=false): whole feature maps dropped (noise
    of size B x C x 1 x 1 or C x 1 x 1, drawn with Tensor.bernoulli(1 - p)), no rescaling in
    training; evaluation scales by 1 - p and has no backward (as Lua)."""

    def __init__(self, p=None, stochasticInference=None):
        super().__init__()
        self.p = 0.5 if p is None else p
        if not _is_number(self.p):
            raise ValueError('nn.SpatialDropout(p): a number expected, got %r' % (p,))
        self.train = True
        self.stochastic_inference = stochasticInference or False
        self.noise = Tensor()

    def _noise_size(self, input):
        if input.dim() == 4:
            return (input.size(1), input.size(2), 1, 1)
        if input.dim() == 3:
            return (input.size(1), 1, 1)
        self._fail('4D (nbatch, nfeat, h, w) or 3D (nfeat, h, w) input', input)

    @lowbuf
    def updateOutput(self, input):
        check_tensor(self, input)
        sample = self.train or self.stochastic_inference
        if sample:
            size = self._noise_size(input)
        self.output.resizeAs(input).copy(input)
        if sample:
            if self.noise is None:
                self.noise = input.new()
            self.noise.resize(*size)
            self.noise.bernoulli(1 - self.p)
            if not self.output.is_meta():
                o = self.output.numpy()
                o *= self.noise.numpy()
        elif not self.output.is_meta():
            o = self.output.numpy()
            o *= (1 - self.p)
        return self.output

    @lowbuf
    def updateGradInput(self, input, gradOutput):
        if not self.train:
            raise RuntimeError('%s: backprop only defined while training' % self._name())
        check_tensor(self, input)
        check_tensor(self, gradOutput, 'gradOutput')
        size = self._noise_size(input)
        if self.noise is None or self.noise.size() != size or gradOutput.size() != input.size():
            self._fail('gradOutput of the size of the input, after a training forward', gradOutput)
        self.gradInput.resizeAs(gradOutput).copy(gradOutput)
        if self.gradInput.is_meta():
            return self.gradInput
        gi = self.gradInput.numpy()
        gi *= self.noise.numpy()
        return self.gradInput

    def setp(self, p):
        self.p = p

    def __tostring__(self):
        return '%s(%f)' % (self.__typename__, self.p)

    def clearState(self):
        if self.noise is not None:
            self.noise.set()
        return super().clearState()


class WhiteNoise(Module):
    """nn.WhiteNoise(mean=0, std=0.1): adds Gaussian noise (Tensor.normal, kept in `noise`)
    in training; evaluation adds `mean` only and has no backward (as Lua)."""

    def __init__(self, mean=None, std=None):
        super().__init__()
        self.mean = 0 if mean is None else mean
        self.std = 0.1 if std is None else std
        if not (_is_number(self.mean) and _is_number(self.std)):
            raise ValueError('nn.WhiteNoise(mean, std): numbers expected, got %r, %r' % (mean, std))
        self.noise = Tensor()

    def updateOutput(self, input):
        check_tensor(self, input)
        self.output.resizeAs(input).copy(input)
        if self.train is not False:
            if self.noise is None:
                self.noise = input.new()
            self.noise.resizeAs(input)
            self.noise.normal(self.mean, self.std)
            if not self.output.is_meta():
                o = self.output.numpy()
                o += self.noise.numpy()
        elif self.mean != 0 and not self.output.is_meta():
            o = self.output.numpy()
            o += self.mean
        return self.output

    def updateGradInput(self, input, gradOutput):
        if self.train is False:
            raise RuntimeError('%s: backprop only defined while training' % self._name())
        check_tensor(self, gradOutput, 'gradOutput')
        self.gradInput.resizeAs(gradOutput).copy(gradOutput)
        return self.gradInput

    def clearState(self):
        if self.noise is not None:
            self.noise.set()
        return self

    def __tostring__(self):
        return '%s mean: %f, std: %f' % (self.__typename__, self.mean, self.std)


# --- Kmeans -----------------------------------------------------------------------------------------
class Kmeans(Module):
    """nn.Kmeans(k, dim, scale): online hard k-means. weight (k x dim) holds the centres;
    forward gives each row's nearest centre (1-based, as the module's type) and sets
    self.loss (the within-cluster squared error); accGradParameters adds the online update
    -scale * mean(x - c) per cluster to gradWeight. Buffers as Lua's (lazy)."""

    _BUFFERS = ('_expandedSamples', '_clusterDistances', '_temp', '_tempExpanded', '_tempWeight',
                '_tempWeightExp', '_expandedWeight', '_minScore', '_minIndx', '_cscAdder')

    def __init__(self, k, dim, scale=None):
        super().__init__()
        if not isinstance(k, numbers.Integral) or k <= 0:
            raise ValueError('nn.Kmeans: Clusters cannot be 0 or negative (got %r).' % (k,))
        if not isinstance(dim, numbers.Integral) or dim <= 0:
            raise ValueError('nn.Kmeans: Dimensionality cannot be 0 or negative (got %r).' % (dim,))
        self.k = k
        self.dim = dim
        self.scale = scale
        self.weight = Tensor(k, dim)
        self.gradWeight = Tensor(*self.weight.size()).zero()
        self.loss = 0
        self.clusterSampleCount = Tensor(k).zero()
        self.reset()

    def reset(self, stdev=None):
        stdev = 1 if stdev is None else stdev
        self.weight.uniform(-stdev, stdev)

    def _check(self, input):
        check_tensor(self, input)
        if input.dim() != 2:
            self._fail('a 2D input (Incorrect input dimensionality)', input)
        if input.size(2) != self.dim:
            self._fail('rows of %d values (the dimensionality of the centres)' % self.dim, input)

    def initRandom(self, input):
        """Centres from k rows drawn uniformly (with replacement) from input."""
        self._check(input)
        n = input.size(1)
        if n < self.k:
            self._fail('at least k = %d samples for initialization' % self.k, input)
        rows = generator().integers(0, n, self.k)
        w, x = self.weight.numpy(), input.numpy()
        xp = xpof(w)
        w[...] = x[xp.asarray(rows)]

    def initKmeansPlus(self, input, p=None):
        """k-means++-like: each new centre is a random one among the ceil((1-p) n) samples
        farthest (squared distance) from the centres chosen so far."""
        self.p = p if p is not None else (self.p if self.p is not None else 0.95)
        if not 0 <= self.p <= 1:
            raise ValueError('%s: P value should be between 0-1 (got %r).' % (self._name(), self.p))
        self._check(input)
        n = input.size(1)
        pcount = max(1, math.ceil((1 - self.p) * n))
        w, x = self.weight.numpy(), input.numpy()
        xp = xpof(w)
        w[0] = x[int(generator().integers(0, n))]
        dist = xp.full(n, xp.inf, dtype=w.dtype)
        for c in range(1, self.k):           # one pass per centre (k is small), all samples at once
            d = x - w[c - 1][None, :]
            d = xp.sqrt((d * d).sum(axis=1))
            xp.minimum(dist, d * d, out=dist)
            order = xp.argsort(-dist)
            w[c] = x[int(order[int(generator().integers(0, pcount))])]

    def updateOutput(self, input):
        self._check(input)
        if not input.isContiguous():
            self._fail('a contiguous input', input)
        b, k, dim = input.size(1), self.k, self.dim
        d = self.__dict__
        for f in ('_expandedSamples', '_clusterDistances', '_tempWeight', '_tempWeightExp', '_minScore'):
            if d.get(f) is None:
                d[f] = self.weight.new()
        for f in ('_temp', '_tempExpanded'):
            if d.get(f) is None:
                d[f] = input.new()
        d['_expandedWeight'] = self.weight.new()       # Lua reads `_expanedWeight`: a new one each call
        if d.get('_minIndx') is None:
            d['_minIndx'] = _long_like(input)
        d['_temp'] = input.view(1, b, dim)
        d['_tempExpanded'] = d['_temp']._view_of(d['_temp']._offset, (k, b, dim), (0, dim, 1))
        d['_tempWeight'] = self.weight.view(k, 1, dim)
        d['_tempWeightExp'] = d['_tempWeight']._view_of(d['_tempWeight']._offset, (k, b, dim), (dim, 0, 1))
        es, ew = d['_expandedSamples'].resize(k, b, dim), d['_expandedWeight'].resize(k, b, dim)
        cd, ms, mi = d['_clusterDistances'].resize(k, b), d['_minScore'].resize(1, b), d['_minIndx'].resize(b)
        self.output.resize(b)
        if self.output.is_meta():
            return self.output
        esa, ewa, x, w = es.numpy(), ew.numpy(), input.numpy(), self.weight.numpy()
        xp = xpof(esa)
        esa[...] = x[None]
        ewa[...] = w[:, None, :]
        esa -= ewa                                   # x - c
        cda = cd.numpy()
        cda[...] = xp.sqrt(xp.einsum('kbd,kbd->kb', esa, esa))   # norm, then squared, as Lua
        cda *= cda
        mia = mi.numpy()
        mia[...] = xp.argmin(cda, axis=0)
        xp.amin(cda, axis=0, out=ms.numpy().reshape(b))
        mia += 1
        self.output.numpy()[...] = mia
        self.loss = float(ms.numpy().sum())
        return self.output

    def updateGradInput(self, input, gradOutput):
        check_tensor(self, input)
        self.gradInput.resize(*input.size()).zero()
        return self.gradInput

    def accGradParameters(self, input, gradOutput, scale=1):
        self._check(input)
        scale = self.scale or scale or 1
        if not scale > 0:
            raise ValueError('%s: Scale has to be positive (got %r).' % (self._name(), scale))
        mi = self.__dict__.get('_minIndx')
        b, k = input.size(1), self.k
        if mi is None or mi.nElement() != b:
            self._fail('a backward after a forward on this input', input)
        d = self.__dict__
        for f in ('_cscAdder', '_gradWeight', '_gradWeight2'):
            if d.get(f) is None:
                d[f] = self.weight.new()
        if d.get('_ccounts') is None:
            d['_ccounts'] = self.clusterSampleCount.new()
        csc = d['_cscAdder'].resize(b).fill(1)
        gw1 = d['_gradWeight'].resize(b, self.dim)
        gw2 = d['_gradWeight2'].resizeAs(self.gradWeight).zero()
        cc = d['_ccounts'].resize(k)
        if input.is_meta():
            return
        x, w, idx = input.numpy(), self.weight.numpy(), mi.numpy() - 1
        xp = xpof(x)
        onehot = (xp.arange(k)[:, None] == idx[None, :]).astype(x.dtype)    # k x b membership
        counts = self.clusterSampleCount.numpy()
        counts[...] = onehot @ csc.numpy()
        g1 = gw1.numpy()
        xp.take(w, idx, axis=0, out=g1)              # -scale * (x - c[nearest])
        g1 *= -1
        g1 += x
        g1 *= -scale
        g2 = gw2.numpy()
        g2[...] = onehot @ g1
        cca = cc.numpy()
        cca[...] = counts
        cca += 0.0000001
        g2 /= cca[:, None]
        gwa = self.gradWeight.numpy()
        gwa += g2

    def clearState(self):
        for f in self._BUFFERS:
            self.__dict__.pop(f, None)
        return self

    def type(self, name=None, tensorCache=None):
        if name is not None:
            self.clearState()
        return super().type(name, tensorCache)
