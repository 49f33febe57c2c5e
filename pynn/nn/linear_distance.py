"""Lua nn's bilinear and distance layers: Bilinear, Euclidean, WeightedEuclidean, Cosine.

As Lua nn computes them, quirks included: Bilinear adds its weight gradient without the scale
(only the bias gradient is scaled), WeightedEuclidean's 1D diagCov gradient and Cosine's
gradients are unscaled where Lua's are; Euclidean/WeightedEuclidean's accGradParameters reads
the buffers of the preceding updateGradInput (_repeat, _repeat2), as Lua's.
"""
import math

from ..tensor import Tensor
from .module import Module
from .activation import check_tensor, xpof
from .linear import _is_num, _scale

# --- Bilinear ----------------------------------------------------------------------------------
class Bilinear(Module):
    """y_k = x1^T W_k x2 + b_k for a batch of pairs {x1 (B x n1), x2 (B x n2)}."""

    def __init__(self, inputSize1, inputSize2, outputSize, bias=None):
        super().__init__()
        for v in (inputSize1, inputSize2, outputSize):
            if not isinstance(v, int) or v <= 0:
                raise ValueError('nn.Bilinear: inputSize1, inputSize2 and outputSize should be positive integers')
        bias = True if bias is None else bias
        self.weight = Tensor(outputSize, inputSize1, inputSize2)
        self.gradWeight = Tensor(outputSize, inputSize1, inputSize2)
        if bias:
            self.bias = Tensor(outputSize)
            self.gradBias = Tensor(outputSize)
        self.gradInput = [Tensor(), Tensor()]
        self.reset()

    def reset(self, stdv=None):
        if stdv is not None:
            if not _is_num(stdv) or stdv <= 0:
                raise ValueError('nn.Bilinear: standard deviation should be a positive number')
            stdv = stdv * math.sqrt(3)
        else:
            stdv = 1 / math.sqrt(self.weight.size(2))
        self.weight.uniform(-stdv, stdv)
        if self.__dict__.get('bias') is not None:
            self.bias.uniform(-stdv, stdv)
        return self

    def _check(self, input):
        if not isinstance(input, list) or len(input) != 2 or not all(isinstance(t, Tensor) for t in input):
            self._fail('a table containing two data Tensors', input)
        a, b = input
        for t in input:
            if t.type() != self._type:
                self._fail('inputs of type %s' % self._type, input)
        if a.dim() != 2 or b.dim() != 2:
            self._fail('two-dimensional input Tensors', input)
        if a.size(1) != b.size(1):
            self._fail('input Tensors with the same number of rows (instances)', input)
        if a.size(2) != self.weight.size(2) or b.size(2) != self.weight.size(3):
            self._fail('inputs of %d and %d columns' % (self.weight.size(2), self.weight.size(3)), input)

    def _check_grad(self, input, gradOutput):
        self._check(input)
        check_tensor(self, gradOutput, 'gradOutput')
        if gradOutput.dim() != 2 or gradOutput.size(1) != input[0].size(1) or \
                gradOutput.size(2) != self.weight.size(1):
            self._fail('gradOutput of size %dx%d' % (input[0].size(1), self.weight.size(1)), gradOutput)

    def updateOutput(self, input):
        self._check(input)
        if self.__dict__.get('buff2') is None:
            self.buff2 = input[0].new()
        self.buff2.resizeAs(input[1])
        self.output.resize(input[0].size(1), self.weight.size(1))
        if self.output.is_meta():
            return self.output
        x1, x2, W = input[0].numpy(), input[1].numpy(), self.weight.numpy()
        xp = xpof(W)
        out = self.output.numpy()
        t = xp.matmul(x1[None, :, :], W)                 # K x B x n2: x1 W_k
        t *= x2[None, :, :]
        out[...] = t.sum(axis=2).T
        if self.__dict__.get('bias') is not None:
            out += self.bias.numpy()
        return self.output

    def updateGradInput(self, input, gradOutput):
        if self.__dict__.get('gradInput') is None:
            return None
        self._check_grad(input, gradOutput)
        if not isinstance(self.gradInput, list) or len(self.gradInput) == 0:
            self.gradInput = [input[0].new(), input[0].new()]
        self.gradInput[0].resizeAs(input[0])
        self.gradInput[1].resizeAs(input[1])
        if self.weight.size(1) > 1:
            if self.__dict__.get('buff1') is None:
                self.buff1 = input[0].new()
            self.buff1.resizeAs(input[0])
        if self.gradInput[0].is_meta():
            return self.gradInput
        x1, x2, W, g = input[0].numpy(), input[1].numpy(), self.weight.numpy(), gradOutput.numpy()
        xp = xpof(W)
        # gradInput1[b, i] = sum_k g[b, k] sum_j W[k, i, j] x2[b, j]; gradInput2 likewise
        t1 = xp.matmul(x2[None, :, :], W.transpose(0, 2, 1))  # K x B x n1
        t1 *= g.T[:, :, None]
        self.gradInput[0].numpy()[...] = t1.sum(axis=0)
        t2 = xp.matmul(x1[None, :, :], W)                     # K x B x n2
        t2 *= g.T[:, :, None]
        self.gradInput[1].numpy()[...] = t2.sum(axis=0)
        return self.gradInput

    def accGradParameters(self, input, gradOutput, scale=1):
        self._check_grad(input, gradOutput)
        scale = _scale(scale)
        if not _is_num(scale) or scale < 0:
            raise ValueError('%s: scale must be a non-negative number' % self._name())
        if self.__dict__.get('buff1') is None:
            self.buff1 = input[0].new()
        self.buff1.resizeAs(input[0])
        if self.gradWeight.is_meta():
            return
        x1, x2, g = input[0].numpy(), input[1].numpy(), gradOutput.numpy()
        xp = xpof(g)
        # Lua adds (x1 .* g_k)^T x2 to gradWeight[k] without the scale (only the bias is scaled)
        t = x1.T[None, :, :] * g.T[:, None, :]                 # K x n1 x B
        self.gradWeight.numpy()[...] += xp.matmul(t, x2[None, :, :])
        if self.__dict__.get('bias') is not None:
            self.gradBias.numpy()[...] += scale * g.sum(axis=0)

    def clearState(self):
        for f in ('buff1', 'buff2'):
            if self.__dict__.get(f) is not None:
                self.__dict__[f].set()
        return super().clearState()

    def __tostring__(self):
        return '%s(%dx%d -> %d) %s' % (self.__typename__, self.weight.size(2), self.weight.size(3),
                                       self.weight.size(1),
                                       ' without bias' if self.__dict__.get('bias') is None else '')


