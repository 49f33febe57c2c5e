"""nn.SpatialConvolution / nn.SpatialConvolutionMM vs PyTorch (float64, 1e-10), Jacobians,
THNN buffer shapes, allocation bound, float32 and meta tensors."""
import gc
import math
import tracemalloc

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import pynn
from pynn import nn
from pynn.nn import functional as F

TOL = 1e-10


def T(a):
    return pynn.from_numpy(np.ascontiguousarray(a))


def th(t):
    return torch.from_numpy(t.numpy().copy())


def w4(m):
    w = m.weight.numpy()
    return w.reshape(m.nOutputPlane, m.nInputPlane, m.kH, m.kW)


def make(cls, nIn, nOut, kW, kH, dW, dH, padW, padH, bias=True):
    m = cls(nIn, nOut, kW, kH, dW, dH, padW, padH)
    if not bias:
        m.noBias()
    return m


def torch_ref(m, x, go, scale=1.0):
    xt = th(x).requires_grad_(True)
    wt = torch.from_numpy(w4(m).copy()).requires_grad_(True)
    bias = m.__dict__.get('bias')
    bt = th(bias).requires_grad_(True) if bias is not None else None
    y = TF.conv2d(xt, wt, bt, stride=(m.dH, m.dW), padding=(m.padH, m.padW))
    y.backward(th(go))
    return (y.detach().numpy(), xt.grad.numpy(), scale * wt.grad.numpy(),
            None if bt is None else scale * bt.grad.numpy())


def random_configs(n, seed):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        kW, kH = int(rng.integers(1, 5)), int(rng.integers(1, 5))
        dW, dH = int(rng.integers(1, 4)), int(rng.integers(1, 4))
        padW, padH = int(rng.integers(0, 3)), int(rng.integers(0, 3))
        iW = int(rng.integers(max(1, kW - 2 * padW), 11))
        iH = int(rng.integers(max(1, kH - 2 * padH), 11))
        nIn, nOut = int(rng.integers(1, 5)), int(rng.integers(1, 6))
        batch = int(rng.integers(0, 4))  # 0: non-batch 3-D input
        out.append((nIn, nOut, kW, kH, dW, dH, padW, padH, iH, iW, batch, bool(i % 3), i % 2))
    return out


# stride 1 with oW == iW takes the flat-shift im2col/col2im path: cover it and its edges
SAME = [(2, 3, 3, 3, 1, 1, 1, 1, 6, 5, 2, True, 0), (3, 2, 5, 5, 1, 1, 2, 2, 4, 7, 0, True, 1),
        (2, 2, 1, 1, 1, 1, 0, 0, 5, 3, 2, False, 0), (1, 3, 3, 5, 1, 1, 1, 2, 1, 1, 3, True, 0),
        (2, 4, 3, 2, 1, 1, 1, 0, 2, 6, 1, True, 1), (3, 3, 5, 3, 1, 1, 2, 2, 9, 2, 2, True, 0),
        (2, 2, 3, 4, 1, 2, 1, 1, 7, 4, 2, True, 1)]


@pytest.mark.parametrize('cfg', random_configs(40, 1) + SAME)
def test_vs_torch(cfg):
    nIn, nOut, kW, kH, dW, dH, padW, padH, iH, iW, batch, bias, mm = cfg
    cls = nn.SpatialConvolutionMM if mm else nn.SpatialConvolution
    m = make(cls, nIn, nOut, kW, kH, dW, dH, padW, padH, bias)
    rng = np.random.default_rng(7)
    shape = (batch, nIn, iH, iW) if batch else (nIn, iH, iW)
    x = T(rng.standard_normal(shape))
    y = m.forward(x)
    oH = (iH + 2 * padH - kH) // dH + 1
    oW = (iW + 2 * padW - kW) // dW + 1
    go = T(rng.standard_normal(y.size()))
    m.zeroGradParameters()
    gi = m.backward(x, go, 0.5)
    xb = x if batch else T(x.numpy()[None])
    gb = go if batch else T(go.numpy()[None])
    ry, rgi, rgw, rgb = torch_ref(m, xb, gb, 0.5)
    if not batch:
        ry, rgi = ry[0], rgi[0]
    assert y.size() == ((batch,) if batch else ()) + (nOut, oH, oW)
    np.testing.assert_allclose(y.numpy(), ry, atol=TOL, rtol=0)
    np.testing.assert_allclose(gi.numpy(), rgi, atol=TOL, rtol=0)
    np.testing.assert_allclose(m.gradWeight.numpy().reshape(rgw.shape), rgw, atol=TOL, rtol=0)
    if bias:
        np.testing.assert_allclose(m.gradBias.numpy(), rgb, atol=TOL, rtol=0)
    else:
        assert 'bias' not in m.__dict__ and 'gradBias' not in m.__dict__
    # accumulation: a second accGradParameters adds the same amount again
    gw1 = m.gradWeight.numpy().copy()
    m.accGradParameters(x, go, 0.5)
    np.testing.assert_allclose(m.gradWeight.numpy(), 2 * gw1, atol=TOL, rtol=0)


def test_bigger_vs_torch_and_stride_pad():
    rng = np.random.default_rng(3)
    for cls in (nn.SpatialConvolution, nn.SpatialConvolutionMM):
        m = cls(6, 7, 3, 5, 2, 1, 2, 1)
        x = T(rng.standard_normal((3, 6, 13, 11)))
        y = m.forward(x)
        go = T(rng.standard_normal(y.size()))
        m.zeroGradParameters()
        gi = m.backward(x, go)
        ry, rgi, rgw, rgb = torch_ref(m, x, go)
        np.testing.assert_allclose(y.numpy(), ry, atol=TOL, rtol=0)
        np.testing.assert_allclose(gi.numpy(), rgi, atol=TOL, rtol=0)
        np.testing.assert_allclose(m.gradWeight.numpy().reshape(rgw.shape), rgw, atol=TOL, rtol=0)
        np.testing.assert_allclose(m.gradBias.numpy(), rgb, atol=TOL, rtol=0)


def test_noncontiguous_input_and_gradoutput():
    rng = np.random.default_rng(4)
    m = nn.SpatialConvolution(3, 4, 3, 3, 1, 1, 1, 1)
    base = T(rng.standard_normal((2, 3, 9, 7)))
    x = base.transpose(3, 4)  # 2x3x7x9, not contiguous
    assert not x.isContiguous()
    y = m.forward(x)
    gbase = T(rng.standard_normal((2, 4, 9, 7)))
    go = gbase.transpose(3, 4)
    m.zeroGradParameters()
    gi = m.backward(x, go)
    ry, rgi, rgw, rgb = torch_ref(m, x.contiguous(), go.contiguous())
    np.testing.assert_allclose(y.numpy(), ry, atol=TOL, rtol=0)
    np.testing.assert_allclose(gi.numpy(), rgi, atol=TOL, rtol=0)
    np.testing.assert_allclose(m.gradWeight.numpy(), rgw, atol=TOL, rtol=0)
    # THNN makes its own contiguous copies; no extra fields appear (Lua 2017 has no makeContiguous)
    assert '_input' not in m.__dict__ and '_gradOutput' not in m.__dict__


# ----------------------------------------------------------------------------- Jacobians
def jacobian_input(m, x, eps=1e-6):
    xa = x.numpy()
    n_in = xa.size
    y = m.forward(x).numpy().copy()
    n_out = y.size
    num = np.zeros((n_in, n_out))
    flat = xa.reshape(-1)
    for i in range(n_in):
        old = flat[i]
        flat[i] = old + eps
        yp = m.forward(x).numpy().reshape(-1).copy()
        flat[i] = old - eps
        ym = m.forward(x).numpy().reshape(-1).copy()
        flat[i] = old
        num[i] = (yp - ym) / (2 * eps)
    ana = np.zeros((n_in, n_out))
    m.forward(x)
    go = pynn.Tensor(*y.shape)
    for j in range(n_out):
        go.zero()
        go.numpy().reshape(-1)[j] = 1
        ana[:, j] = m.updateGradInput(x, go).numpy().reshape(-1)
    return num, ana


