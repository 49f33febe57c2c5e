"""LayerNormalization (Lua's Sequential of Mean/Replicate/CSubTable/Normalize/...) and the local
normalizations SpatialSubtractiveNormalization, SpatialDivisiveNormalization and
SpatialContrastiveNormalization, built, as in Lua, from other nn modules kept as fields
(part of the normalization family: importable from pynn.nn.normalization).
"""
import math
import sys

import numpy as np

from ..storage import Storage
from ..tensor import Tensor
from .module import Module, clear
from .container import Sequential
from .activation import check_tensor
from .normalization import Normalize


# --- LayerNormalization -------------------------------------------------------------------------
def nn_class(name):
    """pynn.nn's class `name`, looked up when a composite module is built (pynn.nn imports the
    families that define its parts after this one)."""
    return getattr(sys.modules[__package__], name)


class LayerNormalization(Sequential):
    """nn.LayerNormalization(nOutput, bias=0, eps=1e-10, affine=true): Lua's Sequential of
    ConcatTable(Identity, Sequential(Mean(1, 1), Replicate(nOutput, 1, 1))), CSubTable,
    Normalize(2, eps), MulConstant(sqrt(nOutput)), and when affine CMul(nOutput) (weight 1) and
    Add(nOutput) (bias `bias`). (The Add is built before the CMul, as in Lua: their resets draw
    from the random stream in that order.)"""

    def __init__(self, nOutput, bias=None, eps=None, affine=None):
        super().__init__()
        eps = 1e-10 if eps is None else eps
        affine = True if affine is None else affine
        bias = bias or 0
        C = nn_class
        mean = C('Sequential')().add(C('Mean')(1, 1)).add(C('Replicate')(nOutput, 1, 1))
        self.add(C('ConcatTable')().add(C('Identity')()).add(mean))
        self.add(C('CSubTable')())
        self.add(Normalize(2, eps))
        self.add(C('MulConstant')(math.sqrt(nOutput)))
        if affine:
            biasTransform = C('Add')(nOutput, False)
            biasTransform.bias.fill(bias)
            gainTransform = C('CMul')(nOutput)
            gainTransform.weight.fill(1.)
            self.add(gainTransform)
            self.add(biasTransform)


# --- Spatial{Subtractive,Divisive,Contrastive}Normalization --------------------------------------
def _one_to_one(n):
    return sys.modules[__package__].tables.oneToOne(n)


def _kernel_args(cls, nInputPlane, kernel):
    kernel = kernel if kernel is not None else Tensor(9, 9).fill(1)
    kdim = kernel.dim()
    if kdim not in (1, 2):
        raise ValueError('<%s> averaging kernel must be 2D or 1D' % cls)
    if kernel.size(1) % 2 == 0 or (kdim == 2 and kernel.size(2) % 2 == 0):
        raise ValueError('<%s> averaging kernel must have ODD dimensions' % cls)
    padH = kernel.size(1) // 2
    padW = kernel.size(2) // 2 if kdim == 2 else padH
    return kernel, kdim, padH, padW


def _estimator(nIn, kernel, kdim, padH, padW, square=False, sqrt=False):
    """Lua's mean/std estimator: [Square,] SpatialZeroPadding, SpatialConvolution (2-D kernel)
    or SpatialConvolutionMap(oneToOne) + SpatialConvolution (1-D kernel), Replicate[, Sqrt]."""
    C = nn_class
    seq = C('Sequential')()
    if square:
        seq.add(C('Square')())
    seq.add(C('SpatialZeroPadding')(padW, padW, padH, padH))
    if kdim == 2:
        seq.add(C('SpatialConvolution')(nIn, 1, kernel.size(2), kernel.size(1)))
    else:
        seq.add(C('SpatialConvolutionMap')(_one_to_one(nIn), kernel.size(1), 1))
        seq.add(C('SpatialConvolution')(nIn, 1, 1, kernel.size(1)))
    seq.add(C('Replicate')(nIn, 1, 3))
    if sqrt:
        seq.add(C('Sqrt')())
    return seq


def _set_kernel(seq, first, nIn, kernel, kdim):
    """Lua: weight[1][i] = kernel (2-D) or weight[i]:copy(kernel) and weight[1][i]:copy(kernel)."""
    mods = seq.modules
    if kdim == 2:
        for i in range(1, nIn + 1):
            mods[first].weight[1][i] = kernel
        mods[first].bias.zero()
    else:
        for i in range(1, nIn + 1):
            mods[first].weight[i].copy(kernel)
            mods[first + 1].weight[1][i].copy(kernel)
        mods[first].bias.zero()
        mods[first + 1].bias.zero()


