"""THNN's columns/ones convolutions: SpatialDilatedConvolution, SpatialFullConvolution,
VolumetricConvolution (VolumetricConvolutionMM on the CPU), VolumetricDilatedConvolution,
VolumetricFullConvolution.

Buffers keep THNN's names and sizes: the dilated and full kernels use finput as `columns`
(one image: K x L) and fgradInput as `ones` (the output plane, refilled with ones only when
too small); VolumetricConvolution keeps the whole batch's unfolded input in finput
(B x K x L, laid out K-major as SpatialConvolution's) and fgradInput resized like it.
The arithmetic runs on pynn.nn.functional's N-d kernels: one GEMM per batch (per chunk of
images when the unfolded batch would be huge), never a Python loop over images.
"""

from ...tensor import Tensor
from ..module import Module, clear, uniform_reset
from .. import functional as F
from .spatial import SpatialConvolution, _SpatialConvolutionMMBase


def _prod(t):
    p = 1
    for v in t:
        p *= v
    return p


def _x(t, batch):
    a = t.numpy()
    return a if batch else a[None]


class _ConvNd(Module):
    """Shared geometry and checks. Subclasses define _nd (2 or 3), _geom() -> (k, d, pad, dil)
    in (T,) H, W order, and _planes() -> (nIn, nOut) from the weight. (A Module subclass, so
    that the protocol methods of the mixins below are traced: optnet's analysis and its
    backward switch-off go through Module's wrappers.)"""

    _nd = 2
    _transposed = False

    def _dims_text(self):
        return 'x'.join(['nInputPlane'] + ['T', 'H', 'W'][3 - self._nd:])

    def _in_size(self, input):
        """(batch, spatial size) after checking the input's kind and dims."""
        n = self._nd
        if not isinstance(input, Tensor) or input.dim() not in (n + 1, n + 2):
            self._fail('a %dD or %dD (batch mode) input tensor (%s)'
                       % (n + 1, n + 2, self._dims_text()), input)
        if input.type() != self.weight.type():
            self._fail('an input of type %s (the type of the weight)' % self.weight.type(), input)
        batch = input.dim() == n + 2
        return batch, input.size()[1 + batch:]

    def _check_geom(self, k, d, pad, dil):
        if not all(v > 0 for v in k):
            raise ValueError('%s: kernel size should be greater than zero, got %s'
                             % (self._name(), 'x'.join(map(str, k))))
        if not all(v > 0 for v in d):
            raise ValueError('%s: stride should be greater than zero, got %s'
                             % (self._name(), 'x'.join(map(str, d))))
        if not all(v > 0 for v in dil):
            raise ValueError('%s: dilation should be greater than zero, got %s'
                             % (self._name(), 'x'.join(map(str, dil))))

    def _check(self, input, gradOutput=None, adj=None):
        """THNN's shapeCheck: (batch, B, input size, output size), raising before any change."""
        k, d, pad, dil = self._geom()
        self._check_geom(k, d, pad, dil)
        batch, isz = self._in_size(input)
        nIn, nOut = self._planes()
        if input.size(1 + batch) != nIn:
            self._fail('%d input planes (dimension %d)' % (nIn, 1 + batch), input)
        if self._transposed:
            osz = F.full_output_size_nd(isz, k, d, pad, dil, adj)
        else:
            osz = F.conv_output_size_nd(isz, k, d, pad, dil)
        if min(osz) < 1:
            self._fail('an input big enough for the kernel: calculated output size %s is too '
                       'small' % 'x'.join(map(str, (nOut,) + osz)), input)
        B = input.size(1) if batch else 1
        if gradOutput is not None:
            want = ((B,) if batch else ()) + (nOut,) + osz
            if not isinstance(gradOutput, Tensor) or gradOutput.size() != want:
                self._fail('gradOutput of size %s' % 'x'.join(map(str, want)), gradOutput)
            if gradOutput.type() != input.type():
                self._fail('gradOutput of type %s' % input.type(), gradOutput)
        return batch, B, isz, osz

    def _ones(self, t, osz):
        """THNN's `ones` buffer: resized to the output plane and refilled only when smaller."""
        if t.dim() != len(osz) or t.nElement() < _prod(osz):
            t.resize(*osz).fill(1)

    def _resize_out(self, t, batch, B, planes, sz):
        return t.resize(*(((B,) if batch else ()) + (planes,) + tuple(sz)))


