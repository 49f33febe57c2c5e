"""Convolutions: SpatialConvolution and SpatialConvolutionMM (THNN's unfold + GEMM algorithm).

Fields as in Lua nn (2017): nInputPlane, nOutputPlane, kW, kH, dW, dH, padW, padH, weight,
bias, gradWeight, gradBias, and the lazily created buffers finput (the unfolded input,
B x nIn*kH*kW x oH*oW, written by updateOutput and read by accGradParameters) and
fgradInput (same shape, resized in updateGradInput).

With a batch, finput and fgradInput keep THNN's sizes and storage sizes but are strided
views (strides L, B*L, 1 for L = oH*oW) over a storage holding the nIn*kH*kW x (B*L) matrix
of the whole batch, so that each pass is one GEMM for the batch rather than one per image
(finput[b] is the unfolded input of image b). Transient GEMM operands go into a buffer of
the module whose content is dead during the call (fgradInput in updateOutput and
accGradParameters, gradInput before its col2im in updateGradInput) when it is big enough,
else into chunk-sized temporaries.

Two batch algorithms for stride 1 use the same buffers differently (their sizes unchanged):
  * few input planes (kW*nIn from 24 to 96; e.g. CIFAR ResNets' 16 and 32 planes): the grid
    algorithm of functional.conv2d_grid_*; finput then holds the input's shifted grid
    (accGradParameters rebuilds it from the input when it is not this module's own, e.g.
    after a clone or a load), fgradInput that of gradOutput;
  * otherwise, up to 1024 rows in gradOutput's unfolding: updateGradInput is the
    convolution of gradOutput with the flipped kernels (fgradInput holds that unfolding)
    instead of a GEMM and a col2im.
benchmarks/conv_algorithms.py times each algorithm on each kind of layer.

float32 convolutions run on oneDNN instead where it is installed (pynn.nn.dnnl) and the
buffers hold its working memory: finput then holds oneDNN's copy of the input (read by
accGradParameters, as THNN reads the unfolded input; record `_pynn_dnnl`) and its scratch,
fgradInput the input gradient's scratch.
"""

import numpy as np

from ...tensor import Tensor
from ..module import Module, clear, uniform_reset
from .. import dnnl
from .. import functional as F