# --- Euclidean / WeightedEuclidean / Cosine ------------------------------------------------------
def _dist_check(m, input):
    check_tensor(m, input, dims=(1, 2), dims_text='1D or 2D input')
    n = m.weight.size(1)
    if input.size(input.dim()) != n:
        m._fail('%d input features' % n, input)


def _buf(m, name, like):
    t = m.__dict__.get(name)
    if t is None:
        t = like.new()
        m.__dict__[name] = t
    return t


class Euclidean(Module):
    """y_j = || x - w_j || (w_j: the j-th column of weight, inputSize x outputSize)."""

    def __init__(self, inputSize, outputSize):
        super().__init__()
        self.weight = Tensor(inputSize, outputSize)
        self.gradWeight = Tensor(inputSize, outputSize)
        self.gradInput.resize(inputSize)
        self.output.resize(outputSize)
        self.fastBackward = True
        self.reset()

    def reset(self, stdv=None):
        stdv = stdv * math.sqrt(3) if stdv is not None else 1. / math.sqrt(self.weight.size(1))
        self.weight.uniform(-stdv, stdv)

    def _diff(self, input):
        """_repeat = x - w (per sample): inputSize x outputSize, or batch x inputSize x outputSize."""
        rep = _buf(self, '_repeat', self.output)
        n_in, n_out = self.weight.size()
        shape = (n_in, n_out) if input.dim() == 1 else (input.size(1), n_in, n_out)
        rep.resize(*shape)
        if rep.is_meta():
            return None
        r = rep.numpy()
        x = input.numpy()
        xpof(r).subtract(x[..., :, None], self.weight.numpy(), out=r)
        return r

    def _weigh(self, r):
        pass

    def updateOutput(self, input):
        _dist_check(self, input)
        n_out = self.weight.size(2)
        r = self._diff(input)
        self.output.resize(*((n_out,) if input.dim() == 1 else (input.size(1), n_out)))
        if r is None:
            return self.output
        self._weigh(r)
        out = self.output.numpy()
        xp = xpof(r)
        xp.sqrt((r * r).sum(axis=-2), out=out)
        return self.output

    def updateGradInput(self, input, gradOutput):
        if self.__dict__.get('gradInput') is None:
            return None
        _dist_check(self, input)
        check_tensor(self, gradOutput, 'gradOutput')
        if gradOutput.size() != self.output.size():
            self._fail('gradOutput of size %s' % 'x'.join(map(str, self.output.size())), gradOutput)
        if not self.fastBackward:
            self.updateOutput(input)
        o = _buf(self, '_output', self.output).resizeAs(self.output)
        div = _buf(self, '_div', input).resizeAs(gradOutput)
        rep2 = _buf(self, '_repeat2', self.output).resizeAs(self._repeat)
        self.gradInput.resizeAs(input)
        if self.gradInput.is_meta():
            return self.gradInput
        oa, d = o.numpy(), div.numpy()
        xp = xpof(oa)
        xp.add(self.output.numpy(), 1e-7, out=oa)
        xp.divide(gradOutput.numpy(), oa, out=d)
        r2 = rep2.numpy()
        xp.multiply(self._repeat.numpy(), d[..., None, :], out=r2)
        self._grad_weigh(r2)
        self.gradInput.numpy()[...] = r2.sum(axis=-1)
        return self.gradInput

    def _grad_weigh(self, r2):
        pass

    def accGradParameters(self, input, gradOutput, scale=1):
        # Lua: assumes a preceding updateGradInput (reads _repeat2)
        scale = _scale(scale)
        if input.dim() == 2:
            s = _buf(self, '_sum', input).resize(*self.weight.size())
        if self.gradWeight.is_meta():
            return
        r2 = self._repeat2.numpy()
        if input.dim() == 1:
            self.gradWeight.numpy()[...] += -scale * r2
        else:
            sa = s.numpy()
            r2.sum(axis=0, out=sa)
            self.gradWeight.numpy()[...] += -scale * sa

    def type(self, name=None, tensorCache=None):
        if name is not None:
            self.clearState()
        return super().type(name, tensorCache)

    def clearState(self):
        for f in ('_input', '_output', '_gradOutput', '_weight', '_div', '_sum', '_expand', '_expand2',
                  '_expand3', '_expand4', '_repeat', '_repeat2', '_repeat3'):
            t = self.__dict__.get(f)
            if isinstance(t, Tensor):
                t.set()
        return super().clearState()


