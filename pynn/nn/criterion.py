"""Criteria (Lua nn 2017 semantics): every criterion of the final Lua nn is exported from here.

ClassNLLCriterion and CrossEntropyCriterion live in this file; the others in
criterion_pointwise (MSE, Abs, SmoothL1, BCE, DistKLDiv, Margin, SoftMargin, L1Cost,
HingeEmbedding, MultiLabelSoftMargin, WeightedMSE, SpatialAutoCropMSE, ClassSimplex),
criterion_pair (CosineEmbedding, L1HingeEmbedding, MarginRanking, DistanceRatio) and
criterion_class (MultiMargin, MultiLabelMargin, SpatialClassNLL).

forward(input, target) returns a Python float (Lua returns a number); backward returns
the gradInput tensor. Class targets are 1-based, given as a number or a tensor. Bad input
raises a ValueError naming the criterion, expected versus given, before any field changes.
Meta tensors: sizes only; forward returns 0.0 (see criterion_base).
"""
import numbers

import numpy as np

from .. import backend
from ..tensor import Tensor, zeros, ones
from .module import Criterion, Module, describe
from .criterion_base import class_values, number_class
from .criterion_pointwise import (MSECriterion, AbsCriterion, SmoothL1Criterion, BCECriterion,  # noqa: F401
                                  DistKLDivCriterion, MarginCriterion, SoftMarginCriterion, L1Cost,
                                  HingeEmbeddingCriterion, MultiLabelSoftMarginCriterion,
                                  WeightedMSECriterion, SpatialAutoCropMSECriterion,
                                  ClassSimplexCriterion)
from .criterion_pair import (CosineEmbeddingCriterion, L1HingeEmbeddingCriterion,  # noqa: F401
                             MarginRankingCriterion, DistanceRatioCriterion)
from .criterion_class import (MultiMarginCriterion, MultiLabelMarginCriterion,  # noqa: F401
                              SpatialClassNLLCriterion)


def _fail(crit, expected, got):
    raise ValueError('%s: expected %s, got %s' % (crit.__typename__, expected, describe(got)))


def _squeeze(t):
    """Torch's squeeze: drop size-1 dims (a tensor of all-1 sizes keeps one dim)."""
    size = [s for s in t.size() if s != 1]
    stride = [st for s, st in zip(t.size(), t.stride()) if s != 1]
    if not size and t.dim() > 0:
        size, stride = [1], [1]
    return t._view_of(t._offset, size, stride)


def _long_on(t, device):
    """t converted to a Long tensor on `device` (the same object when it already is one)."""
    return t.type(backend.tensor_typename('Long', device))


