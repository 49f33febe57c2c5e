"""Shape family, spatial part: SpatialReflectionPadding, SpatialReplicationPadding,
SpatialUpSamplingNearest, SpatialUpSamplingBilinear, UpSampling, PixelShuffle. Imported by
shape.py (nn exports them from there). Each computes what THNN's kernel computes, with
whole-array index maps or per-axis interpolation matrices instead of loops."""
import numbers

import numpy as np

from .. import backend
from ..storage import Storage
from ..tensor import Tensor
from .module import Module, clear
from .shape import _fmt
from .shape_ops import squeeze, index_add


def _is_tensor(x):
    return isinstance(x, Tensor)


def _xp(a):
    return backend.array_module(a)


# --------------------------------------------------------------------------- padding
def _pad_map(n_in, before, after, reflect):
    """THNN's source position (0-based) of each output position along one axis."""
    n_out = n_in + before + after
    j = np.arange(n_out)
    if reflect:
        lo, hi = before * 2 - j, (n_in + before - 1) * 2 - j
    else:
        lo, hi = np.full(n_out, before), np.full(n_out, n_in + before - 1)
    ip = np.where(j < before, lo, np.where(j < n_in + before, j, hi))
    return ip - max(0, before) + max(0, -before)


class _SpatialPadding(Module):
    _reflect = None

    def __init__(self, pad_l, pad_r=None, pad_t=None, pad_b=None):
        super().__init__()
        self.pad_l = pad_l
        self.pad_r = pad_r if pad_r is not None else self.pad_l
        self.pad_t = pad_t if pad_t is not None else self.pad_l
        self.pad_b = pad_b if pad_b is not None else self.pad_l

    def _maps(self, input):
        if not _is_tensor(input) or input.dim() not in (3, 4):
            self._fail('a 3D or 4D (batch mode) tensor', input)
        h, w = input.size(input.dim() - 1), input.size(input.dim())
        oh, ow = h + self.pad_t + self.pad_b, w + self.pad_l + self.pad_r
        if oh < 1 or ow < 1:
            self._fail('an input larger than the cropping (output would be %dx%d)' % (oh, ow), input)
        iy = _pad_map(h, self.pad_t, self.pad_b, self._reflect)
        ix = _pad_map(w, self.pad_l, self.pad_r, self._reflect)
        if iy.min() < 0 or iy.max() >= h or ix.min() < 0 or ix.max() >= w:
            self._fail('an input larger than the padding (padding %d, %d, %d, %d)'
                       % (self.pad_l, self.pad_r, self.pad_t, self.pad_b), input)
        return input.size()[:-2] + (oh, ow), iy, ix

    def updateOutput(self, input):
        size, iy, ix = self._maps(input)
        self.output.resize(*size)
        if self.output.is_meta():
            return self.output
        out = self.output.numpy()
        xp = _xp(out)
        h, w = input.size(-2), input.size(-1)
        flat = xp.asarray((iy[:, None] * w + ix[None, :]).reshape(-1))
        src = input.numpy().reshape(-1, h * w)  # a view when the input is contiguous
        xp.take(src, flat, axis=1, out=out.reshape(src.shape[0], -1))
        return self.output

    def updateGradInput(self, input, gradOutput):
        size, iy, ix = self._maps(input)
        if not _is_tensor(gradOutput) or gradOutput.size() != size:
            self._fail('gradOutput of size %s' % _fmt(size), gradOutput)
        self.gradInput.resizeAs(input)
        if self.gradInput.is_meta():
            return self.gradInput
        g = self.gradInput.numpy()
        xp = _xp(g)
        g.fill(0)
        h, w = g.shape[-2:]
        flat = xp.asarray((iy[:, None] * w + ix[None, :]).reshape(-1))
        g2 = g.reshape(-1, h * w)
        index_add(xp, g2, (slice(None), flat), gradOutput.numpy().reshape(g2.shape[0], -1))
        return self.gradInput

    def __tostring__(self):
        return '%s(l=%d, r=%d, t=%d, b=%d)' % (self.__typename__, self.pad_l, self.pad_r,
                                               self.pad_t, self.pad_b)