def jacobian_param(m, x, param, gparam, eps=1e-6):
    pa = param.numpy().reshape(-1)
    y = m.forward(x).numpy().copy()
    num = np.zeros((pa.size, y.size))
    for i in range(pa.size):
        old = pa[i]
        pa[i] = old + eps
        yp = m.forward(x).numpy().reshape(-1).copy()
        pa[i] = old - eps
        ym = m.forward(x).numpy().reshape(-1).copy()
        pa[i] = old
        num[i] = (yp - ym) / (2 * eps)
    ana = np.zeros_like(num)
    m.forward(x)
    go = pynn.Tensor(*y.shape)
    for j in range(y.size):
        go.zero()
        go.numpy().reshape(-1)[j] = 1
        gparam.zero()
        m.accGradParameters(x, go, 1)
        ana[:, j] = gparam.numpy().reshape(-1)
    return num, ana


@pytest.mark.parametrize('cls', [nn.SpatialConvolution, nn.SpatialConvolutionMM])
@pytest.mark.parametrize('batch', [False, True])
def test_jacobian(cls, batch):
    rng = np.random.default_rng(11)
    m = cls(2, 3, 3, 2, 2, 1, 1, 1)
    shape = (2, 2, 5, 4) if batch else (2, 5, 4)
    x = T(rng.standard_normal(shape))
    num, ana = jacobian_input(m, x)
    assert np.abs(num - ana).max() < 1e-7
    num, ana = jacobian_param(m, x, m.weight, m.gradWeight)
    assert np.abs(num - ana).max() < 1e-7
    num, ana = jacobian_param(m, x, m.bias, m.gradBias)
    assert np.abs(num - ana).max() < 1e-7


# ----------------------------------------------------------------------------- fields, buffers
def test_fields_and_weight_shapes():
    m = nn.SpatialConvolution(3, 8, 5, 3)
    assert (m.dW, m.dH, m.padW, m.padH) == (1, 1, 0, 0)
    assert m.weight.size() == (8, 3, 3, 5) and m.gradWeight.size() == (8, 3, 3, 5)
    assert m.bias.size() == (8,) and m.gradBias.size() == (8,)
    assert 'finput' not in m.__dict__ and 'fgradInput' not in m.__dict__
    mm = nn.SpatialConvolutionMM(3, 8, 5, 3, 2, 2, 1)
    assert mm.padH == 1 and mm.padW == 1
    assert mm.weight.size() == (8, 45) and mm.gradWeight.size() == (8, 45)
    assert nn.SpatialConvolution.__typename__ == 'nn.SpatialConvolution'
    assert nn.SpatialConvolutionMM.__typename__ == 'nn.SpatialConvolutionMM'
    assert not isinstance(mm, nn.SpatialConvolution)


def test_tostring():
    assert str(nn.SpatialConvolution(3, 16, 3, 3, 1, 1, 1, 1)) == 'nn.SpatialConvolution(3 -> 16, 3x3, 1,1, 1,1)'
    assert str(nn.SpatialConvolution(3, 16, 5, 3)) == 'nn.SpatialConvolution(3 -> 16, 5x3)'
    assert str(nn.SpatialConvolution(3, 16, 3, 3, 2, 2)) == 'nn.SpatialConvolution(3 -> 16, 3x3, 2,2)'
    assert str(nn.SpatialConvolutionMM(3, 16, 3, 3, 1, 1, 2, 0)) == 'nn.SpatialConvolutionMM(3 -> 16, 3x3, 1,1, 2,0)'
    assert str(nn.SpatialConvolution(3, 4, 3, 3).noBias()) == 'nn.SpatialConvolution(3 -> 4, 3x3) without bias'


def test_reset():
    m = nn.SpatialConvolution(4, 6, 3, 2)
    stdv = 1 / math.sqrt(3 * 2 * 4)
    assert np.abs(m.weight.numpy()).max() <= stdv and np.abs(m.bias.numpy()).max() <= stdv
    assert np.abs(m.weight.numpy()).max() > stdv / 2
    m.reset(0.01)
    lim = 0.01 * math.sqrt(3)
    assert np.abs(m.weight.numpy()).max() <= lim and np.abs(m.bias.numpy()).max() <= lim
    m.noBias().reset(0.1)
    assert np.abs(m.weight.numpy()).max() <= 0.1 * math.sqrt(3)
    assert m.parameters()[0] == [m.weight]


@pytest.mark.parametrize('cls', [nn.SpatialConvolution, nn.SpatialConvolutionMM])
def test_buffer_shapes(cls):
    m = cls(3, 5, 3, 2, 2, 1, 1, 0)
    x = pynn.randn(4, 3, 9, 10)
    m.forward(x)
    oH, oW = (9 - 2) // 1 + 1, (10 + 2 - 3) // 2 + 1
    assert m.output.size() == (4, 5, oH, oW)
    assert m.finput.size() == (4, 3 * 3 * 2, oH * oW)
    assert m.finput.type() == x.type()
    # fgradInput exists (empty, no storage) after forward; THNN resizes it in updateGradInput
    assert m.fgradInput.nElement() == 0 and m.fgradInput.storage() is None
    m.backward(x, pynn.randn(*m.output.size()))
    assert m.fgradInput.size() == m.finput.size()
    assert m.gradInput.size() == x.size()
    # non-batch
    m.forward(pynn.randn(3, 9, 10))
    assert m.finput.size() == (18, oH * oW)
    assert m.output.size() == (5, oH, oW)
    # finput really holds the unfolded input (THNN's row order c*kH*kW + ky*kW + kx)
    x3 = pynn.randn(3, 9, 10)
    m.forward(x3)
    ref = TF.unfold(th(x3)[None], (2, 3), padding=(0, 1), stride=(1, 2))[0].numpy()
    np.testing.assert_array_equal(m.finput.numpy(), ref)


def test_buffers_share_storage_growth():
    m = nn.SpatialConvolution(2, 2, 3, 3)
    m.forward(pynn.randn(2, 2, 6, 6))
    st = m.finput.storage()
    m.forward(pynn.randn(4, 2, 8, 8))
    assert m.finput.storage() is st  # resized in place


def test_clear_state_and_type():
    m = nn.SpatialConvolution(2, 3, 3, 3)
    x = pynn.randn(2, 2, 5, 5)
    m.forward(x)
    m.backward(x, pynn.randn(2, 3, 3, 3))
    m.clearState()
    assert m.finput.nElement() == 0 and m.fgradInput.nElement() == 0 and m.output.nElement() == 0
    m.forward(x)
    f = m.finput
    m.float()
    assert m.finput is not f and m.finput.type() == 'torch.FloatTensor' and m.finput.nElement() == 0
    assert m.weight.type() == 'torch.FloatTensor'
    y = m.forward(x.float())
    assert y.type() == 'torch.FloatTensor' and m.finput.type() == 'torch.FloatTensor'


def test_back_compat_padding_and_2d_weight():
    rng = np.random.default_rng(5)
    m = nn.SpatialConvolution(2, 3, 3, 3, 1, 1, 0, 0)
    ref = nn.SpatialConvolution(2, 3, 3, 3, 1, 1, 1, 1)
    ref.weight.copy(m.weight)
    ref.bias.copy(m.bias)
    # an old file: `padding` field, weight and gradWeight stored 2-D, no padW/padH
    del m.__dict__['padW'], m.__dict__['padH']
    m.padding = 1
    m.weight = m.weight.view(3, 18)
    m.gradWeight = m.gradWeight.view(3, 18)
    x = T(rng.standard_normal((2, 5, 5)))
    y = m.forward(x)
    np.testing.assert_allclose(y.numpy(), ref.forward(x).numpy(), atol=TOL, rtol=0)
    assert 'padding' not in m.__dict__ and m.padW == 1 and m.padH == 1
    assert m.weight.size() == (3, 2, 3, 3) and m.gradWeight.size() == (3, 2, 3, 3)
    mm = nn.SpatialConvolutionMM(2, 3, 3, 3)
    mm.padding = 1
    mm.forward(x)
    assert mm.output.size() == (3, 5, 5) and 'padding' not in mm.__dict__


