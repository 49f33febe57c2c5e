"""Criteria on a pair of inputs {x1, x2} (Lua tables: Python lists): CosineEmbeddingCriterion,
L1HingeEmbeddingCriterion, MarginRankingCriterion, DistanceRatioCriterion (Lua nn semantics,
buffers and fields as Lua's; see criterion_base for the conventions)."""

from ..tensor import Tensor, generator
from .module import Criterion
from .criterion_base import fail, error, sizestr, is_number, is_float_tensor, xpof, arr_as, meta_any


def _pair(crit, input, same_size=True, dims=None):
    if not isinstance(input, (list, tuple)) or len(input) != 2 \
            or not all(is_float_tensor(t) for t in input):
        fail(crit, 'a table of two floating-point tensors {x1, x2}', input)
    a, b = input
    if a.type() != b.type():
        fail(crit, 'x1 and x2 of one type (x1 is %s)' % a.type(), b)
    if same_size and a.size() != b.size():
        fail(crit, 'x2 of the size of x1 (%s)' % sizestr(a), b)
    if not same_size and a.nElement() != b.nElement():
        fail(crit, 'x2 with as many elements as x1 (%d)' % a.nElement(), b)
    if dims is not None and a.dim() not in dims:
        fail(crit, 'x1 and x2 of %s dimensions' % ' or '.join(map(str, dims)), a)
    return a, b


def _grad_pair(crit, template):
    """Lua's gradInput table {Tensor, Tensor}, recreated if a file or user replaced it."""
    g = crit.__dict__.get('gradInput')
    if not (isinstance(g, list) and len(g) == 2 and all(isinstance(t, Tensor) for t in g)):
        g = crit.gradInput = [template.new(), template.new()]
    return g