# --------------------------------------------------------------------------- dilated
class _DilatedMixin(_ConvNd):
    """THNN's Spatial/VolumetricDilatedConvolution: finput = columns (K x L of one image),
    fgradInput = ones; updateGradInput takes finput as its gradColumns."""

    def _planes(self):
        return self.weight.size(2), self.weight.size(1)

    def _bufs(self):
        d = self.__dict__
        if d.get('finput') is None:
            self.finput = self.weight.new()
        if d.get('fgradInput') is None:
            self.fgradInput = self.weight.new()

    def updateOutput(self, input):
        batch, B, isz, osz = self._check(input)
        bias = self.__dict__.get('bias')
        if bias is not None and (bias.dim() != 1 or bias.size(1) != self._planes()[1]):
            raise ValueError('%s: bias of size %d expected' % (self._name(), self._planes()[1]))
        self._bufs()
        k, d, pad, dil = self._geom()
        nIn, nOut = self._planes()
        self._resize_out(self.output, batch, B, nOut, osz)
        self.finput.resize(nIn * _prod(k), _prod(osz))
        self._ones(self.fgradInput, osz)
        if self.output.is_meta():
            return self.output
        F.conv_nd_forward(_x(input, batch), self.weight.numpy().reshape(nOut, -1),
                          None if bias is None else bias.numpy(),
                          F.view(_x(self.output, batch), (B, nOut, -1)), k, d, pad, dil)
        return self.output

    def updateGradInput(self, input, gradOutput):
        if self.__dict__.get('gradInput') is None:
            return None
        batch, B, isz, osz = self._check(input, gradOutput)
        self._bufs()
        k, d, pad, dil = self._geom()
        nIn, nOut = self._planes()
        self.gradInput.resizeAs(input)
        self.finput.resize(nIn * _prod(k), _prod(osz))
        if self.gradInput.is_meta():
            return self.gradInput
        F.conv_nd_backward_input(_x(gradOutput, batch).reshape(B, nOut, -1),
                                 self.weight.numpy().reshape(nOut, -1),
                                 _x(self.gradInput, batch), k, d, pad, dil)
        return self.gradInput

    def accGradParameters(self, input, gradOutput, scale=1):
        batch, B, isz, osz = self._check(input, gradOutput)
        self._bufs()
        k, d, pad, dil = self._geom()
        nIn, nOut = self._planes()
        self._ones(self.fgradInput, osz)
        self.finput.resize(nIn * _prod(k), _prod(osz))
        if self.gradWeight.is_meta():
            return
        gb = self.__dict__.get('gradBias')
        F.conv_nd_backward_weight(_x(input, batch), _x(gradOutput, batch).reshape(B, nOut, -1),
                                  F.view(self.gradWeight.numpy(), (nOut, -1)),
                                  None if gb is None else gb.numpy(), scale, k, d, pad, dil)


