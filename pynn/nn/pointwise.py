"""The rest of Lua nn's pointwise family: Abs, Exp, GatedLinearUnit, HardShrink, Log,
LogSigmoid, SoftMin, Power, SoftPlus, SoftShrink, SoftSign, Sqrt, Square, TanhShrink,
SpatialSoftMax, SpatialLogSoftMax (the rectifiers are in rectifier.py).

Exported through pynn/nn/activation.py (the family file). Element formulas, which tensor is
resized or `set` (in-place variants), which buffers exist, follow the final nn's Lua files
and THNN kernels (lib/THNN/generic/*.c). Whole-array operations; where a formula needs a
mask or a temporary, it is computed block by block (activation.blocks) so temporaries stay
a small fraction of the tensors.
"""
import numpy as np

from ..tensor import Tensor
from .module import Module
from .activation import (lowbuf, xpof, blocks, check_tensor, check_same_elements, check_same_shape,
                         array_of, _is_number, _masked, SoftMax, LogSoftMax,
                         Tanh, softmax_forward, softmax_backward)


def _map(fn, *arrays):
    """fn(xp, *pieces) over matching blocks of same-shaped arrays (the first is written)."""
    xp = xpof(arrays[0])
    for bs in blocks(*arrays):
        fn(xp, *bs)


def _flag(ip, what='in-place flag'):
    if ip is not None and ip is not False and not isinstance(ip, bool):
        raise ValueError('%s must be boolean, got %r' % (what, ip))
    return bool(ip)


class _Pointwise(Module):
    """Shared plumbing: validate, resize output/gradInput as THNN does, skip data on meta."""

    def _forward(self, input, fn):
        """output = fn applied to input (fn(xp, out, x) on blocks)."""
        check_tensor(self, input)
        self.output.resizeAs(input)
        if self.output.is_meta():
            return self.output
        _map(fn, self.output.numpy(), input.numpy())
        return self.output

    def _forward_inplace(self, input, fn):
        """input changed in place (fn(xp, x) on blocks), output set to it."""
        check_tensor(self, input)
        if not input.is_meta():
            _map(fn, input.numpy())
        self.output.set(input)
        return self.output

    def _check_grad(self, ref, gradOutput, shape=False):
        check_tensor(self, gradOutput, 'gradOutput')
        (check_same_shape if shape else check_same_elements)(self, ref, gradOutput)

    def _backward(self, like, gradOutput, fn, *others):
        """gradInput resized as `like`; fn(xp, gi, g, *others) on blocks."""
        self.gradInput.resizeAs(like)
        if self.gradInput.is_meta():
            return self.gradInput
        gi = self.gradInput.numpy()
        _map(fn, gi, array_of(gradOutput, gi.shape), *(array_of(o, gi.shape) for o in others))
        return self.gradInput

    def _backward_inplace(self, gradOutput, fn, *others):
        """gradOutput changed in place (fn(xp, g, *others)), gradInput set to it."""
        if not gradOutput.is_meta():
            g = gradOutput.numpy()
            _map(fn, g, *(array_of(o, g.shape) for o in others))
        self.gradInput.set(gradOutput)
        return self.gradInput


# --- Abs / Exp / Log / Square / Sqrt / Power ------------------------------------------------
class Abs(_Pointwise):
    """y = |x|; dy/dx = x >= 0 ? 1 : -1 (THNN Abs)."""

    @lowbuf
    def updateOutput(self, input):
        return self._forward(input, lambda xp, o, x: xp.abs(x, out=o))

    @lowbuf
    def updateGradInput(self, input, gradOutput):
        check_tensor(self, input)
        self._check_grad(input, gradOutput)

        def fn(xp, gi, g, x):
            xp.negative(g, out=gi)
            xp.copyto(gi, g, where=xp.greater_equal(x, 0))
        return self._backward(input, gradOutput, fn, input)