class CosineEmbeddingCriterion(Criterion):
    """1 - cos(x1, x2) where y == 1, max(0, cos(x1, x2) - margin) where y == -1; x1, x2 are
    vectors (one pair) or N x D batches, y a tensor of N labels (or a number for one pair).
    Summed, divided by y:size(1) with sizeAverage. Lua's buffers (buffer, w1, w22, w, w32,
    _outputs, _idx) are kept; the backward reads the forward's."""

    def __init__(self, margin=None):
        super().__init__()
        self.margin = 0 if margin is None else margin
        self.gradInput = [Tensor(), Tensor()]
        self.sizeAverage = True

    def _label(self, x1, y, n):
        if is_number(y):
            if n != 1:
                fail(self, 'y as a tensor of %d labels (a number y is for one pair)' % n, y)
            if self.__dict__.get('_y') is None:
                self._y = x1.new(1)
            if not self._y.is_meta():
                self._y[1] = y
            return self._y
        if not isinstance(y, Tensor) or y.nElement() != n:
            fail(self, 'y as a tensor of %d labels' % n, y)
        return y

    def updateOutput(self, input, y):
        x1, x2 = _pair(self, input, dims=(1, 2))
        if x1.dim() == 1:
            x1, x2 = x1.view(1, -1), x2.view(1, -1)
        n = x1.size(1)
        y = self._label(x1, y, n)
        if self.__dict__.get('buffer') is None:
            for f in ('buffer', 'w1', 'w22', 'w', 'w32', '_outputs'):
                setattr(self, f, x1.new())
            self._idx = Tensor(kind='Byte') if x1.device != 'cuda' else x1.new()
        self.buffer.resizeAs(x1)
        for f in ('w1', 'w22', 'w', 'w32', '_outputs'):
            getattr(self, f).resize(n, 1)
        full = self._outputs
        self._outputs = full.select(2, 1)
        self._idx.resize(y.size())
        if meta_any(x1, x2, y, self.buffer):
            self.output = 0.0
            return self.output
        a, b = x1.numpy(), x2.numpy()
        xp = xpof(a)
        eps = 1e-12
        buf, w1, w22, w, w32 = (t.numpy() for t in (self.buffer, self.w1, self.w22, self.w, self.w32))
        xp.multiply(a, b, out=buf)
        buf.sum(1, keepdims=True, out=w1)
        xp.multiply(a, a, out=buf)
        buf.sum(1, keepdims=True, out=w22)
        w22 += eps
        xp.divide(1, w22, out=w22)
        xp.multiply(b, b, out=buf)
        buf.sum(1, keepdims=True, out=w32)
        w32 += eps
        xp.divide(1, w32, out=w32)
        xp.multiply(w22, w32, out=w)
        xp.sqrt(w, out=w)
        out = full.numpy()
        xp.multiply(w1, w, out=out)
        o = out[:, 0]
        ya = arr_as(y, o.shape)
        neg = ya == -1
        o[neg] = xp.maximum(o[neg] - o.dtype.type(self.margin), 0)
        pos = ya == 1
        o[pos] = -o[pos] + 1
        self._idx.numpy()[...] = pos.reshape(self._idx.numpy().shape)
        s = float(o.sum())
        if self.sizeAverage:
            s /= y.size(1)
        self.output = s
        return self.output

    def updateGradInput(self, input, y):
        v1, v2 = _pair(self, input, dims=(1, 2))
        not_batch = v1.dim() == 1
        if not_batch:
            v1, v2 = v1.view(1, -1), v2.view(1, -1)
        n = v1.size(1)
        if is_number(y):
            if self.__dict__.get('_y') is None:
                error(self, 'a number y in backward needs a forward with a number y first')
        y = self._label(v1, y, n)
        w1 = self.__dict__.get('w1')
        if not isinstance(w1, Tensor) or w1.size() != (n, 1) or self._outputs.size() != (n,):
            error(self, 'backward needs a forward on inputs of this size first')
        gw1, gw2 = _grad_pair(self, v1)
        gw1.resizeAs(v1)
        gw2.resizeAs(v1)
        self.buffer.resize(n, 1)
        mask_src = self._idx
        if not meta_any(v1, v2, y, gw1, self.buffer):
            a, b = v1.numpy(), v2.numpy()
            xp = xpof(a)
            g1, g2, buf = gw1.numpy(), gw2.numpy(), self.buffer.numpy()
            w1a, w = self.w1.numpy(), self.w.numpy()
            xp.multiply(w1a, self.w22.numpy(), out=buf)
            xp.subtract(b, buf * a, out=g1)
            g1 *= w
            xp.multiply(w1a, self.w32.numpy(), out=buf)
            xp.subtract(a, buf * b, out=g2)
            g2 *= w
            zero = self._outputs.numpy() <= 0
            g1[zero] = 0
            g2[zero] = 0
            pos = arr_as(y, (n,)) == 1
            g1[pos] *= -1
            g2[pos] *= -1
            if self.sizeAverage:
                g1 /= y.size(1)
                g2 /= y.size(1)
            mask_src.numpy()[...] = pos.reshape(mask_src.numpy().shape)
        # Lua leaves _idx as the y == 1 mask expanded over the rows
        self._idx = mask_src._view_of(mask_src._offset, (n, v1.size(2)), (1, 0)) \
            if mask_src.nElement() == n else mask_src
        if not_batch:
            gw1.resize(v1.size(2))
            gw2.resize(v1.size(2))
        return self.gradInput

    def type(self, name=None, tensorCache=None):
        if name is None:
            return super().type()
        self.__dict__.pop('_idx', None)
        super().type(name, tensorCache)
        self._idx = Tensor(kind='Float', device='cuda') if 'Cuda' in name else Tensor(kind='Byte')
        return self