class SpatialDilatedConvolution(_DilatedMixin, SpatialConvolution):
    """nn.SpatialDilatedConvolution(nIn, nOut, kW, kH, dW, dH, padW, padH, dilationW, dilationH)."""

    def __init__(self, nInputPlane, nOutputPlane, kW, kH, dW=1, dH=1, padW=0, padH=None,
                 dilationW=None, dilationH=None):
        super().__init__(nInputPlane, nOutputPlane, kW, kH, dW, dH, padW, padH)
        self.dilationW = 1 if dilationW is None else dilationW
        self.dilationH = 1 if dilationH is None else dilationH

    def _geom(self):
        return ((self.kH, self.kW), (self.dH, self.dW), (self.padH, self.padW),
                (self.dilationH, self.dilationW))

    def __tostring__(self):
        s = '%s(%d -> %d, %dx%d' % (self.__typename__, self.nInputPlane, self.nOutputPlane,
                                    self.kW, self.kH)
        if self.dW != 1 or self.dH != 1 or self.padW != 0 or self.padH != 0:
            s += ', %d,%d' % (self.dW, self.dH)
        if (self.padW or self.padH) and (self.padW != 0 or self.padH != 0):
            s += ', %s,%s' % (self.padW, self.padH)
        s += ', %s,%s' % (self.dilationW, self.dilationH)
        return s + (')' if self.__dict__.get('bias') is not None else ') without bias')


