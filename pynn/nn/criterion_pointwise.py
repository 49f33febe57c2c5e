"""Element-wise criteria (Lua nn + THNN semantics): MSECriterion, AbsCriterion, SmoothL1Criterion,
BCECriterion, DistKLDivCriterion, MarginCriterion, SoftMarginCriterion, L1Cost,
HingeEmbeddingCriterion, MultiLabelSoftMarginCriterion, WeightedMSECriterion,
SpatialAutoCropMSECriterion, ClassSimplexCriterion.

THNN's element-wise criteria only need the target to hold as many elements as the input (both
are read in their logical order) and of the input's type. sizeAverage divides by the input's
element count. See criterion_base for validation, meta and float32 conventions.
"""
import numpy as np

from ..tensor import Tensor
from .module import Criterion
from .criterion_base import (fail, error, sizestr, is_number, is_float_tensor, check_input,
                             check_target, check_same_size, xpof, arr_as, set_output, average,
                             class_values, number_class, weight_array, check_weights)


class _Elementwise(Criterion):
    """A THNN element-wise criterion: subclasses give the summed loss and the gradient."""

    def __init__(self, sizeAverage=None):
        super().__init__()
        self.sizeAverage = True if sizeAverage is None else sizeAverage

    def _check(self, input, target):
        check_input(self, input)
        check_target(self, input, target)

    def _loss(self, x, t, xp):  # sum of the per-element losses
        raise NotImplementedError

    def _grad(self, x, t, g, norm, xp):  # write the gradient into g
        raise NotImplementedError

    _norm = 1.0

    def updateOutput(self, input, target):
        self._check(input, target)
        if input.is_meta() or target.is_meta():
            return set_output(self, input, None)
        x = input.numpy()
        s = float(self._loss(x, arr_as(target, x.shape), xpof(x))) if x.size else 0.0
        return set_output(self, input, average(s, input.nElement(), self.sizeAverage))

    def updateGradInput(self, input, target):
        self._check(input, target)
        self.gradInput.resizeAs(input)
        if self.gradInput.is_meta() or target.is_meta():
            return self.gradInput
        n = input.nElement()
        norm = self._norm / n if self.sizeAverage and n else self._norm
        g = self.gradInput.numpy()
        self._grad(input.numpy(), arr_as(target, g.shape), g, g.dtype.type(norm), xpof(g))
        return self.gradInput


class MSECriterion(_Elementwise):
    """Mean (sizeAverage) or sum of squared differences; target needs the input's element count."""
    _norm = 2.0

    def _loss(self, x, t, xp):
        d = (x - t).reshape(-1)
        return xp.vdot(d, d)

    def _grad(self, x, t, g, norm, xp):
        xp.subtract(x, t, out=g)
        g *= norm


class AbsCriterion(_Elementwise):
    """sum |x - y| (mean with sizeAverage); gradient +-norm, +norm where x == y (THNN's >= 0)."""

    def _loss(self, x, t, xp):
        d = x - t
        return xp.abs(d, out=d).sum()

    def _grad(self, x, t, g, norm, xp):
        xp.subtract(x, t, out=g)
        xp.copyto(g, xp.where(g >= 0, norm, -norm).astype(g.dtype))


class SmoothL1Criterion(_Elementwise):
    """Huber loss with threshold 1: 0.5 z^2 where |z| < 1, |z| - 0.5 elsewhere."""

    def _loss(self, x, t, xp):
        z = xp.abs(x - t)
        return xp.where(z < 1, 0.5 * z * z, z - 0.5).sum()

    def _grad(self, x, t, g, norm, xp):
        xp.subtract(x, t, out=g)
        xp.clip(g, -1, 1, out=g)
        g *= norm