def test_bad_input():
    m = nn.SpatialConvolution(3, 4, 3, 3)
    good = pynn.randn(2, 3, 6, 6)
    y0 = m.forward(good).numpy().copy()
    fin = m.finput.size()
    bad = [pynn.randn(3, 6), pynn.randn(1, 2, 3, 6, 6), pynn.randn(2, 5, 6, 6),
           pynn.randn(3, 2, 2), pynn.FloatTensor(2, 3, 6, 6), [good]]
    for b in bad:
        with pytest.raises(ValueError, match='nn.SpatialConvolution'):
            m.forward(b)
        assert m.finput.size() == fin and m.output.size() == (2, 4, 4, 4)
    with pytest.raises(ValueError, match='gradOutput'):
        m.backward(good, pynn.randn(2, 4, 5, 5))
    np.testing.assert_array_equal(m.forward(good).numpy(), y0)
    m.backward(good, pynn.randn(2, 4, 4, 4))
    with pytest.raises(ValueError, match='input planes'):
        nn.SpatialConvolutionMM(3, 4, 3, 3).forward(pynn.randn(4, 6, 6))


def module_storage_bytes(m):
    seen = {}
    for v in m.__dict__.values():
        if isinstance(v, pynn.Tensor) and v.storage() is not None:
            seen[id(v.storage())] = v.storage().nbytes()
    return sum(seen.values())


@pytest.mark.parametrize('cls', [nn.SpatialConvolution, nn.SpatialConvolutionMM])
def test_allocations_second_pass(cls):
    m = cls(16, 32, 3, 3, 1, 1, 1, 1)
    x = pynn.randn(8, 16, 24, 24)
    go = pynn.randn(8, 32, 24, 24)
    m.forward(x)
    m.backward(x, go)
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        m.forward(x)
        m.backward(x, go)
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    total = module_storage_bytes(m)
    assert peak < 0.1 * total, (peak, total)


def test_float32():
    rng = np.random.default_rng(8)
    m = nn.SpatialConvolution(3, 4, 3, 3, 2, 2, 1, 1)
    md = nn.SpatialConvolution(3, 4, 3, 3, 2, 2, 1, 1)
    md.weight.copy(m.weight)
    md.bias.copy(m.bias)
    m.float()
    x = rng.standard_normal((2, 3, 8, 7))
    go = rng.standard_normal((2, 4, 4, 4))
    y = m.forward(T(x.astype(np.float32)))
    assert y.type() == 'torch.FloatTensor' and y.numpy().dtype == np.float32
    gi = m.backward(T(x.astype(np.float32)), T(go.astype(np.float32)))
    assert gi.numpy().dtype == np.float32 and m.finput.numpy().dtype == np.float32
    np.testing.assert_allclose(y.numpy(), md.forward(T(x)).numpy(), atol=1e-5)
    np.testing.assert_allclose(gi.numpy(), md.backward(T(x), T(go)).numpy(), atol=1e-5)


@pytest.mark.parametrize('cls', [nn.SpatialConvolution, nn.SpatialConvolutionMM])
def test_meta(cls):
    real = cls(3, 5, 3, 3, 2, 2, 1, 1)
    meta = cls(3, 5, 3, 3, 2, 2, 1, 1).type('torch.MetaDoubleTensor')
    for shape in [(2, 3, 8, 9), (3, 7, 7)]:
        x = pynn.randn(*shape)
        xm = pynn.MetaDoubleTensor(*shape)
        real.forward(x)
        real.backward(x, pynn.randn(*real.output.size()))
        ym = meta.forward(xm)
        assert ym.is_meta() and ym.size() == real.output.size()
        meta.backward(xm, pynn.MetaDoubleTensor(*ym.size()))
        for f in ('output', 'gradInput', 'finput', 'fgradInput'):
            a, b = real.__dict__[f], meta.__dict__[f]
            assert a.size() == b.size(), f
            assert a.storage().size() == b.storage().size(), f


def test_functional_im2col_matches_unfold():
    rng = np.random.default_rng(9)
    for (kH, kW, dH, dW, pH, pW) in [(3, 3, 1, 1, 1, 1), (2, 4, 2, 3, 1, 2), (5, 1, 1, 2, 2, 0),
                                     (1, 1, 2, 2, 0, 0), (1, 1, 3, 2, 0, 0), (1, 1, 1, 1, 1, 0)]:
        x = rng.standard_normal((2, 3, 7, 8))
        oH, oW = F.conv_output_size(7, 8, kH, kW, dH, dW, pH, pW)
        cols = np.full((2, 3 * kH * kW, oH * oW), np.nan)
        F.im2col(x, cols.reshape(2, 3, kH, kW, oH, oW), kH, kW, dH, dW, pH, pW)
        ref = TF.unfold(torch.from_numpy(x), (kH, kW), padding=(pH, pW), stride=(dH, dW)).numpy()
        np.testing.assert_array_equal(cols, ref)
        back = np.zeros_like(x)
        F.col2im_add(cols.reshape(2, 3, kH, kW, oH, oW), back, kH, kW, dH, dW, pH, pW)
        rb = TF.fold(torch.from_numpy(ref), (7, 8), (kH, kW), padding=(pH, pW), stride=(dH, dW)).numpy()
        np.testing.assert_allclose(back, rb, atol=TOL, rtol=0)
        back = np.full_like(x, np.nan)   # zero=True: x's content is ignored
        F.col2im_add(cols.reshape(2, 3, kH, kW, oH, oW), back, kH, kW, dH, dW, pH, pW, zero=True)
        np.testing.assert_allclose(back, rb, atol=TOL, rtol=0)


# ----------------------------------------------------------------------------- batched GEMM layout
def test_finput_kmajor_layout_is_still_the_unfolded_batch():
    # finput keeps THNN's size and number of storage elements, but its storage holds the
    # K x (B*L) matrix of the whole batch (one GEMM per pass); finput[b] is still unfold(x[b])
    m = nn.SpatialConvolution(3, 4, 3, 2, 2, 1, 1, 0)
    x = pynn.randn(5, 3, 7, 9)
    y = m.forward(x)
    B, K, L = 5, 3 * 3 * 2, y.size(3) * y.size(4)
    assert m.finput.size() == (B, K, L) and m.finput.stride() == (L, B * L, 1)
    assert m.finput.storage().size() == B * K * L
    ref = TF.unfold(th(x), (2, 3), padding=(0, 1), stride=(1, 2)).numpy()
    np.testing.assert_array_equal(m.finput.numpy(), ref)
    np.testing.assert_array_equal(m.finput.storage().data.reshape(K, B, L), ref.transpose(1, 0, 2))
    m.backward(x, pynn.randn(*y.size()))
    assert m.fgradInput.size() == (B, K, L) and m.fgradInput.stride() == (L, B * L, 1)
    assert m.fgradInput.storage().size() == B * K * L


@pytest.mark.parametrize('cls', [nn.SpatialConvolution, nn.SpatialConvolutionMM])
def test_repeated_passes_and_batch_changes_vs_torch(cls):
    # the second pass finds fgradInput/gradInput allocated and uses them as scratch for the
    # whole-batch GEMMs; batch size and geometry changes must resize and relayout correctly
    rng = np.random.default_rng(12)
    m = cls(3, 5, 3, 3, 1, 1, 1, 1)
    for shape in [(4, 3, 6, 7), (4, 3, 6, 7), (2, 3, 9, 5), (3, 6, 7), (6, 3, 4, 4), (1, 3, 5, 5)]:
        x = T(rng.standard_normal(shape))
        y = m.forward(x)
        go = T(rng.standard_normal(y.size()))
        m.zeroGradParameters()
        gi = m.backward(x, go, 0.25)
        batch = len(shape) == 4
        xb = x if batch else T(x.numpy()[None])
        gb = go if batch else T(go.numpy()[None])
        ry, rgi, rgw, rgb = torch_ref(m, xb, gb, 0.25)
        if not batch:
            ry, rgi = ry[0], rgi[0]
        np.testing.assert_allclose(y.numpy(), ry, atol=TOL, rtol=0)
        np.testing.assert_allclose(gi.numpy(), rgi, atol=TOL, rtol=0)
        np.testing.assert_allclose(m.gradWeight.numpy().reshape(rgw.shape), rgw, atol=TOL, rtol=0)
        np.testing.assert_allclose(m.gradBias.numpy(), rgb, atol=TOL, rtol=0)