class Exp(_Pointwise):
    """y = exp(x); gradInput = output * gradOutput."""

    @lowbuf
    def updateOutput(self, input):
        return self._forward(input, lambda xp, o, x: xp.exp(x, out=o))

    @lowbuf
    def updateGradInput(self, input, gradOutput):
        self._check_grad(self.output, gradOutput)
        return self._backward(self.output, gradOutput,
                              lambda xp, gi, g, z: xp.multiply(z, g, out=gi), self.output)


class Log(_Pointwise):
    """y = log(x); gradInput = (1 / x) * gradOutput."""

    @lowbuf
    def updateOutput(self, input):
        return self._forward(input, lambda xp, o, x: xp.log(x, out=o))

    @lowbuf
    def updateGradInput(self, input, gradOutput):
        check_tensor(self, input)
        self._check_grad(input, gradOutput)

        def fn(xp, gi, g, x):
            xp.reciprocal(x, out=gi)
            gi *= g
        return self._backward(input, gradOutput, fn, input)


class Square(_Pointwise):
    """y = x * x; gradInput = 2 * gradOutput * x (THNN Square)."""

    def __init__(self, args=None):
        super().__init__()

    @lowbuf
    def updateOutput(self, input):
        return self._forward(input, lambda xp, o, x: xp.multiply(x, x, out=o))

    @lowbuf
    def updateGradInput(self, input, gradOutput):
        check_tensor(self, input)
        self._check_grad(input, gradOutput, shape=True)

        def fn(xp, gi, g, x):
            xp.multiply(g, 2.0, out=gi)
            gi *= x
        return self._backward(input, gradOutput, fn, input)


class Sqrt(_Pointwise):
    """y = sqrt(x) (the field eps is kept but, as in THNN, unused); gradInput =
    output == 0 ? 0 : 0.5 * gradOutput / output."""

    def __init__(self, b=None):
        super().__init__()
        self.eps = b or 0

    @lowbuf
    def updateOutput(self, input):
        if self.eps is None:
            self.eps = 0
        return self._forward(input, lambda xp, o, x: xp.sqrt(x, out=o))

    @lowbuf
    def updateGradInput(self, input, gradOutput):
        check_tensor(self, input)
        self._check_grad(self.output, gradOutput, shape=True)

        def fn(xp, gi, g, z):
            with np.errstate(divide='ignore', invalid='ignore'):   # zeros are replaced below
                xp.divide(g, z, out=gi)
            gi *= 0.5
            xp.copyto(gi, 0, where=xp.equal(z, 0))
        return self._backward(input, gradOutput, fn, self.output)


class Power(_Pointwise):
    """y = x ^ pow; gradInput = x ^ (pow - 1) * gradOutput * pow."""

    def __init__(self, p=None):
        super().__init__()
        self.pow = p
        if p is None:
            raise ValueError('nn.Power(power)')
        if not _is_number(p):
            raise ValueError('nn.Power(power): a number expected, got %r' % (p,))

    @lowbuf
    def updateOutput(self, input):
        p = self.pow
        return self._forward(input, lambda xp, o, x: xp.power(x, p, out=o))

    @lowbuf
    def updateGradInput(self, input, gradOutput):
        check_tensor(self, input)
        self._check_grad(input, gradOutput)
        p = self.pow

        def fn(xp, gi, g, x):
            xp.power(x, p - 1, out=gi)
            gi *= g
            gi *= p
        return self._backward(input, gradOutput, fn, input)


# --- HardShrink / SoftShrink --------------------------------------------------------------------
def _outside(xp, x, lam):
    """x > lam or x < -lam (False for NaN)."""
    k = xp.greater(x, lam)
    k |= xp.less(x, -lam)
    return k


class _Shrink(_Pointwise):
    def __init__(self, lam=None):
        super().__init__()
        lam = 0.5 if lam is None else lam
        if not _is_number(lam):
            raise ValueError('%s(lambda): a number expected, got %r' % (self.__typename__, lam))
        self.__dict__['lambda'] = lam

    def _lam(self):
        return self.__dict__.get('lambda')

    @lowbuf
    def updateGradInput(self, input, gradOutput):
        check_tensor(self, input)
        self._check_grad(input, gradOutput)
        lam = self._lam()
        return self._backward(input, gradOutput, lambda xp, gi, g, x: _masked(xp, gi, g, _outside(xp, x, lam)),
                              input)