class BCECriterion(_Elementwise):
    """Binary cross-entropy -(y log(x + eps) + (1 - y) log(1 - x + eps)), eps = 1e-12, optional
    `weights` (1-D; for a 2-D target one weight per column, as Lua's view/expandAs). Inputs
    outside [0, 1] raise (THNN asserts)."""
    EPS = 1e-12

    def __init__(self, weights=None, sizeAverage=None):
        super().__init__(sizeAverage)
        if weights is not None:
            if not isinstance(weights, Tensor) or weights.dim() != 1:
                raise ValueError('nn.BCECriterion: weights input should be 1-D Tensor')
            self.weights = weights

    def _check(self, input, target):
        super()._check(input, target)
        check_weights(self, self.__dict__.get('weights'), target, input.nElement())
        if not input.is_meta() and input.nElement():
            x = input.numpy()
            xp = xpof(x)
            bad = (x < 0) | (x > 1) | xp.isnan(x)
            if bool(bad.any()):
                v = float(x[bad].reshape(-1)[0])
                error(self, 'expected input values between 0 and 1, got %f' % v)

    def _w(self, target, n):
        w = self.__dict__.get('weights')
        return None if w is None else weight_array(self, w, target, n)

    def updateOutput(self, input, target):
        self._check(input, target)
        if input.is_meta() or target.is_meta():
            return set_output(self, input, None)
        x = input.numpy().reshape(-1)
        y = arr_as(target, x.shape)
        xp = xpof(x)
        eps = self.EPS
        terms = xp.log(x + eps) * y + xp.log(1. - x + eps) * (1. - y)
        w = self._w(target, x.size)
        if w is not None:
            terms *= w
        s = -float(terms.sum()) if x.size else 0.0
        return set_output(self, input, average(s, x.size, self.sizeAverage))

    def updateGradInput(self, input, target):
        self._check(input, target)
        self.gradInput.resizeAs(input)
        if self.gradInput.is_meta() or target.is_meta():
            return self.gradInput
        n = input.nElement()
        norm = 1. / n if self.sizeAverage and n else 1.
        g = self.gradInput.numpy()
        x = input.numpy().reshape(g.shape)
        y = arr_as(target, g.shape)
        eps = self.EPS
        g[...] = -norm * (y - x) / ((1. - x + eps) * (x + eps))
        w = self._w(target, n)
        if w is not None:
            g *= w.reshape(g.shape)
        return self.gradInput


class DistKLDivCriterion(_Elementwise):
    """KL divergence for log-probability inputs: sum over y > 0 of y (log y - x)."""

    def __init__(self):
        super().__init__()

    def _check(self, input, target):
        check_input(self, input)
        check_same_size(self, input, target)

    def _loss(self, x, t, xp):
        pos = t > 0
        return xp.where(pos, t * (xp.log(xp.where(pos, t, 1)) - x), 0).sum()

    def _grad(self, x, t, g, norm, xp):
        xp.copyto(g, xp.where(t > 0, norm * -t, 0).astype(g.dtype))


class MarginCriterion(_Elementwise):
    """Two-class hinge loss max(0, margin - x y); `margin` defaults to 1."""

    def __init__(self, margin=None):
        super().__init__()
        self.margin = 1 if margin is None else margin

    def _m(self, x):
        return x.dtype.type(self.margin)

    def _loss(self, x, t, xp):
        z = self._m(x) - x * t
        return xp.maximum(z, 0).sum()

    def _grad(self, x, t, g, norm, xp):
        xp.copyto(g, xp.where(x * t < self._m(x), -norm * t, 0).astype(g.dtype))


class SoftMarginCriterion(_Elementwise):
    """Two-class logistic loss log(1 + exp(-x y))."""

    def __init__(self):
        super().__init__()

    def _loss(self, x, t, xp):
        with np.errstate(over='ignore'):
            return xp.log(1. + xp.exp(-x * t)).sum()

    def _grad(self, x, t, g, norm, xp):
        with np.errstate(over='ignore', invalid='ignore'):
            z = xp.exp(-t * x)
            g[...] = -norm * t * z / (1. + z)


class L1Cost(Criterion):
    """sum |x| (no target, no sizeAverage); gradient sign(x)."""

    def __init__(self):
        super().__init__()

    def forward(self, input, target=None):
        return self.updateOutput(input, target)

    def backward(self, input, target=None):
        return self.updateGradInput(input, target)

    def updateOutput(self, input, target=None):
        check_input(self, input)
        if input.is_meta():
            return set_output(self, input, None)
        x = input.numpy()
        return set_output(self, input, float(xpof(x).abs(x).sum()) if x.size else 0.0)

    def updateGradInput(self, input, target=None):
        check_input(self, input)
        self.gradInput.resizeAs(input)
        if self.gradInput.is_meta():
            return self.gradInput
        g = self.gradInput.numpy()
        xpof(g).sign(input.numpy(), out=g)
        return self.gradInput

    def clearState(self):
        ot = self.__dict__.get('output_tensor')
        if isinstance(ot, Tensor):
            ot.set()
        self.gradInput.set()
        return self