class _SpatialConvolutionMMBase(Module):
    """Shared code of SpatialConvolution (4-D weight) and SpatialConvolutionMM (2-D weight)."""

    def __init__(self, nInputPlane, nOutputPlane, kW, kH, dW=1, dH=1, padW=0, padH=None):
        super().__init__()
        self.nInputPlane = nInputPlane
        self.nOutputPlane = nOutputPlane
        self.kW = kW
        self.kH = kH
        self.dW = 1 if dW is None else dW
        self.dH = 1 if dH is None else dH
        self.padW = 0 if padW is None else padW
        self.padH = self.padW if padH is None else padH
        shape = self._weight_shape()
        self.weight = Tensor(*shape)
        self.bias = Tensor(nOutputPlane)
        self.gradWeight = Tensor(*shape)
        self.gradBias = Tensor(nOutputPlane)
        self.reset()

    def _weight_shape(self):
        raise NotImplementedError

    def noBias(self):
        self.__dict__.pop('bias', None)
        self.__dict__.pop('gradBias', None)
        return self

    def reset(self, stdv=None):
        uniform_reset(self, stdv, self.kW * self.kH * self.nInputPlane)

    # --- compatibility and buffers -------------------------------------------
    def _back_compat(self, proto):
        """Lua's backward compatibility steps; proto makes the lazily created buffers."""
        d = self.__dict__
        if d.get('finput') is None:
            self.finput = proto.new()
        if d.get('fgradInput') is None:
            self.fgradInput = proto.new()
        if d.get('padding') is not None:
            self.padW = self.padH = d.pop('padding')
        else:
            if d.get('padW') is None:
                self.padW = 0
            if d.get('padH') is None:
                self.padH = 0

    def _params(self):
        pad = self.__dict__.get('padding')
        if pad is not None:
            return self.kW, self.kH, self.dW, self.dH, pad, pad
        return (self.kW, self.kH, self.dW, self.dH,
                self.__dict__.get('padW') or 0, self.__dict__.get('padH') or 0)

    def _weight_nin_nout(self, w):
        if w.dim() not in (2, 4):
            raise ValueError('%s: 2D or 4D weight tensor expected, but got %s'
                             % (self._name(), 'x'.join(map(str, w.size())) or 'empty'))
        if w.dim() == 4:
            return w.size(2) * w.size(3) * w.size(4) // (self.kH * self.kW), w.size(1)
        return w.size(2) // (self.kH * self.kW), w.size(1)

    def _check(self, input, gradOutput=None, weight=None, bias=None):
        """THNN's shapeCheck, raising ValueError before anything is modified."""
        kW, kH, dW, dH, padW, padH = self._params()
        if not (kW > 0 and kH > 0):
            raise ValueError('%s: kernel size should be greater than zero, but got kH: %d kW: %d'
                             % (self._name(), kH, kW))
        if not (dW > 0 and dH > 0):
            raise ValueError('%s: stride should be greater than zero, but got dH: %d dW: %d'
                             % (self._name(), dH, dW))
        if not isinstance(input, Tensor):
            self._fail('a 3D or 4D input tensor (nInputPlane x H x W, or B x nInputPlane x H x W)', input)
        weight = self.weight if weight is None else weight
        nIn, nOut = self._weight_nin_nout(weight)
        if input.dim() not in (3, 4):
            self._fail('a 3D or 4D input tensor (%d x H x W, or B x %d x H x W)' % (nIn, nIn), input)
        if input.type() != weight.type():
            self._fail('an input of type %s (the type of the weight)' % weight.type(), input)
        if bias is not None and (bias.dim() != 1 or bias.size(1) != nOut):
            raise ValueError('%s: bias of size %d expected' % (self._name(), nOut))
        b = input.dim() == 4
        iH, iW = input.size(2 + b), input.size(3 + b)
        oH, oW = F.conv_output_size(iH, iW, kH, kW, dH, dW, padH, padW)
        if oW < 1 or oH < 1:
            self._fail('an input big enough for a %dx%d kernel with padding %d,%d: calculated '
                       'output size %dx%dx%d is too small' % (kW, kH, padW, padH, nOut, oH, oW), input)
        if input.size(1 + b) != nIn:
            self._fail('%d input planes (dimension %d)' % (nIn, 1 + b), input)
        if gradOutput is not None:
            want = ((input.size(1),) if b else ()) + (nOut, oH, oW)
            if not isinstance(gradOutput, Tensor) or gradOutput.size() != want:
                self._fail('gradOutput of size %s' % 'x'.join(map(str, want)), gradOutput)
            if gradOutput.type() != input.type():
                self._fail('gradOutput of type %s' % input.type(), gradOutput)
        return b, nIn, nOut, iH, iW, oH, oW

    @staticmethod
    def _as4d(t, batch):
        a = t.numpy()
        return a if batch else a[None]

    @staticmethod
    def _w2d(w, nOut):
        return w.numpy().reshape(nOut, -1)

    @staticmethod
    def _kmajor(t):
        """Lay a B x K x L buffer (finput, fgradInput) out over a storage that holds the
        K x (B*L) matrix of the whole batch: strides (L, B*L, 1). Size and number of storage
        elements stay THNN's, and t[b][k][p] is still the unfolded input; the kernels then
        run one GEMM for the whole batch instead of one per image."""
        B, K, L = t.size()
        stride = F.kmajor_strides(B, K, L)
        if B > 1 and t.nElement() and t.stride() != stride:
            t.set(t.storage(), t.storageOffset(), (B, K, L), stride)
        return t

    @staticmethod
    def _cols(t, B, K, L):
        """finput/fgradInput as a (B, K, L) array (its strides kept)."""
        a = t.numpy()
        return a if a.shape == (B, K, L) else a.reshape(B, K, L)

    @staticmethod
    def _budget(B, K, L, nOut):
        """Elements of the GEMM temporaries allocated when no dead buffer can hold them:
        about 1/16 of finput (THNN's biggest buffer), at least one image and 64K elements."""
        return max(nOut * L, (B * K * L + nOut * K) // 16, 1 << 16)

    def _w4d(self, w, nOut, nIn):
        return w.numpy().reshape(nOut, nIn, self.kH, self.kW)

    def _grid_buffer(self, t, batch, B, C, H, W, *live, pads=None, held=False):
        """The flat elements of buffer t (finput or fgradInput) for the grid algorithm
        (functional.conv2d_grid_*) on B x C x H x W planes, when that algorithm is the one
        to use (or t already `held` this module's grid) and t is free to hold it; else None
        (im2col + GEMM)."""
        kW, kH, dW, dH, padW, padH = self._params()
        padH, padW = pads or (padH, padW)
        if not batch or B < 2 or F.array_module(t.numpy()) is not np:
            return None
        if held:   # only read (accGradParameters): no overlap with live tensors to fear
            return self._dead(t, t.nElement())
        if not F.conv2d_grid_fits(B, C, H, W, kH, kW, dH, dW, padH, padW, t.nElement()):
            return None
        return self._dead(t, t.nElement(), *live)

    def _flipped_conv_cols(self, batch, B, nIn, nOut, iH, iW, room, gradOutput, input):
        """fgradInput's elements as the K-major (B, nOut*kH*kW, iH*iW) unfolding of
        gradOutput with the complementary padding, when updateGradInput is to be that
        convolution (stride 1, nOut*kH*kW <= 1024: measured faster than GEMM + col2im
        there, equal above) and it fits in fgradInput; else None."""
        kW, kH, dW, dH, padW, padH = self._params()
        K2, L2 = nOut * kH * kW, iH * iW
        if (not batch or B < 2 or dH != 1 or dW != 1 or padH >= kH or padW >= kW
                or K2 > 1024 or B * K2 * L2 > room):
            return None
        if F.array_module(self.fgradInput.numpy()) is not np:
            return None
        flat = self._dead(self.fgradInput, room, gradOutput, input, self.finput, self.weight,
                          self.gradInput)
        if flat is None:
            return None
        return flat[:B * K2 * L2].reshape(K2, B, L2).transpose(1, 0, 2)

    def _grid_key(self, input):
        """What finput's grid was made from (checked by accGradParameters)."""
        return (input.size(), self._params(), id(self.finput.storage()))

    def _dnnl_work(self, x4, w4, out_hw, bias, kinds, buffer, *live):
        """oneDNN's working memory for the passes `kinds` (the biggest of their blocked copies
        and scratchpads): the elements of `buffer`, a buffer of this module whose content is
        dead during the call; an empty array when none is needed; None when the buffer cannot
        hold it or oneDNN declines the convolution (the NumPy kernels run then: no memory
        beside the module's own)."""
        kW, kH, dW, dH, padW, padH = self._params()
        needs = [dnnl.scratch_elements(x4, w4, out_hw, (dH, dW), (padH, padW), bias, k)
                 for k in kinds]
        if None in needs:   # a convolution oneDNN declines
            return None
        need = max(needs)
        if not need:
            return np.empty(0, dtype=np.float32)
        return self._dead(buffer, need, *live)

    @staticmethod
    def _dead(t, need, *live):
        """The elements of t, a buffer of this module whose content is dead during the call
        at hand, as a flat array the kernels may overwrite (scratch instead of a temporary);
        None when t has fewer than `need` elements, no data, is not dense, or shares its
        storage with one of the tensors in `live`."""
        if not isinstance(t, Tensor) or need <= 0 or t.nElement() < need or t.is_meta():
            return None
        st = t.storage()
        n = t.nElement()
        if 1 + sum((sz - 1) * sd for sz, sd in zip(t.size(), t.stride())) != n:
            return None
        off = t.storageOffset() - 1
        for u in live:   # elements of a live tensor in the same storage (an optnet arena)?
            if isinstance(u, Tensor) and u.storage() is st and u.nElement():
                lo = u.storageOffset() - 1
                hi = lo + 1 + sum((sz - 1) * sd for sz, sd in zip(u.size(), u.stride()))
                if lo < off + n and off < hi:
                    return None
        return st.data[off:off + n]

    # --- protocol ---------------------------------------------------------------
    def _update_output(self, input, proto):
        bias = self.__dict__.get('bias')
        batch, nIn, nOut, iH, iW, oH, oW = self._check(input, bias=bias)
        self._back_compat(proto)
        kW, kH, dW, dH, padW, padH = self._params()
        K, L = nIn * kH * kW, oH * oW
        if batch:
            B = input.size(1)
            self._kmajor(self.finput.resize(B, K, L))
            self.output.resize(B, nOut, oH, oW)
        else:
            B = 1
            self.finput.resize(K, L)
            self.output.resize(nOut, oH, oW)
        if self.output.is_meta():
            return self.output
        self.__dict__.pop('_pynn_grid', None)
        self.__dict__.pop('_pynn_dnnl', None)
        x4, w4, out4 = (self._as4d(input, batch), self._w4d(self.weight, nOut, nIn),
                        self._as4d(self.output, batch))
        b = None if bias is None else bias.numpy()
        # oneDNN's working memory is finput, where it leaves its copy of the input for the
        # weight gradient (as THNN leaves the unfolded input): room for both passes is needed
        work = (self._dnnl_work(x4, w4, (oH, oW), b is not None, ('forward', 'weight'),
                                self.finput, input, self.output, self.weight, bias)
                if dnnl.serves(x4, w4, b, out4) else None)
        if work is not None:
            dnnl.forward(x4, w4, b, out4, (dH, dW), (padH, padW), work)
            self._pynn_dnnl = self._grid_key(input)
            return self.output
        gbuf = self._grid_buffer(self.finput, batch, B, nIn, iH, iW, input, self.output,
                                 self.weight, bias)
        if gbuf is not None:
            F.conv2d_grid_forward(input.numpy(), w4, b, gbuf, self.output.numpy(), padH, padW)
            self._pynn_grid = self._grid_key(input)
            return self.output
        # fgradInput's content only matters inside updateGradInput: scratch for the GEMM's
        # chunks (their size is the budget's; conv2d_mm_forward checks that one fits)
        scratch = None if B == 1 else self._dead(self.fgradInput, nOut * L, self.finput,
                                                 self.output, input, self.weight, bias)
        F.conv2d_mm_forward(x4, self._w2d(self.weight, nOut), b,
                            self._cols(self.finput, B, K, L),
                            self.output.numpy().reshape(B, nOut, L),
                            kH, kW, dH, dW, padH, padW, self._budget(B, K, L, nOut), scratch)
        return self.output

    def _update_grad_input(self, input, gradOutput, checked=None):
        batch, nIn, nOut, iH, iW, oH, oW = checked or self._check(input, gradOutput)
        kW, kH, dW, dH, padW, padH = self._params()
        self.gradInput.resizeAs(input)
        self.fgradInput.resizeAs(self.finput)
        B = input.size(1) if batch else 1
        K, L = nIn * kH * kW, oH * oW
        if self.fgradInput.size() == (B, K, L):
            self._kmajor(self.fgradInput)
        if self.gradInput.is_meta():
            return self.gradInput
        go4, w4, gx4 = (self._as4d(gradOutput, batch), self._w4d(self.weight, nOut, nIn),
                        self._as4d(self.gradInput, batch))
        has_bias = self.__dict__.get('bias') is not None
        work = (self._dnnl_work(gx4, w4, (oH, oW), has_bias, ('input',), self.fgradInput,
                                gradOutput, input, self.finput, self.weight, self.gradInput)
                if dnnl.serves(go4, w4, gx4) else None)
        if work is not None:
            dnnl.backward_input(go4, w4, gx4, (dH, dW), (padH, padW), work, has_bias)
            return self.gradInput
        # the gradient is the convolution of gradOutput with the flipped kernels
        gbuf = self._grid_buffer(self.fgradInput, batch, B, nOut, oH, oW, gradOutput, input,
                                 self.finput, self.weight, self.gradInput,
                                 pads=(kH - 1 - padH, kW - 1 - padW))
        if gbuf is not None:
            F.conv2d_grid_backward_input(gradOutput.numpy(), self._w4d(self.weight, nOut, nIn),
                                         gbuf, self.gradInput.numpy(), padH, padW)
            return self.gradInput
        # stride 1 with up to 1024 rows of gradOutput's unfolding: the same convolution as
        # im2col(gradOutput) + one GEMM written straight into gradInput (no col2im pass)
        cols = self._flipped_conv_cols(batch, B, nIn, nOut, iH, iW, B * K * L, gradOutput, input)
        if cols is not None:
            w = self._w4d(self.weight, nOut, nIn).transpose(1, 0, 2, 3)[:, :, ::-1, ::-1]
            F.conv2d_mm_forward(gradOutput.numpy(), w.reshape(nIn, nOut * kH * kW), None, cols,
                                self.gradInput.numpy().reshape(B, nIn, iH * iW), kH, kW, 1, 1,
                                kH - 1 - padH, kW - 1 - padW, self._budget(B, K, L, nOut))
            return self.gradInput
        # gradInput is only written by the final col2im: scratch for gathering gradOutput
        scratch = None if B == 1 else self._dead(self.gradInput, B * nOut * L, gradOutput,
                                                 input, self.fgradInput, self.finput, self.weight)
        F.conv2d_mm_backward_input(gradOutput.numpy().reshape(B, nOut, L),
                                   self._w2d(self.weight, nOut),
                                   self._cols(self.fgradInput, B, K, L),
                                   self._as4d(self.gradInput, batch),
                                   kH, kW, dH, dW, padH, padW, self._budget(B, K, L, nOut),
                                   scratch)
        return self.gradInput

    def _acc_grad_parameters(self, input, gradOutput, scale, checked=None):
        gradBias = self.__dict__.get('gradBias')
        batch, nIn, nOut, iH, iW, oH, oW = checked or self._check(input, gradOutput,
                                                                  self.gradWeight, gradBias)
        if not self.gradWeight.isContiguous():
            raise ValueError('%s: gradWeight needs to be contiguous' % self._name())
        if gradBias is not None and not gradBias.isContiguous():
            raise ValueError('%s: gradBias needs to be contiguous' % self._name())
        kW, kH, dW, dH, padW, padH = self._params()
        B = input.size(1) if batch else 1
        K, L = nIn * kH * kW, oH * oW
        finput = self.__dict__.get('finput')
        if finput is None or finput.nElement() != B * K * L:
            raise ValueError('%s: accGradParameters needs the finput of a forward on this input '
                             '(finput of %d elements, expected %d)'
                             % (self._name(), 0 if finput is None else finput.nElement(), B * K * L))
        if self.gradWeight.is_meta():
            return
        x4, go4 = self._as4d(input, batch), self._as4d(gradOutput, batch)
        gw4 = self._w4d(self.gradWeight, nOut, nIn)
        has_bias = self.__dict__.get('bias') is not None
        # after a oneDNN forward finput holds oneDNN's copy of the input (the input itself
        # may have been overwritten since: optnet plans on THNN reading finput): the weight
        # gradient is oneDNN's too
        work = None
        if self.__dict__.get('_pynn_dnnl') == self._grid_key(input):
            work = self._dnnl_work(x4, gw4, (oH, oW), has_bias, ('weight',), finput, gradOutput,
                                   input, self.gradWeight, gradBias)
            if work is None:   # pragma: no cover - the forward checked that finput holds it
                raise RuntimeError('%s: finput cannot hold oneDNN\'s working memory' % self._name())
        if work is not None:
            go4 = np.ascontiguousarray(go4)
            dw = np.empty_like(gw4)
            db = np.empty(nOut, dtype=np.float32) if has_bias else None
            dnnl.backward_weight(x4, go4, dw, db, (dH, dW), (padH, padW), work, has_bias)
            if scale != 1:
                dw *= scale
            gw4 += dw
            if gradBias is not None and db is not None:
                if scale != 1:
                    db *= scale
                gradBias.numpy()[...] += db
            return
        # finput holds this module's grid when the forward's record matches
        held = self.__dict__.get('_pynn_grid') == self._grid_key(input)
        gbuf = self._grid_buffer(finput, batch, B, nIn, iH, iW, gradOutput, input,
                                 self.gradWeight, gradBias, held=held)
        if gbuf is not None:
            if held:
                S = F.grid_row_length(B, iH, iW, kH, kW, padH, padW)
                m = gbuf[:kW * nIn * S].reshape(kW * nIn, S)
            else:   # finput not from a grid forward here (loaded, cloned): rebuild it
                m = F.conv2d_grid_load(input.numpy(), gbuf, kH, kW, padH, padW)
                self._pynn_grid = self._grid_key(input)
            F.conv2d_grid_backward_weight(gradOutput.numpy(), m, iH, iW,
                                          self.gradWeight.numpy().reshape(nOut, nIn, kH, kW),
                                          None if gradBias is None else gradBias.numpy(),
                                          scale, padH, padW)
            return
        # fgradInput was consumed by updateGradInput: scratch for gathering gradOutput
        scratch = None if B == 1 else self._dead(self.__dict__.get('fgradInput'), B * nOut * L,
                                                 finput, gradOutput, input, self.gradWeight,
                                                 gradBias)
        F.conv2d_mm_backward_weight(gradOutput.numpy().reshape(B, nOut, L),
                                    self._cols(finput, B, K, L),
                                    self.gradWeight.numpy().reshape(nOut, K),
                                    None if gradBias is None else gradBias.numpy(),
                                    scale, self._budget(B, K, L, nOut), scratch)

    def type(self, name=None, tensorCache=None):
        # Lua: finput/fgradInput (when present) become fresh empty tensors, then convert
        d = self.__dict__
        if d.get('finput') is not None:
            self.finput = Tensor()
        if d.get('fgradInput') is not None:
            self.fgradInput = Tensor()
        return super().type(name, tensorCache)

    def clearState(self):
        clear(self, 'finput', 'fgradInput', '_input', '_gradOutput')
        return super().clearState()

    def __tostring__(self):
        d = self.__dict__
        padW, padH = d.get('padW'), d.get('padH')
        s = '%s(%d -> %d, %dx%d' % (self.__typename__, self.nInputPlane, self.nOutputPlane,
                                    self.kW, self.kH)
        if self.dW != 1 or self.dH != 1 or padW != 0 or padH != 0:
            s += ', %d,%d' % (self.dW, self.dH)
        if (padW or padH) and (padW != 0 or padH != 0):
            s += ', %s,%s' % (padW, padH)
        return s + (')' if d.get('bias') is not None else ') without bias')


class SpatialConvolution(_SpatialConvolutionMMBase):
    """nn.SpatialConvolution: weight nOutputPlane x nInputPlane x kH x kW; THNN's MM kernels.
    finput/fgradInput are created (from weight.new()) on the first call of any pass."""

    def _weight_shape(self):
        return (self.nOutputPlane, self.nInputPlane, self.kH, self.kW)

    def _back_compat(self, proto=None):
        super()._back_compat(self.weight)
        shape = self._weight_shape()
        if self.weight.dim() == 2:
            self.weight = self.weight.view(*shape)
        gw = self.__dict__.get('gradWeight')
        if gw is not None and gw.dim() == 2:
            self.gradWeight = gw.view(*shape)

    def updateOutput(self, input):
        return self._update_output(input, self.weight)

    def updateGradInput(self, input, gradOutput):
        if self.__dict__.get('gradInput') is None:
            return None
        checked = self._check(input, gradOutput)
        self._back_compat()
        return self._update_grad_input(input, gradOutput, checked)

    def accGradParameters(self, input, gradOutput, scale=1):
        checked = self._check(input, gradOutput, self.gradWeight, self.__dict__.get('gradBias'))
        self._back_compat()
        self._acc_grad_parameters(input, gradOutput, scale, checked)


class SpatialConvolutionMM(_SpatialConvolutionMMBase):
    """nn.SpatialConvolutionMM: weight nOutputPlane x (nInputPlane*kH*kW); finput/fgradInput
    are created (from input.new()) in updateOutput."""

    def _weight_shape(self):
        return (self.nOutputPlane, self.nInputPlane * self.kH * self.kW)

    def _back_compat(self, proto):
        d = self.__dict__
        if d.get('finput') is None:
            self.finput = proto.new()
        if d.get('fgradInput') is None:
            self.fgradInput = proto.new()
        if d.get('padding') is not None:
            self.padW = self.padH = d.pop('padding')

    def updateOutput(self, input):
        return self._update_output(input, input)

    def updateGradInput(self, input, gradOutput):
        if self.__dict__.get('gradInput') is None:
            return None
        if self.__dict__.get('finput') is None or self.__dict__.get('fgradInput') is None:
            raise ValueError('%s: updateGradInput called before updateOutput' % self._name())
        return self._update_grad_input(input, gradOutput)

    def accGradParameters(self, input, gradOutput, scale=1):
        d = self.__dict__
        if (d.get('bias') is None) != (d.get('gradBias') is None):
            raise ValueError('%s: bias and gradBias must both be set or both be absent' % self._name())
        self._acc_grad_parameters(input, gradOutput, scale)