def _expanded(t, size):
    """t viewed as 1 x t.size() and expanded (stride 0) to size (Lua's view(1, ...):expand)."""
    v = t.new()
    if t.storage() is None:
        return v.resize(*size)
    return v.set(t.storage(), t.storageOffset(), tuple(size), (0,) + tuple(t.stride()))


class SpatialSubtractiveNormalization(Module):
    """nn.SpatialSubtractiveNormalization(nInputPlane=1, kernel=ones(9, 9)): subtracts the local
    mean (kernel-weighted over a neighbourhood and all planes, corrected at the borders by
    `coef`). Built from Lua's submodules: meanestimator, subtractor (CSubTable), divider
    (CDivTable); fields kernel (normalized in place, as Lua), coef, and after a forward ones,
    _coef, _inpsz, localsums, adjustedsums."""

    def __init__(self, nInputPlane=None, kernel=None):
        super().__init__()
        self.nInputPlane = nInputPlane or 1
        kernel, kdim, padH, padW = _kernel_args('SpatialSubtractiveNormalization', self.nInputPlane, kernel)
        self.kernel = kernel
        self.kernel.div(self.kernel.sum() * self.nInputPlane)
        self.meanestimator = _estimator(self.nInputPlane, kernel, kdim, padH, padW)
        _set_kernel(self.meanestimator, 1, self.nInputPlane, self.kernel, kdim)
        self.subtractor = nn_class('CSubTable')()
        self.divider = nn_class('CDivTable')()
        self.coef = Tensor(1, 1, 1)

    def _check(self, input):
        check_tensor(self, input, dims=(3, 4), dims_text='a 3D or 4D (batch mode) input tensor')
        if input.size(-3) != self.nInputPlane:
            self._fail('an input with %d planes' % self.nInputPlane, input)

    def updateOutput(self, input):
        self._check(input)
        dim = input.dim()
        inpsz = self.__dict__.get('_inpsz')
        if isinstance(inpsz, Storage):
            inpsz = tuple(int(v) for v in inpsz.data)
        if inpsz is None or tuple(inpsz) != input.size():
            self._inpsz = Storage(list(input.size()), np.int64)     # Lua: a LongStorage
            if self.__dict__.get('ones') is None:
                self.ones = input.new()
            if self.__dict__.get('_coef') is None:
                self._coef = self.coef.new()
            if dim == 4:
                self.ones.resizeAs(input[1]).fill(1)
                coef = self.meanestimator.updateOutput(self.ones)
                self._coef.resizeAs(coef).copy(coef)
                self.coef = _expanded(self._coef, (input.size(1),) + coef.size())
            else:
                self.ones.resizeAs(input).fill(1)
                coef = self.meanestimator.updateOutput(self.ones)
                self._coef.resizeAs(coef).copy(coef)
                self.coef = self._coef
        self.localsums = self.meanestimator.updateOutput(input)
        self.adjustedsums = self.divider.updateOutput([self.localsums, self.coef])
        self.output = self.subtractor.updateOutput([input, self.adjustedsums])
        return self.output

    def updateGradInput(self, input, gradOutput):
        self._check(input)
        if self.__dict__.get('adjustedsums') is None:
            self._fail('a backward call after forward', input)
        self.gradInput.resizeAs(input).zero()
        gradsub = self.subtractor.updateGradInput([input, self.adjustedsums], gradOutput)
        graddiv = self.divider.updateGradInput([self.localsums, self.coef], gradsub[1])
        self.gradInput.add(self.meanestimator.updateGradInput(input, graddiv[0]))
        self.gradInput.add(gradsub[0])
        return self.gradInput

    def clearState(self):
        self.__dict__.pop('_inpsz', None)
        clear(self, 'ones', '_coef')
        self.meanestimator.clearState()
        return super().clearState()