class ClassNLLCriterion(Criterion):
    """Negative log-likelihood of 1-based class targets for log-probability inputs
    (1-D: one sample; 2-D: a batch). Optional per-class `weights`; targets equal to
    ignoreIndex are skipped. Fields as Lua: output_tensor, total_weight_tensor, target."""

    def __init__(self, weights=None, sizeAverage=None, ignoreIndex=None):
        super().__init__()
        self.sizeAverage = True if sizeAverage is None else sizeAverage
        self.ignoreIndex = -100 if ignoreIndex is None else ignoreIndex
        if weights is not None:
            if not isinstance(weights, Tensor) or weights.dim() != 1:
                raise ValueError('nn.ClassNLLCriterion: weights input should be 1-D Tensor')
            self.weights = weights
        self.output_tensor = zeros(1)
        self.total_weight_tensor = ones(1)
        self.target = zeros(1).long()

    # --- checks -------------------------------------------------------------------
    def _check(self, input, target):
        """Validate before touching any field; returns the 0-based class array (or None on meta)."""
        if not isinstance(input, Tensor) or input.dim() not in (1, 2):
            _fail(self, 'input tensor should be 1D or 2D', input)
        if input.type() != self.gradInput.type():
            _fail(self, 'a %s input (convert the criterion with :type())' % self.gradInput.type(), input)
        n_classes = input.size(input.dim())
        w = self.__dict__.get('weights')
        if w is not None and w.nElement() != n_classes:
            raise ValueError('%s: weight tensor should be defined either for all %d classes or no '
                             'classes but got weight tensor of shape: %s'
                             % (self.__typename__, n_classes, 'x'.join(map(str, w.size()))))
        if isinstance(target, numbers.Number) and not isinstance(target, bool):
            if input.dim() != 1:
                _fail(self, 'a target tensor of %d classes for a %s batch'
                      % (input.size(1), 'x'.join(map(str, input.size()))), target)
            values = np.array([number_class(self, target, n_classes, self.ignoreIndex)], dtype=np.int64)
        elif isinstance(target, Tensor):
            if target.dim() > 1:
                _fail(self, 'a 1-D target (multi-target not supported)', target)
            need = 1 if input.dim() == 1 else input.size(1)
            if target.nElement() != need:
                _fail(self, 'a target of %d element%s for input %s'
                      % (need, '' if need == 1 else 's', 'x'.join(map(str, input.size()))), target)
            if target.is_meta():
                return None
            a = class_values(self, target, n_classes, ignore=self.ignoreIndex)
            if backend.array_module(a) is not np:
                a = a.get()
            values = a.reshape(-1)
        else:
            _fail(self, 'a target number or tensor', target)
        return values

    def _set_target(self, input, target):
        """Lua's target handling: numbers go into self.target, tensors become self.target."""
        device = input.device
        if isinstance(target, numbers.Number):
            self.target = _long_on(self.target, device)
            self.target.resize(1)
            if not self.target.is_meta():
                self.target[1] = int(target)
        else:
            self.target = _long_on(target, device)

    # --- protocol -------------------------------------------------------------------
    def updateOutput(self, input, target):
        values = self._check(input, target)
        self._set_target(input, target)
        if input.is_meta() or values is None or self.output_tensor.is_meta():
            self.output = 0.0
            return self.output
        x = input.numpy()
        xp = backend.array_module(x)
        w = self.__dict__.get('weights')
        wa = w.numpy() if w is not None else None
        t = values - 1
        keep = values != self.ignoreIndex
        if input.dim() == 1:
            if keep[0]:
                tw = float(wa[t[0]]) if wa is not None else 1.0
                out = -float(x[t[0]]) * tw
            else:
                tw, out = 0.0, 0.0
        else:
            rows = np.nonzero(keep)[0]
            cls = t[keep]
            picked = x[xp.asarray(rows), xp.asarray(cls)]
            if wa is not None:
                wv = wa[xp.asarray(cls)]
                tw = float(wv.sum())
                out = -float((picked * wv).sum())
            else:
                tw = float(len(rows))
                out = -float(picked.sum())
        if self.sizeAverage and tw:
            out /= tw
        self.output_tensor[1] = out
        self.total_weight_tensor[1] = tw
        self.output = float(self.output_tensor[1])
        return self.output

    def updateGradInput(self, input, target):
        values = self._check(input, target)
        self._set_target(input, target)
        self.gradInput.resizeAs(input).zero()
        if input.is_meta() or values is None or self.total_weight_tensor.is_meta():
            return self.gradInput
        tw = float(self.total_weight_tensor[1])
        if not tw > 0:
            return self.gradInput
        g = self.gradInput.numpy()
        xp = backend.array_module(g)
        w = self.__dict__.get('weights')
        wa = w.numpy() if w is not None else None
        t = values - 1
        keep = values != self.ignoreIndex
        if input.dim() == 1:
            if keep[0]:
                g[t[0]] = -wa[t[0]] if (not self.sizeAverage and wa is not None) else -1
        else:
            rows = xp.asarray(np.nonzero(keep)[0])
            cls = xp.asarray(t[keep])
            vals = -wa[cls] if wa is not None else -xp.ones(len(rows), dtype=g.dtype)
            if self.sizeAverage and tw:
                vals = vals / tw
            g[rows, cls] = vals
        return self.gradInput