# --------------------------------------------------------------------------- volumetric MM
class VolumetricConvolution(_ConvNd):
    """nn.VolumetricConvolution(nIn, nOut, kT, kW, kH, dT, dW, dH, padT, padW, padH): THNN's
    VolumetricConvolutionMM. finput: B x (nIn*kT*kH*kW) x (oT*oH*oW) (K x L without a batch),
    laid out K-major so that the batch is one GEMM; fgradInput resized like finput."""

    _nd = 3

    def __init__(self, nInputPlane, nOutputPlane, kT, kW, kH, dT=1, dW=1, dH=1,
                 padT=0, padW=None, padH=None):
        super().__init__()
        self.nInputPlane = nInputPlane
        self.nOutputPlane = nOutputPlane
        self.kT, self.kW, self.kH = kT, kW, kH
        self.dT = 1 if dT is None else dT
        self.dW = 1 if dW is None else dW
        self.dH = 1 if dH is None else dH
        self.padT = padT or 0
        self.padW = self.padT if padW is None else padW
        self.padH = self.padW if padH is None else padH
        shape = (nOutputPlane, nInputPlane, kT, kH, kW)
        self.weight = Tensor(*shape)
        self.bias = Tensor(nOutputPlane)
        self.gradWeight = Tensor(*shape)
        self.gradBias = Tensor(nOutputPlane)
        self.reset()

    def reset(self, stdv=None):
        uniform_reset(self, stdv, self.kT * self.kW * self.kH * self.nInputPlane)

    def noBias(self):
        self.__dict__.pop('bias', None)
        self.__dict__.pop('gradBias', None)
        return self

    def _geom(self):
        return ((self.kT, self.kH, self.kW), (self.dT, self.dH, self.dW),
                (self.padT, self.padH, self.padW), (1, 1, 1))

    def _planes(self):
        w = self.weight
        if w.dim() == 5:
            return w.size(2), w.size(1)
        if w.dim() == 2:
            return w.size(2) // (self.kT * self.kH * self.kW), w.size(1)
        raise ValueError('%s: weight tensor should be 2D or 5D - got %dD' % (self._name(), w.dim()))

    @staticmethod
    def _matrix(t, B):
        """The (K, B*L) matrix under finput/fgradInput (K-major, see _kmajor)."""
        a = t.numpy()
        m = a if a.ndim == 2 else F.cols_matrix(a)
        if m is None:  # pragma: no cover - _kmajor lays them out so
            raise ValueError('VolumetricConvolution: finput/fgradInput are not laid out K-major')
        return m

    def updateOutput(self, input):
        batch, B, isz, osz = self._check(input)
        d = self.__dict__
        if d.get('finput') is None:
            self.finput = input.new()
        if d.get('fgradInput') is None:
            self.fgradInput = input.new()
        bias = d.get('bias')
        k, dd, pad, dil = self._geom()
        nIn, nOut = self._planes()
        K, L = nIn * _prod(k), _prod(osz)
        if batch:
            _SpatialConvolutionMMBase._kmajor(self.finput.resize(B, K, L))
        else:
            self.finput.resize(K, L)
        self._resize_out(self.output, batch, B, nOut, osz)
        if self.output.is_meta():
            return self.output
        F.conv_nd_forward(_x(input, batch), self.weight.numpy().reshape(nOut, K),
                          None if bias is None else bias.numpy(),
                          F.view(_x(self.output, batch), (B, nOut, L)), k, dd, pad, dil,
                          cols=self._matrix(self.finput, B))
        return self.output

    def updateGradInput(self, input, gradOutput):
        if self.__dict__.get('gradInput') is None:
            return None
        batch, B, isz, osz = self._check(input, gradOutput)
        if self.__dict__.get('finput') is None or self.__dict__.get('fgradInput') is None:
            raise ValueError('%s: updateGradInput called before updateOutput' % self._name())
        k, dd, pad, dil = self._geom()
        nIn, nOut = self._planes()
        K, L = nIn * _prod(k), _prod(osz)
        self.gradInput.resizeAs(input)
        self.fgradInput.resizeAs(self.finput)
        if self.fgradInput.size() == (B, K, L):
            _SpatialConvolutionMMBase._kmajor(self.fgradInput)
        if self.gradInput.is_meta():
            return self.gradInput
        F.conv_nd_backward_input(_x(gradOutput, batch).reshape(B, nOut, L),
                                 self.weight.numpy().reshape(nOut, K),
                                 _x(self.gradInput, batch), k, dd, pad, dil,
                                 cols=self._matrix(self.fgradInput, B))
        return self.gradInput

    def accGradParameters(self, input, gradOutput, scale=1):
        batch, B, isz, osz = self._check(input, gradOutput)
        k, dd, pad, dil = self._geom()
        nIn, nOut = self._planes()
        K, L = nIn * _prod(k), _prod(osz)
        finput = self.__dict__.get('finput')
        if finput is None or finput.nElement() != B * K * L:
            raise ValueError('%s: accGradParameters needs the finput of a forward on this input'
                             % self._name())
        if self.gradWeight.is_meta():
            return
        gb = self.__dict__.get('gradBias')
        F.conv_nd_backward_weight(None, _x(gradOutput, batch).reshape(B, nOut, L),
                                  F.view(self.gradWeight.numpy(), (nOut, K)),
                                  None if gb is None else gb.numpy(), scale, k, dd, pad, dil,
                                  cols=self._matrix(finput, B))

    def type(self, name=None, tensorCache=None):
        d = self.__dict__
        if d.get('finput') is not None:
            self.finput.set()
        if d.get('fgradInput') is not None:
            self.fgradInput.set()
        return super().type(name, tensorCache)

    def clearState(self):
        clear(self, 'finput', 'fgradInput', '_input', '_gradOutput')
        return super().clearState()

    def _head(self):
        s = '%s(%d -> %d, %dx%dx%d' % (self.__typename__, self.nInputPlane, self.nOutputPlane,
                                       self.kT, self.kW, self.kH)
        if (self.dT != 1 or self.dW != 1 or self.dH != 1 or self.padT != 0 or self.padW != 0
                or self.padH != 0):
            s += ', %d,%d,%d' % (self.dT, self.dW, self.dH)
        if ((self.padT or self.padW or self.padH)
                and (self.padT != 0 or self.padW != 0 or self.padH != 0)):
            s += ', %s,%s,%s' % (self.padT, self.padW, self.padH)
        return s

    def __tostring__(self):
        return self._head() + ')'


