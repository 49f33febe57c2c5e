"""Normalization layers: BatchNormalization, SpatialBatchNormalization, SpatialCrossMapLRN,
Normalize, with Lua nn's fields and buffers (and THNN's numerics for batch normalization).
"""
import math
import numbers

import numpy as np

from ..tensor import Tensor
from .module import Module, clear
from .activation import lowbuf, check_tensor, check_same_shape, xpof


def _singleton_view(t):
    """nn.utils.addSingletonDimension(t): a new tensor viewing t with a leading dim of size 1."""
    v = t.new()
    if t.storage() is not None:
        v.set(t.storage(), t.storageOffset(), (1,) + t.size(), (1,) + t.stride())
    else:
        v.resize(*((1,) + t.size()))
    return v


# --- BatchNormalization ----------------------------------------------------------------------
class BatchNormalization(Module):
    """Batch normalization over dim 2 of a mini-batch (N x C for this class, N x C x H x W for
    SpatialBatchNormalization). Fields as Lua 2017 nn (version 2): affine, eps, momentum,
    running_mean, running_var, weight/bias/gradWeight/gradBias when affine, and lazily the
    buffers save_mean and save_std (the batch's mean and 1/sqrt(var + eps)), plus _input /
    _gradOutput (contiguous copies of non-contiguous tensors)."""

    nDim = 2
    __version__ = 2  # Lua's BN.__version: files of version < 2 hold running_std (see read)

    def __init__(self, nOutput, eps=1e-5, momentum=0.1, affine=None):
        super().__init__()
        if not isinstance(nOutput, numbers.Integral) or isinstance(nOutput, bool):
            raise ValueError('%s: Missing argument #1: dimensionality of input (got %r)'
                             % (self.__typename__, nOutput))
        if nOutput == 0:
            raise ValueError('%s: To set affine=false call BatchNormalization(nOutput, eps, momentum, '
                             'false)' % self.__typename__)
        if affine is not None:
            if not isinstance(affine, bool):
                raise ValueError('%s: affine has to be true/false, got %r' % (self.__typename__, affine))
            self.affine = affine
        else:
            self.affine = True
        self.eps = 1e-5 if eps is None else eps
        self.train = True
        self.momentum = 0.1 if momentum is None else momentum
        self.running_mean = Tensor(nOutput).zero()
        self.running_var = Tensor(nOutput).fill(1)
        if self.affine:
            self.weight = Tensor(nOutput)
            self.bias = Tensor(nOutput)
            self.gradWeight = Tensor(nOutput)
            self.gradBias = Tensor(nOutput)
            self.reset()

    def reset(self, stdv=None):
        if self.__dict__.get('weight') is not None:
            self.weight.uniform()
        if self.__dict__.get('bias') is not None:
            self.bias.zero()
        self.running_mean.zero()
        self.running_var.fill(1)

    def read(self, file=None, version=None):
        """Lua BN:read's upgrade of version-1 objects: running_std (1/sqrt(var + eps)) becomes
        running_var = running_std^-2 - eps. Call after the fields were loaded."""
        if (version is None or version < 2) and self.__dict__.get('running_std') is not None:
            rs = self.__dict__.pop('running_std')
            if not rs.is_meta():
                a = rs.numpy()
                xpof(a).power(a, -2, out=a)
                a -= self.eps
            self.running_var = rs
        return self

    # --- checks (Lua's checkInputDim plus THNN's shape checks) ---
    def _check(self, x, what='input'):
        check_tensor(self, x, what)
        iDim = x.dim()
        if not (iDim == self.nDim or (iDim == self.nDim - 1 and self.train is False)):
            self._fail('%s: only mini-batch supported (%dD tensor), got %dD tensor instead'
                       % (what, self.nDim, iDim), x)
        featDim = 1 if iDim == self.nDim - 1 else 2
        n = self.running_mean.nElement()
        if x.size(featDim) != n:
            self._fail('%s: got %d-feature tensor, expected %d' % (what, x.size(featDim), n), x)

    def _contiguous(self, input, gradOutput=None):
        if not input.isContiguous():
            if self.__dict__.get('_input') is None:
                self._input = input.new()
            self._input.resizeAs(input).copy(input)
            input = self._input
        if gradOutput is not None and not gradOutput.isContiguous():
            if self.__dict__.get('_gradOutput') is None:
                self._gradOutput = gradOutput.new()
            self._gradOutput.resizeAs(gradOutput).copy(gradOutput)
            gradOutput = self._gradOutput
        return input, gradOutput

    def _batch(self, x):
        # Lua's makeBatch: a non-batch input (evaluate mode only) gets a leading dim of 1.
        # (Lua re-views the caller's tensor itself; here a new view is used, same result.)
        if self.train is False and x.dim() == self.nDim - 1:
            return _singleton_view(x)
        return x

    @staticmethod
    def _shape3(x):
        s = x.size()
        return (s[0], s[1], x.nElement() // max(1, s[0] * s[1]))

    @lowbuf
    def updateOutput(self, input):
        self._check(input)
        input, _ = self._contiguous(input)
        input = self._batch(input)
        if self.__dict__.get('save_mean') is None:
            self.save_mean = input.new()
        self.save_mean.resizeAs(self.running_mean)
        if self.__dict__.get('save_std') is None:
            self.save_std = input.new()
        self.save_std.resizeAs(self.running_var)
        self.output.resizeAs(input)
        if self.output.is_meta():
            return self.output
        train = bool(self.train) and input.size(1) > 1  # no running-stat update for batch size 1
        shape = self._shape3(input)
        nInput = shape[1]
        n = input.nElement() // nInput
        x = input.numpy().reshape(shape)
        out = self.output.numpy().reshape(shape)
        xp = xpof(out)
        acc = np.float64 if out.dtype == np.float32 else None   # THNN's accreal
        w = self.__dict__.get('weight')
        b = self.__dict__.get('bias')
        if train:
            mean = (x.sum(axis=(0, 2), dtype=acc) / n).astype(out.dtype, copy=False)
            xp.subtract(x, mean[None, :, None], out=out)
            xp.square(out, out=out)
            ssum = out.sum(axis=(0, 2), dtype=acc)
            with np.errstate(divide='ignore'):
                invstd = 1 / xp.sqrt(ssum / n + self.eps)
            if self.eps == 0:
                invstd[ssum == 0] = 0
            invstd = invstd.astype(out.dtype, copy=False)
            self.save_mean.numpy()[...] = mean
            self.save_std.numpy()[...] = invstd
            m = self.momentum
            rm, rv = self.running_mean.numpy(), self.running_var.numpy()
            rm[...] = m * mean + (1 - m) * rm
            rv[...] = m * (ssum / (n - 1)) + (1 - m) * rv
        else:
            mean = self.running_mean.numpy()
            invstd = (1 / xp.sqrt(self.running_var.numpy().astype(np.float64) + self.eps)).astype(out.dtype)
        xp.subtract(x, mean[None, :, None], out=out)   # ((x - mean) * invstd) * w + b
        out *= invstd[None, :, None]
        if w is not None:
            out *= w.numpy()[None, :, None]
        if b is not None:
            out += b.numpy()[None, :, None]
        return self.output

    def _backward(self, input, gradOutput, scale, gradInput, gradWeight, gradBias):
        self._check(input)
        self._check(gradOutput, 'gradOutput')
        bsize = lambda t: t.size() if t.dim() == self.nDim else (1,) + t.size()
        if bsize(input) != bsize(gradOutput):       # THNN_CHECK_SHAPE, after makeBatch
            self._fail('gradOutput of size %s (the size of the input)'
                       % 'x'.join(map(str, input.size())), gradOutput)
        if self.__dict__.get('save_mean') is None or self.__dict__.get('save_std') is None:
            self._fail('a call to updateOutput() first (no save_mean/save_std yet) with', input)
        input, gradOutput = self._contiguous(input, gradOutput)
        input = self._batch(input)
        gradOutput = self._batch(gradOutput)
        scale = 1 if scale is None else scale
        if gradInput is not None:
            gradInput.resizeAs(gradOutput)
        if input.is_meta():
            return self.gradInput
        train = bool(self.train) and input.size(1) > 1
        shape = self._shape3(input)
        nInput = shape[1]
        n = input.nElement() // nInput
        x = input.numpy().reshape(shape)
        g = gradOutput.numpy().reshape(shape)
        xp = xpof(x)
        acc = np.float64 if x.dtype == np.float32 else None
        wt = self.__dict__.get('weight')
        w = wt.numpy() if wt is not None else None
        if train:
            mean, invstd = self.save_mean.numpy(), self.save_std.numpy()
        else:
            mean = self.running_mean.numpy()
            invstd = (1 / xp.sqrt(self.running_var.numpy().astype(np.float64) + self.eps)).astype(x.dtype)
        gsum = g.sum(axis=(0, 2), dtype=acc)
        mb = mean[None, :, None]
        if gradInput is not None:
            gi = gradInput.numpy().reshape(shape)
            xp.subtract(x, mb, out=gi)          # dotp = sum((x - mean) * g), gi as scratch
            gi *= g
            dotp = gi.sum(axis=(0, 2), dtype=acc)
            if train:
                k = (dotp * invstd * invstd / n).astype(x.dtype)
                xp.subtract(x, mb, out=gi)
                gi *= k[None, :, None]
                gi += (gsum / n).astype(x.dtype)[None, :, None]
                xp.subtract(g, gi, out=gi)      # (g - gradMean - (x - mean) * k) * invstd * w
                gi *= invstd[None, :, None]
            else:
                xp.multiply(g, invstd[None, :, None], out=gi)
            if w is not None:
                gi *= w[None, :, None]
        elif gradWeight is not None:
            # sum((x - mean) * g) without a full-size scratch: sum(x * g) - mean * sum(g)
            dotp = xp.einsum('ncs,ncs->c', x, g, dtype=acc or x.dtype) - mean * gsum
        if gradWeight is not None:
            gw = gradWeight.numpy()
            gw += (scale * dotp * invstd).astype(gw.dtype)
        if gradBias is not None:
            gb = gradBias.numpy()
            gb += (scale * gsum).astype(gb.dtype)
        return self.gradInput

    @lowbuf
    def backward(self, input, gradOutput, scale=1):
        return self._backward(input, gradOutput, scale, self.gradInput,
                              self.__dict__.get('gradWeight'), self.__dict__.get('gradBias'))

    @lowbuf
    def updateGradInput(self, input, gradOutput):
        return self._backward(input, gradOutput, 1, self.gradInput, None, None)

    @lowbuf
    def accGradParameters(self, input, gradOutput, scale=1):
        return self._backward(input, gradOutput, scale, None,
                              self.__dict__.get('gradWeight'), self.__dict__.get('gradBias'))

    def clearState(self):
        clear(self, 'buffer', 'buffer2', 'centered', 'std', 'normalized',
              '_input', '_gradOutput', 'save_mean', 'save_std')
        return super().clearState()

    def __tostring__(self):
        return '%s (%dD) (%d)' % (self.__typename__, self.nDim, self.running_mean.nElement())


class SpatialBatchNormalization(BatchNormalization):
    """BatchNormalization over the planes of N x C x H x W input (C x H x W in evaluate mode)."""
    nDim = 4
    __version__ = 2


# --- SpatialCrossMapLRN ------------------------------------------------------------------------
class SpatialCrossMapLRN(Module):
    """Local response normalization across channels (Lua's CPU code path):
    scale = k + alpha/size * sum of x^2 over `size` neighbouring channels,
    y = x * scale^-beta. Buffers: scale (forward, 4-D), paddedRatio and accumRatio (backward)."""

    def __init__(self, size, alpha=0.0001, beta=0.75, k=1):
        super().__init__()
        self.size = size
        self.alpha = 0.0001 if alpha is None else alpha
        self.beta = 0.75 if beta is None else beta
        self.k = 1 if k is None else k

    def _check(self, input):
        check_tensor(self, input, dims=(3, 4), dims_text='Input must be 3D or 4D')
        s = self.size
        if not isinstance(s, numbers.Integral) or s < 1 or s % 2 == 0:
            self._fail('an odd positive window size (Lua\'s CPU code handles odd sizes only; '
                       'size is %r) for' % (s,), input)

    @lowbuf
    def updateOutput(self, input):
        self._check(input)
        if self.__dict__.get('scale') is None:
            self.scale = input.new()
        cuda = input.device == 'cuda'
        is_batch = input.dim() == 4
        x_t = input if is_batch else _singleton_view(input)
        if cuda and not is_batch:   # THCUNN keeps 3-D output and scale
            self.output.resizeAs(input)
            self.scale.resizeAs(input)
        else:
            self.output.resizeAs(x_t)
            self.scale.resizeAs(x_t)
        if not self.output.is_meta():
            shape = x_t.size()
            x = x_t.numpy()
            out, sc = self.output.numpy().reshape(shape), self.scale.numpy().reshape(shape)
            self._forward(x, out, sc)
        if not is_batch and not cuda:
            self.output = self.output.select(1, 1)
        return self.output

    def _forward(self, x, out, sc):
        """scale[c] = k + alpha/size * sum of x^2 over channels c-(size-1)/2 .. c+(size-1)/2
        (one whole-array add per window offset; Lua keeps a running sum over the channels)."""
        xp = xpof(out)
        size = self.size
        C = x.shape[1]
        xp.square(x, out=out)          # output storage holds x^2 for now
        half = (size - 1) // 2
        sc.fill(0)
        for j in range(-half, half + 1):
            lo, hi = max(0, -j), min(C, C - j)
            if hi > lo:
                dst = sc[:, lo:hi]
                xp.add(dst, out[:, lo + j:hi + j], out=dst)
        sc *= self.alpha / size
        sc += self.k
        xp.power(sc, -self.beta, out=out)
        out *= x

    @lowbuf
    def updateGradInput(self, input, gradOutput):
        self._check(input)
        check_tensor(self, gradOutput, 'gradOutput')
        check_same_shape(self, input, gradOutput)
        if self.__dict__.get('scale') is None or self.scale.nElement() != input.nElement() \
                or self.output.nElement() != input.nElement():
            self._fail('a backward call after forward on this input size', input)
        cuda = input.device == 'cuda'
        is_batch = input.dim() == 4
        if not is_batch:
            input = _singleton_view(input)
            gradOutput = _singleton_view(gradOutput)
            if not cuda:
                self.output = _singleton_view(self.output)
        N, C, H, W = input.size()
        size = self.size
        if not cuda:
            if self.__dict__.get('paddedRatio') is None:
                self.paddedRatio = input.new()
            if self.__dict__.get('accumRatio') is None:
                self.accumRatio = input.new()
            self.paddedRatio.resize(C + size - 1, H, W)
            self.accumRatio.resize(H, W)
        if cuda and not is_batch:
            self.gradInput.resizeAs(gradOutput.select(1, 1))
        else:
            self.gradInput.resizeAs(input)
        if not self.gradInput.is_meta():
            shape = input.size()
            x, g = input.numpy(), gradOutput.numpy()
            out = self.output.numpy().reshape(shape)
            sc = self.scale.numpy().reshape(shape)
            gi = self.gradInput.numpy().reshape(shape)
            if cuda:
                xp = xpof(gi)
                padded, accum = xp.empty((C + size - 1, H, W), gi.dtype), xp.empty((H, W), gi.dtype)
            else:
                padded, accum = self.paddedRatio.numpy(), self.accumRatio.numpy()
            self._backward(x, g, out, sc, gi, padded, accum)
        if not cuda:
            self.accumRatio.resize(1, H, W)   # Lua's accumRatio:sum(..., 1) keeps a leading 1
        if not is_batch:
            if not cuda:
                self.gradInput = self.gradInput.select(1, 1)
                self.output = self.output.select(1, 1)
        return self.gradInput

    def _backward(self, x, g, out, sc, gi, padded, accum):
        """gi = scale^-beta * g - 2*alpha*beta/size * x * (sum of g*out/scale over the window
        [c - inversePrePad + 1, c + size - inversePrePad]): one whole-array add per window
        offset. Lua loops over samples and channels with paddedRatio/accumRatio; those buffers
        keep their sizes (and hold the last sample's values, as Lua leaves them)."""
        xp = xpof(gi)
        size = self.size
        N, C = x.shape[:2]
        cache = 2 * self.alpha * self.beta / size
        pre = size - (size - 1) // 2          # Lua's inversePrePad (1-based)
        xp.multiply(g, out, out=gi)           # gi holds the ratio g * out / scale for now
        gi /= sc
        H, W = gi.shape[2:]
        if N:
            padded.fill(0)
            padded[pre - 1:pre - 1 + C] = gi[N - 1]
            xp.sum(padded[C:C + size - 1], axis=0, out=accum)  # Lua's accumRatio after its loop
        # blocks of rows keep the window-sum scratch small (windows run along the channels)
        rows = max(1, min(H, max(4096, gi.size // 32) // max(1, N * C * W)))
        acc_buf = xp.empty((N, C, rows, W), dtype=gi.dtype)
        for h0 in range(0, H, rows):
            h1 = min(H, h0 + rows)
            r = gi[:, :, h0:h1]
            acc = acc_buf[:, :, :h1 - h0]
            acc.fill(0)
            for j in range(size):             # window offsets relative to the channel
                o = j - (pre - 1)
                lo, hi = max(0, -o), min(C, C - o)
                if hi > lo:
                    dst = acc[:, lo:hi]
                    xp.add(dst, r[:, lo + o:hi + o], out=dst)
            acc *= x[:, :, h0:h1]
            acc *= cache
            xp.power(sc[:, :, h0:h1], -self.beta, out=r)
            r *= g[:, :, h0:h1]
            r -= acc

    def clearState(self):
        clear(self, 'scale', 'paddedRatio', 'accumRatio')
        return super().clearState()


# --- Normalize ----------------------------------------------------------------------------------
class Normalize(Module):
    """y = x / ||x||_p for a vector or each row of a matrix; ||x||_p = (sum |x|^p + eps)^(1/p),
    and max |x| + eps for p = inf. Buffers as Lua: _output, norm, buffer, normp (finite p) or
    _indices (p = inf, a LongTensor of 1-based argmax), and in backward _gradInput, cross, buffer2."""

    def __init__(self, p, eps=1e-10):
        super().__init__()
        if p is None:
            raise ValueError('nn.Normalize: p-norm not provided')
        if not isinstance(p, numbers.Real) or isinstance(p, bool) or not p > 0:
            raise ValueError('nn.Normalize: %r-norm not supported' % (p,))
        self.p = p
        self.eps = 1e-10 if eps is None else eps

    def _check(self, input, what='input'):
        check_tensor(self, input, what, dims=(1, 2), dims_text='%s: only 1d layer supported '
                     '(a 1D or 2D tensor)' % what)

    def _is_inf(self):
        return self.p == math.inf

    @lowbuf
    def updateOutput(self, input):
        self._check(input)
        input_size = input.size()
        n, d = (1, input.size(1)) if input.dim() == 1 else input.size()
        for f in ('_output', 'norm', 'buffer'):
            if self.__dict__.get(f) is None:
                setattr(self, f, input.new())
        self._output.resize(n, d)
        p = self.p
        if self._is_inf():
            if self.__dict__.get('_indices') is None:
                self._indices = Tensor(kind='Long', device=input.device)
            self.buffer.resize(n, d)
            self.norm.resize(n, 1)
            self._indices.resize(n, 1)
        else:
            if self.__dict__.get('normp') is None:
                self.normp = input.new()
            self.buffer.resize(n, d)
            self.normp.resize(n, 1)
            self.norm.resize(n, 1)
        if not input.is_meta():
            x = input.numpy().reshape(n, d)
            buf, norm, out = self.buffer.numpy(), self.norm.numpy(), self._output.numpy()
            xp = xpof(out)
            if self._is_inf():
                xp.abs(x, out=buf)
                idx = buf.argmax(axis=1)
                self._indices.numpy()[:, 0] = idx + 1
                norm[:, 0] = buf[xp.arange(n), idx]
                norm += self.eps
            else:
                normp = self.normp.numpy()
                if p % 2 != 0:
                    xp.abs(x, out=buf)
                    xp.power(buf, p, out=buf)
                else:
                    xp.power(x, p, out=buf)
                xp.sum(buf, axis=1, keepdims=True, out=normp)
                normp += self.eps
                xp.power(normp, 1 / p, out=norm)
            xp.divide(x, norm, out=out)
        st = self._output.storage()
        if st is not None:
            self.output.set(st, self._output.storageOffset(), input_size)
        else:
            self.output.resize(*input_size)
        return self.output

    @lowbuf
    def updateGradInput(self, input, gradOutput):
        self._check(input)
        self._check(gradOutput, 'gradOutput')
        if gradOutput.nElement() != input.nElement():
            self._fail('gradOutput with as many elements as the input (%d)' % input.nElement(), gradOutput)
        ok = self.__dict__.get('norm') is not None and (
            self._is_inf() and self.__dict__.get('_indices') is not None
            or not self._is_inf() and self.__dict__.get('normp') is not None)
        n, d = (1, input.size(1)) if input.dim() == 1 else input.size()
        if not ok or self.norm.nElement() != n:
            self._fail('a backward call after forward on this input size', input)
        input_size = input.size()
        p = self.p
        for f in ('_gradInput', 'cross', 'buffer2'):
            if self.__dict__.get(f) is None:
                setattr(self, f, input.new())
        self._gradInput.resize(n, d)
        self.buffer.resize(n, d)
        self.cross.resize(n, 1)
        self.buffer2.resize(n, d)
        if not input.is_meta():
            x = input.numpy().reshape(n, d)
            g = gradOutput.numpy().reshape(n, d)
            gi, buf, cross = self._gradInput.numpy(), self.buffer.numpy(), self.cross.numpy()
            buf2, norm = self.buffer2.numpy(), self.norm.numpy()
            xp = xpof(gi)
            if self._is_inf():
                xp.multiply(norm, g, out=gi)
                buf.fill(0)
                idx = self._indices.numpy()[:, 0] - 1
                rows = xp.arange(n)
                cross[:, 0] = x[rows, idx]
                cross /= norm
                buf[rows, idx] = cross[:, 0]
            else:
                normp = self.normp.numpy()
                xp.multiply(normp, g, out=gi)
                if p % 2 != 0:              # buffer = x * |x|^(p-2)
                    xp.abs(x, out=buf)
                    if p < 2:
                        buf += self.eps
                    xp.power(buf, p - 2, out=buf)
                    buf *= x
                elif p == 2:
                    buf[...] = x
                else:
                    xp.power(x, p - 2, out=buf)
                    buf *= x
            xp.multiply(x, g, out=buf2)
            xp.sum(buf2, axis=1, keepdims=True, out=cross)
            buf *= cross
            gi -= buf
            if self._is_inf():
                xp.multiply(norm, norm, out=cross)
            else:
                xp.multiply(self.normp.numpy(), norm, out=cross)
            gi /= cross
        self.gradInput.set(self._gradInput.storage(), self._gradInput.storageOffset(), input_size) \
            if self._gradInput.storage() is not None else self.gradInput.resize(*input_size)
        return self.gradInput

    def type(self, name=None, tensorCache=None):
        if name is None:
            return self._type
        self.__dict__.pop('_indices', None)
        return super().type(name, tensorCache)

    def __tostring__(self):
        if self.p % 1 == 0:
            return '%s(%d)' % (self.__typename__, self.p)
        return '%s(%f)' % (self.__typename__, self.p)

    def clearState(self):
        clear(self, '_output', '_indices', '_gradInput', 'buffer', 'norm', 'normp', 'cross')
        return super().clearState()


# LayerNormalization and the local (subtractive, divisive, contrastive) normalizations live in
# localnorm.py; importable from here as the other classes of this family.
from .localnorm import (LayerNormalization, SpatialSubtractiveNormalization,  # noqa: E402,F401
                        SpatialDivisiveNormalization, SpatialContrastiveNormalization)
