"""Lua nn's criterion containers: ParallelCriterion, MultiCriterion, ModuleCriterion.

They hold any criteria (and modules) and combine their losses and gradients as Lua's files do
(nn.utils.recursiveResizeAs / recursiveFill / recursiveAdd for the gradInput tables)."""
from ..storage import Storage
from ..tensor import Tensor
from .module import Criterion, Module, describe

import numpy as np


def _resize_as(t1, t2):
    """nn.utils.recursiveResizeAs: t1 shaped like t2 (nested lists of tensors)."""
    if isinstance(t2, list):
        t1 = t1 if isinstance(t1, list) else [t1]
        for i, v in enumerate(t2):
            val = _resize_as(t1[i] if i < len(t1) else None, v)
            if i < len(t1):
                t1[i] = val
            else:
                t1.append(val)
        del t1[len(t2):]
        return t1
    if isinstance(t2, Tensor):
        t1 = t1 if isinstance(t1, Tensor) else t2.new()
        return t1.resize(*t2.size())
    raise ValueError('expecting nested tensors or tables. Got %s and %s instead' % (describe(t1), describe(t2)))


def _fill(t, val):
    if isinstance(t, list):
        for v in t:
            _fill(v, val)
    elif isinstance(t, Tensor):
        t.fill(val)
    else:
        raise ValueError('expecting tensor or table thereof. Got %s instead' % describe(t))
    return t


def _add(t1, val, t2):
    """nn.utils.recursiveAdd(t1, val, t2): t1 += val * t2 (nested)."""
    if isinstance(t2, list):
        t1 = t1 if isinstance(t1, list) else [t1]
        for i, v in enumerate(t2):
            val_i = _add(t1[i] if i < len(t1) else None, val, v)
            if i < len(t1):
                t1[i] = val_i
            else:
                t1.append(val_i)
        return t1
    if isinstance(t1, Tensor) and isinstance(t2, Tensor):
        if t1.nElement() != t2.nElement():
            raise ValueError('gradient of %s added to one of %s' % (describe(t2), describe(t1)))
        return t1.add(val, t2)
    raise ValueError('expecting nested tensors or tables. Got %s and %s instead' % (describe(t1), describe(t2)))


def _check_criterion(owner, c):
    if not isinstance(c, Criterion):
        raise TypeError('%s.add: expected an nn.Criterion, got %s' % (owner.__typename__, type(c).__name__))


class ParallelCriterion(Criterion):
    """loss = sum_i weight_i * criterion_i(input[i], target[i]) (or target itself with repeatTarget)."""

    def __init__(self, repeatTarget=None):
        super().__init__()
        self.criterions = []
        self.weights = []
        self.gradInput = []
        self.repeatTarget = repeatTarget

    def add(self, criterion, weight=None):
        _check_criterion(self, criterion)
        self.criterions.append(criterion)
        self.weights.append(1 if weight is None else weight)
        return self

    def _check(self, input, target):
        n = len(self.criterions)
        if not isinstance(input, list) or len(input) < n:
            raise ValueError('%s: expected an input table of %d, got %s' % (self.__typename__, n, describe(input)))
        if not self.repeatTarget and (not isinstance(target, list) or len(target) < n):
            raise ValueError('%s: expected a target table of %d, got %s' % (self.__typename__, n, describe(target)))

    def updateOutput(self, input, target):
        self._check(input, target)
        out = 0
        for i, c in enumerate(self.criterions):
            t = target if self.repeatTarget else target[i]
            out = out + self.weights[i] * c.updateOutput(input[i], t)
        self.output = out
        return self.output

    def updateGradInput(self, input, target):
        self._check(input, target)
        self.gradInput = _resize_as(self.gradInput, input)
        _fill(self.gradInput, 0)
        for i, c in enumerate(self.criterions):
            t = target if self.repeatTarget else target[i]
            self.gradInput[i] = _add(self.gradInput[i], self.weights[i], c.updateGradInput(input[i], t))
        return self.gradInput

    def type(self, name=None, tensorCache=None):
        if name is None:
            return self.criterions[0].type() if self.criterions else None
        self.gradInput = []
        return super().type(name, tensorCache)


class MultiCriterion(Criterion):
    """loss = sum_i weight_i * criterion_i(input, target): several criteria on the same input."""

    def __init__(self):
        super().__init__()
        self.criterions = []
        self.weights = Storage(0, np.float64)

    def add(self, criterion, weight=None):
        _check_criterion(self, criterion)
        self.criterions.append(criterion)
        w = [float(v) for v in self.weights.tolist()] + [1 if weight is None else weight]
        st = Storage(len(w), np.float64)
        st.data[:] = w
        self.weights = st
        return self

    def _weights(self):
        return [float(v) for v in self.weights.tolist()]

    def updateOutput(self, input, target):
        out = 0
        for w, c in zip(self._weights(), self.criterions):
            out = out + w * c.updateOutput(input, target)
        self.output = out
        return self.output

    def updateGradInput(self, input, target):
        self.gradInput = _resize_as(self.gradInput, input)
        _fill(self.gradInput, 0)
        for w, c in zip(self._weights(), self.criterions):
            self.gradInput = _add(self.gradInput, w, c.updateGradInput(input, target))
        return self.gradInput

    def type(self, name=None, tensorCache=None):
        if name is None:
            return self.criterions[0].type() if self.criterions else super().type()
        for c in self.criterions:
            c.type(name)
        return super().type(name, tensorCache)


class ModuleCriterion(Criterion):
    """criterion(inputModule(input), targetModule(target)); the backward goes through inputModule."""

    def __init__(self, criterion, inputModule=None, targetModule=None, castTarget=None):
        # Lua's __init does not call Criterion's: no gradInput / output until the first call
        _check_criterion(self, criterion)
        for m in (inputModule, targetModule):
            if m is not None and not isinstance(m, Module):
                raise TypeError('nn.ModuleCriterion: expected nn.Module, got %s' % type(m).__name__)
        self.inputModule = inputModule
        self.targetModule = targetModule
        self.castTarget = True if castTarget is None else castTarget
        if inputModule is not None:
            p = inputModule.parameters()
            if p and len(p[0]) > 0:
                print("Warning: nn.ModuleCriterion doesn't support parameter updates")
        self.criterion = criterion

    def updateOutput(self, input, target):
        if self.inputModule is not None:
            self.input = self.inputModule.forward(input)
        if self.targetModule is not None:
            self.target = self.targetModule.forward(target)
        x = self.input if self.input is not None else input
        t = self.target if self.target is not None else target
        self.output = self.criterion.forward(x, t)
        return self.output

    def updateGradInput(self, input, target):
        x = self.input if self.input is not None else input
        t = self.target if self.target is not None else target
        self.gradInput = self.criterion.backward(x, t)
        if self.inputModule is not None:
            self.gradInput = self.inputModule.backward(input, self.gradInput)
        return self.gradInput

    def type(self, name=None, tensorCache=None):
        if name is None:
            return self.criterion.type()
        if self.inputModule is not None:
            self.inputModule.type(name, tensorCache)
        if self.castTarget and self.targetModule is not None:
            self.targetModule.type(name, tensorCache)
        self.criterion.type(name, tensorCache)
        return super().type(name, tensorCache)