class WeightedEuclidean(Euclidean):
    """y_j = || c_j * (x - w_j) || with a diagonal covariance c_j per template (diagCov)."""

    def __init__(self, inputSize, outputSize):
        Module.__init__(self)
        self.weight = Tensor(inputSize, outputSize)
        self.gradWeight = Tensor(inputSize, outputSize)
        self.diagCov = Tensor(inputSize, outputSize)
        self.gradDiagCov = Tensor(inputSize, outputSize)
        self.reset()

    def reset(self, stdv=None):
        stdv = stdv * math.sqrt(3) if stdv is not None else 1. / math.sqrt(self.weight.size(1))
        self.weight.uniform(-stdv, stdv)
        self.diagCov.fill(1)

    def _weigh(self, r):
        r *= self.diagCov.numpy()

    def _grad_weigh(self, r2):
        r2 *= self.diagCov.numpy()

    def parameters(self):
        return [self.weight, self.diagCov], [self.gradWeight, self.gradDiagCov]

    def accGradParameters(self, input, gradOutput, scale=1):
        # Lua: assumes a preceding updateGradInput; in 1D the diagCov gradient is not scaled
        scale = _scale(scale)
        if input.dim() == 2:
            s = _buf(self, '_sum', input).resize(*self.weight.size())
        if self.gradWeight.is_meta():
            return
        r, r2 = self._repeat.numpy(), self._repeat2.numpy()
        c = self.diagCov.numpy()
        d = self._div.numpy()
        xp = xpof(r)
        if input.dim() == 1:
            self.gradWeight.numpy()[...] += -scale * r2
            r /= c
            r *= r
            r *= c
            xp.multiply(r, d.reshape(1, -1), out=r2)
            self.gradDiagCov.numpy()[...] += r2
        else:
            sa = s.numpy()
            r2.sum(axis=0, out=sa)
            self.gradWeight.numpy()[...] += -scale * sa
            r /= c
            r *= r
            r *= c
            r *= d[:, None, :]
            r.sum(axis=0, out=sa)
            self.gradDiagCov.numpy()[...] += scale * sa

    def accUpdateGradParameters(self, input, gradOutput, lr):
        gw, gc = self.gradWeight, self.gradDiagCov
        self.gradWeight, self.gradDiagCov = self.weight, self.diagCov
        try:
            self.accGradParameters(input, gradOutput, -lr)
        finally:
            self.gradWeight, self.gradDiagCov = gw, gc


