"""Spatial pooling and padding: SpatialMaxPooling, SpatialAveragePooling, SpatialMaxUnpooling,
SpatialZeroPadding, with Lua nn's fields and THNN's output-size rules."""
from .. import backend
from ..tensor import Tensor
from .module import Module
from . import functional as F


def _dims(t):
    """(batch?, C, H, W) of a 3-D or 4-D tensor."""
    b = t.dim() == 4
    return b, t.size(1 + b), t.size(2 + b), t.size(3 + b)


def _as4d(t, batch):
    a = t.numpy()
    return a if batch else a[None]


class _Pooling2d(Module):
    """Shared shape checks of THNN's SpatialMaxPooling / SpatialAveragePooling."""

    def _pool_check(self, input, gradOutput=None, indices=None):
        kW, kH, dW, dH = self.kW, self.kH, self.dW, self.dH
        padW, padH = self.__dict__.get('padW') or 0, self.__dict__.get('padH') or 0
        if not (kW > 0 and kH > 0):
            raise ValueError('%s: kernel size should be greater than zero, but got kH: %d kW: %d'
                             % (self._name(), kH, kW))
        if not (dW > 0 and dH > 0):
            raise ValueError('%s: stride should be greater than zero, but got dH: %d dW: %d'
                             % (self._name(), dH, dW))
        if not isinstance(input, Tensor) or input.dim() not in (3, 4):
            self._fail('a 3D or 4D input tensor (C x H x W or B x C x H x W)', input)
        if not (kW // 2 >= padW and kH // 2 >= padH):
            raise ValueError('%s: pad should be smaller than half of kernel size, but got '
                             'padW = %d, padH = %d, kW = %d, kH = %d'
                             % (self._name(), padW, padH, kW, kH))
        if input.type() != self.output.type():
            self._fail('an input of type %s (the module type; convert the module with :type())'
                       % self.output.type(), input)
        batch, C, iH, iW = _dims(input)
        oH, oW = F.pool_output_size(iH, iW, kH, kW, dH, dW, padH, padW,
                                    bool(self.__dict__.get('ceil_mode')))
        if oW < 1 or oH < 1:
            self._fail('an input big enough for the %dx%d pooling: calculated output size '
                       '%dx%dx%d is too small' % (kW, kH, C, oH, oW), input)
        want = input.size()[:-2] + (oH, oW)
        if gradOutput is not None:
            if not isinstance(gradOutput, Tensor) or gradOutput.size() != want:
                self._fail('gradOutput of size %s' % 'x'.join(map(str, want)), gradOutput)
            if gradOutput.type() != input.type():
                self._fail('gradOutput of type %s' % input.type(), gradOutput)
        if indices is not None and indices.size() != want:
            raise ValueError('%s: indices of size %s expected (call forward first), got %s'
                             % (self._name(), 'x'.join(map(str, want)),
                                'x'.join(map(str, indices.size())) or 'empty'))
        return batch, C, iH, iW, oH, oW, padW, padH

    def __tostring__(self):
        padW, padH = self.__dict__.get('padW'), self.__dict__.get('padH')
        s = '%s(%dx%d, %d,%d' % (self.__typename__, self.kW, self.kH, self.dW, self.dH)
        if (padW or padH) and (padW != 0 or padH != 0):
            s += ', %s,%s' % (padW, padH)
        return s + ')'


class SpatialMaxPooling(_Pooling2d):
    """nn.SpatialMaxPooling(kW, kH, dW=kW, dH=kH, padW=0, padH=0). `indices` is a LongTensor
    (on the input's device) of the output's shape holding 1-based flat positions y*iW+x+1."""

    def __init__(self, kW, kH, dW=None, dH=None, padW=0, padH=0):
        super().__init__()
        self.kW = kW
        self.kH = kH
        self.dW = kW if dW is None else dW
        self.dH = kH if dH is None else dH
        self.padW = 0 if padW is None else padW
        self.padH = 0 if padH is None else padH
        self.ceil_mode = False
        self.indices = Tensor(kind='Long', device='cpu')

    def ceil(self):
        self.ceil_mode = True
        return self

    def floor(self):
        self.ceil_mode = False
        return self

    def updateOutput(self, input):
        batch, C, iH, iW, oH, oW, padW, padH = self._pool_check(input)
        long_type = backend.tensor_typename('Long', input.device)
        ind = self.__dict__.get('indices')
        if ind is None:
            ind = Tensor(kind='Long', device='cpu')
        self.indices = ind.type(long_type)
        self.iheight = iH
        self.iwidth = iW
        self.ceil_mode = bool(self.__dict__.get('ceil_mode'))
        self.padW, self.padH = padW, padH
        size = input.size()[:-2] + (oH, oW)
        self.output.resize(*size)
        self.indices.resize(*size)
        if self.output.is_meta():
            return self.output
        F.maxpool2d_forward(_as4d(input, batch), _as4d(self.output, batch),
                            _as4d(self.indices, batch),
                            self.kH, self.kW, self.dH, self.dW, padH, padW)
        return self.output

    def updateGradInput(self, input, gradOutput):
        batch, C, iH, iW, oH, oW, padW, padH = self._pool_check(input, gradOutput, self.indices)
        self.gradInput.resizeAs(input)
        if self.gradInput.is_meta():
            return self.gradInput
        F.maxpool2d_backward(_as4d(gradOutput, batch), _as4d(self.indices, batch),
                             _as4d(self.gradInput, batch),
                             self.kH, self.kW, self.dH, self.dW, padH, padW)
        return self.gradInput

    def empty(self):
        self.clearState()

    def clearState(self):
        ind = self.__dict__.get('indices')
        if ind is not None:
            ind.set()
        return super().clearState()


class SpatialAveragePooling(_Pooling2d):
    """nn.SpatialAveragePooling(kW, kH, dW=1, dH=1, padW=0, padH=0) with ceil_mode,
    count_include_pad (default true) and the old `divide` flag."""

    def __init__(self, kW, kH, dW=None, dH=None, padW=0, padH=0):
        super().__init__()
        self.kW = kW
        self.kH = kH
        self.dW = 1 if dW is None else dW
        self.dH = 1 if dH is None else dH
        self.padW = 0 if padW is None else padW
        self.padH = 0 if padH is None else padH
        self.ceil_mode = False
        self.count_include_pad = True
        self.divide = True

    def ceil(self):
        self.ceil_mode = True
        return self

    def floor(self):
        self.ceil_mode = False
        return self

    def setCountIncludePad(self):
        self.count_include_pad = True
        return self

    def setCountExcludePad(self):
        self.count_include_pad = False
        return self

    def _back_compat(self):
        if self.__dict__.get('ceil_mode') is None:
            self.ceil_mode = False
            self.count_include_pad = True
            self.padH = 0
            self.padW = 0

    def _divisors(self, a, iH, iW, oH, oW, padH, padW):
        return F.avgpool2d_divisors(backend.array_module(a), a.dtype, iH, iW, oH, oW,
                                    self.kH, self.kW, self.dH, self.dW, padH, padW,
                                    bool(self.__dict__.get('count_include_pad', True)))

    def updateOutput(self, input):
        self._back_compat()
        batch, C, iH, iW, oH, oW, padW, padH = self._pool_check(input)
        self.output.resize(*(input.size()[:-2] + (oH, oW)))
        if self.output.is_meta():
            return self.output
        out = _as4d(self.output, batch)
        F.avgpool2d_forward(_as4d(input, batch), out, self._divisors(out, iH, iW, oH, oW, padH, padW),
                            self.kH, self.kW, self.dH, self.dW, padH, padW)
        if not self.__dict__.get('divide'):
            out *= self.kW * self.kH
        return self.output

    def updateGradInput(self, input, gradOutput):
        if self.__dict__.get('gradInput') is None:
            return None
        batch, C, iH, iW, oH, oW, padW, padH = self._pool_check(input, gradOutput)
        self.gradInput.resizeAs(input)
        if self.gradInput.is_meta():
            return self.gradInput
        gi = _as4d(self.gradInput, batch)
        F.avgpool2d_backward(_as4d(gradOutput, batch), gi, self._divisors(gi, iH, iW, oH, oW, padH, padW),
                             self.kH, self.kW, self.dH, self.dW, padH, padW)
        if not self.__dict__.get('divide'):
            gi *= self.kW * self.kH
        return self.gradInput


class SpatialMaxUnpooling(Module):
    """nn.SpatialMaxUnpooling(poolingModule): scatters its input to the positions the paired
    SpatialMaxPooling recorded in its `indices` (shared as self.indices)."""

    def __init__(self, poolingModule):
        super().__init__()
        if not isinstance(poolingModule, SpatialMaxPooling) or \
                poolingModule.__typename__ != 'nn.SpatialMaxPooling':
            raise ValueError('nn.SpatialMaxUnpooling: Argument must be a nn.SpatialMaxPooling module')
        if not (poolingModule.kH == poolingModule.dH and poolingModule.kW == poolingModule.dW):
            raise ValueError("nn.SpatialMaxUnpooling: The size of pooling module's kernel must be "
                             "equal to its stride")
        self.pooling = poolingModule

    def setParams(self):
        self.indices = self.pooling.indices
        self.oheight = self.pooling.__dict__.get('iheight')
        self.owidth = self.pooling.__dict__.get('iwidth')

    def _unpool_check(self, input, gradOutput=None):
        if not isinstance(input, Tensor) or input.dim() not in (3, 4):
            self._fail('a 3D or 4D (batch mode) input tensor', input)
        if input.type() != self.output.type():
            self._fail('an input of type %s (the module type; convert the module with :type())'
                       % self.output.type(), input)
        ind = self.pooling.__dict__.get('indices')
        oH, oW = self.pooling.__dict__.get('iheight'), self.pooling.__dict__.get('iwidth')
        if ind is None or oH is None or ind.size() != input.size():
            self._fail('an input of the size of the pooling indices (%s)'
                       % ('x'.join(map(str, ind.size())) if ind is not None else 'none: run the '
                          'pooling module forward first'), input)
        if gradOutput is not None:
            want = input.size()[:-2] + (oH, oW)
            if not isinstance(gradOutput, Tensor) or gradOutput.size() != want:
                self._fail('gradOutput of size %s' % 'x'.join(map(str, want)), gradOutput)
        if not ind.is_meta() and ind.nElement():
            a = ind.numpy()
            lo, hi = int(a.min()), int(a.max())
            if lo < 1 or hi > oH * oW:
                bad = lo if lo < 1 else hi
                raise ValueError('%s: found an invalid max index %d (output volumes are of size %dx%d)'
                                 % (self._name(), bad - 1, oH, oW))
        return oH, oW

    def updateOutput(self, input):
        oH, oW = self._unpool_check(input)
        self.setParams()
        batch = input.dim() == 4
        self.output.resize(*(input.size()[:-2] + (oH, oW)))
        if self.output.is_meta():
            return self.output
        F.maxunpool2d_forward(_as4d(input, batch), _as4d(self.indices, batch), _as4d(self.output, batch))
        return self.output

    def updateGradInput(self, input, gradOutput):
        self._unpool_check(input, gradOutput)
        self.setParams()
        batch = input.dim() == 4
        self.gradInput.resizeAs(input)
        if self.gradInput.is_meta():
            return self.gradInput
        F.maxunpool2d_backward(_as4d(gradOutput, batch), _as4d(self.indices, batch),
                               _as4d(self.gradInput, batch))
        return self.gradInput

    def empty(self):
        self.clearState()

    def __tostring__(self):
        return 'nn.SpatialMaxUnpooling associated to ' + self.pooling.__tostring__()


class SpatialZeroPadding(Module):
    """nn.SpatialZeroPadding(pad_l, pad_r=pad_l, pad_t=pad_l, pad_b=pad_l); negative pads crop."""

    def __init__(self, pad_l, pad_r=None, pad_t=None, pad_b=None):
        super().__init__()
        self.pad_l = pad_l
        self.pad_r = pad_l if pad_r is None else pad_r
        self.pad_t = pad_l if pad_t is None else pad_t
        self.pad_b = pad_l if pad_b is None else pad_b

    def _out_size(self, input):
        if not isinstance(input, Tensor) or input.dim() not in (3, 4):
            self._fail('an input that is 3 or 4-dimensional', input)
        h = input.size(-2) + self.pad_t + self.pad_b
        w = input.size(-1) + self.pad_l + self.pad_r
        if w < 1 or h < 1:
            self._fail('an input big enough for padding l=%d, r=%d, t=%d, b=%d (input is too small)'
                       % (self.pad_l, self.pad_r, self.pad_t, self.pad_b), input)
        return input.size()[:-2] + (h, w)

    def _crops(self, big, small):
        """Narrow `big` (the padded side) and `small` (the cropped side) to the shared region."""
        hd, wd = big.dim() - 1, big.dim()
        if self.pad_t < 0:
            small = small.narrow(hd, 1 - self.pad_t, small.size(hd) + self.pad_t)
        if self.pad_b < 0:
            small = small.narrow(hd, 1, small.size(hd) + self.pad_b)
        if self.pad_l < 0:
            small = small.narrow(wd, 1 - self.pad_l, small.size(wd) + self.pad_l)
        if self.pad_r < 0:
            small = small.narrow(wd, 1, small.size(wd) + self.pad_r)
        if self.pad_t > 0:
            big = big.narrow(hd, 1 + self.pad_t, big.size(hd) - self.pad_t)
        if self.pad_b > 0:
            big = big.narrow(hd, 1, big.size(hd) - self.pad_b)
        if self.pad_l > 0:
            big = big.narrow(wd, 1 + self.pad_l, big.size(wd) - self.pad_l)
        if self.pad_r > 0:
            big = big.narrow(wd, 1, big.size(wd) - self.pad_r)
        return big, small

    def updateOutput(self, input):
        size = self._out_size(input)
        self.output.resize(*size)
        self.output.zero()
        c_output, c_input = self._crops(self.output, input)
        if c_output.nElement():
            c_output.copy(c_input)
        return self.output

    def updateGradInput(self, input, gradOutput):
        size = self._out_size(input)
        if not isinstance(gradOutput, Tensor) or gradOutput.size() != size:
            self._fail('gradOutput of size %s' % 'x'.join(map(str, size)), gradOutput)
        self.gradInput.resizeAs(input)
        self.gradInput.zero()
        cg_output, cg_input = self._crops(gradOutput, self.gradInput)
        if cg_input.nElement():
            cg_input.copy(cg_output)
        return self.gradInput

    def __tostring__(self):
        return '%s(l=%d, r=%d, t=%d, b=%d)' % (self.__typename__, self.pad_l, self.pad_r,
                                               self.pad_t, self.pad_b)