class VolumetricDilatedConvolution(_DilatedMixin, VolumetricConvolution):
    """nn.VolumetricDilatedConvolution(nIn, nOut, kT, kW, kH, dT, dW, dH, padT, padW, padH,
    dilationT, dilationW, dilationH)."""

    _nd = 3

    def __init__(self, nInputPlane, nOutputPlane, kT, kW, kH, dT=1, dW=1, dH=1,
                 padT=0, padW=None, padH=None, dilationT=None, dilationW=None, dilationH=None):
        super().__init__(nInputPlane, nOutputPlane, kT, kW, kH, dT, dW, dH, padT, padW, padH)
        self.dilationT = 1 if dilationT is None else dilationT
        self.dilationW = 1 if dilationW is None else dilationW
        self.dilationH = 1 if dilationH is None else dilationH

    def _geom(self):
        return ((self.kT, self.kH, self.kW), (self.dT, self.dH, self.dW),
                (self.padT, self.padH, self.padW),
                (self.dilationT, self.dilationH, self.dilationW))

    def _planes(self):
        return self.weight.size(2), self.weight.size(1)

    def __tostring__(self):
        s = self._head() + ', %s,%s,%s' % (self.dilationT, self.dilationW, self.dilationH)
        return s + (')' if self.__dict__.get('bias') is not None else ') without bias')


# --------------------------------------------------------------------------- full (transposed)
def _calc_adj(target, k, pad, d):
    return (target + 2 * pad - k) % d


class _FullMixin(_ConvNd):
    """THNN's Spatial/VolumetricFullDilatedConvolution (dilation 1): weight nIn x nOut x k;
    finput = columns (nOut*prod(k) x input plane), fgradInput = ones (output plane).
    Input may be a table {input, target}: the adjustments then come from target's size."""

    _transposed = True

    def _planes(self):
        return self.weight.size(1), self.weight.size(2)

    def _adj_of(self, input):
        """(tensor input, adj tuple in (T,) H, W order) for a tensor or {input, target}."""
        adj = self._adj()
        if isinstance(input, (list, tuple)):
            if len(input) < 2 or not all(isinstance(v, Tensor) for v in input[:2]):
                self._fail('a tensor or a table {input, target} of tensors', input)
            target = input[1]
            k, d, pad, _ = self._geom()
            n = self._nd
            if target.dim() < n:
                self._fail('a target of at least %d dims' % n, input)
            tsz = target.size()[target.dim() - n:]
            adj = tuple(_calc_adj(t, kk, p, dd) for t, kk, p, dd in zip(tsz, k, pad, d))
            return input[0], adj
        return input, adj

    def updateOutput(self, input):
        self._back_compat()
        x, adj = self._adj_of(input)
        batch, B, isz, osz = self._check(x, adj=adj)
        d = self.__dict__
        if d.get('finput') is None:
            self.finput = x.new()
        if d.get('fgradInput') is None:
            self.fgradInput = x.new()
        bias = d.get('bias')
        k, dd, pad, dil = self._geom()
        nIn, nOut = self._planes()
        self._resize_out(self.output, batch, B, nOut, osz)
        self.finput.resize(nOut * _prod(k), _prod(isz))
        self._ones(self.fgradInput, osz)
        if self.output.is_meta():
            return self.output
        F.full_conv_nd_forward(_x(x, batch), self.weight.numpy().reshape(nIn, -1),
                               None if bias is None else bias.numpy(),
                               _x(self.output, batch), k, dd, pad, dil)
        return self.output

    def updateGradInput(self, input, gradOutput):
        self._back_compat()
        if self.__dict__.get('gradInput') is None:
            return None
        x, adj = self._adj_of(input)
        batch, B, isz, osz = self._check(x, gradOutput, adj=adj)
        if isinstance(self.gradInput, list):
            self.gradInput = self.gradInput[0] if self.gradInput else x.new()
        k, dd, pad, dil = self._geom()
        nIn, nOut = self._planes()
        if self.__dict__.get('finput') is None:
            self.finput = x.new()
        self.gradInput.resizeAs(x)
        self.finput.resize(nOut * _prod(k), _prod(isz))
        if not self.gradInput.is_meta():
            F.full_conv_nd_backward_input(_x(gradOutput, batch),
                                          self.weight.numpy().reshape(nIn, -1),
                                          _x(self.gradInput, batch), k, dd, pad, dil)
        if isinstance(input, (list, tuple)):
            target = input[1]
            if self.__dict__.get('zeroScalar') is None:
                self.zeroScalar = target.new(1).zero()
            self.ones.resize(target.dim()).fill(1)
            self.gradInput = [self.gradInput, _expand_scalar(self.zeroScalar, target.size())]
        return self.gradInput

    def accGradParameters(self, input, gradOutput, scale=1):
        self._back_compat()
        x, adj = self._adj_of(input)
        batch, B, isz, osz = self._check(x, gradOutput, adj=adj)
        k, dd, pad, dil = self._geom()
        nIn, nOut = self._planes()
        d = self.__dict__
        if d.get('fgradInput') is None:
            self.fgradInput = x.new()
        if d.get('finput') is None:
            self.finput = x.new()
        self._ones(self.fgradInput, osz)
        self.finput.resize(nOut * _prod(k), _prod(isz))
        if self.gradWeight.is_meta():
            return
        gb = d.get('gradBias')
        F.full_conv_nd_backward_weight(_x(x, batch), _x(gradOutput, batch),
                                       F.view(self.gradWeight.numpy(), (nIn, -1)),
                                       None if gb is None else gb.numpy(), scale, k, dd, pad, dil)

    def noBias(self):
        self.__dict__.pop('bias', None)
        self.__dict__.pop('gradBias', None)
        return self

    def clearState(self):
        clear(self, 'finput', 'fgradInput', '_input', '_gradOutput')
        return super().clearState()