class HardShrink(_Shrink):
    """y = |x| > lambda ? x : 0 (field `lambda`, default 0.5)."""

    @lowbuf
    def updateOutput(self, input):
        lam = self._lam()

        def fn(xp, o, x):
            o.fill(0)
            xp.copyto(o, x, where=_outside(xp, x, lam))
        return self._forward(input, fn)


class SoftShrink(_Shrink):
    """y = x > lambda ? x - lambda : (x < -lambda ? x + lambda : 0)."""

    @lowbuf
    def updateOutput(self, input):
        lam = self._lam()

        def fn(xp, o, x):
            o.fill(0)
            xp.copyto(o, x - lam, where=xp.greater(x, lam))
            xp.copyto(o, x + lam, where=xp.less(x, -lam))
        return self._forward(input, fn)


# --- LogSigmoid / SoftPlus / SoftSign / TanhShrink -------------------------------------------------
class LogSigmoid(_Pointwise):
    """y = -(m + log(z)), m = max(0, -x), z = exp(-m) + exp(-x - m), z kept in `buffer` (lazy)."""

    @lowbuf
    def updateOutput(self, input):
        check_tensor(self, input)
        if self.buffer is None:
            self.buffer = input.new()
        self.output.resizeAs(input)
        self.buffer.resizeAs(input)
        if self.output.is_meta():
            return self.output

        def fn(xp, o, b, x):
            m = xp.negative(x)
            xp.fmax(m, 0, out=m)                 # m = max(0, -x)
            xp.negative(m, out=b)
            xp.exp(b, out=b)                     # exp(-m)
            xp.subtract(xp.negative(x, out=o), m, out=o)
            xp.exp(o, out=o)                     # exp(-x - m)
            b += o
            xp.log(b, out=o)
            o += m
            xp.negative(o, out=o)
        _map(fn, self.output.numpy(), self.buffer.numpy(), input.numpy())
        return self.output

    @lowbuf
    def updateGradInput(self, input, gradOutput):
        check_tensor(self, input)
        self._check_grad(input, gradOutput)
        if self.buffer is None or self.buffer.nElement() != input.nElement():
            self._fail('a backward after a forward on this input size (buffer holds %d elements)'
                       % (0 if self.buffer is None else self.buffer.nElement()), input)

        def fn(xp, gi, g, x, z):
            # x < 0: 1 - (z - 1) / z, else (z - 1) / z
            xp.subtract(z, 1.0, out=gi)
            gi /= z
            xp.copyto(gi, 1.0 - gi, where=xp.less(x, 0))
            gi *= g
        return self._backward(self.buffer, gradOutput, fn, input, self.buffer)

    def clearState(self):
        if self.buffer is not None:
            self.buffer.set()
        return super().clearState()


class SoftPlus(_Pointwise):
    """nn.SoftPlus(beta=1): y = x * beta > threshold ? x : log1p(exp(beta x)) / beta
    (threshold 20); the gradient reads the output."""

    def __init__(self, beta=None):
        super().__init__()
        self.beta = 1 if beta is None else beta
        if not _is_number(self.beta):
            raise ValueError('nn.SoftPlus(beta): a number expected, got %r' % (beta,))
        self.threshold = 20

    @lowbuf
    def updateOutput(self, input):
        beta, th = self.beta, self.threshold

        def fn(xp, o, x):
            xp.multiply(x, beta, out=o)
            lin = xp.greater(o, th)
            xp.minimum(o, th, out=o)             # the linear part is replaced below: no overflow
            xp.exp(o, out=o)
            xp.log1p(o, out=o)
            o /= beta
            xp.copyto(o, x, where=lin)
        return self._forward(input, fn)

    @lowbuf
    def updateGradInput(self, input, gradOutput):
        check_tensor(self, input)
        self._check_grad(input, gradOutput)
        beta, th = self.beta, self.threshold

        def fn(xp, gi, g, y):
            xp.multiply(y, beta, out=gi)
            lin = xp.greater(gi, th)
            xp.minimum(gi, th, out=gi)
            xp.exp(gi, out=gi)                   # z = exp(beta y); g * (z - 1) / z
            z = gi.copy()
            gi -= 1.
            gi /= z
            gi *= g
            xp.copyto(gi, g, where=lin)
        return self._backward(self.output, gradOutput, fn, self.output)