class HingeEmbeddingCriterion(Criterion):
    """x where y == 1, max(0, margin - x) where y == -1 (both where y is anything else, as Lua's
    masks do), summed; divided by the element count unless sizeAverage is false. y: a tensor of
    the input's element count, or a number (Lua keeps it in `ty`, one element: a one-element
    input then)."""

    def __init__(self, margin=None):
        super().__init__()
        self.margin = 1 if margin is None else margin
        self.sizeAverage = True

    def _check(self, input, y):
        if not is_float_tensor(input):
            fail(self, 'a floating-point input tensor', input)
        if is_number(y):
            if input.nElement() != 1:
                fail(self, 'a tensor y of %d elements (a number y needs a one-element input)'
                     % input.nElement(), y)
        elif not isinstance(y, Tensor) or y.nElement() != input.nElement():
            fail(self, 'y as a tensor of %d elements (input %s)' % (input.nElement(), sizestr(input)), y)

    def _y(self, input, y):
        if isinstance(y, Tensor):
            return y
        if self.__dict__.get('ty') is None:
            self.ty = input.new().resize(1)
        if not self.ty.is_meta():
            self.ty[1] = y
        return self.ty

    def _avg(self):
        sa = self.__dict__.get('sizeAverage')
        return sa is None or sa is True

    def updateOutput(self, input, y):
        self._check(input, y)
        if self.__dict__.get('buffer') is None:
            self.buffer = input.new()
        y = self._y(input, y)
        self.buffer.resizeAs(input)
        if input.is_meta() or y.is_meta() or self.buffer.is_meta():
            self.output = 0.0
            return self.output
        x = input.numpy()
        xp = xpof(x)
        ya = arr_as(y, x.shape)
        b = self.buffer.numpy()
        xp.subtract(x.dtype.type(self.margin), x, out=b)
        xp.maximum(b, 0, out=b)
        b[ya == 1] = 0
        s = float(xp.where(ya == -1, 0, x).sum()) + float(b.sum())
        if self._avg():
            s = s / input.nElement() if input.nElement() else float('nan')
        self.output = s
        return self.output

    def updateGradInput(self, input, y):
        self._check(input, y)
        if not isinstance(y, Tensor):
            if self.__dict__.get('ty') is None:
                error(self, 'a number y in backward needs a forward with a number y first')
            y = self._y(input, y)
        self.gradInput.resizeAs(input)
        if self.gradInput.is_meta() or y.is_meta():
            return self.gradInput
        g = self.gradInput.numpy()
        x = input.numpy().reshape(g.shape)
        ya = arr_as(y, g.shape)
        g[...] = ya
        g[(ya == -1) & (x > self.margin)] = 0
        if self._avg():
            g *= g.dtype.type(1 / input.nElement())
        return self.gradInput


class MultiLabelSoftMarginCriterion(Criterion):
    """Sigmoid cross-entropy, stable form: log(1 + exp(x - 2 x [x >= 0])) - x (y - [x >= 0]),
    optional per-class `weights`, the mean over all elements with sizeAverage. Keeps Lua's
    `sigmoid` (nn.Sigmoid, whose output the backward reads), `_buffer1`, `_buffer2`."""

    def __init__(self, weights=None, sizeAverage=None):
        super().__init__()
        from .activation import Sigmoid
        self.sizeAverage = True if sizeAverage is None else sizeAverage
        if weights is not None:
            if not isinstance(weights, Tensor) or weights.dim() != 1:
                raise ValueError('nn.MultiLabelSoftMarginCriterion: weights input should be 1-D Tensor')
            self.weights = weights
        self.sigmoid = Sigmoid()

    def _check(self, input, target):
        if not is_float_tensor(input):
            fail(self, 'a floating-point input tensor', input)
        check_target(self, input, target)
        if not input.isContiguous() or not target.isContiguous():
            fail(self, 'contiguous input and target (Lua views them as vectors)',
                 input if not input.isContiguous() else target)
        check_weights(self, self.__dict__.get('weights'), target, input.nElement())

    def updateOutput(self, input, target):
        self._check(input, target)
        n = input.nElement()
        x = input.view(n)
        self.sigmoid.updateOutput(x)
        if self.__dict__.get('_buffer1') is None:
            self._buffer1 = input.new()
        if self.__dict__.get('_buffer2') is None:
            self._buffer2 = input.new()
        self._buffer1.resize(n)
        self._buffer2.resize(n)
        if input.is_meta() or target.is_meta() or self._buffer1.is_meta():
            self.output = 0.0
            return self.output
        xa = x.numpy()
        t = target.numpy().reshape(-1)
        xp = xpof(xa)
        b1, b2 = self._buffer1.numpy(), self._buffer2.numpy()
        b1[...] = xa >= 0
        xp.multiply(xa, b1, out=b2)
        b2 *= -2
        b2 += xa
        with np.errstate(over='ignore'):
            xp.exp(b2, out=b2)
        b2 += 1
        xp.log(b2, out=b2)
        b1 *= -1
        b1 += t
        b1 *= xa
        b2 -= b1
        w = self.__dict__.get('weights')
        if w is not None:
            b2 *= weight_array(self, w, target, n)
        s = float(b2.sum()) if n else 0.0
        if self.sizeAverage:
            s = s / n if n else float('nan')
        self.output = s
        return self.output

    def updateGradInput(self, input, target):
        self._check(input, target)
        so = self.sigmoid.output
        if not isinstance(so, Tensor) or so.nElement() != input.nElement():
            error(self, 'backward needs a forward on an input of the same size first')
        self.gradInput.resizeAs(input)
        if self.gradInput.is_meta() or target.is_meta() or so.is_meta():
            return self.gradInput
        g = self.gradInput.numpy()
        xp = xpof(g)
        xp.subtract(arr_as(so, g.shape), arr_as(target, g.shape), out=g)
        w = self.__dict__.get('weights')
        if w is not None:
            g *= weight_array(self, w, target, g.size).reshape(g.shape)
        if self.sizeAverage:
            g /= target.nElement()
        return self.gradInput


