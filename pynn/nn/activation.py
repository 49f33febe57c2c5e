"""Pointwise and per-frame activations: Threshold, ReLU, Sigmoid, Tanh, SoftMax, LogSoftMax,
MulConstant, AddConstant, Dropout.

Semantics follow Lua nn and its THNN kernels (lib/THNN/generic/*.c): which tensor is
resized, which is `set` to which for in-place modules, and the exact element formulas.
Every computation writes into output/gradInput (or a Lua buffer) with `out=`; where a
condition needs a boolean mask, the mask is built block by block (see `blocks`).
"""
import functools
import numbers

import numpy as np

from .. import backend
from ..tensor import Tensor, generator
from .module import Module

_BLOCK = 4096
_BUFSIZE = 256


def lowbuf(fn):
    """Run fn with NumPy's ufunc buffer at _BUFSIZE elements: broadcast and strided ufunc calls
    allocate an iteration buffer of up to `bufsize` elements per operand (64 KiB by default),
    which would otherwise dominate the transient memory of a layer on small tensors."""
    @functools.wraps(fn)
    def wrapper(*args, **kw):
        old = np.setbufsize(_BUFSIZE)
        try:
            return fn(*args, **kw)
        finally:
            np.setbufsize(old)
    return wrapper


# --- helpers shared by pynn/nn/{activation,linear,normalization}.py ----------------------
def xpof(arr):
    return backend.array_module(arr)


