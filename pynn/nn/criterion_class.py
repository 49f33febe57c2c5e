"""Class-index criteria besides ClassNLL: MultiMarginCriterion, MultiLabelMarginCriterion,
SpatialClassNLLCriterion (Lua nn + THNN semantics, 1-based class indices; see criterion_base)."""

from ..tensor import Tensor, zeros, ones
from .module import Criterion
from .criterion_base import (fail, error, sizestr, is_number, check_input, xpof,
                             set_output, class_values, number_class, long_on)


class MultiMarginCriterion(Criterion):
    """Multi-class hinge loss: for each sample, sum over d != y of max(0, margin - x[y] + x[d])
    (squared for p = 2), times weights[y] when given, divided by the number of classes (and by
    the batch size with sizeAverage). Input 1-D (one sample; the target's first element is its
    class) or 2-D (N samples, a target of N classes); a number target is kept in `target_tensor`."""

    def __init__(self, p=None, weights=None, margin=None):
        if p not in (None, 1, 2):
            raise ValueError('nn.MultiMarginCriterion: only p=1 and p=2 supported')
        self.p = p or 1
        self.margin = 1.0 if margin is None else margin
        super().__init__()
        self.sizeAverage = True
        if weights is not None:
            if not isinstance(weights, Tensor) or weights.dim() != 1:
                raise ValueError('nn.MultiMarginCriterion: weights input should be 1-D Tensor')
            self.weights = weights

    def _target(self, input, target):
        """Validate; returns (target tensor as Lua passes it, 0-based classes array or None)."""
        check_input(self, input, (1, 2))
        dim = input.size(input.dim())
        nframe = 1 if input.dim() == 1 else input.size(1)
        w = self.__dict__.get('weights')
        if w is not None and w.nElement() < dim:
            fail(self, 'weights for all %d classes' % dim, w)
        if is_number(target):
            v = number_class(self, target, dim)
            if self.__dict__.get('target_tensor') is None:
                self.target_tensor = Tensor(1, kind='Long')
            self.target_tensor[1] = v
            target = self.target_tensor
        elif not isinstance(target, Tensor):
            fail(self, 'a target class number or tensor', target)
        if input.dim() == 2 and (target.dim() != 1 or target.size(1) != nframe):
            fail(self, 'a 1-D target of %d classes (inconsistent target size)' % nframe, target)
        if input.dim() == 1 and (target.dim() != 1 or target.nElement() < 1):
            fail(self, 'a 1-D target holding the class', target)
        v = class_values(self, target, dim)
        if v is None:
            return target, None
        v = v.reshape(-1)[:nframe] - 1
        return target, v

    def _terms(self, input, cls):
        x = input.numpy()
        xp = xpof(x)
        x = x.reshape(-1, x.shape[-1])
        cls = xp.asarray(cls)
        xt = xp.take_along_axis(x, cls[:, None], 1)
        z = x.dtype.type(self.margin) - xt + x
        on = z > 0
        on[xp.arange(x.shape[0]), cls] = False
        w = self.__dict__.get('weights')
        wt = w.numpy().reshape(-1)[cls][:, None] if w is not None else None
        return x, z, on, wt, xp

    def updateOutput(self, input, target):
        target, cls = self._target(input, target)
        if input.is_meta() or cls is None:
            return set_output(self, input, None)
        x, z, on, wt, xp = self._terms(input, cls)
        h = z if (self.p or 1) == 1 else z * z
        if wt is not None:
            h = h * wt
        s = float(xp.where(on, h, 0).sum())
        s /= x.shape[1]
        if self.sizeAverage:
            s /= x.shape[0]
        return set_output(self, input, s)

    def updateGradInput(self, input, target):
        target, cls = self._target(input, target)
        self.gradInput.resizeAs(input)
        if self.gradInput.is_meta() or cls is None:
            return self.gradInput
        x, z, on, wt, xp = self._terms(input, cls)
        nframe, dim = x.shape
        g = x.dtype.type(1. / (nframe * dim) if self.sizeAverage else 1. / dim)
        h = xp.full(z.shape, g, dtype=z.dtype) if (self.p or 1) == 1 else (2 * g) * z
        if wt is not None:
            h = h * wt
        ga = self.gradInput.numpy().reshape(nframe, dim)
        xp.copyto(ga, xp.where(on, h, 0).astype(ga.dtype))
        ga[xp.arange(nframe), xp.asarray(cls)] = -ga.sum(1)
        return self.gradInput