class SpatialReflectionPadding(_SpatialPadding):
    """Pads the last two dims by reflection (negative pads crop)."""
    _reflect = True


class SpatialReplicationPadding(_SpatialPadding):
    """Pads the last two dims by repeating the border (negative pads crop)."""
    _reflect = False


# --------------------------------------------------------------------------- up-sampling
def _check_scale(scale):
    if isinstance(scale, bool) or not isinstance(scale, numbers.Real) or scale < 1:
        raise ValueError('scale_factor must be greater than 1')
    if int(scale) != scale:
        raise ValueError('scale_factor must be integer')


def _nearest_forward(out, inp, k, s):
    """out (..., s*n1, ..., s*nk) = inp (..., n1, ..., nk) repeated s times on the last k dims."""
    lead = inp.shape[:-k]
    spread = lead + sum(((n, s) for n in inp.shape[-k:]), ())
    src = inp.reshape(lead + sum(((n, 1) for n in inp.shape[-k:]), ()))
    out.reshape(spread)[...] = src


def _nearest_backward(g, go, k, s):
    lead = g.shape[:-k]
    spread = lead + sum(((n, s) for n in g.shape[-k:]), ())
    axes = tuple(len(lead) + 2 * i + 1 for i in range(k))
    _xp(g).sum(go.reshape(spread), axis=axes, out=g)


def _linear_matrix(n_in, n_out, dtype, xp):
    """THNN's (bi/tri)linear weights along one axis, align-corners style, as an
    (n_out, n_in) matrix; the positions and weights are computed in float32 as THNN does."""
    f32 = np.float32
    r = f32(n_in - 1) / f32(n_out - 1) if n_out > 1 else f32(0)
    pos = r * np.arange(n_out, dtype=f32)
    i1 = pos.astype(np.int64)
    p = (i1 < n_in - 1).astype(np.int64)
    l1 = (pos - i1.astype(f32)).astype(dtype)
    l0 = dtype.type(1) - l1
    A = np.zeros((n_out, n_in), dtype=dtype)
    rows = np.arange(n_out)
    np.add.at(A, (rows, i1), l0)
    np.add.at(A, (rows, i1 + p), l1)
    return xp.asarray(A)


def _apply_axes(x, mats, transpose=False):
    """Multiply the last len(mats) axes of x by the matrices (last axis first, as THNN nests
    its weights), A (n_out x n_in), or A^T with transpose."""
    xp = _xp(x)
    k = len(mats)
    for i in range(k - 1, -1, -1):
        ax = x.ndim - k + i
        A = mats[i]
        y = xp.moveaxis(x, ax, -1)
        y = xp.matmul(y, A if transpose else A.T)
        x = xp.moveaxis(y, -1, ax)
    return x


def _linear_forward(out, inp, k):
    xp = _xp(out)
    if inp.shape[-k:] == out.shape[-k:]:
        out[...] = inp
        return
    mats = [_linear_matrix(ni, no, out.dtype, xp) for ni, no in zip(inp.shape[-k:], out.shape[-k:])]
    out[...] = _apply_axes(inp, mats)


def _linear_backward(g, go, k):
    xp = _xp(g)
    if g.shape[-k:] == go.shape[-k:]:
        g[...] = go
        return
    mats = [_linear_matrix(ni, no, g.dtype, xp) for ni, no in zip(g.shape[-k:], go.shape[-k:])]
    g[...] = _apply_axes(go, mats, transpose=True)


def _size_storage(n):
    return Storage(n, np.int64)