def blocks(*arrays):
    """Matching pieces of same-shaped arrays, small enough that a per-piece temporary (a mask)
    stays a small fraction of the arrays: flat slices when all are C-contiguous, else chunks
    along the leading axes. On a GPU the arrays come back whole (one kernel is cheaper)."""
    a0 = arrays[0]
    n = a0.size
    block = max(_BLOCK, n // 64, min(n // 16, 1 << 15))   # big arrays: fewer, longer calls
    if n <= block or xpof(a0) is not np:
        yield arrays
        return
    if all(a.flags.c_contiguous for a in arrays):
        flats = [a.reshape(-1) for a in arrays]
        for i in range(0, n, block):
            yield tuple(f[i:i + block] for f in flats)
        return
    rows = a0.shape[0]
    row = n // rows
    if row >= block:
        for i in range(rows):
            yield from blocks(*(a[i] for a in arrays))
    else:
        step = max(1, block // row)
        for i in range(0, rows, step):
            yield tuple(a[i:i + step] for a in arrays)


def check_tensor(module, x, what='input', dims=None, dims_text=None):
    """Validate x before anything is modified: a Tensor of the module's type with an allowed
    number of dimensions. Raises ValueError naming the module (Module._fail)."""
    if not isinstance(x, Tensor):
        module._fail('a Tensor as %s' % what, x)
    if x.type() != module._type:
        module._fail('%s of type %s (convert the module with :type())' % (what, module._type), x)
    if dims is not None and x.dim() not in dims:
        module._fail(dims_text or ('%s %s tensor' % (what, ' or '.join('%dD' % d for d in dims))), x)


def check_same_elements(module, a, b, what='gradOutput'):
    if a.nElement() != b.nElement():
        module._fail('%s with %d elements (as many as the input, %s)'
                     % (what, a.nElement(), 'x'.join(map(str, a.size()))), b)


def check_same_shape(module, a, b, what='gradOutput'):
    if a.size() != b.size():
        module._fail('%s of size %s (the size of the input)' % (what, 'x'.join(map(str, a.size()))), b)


def array_of(t, shape=None):
    a = t.numpy()
    if shape is not None and a.shape != tuple(shape):
        a = a.reshape(shape)
    return a


def _is_number(v):
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def _check_inplace_flag(ip):
    if ip is not None and not isinstance(ip, bool):
        raise ValueError('in-place flag must be boolean, got %r' % (ip,))
    return bool(ip)


def _all_finite(xp, g):
    """True when every element of g is finite, checked without a full-size temporary: the
    sum of squares (one BLAS dot over a contiguous g) is finite only then, or overflows for
    huge finite values (the caller then takes its exact slow path); None when g is not
    contiguous (the caller checks per block)."""
    if g.size == 0 or not g.flags.c_contiguous:
        return None
    f = g.reshape(-1)
    return bool(xp.isfinite(xp.dot(f, f)))


def _times_mask(xp, x, keep, out):
    """out = x * keep (a boolean mask): the mask is cast to x's type in NumPy's ufunc
    buffer, which lowbuf keeps at 256 elements; a buffer the size of the block (a fraction of
    the arrays, as the mask itself) makes the product ~1.5x faster on big blocks."""
    if xp is np and keep.size >= 1 << 14:
        old = np.setbufsize(-(-keep.size // 16) * 16)
        try:
            xp.multiply(x, keep, out=out)
        finally:
            np.setbufsize(old)
    else:
        xp.multiply(x, keep, out=out)


_BITS = {np.dtype(np.float32): np.int32, np.dtype(np.float64): np.int64}
_BITS_FLOOR = 1 << 14   # elements of a block from which _masked works on the bits


def _masked(xp, out, g, keep, finite=None):
    """out = keep ? g : +0. On big float blocks (NumPy) g's bits are ANDed with the mask
    widened to all-ones / zeros: exact for every g (inf and NaN kept, +0 written as THNN
    writes it), in fewer passes than a product. Elsewhere a product with the mask is fast;
    it is exact (up to the sign of zero) only for finite g, so blocks holding inf/NaN take the
    slower masked copy. finite=True: the caller checked that all of g is finite (see
    _all_finite); None: checked here when needed."""
    bits = _BITS.get(g.dtype) if xp is np and keep.size >= _BITS_FLOOR else None
    if bits is not None:
        m = keep.astype(bits)
        np.negative(m, out=m)
        np.bitwise_and(g.view(bits), m, out=out.view(bits))
    elif finite or bool(xp.isfinite(g).all()):
        _times_mask(xp, g, keep, out)
    elif out is g:
        xp.logical_not(keep, out=keep)
        xp.copyto(out, 0, where=keep)
    else:
        out.fill(0)
        xp.copyto(out, g, where=keep)


def _finite_for_masks(xp, g):
    """_all_finite(g) where _masked will need it (blocks below its bit floor), else None."""
    return None if xp is np and g.size >= 16 * _BITS_FLOOR else _all_finite(xp, g)


def _select(xp, out, x, keep, val):
    """out = keep ? x : val (out may be x), as _masked: fast for finite x, exact otherwise."""
    if bool(xp.isfinite(x).all()):
        xp.multiply(x, keep, out=out)
        if val != 0:
            xp.logical_not(keep, out=keep)
            out += xp.multiply(keep, val, dtype=out.dtype)
    else:
        xp.logical_not(keep, out=keep)
        xp.copyto(out, val, where=keep)
        if out is not x:
            xp.logical_not(keep, out=keep)
            xp.copyto(out, x, where=keep)


_ZEROS = {}   # dtype -> a block of +0.0 (the array operand of _maximum_zero_inplace)


def _maximum_zero_inplace(x):
    """x = maximum(x, +0.0) in place, as np.maximum(x, 0.0, out=x) (same bits: -0.0 -> +0,
    NaN kept), but ~1.8x faster on big float arrays: like fmax, NumPy's maximum runs SIMD
    only with two array operands, so x is taken in pieces against a 64K-element zero block."""
    z = _ZEROS.get(x.dtype)
    if z is None:
        z = _ZEROS[x.dtype] = np.zeros(1 << 16, dtype=x.dtype)
    flat = x.reshape(-1)
    for i in range(0, flat.size, z.size):
        xb = flat[i:i + z.size]
        np.maximum(xb, z[:xb.size], out=xb)


def _fmax_scalar(xp, x, th, out):
    """out = fmax(x, th). NumPy's fmax runs SIMD only with two array operands (a scalar one
    is ~2x slower than a fill and an array fmax), so for ReLU's th = +0 on floats out is
    filled with 0 and used as the second operand; adding +0.0 then turns a -0.0 that fmax may
    keep into THNN's +0 (x > 0 is false for -0.0, so THNN writes val = 0)."""
    if (xp is np and th == 0 and out.dtype.kind == 'f' and np.copysign(1.0, th) > 0
            and not np.may_share_memory(out, x)):
        out.fill(0)
        xp.fmax(x, out, out=out)
        out += 0.0
    else:
        xp.fmax(x, th, out=out)


# --- Threshold / ReLU ----------------------------------------------------------------------
class Threshold(Module):
    """y = x > threshold ? x : val (THNN Threshold). Fields threshold, val, inplace."""

    def __init__(self, th=1e-6, v=0, ip=False):
        super().__init__()
        if th is None:
            th = 1e-6
        if v is None:
            v = 0
        if not _is_number(th) or not _is_number(v):
            raise ValueError('nn.Threshold(threshold, value): numbers expected, got %r, %r' % (th, v))
        self.threshold = th
        self.val = v
        self.inplace = _check_inplace_flag(ip)
        self.validateParameters()

    def validateParameters(self):
        self.inplace = self.__dict__.get('inplace') or False
        if self.inplace and self.val > self.threshold:
            raise ValueError('%s: in-place processing requires value (%s) not exceed threshold (%s)'
                             % (self._name(), self.val, self.threshold))

    @lowbuf
    def updateOutput(self, input):
        check_tensor(self, input)
        self.validateParameters()
        th, val = self.threshold, self.val
        if self.inplace:
            if not input.is_meta():
                x = input.numpy()
                xp = xpof(x)
                if (val == th == 0 and xp is np and x.dtype.kind == 'f' and x.flags.c_contiguous
                        and np.copysign(1.0, th) > 0 and x.size > (1 << 16)):
                    _maximum_zero_inplace(x)   # ReLU(true)
                elif val == th:
                    xp.maximum(x, th, out=x)  # x <= th -> th (NaN stays, as in THNN's in-place loop)
                else:
                    for (xb,) in blocks(x):
                        keep = xp.less_equal(xb, th)
                        xp.logical_not(keep, out=keep)
                        _select(xp, xb, xb, keep, val)
            self.output.set(input)
            return self.output
        self.output.resizeAs(input)
        if self.output.is_meta():
            return self.output
        x, out = input.numpy(), self.output.numpy()
        xp = xpof(out)
        if val == th:
            _fmax_scalar(xp, x, th, out)  # x > th ? x : th, and NaN -> th (= val) as THNN
        else:
            for ob, xb in blocks(out, x):
                _select(xp, ob, xb, xp.greater(xb, th), val)
        return self.output

    @lowbuf
    def updateGradInput(self, input, gradOutput):
        check_tensor(self, input)
        check_tensor(self, gradOutput, 'gradOutput')
        check_same_elements(self, input, gradOutput)
        self.validateParameters()
        th = self.threshold
        if self.inplace:
            if not gradOutput.is_meta():
                g, x = gradOutput.numpy(), array_of(input, gradOutput.size())
                xp = xpof(g)
                finite = _finite_for_masks(xp, g)
                for gb, xb in blocks(g, x):
                    keep = xp.less_equal(xb, th)
                    xp.logical_not(keep, out=keep)
                    _masked(xp, gb, gb, keep, finite)
            self.gradInput.set(gradOutput)
            return self.gradInput
        self.gradInput.resizeAs(input)
        if self.gradInput.is_meta():
            return self.gradInput
        gi, x = self.gradInput.numpy(), input.numpy()
        g = array_of(gradOutput, gi.shape)
        xp = xpof(gi)
        finite = _finite_for_masks(xp, g)
        for gib, gb, xb in blocks(gi, g, x):
            _masked(xp, gib, gb, xp.greater(xb, th), finite)
        return self.gradInput


class ReLU(Threshold):
    """Threshold(0, 0, inplace)."""

    def __init__(self, ip=False):
        super().__init__(0, 0, ip)


# --- Sigmoid / Tanh --------------------------------------------------------------------------
class Sigmoid(Module):
    @lowbuf
    def updateOutput(self, input):
        check_tensor(self, input)
        self.output.resizeAs(input)
        if self.output.is_meta():
            return self.output
        out, x = self.output.numpy(), input.numpy()
        xp = xpof(out)
        xp.negative(x, out=out)          # 1 / (1 + exp(-x))
        xp.exp(out, out=out)
        out += 1
        xp.reciprocal(out, out=out)
        return self.output

    @lowbuf
    def updateGradInput(self, input, gradOutput):
        check_tensor(self, gradOutput, 'gradOutput')
        check_same_elements(self, self.output, gradOutput)
        self.gradInput.resizeAs(self.output)
        if self.gradInput.is_meta():
            return self.gradInput
        gi, z = self.gradInput.numpy(), self.output.numpy()
        g = array_of(gradOutput, gi.shape)
        xp = xpof(gi)
        xp.subtract(1, z, out=gi)        # g * (1 - z) * z
        xp.multiply(g, gi, out=gi)
        gi *= z
        return self.gradInput


class Tanh(Module):
    @lowbuf
    def updateOutput(self, input):
        check_tensor(self, input)
        self.output.resizeAs(input)
        if self.output.is_meta():
            return self.output
        out = self.output.numpy()
        xpof(out).tanh(input.numpy(), out=out)
        return self.output

    @lowbuf
    def updateGradInput(self, input, gradOutput):
        check_tensor(self, gradOutput, 'gradOutput')
        check_same_shape(self, self.output, gradOutput)
        self.gradInput.resizeAs(self.output)
        if self.gradInput.is_meta():
            return self.gradInput
        gi, z, g = self.gradInput.numpy(), self.output.numpy(), gradOutput.numpy()
        xp = xpof(gi)
        xp.multiply(z, z, out=gi)        # g * (1 - z*z)
        xp.subtract(1, gi, out=gi)
        gi *= g
        return self.gradInput


# --- SoftMax / LogSoftMax ----------------------------------------------------------------------
def _frames(t):
    """THNN's (nframe, dim, stride) view of a 1D-4D tensor as a 3-D shape: reduce over axis 1."""
    s = t.size()
    if len(s) == 1:
        return (1, s[0], 1)
    if len(s) == 2:
        return (s[0], s[1], 1)
    if len(s) == 3:
        return (1, s[0], s[1] * s[2])
    return (s[0], s[1], s[2] * s[3])


def _frame_chunks(nframe, stride):
    """Slices of frames whose per-frame reductions (stride values each) stay small."""
    step = max(1, 512 // max(1, stride))
    for i in range(0, nframe, step):
        yield slice(i, i + step)


def softmax_forward(input, output):
    """THNN SoftMax_updateOutput on arrays: output (already sized as input) = softmax(input)."""
    shape = _frames(input)
    xa, outa = array_of(input, shape), array_of(output, shape)
    xp = xpof(outa)
    for f in _frame_chunks(shape[0], shape[2]):
        x, out = xa[f], outa[f]
        m = x.max(axis=1, keepdims=True)
        xp.subtract(x, m, out=out)
        xp.exp(out, out=out)
        s = out.sum(axis=1, keepdims=True)
        xp.reciprocal(s, out=s)
        out *= s


def softmax_backward(output, gradOutput, gradInput):
    """THNN SoftMax_updateGradInput: gradInput (sized as output) = z * (g - sum(g * z))."""
    shape = _frames(output)
    gia, za, ga = array_of(gradInput, shape), array_of(output, shape), array_of(gradOutput, shape)
    xp = xpof(gia)
    for f in _frame_chunks(shape[0], shape[2]):
        gi, z, g = gia[f], za[f], ga[f]
        xp.multiply(g, z, out=gi)
        s = gi.sum(axis=1, keepdims=True)
        xp.subtract(g, s, out=gi)
        gi *= z


class _SoftMaxBase(Module):
    def _check_input(self, input):
        check_tensor(self, input, dims=(1, 2, 3, 4), dims_text='1D, 2D, 3D or 4D tensor')

    def _check_grad(self, input, gradOutput):
        self._check_input(input)
        check_tensor(self, gradOutput, 'gradOutput')
        check_same_shape(self, input, gradOutput)
        if self.output.size() != input.size():
            self._fail('a backward call after forward on the same input size (output is %s)'
                       % 'x'.join(map(str, self.output.size())), input)


class SoftMax(_SoftMaxBase):
    """exp(x - max) / sum over the feature dim (dim 1 of 1D/3D input, dim 2 of 2D/4D)."""

    @lowbuf
    def updateOutput(self, input):
        self._check_input(input)
        self.output.resizeAs(input)
        if self.output.is_meta():
            return self.output
        softmax_forward(input, self.output)
        return self.output

    @lowbuf
    def updateGradInput(self, input, gradOutput):
        self._check_grad(input, gradOutput)
        self.gradInput.resizeAs(self.output)
        if self.gradInput.is_meta():
            return self.gradInput
        softmax_backward(self.output, gradOutput, self.gradInput)
        return self.gradInput


class LogSoftMax(_SoftMaxBase):
    """x - (max + log(sum(exp(x - max)))) over the feature dim, as SoftMax."""

    @lowbuf
    def updateOutput(self, input):
        self._check_input(input)
        self.output.resizeAs(input)
        if self.output.is_meta():
            return self.output
        shape = _frames(input)
        xa, outa = array_of(input, shape), array_of(self.output, shape)
        xp = xpof(outa)
        for f in _frame_chunks(shape[0], shape[2]):
            x, out = xa[f], outa[f]
            m = x.max(axis=1, keepdims=True)
            xp.subtract(x, m, out=out)
            xp.exp(out, out=out)
            logsum = out.sum(axis=1, keepdims=True)
            xp.log(logsum, out=logsum)
            logsum += m
            xp.subtract(x, logsum, out=out)
        return self.output

    @lowbuf
    def updateGradInput(self, input, gradOutput):
        self._check_grad(input, gradOutput)
        self.gradInput.resizeAs(self.output)
        if self.gradInput.is_meta():
            return self.gradInput
        shape = _frames(self.output)
        gia, za, ga = array_of(self.gradInput, shape), array_of(self.output, shape), array_of(gradOutput, shape)
        xp = xpof(gia)
        for f in _frame_chunks(shape[0], shape[2]):
            gi, z, g = gia[f], za[f], ga[f]
            s = g.sum(axis=1, keepdims=True)  # g - exp(z) * sum(g)
            xp.exp(z, out=gi)
            gi *= s
            xp.subtract(g, gi, out=gi)
        return self.gradInput


# --- MulConstant / AddConstant ----------------------------------------------------------------
class MulConstant(Module):
    """y = x * constant_scalar; in place: input is scaled and output set to it (and restored
    by updateGradInput, which scales gradOutput in place)."""

    def __init__(self, constant_scalar, ip=False):
        super().__init__()
        if not _is_number(constant_scalar):
            raise ValueError('nn.MulConstant: input is not scalar! (got %r)' % (constant_scalar,))
        self.constant_scalar = constant_scalar
        self.inplace = _check_inplace_flag(ip)

    @lowbuf
    def updateOutput(self, input):
        check_tensor(self, input)
        c = self.constant_scalar
        if self.inplace:
            if not input.is_meta():
                x = input.numpy()
                x *= c
            self.output.set(input)
            return self.output
        self.output.resizeAs(input)
        if self.output.is_meta():
            return self.output
        out = self.output.numpy()
        xpof(out).multiply(input.numpy(), c, out=out)
        return self.output

    @lowbuf
    def updateGradInput(self, input, gradOutput):
        if self.__dict__.get('gradInput') is None:
            return None
        check_tensor(self, input)
        check_tensor(self, gradOutput, 'gradOutput')
        c = self.constant_scalar
        if self.inplace:
            if not gradOutput.is_meta():
                g = gradOutput.numpy()
                g *= c
                x = input.numpy()
                x /= c                    # restore the input
            self.gradInput.set(gradOutput)
            return self.gradInput
        self.gradInput.resizeAs(gradOutput)
        if self.gradInput.is_meta():
            return self.gradInput
        gi = self.gradInput.numpy()
        xpof(gi).multiply(gradOutput.numpy(), c, out=gi)
        return self.gradInput


class AddConstant(Module):
    """y = x + constant_scalar (a number, or a 1-D tensor matching the last dim of 1D/2D input)."""

    def __init__(self, constant_scalar, ip=False):
        super().__init__()
        if not (_is_number(constant_scalar) or isinstance(constant_scalar, Tensor)):
            raise ValueError('nn.AddConstant: a number or a Tensor expected, got %r' % (constant_scalar,))
        self.constant_scalar = constant_scalar
        self.inplace = _check_inplace_flag(ip)

    def _constant(self, input):
        c = self.constant_scalar
        if isinstance(c, Tensor):
            if not (input.dim() <= 2 and input.dim() >= 1 and c.dim() == 1
                    and input.size(input.dim()) == c.size(1)):
                self._fail("input matching the constant's %d elements in its last dim (1D or 2D)"
                           % c.nElement(), input)
        return c

    @staticmethod
    def _value(c, arr):
        return c.numpy() if isinstance(c, Tensor) else c

    @lowbuf
    def updateOutput(self, input):
        check_tensor(self, input)
        c = self._constant(input)
        if self.inplace:
            if not input.is_meta():
                x = input.numpy()
                x += self._value(c, x)
            self.output.set(input)
            return self.output
        self.output.resizeAs(input)
        if self.output.is_meta():
            return self.output
        out = self.output.numpy()
        xpof(out).add(input.numpy(), self._value(c, out), out=out)
        return self.output

    @lowbuf
    def updateGradInput(self, input, gradOutput):
        check_tensor(self, input)
        check_tensor(self, gradOutput, 'gradOutput')
        if self.inplace:
            self.gradInput.set(gradOutput)
            if not input.is_meta():
                x = input.numpy()
                x -= self._value(self.constant_scalar, x)   # restore the input
            return self.gradInput
        self.gradInput.resizeAs(gradOutput)
        if self.gradInput.is_meta():
            return self.gradInput
        self.gradInput.copy(gradOutput)
        return self.gradInput


# --- Dropout -------------------------------------------------------------------------------------
def _bernoulli(t, p):
    """t[i] = 1 with probability p else 0, from Torch's random stream (as Lua's
    noise:bernoulli(1 - p)), so that a ported script draws Lua's masks."""
    if t.is_meta() or t.nElement() == 0:
        return t
    return t.bernoulli(p)


class Dropout(Module):
    """Lua nn.Dropout (v2 by default: scales by 1/(1-p) at training time). Fields p, train,
    inplace, stochastic_inference, v2, noise (the mask of the last training forward)."""

    def __init__(self, p=0.5, v1=False, inplace=False, stochasticInference=False):
        super().__init__()
        self.p = 0.5 if p is None else p
        if not _is_number(self.p):
            raise ValueError('nn.Dropout: p must be a number, got %r' % (p,))
        self.train = True
        self.inplace = inplace
        self.stochastic_inference = stochasticInference or False
        self.v2 = not v1
        if self.p >= 1 or self.p < 0:
            raise ValueError('<Dropout> illegal percentage, must be 0 <= p < 1 (got %r)' % (self.p,))
        self.noise = Tensor()

    @lowbuf
    def updateOutput(self, input):
        check_tensor(self, input)
        if self.inplace:
            self.output.set(input)
        else:
            self.output.resizeAs(input).copy(input)
        if self.p > 0:
            if self.train or self.stochastic_inference:
                self.noise.resizeAs(input)
                _bernoulli(self.noise, 1 - self.p)
                if self.output.is_meta():
                    return self.output
                noise = self.noise.numpy()
                if self.v2:
                    noise /= (1 - self.p)
                out = self.output.numpy()
                out *= noise
            elif not self.v2 and not self.output.is_meta():
                out = self.output.numpy()
                out *= (1 - self.p)
        return self.output

    @lowbuf
    def updateGradInput(self, input, gradOutput):
        check_tensor(self, gradOutput, 'gradOutput')
        if self.train and self.p > 0 and self.noise.nElement() != gradOutput.nElement():
            self._fail('gradOutput with %d elements (as the noise of the last forward)'
                       % self.noise.nElement(), gradOutput)
        if self.inplace:
            self.gradInput.set(gradOutput)
        else:
            self.gradInput.resizeAs(gradOutput).copy(gradOutput)
        if self.gradInput.is_meta():
            return self.gradInput
        if self.train:
            if self.p > 0:
                gi = self.gradInput.numpy()
                gi *= array_of(self.noise, gi.shape)
        elif not self.v2 and self.p > 0:
            gi = self.gradInput.numpy()
            gi *= (1 - self.p)
        return self.gradInput

    def setp(self, p):
        self.p = p

    def __tostring__(self):
        return '%s(%f)' % (self.__typename__, self.p)

    def clearState(self):
        if self.__dict__.get('noise') is not None:
            self.noise.set()
        return super().clearState()


# The rest of the pointwise family lives in pointwise.py and rectifier.py; importing it here
# exports it with this family (pynn/nn/__init__.py scans activation).
from .pointwise import (Abs, Exp, GatedLinearUnit, HardShrink, Log, LogSigmoid, Power,  # noqa: E402,F401
                        SoftMin, SoftPlus, SoftShrink, SoftSign, SpatialLogSoftMax, SpatialSoftMax,
                        Sqrt, Square, TanhShrink)
from .rectifier import Clamp, CReLU, ELU, HardTanh, LeakyReLU, PReLU, ReLU6, RReLU  # noqa: E402,F401