class _LogSoftMax(Module):
    """Fallback nn.LogSoftMax (1-D/2-D only), used when pynn.nn.activation has none."""
    __typename__ = 'nn.LogSoftMax'

    def updateOutput(self, input):
        if not isinstance(input, Tensor) or input.dim() not in (1, 2):
            self._fail('a 1D or 2D tensor', input)
        self.output.resizeAs(input)
        if self.output.is_meta():
            return self.output
        x, out = input.numpy(), self.output.numpy()
        xp = backend.array_module(out)
        ax = input.dim() - 1
        m = x.max(axis=ax, keepdims=True)
        xp.subtract(x, m, out=out)
        lse = xp.log(xp.exp(out).sum(axis=ax, keepdims=True))
        out -= lse
        return self.output

    def updateGradInput(self, input, gradOutput):
        if not isinstance(gradOutput, Tensor) or gradOutput.size() != input.size():
            self._fail('gradOutput of the input size', gradOutput)
        self.gradInput.resizeAs(input)
        if self.gradInput.is_meta():
            return self.gradInput
        g, go, out = self.gradInput.numpy(), gradOutput.numpy(), self.output.numpy()
        xp = backend.array_module(g)
        s = go.sum(axis=input.dim() - 1, keepdims=True)
        xp.exp(out, out=g)
        g *= s
        xp.subtract(go, g, out=g)
        return self.gradInput


def _log_softmax():
    try:
        from .activation import LogSoftMax
    except ImportError:
        return _LogSoftMax()
    return LogSoftMax()


class CrossEntropyCriterion(Criterion):
    """LogSoftMax followed by ClassNLLCriterion (fields `lsm`, `nll`); inputs and targets are
    squeezed first, and gradInput is a view of lsm.gradInput with the input's size."""

    def __init__(self, weights=None, sizeAverage=None):
        super().__init__()
        self.lsm = _log_softmax()
        self.nll = ClassNLLCriterion(weights, sizeAverage)
        self.sizeAverage = self.nll.sizeAverage
        self.oldSizeAverage = self.sizeAverage

    def _prep(self, input, target):
        if not isinstance(input, Tensor) or input.dim() == 0:
            _fail(self, 'a 1D or 2D input tensor', input)
        if not (isinstance(target, Tensor) or (isinstance(target, numbers.Number)
                                               and not isinstance(target, bool))):
            _fail(self, 'a target number or tensor', target)
        input = _squeeze(input)
        target = target if not isinstance(target, Tensor) else _squeeze(target)
        if input.dim() > 2:
            _fail(self, 'an input with at most 2 non-singleton dimensions', input)
        if self.sizeAverage != self.oldSizeAverage:
            self.nll.sizeAverage = self.sizeAverage
        return input, target

    def updateOutput(self, input, target):
        sq, target = self._prep(input, target)
        # validate the target against the squeezed input before running anything
        try:
            self.nll._check(sq, target)
        except ValueError as e:
            raise ValueError('%s: %s' % (self.__typename__, e)) from None
        self.lsm.updateOutput(sq)
        self.nll.updateOutput(self.lsm.output, target)
        self.output = self.nll.output
        self.oldSizeAverage = self.sizeAverage
        return self.output

    def updateGradInput(self, input, target):
        size = input.size() if isinstance(input, Tensor) else None
        sq, target = self._prep(input, target)
        try:
            self.nll._check(sq, target)
        except ValueError as e:
            raise ValueError('%s: %s' % (self.__typename__, e)) from None
        self.nll.updateGradInput(self.lsm.output, target)
        self.lsm.updateGradInput(sq, self.nll.gradInput)
        if self.gradInput.type() != self.lsm.gradInput.type():
            self.gradInput = self.lsm.gradInput.new()
        self.gradInput.set(self.lsm.gradInput.view(*size))
        self.oldSizeAverage = self.sizeAverage
        return self.gradInput