def test_shared_buffers_are_not_used_as_scratch_when_aliased():
    # buffers shared the way optnet shares them (fgradInput across modules), and aliasing
    # that would make scratch use unsafe (gradInput on gradOutput's storage, fgradInput on
    # finput's): results must stay exact
    rng = np.random.default_rng(13)
    a = nn.SpatialConvolution(3, 4, 3, 3, 1, 1, 1, 1)
    b = nn.SpatialConvolution(4, 4, 3, 3, 1, 1, 1, 1)
    x = T(rng.standard_normal((3, 3, 6, 6)))
    for _ in range(2):
        ya = a.forward(x)
        yb = b.forward(ya)
        go = T(rng.standard_normal(yb.size()))
        a.zeroGradParameters()
        b.zeroGradParameters()
        ga = b.backward(ya, go)
        a.backward(x, ga)
        b.fgradInput.set(a.fgradInput.storage())  # optnet: one fgradInput storage per type
    ry, rgi, rgw, rgb = torch_ref(b, ya, go)
    np.testing.assert_allclose(yb.numpy(), ry, atol=TOL, rtol=0)
    np.testing.assert_allclose(ga.numpy(), rgi, atol=TOL, rtol=0)
    np.testing.assert_allclose(b.gradWeight.numpy(), rgw, atol=TOL, rtol=0)
    # fgradInput on finput's storage: neither may serve as scratch for the other
    m = nn.SpatialConvolution(2, 6, 3, 3, 1, 1, 1, 1)
    x = T(rng.standard_normal((4, 2, 5, 5)))
    go = T(rng.standard_normal((4, 6, 5, 5)))
    m.forward(x)
    m.fgradInput = m.finput.new().set(m.finput)
    m.forward(x)
    m.zeroGradParameters()
    m.accGradParameters(x, go)
    _, _, rgw, _ = torch_ref(m, x, go)
    np.testing.assert_allclose(m.gradWeight.numpy(), rgw, atol=TOL, rtol=0)
    # gradInput on gradOutput's storage (same element count): no gather into gradInput
    m = nn.SpatialConvolution(4, 4, 3, 3, 1, 1, 1, 1)
    x = T(rng.standard_normal((3, 4, 5, 5)))
    m.forward(x)
    go = T(rng.standard_normal((3, 4, 5, 5)))
    m.gradInput = go.new().set(go.storage(), 1, (3, 4, 5, 5))
    gref = go.numpy().copy()
    _, rgi, _, _ = torch_ref(m, x, T(gref))
    m.updateGradInput(x, go)
    np.testing.assert_allclose(m.gradInput.numpy(), rgi, atol=TOL, rtol=0)


@pytest.mark.parametrize('kmajor', [True, False])
@pytest.mark.parametrize('budget', [None, 1, 500])
def test_functional_chunks_and_layouts(kmajor, budget):
    # the kernels give the same numbers whatever the chunking (budget, scratch) and the
    # layout of cols (K-major: batched GEMMs; contiguous B x K x L: one GEMM per image)
    rng = np.random.default_rng(14)
    B, C, H, W, O, k = 5, 3, 6, 5, 4, 3
    x = rng.standard_normal((B, C, H, W))
    w4_ = rng.standard_normal((O, C, k, k))
    bias = rng.standard_normal(O)
    K, L = C * k * k, H * W

    def buf():
        if kmajor:
            return np.lib.stride_tricks.as_strided(np.full(B * K * L, np.nan), (B, K, L),
                                                   (L * 8, B * L * 8, 8))
        return np.full((B, K, L), np.nan)

    cols, fcols = buf(), buf()
    assert (F.cols_matrix(cols) is not None) == kmajor
    out = np.empty((B, O, L))
    go = rng.standard_normal((B, O, L))
    gx = np.empty_like(x)
    gw = np.zeros((O, K))
    gb = np.zeros(O)
    for scratch in (None, np.full(B * O * L, np.nan)):
        F.conv2d_mm_forward(x, w4_.reshape(O, K), bias, cols, out, k, k, 1, 1, 1, 1, budget, scratch)
        F.conv2d_mm_backward_input(go, w4_.reshape(O, K), fcols, gx, k, k, 1, 1, 1, 1, budget, scratch)
        gw[...] = 0
        gb[...] = 0
        F.conv2d_mm_backward_weight(go, cols, gw, gb, 0.5, budget, scratch)
        xt = torch.from_numpy(x).requires_grad_(True)
        wt = torch.from_numpy(w4_).requires_grad_(True)
        bt = torch.from_numpy(bias).requires_grad_(True)
        y = TF.conv2d(xt, wt, bt, padding=1)
        y.backward(torch.from_numpy(go.reshape(B, O, H, W)))
        np.testing.assert_allclose(out.reshape(B, O, H, W), y.detach().numpy(), atol=TOL, rtol=0)
        np.testing.assert_allclose(gx, xt.grad.numpy(), atol=TOL, rtol=0)
        np.testing.assert_allclose(gw, 0.5 * wt.grad.numpy().reshape(O, K), atol=TOL, rtol=0)
        np.testing.assert_allclose(gb, 0.5 * bt.grad.numpy(), atol=TOL, rtol=0)


# =============================================================================================
# The rest of the conv family and the volumetric convolutions (pynn.nn.conv package)
# =============================================================================================
from hypothesis import given, settings, strategies as st, HealthCheck  # noqa: E402

HYP = settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))


def _rand(rng, shape):
    return T(rng.standard_normal(shape))


def _run(m, x, go, scale):
    """forward, backward with `scale` on fresh gradients: (output, gradInput, gradW, gradB)."""
    y = m.forward(x).numpy().copy()
    m.zeroGradParameters()
    gi = m.backward(x, go, scale)
    gi = gi.numpy().copy()
    gb = m.__dict__.get('gradBias')
    return y, gi, m.gradWeight.numpy().copy(), None if gb is None else gb.numpy().copy()


def _torch_grads(fn, x, w, b, go, scale):
    xt = torch.from_numpy(x).requires_grad_(True)
    wt = torch.from_numpy(w).requires_grad_(True)
    bt = None if b is None else torch.from_numpy(b).requires_grad_(True)
    y = fn(xt, wt, bt)
    y.backward(torch.from_numpy(go))
    return (y.detach().numpy(), xt.grad.numpy(), scale * wt.grad.numpy(),
            None if bt is None else scale * bt.grad.numpy())


def _close_all(got, want, tol=TOL):
    for g, w in zip(got, want):
        if w is None:
            assert g is None
            continue
        g = np.asarray(g).reshape(np.shape(w))
        scale = max(float(np.abs(w).max()), 1e-6) if np.size(w) else 1
        assert np.abs(g - w).max() <= tol * scale if np.size(w) else True


def _geom_nd(draw, nd, dil=False, full=False):
    k = [draw(st.integers(1, 3)) for _ in range(nd)]
    d = [draw(st.integers(1, 3)) for _ in range(nd)]
    pad = [draw(st.integers(0, 2)) for _ in range(nd)]
    dl = [draw(st.integers(1, 3)) if dil else 1 for _ in range(nd)]
    adj = [draw(st.integers(0, dd - 1)) if full else 0 for dd in d]
    i = []
    for kk, p, l in zip(k, pad, dl):
        ext = l * (kk - 1) + 1
        if full:
            i.append(draw(st.integers(1, 4)))
        else:
            i.append(draw(st.integers(max(1, ext - 2 * p), ext - 2 * p + 4)))
    if full:   # the output must be positive
        for n in range(nd):
            while (i[n] - 1) * d[n] - 2 * pad[n] + dl[n] * (k[n] - 1) + 1 + adj[n] < 1:
                pad[n] -= 1
    return k, d, pad, dl, adj, i