class SoftSign(_Pointwise):
    """y = x / (1 + |x|) (buffer `temp`); gradInput = g / (1 + |x|)^2 (buffer `tempgrad`)."""

    @lowbuf
    def updateOutput(self, input):
        check_tensor(self, input)
        if self.temp is None:
            self.temp = input.new()
        self.temp.resizeAs(input)
        self.output.resizeAs(input)
        if self.output.is_meta():
            return self.output

        def fn(xp, o, t, x):
            xp.abs(x, out=t)
            t += 1
            xp.divide(x, t, out=o)
        _map(fn, self.output.numpy(), self.temp.numpy(), input.numpy())
        return self.output

    @lowbuf
    def updateGradInput(self, input, gradOutput):
        check_tensor(self, input)
        self._check_grad(input, gradOutput)
        if self.tempgrad is None:
            self.tempgrad = input.new()
        self.tempgrad.resizeAs(self.output)
        if self.tempgrad.nElement() != input.nElement():
            self._fail('a backward after a forward on this input size', input)
        self.gradInput.resizeAs(input)
        if self.gradInput.is_meta():
            return self.gradInput

        def fn(xp, gi, t, g, x):
            xp.abs(x, out=t)
            t += 1
            t *= t
            xp.divide(g, t, out=gi)
        gi = self.gradInput.numpy()
        _map(fn, gi, array_of(self.tempgrad, gi.shape), array_of(gradOutput, gi.shape), input.numpy())
        return self.gradInput

    def clearState(self):
        for f in ('temp', 'tempgrad'):
            if isinstance(self.__dict__.get(f), Tensor):
                self.__dict__[f].set()
        return super().clearState()


class TanhShrink(_Pointwise):
    """y = x - tanh(x), through its own nn.Tanh in field `tanh` (as Lua)."""

    def __init__(self):
        super().__init__()
        self.tanh = Tanh()

    @lowbuf
    def updateOutput(self, input):
        check_tensor(self, input)
        th = self.tanh.updateOutput(input)
        self.output.resizeAs(input)
        if self.output.is_meta():
            return self.output
        o = self.output.numpy()
        xpof(o).subtract(input.numpy(), th.numpy(), out=o)
        return self.output

    @lowbuf
    def updateGradInput(self, input, gradOutput):
        check_tensor(self, input)
        self._check_grad(input, gradOutput, shape=True)
        dth = self.tanh.updateGradInput(input, gradOutput)
        self.gradInput.resizeAs(input)
        if self.gradInput.is_meta():
            return self.gradInput
        gi = self.gradInput.numpy()
        xpof(gi).subtract(array_of(gradOutput, gi.shape), array_of(dth, gi.shape), out=gi)
        return self.gradInput

    def type(self, name=None, tensorCache=None):
        if name is not None and isinstance(self.__dict__.get('tanh'), Module):
            self.tanh.type(name, tensorCache)
        return super().type(name, tensorCache)

    def clearState(self):
        if isinstance(self.__dict__.get('tanh'), Module):
            self.tanh.clearState()
        return super().clearState()


