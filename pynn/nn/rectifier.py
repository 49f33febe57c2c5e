"""Rectifier-like members of Lua nn's pointwise family: HardTanh, Clamp, ReLU6, ELU,
LeakyReLU, RReLU, PReLU, CReLU (split from pointwise.py, exported through activation.py).

Formulas, in-place semantics (output set to the modified input, gradInput to the modified
gradOutput) and buffers follow the final nn's Lua files and THNN kernels.
"""
from ..tensor import Tensor
from .activation import lowbuf, xpof, check_tensor, array_of, _is_number, _masked, _BLOCK
from .pointwise import _Pointwise, _map, _flag


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
                t = xp.minimum(x, 0)             # exp of the non-positive part only: no overflow
                xp.exp(t, out=t)
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
        if nOutputPlane is not None and (not isinstance(nOutputPlane, int) or nOutputPlane < 1):
            # (Lua takes 0 too, and then reads a slope out of an empty weight)
            raise ValueError('nn.PReLU(nOutputPlane): a number of planes >= 1 expected (none for one '
                             'shared slope), got %r' % (nOutputPlane,))
        self.nOutputPlane = nOutputPlane or 0
        n = 1 if nOutputPlane is None else nOutputPlane
        self.weight = Tensor(n).fill(0.25)
        self.gradWeight = Tensor(n).zero()

    def _check(self, input):
        check_tensor(self, input)
        n = self.nOutputPlane
        if self.weight is None or self.weight.nElement() < max(n, 1):
            self._fail('a module whose weight holds %d slopes' % max(n, 1), input)
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

        def fn(xp, o, x, w):
            xp.multiply(x, w, out=o)
            xp.copyto(o, x, where=xp.greater(x, 0))
        _map(fn, o, x, xp.broadcast_to(self._w(x), x.shape))
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

        def fn(xp, gi, g, x, w):
            xp.multiply(g, w, out=gi)
            xp.copyto(gi, g, where=xp.greater(x, 0))
        _map(fn, gi, g, x, xp.broadcast_to(self._w(x), x.shape))
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
        xp = xpof(x)
        xf, gf = x.reshape(-1), array_of(gradOutput, x.shape).reshape(-1)
        n, total = self.nOutputPlane, x.size
        ks = 1 if x.ndim <= 1 else total // max(1, x.shape[0] * n)
        acc = xp.zeros(max(n, 1), dtype=x.dtype)
        block = max(_BLOCK, total // 64)
        for i in range(0, total, block):         # sum over x <= 0 of g * x, per plane, block by block
            t = xp.fmin(xf[i:i + block], 0)
            t *= gf[i:i + block]
            if not n:
                acc += t.sum()
            else:
                planes = xp.arange(i, i + t.size) // ks
                planes %= n
                acc += xp.bincount(planes, weights=t, minlength=n)
        gw = self.gradWeight.numpy().reshape(-1)
        gw += scale * acc
        return self.gradWeight

    def clearState(self):
        for f in ('gradWeightBuf', 'gradWeightBuf2'):
            if isinstance(self.__dict__.get(f), Tensor):
                self.__dict__[f].set()
        return super().clearState()


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
        if d == 0:      # Lua: nInputDims + 1 dims is a batch, any other number of dims one sample
            self._fail('a %dD tensor or a %dD batch' % (self.nInputDims, self.nInputDims + 1), input)
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