def _expand_scalar(z, size):
    """A view of the one-element tensor z with the given size and zero strides (expandAs)."""
    t = z.new()
    t.set(z.storage(), z.storageOffset(), tuple(size), (0,) * len(size))
    return t


class SpatialFullConvolution(_FullMixin):
    """nn.SpatialFullConvolution(nIn, nOut, kW, kH, dW, dH, padW, padH, adjW, adjH)."""

    def __init__(self, nInputPlane, nOutputPlane, kW, kH, dW=1, dH=1, padW=0, padH=0,
                 adjW=0, adjH=0):
        super().__init__()
        self.nInputPlane = nInputPlane
        self.nOutputPlane = nOutputPlane
        self.kW, self.kH = kW, kH
        self.dW = 1 if dW is None else dW
        self.dH = 1 if dH is None else dH
        self.padW = padW or 0
        self.padH = padH or 0
        self.adjW = adjW or 0
        self.adjH = adjH or 0
        if self.adjW > self.dW - 1 or self.adjH > self.dH - 1:
            raise ValueError('adjW and adjH must be smaller than self.dW - 1 and self.dH - 1 '
                             'respectively')
        self.weight = Tensor(nInputPlane, nOutputPlane, kH, kW)
        self.gradWeight = Tensor(nInputPlane, nOutputPlane, kH, kW)
        self.bias = Tensor(nOutputPlane)
        self.gradBias = Tensor(nOutputPlane)
        self.ones = Tensor()
        self.reset()

    def reset(self, stdv=None):
        uniform_reset(self, stdv, self.kW * self.kH * self.nInputPlane)

    def _back_compat(self):
        if self.__dict__.get('adjW') is None:
            self.adjW = 0
        if self.__dict__.get('adjH') is None:
            self.adjH = 0

    def _geom(self):
        return (self.kH, self.kW), (self.dH, self.dW), (self.padH, self.padW), (1, 1)

    def _adj(self):
        return (self.adjH, self.adjW)

    def type(self, name=None, tensorCache=None):
        d = self.__dict__
        if d.get('finput') is not None:
            self.finput = Tensor()
        if d.get('fgradInput') is not None:
            self.fgradInput = Tensor()
        return super().type(name, tensorCache)

    def __tostring__(self):
        s = '%s(%d -> %d, %dx%d' % (self.__typename__, self.nInputPlane, self.nOutputPlane,
                                    self.kW, self.kH)
        if self.dW != 1 or self.dH != 1 or self.padW != 0 or self.padH != 0:
            s += ', %d,%d' % (self.dW, self.dH)
        if (self.padW or self.padH) and (self.padW != 0 or self.padH != 0):
            s += ', %s,%s' % (self.padW, self.padH)
        if (self.adjW or self.adjH) and (self.adjW != 0 or self.adjH != 0):
            s += ', %s,%s' % (self.adjW, self.adjH)
        return s + (')' if self.__dict__.get('bias') is not None else ') without bias')