class L1HingeEmbeddingCriterion(Criterion):
    """||x1 - x2||_1 for y == 1 (similar), max(0, margin - ||x1 - x2||_1) for y == -1; y is a
    number and, as in Lua, anything but -1 counts as similar. Where x1 == x2 the L1 gradient's
    sign is drawn at random (+-1), as Lua's mathsign does (pynn's generator)."""

    def __init__(self, margin=None):
        super().__init__()
        self.margin = 1 if margin is None else margin
        self.gradInput = [Tensor(), Tensor()]

    def updateOutput(self, input, y):
        a, b = _pair(self, input, same_size=False)
        if meta_any(a, b):
            self.output = 0.0
            return self.output
        xa, xb = a.numpy(), arr_as(b, a.size())
        d = float(xpof(xa).abs(xa - xb).sum()) if xa.size else 0.0
        if is_number(y) and y == -1:
            d = float(max(0.0, self.margin - d))
        self.output = d
        return self.output

    def updateGradInput(self, input, y):
        a, b = _pair(self, input, same_size=False)
        g1, g2 = _grad_pair(self, a)
        g1.resizeAs(a)
        g2.resizeAs(b)
        if meta_any(a, b, g1):
            return self.gradInput
        ga = g1.numpy()
        xp = xpof(ga)
        xp.subtract(a.numpy(), arr_as(b, ga.shape), out=ga)
        dist = float(xp.abs(ga).sum()) if ga.size else 0.0
        zero = ga == 0
        xp.sign(ga, out=ga)
        nz = int(zero.sum())
        if nz:
            draws = generator().integers(1, 3, nz) * 2 - 3
            ga[zero] = xp.asarray(draws.astype(ga.dtype))
        if is_number(y) and y == -1:
            if dist > self.margin:
                ga[...] = 0
            else:
                ga *= -1
        gb = g2.numpy()
        xp.negative(arr_as(g1, gb.shape), out=gb)
        gb += 0  # -0.0 -> 0.0, as Lua's zero():add(-1, g)
        return self.gradInput


class MarginRankingCriterion(Criterion):
    """max(0, -y (x1 - x2) + margin): a number y with one-element x1, x2 (non-batch), or a
    tensor y with x1, x2 of its size (batch; summed, divided by y:size(1) with sizeAverage).
    Batch buffers `_output`, `dist`, `mask` as Lua. Non-batch backward resizes the gradients to
    one element (Lua writes the first element of whatever size they had)."""

    def __init__(self, margin=None):
        super().__init__()
        self.margin = 1 if margin is None else margin
        self.gradInput = [Tensor(1), Tensor(1)]
        self.sizeAverage = True

    def _check(self, input, y):
        if is_number(y):
            a, b = _pair(self, input, same_size=False)
            if a.dim() != 1 or b.dim() != 1:
                fail(self, 'one-element vectors x1, x2 for a number y', a)
            return a, b
        a, b = _pair(self, input)
        if not isinstance(y, Tensor) or y.type() != a.type() or y.nElement() != a.nElement():
            fail(self, 'y as a %s of %d elements (or a number)' % (a.type(), a.nElement()), y)
        return a, b

    def updateOutput(self, input, y):
        a, b = self._check(input, y)
        if is_number(y):
            if meta_any(a, b):
                self.output = 0.0
                return self.output
            d = float(a.numpy().reshape(-1)[0]) - float(b.numpy().reshape(-1)[0])
            self.output = float(max(0.0, -y * d + self.margin))
            return self.output
        if self.__dict__.get('_output') is None:
            self._output = a.clone()
        self._output.resizeAs(a)
        if meta_any(a, b, y, self._output):
            self.output = 0.0
            return self.output
        o = self._output.numpy()
        xp = xpof(o)
        xp.subtract(a.numpy(), b.numpy(), out=o)
        xp.negative(o, out=o)
        o *= arr_as(y, o.shape)
        o += o.dtype.type(self.margin)
        xp.maximum(o, 0, out=o)
        s = float(o.sum())
        if self.sizeAverage:
            s /= y.size(1)
        self.output = s
        return self.output

    def updateGradInput(self, input, y):
        a, b = self._check(input, y)
        g1, g2 = _grad_pair(self, a)
        if is_number(y):
            g1.resize(1)
            g2.resize(1)
            if meta_any(a, b, g1):
                return self.gradInput
            d = -y * (float(a.numpy().reshape(-1)[0]) - float(b.numpy().reshape(-1)[0])) + self.margin
            g1[1], g2[1] = (0, 0) if d < 0 else (-y, y)
            return self.gradInput
        for f in ('dist', 'mask'):
            if self.__dict__.get(f) is None:
                setattr(self, f, a.new())
        self.dist.resizeAs(a)
        self.mask.resizeAs(a)
        g1.resize(*a.size())
        g2.resize(*a.size())
        if meta_any(a, b, y, self.dist, g1):
            return self.gradInput
        d, m = self.dist.numpy(), self.mask.numpy()
        xp = xpof(d)
        ya = arr_as(y, d.shape)
        xp.subtract(a.numpy(), b.numpy(), out=d)
        xp.negative(d, out=d)
        d *= ya
        d += d.dtype.type(self.margin)
        m[...] = d >= 0
        ga, gb = g1.numpy(), g2.numpy()
        ga[...] = -m
        ga *= ya
        gb[...] = m
        gb *= ya
        if self.sizeAverage:
            ga /= y.size(1)
            gb /= y.size(1)
        return self.gradInput


