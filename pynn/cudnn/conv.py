"""cudnn.SpatialConvolution: nn.SpatialConvolution's fields and numerics, no persistent buffers.

Lua's cudnn.SpatialConvolution keeps weight, bias, gradWeight, gradBias (and `groups`); its
algorithms' scratch space is one workspace shared by every module, owned by cudnn, not a field
of the module. Here the same holds:

* on NumPy (and on CuPy without cuDNN) the convolution is THNN's unfold + GEMM, run on chunks
  of the batch whose unfolded columns fit in a *transient* workspace of at most
  max(workspace_limit, one sample's columns) bytes, allocated for the call and freed after it;
  accGradParameters unfolds the input again (nothing of the forward is kept);
* on CuPy with cuDNN available (cupyx.cudnn), cuDNN's own convolution routines are called.

The numerics equal nn.SpatialConvolution's (same unfold, same GEMMs, same accumulation order of
the weight gradient over the batch).
"""
import math
import warnings

import numpy as np

from ..backend import array_module
from ..nn.conv import _SpatialConvolutionMMBase
from ..nn.functional import im2col, col2im_add, _small_buffers
from .layers import lua_contiguous

# bytes of unfolded columns one call may hold at once (at least one sample's, whatever this is)
WORKSPACE_LIMIT = [64 << 20]
# use cuDNN through CuPy for CuPy tensors when it is available
USE_CUPY_CUDNN = [True]


def setWorkspaceLimit(nbytes):
    """Bound (bytes) of the transient unfold workspace of a convolution call; returns the old one."""
    nbytes = int(nbytes)
    if nbytes < 0:
        raise ValueError('setWorkspaceLimit: expected a number of bytes >= 0, got %d' % nbytes)
    old, WORKSPACE_LIMIT[0] = WORKSPACE_LIMIT[0], nbytes
    return old


def getWorkspaceLimit():
    return WORKSPACE_LIMIT[0]


def _cupy_cudnn():
    """cupyx.cudnn when CuPy has cuDNN, else None."""
    if not USE_CUPY_CUDNN[0]:
        return None
    try:
        import cupy  # noqa: F401
        from cupy.cuda import cudnn as _libcudnn  # noqa: F401  (raises without libcudnn)
        import cupyx.cudnn as cx
        return cx
    except Exception:
        return None