@st.composite
def dilated2d_cfg(draw):
    k, d, pad, dl, _, i = _geom_nd(draw, 2, dil=True)
    return dict(k=k, d=d, pad=pad, dil=dl, i=i, nIn=draw(st.integers(1, 3)),
                nOut=draw(st.integers(1, 4)), B=draw(st.integers(0, 3)),
                bias=draw(st.booleans()), scale=draw(st.sampled_from([1.0, 0.5])))


@HYP
@given(dilated2d_cfg(), st.integers(0, 2 ** 31))
def test_dilated_conv2d_vs_torch(c, seed):
    rng = np.random.default_rng(seed)
    (kH, kW), (dH, dW), (pH, pW), (lH, lW) = c['k'], c['d'], c['pad'], c['dil']
    m = nn.SpatialDilatedConvolution(c['nIn'], c['nOut'], kW, kH, dW, dH, pW, pH, lW, lH)
    if not c['bias']:
        m.noBias()
    lead = (c['B'],) if c['B'] else ()
    x = rng.standard_normal(lead + (c['nIn'],) + tuple(c['i']))
    oh = (c['i'][0] + 2 * pH - (lH * (kH - 1) + 1)) // dH + 1
    ow = (c['i'][1] + 2 * pW - (lW * (kW - 1) + 1)) // dW + 1
    go = rng.standard_normal(lead + (c['nOut'], oh, ow))
    got = _run(m, T(x), T(go), c['scale'])
    b = m.__dict__.get('bias')
    want = _torch_grads(lambda a, w, bb: TF.conv2d(a, w, bb, (dH, dW), (pH, pW), (lH, lW)),
                        x, m.weight.numpy().copy(), None if b is None else b.numpy().copy(),
                        go, c['scale'])
    _close_all(got, want)
    K = c['nIn'] * kH * kW
    assert m.finput.size() == (K, oh * ow) and m.fgradInput.size() == (oh, ow)


@st.composite
def conv3d_cfg(draw, dil=False):
    k, d, pad, dl, _, i = _geom_nd(draw, 3, dil=dil)
    return dict(k=k, d=d, pad=pad, dil=dl, i=i, nIn=draw(st.integers(1, 3)),
                nOut=draw(st.integers(1, 3)), B=draw(st.integers(0, 3)),
                bias=draw(st.booleans()), scale=draw(st.sampled_from([1.0, 0.5])))


@HYP
@given(st.booleans(), st.data(), st.integers(0, 2 ** 31))
def test_volumetric_conv_vs_torch(dilated, data, seed):
    c = data.draw(conv3d_cfg(dil=dilated))
    rng = np.random.default_rng(seed)
    (kT, kH, kW), (dT, dH, dW), (pT, pH, pW), (lT, lH, lW) = c['k'], c['d'], c['pad'], c['dil']
    if dilated:
        m = nn.VolumetricDilatedConvolution(c['nIn'], c['nOut'], kT, kW, kH, dT, dW, dH,
                                            pT, pW, pH, lT, lW, lH)
    else:
        m = nn.VolumetricConvolution(c['nIn'], c['nOut'], kT, kW, kH, dT, dW, dH, pT, pW, pH)
    if not c['bias']:
        m.noBias()
    lead = (c['B'],) if c['B'] else ()
    x = rng.standard_normal(lead + (c['nIn'],) + tuple(c['i']))
    o = tuple((i + 2 * p - (l * (k - 1) + 1)) // d + 1
              for i, p, l, k, d in zip(c['i'], c['pad'], c['dil'], c['k'], c['d']))
    go = rng.standard_normal(lead + (c['nOut'],) + o)
    got = _run(m, T(x), T(go), c['scale'])
    b = m.__dict__.get('bias')
    want = _torch_grads(lambda a, w, bb: TF.conv3d(a, w, bb, c['d'], c['pad'], c['dil']),
                        x, m.weight.numpy().copy(), None if b is None else b.numpy().copy(),
                        go, c['scale'])
    _close_all(got, want)
    K, L = c['nIn'] * kT * kH * kW, int(np.prod(o))
    if dilated:
        assert m.finput.size() == (K, L) and m.fgradInput.size() == o
    else:
        assert m.finput.size() == ((c['B'], K, L) if c['B'] else (K, L))
        assert m.fgradInput.size() == m.finput.size()


@st.composite
def full_cfg(draw, nd):
    k, d, pad, dl, adj, i = _geom_nd(draw, nd, full=True)
    return dict(k=k, d=d, pad=pad, adj=adj, i=i, nIn=draw(st.integers(1, 3)),
                nOut=draw(st.integers(1, 3)), B=draw(st.integers(0, 3)),
                bias=draw(st.booleans()), scale=draw(st.sampled_from([1.0, 0.5])),
                table=draw(st.booleans()))


@HYP
@given(st.sampled_from([2, 3]), st.data(), st.integers(0, 2 ** 31))
def test_full_conv_vs_torch_conv_transpose(nd, data, seed):
    c = data.draw(full_cfg(nd))
    rng = np.random.default_rng(seed)
    k, d, pad, adj = c['k'], c['d'], c['pad'], c['adj']
    if nd == 2:
        m = nn.SpatialFullConvolution(c['nIn'], c['nOut'], k[1], k[0], d[1], d[0], pad[1], pad[0],
                                      adj[1], adj[0])
    else:
        m = nn.VolumetricFullConvolution(c['nIn'], c['nOut'], k[0], k[2], k[1], d[0], d[2], d[1],
                                         pad[0], pad[2], pad[1], adj[0], adj[2], adj[1])
    if not c['bias']:
        m.noBias()
    lead = (c['B'],) if c['B'] else ()
    x = rng.standard_normal(lead + (c['nIn'],) + tuple(c['i']))
    o = tuple((i - 1) * dd - 2 * p + kk + a for i, dd, p, kk, a in zip(c['i'], d, pad, k, adj))
    go = rng.standard_normal(lead + (c['nOut'],) + o)
    fn = TF.conv_transpose2d if nd == 2 else TF.conv_transpose3d
    b = m.__dict__.get('bias')
    want = _torch_grads(lambda a, w, bb: fn(a, w, bb, d, pad, adj), x, m.weight.numpy().copy(),
                        None if b is None else b.numpy().copy(), go, c['scale'])
    if c['table'] and nd == 2:
        # {input, target}: the adjustments come from the target's size, whatever adjW/adjH are
        m.adjW = m.adjH = 0
        target = T(np.zeros(lead + (1,) + o))
        y = m.forward([T(x), target]).numpy().copy()
        m.zeroGradParameters()
        gi = m.backward([T(x), target], T(go), c['scale'])
        assert isinstance(gi, list) and gi[1].size() == target.size()
        assert not gi[1].numpy().any() and gi[1].stride() == (0,) * target.dim()
        got = (y, gi[0].numpy(), m.gradWeight.numpy(),
               None if b is None else m.gradBias.numpy())
    else:
        got = _run(m, T(x), T(go), c['scale'])
    _close_all(got, want)
    assert m.finput.size() == (c['nOut'] * int(np.prod(k)), int(np.prod(c['i'])))
    assert m.fgradInput.size() == o


@st.composite
def depthwise_cfg(draw):
    k, d, pad, _, _, _ = _geom_nd(draw, 2)
    s = draw(st.integers(max(k) + 1, max(k) + 5))
    return dict(k=k, d=d, pad=pad, i=(s, s), nIn=draw(st.integers(1, 3)),
                nOut=draw(st.integers(1, 3)), B=draw(st.integers(0, 3)),
                bias=draw(st.booleans()), scale=draw(st.sampled_from([1.0, 0.5])))