class SpatialDivisiveNormalization(Module):
    """nn.SpatialDivisiveNormalization(nInputPlane=1, kernel=ones(9, 9), threshold=1e-4,
    thresval=threshold): divides by the local standard deviation (thresholded). Lua's
    submodules: meanestimator, stdestimator, normalizer and divider (CDivTable), thresholder
    (Threshold); fields kernel, threshold, thresval, coef, and after a forward localstds,
    adjustedstds, thresholdedstds, ones, _coef."""

    def __init__(self, nInputPlane=None, kernel=None, threshold=None, thresval=None):
        super().__init__()
        self.nInputPlane = nInputPlane or 1
        kernel, kdim, padH, padW = _kernel_args('SpatialDivisiveNormalization', self.nInputPlane, kernel)
        self.kernel = kernel
        self.threshold = threshold or 1e-4
        self.thresval = thresval or threshold or 1e-4
        n = self.nInputPlane
        self.meanestimator = _estimator(n, kernel, kdim, padH, padW)
        self.stdestimator = _estimator(n, kernel, kdim, padH, padW, square=True, sqrt=True)
        if kdim == 2:
            self.kernel.div(self.kernel.sum() * n)
        else:
            self.kernel.div(self.kernel.sum() * math.sqrt(n))
        _set_kernel(self.meanestimator, 1, n, self.kernel, kdim)
        _set_kernel(self.stdestimator, 2, n, self.kernel, kdim)
        self.normalizer = nn_class('CDivTable')()
        self.divider = nn_class('CDivTable')()
        self.thresholder = nn_class('Threshold')(self.threshold, self.thresval)
        self.coef = Tensor(1, 1, 1)

    _check = SpatialSubtractiveNormalization._check

    def updateOutput(self, input):
        self._check(input)
        self.localstds = self.stdestimator.updateOutput(input)
        dim = input.dim()
        coef = self.coef
        if self.localstds.dim() != coef.dim() or input.size(dim) != coef.size(dim) or \
                input.size(dim - 1) != coef.size(dim - 1):
            if self.__dict__.get('ones') is None:
                self.ones = input.new()
            if dim == 4:
                self.ones.resizeAs(input[1]).fill(1)
                c = self.meanestimator.updateOutput(self.ones)
                if self.__dict__.get('_coef') is None:
                    self._coef = input.new()
                self._coef.resizeAs(c).copy(c)
                self.coef = _expanded(self._coef, self.localstds.size())
            else:
                self.ones.resizeAs(input).fill(1)
                self.coef = self.meanestimator.updateOutput(self.ones)
        self.adjustedstds = self.divider.updateOutput([self.localstds, self.coef])
        self.thresholdedstds = self.thresholder.updateOutput(self.adjustedstds)
        self.output = self.normalizer.updateOutput([input, self.thresholdedstds])
        return self.output

    def updateGradInput(self, input, gradOutput):
        self._check(input)
        if self.__dict__.get('thresholdedstds') is None:
            self._fail('a backward call after forward', input)
        self.gradInput.resizeAs(input).zero()
        gradnorm = self.normalizer.updateGradInput([input, self.thresholdedstds], gradOutput)
        gradadj = self.thresholder.updateGradInput(self.adjustedstds, gradnorm[1])
        graddiv = self.divider.updateGradInput([self.localstds, self.coef], gradadj)
        self.gradInput.add(self.stdestimator.updateGradInput(input, graddiv[0]))
        self.gradInput.add(gradnorm[0])
        return self.gradInput

    def clearState(self):
        clear(self, 'ones', '_coef')
        self.meanestimator.clearState()
        self.stdestimator.clearState()
        return super().clearState()


class SpatialContrastiveNormalization(Module):
    """nn.SpatialContrastiveNormalization(nInputPlane=1, kernel=ones(9, 9), threshold=1e-4,
    thresval=threshold): Lua's `normalizer`, a Sequential of SpatialSubtractiveNormalization and
    SpatialDivisiveNormalization (sharing the kernel tensor, as Lua)."""

    def __init__(self, nInputPlane=None, kernel=None, threshold=None, thresval=None):
        super().__init__()
        self.nInputPlane = nInputPlane or 1
        kernel, kdim, _, _ = _kernel_args('SpatialContrastiveNormalization', self.nInputPlane, kernel)
        self.kernel = kernel
        self.threshold = threshold or 1e-4
        self.thresval = thresval or threshold or 1e-4
        self.normalizer = nn_class('Sequential')()
        self.normalizer.add(SpatialSubtractiveNormalization(self.nInputPlane, self.kernel))
        self.normalizer.add(SpatialDivisiveNormalization(self.nInputPlane, self.kernel,
                                                         self.threshold, self.thresval))

    def updateOutput(self, input):
        self.output = self.normalizer.forward(input)
        return self.output

    def updateGradInput(self, input, gradOutput):
        self.gradInput = self.normalizer.backward(input, gradOutput)
        return self.gradInput
