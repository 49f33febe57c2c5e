"""The linear family of Lua nn: Linear, Add, CAdd, CMul, Mul, LinearWeightNorm, Maxout here;
Bilinear and the distance layers in linear_distance.py; LookupTable, SparseLinear and
PartialLinear in linear_sparse.py; IndexLinear in linear_index.py (all exported from here).

Linear: y = W x + b for a vector or a batch (matrix) of vectors. Fields: weight (outputSize x
inputSize), bias, gradWeight, gradBias, and `addBuffer` (a vector of ones of size batch, created
lazily on the first batch input, as Lua).
"""
import math

import numpy as np

from ..tensor import Tensor
from .module import Module
from .container import Sequential
from .activation import lowbuf, check_tensor, xpof, check_same_elements
from . import dnnl
from .functional import _matmul


def addmm_(C, alpha, A, B):
    """C += alpha * (A @ B), in row chunks so the product's temporary stays ~1/16 of C."""
    xp = xpof(C)
    rows = C.shape[0]
    if xp is np and dnnl.matmul(A, B, C, alpha, 1.0):   # no temporary: beta = 1
        return C
    if xp is not np or rows == 0:
        t = xp.matmul(A, B)
        if alpha != 1:
            t *= alpha
        C += t
        return C
    step = max(1, -(-rows // 16))
    for i in range(0, rows, step):
        t = np.matmul(A[i:i + step], B)
        if alpha != 1:
            t *= alpha
        C[i:i + step] += t
    return C


class Linear(Module):
    def __init__(self, inputSize, outputSize, bias=True):
        super().__init__()
        bias = True if bias is None else bias
        self.weight = Tensor(outputSize, inputSize)
        self.gradWeight = Tensor(outputSize, inputSize)
        if bias:
            self.bias = Tensor(outputSize)
            self.gradBias = Tensor(outputSize)
        self.reset()

    def noBias(self):
        self.__dict__.pop('bias', None)
        self.__dict__.pop('gradBias', None)
        return self

    def reset(self, stdv=None):
        if stdv is not None:
            stdv = stdv * math.sqrt(3)
        else:
            stdv = 1. / math.sqrt(self.weight.size(2))
        self.weight.uniform(-stdv, stdv)
        b = self.__dict__.get('bias')
        if b is not None:
            b.uniform(-stdv, stdv)
        return self

    def updateAddBuffer(self, input):
        nframe = input.size(1)
        if self.__dict__.get('addBuffer') is None:
            self.addBuffer = input.new()
        if self.addBuffer.nElement() != nframe:
            self.addBuffer.resize(nframe).fill(1)

    def _check_input(self, input):
        check_tensor(self, input, dims=(1, 2), dims_text='input must be vector or matrix (1D or 2D tensor)')
        n_in = self.weight.size(2)
        if input.size(input.dim()) != n_in:
            self._fail('%d input features (input must be vector or matrix of %d columns)' % (n_in, n_in),
                       input)

    def _check_grad(self, input, gradOutput):
        self._check_input(input)
        check_tensor(self, gradOutput, 'gradOutput')
        want = (self.weight.size(1),) if input.dim() == 1 else (input.size(1), self.weight.size(1))
        if gradOutput.size() != want:
            self._fail('gradOutput of size %s' % 'x'.join(map(str, want)), gradOutput)

    @lowbuf
    def updateOutput(self, input):
        self._check_input(input)
        bias = self.__dict__.get('bias')
        n_out = self.weight.size(1)
        if input.dim() == 1:
            self.output.resize(n_out)
            if self.output.is_meta():
                return self.output
            out = self.output.numpy()
            xp = xpof(out)
            _matmul(xp, self.weight.numpy(), input.numpy(), out)
            if bias is not None:
                out += bias.numpy()
            return self.output
        nframe = input.size(1)
        nElement = self.output.nElement()
        self.output.resize(nframe, n_out)
        if self.output.nElement() != nElement:
            self.output.zero()
        self.updateAddBuffer(input)
        if self.output.is_meta():
            return self.output
        out = self.output.numpy()
        xp = xpof(out)
        _matmul(xp, input.numpy(), self.weight.numpy().T, out)
        if bias is not None:
            out += bias.numpy()
        return self.output

    @lowbuf
    def updateGradInput(self, input, gradOutput):
        if self.__dict__.get('gradInput') is None:
            return None
        self._check_grad(input, gradOutput)
        nElement = self.gradInput.nElement()
        self.gradInput.resizeAs(input)
        if self.gradInput.nElement() != nElement:
            self.gradInput.zero()
        if self.gradInput.is_meta():
            return self.gradInput
        gi = self.gradInput.numpy()
        _matmul(xpof(gi), gradOutput.numpy(), self.weight.numpy(), gi)
        return self.gradInput

    @lowbuf
    def accGradParameters(self, input, gradOutput, scale=1):
        self._check_grad(input, gradOutput)
        scale = 1 if scale is None else scale
        bias = self.__dict__.get('bias')
        if input.dim() == 2 and bias is not None:
            self.updateAddBuffer(input)
        if self.gradWeight.is_meta():
            return
        g, x = gradOutput.numpy(), input.numpy()
        gw = self.gradWeight.numpy()
        if input.dim() == 1:
            addmm_(gw, scale, g[:, None], x[None, :])
            if bias is not None:
                gb = self.gradBias.numpy()
                if scale == 1:
                    gb += g
                else:
                    gb += scale * g
        else:
            addmm_(gw, scale, g.T, x)
            if bias is not None:
                gb = self.gradBias.numpy()
                t = xpof(g).matmul(self.addBuffer.numpy(), g)
                if scale != 1:
                    t *= scale
                gb += t

    def sharedAccUpdateGradParameters(self, input, gradOutput, lr):
        # Lua: defaultAccUpdateGradParameters (gradWeight := weight while accumulating -lr)
        gw, gb = self.gradWeight, self.__dict__.get('gradBias')
        self.gradWeight = self.weight
        if gb is not None:
            self.gradBias = self.bias
        try:
            self.accGradParameters(input, gradOutput, -lr)
        finally:
            self.gradWeight = gw
            if gb is not None:
                self.gradBias = gb

    def clearState(self):
        if self.__dict__.get('addBuffer') is not None:
            self.addBuffer.set()
        return super().clearState()

    def __tostring__(self):
        return '%s(%d -> %d)%s' % (self.__typename__, self.weight.size(2), self.weight.size(1),
                                   ' without bias' if self.__dict__.get('bias') is None else '')


# --- helpers ---------------------------------------------------------------------------------
def _is_num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _scale(scale):
    return 1 if scale is None else scale


def _sizes_of(args):
    """Lua's `...` sizes or one LongStorage -> a tuple of ints."""
    from ..storage import Storage
    if len(args) == 1 and isinstance(args[0], Storage):
        return tuple(int(v) for v in args[0].tolist())
    if len(args) == 1 and isinstance(args[0], (list, tuple)):
        return tuple(int(v) for v in args[0])
    return tuple(int(v) for v in args)


def _long_storage(values):
    from ..storage import Storage
    st = Storage(len(values), np.int64)
    if st.data is not None and len(values):
        st.data[:] = values
    return st


def _sum_to(a, shape):
    """Sum `a` over the axes where `shape` has 1 and `a` does not (expandAs's inverse)."""
    axes = tuple(i for i, (s, t) in enumerate(zip(shape, a.shape)) if s == 1 and t != 1)
    return a.sum(axis=axes, keepdims=True) if axes else a


def _bshapes(b, input):
    """CAdd/CMul: (shape of input's view, shape of the parameter's view) that broadcast, as Lua
    picks them (same number of elements; same dims, expandAs; else per sample of a batch), or None."""
    if input.nElement() == b.nElement():
        return (input.nElement(),), (b.nElement(),)
    if b.dim() == input.dim():
        if all(bs == xs or bs == 1 for bs, xs in zip(b.size(), input.size())):
            return input.size(), b.size()
        return None
    if input.dim() >= 1 and input.nElement() == input.size(1) * b.nElement():
        return (input.size(1), b.nElement()), (1, b.nElement())
    return None


# --- Add / CAdd / CMul / Mul -----------------------------------------------------------------
class Add(Module):
    """y = x + b; b of inputSize elements (or one scalar with `scalar`), per sample for a batch."""

    def __init__(self, inputSize, scalar=None):
        super().__init__()
        size = 1 if scalar else inputSize
        self.scalar = scalar
        self.bias = Tensor(size)
        self.gradBias = Tensor(size)
        self._ones = Tensor([1])
        self.reset()

    def reset(self, stdv=None):
        stdv = stdv * math.sqrt(3) if stdv is not None else 1. / math.sqrt(self.bias.size(1))
        self.bias.uniform(-stdv, stdv)

    def _check(self, input):
        check_tensor(self, input)
        if self.scalar:
            return
        n = self.bias.nElement()
        if input.isSameSizeAs(self.bias):
            return
        if input.dim() < 1 or input.nElement() != input.size(1) * n:
            self._fail('an input of %d elements or a batch of them' % n, input)

    def updateOutput(self, input):
        self._check(input)
        self.output.resizeAs(input)
        batch = not self.scalar and not input.isSameSizeAs(self.bias)
        if batch:
            b = input.size(1)
            if self._ones.nElement() != b:
                self._ones.resize(b).fill(1)
        if self.output.is_meta():
            return self.output
        out = self.output.numpy()
        out[...] = input.numpy()
        if self.scalar:
            out += self.bias.numpy().reshape(-1)[0]
        elif not batch:
            out += self.bias.numpy()
        else:
            out.reshape(input.size(1), -1)[...] += self.bias.numpy().reshape(1, -1)
        return self.output

    def updateGradInput(self, input, gradOutput):
        if self.__dict__.get('gradInput') is None:
            return None
        check_tensor(self, gradOutput, 'gradOutput')
        self.gradInput.resizeAs(gradOutput)
        if not self.gradInput.is_meta():
            self.gradInput.numpy()[...] = gradOutput.numpy()
        return self.gradInput

    def accGradParameters(self, input, gradOutput, scale=1):
        scale = _scale(scale)
        if self.gradBias.is_meta():
            return
        gb, g = self.gradBias.numpy(), gradOutput.numpy()
        if self.gradBias.size(1) == 1:
            gb.reshape(-1)[0] += scale * g.sum()
        elif input.isSameSizeAs(self.bias):
            gb += scale * g
        else:
            gb.reshape(-1)[...] += scale * (g.reshape(input.size(1), -1).T @ self._ones.numpy())


class _BroadcastParameter(Module):
    """A parameter of any size broadcast (expandAs) over the input, or per sample of a batch:
    CAdd's bias, CMul's weight. `PARAM`/`GRAD` name the fields, `_combine` applies it."""
    PARAM = GRAD = None

    def __init__(self, *sizes):
        super().__init__()
        size = _sizes_of(sizes)
        self.size = _long_storage(size)
        setattr(self, self.PARAM, Tensor(*size))
        setattr(self, self.GRAD, Tensor(*size))
        self.output.resize(*size)
        self.reset()

    def reset(self, stdv=None):
        p = self.__dict__[self.PARAM]
        stdv = stdv * math.sqrt(3) if stdv is not None else 1. / math.sqrt(p.nElement())
        p.uniform(-stdv, stdv)

    def _shapes(self, input):
        return _bshapes(self.__dict__[self.PARAM], input)

    def updateOutput(self, input):
        check_tensor(self, input)
        p = self.__dict__[self.PARAM]
        shapes = self._shapes(input)
        if shapes is None:
            self._fail('an input that %s expands to (or a batch of)' % 'x'.join(map(str, p.size())), input)
        self.output.resizeAs(input)
        if self.output.is_meta():
            return self.output
        xs, ps = shapes
        out = self.output.numpy()
        out[...] = input.numpy()
        self._combine(out.reshape(xs), p.numpy().reshape(ps))
        return self.output


class CAdd(_BroadcastParameter):
    """y = x + b, b of any size broadcast (expandAs) over x, or per sample of a batch."""
    PARAM, GRAD = 'bias', 'gradBias'

    def _combine(self, out, b):
        out += b

    def updateGradInput(self, input, gradOutput):
        check_tensor(self, gradOutput, 'gradOutput')
        if self.__dict__.get('gradInput') is None:
            self.gradInput = input.new()
        self.gradInput.resizeAs(gradOutput)
        if not self.gradInput.is_meta():
            self.gradInput.numpy()[...] = gradOutput.numpy()
        return self.gradInput

    def accGradParameters(self, input, gradOutput, scale=1):
        scale = _scale(scale)
        shapes = self._shapes(gradOutput)
        if shapes is None:
            self._fail('gradOutput of the size of the output', gradOutput)
        if self.gradBias.is_meta():
            return
        xs, bs = shapes
        g = gradOutput.numpy().reshape(xs)
        gb = self.gradBias.numpy().reshape(bs)
        gb += scale * _sum_to(g, bs)

    def clearState(self):
        for f in ('_gradBias', '_expand', '_output', '_bias', '_repeat'):
            self.__dict__.pop(f, None)
        return super().clearState()


class CMul(_BroadcastParameter):
    """y = x * w, w of any size broadcast (expandAs) over x, or per sample of a batch."""
    PARAM, GRAD = 'weight', 'gradWeight'

    def _combine(self, out, w):
        out *= w

    def updateGradInput(self, input, gradOutput):
        if self.__dict__.get('gradInput') is None:
            return None
        check_tensor(self, gradOutput, 'gradOutput')
        shapes = self._shapes(input)
        if shapes is None or gradOutput.nElement() != input.nElement():
            self._fail('gradOutput of the size of the input', gradOutput)
        self.gradInput.resizeAs(input)
        if self.gradInput.is_meta():
            return self.gradInput
        xs, ws = shapes
        gi = self.gradInput.numpy().reshape(xs)
        xpof(gi).multiply(gradOutput.numpy().reshape(xs), self.weight.numpy().reshape(ws), out=gi)
        return self.gradInput

    def accGradParameters(self, input, gradOutput, scale=1):
        scale = _scale(scale)
        shapes = self._shapes(input)
        if shapes is None or gradOutput.nElement() != input.nElement():
            self._fail('gradOutput of the size of the input', gradOutput)
        xs, ws = shapes
        if self.weight.nElement() != gradOutput.nElement():
            if self.__dict__.get('_repeat') is None:
                self._repeat = input.new()
            self._repeat.resize(*xs)
            if self.__dict__.get('_sum') is None:
                self._sum = input.new()
        if self.gradWeight.is_meta():
            return
        gw = self.gradWeight.numpy().reshape(ws)
        x, g = input.numpy().reshape(xs), gradOutput.numpy().reshape(xs)
        if self.weight.nElement() == gradOutput.nElement():
            gw += scale * (x * g)
            return
        rep = self._repeat.numpy()
        xpof(rep).multiply(x, g, out=rep)
        s = _sum_to(rep, ws)
        self._sum.resize(*s.shape)
        self._sum.numpy()[...] = s
        gw += scale * s

    def clearState(self):
        for f in ('_input', '_output', '_weight', '_gradWeight', '_expand', '_repeat', '_sum'):
            self.__dict__.pop(f, None)
        return super().clearState()


class Mul(Module):
    """y = w * x with a single learnable scalar w."""

    def __init__(self):
        super().__init__()
        self.weight = Tensor(1)
        self.gradWeight = Tensor(1)
        self.reset()

    def reset(self, stdv=None):
        stdv = stdv * math.sqrt(3) if stdv is not None else 1. / math.sqrt(self.weight.size(1))
        self.weight.uniform(-stdv, stdv)

    def updateOutput(self, input):
        check_tensor(self, input)
        self.output.resizeAs(input)
        if self.output.is_meta():
            return self.output
        out = self.output.numpy()
        xpof(out).multiply(input.numpy(), self.weight.numpy()[0], out=out)
        return self.output

    def updateGradInput(self, input, gradOutput):
        check_tensor(self, gradOutput, 'gradOutput')
        check_same_elements(self, input, gradOutput)
        self.gradInput.resizeAs(input)
        if self.gradInput.is_meta():
            return self.gradInput
        gi = self.gradInput.numpy()
        xpof(gi).multiply(gradOutput.numpy().reshape(gi.shape), self.weight.numpy()[0], out=gi)
        return self.gradInput

    def accGradParameters(self, input, gradOutput, scale=1):
        check_same_elements(self, input, gradOutput)
        if self.gradWeight.is_meta():
            return
        x, g = input.numpy().reshape(-1), gradOutput.numpy().reshape(-1)
        self.gradWeight.numpy()[0] += _scale(scale) * xpof(x).dot(x, g)


# --- LinearWeightNorm / Maxout -------------------------------------------------------------------
class LinearWeightNorm(Linear):
    """Linear with weight = g * v / ||v|| (per output row); parameters v, g (and bias)."""

    def __init__(self, inputSize, outputSize, bias=None, eps=None):
        Module.__init__(self)
        bias = True if bias is None else bias
        self.eps = 1e-16 if eps is None else eps
        self.outputSize = outputSize
        self.inputSize = inputSize
        self.v = Tensor(outputSize, inputSize)
        self.gradV = Tensor(outputSize, inputSize)
        self.weight = Tensor(outputSize, inputSize)
        self.g = Tensor(outputSize, 1)
        self.gradG = Tensor(outputSize, 1)
        self.norm = Tensor(outputSize, 1)
        self.scale = Tensor(outputSize, 1)
        if bias:
            self.bias = Tensor(outputSize)
            self.gradBias = Tensor(outputSize)
        self.reset()

    def evaluate(self):
        if self.train is not False:
            self.updateWeightMatrix()
        return super().evaluate()

    def _check_input(self, input):   # sizes from v: weight is a buffer (empty after clearState)
        check_tensor(self, input, dims=(1, 2), dims_text='input must be vector or matrix (1D or 2D tensor)')
        n_in = self.v.size(2)
        if input.size(input.dim()) != n_in:
            self._fail('%d input features (input must be vector or matrix of %d columns)' % (n_in, n_in),
                       input)

    def _check_grad(self, input, gradOutput):
        self._check_input(input)
        check_tensor(self, gradOutput, 'gradOutput')
        want = (self.v.size(1),) if input.dim() == 1 else (input.size(1), self.v.size(1))
        if gradOutput.size() != want:
            self._fail('gradOutput of size %s' % 'x'.join(map(str, want)), gradOutput)

    def initFromWeight(self, weight=None):
        weight = self.weight if weight is None else weight
        if not self.g.is_meta():
            w = weight.numpy()
            xp = xpof(w)
            g = self.g.numpy()
            xp.sqrt((w * w).sum(axis=1, keepdims=True), out=g)
            xp.maximum(g, self.eps, out=g)
        self.v.copy(weight)
        return self

    @staticmethod
    def fromLinear(linear):
        m = LinearWeightNorm(linear.weight.size(2), linear.weight.size(1), linear.__dict__.get('bias') is not None)
        m.weight.copy(linear.weight)
        m.initFromWeight()
        if linear.__dict__.get('bias') is not None:
            m.bias.copy(linear.bias)
        return m

    def toLinear(self):
        self.updateWeightMatrix()
        has_bias = self.__dict__.get('bias') is not None
        m = Linear(self.inputSize, self.outputSize, has_bias)
        m.weight.copy(self.weight)
        if has_bias:
            m.bias.copy(self.bias)
        return m

    def parameters(self):
        if self.__dict__.get('bias') is not None:
            return [self.v, self.g, self.bias], [self.gradV, self.gradG, self.gradBias]
        return [self.v, self.g], [self.gradV, self.gradG]

    def reset(self, stdv=None):
        stdv = stdv * math.sqrt(3) if stdv is not None else 1 / math.sqrt(self.inputSize)
        self.weight.uniform(-stdv, stdv)
        self.initFromWeight()
        if self.__dict__.get('bias') is not None:
            self.bias.uniform(-stdv, stdv)

    def updateWeightMatrix(self):
        if self.norm.dim() == 0:
            self.norm.resizeAs(self.g)
        if self.scale.dim() == 0:
            self.scale.resizeAs(self.g)
        if self.weight.dim() == 0:
            self.weight.resizeAs(self.v)
        if self.weight.is_meta():
            return
        v, n, s, g = self.v.numpy(), self.norm.numpy(), self.scale.numpy(), self.g.numpy()
        xp = xpof(v)
        xp.sqrt((v * v).sum(axis=1, keepdims=True), out=n)
        xp.maximum(n, self.eps, out=n)
        xp.divide(g, n, out=s)
        xp.multiply(v, s, out=self.weight.numpy())

    def updateOutput(self, input):
        self._check_input(input)
        if self.train is not False:
            self.updateWeightMatrix()
        return Linear.updateOutput(self, input)

    def accGradParameters(self, input, gradOutput, scale=1):
        self._check_grad(input, gradOutput)
        scale = _scale(scale)
        has_bias = self.__dict__.get('bias') is not None
        if input.dim() == 2 and has_bias:
            self.updateAddBuffer(input)
        if self.gradV.is_meta():
            return
        g, x = gradOutput.numpy(), input.numpy()
        gv = self.gradV.numpy()
        xp = xpof(gv)
        if input.dim() == 1:
            gv += scale * xp.outer(g, x)
            if has_bias:
                self.gradBias.numpy()[...] += scale * g
        else:
            addmm_(gv, scale, g.T, x)
            if has_bias:
                self.gradBias.numpy()[...] += scale * xp.matmul(g.T, self.addBuffer.numpy())
        v, n, s = self.v.numpy(), self.norm.numpy(), self.scale.numpy()
        w, gg = self.weight.numpy(), self.gradG.numpy()
        xp.multiply(gv, v, out=w)
        w /= n
        w.sum(axis=1, keepdims=True, out=gg)
        gv *= s
        xp.multiply(v, s, out=w)
        w /= n
        w *= gg
        gv -= w

    def defaultAccUpdateGradParameters(self, input, gradOutput, lr):
        saved = self.gradV, self.gradG, self.__dict__.get('gradBias')
        self.gradV, self.gradG = self.v, self.g
        if saved[2] is not None:
            self.gradBias = self.bias
        try:
            self.accGradParameters(input, gradOutput, -lr)
        finally:
            self.gradV, self.gradG = saved[0], saved[1]
            if saved[2] is not None:
                self.gradBias = saved[2]

    sharedAccUpdateGradParameters = defaultAccUpdateGradParameters

    def clearState(self):
        for f in ('weight', 'norm', 'scale'):
            t = self.__dict__.get(f)
            if isinstance(t, Tensor):
                t.set()
        return super().clearState()

    def __tostring__(self):
        return '%s(%d -> %d)%s' % (self.__typename__, self.inputSize, self.outputSize,
                                   ' without bias' if self.__dict__.get('bias') is None else '')


class Maxout(Sequential):
    """Linear(inputSize, outputSize * maxoutNumber), View(maxoutNumber, outputSize) (1 input dim),
    [preprocess], Max(1, 2): the maximum over each group of maxoutNumber units."""

    def __init__(self, inputSize, outputSize, maxoutNumber, preprocess=None):
        from . import registry
        super().__init__()
        reg = registry()
        self.add(Linear(inputSize, outputSize * maxoutNumber))
        self.add(reg['nn.View'](maxoutNumber, outputSize).setNumInputDims(1))
        if preprocess is not None:
            self.add(preprocess)
        if 'nn.Max' not in reg:
            raise NotImplementedError('nn.Maxout needs nn.Max, which this pynn lacks')
        self.add(reg['nn.Max'](1, 2))


from .linear_distance import Bilinear, Euclidean, WeightedEuclidean, Cosine  # noqa: E402,F401
from .linear_sparse import LookupTable, SparseLinear, PartialLinear  # noqa: E402,F401
from .linear_index import IndexLinear  # noqa: E402,F401