@HYP
@given(depthwise_cfg(), st.integers(0, 2 ** 31))
def test_depthwise_vs_torch_groups(c, seed):
    rng = np.random.default_rng(seed)
    (kH, kW), (dH, dW), (pH, pW) = c['k'], c['d'], c['pad']
    nIn, nOut = c['nIn'], c['nOut']
    m = nn.SpatialDepthWiseConvolution(nIn, nOut, kW, kH, dW, dH, pW, pH)
    if not c['bias']:
        m.noBias()
    lead = (c['B'],) if c['B'] else ()
    x = rng.standard_normal(lead + (nIn,) + tuple(c['i']))
    oh = (c['i'][0] + 2 * pH - kH) // dH + 1
    ow = (c['i'][1] + 2 * pW - kW) // dW + 1
    go = rng.standard_normal(lead + (nIn * nOut, oh, ow))
    w = m.weight.numpy().reshape(nOut, nIn, kH, kW)
    wt = w.transpose(1, 0, 2, 3).reshape(nIn * nOut, 1, kH, kW).copy()   # channel i*nOut + o
    b = m.__dict__.get('bias')
    bt = None if b is None else b.numpy().T.reshape(-1).copy()
    want = _torch_grads(lambda a, ww, bb: TF.conv2d(a, ww, bb, (dH, dW), (pH, pW), groups=nIn),
                        x, wt, bt, go, c['scale'])
    got = list(_run(m, T(x), T(go), c['scale']))
    got[2] = got[2].reshape(nOut, nIn, kH, kW).transpose(1, 0, 2, 3)
    if got[3] is not None:
        got[3] = got[3].T
    _close_all(got, want)
    B = c['B'] or 1
    assert m.finput.size() == (B, nIn, kH * kW, oh * ow) == m.fgradInput.size()
    assert m.weight.size() == (nOut, nIn, kH, kW)       # THNN resizes the weights to 4-D


def test_depthwise_reads_non_square_planes_as_thnn():
    # THNN takes the contiguous H x W plane as W rows of H (its width/height exchange)
    rng = np.random.default_rng(3)
    m = nn.SpatialDepthWiseConvolution(2, 3, 2, 3, 1, 1, 0, 0)
    x = rng.standard_normal((2, 2, 5, 7))
    y = m.forward(T(x)).numpy()
    w = m.weight.numpy().reshape(3, 2, 3, 2).transpose(1, 0, 2, 3).reshape(6, 1, 3, 2)
    ref = TF.conv2d(torch.from_numpy(x.reshape(2, 2, 7, 5)), torch.from_numpy(w.copy()),
                    torch.from_numpy(m.bias.numpy().T.reshape(-1).copy()), groups=2).numpy()
    assert y.shape == ref.shape == (2, 6, 5, 4)
    assert np.abs(y - ref).max() < 1e-12


@HYP
@given(st.integers(1, 3), st.integers(1, 3), st.integers(1, 3), st.integers(1, 3),
       st.integers(0, 3), st.integers(0, 2 ** 31))
def test_subsampling_vs_torch_avg_pool(kW, kH, dW, dH, B, seed):
    rng = np.random.default_rng(seed)
    m = nn.SpatialSubSampling(3, kW, kH, dW, dH)
    lead = (B,) if B else ()
    iH, iW = kH + int(rng.integers(0, 5)), kW + int(rng.integers(0, 5))
    x = rng.standard_normal(lead + (3, iH, iW))
    oh, ow = (iH - kH) // dH + 1, (iW - kW) // dW + 1
    go = rng.standard_normal(lead + (3, oh, ow))
    got = _run(m, T(x), T(go), 1.0)

    def fn(a, w, b):
        s = TF.avg_pool2d(a, (kH, kW), (dH, dW)) * (kH * kW)
        shp = (1, 3, 1, 1) if B else (3, 1, 1)
        return s * w.reshape(shp) + b.reshape(shp)
    want = _torch_grads(fn, x, m.weight.numpy().copy(), m.bias.numpy().copy(), go, 1.0)
    _close_all(got, want)


# --- finite differences: Local, Map, FullMap ---------------------------------------------------
def _maps():
    full = pynn.Tensor([[1, 1], [2, 1], [1, 2], [2, 2], [2, 3], [2, 3]])  # a repeated connection
    return full


FD_MODULES = {
    'SpatialConvolutionLocal': lambda: (nn.SpatialConvolutionLocal(2, 3, 5, 4, 3, 2, 2, 1, 1, 1),
                                        [(2, 4, 5), (2, 2, 4, 5)]),
    'SpatialConvolutionMap': lambda: (nn.SpatialConvolutionMap(_maps(), 3, 2, 2, 1),
                                      [(2, 5, 6), (2, 2, 5, 6), (3, 4, 5)]),
    'SpatialFullConvolutionMap': lambda: (nn.SpatialFullConvolutionMap(_maps(), 2, 3, 2, 1),
                                          [(2, 3, 4), (2, 2, 3, 3)]),
}


@pytest.mark.parametrize('name', sorted(FD_MODULES))
def test_finite_differences(name):
    rng = np.random.default_rng(5)
    m, shapes = FD_MODULES[name]()
    for shape in shapes:
        x = _rand(rng, shape)
        num, ana = jacobian_input(m, x)
        assert np.abs(num - ana).max() < 1e-7, shape
        num, ana = jacobian_param(m, x, m.weight, m.gradWeight)
        assert np.abs(num - ana).max() < 1e-7, shape
        num, ana = jacobian_param(m, x, m.bias, m.gradBias)
        assert np.abs(num - ana).max() < 1e-7, shape


def test_local_buffers_and_scale():
    rng = np.random.default_rng(6)
    m = nn.SpatialConvolutionLocal(2, 3, 5, 4, 3, 2)
    x, go = _rand(rng, (4, 2, 4, 5)), _rand(rng, (4, 3, 3, 3))
    m.forward(x)
    m.zeroGradParameters()
    m.backward(x, go, 0.25)
    g = m.gradWeight.numpy().copy()
    m.zeroGradParameters()
    m.backward(x, go)
    assert np.abs(g - 0.25 * m.gradWeight.numpy()).max() < 1e-14
    assert m.finput.size() == (4, 2 * 2 * 3, 9) == m.fgradInput.size()
    # finput is still THNN's unfolded input: finput[b][k][p]
    cols = torch.nn.functional.unfold(th(x), (2, 3)).numpy()
    assert np.abs(m.finput.numpy() - cols).max() == 0
    m.forward(_rand(rng, (2, 4, 5)))
    assert m.finput.size() == (12, 9)


# --- meta, float32, bad input, printing ----------------------------------------------------------
def _cases():
    """(name, constructor, input shape, shape of a second (batch) input)."""
    return [
        ('SpatialDilatedConvolution', lambda: nn.SpatialDilatedConvolution(2, 3, 3, 2, 1, 2, 1, 0, 2, 1),
         (2, 7, 6), (3, 2, 7, 6)),
        ('SpatialFullConvolution', lambda: nn.SpatialFullConvolution(2, 3, 3, 2, 2, 1, 1, 0, 1, 0),
         (2, 4, 5), (3, 2, 4, 5)),
        ('VolumetricConvolution', lambda: nn.VolumetricConvolution(2, 3, 2, 3, 2, 1, 2, 1, 1, 0, 1),
         (2, 4, 5, 6), (2, 2, 4, 5, 6)),
        ('VolumetricDilatedConvolution',
         lambda: nn.VolumetricDilatedConvolution(2, 3, 2, 2, 2, 1, 1, 1, 0, 1, 0, 2, 1, 2),
         (2, 5, 4, 6), (2, 2, 5, 4, 6)),
        ('VolumetricFullConvolution',
         lambda: nn.VolumetricFullConvolution(2, 3, 2, 2, 3, 2, 1, 1, 0, 0, 1, 1, 0, 0),
         (2, 3, 4, 3), (2, 2, 3, 4, 3)),
        ('SpatialDepthWiseConvolution', lambda: nn.SpatialDepthWiseConvolution(2, 3, 3, 3, 1, 1, 1),
         (2, 6, 6), (3, 2, 6, 6)),
        ('SpatialConvolutionLocal', lambda: nn.SpatialConvolutionLocal(2, 3, 5, 4, 3, 2),
         (2, 4, 5), (3, 2, 4, 5)),
        ('SpatialConvolutionMap', lambda: nn.SpatialConvolutionMap(_maps(), 3, 3),
         (2, 6, 5), (3, 2, 6, 5)),
        ('SpatialFullConvolutionMap', lambda: nn.SpatialFullConvolutionMap(_maps(), 3, 3, 2, 2),
         (2, 4, 5), (3, 2, 4, 5)),
        ('SpatialSubSampling', lambda: nn.SpatialSubSampling(2, 2, 3, 2, 1), (2, 6, 5), (3, 2, 6, 5)),
    ]