class Cosine(Module):
    """y_j = (w_j . x) / (||w_j|| ||x||) for the rows w_j of weight (outputSize x inputSize)."""

    def __init__(self, inputSize, outputSize):
        super().__init__()
        self.weight = Tensor(outputSize, inputSize)
        self.gradWeight = Tensor(outputSize, inputSize)
        self.reset()

    def reset(self, stdv=None):
        stdv = stdv * math.sqrt(3) if stdv is not None else 1. / math.sqrt(self.weight.size(1))
        self.weight.uniform(-stdv, stdv)

    def _check(self, input):
        check_tensor(self, input, dims=(1, 2), dims_text='input must be vector or matrix')
        if input.size(input.dim()) != self.weight.size(2):
            self._fail('%d input features' % self.weight.size(2), input)

    def updateOutput(self, input):
        self._check(input)
        n_out = self.weight.size(1)
        wn = _buf(self, '_weightNorm', self.weight).resize(n_out, 1)
        inn = _buf(self, '_inputNorm', self.weight)
        if input.dim() == 1:
            self.output.resize(n_out)
        else:
            nElement = self.output.nElement()
            self.output.resize(input.size(1), n_out)
            if self.output.nElement() != nElement and not self.output.is_meta():
                self.output.zero()
            inn.resize(input.size(1), 1)
        if self.output.is_meta():
            return self.output
        W, x, out, w = self.weight.numpy(), input.numpy(), self.output.numpy(), wn.numpy()
        xp = xpof(W)
        xp.sqrt((W * W).sum(axis=1, keepdims=True), out=w)
        w += 1e-12
        if input.dim() == 1:
            xp.matmul(W, x, out=out)
            norm = float(xp.sqrt((x * x).sum())) + 1e-12
            self.__dict__['__norm'] = norm
            out /= w.reshape(-1)
            out /= norm
        else:
            xp.matmul(x, W.T, out=out)
            a = inn.numpy()
            xp.sqrt((x * x).sum(axis=1, keepdims=True), out=a)
            a += 1e-12
            out /= w.reshape(1, -1)
            out /= a
        return self.output

    def updateGradInput(self, input, gradOutput):
        if self.__dict__.get('gradInput') is None:
            return None
        self._check(input)
        check_tensor(self, gradOutput, 'gradOutput')
        if gradOutput.size() != self.output.size():
            self._fail('gradOutput of size %s' % 'x'.join(map(str, self.output.size())), gradOutput)
        nElement = self.gradInput.nElement()
        self.gradInput.resizeAs(input)
        if self.gradInput.nElement() != nElement and not self.gradInput.is_meta():
            self.gradInput.zero()
        if input.dim() == 1:
            wb = _buf(self, '_weight', input).resizeAs(self.weight)
        else:
            go = _buf(self, '_gradOutput', gradOutput).resizeAs(gradOutput)
            s = _buf(self, '_sum', input).resize(input.size(1), 1)
        if self.gradInput.is_meta():
            return self.gradInput
        W, x, g, gi = self.weight.numpy(), input.numpy(), gradOutput.numpy(), self.gradInput.numpy()
        xp = xpof(W)
        wn = self._weightNorm.numpy()
        if input.dim() == 1:
            norm = self.__dict__['__norm']
            w = wb.numpy()
            xp.divide(W, wn, out=w)
            w /= norm
            w -= (1 / (norm * norm)) * xp.outer(self.output.numpy(), x)
            xp.matmul(w.T, g, out=gi)
        else:
            inn = self._inputNorm.numpy()
            xp.divide(x, inn, out=gi)
            goa, sa = go.numpy(), s.numpy()
            xp.multiply(g, self.output.numpy(), out=goa)
            goa.sum(axis=1, keepdims=True, out=sa)
            gi *= sa
            xp.divide(g, wn.reshape(1, -1), out=goa)
            gi *= -1
            gi += xp.matmul(goa, W)
            gi /= inn
        return self.gradInput

    def accGradParameters(self, input, gradOutput, scale=1):
        # Lua scales only the first term of the 1D gradient, and nothing of the 2D one
        scale = _scale(scale)
        self._check(input)
        n_out = self.weight.size(1)
        go = _buf(self, '_gradOutput', gradOutput).resizeAs(gradOutput)
        wb = _buf(self, '_weight', self.weight)
        if input.dim() == 1:
            if wb.nElement() == 0:
                wb.resizeAs(self.weight)
        else:
            wb.resizeAs(self.weight)
            s = _buf(self, '_sum', input).resize(1, n_out)
        if self.gradWeight.is_meta():
            return
        W, x, g = self.weight.numpy(), input.numpy(), gradOutput.numpy()
        xp = xpof(W)
        wn = self._weightNorm.numpy().reshape(-1)
        gw, goa, w = self.gradWeight.numpy(), go.numpy(), wb.numpy()
        if input.dim() == 1:
            norm = self.__dict__['__norm']
            xp.divide(g, wn, out=goa)
            gw += (scale / norm) * xp.outer(goa, x)
            goa /= wn
            goa *= self.output.numpy()
            xp.multiply(W, goa[:, None], out=w)
            gw -= w
        else:
            xp.multiply(g, self.output.numpy(), out=goa)
            sa = s.numpy()
            goa.sum(axis=0, keepdims=True, out=sa)
            sa /= wn.reshape(1, -1)
            xp.multiply(W, sa.reshape(-1, 1), out=w)
            go.resizeAs(input)
            inp = go.numpy()
            xp.divide(x, self._inputNorm.numpy(), out=inp)
            w *= -1
            w += xp.matmul(g.T, inp)
            w /= wn[:, None]
            gw += w

    def type(self, name=None, tensorCache=None):
        if name is not None:
            for f in ('_input', '_weight', '_inputNorm', '_weightNorm', '_gradOutput', '_sum'):
                self.__dict__.pop(f, None)
        return super().type(name, tensorCache)

    def clearState(self):
        for f in ('_input', '_weight', '_gradOutput', '_sum', '_inputNorm', '_weightNorm'):
            t = self.__dict__.get(f)
            if isinstance(t, Tensor):
                t.set()
        return super().clearState()
