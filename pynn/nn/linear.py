"""Linear: y = W x + b for a vector or a batch (matrix) of vectors, as Lua nn.Linear.

Fields: weight (outputSize x inputSize), bias, gradWeight, gradBias, and `addBuffer`
(a vector of ones of size batch, created lazily on the first batch input, as Lua).
"""
import math

import numpy as np

from ..tensor import Tensor
from .module import Module
from .activation import lowbuf, check_tensor, xpof


def addmm_(C, alpha, A, B):
    """C += alpha * (A @ B), in row chunks so the product's temporary stays ~1/16 of C."""
    xp = xpof(C)
    rows = C.shape[0]
    if xp is not np or rows == 0:
        t = xp.matmul(A, B)
        if alpha != 1:
            t *= alpha
        C += t
        return C
    step = max(1, -(-rows // 16))
    for i in range(0, rows, step):
        t = np.matmul(A[i:i + step], B)
        if alpha != 1:
            t *= alpha
        C[i:i + step] += t
    return C


class Linear(Module):
    def __init__(self, inputSize, outputSize, bias=True):
        super().__init__()
        bias = True if bias is None else bias
        self.weight = Tensor(outputSize, inputSize)
        self.gradWeight = Tensor(outputSize, inputSize)
        if bias:
            self.bias = Tensor(outputSize)
            self.gradBias = Tensor(outputSize)
        self.reset()

    def noBias(self):
        self.__dict__.pop('bias', None)
        self.__dict__.pop('gradBias', None)
        return self

    def reset(self, stdv=None):
        if stdv is not None:
            stdv = stdv * math.sqrt(3)
        else:
            stdv = 1. / math.sqrt(self.weight.size(2))
        self.weight.uniform(-stdv, stdv)
        b = self.__dict__.get('bias')
        if b is not None:
            b.uniform(-stdv, stdv)
        return self

    def updateAddBuffer(self, input):
        nframe = input.size(1)
        if self.__dict__.get('addBuffer') is None:
            self.addBuffer = input.new()
        if self.addBuffer.nElement() != nframe:
            self.addBuffer.resize(nframe).fill(1)

    def _check_input(self, input):
        check_tensor(self, input, dims=(1, 2), dims_text='input must be vector or matrix (1D or 2D tensor)')
        n_in = self.weight.size(2)
        if input.size(input.dim()) != n_in:
            self._fail('%d input features (input must be vector or matrix of %d columns)' % (n_in, n_in),
                       input)

    def _check_grad(self, input, gradOutput):
        self._check_input(input)
        check_tensor(self, gradOutput, 'gradOutput')
        want = (self.weight.size(1),) if input.dim() == 1 else (input.size(1), self.weight.size(1))
        if gradOutput.size() != want:
            self._fail('gradOutput of size %s' % 'x'.join(map(str, want)), gradOutput)

    @lowbuf
    def updateOutput(self, input):
        self._check_input(input)
        bias = self.__dict__.get('bias')
        n_out = self.weight.size(1)
        if input.dim() == 1:
            self.output.resize(n_out)
            if self.output.is_meta():
                return self.output
            out = self.output.numpy()
            xp = xpof(out)
            xp.matmul(self.weight.numpy(), input.numpy(), out=out)
            if bias is not None:
                out += bias.numpy()
            return self.output
        nframe = input.size(1)
        nElement = self.output.nElement()
        self.output.resize(nframe, n_out)
        if self.output.nElement() != nElement:
            self.output.zero()
        self.updateAddBuffer(input)
        if self.output.is_meta():
            return self.output
        out = self.output.numpy()
        xp = xpof(out)
        xp.matmul(input.numpy(), self.weight.numpy().T, out=out)
        if bias is not None:
            out += bias.numpy()
        return self.output

    @lowbuf
    def updateGradInput(self, input, gradOutput):
        if self.__dict__.get('gradInput') is None:
            return None
        self._check_grad(input, gradOutput)
        nElement = self.gradInput.nElement()
        self.gradInput.resizeAs(input)
        if self.gradInput.nElement() != nElement:
            self.gradInput.zero()
        if self.gradInput.is_meta():
            return self.gradInput
        gi = self.gradInput.numpy()
        xpof(gi).matmul(gradOutput.numpy(), self.weight.numpy(), out=gi)
        return self.gradInput

    @lowbuf
    def accGradParameters(self, input, gradOutput, scale=1):
        self._check_grad(input, gradOutput)
        scale = 1 if scale is None else scale
        bias = self.__dict__.get('bias')
        if input.dim() == 2 and bias is not None:
            self.updateAddBuffer(input)
        if self.gradWeight.is_meta():
            return
        g, x = gradOutput.numpy(), input.numpy()
        gw = self.gradWeight.numpy()
        if input.dim() == 1:
            addmm_(gw, scale, g[:, None], x[None, :])
            if bias is not None:
                gb = self.gradBias.numpy()
                if scale == 1:
                    gb += g
                else:
                    gb += scale * g
        else:
            addmm_(gw, scale, g.T, x)
            if bias is not None:
                gb = self.gradBias.numpy()
                t = xpof(g).matmul(self.addBuffer.numpy(), g)
                if scale != 1:
                    t *= scale
                gb += t

    def sharedAccUpdateGradParameters(self, input, gradOutput, lr):
        # Lua: defaultAccUpdateGradParameters (gradWeight := weight while accumulating -lr)
        gw, gb = self.gradWeight, self.__dict__.get('gradBias')
        self.gradWeight = self.weight
        if gb is not None:
            self.gradBias = self.bias
        try:
            self.accGradParameters(input, gradOutput, -lr)
        finally:
            self.gradWeight = gw
            if gb is not None:
                self.gradBias = gb

    def clearState(self):
        if self.__dict__.get('addBuffer') is not None:
            self.addBuffer.set()
        return super().clearState()

    def __tostring__(self):
        return '%s(%d -> %d)%s' % (self.__typename__, self.weight.size(2), self.weight.size(1),
                                   ' without bias' if self.__dict__.get('bias') is None else '')