class SpatialConvolution(_SpatialConvolutionMMBase):
    """cudnn.SpatialConvolution(nInputPlane, nOutputPlane, kW, kH, dW=1, dH=1, padW=0, padH=0,
    groups=1): weight nOutputPlane x nInputPlane/groups x kH x kW (a 2-D weight converted from
    nn.SpatialConvolutionMM is used as it is). No finput/fgradInput."""

    __typename__ = 'cudnn.SpatialConvolution'

    def __init__(self, nInputPlane, nOutputPlane, kW, kH, dW=1, dH=1, padW=0, padH=0, groups=1):
        groups = 1 if groups is None else groups
        if not isinstance(groups, int) or groups < 1 or nInputPlane % groups or nOutputPlane % groups:
            raise ValueError('cudnn.SpatialConvolution: nInputPlane (%d) and nOutputPlane (%d) should '
                             'be divisible by groups (%r)' % (nInputPlane, nOutputPlane, groups))
        self.groups = groups
        super().__init__(nInputPlane, nOutputPlane, kW, kH, dW, dH, 0 if padW is None else padW,
                         0 if padH is None else padH)

    def _weight_shape(self):
        return (self.nOutputPlane, self.nInputPlane // self.__dict__.get('groups', 1), self.kH, self.kW)

    def reset(self, stdv=None):
        # nn.SpatialConvolution's reset: fan-in kW*kH*nInputPlane (as cudnn.torch, whatever groups)
        if stdv is not None:
            stdv = stdv * math.sqrt(3)
        else:
            stdv = 1 / math.sqrt(self.kW * self.kH * self.nInputPlane)
        self.weight.uniform(-stdv, stdv)
        if self.__dict__.get('bias') is not None:
            self.__dict__['bias'].uniform(-stdv, stdv)

    def _groups(self):
        return self.__dict__.get('groups') or 1

    def _weight_nin_nout(self, w):
        nIn, nOut = super()._weight_nin_nout(w)
        return nIn * self._groups(), nOut

    def _back_compat(self, proto=None):
        d = self.__dict__
        if d.get('padding') is not None:
            self.padW = self.padH = d.pop('padding')
        if d.get('padW') is None:
            self.padW = 0
        if d.get('padH') is None:
            self.padH = 0
        if d.get('groups') is None:
            self.groups = 1

    # --- geometry of one call -----------------------------------------------------------------
    def _geometry(self, input, gradOutput=None, weight=None, bias=None):
        batch, nIn, nOut, iH, iW, oH, oW = self._check(input, gradOutput, weight, bias)
        kW, kH, dW, dH, padW, padH = self._params()
        g = self._groups()
        return dict(batch=batch, B=input.size(1) if batch else 1, nIn=nIn, nOut=nOut, iH=iH, iW=iW,
                    oH=oH, oW=oW, kW=kW, kH=kH, dW=dW, dH=dH, padW=padW, padH=padH, g=g,
                    cin=nIn // g, cout=nOut // g, K=(nIn // g) * kH * kW, L=oH * oW)

    def _chunk(self, G, itemsize):
        """Samples per chunk: the most whose columns fit the workspace limit, at least one."""
        per = G['K'] * G['L'] * itemsize
        return max(1, min(G['B'], WORKSPACE_LIMIT[0] // max(per, 1)))

    @staticmethod
    def _as4d(t, batch):
        a = t.numpy()
        return a if batch else a[None]

    def _w3(self, w, G):
        """The weight as (groups, nOut/groups, K)."""
        return w.numpy().reshape(G['g'], G['cout'], G['K'])

    def _is_pointwise(self, G):
        return (G['kH'] == 1 and G['kW'] == 1 and G['dH'] == 1 and G['dW'] == 1 and
                G['padH'] == 0 and G['padW'] == 0)

    # --- protocol -------------------------------------------------------------------------------
    def updateOutput(self, input):
        bias = self.__dict__.get('bias')
        G = self._geometry(input, bias=bias)
        self._back_compat()
        input = lua_contiguous(self, input, '_input')
        if G['batch']:
            self.output.resize(G['B'], G['nOut'], G['oH'], G['oW'])
        else:
            self.output.resize(G['nOut'], G['oH'], G['oW'])
        if self.output.is_meta():
            return self.output
        x = self._as4d(input, G['batch'])
        out = self._as4d(self.output, G['batch'])
        cx = _cupy_cudnn() if array_module(out) is not np else None
        if cx is not None and _try(self._cudnn_forward, cx, x, out, bias, G):
            return self.output
        self._forward(x, out, None if bias is None else bias.numpy(), G)
        return self.output

    @_small_buffers
    def _forward(self, x, out, bias, G):
        xp = array_module(out)
        B, g, cin, cout, K, L = G['B'], G['g'], G['cin'], G['cout'], G['K'], G['L']
        w3 = self._w3(self.weight, G)
        nb = self._chunk(G, out.itemsize)
        point = self._is_pointwise(G)
        ws = None if point else xp.empty((nb, K, L), dtype=out.dtype)
        for b0 in range(0, B, nb):
            b1 = min(B, b0 + nb)
            for k in range(g):
                xs = x[b0:b1, k * cin:(k + 1) * cin]
                os_ = out[b0:b1, k * cout:(k + 1) * cout].reshape(b1 - b0, cout, L)
                cols = _flat(xs) if point else None
                if cols is None:
                    if ws is None:
                        ws = xp.empty((nb, K, L), dtype=out.dtype)
                    cols = ws[:b1 - b0]
                    im2col(xs, cols.reshape(b1 - b0, cin, G['kH'], G['kW'], G['oH'], G['oW']),
                           G['kH'], G['kW'], G['dH'], G['dW'], G['padH'], G['padW'])
                xp.matmul(w3[k], cols, out=os_)
        if bias is not None:
            o3 = out.reshape(B, G['nOut'], L)
            o3 += bias[:, None]

    def updateGradInput(self, input, gradOutput):
        if self.__dict__.get('gradInput') is None:
            return None
        G = self._geometry(input, gradOutput)
        self._back_compat()
        input = lua_contiguous(self, input, '_input')
        gradOutput = lua_contiguous(self, gradOutput, '_gradOutput')
        self.gradInput.resizeAs(input)
        if self.gradInput.is_meta():
            return self.gradInput
        gi = self._as4d(self.gradInput, G['batch'])
        go = self._as4d(gradOutput, G['batch'])
        cx = _cupy_cudnn() if array_module(gi) is not np else None
        if cx is not None and _try(self._cudnn_backward_data, cx, go, gi, G):
            return self.gradInput
        self._backward_input(go, gi, G)
        return self.gradInput

    @_small_buffers
    def _backward_input(self, go, gi, G):
        xp = array_module(gi)
        B, g, cin, cout, K, L = G['B'], G['g'], G['cin'], G['cout'], G['K'], G['L']
        w3 = self._w3(self.weight, G)
        nb = self._chunk(G, gi.itemsize)
        ws = xp.empty((nb, K, L), dtype=gi.dtype)
        for b0 in range(0, B, nb):
            b1 = min(B, b0 + nb)
            for k in range(g):
                gos = go[b0:b1, k * cout:(k + 1) * cout].reshape(b1 - b0, cout, L)
                gis = gi[b0:b1, k * cin:(k + 1) * cin]
                fcols = ws[:b1 - b0]
                xp.matmul(w3[k].T, gos, out=fcols)
                gis.fill(0)
                col2im_add(fcols.reshape(b1 - b0, cin, G['kH'], G['kW'], G['oH'], G['oW']), gis,
                           G['kH'], G['kW'], G['dH'], G['dW'], G['padH'], G['padW'])

    def accGradParameters(self, input, gradOutput, scale=1):
        gradBias = self.__dict__.get('gradBias')
        G = self._geometry(input, gradOutput, self.gradWeight, gradBias)
        self._back_compat()
        input = lua_contiguous(self, input, '_input')
        gradOutput = lua_contiguous(self, gradOutput, '_gradOutput')
        if not self.gradWeight.isContiguous():
            raise ValueError('%s: gradWeight needs to be contiguous' % self._name())
        if gradBias is not None and not gradBias.isContiguous():
            raise ValueError('%s: gradBias needs to be contiguous' % self._name())
        if self.gradWeight.is_meta():
            return
        scale = 1 if scale is None else scale
        x = self._as4d(input, G['batch'])
        go = self._as4d(gradOutput, G['batch'])
        gb = None if gradBias is None else gradBias.numpy()
        cx = _cupy_cudnn() if array_module(go) is not np else None
        if cx is not None and _try(self._cudnn_backward_filter, cx, x, go, gb, scale, G):
            return
        self._backward_weight(x, go, gb, scale, G)

    @_small_buffers
    def _backward_weight(self, x, go, gb, scale, G):
        xp = array_module(go)
        B, g, cin, cout, K, L = G['B'], G['g'], G['cin'], G['cout'], G['K'], G['L']
        gw3 = self._w3(self.gradWeight, G)
        nb = self._chunk(G, go.itemsize)
        point = self._is_pointwise(G)
        ws = None
        tmp = xp.empty((cout, K), dtype=go.dtype) if B else None
        for b0 in range(0, B, nb):
            b1 = min(B, b0 + nb)
            for k in range(g):
                xs = x[b0:b1, k * cin:(k + 1) * cin]
                cols = _flat(xs) if point else None
                if cols is None:
                    if ws is None:
                        ws = xp.empty((nb, K, L), dtype=go.dtype)
                    cols = ws[:b1 - b0]
                    im2col(xs, cols.reshape(b1 - b0, cin, G['kH'], G['kW'], G['oH'], G['oW']),
                           G['kH'], G['kW'], G['dH'], G['dW'], G['padH'], G['padW'])
                gos = go[b0:b1, k * cout:(k + 1) * cout].reshape(b1 - b0, cout, L)
                dst = gw3[k]
                for b in range(b1 - b0):   # THNN's order: one sample after the other
                    xp.matmul(gos[b], cols[b].T, out=tmp)
                    if scale != 1:
                        tmp *= scale
                    dst += tmp
        if gb is not None:
            s = go.reshape(B, G['nOut'], L).sum(axis=(0, 2))
            if scale != 1:
                s *= scale
            gb += s

    # --- cuDNN through CuPy -------------------------------------------------------------------
    def _conv_args(self, G):
        return (G['padH'], G['padW']), (G['dH'], G['dW']), (1, 1), G['g']

    def _w4(self, w, G):
        return w.numpy().reshape(G['nOut'], G['cin'], G['kH'], G['kW'])

    def _cudnn_forward(self, cx, x, out, bias, G):
        import cupy
        pad, stride, dil, groups = self._conv_args(G)
        cx.convolution_forward(cupy.ascontiguousarray(x), self._w4(self.weight, G),
                               None if bias is None else bias.numpy(), out, pad, stride, dil, groups,
                               auto_tune=False, tensor_core='never')

    def _cudnn_backward_data(self, cx, go, gi, G):
        import cupy
        pad, stride, dil, groups = self._conv_args(G)
        cx.convolution_backward_data(self._w4(self.weight, G), cupy.ascontiguousarray(go), None, gi,
                                     pad, stride, dil, groups, deterministic=True, auto_tune=False,
                                     tensor_core='never')

    def _cudnn_backward_filter(self, cx, x, go, gb, scale, G):
        import cupy
        pad, stride, dil, groups = self._conv_args(G)
        gw = self._w4(self.gradWeight, G)
        go = cupy.ascontiguousarray(go)
        tmp = cupy.empty_like(gw)
        cx.convolution_backward_filter(cupy.ascontiguousarray(x), go, tmp, pad, stride, dil, groups,
                                       deterministic=True, auto_tune=False, tensor_core='never')
        if scale != 1:
            tmp *= scale
        gw += tmp
        if gb is not None:
            s = go.sum(axis=(0, 2, 3))
            if scale != 1:
                s *= scale
            gb += s

    def clearState(self):
        from ..nn.module import clear, Module
        clear(self, '_input', '_gradOutput', 'input_slice', 'output_slice')
        return Module.clearState(self)

    def type(self, name=None, tensorCache=None):
        from ..nn.module import Module
        return Module.type(self, name, tensorCache)



def _flat(xs):
    """For a 1x1 stride-1 unpadded convolution: the input planes as (B, C, H*W), if a view."""
    it = xs.itemsize
    if xs.strides[3] != it or xs.strides[2] != xs.shape[3] * it:
        return None
    return xs.reshape(xs.shape[0], xs.shape[1], xs.shape[2] * xs.shape[3])


_warned = []


def _try(fn, *args):
    """Run a cuDNN path; on failure warn once and let the caller take the im2col path."""
    try:
        fn(*args)
        return True
    except Exception as e:  # pragma: no cover - needs a GPU
        if not _warned:
            _warned.append(True)
            warnings.warn('pynn.cudnn: cuDNN through CuPy failed (%s: %s); using im2col on the GPU'
                          % (type(e).__name__, e))
        USE_CUPY_CUDNN[0] = False
        return False