class MultiLabelMarginCriterion(Criterion):
    """Multi-label hinge loss: the target row holds 1-based target classes, ended by the first
    0 (the rest is ignored); for each target class j and each non-target class d,
    max(0, 1 - x[j] + x[d]), summed, divided by the number of classes (and the batch size with
    sizeAverage). `isTarget` (the input's type, the target's size) marks the target classes; as
    in Lua's THNN the backward reads the forward's isTarget."""

    def __init__(self):
        super().__init__()
        self.sizeAverage = True
        self.isTarget = Tensor()

    def _check(self, input, target):
        check_input(self, input, (1, 2))
        if not isinstance(target, Tensor) or target.size() != input.size():
            fail(self, 'a target of size %s (inconsistent target size)' % sizestr(input), target)
        dim = input.size(input.dim())
        v = class_values(self, target, dim, low=0)
        if v is None:
            return None
        return v.reshape(-1, dim) - 1

    BLOCK = 1 << 22  # elements of the (samples x D x D) hinge table computed at once

    def _scan(self, input, tg, is_target):
        """The hinge table over blocks of samples (its size is samples x D x D): returns the
        loss sum, per target slot the number of active hinges (F x D), per class the number
        of hinges it is the non-target of (F x D), the one-hot of the valid target slots
        (F x D x D, only when counts are wanted) and isTarget (F x D)."""
        x = input.numpy()
        xp = xpof(x)
        dim = x.shape[-1]
        x = x.reshape(-1, dim)
        tg = xp.asarray(tg)
        valid = xp.cumprod(tg >= 0, axis=1).astype(bool)   # slots before the first 0
        safe = xp.where(valid, tg, 0)
        classes = xp.arange(dim)
        if is_target is None:
            onehot = (safe[:, :, None] == classes) & valid[:, :, None]
            is_target = onehot.any(axis=1)
        nframe = x.shape[0]
        step = max(1, self.BLOCK // max(1, dim * dim))
        total = 0.0
        per_target = xp.zeros((nframe, dim), dtype=x.dtype)
        per_class = xp.zeros((nframe, dim), dtype=x.dtype)
        for lo in range(0, nframe, step):  # one block for all but very many classes
            hi = min(nframe, lo + step)
            xb = x[lo:hi]
            xt = xp.take_along_axis(xb, safe[lo:hi], 1)
            z = 1 - xt[:, :, None] + xb[:, None, :]
            on = valid[lo:hi, :, None] & ~is_target[lo:hi, None, :] & (z > 0)
            total += float(xp.where(on, z, 0).sum())
            per_target[lo:hi] = on.sum(2)
            per_class[lo:hi] = on.sum(1)
        return total, per_target, per_class, valid, safe, is_target, xp

    def updateOutput(self, input, target):
        tg = self._check(input, target)
        if self.isTarget.type() != input.type():
            fail(self, 'a %s input (convert the criterion with :type())' % self.isTarget.type(), input)
        self.isTarget.resize(*target.size())
        if input.is_meta() or tg is None or self.isTarget.is_meta():
            return set_output(self, input, None)
        s, _, _, _, _, is_t, xp = self._scan(input, tg, None)
        self.isTarget.numpy()[...] = is_t.reshape(self.isTarget.size())
        nframe, dim = is_t.shape
        s /= dim
        if self.sizeAverage:
            s /= nframe
        return set_output(self, input, s)

    def updateGradInput(self, input, target):
        tg = self._check(input, target)
        it = self.isTarget
        if not isinstance(it, Tensor) or it.size() != input.size():
            error(self, 'expected isTarget of size %s (a forward on this input size first), got %s'
                  % (sizestr(input), sizestr(it) if isinstance(it, Tensor) else type(it).__name__))
        self.gradInput.resizeAs(input)
        if self.gradInput.is_meta() or tg is None or it.is_meta():
            return self.gradInput
        ita = it.numpy()
        if ita.size and (bool((ita < 0).any()) or bool((ita > 1).any())):
            error(self, 'isTarget out of range')
        dim = input.size(input.dim())
        _, per_target, per_class, valid, safe, _, xp = self._scan(input, tg, ita.reshape(-1, dim) != 0)
        nframe = per_class.shape[0]
        g = 1. / (nframe * dim) if self.sizeAverage else 1. / dim
        ga = self.gradInput.numpy().reshape(nframe, dim)
        ga[...] = per_class
        # each valid target slot j takes away its hinge count from its class (repeats add up)
        rows = xp.broadcast_to(xp.arange(nframe)[:, None], safe.shape)
        down = xp.zeros_like(per_class).reshape(-1)
        flat = (rows * dim + safe)[valid]
        down += xp.bincount(flat, weights=per_target[valid], minlength=nframe * dim).astype(down.dtype)
        ga -= down.reshape(nframe, dim)
        ga *= ga.dtype.type(g)
        return self.gradInput


class SpatialClassNLLCriterion(Criterion):
    """ClassNLL over the pixels of B x C x H x W log-probabilities with a B x H x W target of
    1-based classes (optional per-class `weights`); the loss divided by the total weight with
    sizeAverage. Fields as Lua: output_tensor, total_weight_tensor, target (a LongTensor)."""

    def __init__(self, weights=None, sizeAverage=None):
        super().__init__()
        self.sizeAverage = True if sizeAverage is None else sizeAverage
        if weights is not None:
            if not isinstance(weights, Tensor) or weights.dim() != 1:
                raise ValueError('nn.SpatialClassNLLCriterion: weights input should be 1-D Tensor')
            self.weights = weights
        self.output_tensor = zeros(1)
        self.total_weight_tensor = ones(1)
        self.target = zeros(1).long()

    def _check(self, input, target):
        check_input(self, input)
        if is_number(target) or not isinstance(target, Tensor) or target.dim() != 3:
            fail(self, 'a 3-D target (only batches of spatial targets supported)', target)
        if input.dim() != 4:
            fail(self, 'a 4-D input (only batches of spatial inputs supported)', input)
        b, c, h, w = input.size()
        if target.size() != (b, h, w):
            fail(self, 'a target of size %dx%dx%d (size mismatch with input %s)'
                 % (b, h, w, sizestr(input)), target)
        wt = self.__dict__.get('weights')
        if wt is not None and wt.nElement() != c:
            fail(self, 'weights for all %d classes' % c, wt)
        for f in ('output_tensor', 'total_weight_tensor'):
            t = self.__dict__.get(f)
            if not isinstance(t, Tensor) or t.type() != input.type():
                fail(self, 'a %s input (convert the criterion with :type())'
                     % (t.type() if isinstance(t, Tensor) else '?'), input)
        return class_values(self, target, c)

    def _parts(self, input, v):
        x = input.numpy()
        xp = xpof(x)
        cls = xp.asarray(v - 1)[:, None]                   # (B, 1, H, W)
        picked = xp.take_along_axis(x, cls, 1)[:, 0]
        wt = self.__dict__.get('weights')
        w = wt.numpy().reshape(-1)[cls[:, 0]] if wt is not None else None
        return x, xp, cls, picked, w

    def updateOutput(self, input, target):
        v = self._check(input, target)
        self.target = long_on(target, input.device)
        if input.is_meta() or v is None:
            return set_output(self, input, None)
        x, xp, cls, picked, w = self._parts(input, v)
        if w is None:
            tw, out = float(picked.size), -float(picked.sum())
        else:
            tw, out = float(w.sum()), -float((picked * w).sum())
        if self.sizeAverage and tw:
            out /= tw
        self.total_weight_tensor[1] = tw
        return set_output(self, input, out)

    def updateGradInput(self, input, target):
        v = self._check(input, target)
        self.target = long_on(target, input.device)
        self.gradInput.resizeAs(input).zero()
        if self.gradInput.is_meta() or v is None or self.total_weight_tensor.is_meta():
            return self.gradInput
        tw = float(self.total_weight_tensor[1])
        if tw <= 0:
            return self.gradInput
        x, xp, cls, picked, w = self._parts(input, v)
        norm = tw if self.sizeAverage else 1.0
        g = self.gradInput.numpy()
        vals = (-w / norm if w is not None else xp.full(picked.shape, -1.0 / norm)).astype(g.dtype)
        b, _, h, w_ = g.shape
        g[xp.arange(b)[:, None, None], cls[:, 0], xp.arange(h)[None, :, None],
          xp.arange(w_)[None, None, :]] = vals
        return self.gradInput