BUFFERS = ('output', 'gradInput', 'finput', 'fgradInput', 'ones')


@pytest.mark.parametrize('case', _cases(), ids=lambda c: c[0] if isinstance(c, tuple) else None)
def test_meta_sizes_equal_real(case):
    name, ctor, s1, s2 = case
    real = ctor()
    meta = ctor().type('torch.MetaDoubleTensor')
    for shape in (s1, s2, s1):
        x, xm = pynn.randn(*shape), pynn.MetaDoubleTensor(*shape)
        real.forward(x)
        real.backward(x, pynn.randn(*real.output.size()))
        ym = meta.forward(xm)
        assert ym.is_meta() and ym.size() == real.output.size()
        meta.backward(xm, pynn.MetaDoubleTensor(*ym.size()))
        for f in BUFFERS:
            a, b = real.__dict__.get(f), meta.__dict__.get(f)
            assert (a is None) == (b is None), f
            if a is not None and a.nElement():
                assert a.size() == b.size(), f
                assert a.storage().size() == b.storage().size(), f


@pytest.mark.parametrize('case', _cases(), ids=lambda c: c[0] if isinstance(c, tuple) else None)
def test_float32_matches_float64(case):
    name, ctor, s1, s2 = case
    rng = np.random.default_rng(9)
    md = ctor()
    mf = ctor()
    for p, q in zip(mf.parameters()[0], md.parameters()[0]):
        p.copy(q)
    mf.float()
    for shape in (s1, s2):
        x = rng.standard_normal(shape)
        yd = md.forward(T(x)).numpy().copy()
        yf = mf.forward(T(x.astype(np.float32)))
        assert yf.type() == 'torch.FloatTensor' and yf.numpy().dtype == np.float32
        go = rng.standard_normal(yd.shape)
        gd = md.backward(T(x), T(go)).numpy().copy()
        gf = mf.backward(T(x.astype(np.float32)), T(go.astype(np.float32)))
        assert gf.numpy().dtype == np.float32
        np.testing.assert_allclose(yf.numpy(), yd, atol=1e-4)
        np.testing.assert_allclose(gf.numpy(), gd, atol=1e-4)
        np.testing.assert_allclose(mf.gradWeight.numpy(), md.gradWeight.numpy(), atol=1e-3)


@pytest.mark.parametrize('case', _cases(), ids=lambda c: c[0] if isinstance(c, tuple) else None)
def test_bad_input_new_classes(case):
    name, ctor, s1, s2 = case
    m = ctor()
    good = pynn.randn(*s2)
    y0 = m.forward(good).numpy().copy()
    planes = s2[1] - 1 if 'Map' in name else s2[1] + 3   # Map takes extra planes, as THNN
    bad = [pynn.randn(3), pynn.randn(*((1, 1) + s2)), pynn.FloatTensor(*s2), 'x',
           pynn.randn(*((s2[0], planes) + s2[2:]))]
    for b in bad:
        with pytest.raises(ValueError, match='nn.' + name):
            m.forward(b)
        assert m.output.size() == tuple(y0.shape)
    with pytest.raises(ValueError, match='gradOutput'):
        m.backward(good, pynn.randn(*(y0.shape[:-1] + (y0.shape[-1] + 1,))))
    np.testing.assert_array_equal(m.forward(good).numpy(), y0)
    m.backward(good, pynn.randn(*y0.shape))


def test_tostring_new_classes():
    # the strings Lua's __tostring__ builds for these constructors
    assert str(nn.SpatialDilatedConvolution(2, 3, 3, 2)) == \
        'nn.SpatialDilatedConvolution(2 -> 3, 3x2, 1,1)'
    assert str(nn.SpatialDilatedConvolution(2, 3, 3, 2, 1, 2, 1, 0, 2, 3).noBias()) == \
        'nn.SpatialDilatedConvolution(2 -> 3, 3x2, 1,2, 1,0, 2,3) without bias'
    assert str(nn.SpatialFullConvolution(2, 3, 3, 3)) == 'nn.SpatialFullConvolution(2 -> 3, 3x3)'
    assert str(nn.SpatialFullConvolution(2, 3, 3, 3, 2, 2, 1, 1, 1, 0)) == \
        'nn.SpatialFullConvolution(2 -> 3, 3x3, 2,2, 1,1, 1,0)'
    assert str(nn.VolumetricConvolution(1, 2, 3, 4, 5)) == 'nn.VolumetricConvolution(1 -> 2, 3x4x5)'
    assert str(nn.VolumetricConvolution(1, 2, 3, 4, 5, 1, 2, 1, 0, 1, 0)) == \
        'nn.VolumetricConvolution(1 -> 2, 3x4x5, 1,2,1, 0,1,0)'
    assert str(nn.VolumetricDilatedConvolution(1, 2, 3, 3, 3).noBias()) == \
        'nn.VolumetricDilatedConvolution(1 -> 2, 3x3x3, 1,1,1) without bias'
    assert str(nn.VolumetricFullConvolution(1, 2, 3, 3, 3, 2, 2, 2, 0, 0, 0, 1, 1, 0)) == \
        'nn.VolumetricFullConvolution(1 -> 2, 3x3x3, 2,2,2, 1,1,0)'
    assert str(nn.SpatialDepthWiseConvolution(2, 3, 3, 3, 1, 1, 1)) == \
        'nn.SpatialDepthWiseConvolution(2 -> 3, 3x3, 1,1, 1,1)'
    assert str(nn.SpatialConvolutionLocal(2, 3, 5, 4, 3, 3)) == \
        'nn.SpatialConvolutionLocal(2 -> 3, 5x4, 3x3)'
    assert str(nn.SpatialConvolutionMap(_maps(), 3, 3)) == 'nn.SpatialConvolutionMap'
    assert str(nn.SpatialSubSampling(2, 2, 2)) == 'nn.SpatialSubSampling'


def test_fields_nil_as_lua():
    m = nn.SpatialDilatedConvolution(2, 3, 3, 3)
    assert m.finput is None and m.fgradInput is None and m.dilationW == 1
    f = nn.SpatialFullConvolution(2, 3, 3, 3)
    assert f.finput is None and f.ones.nElement() == 0 and f.adjW == 0
    v = nn.VolumetricFullConvolution(2, 3, 3, 3, 3)
    assert v.finput.nElement() == 0 and v.fgradInput.nElement() == 0 and v.ones.nElement() == 0
    assert nn.VolumetricConvolution(1, 2, 3, 3, 3).finput is None
    assert nn.SpatialConvolutionLocal(2, 3, 5, 4, 3, 3).weight.size() == (2, 3, 3, 2, 3, 3)
    mp = nn.SpatialConvolutionMap(_maps(), 3, 2)
    assert (mp.nInputPlane, mp.nOutputPlane) == (2, 3) and mp.weight.size() == (6, 2, 3)
    with pytest.raises(ValueError, match='adjW'):
        nn.SpatialFullConvolution(2, 3, 3, 3, 1, 1, 0, 0, 1, 0)