# --- GatedLinearUnit --------------------------------------------------------------------------
class GatedLinearUnit(_Pointwise):
    """nn.GatedLinearUnit(dim): halves `dim` (default the last): y = a * sigmoid(b)."""

    def __init__(self, dim=None):
        super().__init__()
        self.dim = dim

    def _split(self, input):
        check_tensor(self, input)
        dim = self.dim or input.dim()
        if not (1 <= dim <= input.dim()):
            self._fail('a tensor with at least %d dims' % dim, input)
        n = input.size(dim)
        if n % 2:
            self._fail('an even size in dim %d (the halving dimension)' % dim, input)
        return dim, n // 2

    @staticmethod
    def _halves(a, axis, h):
        sl = [slice(None)] * a.ndim
        sl[axis] = slice(0, h)
        first = a[tuple(sl)]
        sl[axis] = slice(h, 2 * h)
        return first, a[tuple(sl)]

    @lowbuf
    def updateOutput(self, input):
        dim, h = self._split(input)
        size = list(input.size())
        size[dim - 1] = h
        self.output.resize(*size)
        if self.output.is_meta():
            return self.output
        o = self.output.numpy()
        xp = xpof(o)
        a, b = self._halves(input.numpy(), dim - 1, h)
        xp.negative(b, out=o)                    # sigmoid(b) = 1 / (1 + exp(-b))
        xp.exp(o, out=o)
        o += 1
        xp.reciprocal(o, out=o)
        o *= a
        return self.output

    @lowbuf
    def updateGradInput(self, input, gradOutput):
        dim, h = self._split(input)
        size = list(input.size())
        size[dim - 1] = h
        check_tensor(self, gradOutput, 'gradOutput')
        if gradOutput.nElement() != input.nElement() // 2:
            self._fail('gradOutput of size %s' % 'x'.join(map(str, size)), gradOutput)
        self.gradInput.resizeAs(input)
        if self.gradInput.is_meta():
            return self.gradInput
        gi = self.gradInput.numpy()
        xp = xpof(gi)
        a, b = self._halves(input.numpy(), dim - 1, h)
        g1, g2 = self._halves(gi, dim - 1, h)
        g = array_of(gradOutput, tuple(size))
        xp.negative(b, out=g1)
        xp.exp(g1, out=g1)
        g1 += 1
        xp.reciprocal(g1, out=g1)                # z = sigmoid(b)
        xp.subtract(1., g1, out=g2)
        g2 *= g1                                 # (1 - z) z
        g1 *= g
        g2 *= g
        g2 *= a
        return self.gradInput


# --- SoftMin / SpatialSoftMax / SpatialLogSoftMax -----------------------------------------------
class SoftMin(SoftMax):
    """softmax(-x), through the buffer `mininput` (-x, lazy); gradInput = -softmax'(g)."""

    @lowbuf
    def updateOutput(self, input):
        self._check_input(input)
        if self.mininput is None:
            self.mininput = input.new()
        self.mininput.resizeAs(input)
        self.output.resizeAs(input)
        if self.output.is_meta():
            return self.output
        mi = self.mininput.numpy()
        xpof(mi).negative(input.numpy(), out=mi)
        softmax_forward(self.mininput, self.output)
        return self.output

    @lowbuf
    def updateGradInput(self, input, gradOutput):
        self._check_grad(input, gradOutput)
        if self.mininput is None:
            self.mininput = input.new()
        self.mininput.resizeAs(input)
        self.gradInput.resizeAs(self.output)
        if self.gradInput.is_meta():
            return self.gradInput
        mi = self.mininput.numpy()
        xpof(mi).negative(input.numpy(), out=mi)
        softmax_backward(self.output, gradOutput, self.gradInput)
        gi = self.gradInput.numpy()
        xpof(gi).negative(gi, out=gi)
        return self.gradInput

    def clearState(self):
        if isinstance(self.__dict__.get('mininput'), Tensor):
            self.mininput.set()
        return super().clearState()


class SpatialSoftMax(SoftMax):
    """The SoftMax kernel: over dim 1 of 3D (planes x h x w), dim 2 of 4D (batch)."""


class SpatialLogSoftMax(LogSoftMax):
    """The LogSoftMax kernel, over the planes as SpatialSoftMax."""