class SpatialUpSamplingNearest(Module):
    """Nearest-neighbour up-sampling of the last two dims of a 3D or 4D input by an integer
    scale_factor (> 1)."""

    def __init__(self, scale):
        super().__init__()
        _check_scale(scale)
        self.scale_factor = scale
        self.inputSize = _size_storage(4)
        self.outputSize = _size_storage(4)

    def _out_size(self, input):
        if not _is_tensor(input) or input.dim() not in (3, 4):
            self._fail('a 3D or 4D tensor (SpatialUpSamplingNearest only support 3D or 4D tensors)', input)
        if self.scale_factor <= 1:
            self._fail('scale_factor > 1 (THNN), got %s, with' % self.scale_factor, input)
        s = int(self.scale_factor)
        return input.size()[:-2] + (input.size(-2) * s, input.size(-1) * s)

    def updateOutput(self, input):
        size = self._out_size(input)
        for i, (a, b) in enumerate(zip(input.size(), size), 1):
            self.inputSize[i] = a
            self.outputSize[i] = b
        self.output.resize(*size)
        if not self.output.is_meta():
            _nearest_forward(self.output.numpy(), input.numpy(), 2, int(self.scale_factor))
        return self.output

    def updateGradInput(self, input, gradOutput):
        size = self._out_size(input)
        if not _is_tensor(gradOutput) or gradOutput.size() != size:
            self._fail('gradOutput of size %s' % _fmt(size), gradOutput)
        self.gradInput.resizeAs(input)
        if not self.gradInput.is_meta():
            _nearest_backward(self.gradInput.numpy(), gradOutput.numpy(), 2, int(self.scale_factor))
        return self.gradInput


class SpatialUpSamplingBilinear(Module):
    """Bilinear up-sampling (align corners) of the last two dims of a 3D or 4D input, by an
    integer scale_factor or to {oheight=, owidth=} (a dict)."""

    def __init__(self, params):
        super().__init__()
        self.owidth = self.oheight = self.scale_factor = None
        if isinstance(params, dict):
            self.owidth, self.oheight = params.get('owidth'), params.get('oheight')
            if self.owidth is None or self.oheight is None:
                raise ValueError('nn.SpatialUpSamplingBilinear: owidth and oheight are required')
        else:
            _check_scale(params)
            self.scale_factor = params
        self.inputSize = _size_storage(4)
        self.outputSize = _size_storage(4)

    def _contiguous(self, t, field):
        if not t.isContiguous():
            if not _is_tensor(self.__dict__.get(field)):
                self.__dict__[field] = t.new()
            self.__dict__[field].resizeAs(t).copy(t)
            t = self.__dict__[field]
        return t

    def setSize(self, input):
        xdim = input.dim()
        for i in range(1, xdim + 1):
            self.inputSize[i] = input.size(i)
            self.outputSize[i] = input.size(i)
        if self.scale_factor is not None:
            self.outputSize[xdim - 1] = self.outputSize[xdim - 1] * int(self.scale_factor)
            self.outputSize[xdim] = self.outputSize[xdim] * int(self.scale_factor)
        else:
            self.outputSize[xdim - 1] = self.oheight
            self.outputSize[xdim] = self.owidth

    def _check(self, input):
        if not _is_tensor(input) or input.dim() not in (3, 4):
            self._fail('a 3D or 4D tensor (SpatialUpSamplingBilinear only supports 3D or 4D tensors)', input)
        if input.size(-1) < 1 or input.size(-2) < 1:
            self._fail('input and output sizes greater than 0', input)
        if self.scale_factor is None and (self.oheight < 1 or self.owidth < 1):
            self._fail('output sizes greater than 0 (oheight %s, owidth %s), with'
                       % (self.oheight, self.owidth), input)

    def updateOutput(self, input):
        self._check(input)
        input = self._contiguous(input, '_input')
        was3D = input.dim() == 3
        if was3D:
            input = input.view(1, *input.size())
        self.setSize(input)
        oh, ow = int(self.outputSize[3]), int(self.outputSize[4])
        self.output.resize(input.size(1), input.size(2), oh, ow)
        if not self.output.is_meta():
            _linear_forward(self.output.numpy(), input.numpy(), 2)
        if was3D:
            self.output = squeeze(self.output, 1)
        return self.output

    def updateGradInput(self, input, gradOutput):
        self._check(input)
        if not _is_tensor(gradOutput) or gradOutput.dim() != input.dim():
            self._fail('a gradOutput of the same dimension as the input', gradOutput)
        input = self._contiguous(input, '_input')
        gradOutput = self._contiguous(gradOutput, '_gradOutput')
        was3D = input.dim() == 3
        if was3D:
            input = input.view(1, *input.size())
            gradOutput = gradOutput.view(1, *gradOutput.size())
        want = input.size()[:2] + (int(self.outputSize[3]), int(self.outputSize[4]))
        if gradOutput.size() != want:
            self._fail('gradOutput of size %s' % _fmt(want[1:] if was3D else want), gradOutput)
        self.gradInput.resizeAs(input)
        if not self.gradInput.is_meta():
            _linear_backward(self.gradInput.numpy(), gradOutput.numpy(), 2)
        if was3D:
            self.gradInput = squeeze(self.gradInput, 1)
        return self.gradInput

    def clearState(self):
        clear(self, '_input', '_gradOutput')
        return super().clearState()

    def __tostring__(self):
        if self.scale_factor is not None:
            return '%s(%d)' % (self.__typename__, self.scale_factor)
        return '%s(%d, %d)' % (self.__typename__, self.oheight, self.owidth)