class WeightedMSECriterion(MSECriterion):
    """MSE against target * weight: `weight` (a clone of w) multiplies every sample of a batch
    when the input has one dimension more than it, else the whole target (same element count)."""

    def __init__(self, w):
        super().__init__()
        if not isinstance(w, Tensor):
            raise ValueError('nn.WeightedMSECriterion: expected a weight tensor, got %s' % type(w).__name__)
        self.weight = w.clone()

    def _batched(self, input):
        return input.dim() - 1 == self.weight.dim()

    def _check(self, input, target):
        check_input(self, input)
        if not isinstance(target, Tensor) or target.nElement() != input.nElement():
            fail(self, 'a target of %d elements (input %s)' % (input.nElement(), sizestr(input)), target)
        per = input.nElement() // input.size(1) if self._batched(input) and input.size(1) else input.nElement()
        if self.weight.nElement() != per:
            fail(self, 'an input whose %s has %d elements (the weight\'s)'
                 % ('samples' if self._batched(input) else 'whole', self.weight.nElement()), input)

    def _fill_buffer(self, input, target):
        if self.__dict__.get('buffer') is None:
            self.buffer = input.new()
        self.buffer.resizeAs(input)
        if self.buffer.is_meta() or target.is_meta():
            return None
        self.buffer.copy(target)
        b = self.buffer.numpy()
        w = self.weight.numpy()
        if self._batched(input):
            b.reshape(b.shape[0], -1)[...] *= w.reshape(1, -1)
        else:
            b *= w.reshape(b.shape)
        return b

    def updateOutput(self, input, target):
        self._check(input, target)
        b = self._fill_buffer(input, target)
        if b is None or input.is_meta():
            return set_output(self, input, None)
        x = input.numpy()
        s = float(self._loss(x, b, xpof(x))) if x.size else 0.0
        return set_output(self, input, average(s, x.size, self.sizeAverage))

    def updateGradInput(self, input, target):
        self._check(input, target)
        b = self._fill_buffer(input, target)
        self.gradInput.resizeAs(input)
        if b is None or self.gradInput.is_meta():
            return self.gradInput
        n = input.nElement()
        g = self.gradInput.numpy()
        self._grad(input.numpy(), b, g, g.dtype.type(2.0 / n if self.sizeAverage and n else 2.0), xpof(g))
        return self.gradInput


def _hw(t):
    return (t.size(3), t.size(4)) if t.dim() == 4 else (t.size(2), t.size(3))


class SpatialAutoCropMSECriterion(MSECriterion):
    """MSE of a 3-D/4-D input against the target center-cropped to the input's height and
    width (the target may be larger). The backward needs a target of the input's size, as Lua's
    (it asserts the sizes are equal)."""

    def __init__(self, sizeAverage=None):
        super().__init__(sizeAverage)

    def updateOutput(self, input, target):
        check_input(self, input, (3, 4))
        if not isinstance(target, Tensor) or target.dim() != input.dim():
            fail(self, 'a %dD target' % input.dim(), target)
        (h, w), (th, tw) = _hw(input), _hw(target)
        if h > th or w > tw:
            fail(self, 'a target of spatial size at least %dx%d' % (h, w), target)
        r0, c0 = (th - h) // 2, (tw - w) // 2
        d = target.dim()
        cropped = target.narrow(d - 1, r0 + 1, h).narrow(d, c0 + 1, w)
        return super().updateOutput(input, cropped)

    def updateGradInput(self, input, target):
        check_input(self, input, (3, 4))
        if not isinstance(target, Tensor) or target.size() != input.size():
            fail(self, 'a target of the input size %s in backward (gradOutput and input must have '
                 'the same size)' % sizestr(input), target)
        return super().updateGradInput(input, target)