class VolumetricFullConvolution(_FullMixin):
    """nn.VolumetricFullConvolution(nIn, nOut, kT, kW, kH, dT, dW, dH, padT, padW, padH,
    adjT, adjW, adjH); finput, fgradInput and ones are created by the constructor."""

    _nd = 3

    def __init__(self, nInputPlane, nOutputPlane, kT, kW, kH, dT=1, dW=1, dH=1,
                 padT=0, padW=0, padH=0, adjT=0, adjW=0, adjH=0):
        super().__init__()
        self.nInputPlane = nInputPlane
        self.nOutputPlane = nOutputPlane
        self.kW, self.kH, self.kT = kW, kH, kT
        self.dW = 1 if dW is None else dW
        self.dH = 1 if dH is None else dH
        self.dT = 1 if dT is None else dT
        self.padW = padW or 0
        self.padH = padH or 0
        self.padT = padT or 0
        self.adjW = adjW or 0
        self.adjH = adjH or 0
        self.adjT = adjT or 0
        if self.adjW > self.dW - 1 or self.adjH > self.dH - 1 or self.adjT > self.dT - 1:
            raise ValueError('adjW, adjH and adjT must be smaller than self.dW - 1, self.dH - 1 '
                             'and self.dT - 1 respectively')
        self.weight = Tensor(nInputPlane, nOutputPlane, kT, kH, kW)
        self.gradWeight = Tensor(nInputPlane, nOutputPlane, kT, kH, kW)
        self.bias = Tensor(nOutputPlane)
        self.gradBias = Tensor(nOutputPlane)
        self.ones = Tensor()
        self.finput = Tensor()
        self.fgradInput = Tensor()
        self.reset()

    def reset(self, stdv=None):
        uniform_reset(self, stdv, self.kW * self.kH * self.kT * self.nInputPlane)

    def _back_compat(self):
        d = self.__dict__
        if d.get('adjW') is None:
            self.weight = self.weight.transpose(1, 2).contiguous()
        for f, old in (('padW', 'pW'), ('padH', 'pH'), ('padT', 'pT')):
            if d.get(f) is None:
                setattr(self, f, d.get(old))
        for f in ('adjW', 'adjH', 'adjT'):
            if d.get(f) is None:
                setattr(self, f, 0)

    def _geom(self):
        return ((self.kT, self.kH, self.kW), (self.dT, self.dH, self.dW),
                (self.padT, self.padH, self.padW), (1, 1, 1))

    def _adj(self):
        return (self.adjT, self.adjH, self.adjW)

    def type(self, name=None, tensorCache=None):
        self.finput = Tensor()
        self.fgradInput = Tensor()
        return super().type(name, tensorCache)

    def __tostring__(self):
        s = '%s(%d -> %d, %dx%dx%d' % (self.__typename__, self.nInputPlane, self.nOutputPlane,
                                       self.kT, self.kW, self.kH)
        if (self.dT != 1 or self.dW != 1 or self.dH != 1 or self.padT != 0 or self.padW != 0
                or self.padH != 0):
            s += ', %d,%d,%d' % (self.dT, self.dW, self.dH)
        if ((self.padT or self.padW or self.padH)
                and (self.padT != 0 or self.padW != 0 or self.padH != 0)):
            s += ', %s,%s,%s' % (self.padT, self.padW, self.padH)
        if ((self.adjT or self.adjW or self.adjH)
                and (self.adjT != 0 or self.adjW != 0 or self.adjH != 0)):
            s += ', %s,%s,%s' % (self.adjT, self.adjW, self.adjH)
        return s + ')'