class UpSampling(Module):
    """Up-sampling of a 4D (spatial) or 5D (volumetric) batch: 'nearest' (integer
    scale_factor) or 'linear' (bi/trilinear, align corners; scale_factor or a dict of
    oheight, owidth[, odepth])."""

    def __init__(self, params, mode=None):
        super().__init__()
        self.mode = 'linear' if mode in ('linear', 'bilinear', 'trilinear') else 'nearest'
        self.odepth = self.owidth = self.oheight = self.scale_factor = None
        if isinstance(params, dict):
            if self.mode == 'nearest':
                raise ValueError('nn.UpSampling: Nearest neighbour upsampling requires a scale_factor')
            self.odepth, self.owidth, self.oheight = params.get('odepth'), params.get('owidth'), params.get('oheight')
            if self.owidth is None or self.oheight is None:
                raise ValueError('nn.UpSampling: Output height and width parameters are required')
        else:
            _check_scale(params)
            self.scale_factor = params
        self.inputSize = _size_storage(5)
        self.outputSize = _size_storage(5)

    def setSize(self, input):
        xdim = input.dim()
        k = xdim - 2
        for i in range(1, xdim + 1):
            self.inputSize[i] = input.size(i)
            self.outputSize[i] = input.size(i)
        if self.scale_factor is not None:
            for d in range(3, xdim + 1):
                self.outputSize[d] = self.outputSize[d] * int(self.scale_factor)
        else:
            if k == 3:
                self.outputSize[3] = self.odepth
            self.outputSize[xdim - 1] = self.oheight
            self.outputSize[xdim] = self.owidth

    def _check(self, input):
        if not _is_tensor(input) or input.dim() not in (4, 5):
            self._fail('a 4D or 5D tensor (UpSampling only supports 4D or 5D tensors)', input)
        if self.scale_factor is None and input.dim() == 5 and self.odepth is None:
            self._fail('a 4D tensor (no output depth dimension was supplied for volumetric upsampling)',
                       input)
        if self.mode == 'nearest' and self.scale_factor <= 1:
            self._fail('scale_factor > 1 (THNN), got %s, with' % self.scale_factor, input)
        if any(s < 1 for s in input.size()[2:]):
            self._fail('input sizes greater than 0', input)

    def _out_size(self, input):
        self.setSize(input)
        size = tuple(int(self.outputSize[i]) for i in range(1, input.dim() + 1))
        if any(s < 1 for s in size[2:]):
            self._fail('output sizes greater than 0 (%s), with' % _fmt(size), input)
        return size

    def updateOutput(self, input):
        self._check(input)
        size = self._out_size(input)
        self.output.resize(*size)
        if not self.output.is_meta():
            k = input.dim() - 2
            if self.mode == 'nearest':
                _nearest_forward(self.output.numpy(), input.numpy(), k, int(self.scale_factor))
            else:
                _linear_forward(self.output.numpy(), input.numpy(), k)
        return self.output

    def updateGradInput(self, input, gradOutput):
        self._check(input)
        if not _is_tensor(gradOutput) or gradOutput.dim() != input.dim():
            self._fail('a gradOutput of the same dimension as the input', gradOutput)
        size = self._out_size(input)
        if gradOutput.size() != size:
            self._fail('gradOutput of size %s' % _fmt(size), gradOutput)
        self.gradInput.resizeAs(input)
        if not self.gradInput.is_meta():
            k = input.dim() - 2
            if self.mode == 'nearest':
                _nearest_backward(self.gradInput.numpy(), gradOutput.numpy(), k, int(self.scale_factor))
            else:
                _linear_backward(self.gradInput.numpy(), gradOutput.numpy(), k)
        return self.gradInput

    def __tostring__(self):
        if self.scale_factor is not None:
            return '%s(%dx, %s)' % (self.__typename__, self.scale_factor, self.mode)
        if self.odepth is not None:
            return '%s(%dx%dx%d, %s)' % (self.__typename__, self.odepth, self.oheight, self.owidth, self.mode)
        return '%s(%dx%d, %s)' % (self.__typename__, self.oheight, self.owidth, self.mode)