def regsplex(n):
    """The n+1 vertices (rows) of a regular simplex in R^n centered at the origin, unit norm,
    as Lua's construction builds them: vertex k has a[k][k] = sqrt((n+1)(n-k+1) / (n(n-k+2)))
    (the closed form of Lua's recurrence a[k][k] = sqrt(1 - |a[k][1..k-1]|^2)), and every later
    vertex has c_k = (a[k][k]^2 - 1 - 1/n) / a[k][k] in column k; zeros above the diagonal."""
    k = np.arange(1, n + 1, dtype=np.float64)
    diag = np.sqrt((n + 1) * (n - k + 1) / (n * (n - k + 2)))
    c = (diag ** 2 - 1 - 1 / n) / diag
    rows = np.arange(n + 1)[:, None]
    cols = np.arange(n)[None, :]
    return np.where(rows == cols, diag[None, :], np.where(rows > cols, c[None, :], 0.0))


class ClassSimplexCriterion(MSECriterion):
    """MSE between the input and the target classes' vertices of a regular simplex (`simplex`,
    nClasses x nClasses, the last column zero). Targets: a number (one sample) or a 1-D tensor
    of 1-based classes; they are embedded into `_target`. As in Lua, the backward uses the
    embedding of the last forward's target."""

    def __init__(self, nClasses):
        super().__init__()
        if not (is_number(nClasses) and nClasses > 1 and nClasses == int(nClasses)):
            raise ValueError('nn.ClassSimplexCriterion: Required positive integer argument nClasses > 1')
        nClasses = int(nClasses)
        self.nClasses = nClasses
        from .. import tensor as _t
        simp = regsplex(nClasses - 1)
        full = np.concatenate([simp, np.zeros((nClasses, nClasses - simp.shape[1]))], 1)
        self.simplex = _t.Tensor(nClasses, nClasses)
        self.simplex.copy(_t.from_numpy(full))
        self._target = _t.Tensor(nClasses)

    def _check_target(self, input, target):
        n = self.nClasses
        if is_number(target):
            number_class(self, target, n)
            need = n
        elif isinstance(target, Tensor):
            if target.dim() != 1:
                fail(self, 'a 1-D target tensor (1D tensors only)', target)
            class_values(self, target, n)
            need = target.size(1) * n
        else:
            fail(self, 'a target class number or 1-D tensor', target)
        if input.nElement() != need:
            fail(self, 'an input of %d elements for that target' % need, input)

    def updateOutput(self, input, target):
        check_input(self, input)
        self._check_target(input, target)
        if self._target.type() != input.type():
            fail(self, 'a %s input (convert the criterion with :type())' % self._target.type(), input)
        if is_number(target):
            self._target.resize(self.nClasses)
            if not self._target.is_meta():
                self._target.copy(self.simplex[int(target)])
        else:
            self._target.resize(target.size(1), self.nClasses)
            if not self._target.is_meta() and not target.is_meta():
                idx = target.numpy().astype(np.int64) - 1
                s = self.simplex.numpy()
                self._target.numpy()[...] = s[xpof(s).asarray(idx)]
        if input.is_meta() or self._target.is_meta() or (isinstance(target, Tensor) and target.is_meta()):
            return set_output(self, input, None)
        return MSECriterion.updateOutput(self, input, self._target)

    def updateGradInput(self, input, target):
        check_input(self, input)
        if input.nElement() != self._target.nElement():
            fail(self, 'an input of %d elements (the last forward\'s target embedding)'
                 % self._target.nElement(), input)
        return MSECriterion.updateGradInput(self, input, self._target)

    def getPredictions(self, input):
        x = input.view(1, -1) if input.dim() == 1 else input
        out = x.new(x.size(1), self.nClasses)
        out.numpy()[...] = x.numpy() @ self.simplex.numpy().T
        return out

    def getTopPrediction(self, input):
        p = self.getPredictions(input).numpy()
        from .. import tensor as _t
        res = _t.Tensor(p.shape[0], kind='Long', device=input.device)
        res.numpy()[...] = p.argmax(axis=1) + 1
        return res