class DistanceRatioCriterion(Criterion):
    """Triplet ratio loss X + log(exp(-X) + exp(-Y)) for input {X, Y} (distances to the similar
    and the dissimilar sample; no target), summed, divided by X:size(1) with sizeAverage.
    As in Lua, forward only returns the loss (the `output` field is not set) and backward
    returns the table {dX, dY} (fields dX, dY; the `gradInput` field is not set)."""

    def __init__(self, sizeAverage=None):
        super().__init__()
        self.sizeAverage = True if sizeAverage is None else sizeAverage

    def _check(self, input):
        X, Y = _pair(self, input, same_size=False)
        if X.dim() == 0 or Y.dim() == 0 or X.size(1) != Y.size(1):
            fail(self, "Y with X's first size (%s)" % (X.size(1) if X.dim() else 'empty'), Y)
        return X, Y

    def forward(self, input, target=None):
        return self.updateOutput(input, target)

    def backward(self, input, target=None):
        return self.updateGradInput(input, target)

    def updateOutput(self, input, target=None):
        X, Y = self._check(input)
        if self.__dict__.get('_expMinusX') is None:
            self._expMinusX = X.new()
        if self.__dict__.get('_expMinusY') is None:
            self._expMinusY = Y.new()
        self._expMinusX.resizeAs(X)
        self._expMinusY.resizeAs(Y)
        self._sumExpMinusXY = X.new().resizeAs(X)  # Lua makes a new one per call
        if self.__dict__.get('_logSumExpMinusXY') is None:
            self._logSumExpMinusXY = X.new()
        self._logSumExpMinusXY.resizeAs(X)
        if self.__dict__.get('loss') is None:
            self.loss = X.new()
        self.loss.resizeAs(X)
        if meta_any(X, Y, self.loss):
            return 0.0
        ex, ey = self._expMinusX.numpy(), self._expMinusY.numpy()
        xp = xpof(ex)
        xa = X.numpy()
        xp.negative(xa, out=ex)
        xp.exp(ex, out=ex)
        xp.negative(Y.numpy(), out=ey)
        xp.exp(ey, out=ey)
        s = self._sumExpMinusXY.numpy()
        xp.add(ex, arr_as(self._expMinusY, ex.shape), out=s)
        ls = self._logSumExpMinusXY.numpy()
        xp.log(s, out=ls)
        loss = self.loss.numpy()
        xp.add(xa, ls, out=loss)
        total = float(loss.sum())
        return total / X.size(1) if self.sizeAverage else total

    def updateGradInput(self, input, target=None):
        X, Y = self._check(input)
        ex, ey, s = (self.__dict__.get(f) for f in ('_expMinusX', '_expMinusY', '_sumExpMinusXY'))
        if not all(isinstance(t, Tensor) for t in (ex, ey, s)) or ex.size() != X.size() \
                or ey.size() != Y.size():
            error(self, 'backward needs a forward on inputs of this size first')
        if self.__dict__.get('dX') is None:
            self.dX = X.new()
        if self.__dict__.get('dY') is None:
            self.dY = Y.new()
        self.dX.resizeAs(ex)
        self.dY.resizeAs(ey)
        if meta_any(X, Y, self.dX, ex):
            return [self.dX, self.dY]
        dx, dy = self.dX.numpy(), self.dY.numpy()
        xp = xpof(dx)
        sa = s.numpy()
        xp.negative(ex.numpy(), out=dx)
        dx /= sa
        dx += 1
        xp.negative(ey.numpy(), out=dy)
        dy /= arr_as(s, dy.shape)
        if self.sizeAverage:
            dx /= X.size(1)
            dy /= X.size(1)
        return [self.dX, self.dY]

    def type(self, name=None, tensorCache=None):
        if name is None:
            return super().type()
        for f in ('_expMinusX', '_expMinusY', '_sumExpMinusXY', '_logSumExpMinusXY', 'loss', 'dX', 'dY'):
            self.__dict__.pop(f, None)
        return super().type(name, tensorCache)