class PixelShuffle(Module):
    """Rearranges (b x) c*r^2 x h x w into (b x) c x h*r x w*r (sub-pixel convolution's
    shuffle); output and gradInput are views of the `_shuffleOut` / `_shuffleIn` buffers."""

    def __init__(self, upscaleFactor):
        super().__init__()
        self.upscaleFactor = upscaleFactor
        self.upscaleFactorSquared = upscaleFactor * upscaleFactor

    def _geom(self, input):
        if not _is_tensor(input) or input.dim() not in (3, 4):
            self._fail('a 3D or 4D (batch) tensor', input)
        batched = input.dim() == 4
        b = input.size(1) if batched else 1
        c, h, w = input.size()[-3:]
        if c % self.upscaleFactorSquared:
            self._fail('a channel count divisible by %d' % self.upscaleFactorSquared, input)
        return batched, b, c // self.upscaleFactorSquared, h, w

    def updateOutput(self, input):
        batched, b, c, h, w = self._geom(input)
        r = self.upscaleFactor
        d = self.__dict__
        if not isinstance(d.get('_intermediateShape'), Storage):
            self._intermediateShape = _size_storage(6)
        self._outShape = Storage(0, np.int64)  # Lua reads self.outShape (nil): a new one each call
        if not _is_tensor(d.get('_shuffleOut')):
            self._shuffleOut = input.new()
        inter = (b, c, r, r, h, w)
        outshape = ((b,) if batched else ()) + (c, h * r, w * r)
        self._outShape.resize(len(outshape))
        for i, v in enumerate(inter, 1):
            self._intermediateShape[i] = v
        for i, v in enumerate(outshape, 1):
            self._outShape[i] = v
        self._shuffleOut.resize(b, c, h, r, w, r)
        if not self._shuffleOut.is_meta():
            src = input.numpy().reshape(inter)
            self._shuffleOut.numpy()[...] = src.transpose(0, 1, 4, 2, 5, 3)
        self.output = self._shuffleOut.view(*outshape)
        return self.output

    def updateGradInput(self, input, gradOutput):
        batched, b, c, h, w = self._geom(input)
        r = self.upscaleFactor
        want = ((b,) if batched else ()) + (c, h * r, w * r)
        if not _is_tensor(gradOutput) or gradOutput.size() != want:
            self._fail('gradOutput of size %s' % _fmt(want), gradOutput)
        d = self.__dict__
        if not isinstance(d.get('_intermediateShape'), Storage):
            self._intermediateShape = _size_storage(6)
        if not _is_tensor(d.get('_shuffleIn')):
            self._shuffleIn = input.new()
        inter = (b, c, h, r, w, r)
        for i, v in enumerate(inter, 1):
            self._intermediateShape[i] = v
        self._shuffleIn.resize(b, c, r, r, h, w)
        if not self._shuffleIn.is_meta():
            self._shuffleIn.numpy()[...] = gradOutput.numpy().reshape(inter).transpose(0, 1, 3, 5, 2, 4)
        self.gradInput = self._shuffleIn.view(*input.size())
        return self.gradInput

    def clearState(self):
        clear(self, '_shuffleIn', '_shuffleOut')
        for f in ('_intermediateShape', '_outShape'):  # nn.utils.clear sets non-tensors to nil
            self.__dict__.pop(f, None)
        return super().clearState()
