"""The rest of Lua nn's pointwise family: Abs, Clamp, ELU, Exp, GatedLinearUnit, HardShrink,
HardTanh, LeakyReLU, Log, LogSigmoid, SoftMin, Power, PReLU, ReLU6, RReLU, SoftPlus,
SoftShrink, SoftSign, Sqrt, Square, TanhShrink, CReLU, SpatialSoftMax, SpatialLogSoftMax.

Exported through pynn/nn/activation.py (the family file). Element formulas, which tensor is
resized or `set` (in-place variants), which buffers exist, follow the final nn's Lua files
and THNN kernels (lib/THNN/generic/*.c). Whole-array operations; where a formula needs a
mask or a temporary, it is computed block by block (activation.blocks) so temporaries stay
a small fraction of the tensors.
"""
from ..tensor import Tensor
from .module import Module
from .activation import (lowbuf, xpof, blocks, check_tensor, check_same_elements, check_same_shape,
                         array_of, _is_number, _check_inplace_flag, _masked, SoftMax, LogSoftMax,
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


# --- HardTanh / Clamp / ReLU6 -------------------------------------------------------------------
class _HardTanhKernel(_Pointwise):
    """THNN HardTanh: y = x < lo ? lo : (x <= hi ? x : hi) (NaN -> hi); in place, values
    outside [lo, hi] are clamped and NaN stays. gradInput = x <= lo or x >= hi ? 0 : g."""

    def _ht_forward(self, input, lo, hi, inplace):
        if inplace:
            def fn(xp, x):
                xp.minimum(x, hi, out=x)
                xp.maximum(x, lo, out=x)
            return self._forward_inplace(input, fn)

        def fn(xp, o, x):
            xp.fmin(x, hi, out=o)
            xp.fmax(o, lo, out=o)
        return self._forward(input, fn)

    def _ht_backward(self, input, gradOutput, lo, hi, inplace):
        check_tensor(self, input)
        self._check_grad(input, gradOutput)

        def keep(xp, x):
            k = xp.less_equal(x, lo)
            k |= xp.greater_equal(x, hi)
            return xp.logical_not(k, out=k)
        if inplace:
            return self._backward_inplace(gradOutput, lambda xp, g, x: _masked(xp, g, g, keep(xp, x)), input)
        return self._backward(input, gradOutput, lambda xp, gi, g, x: _masked(xp, gi, g, keep(xp, x)), input)


class HardTanh(_HardTanhKernel):
    """nn.HardTanh(min_value=-1, max_value=1, inplace=false). Fields min_val, max_val, inplace."""

    def __init__(self, min_value=None, max_value=None, inplace=None):
        super().__init__()
        self.min_val = -1 if min_value is None else min_value
        self.max_val = 1 if max_value is None else max_value
        if inplace and not isinstance(inplace, bool):
            raise ValueError('in-place flag must be boolean, got %r' % (inplace,))
        self.inplace = inplace or False
        if not (_is_number(self.min_val) and _is_number(self.max_val)):
            raise ValueError('%s: min_value and max_value must be numbers, got %r, %r'
                             % (self.__typename__, self.min_val, self.max_val))
        if not self.max_val > self.min_val:
            raise ValueError('%s: max_value must be larger than min_value (got %r, %r)'
                             % (self.__typename__, self.min_val, self.max_val))

    def _bounds(self):
        if self.min_val is None:
            self.min_val = -1
        if self.max_val is None:
            self.max_val = 1
        return self.min_val, self.max_val

    @lowbuf
    def updateOutput(self, input):
        lo, hi = self._bounds()
        return self._ht_forward(input, lo, hi, bool(self.inplace))

    @lowbuf
    def updateGradInput(self, input, gradOutput):
        lo, hi = self._bounds()
        return self._ht_backward(input, gradOutput, lo, hi, bool(self.inplace))


class Clamp(HardTanh):
    """nn.Clamp(min_value, max_value): a HardTanh (never in place)."""

    def __init__(self, min_value=None, max_value=None):
        super().__init__(min_value, max_value)


class ReLU6(_HardTanhKernel):
    """nn.ReLU6(inplace): the HardTanh kernel on [0, 6]."""

    def __init__(self, inplace=None):
        super().__init__()
        if inplace and not isinstance(inplace, bool):
            raise ValueError('in-place flag must be boolean, got %r' % (inplace,))
        self.inplace = False if inplace is None else inplace

    @lowbuf
    def updateOutput(self, input):
        return self._ht_forward(input, 0, 6, bool(self.inplace))

    @lowbuf
    def updateGradInput(self, input, gradOutput):
        return self._ht_backward(input, gradOutput, 0, 6, bool(self.inplace))


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


# --- ELU / LeakyReLU / RReLU / PReLU ----------------------------------------------------------
class ELU(_Pointwise):
    """nn.ELU(alpha=1, inplace=false): y = x <= 0 ? (exp(x) - 1) * alpha : x; the gradient
    reads the output: g * (output + alpha) where output <= 0."""

    def __init__(self, alpha=None, inplace=None):
        super().__init__()
        self.alpha = 1 if alpha is None else alpha
        if not _is_number(self.alpha):
            raise ValueError('nn.ELU(alpha, inplace): alpha must be a number, got %r' % (alpha,))
        self.inplace = inplace or False
        if not isinstance(self.inplace, bool):
            raise ValueError('nn.ELU(alpha, inplace): inplace must be boolean, got %r' % (inplace,))

    @lowbuf
    def updateOutput(self, input):
        a = self.alpha
        if self.inplace:
            def fn(xp, x):
                neg = xp.less_equal(x, 0)
                t = xp.exp(x)
                t -= 1
                t *= a
                xp.copyto(x, t, where=neg)
            return self._forward_inplace(input, fn)

        def fn(xp, o, x):
            xp.minimum(x, 0, out=o)
            xp.exp(o, out=o)
            o -= 1
            o *= a
            xp.copyto(o, x, where=xp.logical_not(xp.less_equal(x, 0)))
        return self._forward(input, fn)

    @lowbuf
    def updateGradInput(self, input, gradOutput):
        check_tensor(self, input)
        self._check_grad(input, gradOutput)
        a = self.alpha
        if self.inplace:
            return self._backward_inplace(
                gradOutput, lambda xp, g, z: xp.copyto(g, g * (z + a), where=xp.less_equal(z, 0)), self.output)

        def fn(xp, gi, g, z):
            xp.add(z, a, out=gi)
            gi *= g
            xp.copyto(gi, g, where=xp.logical_not(xp.less_equal(z, 0)))
        return self._backward(self.output, gradOutput, fn, self.output)

    def __tostring__(self):
        return '%s (alpha:%f)' % (self.__typename__, self.alpha)


class LeakyReLU(_Pointwise):
    """nn.LeakyReLU(negval=1/100, ip=false): y = x > 0 ? x : x * negval. As in Lua, a boolean
    first argument means the default slope (and, as Lua's code reads, the second argument is
    still the in-place flag); a negative slope forces inplace false."""

    def __init__(self, negval=None, ip=None):
        super().__init__()
        if isinstance(negval, bool):
            self.negval = 1 / 100
        else:
            self.negval = 1 / 100 if negval is None else negval
        if not _is_number(self.negval):
            raise ValueError('nn.LeakyReLU(negval, ip): negval must be a number, got %r' % (negval,))
        self.inplace = _flag(ip)
        if self.negval < 0:
            self.inplace = False

    @lowbuf
    def updateOutput(self, input):
        nv = self.negval
        if self.inplace:
            return self._forward_inplace(input, lambda xp, x: xp.copyto(x, x * nv, where=xp.less_equal(x, 0)))

        def fn(xp, o, x):
            xp.multiply(x, nv, out=o)
            xp.copyto(o, x, where=xp.greater(x, 0))
        return self._forward(input, fn)

    @lowbuf
    def updateGradInput(self, input, gradOutput):
        check_tensor(self, input)
        self._check_grad(input, gradOutput)
        nv = self.negval
        if self.inplace:
            return self._backward_inplace(
                gradOutput, lambda xp, g, x: xp.copyto(g, g * nv, where=xp.less_equal(x, 0)), input)

        def fn(xp, gi, g, x):
            xp.multiply(g, nv, out=gi)
            xp.copyto(gi, g, where=xp.greater(x, 0))
        return self._backward(input, gradOutput, fn, input)

    def __tostring__(self):
        return '%s(%g)' % (self.__typename__, self.negval)


class RReLU(_Pointwise):
    """nn.RReLU(l=1/8, u=1/3, ip=false). Training: slopes drawn uniformly in [l, u] for x <= 0
    (kept in `noise`, 1 elsewhere); evaluation: slope (l + u) / 2. The draws go through
    Tensor.uniform over the whole noise tensor (THNN draws only for x <= 0)."""

    def __init__(self, l=None, u=None, ip=None):
        super().__init__()
        self.lower = 1 / 8 if l is None else l
        self.upper = 1 / 3 if u is None else u
        if not (_is_number(self.lower) and _is_number(self.upper)) or \
                not (self.lower <= self.upper and self.lower >= 0 and self.upper >= 0):
            raise ValueError('nn.RReLU(l, u, ip): 0 <= l <= u expected, got %r, %r' % (l, u))
        self.noise = Tensor()
        self.train = True
        self.inplace = _flag(ip)

    def _noise(self, input):
        if self.noise is None:
            self.noise = input.new()
        return self.noise

    @lowbuf
    def updateOutput(self, input):
        check_tensor(self, input)
        lo, hi = self.lower, self.upper
        if self.train:
            noise = self._noise(input)
            noise.resizeAs(input)
            if not self.inplace:
                self.output.resizeAs(input)
            if input.is_meta():
                if self.inplace:
                    self.output.set(input)
                return self.output
            noise.uniform(lo, hi)

            def slopes(xp, n, x):
                xp.copyto(n, 1, where=xp.logical_not(xp.less_equal(x, 0)))
            _map(slopes, noise.numpy(), input.numpy())
            if self.inplace:
                x = input.numpy()
                x *= array_of(noise, x.shape)
                self.output.set(input)
                return self.output
            o = self.output.numpy()
            xpof(o).multiply(input.numpy(), array_of(noise, o.shape), out=o)
            return self.output
        neg = (lo + hi) / 2
        if self.inplace:
            return self._forward_inplace(input, lambda xp, x: xp.copyto(x, x * neg, where=xp.less_equal(x, 0)))

        def fn(xp, o, x):
            xp.multiply(x, neg, out=o)
            xp.copyto(o, x, where=xp.logical_not(xp.less_equal(x, 0)))
        return self._forward(input, fn)

    def _uses_noise(self):
        return bool(self.train) and self.upper - self.lower > 1e-6

    @lowbuf
    def updateGradInput(self, input, gradOutput):
        check_tensor(self, input)
        self._check_grad(input, gradOutput)
        if self._uses_noise():
            noise = self._noise(input)
            if noise.nElement() != gradOutput.nElement():
                self._fail('gradOutput with %d elements (as the noise of the last training forward)'
                           % noise.nElement(), gradOutput)
            if self.inplace:
                return self._backward_inplace(gradOutput, lambda xp, g, n: xp.multiply(g, n, out=g), noise)
            return self._backward(input, gradOutput, lambda xp, gi, g, n: xp.multiply(g, n, out=gi), noise)
        neg = (self.lower + self.upper) / 2
        if self.inplace:
            return self._backward_inplace(
                gradOutput, lambda xp, g, x: xp.copyto(g, g * neg, where=xp.less_equal(x, 0)), input)

        def fn(xp, gi, g, x):
            xp.multiply(g, neg, out=gi)
            xp.copyto(gi, g, where=xp.logical_not(xp.less_equal(x, 0)))
        return self._backward(input, gradOutput, fn, input)

    def __tostring__(self):
        return '%s (l:%f, u:%f)' % (self.__typename__, self.lower, self.upper)

    def clearState(self):
        if self.noise is not None:
            self.noise.set()
        return super().clearState()


class PReLU(_Pointwise):
    """nn.PReLU(nOutputPlane): y = x > 0 ? x : w * x, one slope (nOutputPlane 0, the default)
    or one per plane (dim 2 of 2D+ input, dim 1 of 1D). Fields nOutputPlane, weight,
    gradWeight; gradWeightBuf/gradWeightBuf2 created lazily (THNN leaves them empty)."""

    def __init__(self, nOutputPlane=None):
        super().__init__()
        if nOutputPlane is not None and (not isinstance(nOutputPlane, int) or nOutputPlane < 0):
            raise ValueError('nn.PReLU(nOutputPlane): a number of planes >= 0 expected, got %r' % (nOutputPlane,))
        self.nOutputPlane = nOutputPlane or 0
        n = 1 if nOutputPlane is None else nOutputPlane
        self.weight = Tensor(n).fill(0.25)
        self.gradWeight = Tensor(n).zero()

    def _check(self, input):
        check_tensor(self, input)
        n = self.nOutputPlane
        if n:
            d = input.dim()
            if d == 0 or input.size(2 if d > 1 else 1) != n:
                self._fail('input with %d planes (dim %d)' % (n, 2 if d > 1 else 1), input)

    def _w(self, arr):
        """The slopes broadcast against an array of the input's shape."""
        w = self.weight.numpy()
        if not self.nOutputPlane:
            return w.reshape(-1)[0]
        if arr.ndim == 1:
            return w
        return w.reshape((1, -1) + (1,) * (arr.ndim - 2))

    @lowbuf
    def updateOutput(self, input):
        self._check(input)
        self.output.resizeAs(input)
        if self.output.is_meta():
            return self.output
        o, x = self.output.numpy(), input.numpy()
        xp = xpof(o)
        xp.multiply(x, self._w(x), out=o)
        xp.copyto(o, x, where=xp.greater(x, 0))
        return self.output

    @lowbuf
    def updateGradInput(self, input, gradOutput):
        self._check(input)
        self._check_grad(input, gradOutput)
        self.gradInput.resizeAs(input)
        if self.gradInput.is_meta():
            return self.gradInput
        gi, x = self.gradInput.numpy(), input.numpy()
        g = array_of(gradOutput, gi.shape)
        xp = xpof(gi)
        xp.multiply(g, self._w(x), out=gi)
        xp.copyto(gi, g, where=xp.greater(x, 0))
        return self.gradInput

    @lowbuf
    def accGradParameters(self, input, gradOutput, scale=1):
        self._check(input)
        self._check_grad(input, gradOutput)
        if self.gradWeightBuf is None:
            self.gradWeightBuf = input.new()
        if self.gradWeightBuf2 is None:
            self.gradWeightBuf2 = input.new()
        if input.is_meta():
            return self.gradWeight
        x = input.numpy()
        g = array_of(gradOutput, x.shape)
        xp = xpof(x)
        t = xp.multiply(g, x)                      # sum over x <= 0 of g * x
        xp.copyto(t, 0, where=xp.logical_not(xp.less_equal(x, 0)))
        gw = self.gradWeight.numpy()
        if not self.nOutputPlane:
            gw.reshape(-1)[0] += scale * t.sum()
        elif x.ndim == 1:
            gw += scale * t
        else:
            axes = (0,) + tuple(range(2, x.ndim))
            gw += scale * t.sum(axis=axes)
        return self.gradWeight

    def clearState(self):
        for f in ('gradWeightBuf', 'gradWeightBuf2'):
            if isinstance(self.__dict__.get(f), Tensor):
                self.__dict__[f].set()
        return super().clearState()


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


# --- CReLU ------------------------------------------------------------------------------------
def _sequential():
    from .container import Sequential
    return Sequential


class CReLU(_sequential()):
    """nn.CReLU(nInputDims, inplace): a Sequential of ConcatTable(Identity, MulConstant(-1)),
    JoinTable(2), ReLU(inplace) over the input flattened per sample; the output doubles the
    feature dim (dim 1 without batch, 2 with)."""

    def __init__(self, nInputDims, inplace=None):
        super().__init__()
        from .container import ConcatTable
        from .shape import Identity
        from .table import JoinTable
        from .activation import MulConstant, ReLU
        if not isinstance(nInputDims, int) or nInputDims < 1:
            raise ValueError('nn.CReLU(nInputDims, inplace): nInputDims >= 1 expected, got %r' % (nInputDims,))
        self.nInputDims = nInputDims
        self.inplace = inplace or False
        ct = ConcatTable()
        ct.add(Identity())
        ct.add(MulConstant(-1))
        self.add(ct)
        self.add(JoinTable(2))
        self.add(ReLU(self.inplace))

    def _flat(self, input):
        if not isinstance(input, Tensor):
            self._fail('a Tensor', input)
        d = input.dim()
        if d not in (self.nInputDims, self.nInputDims + 1) or d == 0:
            self._fail('a %dD or %dD (batch) tensor' % (self.nInputDims, self.nInputDims + 1), input)
        if not input.isContiguous():
            self._fail('a contiguous tensor', input)
        batched = d == self.nInputDims + 1
        return batched, (input.size(1) if batched else 1)

    def updateOutput(self, input):
        batched, rows = self._flat(input)
        super().updateOutput(input.view(rows, -1))
        osize = list(input.size())
        osize[1 if batched else 0] *= 2
        self.output.resize(*osize)
        return self.output

    def backward(self, input, gradOutput, scale=1):
        return self.updateGradInput(input, gradOutput)

    def updateGradInput(self, input, gradOutput):
        batched, rows = self._flat(input)
        if not isinstance(gradOutput, Tensor) or gradOutput.nElement() != 2 * input.nElement():
            self._fail('gradOutput with %d elements' % (2 * input.nElement()), gradOutput)
        super().updateGradInput(input.view(rows, -1), gradOutput.contiguous().view(rows, -1))
        self.gradInput.resizeAs(input)
        return self.gradInput

    def __tostring__(self):
        return 'CReLU()'