def test_functional_im2col_nd_matches_unfold_with_dilation():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 3, 7, 8))
    k, d, pad, dil = (3, 2), (2, 1), (1, 2), (2, 3)
    o = F.conv_output_size_nd(x.shape[2:], k, d, pad, dil)
    cols = np.full((2, 3) + k + o, np.nan)
    F.im2col_nd(x, cols, k, d, pad, dil)
    ref = TF.unfold(torch.from_numpy(x), k, dil, pad, d).numpy()
    assert np.array_equal(cols.reshape(2, -1, o[0] * o[1]), ref)
    back = np.zeros_like(x)
    F.col2im_nd_add(cols, back, k, d, pad, dil)
    ref = TF.fold(torch.from_numpy(ref), x.shape[2:], k, dil, pad, d).numpy()
    assert np.abs(back - ref).max() < 1e-12


@pytest.mark.parametrize('budget', [1, 300, None])
def test_functional_nd_chunks_equal_one_gemm(budget):
    rng = np.random.default_rng(12)
    x = rng.standard_normal((5, 2, 4, 5, 6))
    w = rng.standard_normal((3, 2 * 8))
    go = rng.standard_normal((5, 3, 3 * 4 * 5))
    geo = ((2, 2, 2), (1, 1, 1), (0, 0, 0), (1, 1, 1))
    ref = TF.conv3d(torch.from_numpy(x), torch.from_numpy(w.reshape(3, 2, 2, 2, 2))).numpy()
    out = np.empty((5, 3, 60))
    F.conv_nd_forward(x, w, None, out, *geo, budget=budget)
    assert np.abs(out.reshape(ref.shape) - ref).max() < 1e-12
    gx = np.empty_like(x)
    F.conv_nd_backward_input(go, w, gx, *geo, budget=budget)
    gx2 = np.empty_like(x)
    F.conv_nd_backward_input(go, w, gx2, *geo)
    assert np.abs(gx - gx2).max() < 1e-12


def test_nn_tables_match_lua_fixture_tables():
    from pathlib import Path
    ref = Path(__file__).resolve().parents[1] / '..' / 'shared' / 'reference' / 'lua-nn'
    if not (ref / 'SpatialConvolutionMap_1.t7').exists():
        pytest.skip('Lua nn fixtures not found at ../shared/reference/lua-nn')
    # the fixtures were built with nn.tables.full(2, 3) and nn.tables.oneToOne(2)
    full = pynn.load(ref / 'SpatialConvolutionMap_1.t7')['module'].connTable
    one = pynn.load(ref / 'SpatialFullConvolutionMap_1.t7')['module'].connTable
    assert nn.tables.full(2, 3).type() == full.type()
    assert np.array_equal(nn.tables.full(2, 3).numpy(), full.numpy())
    assert np.array_equal(nn.tables.oneToOne(2).numpy(), one.numpy())


# --- optnet: tracing, reuseBuffers ---------------------------------------------------------------
NEW_CLASSES = ['SpatialDilatedConvolution', 'SpatialFullConvolution', 'VolumetricConvolution',
               'VolumetricDilatedConvolution', 'VolumetricFullConvolution',
               'SpatialDepthWiseConvolution', 'SpatialConvolutionLocal', 'SpatialConvolutionMap',
               'SpatialFullConvolutionMap', 'SpatialSubSampling']


@pytest.mark.parametrize('name', NEW_CLASSES)
def test_protocol_methods_are_traced(name):
    # optnet's analysis and its backward switch-off go through Module's wrappers
    cls = getattr(nn, name)
    for meth in ('updateOutput', 'updateGradInput', 'accGradParameters', 'backward'):
        assert getattr(getattr(cls, meth), '_pynn_traced', False), meth


def _optnet_nets():
    pynn.manualSeed(3)
    n1 = (nn.Sequential()
          .add(nn.SpatialDilatedConvolution(2, 4, 3, 3, 1, 1, 2, 2, 2, 2)).add(nn.ReLU())
          .add(nn.SpatialDilatedConvolution(4, 4, 3, 3, 1, 1, 1, 1, 1, 1)).add(nn.Tanh())
          .add(nn.SpatialFullConvolution(4, 3, 4, 4, 2, 2, 1, 1)).add(nn.ReLU())
          .add(nn.SpatialFullConvolution(3, 3, 3, 3)).add(nn.Sigmoid())
          .add(nn.SpatialDepthWiseConvolution(3, 2, 3, 3)).add(nn.Tanh())
          .add(nn.SpatialDepthWiseConvolution(6, 1, 3, 3)))
    n2 = (nn.Sequential()
          .add(nn.VolumetricConvolution(2, 3, 3, 3, 3, 1, 1, 1, 1, 1, 1)).add(nn.ReLU())
          .add(nn.VolumetricConvolution(3, 3, 3, 3, 3, 1, 1, 1, 1, 1, 1)).add(nn.Tanh())
          .add(nn.VolumetricDilatedConvolution(3, 3, 3, 3, 3, 1, 1, 1, 2, 2, 2, 2, 2, 2))
          .add(nn.Tanh())
          .add(nn.VolumetricFullConvolution(3, 2, 2, 2, 2, 2, 2, 2)).add(nn.Tanh())
          .add(nn.VolumetricFullConvolution(2, 2, 3, 3, 3)))
    n3 = (nn.Sequential()
          .add(nn.SpatialConvolutionLocal(2, 3, 6, 6, 3, 3)).add(nn.Tanh())
          .add(nn.SpatialConvolutionLocal(3, 3, 4, 4, 2, 2)).add(nn.Tanh())
          .add(nn.SpatialSubSampling(3, 2, 2, 1, 1)))
    return [(n1, pynn.randn(2, 2, 9, 9)), (n2, pynn.randn(2, 2, 4, 5, 5)),
            (n3, pynn.randn(2, 2, 6, 6))]


@pytest.mark.parametrize('planner', ['optnet', 'optimal'])
def test_optnet_training_keeps_results(planner):
    import copy
    from pynn import optnet
    for net, x in _optnet_nets():
        ref = copy.deepcopy(net)
        y = ref.forward(x).numpy().copy()
        g = pynn.randn(*y.shape)
        ref.zeroGradParameters()
        gi = ref.backward(x, g).numpy().copy()
        optnet.optimizeMemory(net, x, {'mode': 'training', 'planner': planner})
        for _ in range(2):
            assert np.abs(net.forward(x).numpy() - y).max() < 1e-12
            net.zeroGradParameters()
            assert np.abs(net.backward(x, g).numpy() - gi).max() < 1e-12
            for a, b in zip(net.parameters()[1], ref.parameters()[1]):
                assert np.abs(a.numpy() - b.numpy()).max() < 1e-12


def test_optnet_inference_pools_the_new_buffers():
    from pynn import optnet
    from pynn.optnet.arena import ArenaStorage
    for net, x in _optnet_nets():
        y = net.forward(x).numpy().copy()
        optnet.optimizeMemory(net, x, {'mode': 'inference', 'planner': 'optimal'})
        assert np.abs(net.forward(x).numpy() - y).max() < 1e-12
        for m in net.modules:
            if m.__dict__.get('finput') is not None and m.finput.nElement():
                assert isinstance(m.finput._storage, ArenaStorage), m.__typename__


@pytest.mark.parametrize('cls', [nn.SpatialConvolution, nn.SpatialConvolutionMM])
def test_results_do_not_depend_on_which_buffers_are_free(cls):
    # the first forward has no fgradInput to work in, a forward after a backward has one; the
    # GEMM chunks are the same either way, so are the bits (a GEMM's rounding depends on its
    # width): the same network computes the same numbers whatever its history
    # (one BLAS thread: OpenBLAS's rounding varies with the width there)
    pynn.setdefaulttensortype('torch.FloatTensor')
    pynn.manualSeed(2)
    m = cls(3, 16, 3, 3, 1, 1, 1, 1)
    x = pynn.rand(8, 3, 32, 32)
    with pynn.threads.limited(1):
        first = m.forward(x).numpy().copy()
        m.backward(x, pynn.rand(8, 16, 32, 32))
        assert m.fgradInput.nElement() == m.finput.nElement()
        again = m.forward(x).numpy().copy()
    assert np.array_equal(first.view(np.uint32), again.view(np.uint32))
