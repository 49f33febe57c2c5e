"""nn.SpatialMaxPooling / SpatialAveragePooling / SpatialMaxUnpooling / SpatialZeroPadding vs
PyTorch (float64, 1e-10) and vs a loop-by-loop transcription of THNN's C kernels where
PyTorch and THNN differ (ceil mode without padding, see pool_size_thnn)."""
import gc
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


# ----------------------------------------------------------------------------- THNN reference
def pool_size_thnn(i, k, d, pad, ceil, any_pad):
    o = (-(-(i - k + 2 * pad) // d) if ceil else (i - k + 2 * pad) // d) + 1
    # THNN drops a last window starting in the padding only when padW or padH is set;
    # PyTorch does it in ceil mode whatever the padding. They differ when pad == 0, ceil
    # mode and k < d (THNN then keeps a window lying entirely outside the image).
    if any_pad and (o - 1) * d >= i + pad:
        o -= 1
    return o


def maxpool_thnn(x, kH, kW, dH, dW, pH, pW, ceil):
    """Direct transcription of SpatialDilatedMaxPooling_updateOutput_frame (dilation 1)."""
    B, C, iH, iW = x.shape
    oH = pool_size_thnn(iH, kH, dH, pH, ceil, pW or pH)
    oW = pool_size_thnn(iW, kW, dW, pW, ceil, pW or pH)
    out = np.empty((B, C, oH, oW))
    ind = np.empty((B, C, oH, oW), dtype=np.int64)
    for b in range(B):
        for c in range(C):
            for i in range(oH):
                for j in range(oW):
                    hs, ws = i * dH - pH, j * dW - pW
                    he, we = min(hs + kH, iH), min(ws + kW, iW)
                    hs, ws = max(hs, 0), max(ws, 0)
                    best, bi = -np.inf, -1
                    for y in range(hs, he):
                        for xx in range(ws, we):
                            v = x[b, c, y, xx]
                            if v > best:
                                best, bi = v, y * iW + xx
                    out[b, c, i, j], ind[b, c, i, j] = best, bi + 1
    return out, ind


def maxpool_thnn_backward(go, ind, shape):
    gi = np.zeros(shape)
    B, C = shape[:2]
    for b in range(B):
        for c in range(C):
            flat = gi[b, c].reshape(-1)
            for p, g in zip(ind[b, c].reshape(-1), go[b, c].reshape(-1)):
                if p - 1 != -1:
                    flat[p - 1] += g
    return gi


def avgpool_thnn(x, kH, kW, dH, dW, pH, pW, ceil, include):
    B, C, iH, iW = x.shape
    oH = pool_size_thnn(iH, kH, dH, pH, ceil, pW or pH)
    oW = pool_size_thnn(iW, kW, dW, pW, ceil, pW or pH)
    out = np.zeros((B, C, oH, oW))
    with np.errstate(divide='ignore', invalid='ignore'):
        for i in range(oH):
            for j in range(oW):
                hs, ws = i * dH - pH, j * dW - pW
                he, we = min(hs + kH, iH + pH), min(ws + kW, iW + pW)
                size = (he - hs) * (we - ws)
                hs, ws, he, we = max(hs, 0), max(ws, 0), min(he, iH), min(we, iW)
                div = size if include else (he - hs) * (we - ws)
                s = np.zeros((B, C))
                for y in range(hs, he):
                    for xx in range(ws, we):
                        s = s + x[:, :, y, xx]
                out[:, :, i, j] = s / np.float64(div)
    return out


# ----------------------------------------------------------------------------- configs
def pool_configs(n, seed):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        kW, kH = int(rng.integers(1, 5)), int(rng.integers(1, 5))
        dW, dH = int(rng.integers(1, 4)), int(rng.integers(1, 4))
        pW, pH = int(rng.integers(0, kW // 2 + 1)), int(rng.integers(0, kH // 2 + 1))
        iW = int(rng.integers(max(1, kW - 2 * pW), 10))
        iH = int(rng.integers(max(1, kH - 2 * pH), 10))
        C = int(rng.integers(1, 4))
        batch = int(rng.integers(0, 3))
        out.append((kW, kH, dW, dH, pW, pH, iH, iW, C, batch, bool(i % 2)))
    return out


CORNERS = [  # ceil-mode corner cases (last window clipped / dropped), k < d, pads on one side only
    (3, 3, 2, 2, 1, 1, 6, 6, 2, 2, True), (2, 2, 2, 2, 1, 1, 5, 5, 1, 0, True),
    (3, 2, 2, 2, 1, 0, 7, 4, 2, 1, True), (2, 3, 3, 2, 0, 1, 8, 5, 1, 2, True),
    (3, 3, 3, 3, 0, 0, 7, 8, 2, 1, True), (2, 2, 3, 3, 1, 1, 4, 4, 1, 1, True),
    (4, 4, 3, 3, 2, 2, 5, 6, 1, 2, True), (1, 1, 2, 2, 0, 0, 6, 6, 2, 1, False)]
# THNN != PyTorch here (ceil, padW = padH = 0, k < d): THNN's output has one more row/col
THNN_ONLY = [(1, 1, 3, 3, 0, 0, 5, 5, 2, 2, True), (1, 2, 3, 3, 0, 0, 7, 8, 1, 0, True),
             (2, 1, 3, 2, 0, 0, 6, 5, 2, 1, True)]


def as_batch(a, batch):
    return a if batch else a[None]


def torch_agrees(cfg):
    kW, kH, dW, dH, pW, pH, iH, iW, C, batch, ceil = cfg
    same = True
    for i, k, d, p in ((iH, kH, dH, pH), (iW, kW, dW, pW)):
        ours = pool_size_thnn(i, k, d, p, ceil, pW or pH)
        pt = pool_size_thnn(i, k, d, p, ceil, ceil)
        same = same and ours == pt
    return same


def make_input(cfg, seed=0):
    kW, kH, dW, dH, pW, pH, iH, iW, C, batch, ceil = cfg
    rng = np.random.default_rng(seed)
    shape = (batch, C, iH, iW) if batch else (C, iH, iW)
    return T(rng.standard_normal(shape))


@pytest.mark.parametrize('cfg', pool_configs(40, 2) + CORNERS + THNN_ONLY)
def test_maxpool(cfg):
    kW, kH, dW, dH, pW, pH, iH, iW, C, batch, ceil = cfg
    m = nn.SpatialMaxPooling(kW, kH, dW, dH, pW, pH)
    if ceil:
        m.ceil()
    x = make_input(cfg)
    y = m.forward(x)
    x4 = as_batch(x.numpy(), batch)
    ry, rind = maxpool_thnn(x4, kH, kW, dH, dW, pH, pW, ceil)
    assert y.size() == ((batch,) if batch else ()) + ry.shape[1:]
    assert m.indices.type() == 'torch.LongTensor' and m.indices.size() == y.size()
    np.testing.assert_array_equal(as_batch(y.numpy(), batch), ry)
    np.testing.assert_array_equal(as_batch(m.indices.numpy(), batch), rind)
    assert (m.iheight, m.iwidth) == (iH, iW)
    go = T(np.random.default_rng(1).standard_normal(y.size()))
    gi = m.backward(x, go)
    rgi = maxpool_thnn_backward(as_batch(go.numpy(), batch), rind, x4.shape)
    np.testing.assert_allclose(as_batch(gi.numpy(), batch), rgi, atol=TOL, rtol=0)
    if torch_agrees(cfg):
        xt = torch.from_numpy(x4.copy()).requires_grad_(True)
        ty, tind = TF.max_pool2d(xt, (kH, kW), (dH, dW), (pH, pW), ceil_mode=ceil, return_indices=True)
        ty.backward(torch.from_numpy(as_batch(go.numpy(), batch).copy()))
        np.testing.assert_array_equal(as_batch(y.numpy(), batch), ty.detach().numpy())
        np.testing.assert_array_equal(as_batch(m.indices.numpy(), batch), tind.numpy() + 1)
        np.testing.assert_allclose(as_batch(gi.numpy(), batch), xt.grad.numpy(), atol=TOL, rtol=0)
    else:
        # the extra THNN window lies outside the image: -inf and index 0, no gradient
        assert np.isneginf(y.numpy()).any() and (m.indices.numpy() == 0).any()


def test_maxpool_ties_and_nan():
    # THNN: strict '>' in window order, so the first maximum wins and NaN never wins
    x = T(np.array([[[1., 1., 2.], [2., 0., np.nan], [np.nan, np.nan, 5.]]]))
    m = nn.SpatialMaxPooling(2, 2, 1, 1)
    y = m.forward(x)
    np.testing.assert_array_equal(y.numpy(), [[[2., 2.], [2., 5.]]])
    np.testing.assert_array_equal(m.indices.numpy(), [[[4, 3], [4, 9]]])
    allnan = T(np.full((1, 2, 2), np.nan))
    assert np.isneginf(m.forward(allnan).numpy()).all() and (m.indices.numpy() == 0).all()
    gi = m.backward(allnan, pynn.ones(1, 1, 1))
    assert (gi.numpy() == 0).all()


@pytest.mark.parametrize('cfg', pool_configs(40, 3) + CORNERS + THNN_ONLY)
@pytest.mark.parametrize('include', [True, False])
def test_avgpool(cfg, include):
    kW, kH, dW, dH, pW, pH, iH, iW, C, batch, ceil = cfg
    m = nn.SpatialAveragePooling(kW, kH, dW, dH, pW, pH)
    if ceil:
        m.ceil()
    if not include:
        m.setCountExcludePad()
    x = make_input(cfg, 5)
    y = m.forward(x)
    x4 = as_batch(x.numpy(), batch)
    ry = avgpool_thnn(x4, kH, kW, dH, dW, pH, pW, ceil, include)
    assert y.size() == ((batch,) if batch else ()) + ry.shape[1:]
    np.testing.assert_allclose(as_batch(y.numpy(), batch), ry, atol=TOL, rtol=0)
    go = T(np.random.default_rng(2).standard_normal(y.size()))
    gi = m.backward(x, go)
    # the backward is linear: check it against the transpose of the (reference) forward map
    jac = np.zeros((x4[0, 0].size, ry[0, 0].size))
    basis = np.zeros((1, 1) + x4.shape[2:])
    for p in range(basis.size):
        basis.reshape(-1)[:] = 0
        basis.reshape(-1)[p] = 1
        # windows outside the image (THNN_ONLY) give NaN = 0/0 but take no gradient
        jac[p] = np.nan_to_num(avgpool_thnn(basis, kH, kW, dH, dW, pH, pW, ceil, include)).reshape(-1)
    go4 = as_batch(go.numpy(), batch)
    rgi = np.einsum('po,bco->bcp', jac, go4.reshape(go4.shape[0], C, -1)).reshape(x4.shape)
    np.testing.assert_allclose(as_batch(gi.numpy(), batch), rgi, atol=TOL, rtol=0)
    if torch_agrees(cfg):
        xt = torch.from_numpy(x4.copy()).requires_grad_(True)
        ty = TF.avg_pool2d(xt, (kH, kW), (dH, dW), (pH, pW), ceil_mode=ceil, count_include_pad=include)
        ty.backward(torch.from_numpy(as_batch(go.numpy(), batch).copy()))
        np.testing.assert_allclose(as_batch(y.numpy(), batch), ty.detach().numpy(), atol=TOL, rtol=0)
        np.testing.assert_allclose(as_batch(gi.numpy(), batch), xt.grad.numpy(), atol=TOL, rtol=0)


@pytest.mark.parametrize('dH,dW,ceil', [(2, 2, False), (2, 2, True), (1, 3, True), (3, 1, False)])
def test_avgpool_1x1_subsample_bitwise_as_thnn(dH, dW, ceil):
    # kernel 1x1 without padding (ResNet's shortcut A) is a strided copy: THNN's value bit for
    # bit, -0.0 included (its sum starts at +0), NaN and inf passed through
    x = np.random.default_rng(9).standard_normal((2, 3, 7, 8))
    x[0, 0, 0, :4] = [-0.0, np.nan, np.inf, -np.inf]
    x[1, 2, 2, 0] = -0.0
    m = nn.SpatialAveragePooling(1, 1, dW, dH)
    if ceil:
        m.ceil()
    y = m.forward(T(x)).numpy()
    ry = avgpool_thnn(x, 1, 1, dH, dW, 0, 0, ceil, True)
    assert y.shape == ry.shape
    assert np.array_equal(y, ry, equal_nan=True) and np.array_equal(np.signbit(y), np.signbit(ry))
    go = np.random.default_rng(10).standard_normal(y.shape)
    go.reshape(-1)[:3] = [-0.0, np.nan, np.inf]
    gi = m.backward(T(x), T(go)).numpy()
    rgi = np.zeros_like(x)
    for i in range(y.shape[2]):
        for j in range(y.shape[3]):
            if i * dH < x.shape[2] and j * dW < x.shape[3]:   # windows past the end: no input
                rgi[:, :, i * dH, j * dW] += go[:, :, i, j]
    assert np.array_equal(gi, rgi, equal_nan=True) and np.array_equal(np.signbit(gi), np.signbit(rgi))


@pytest.mark.parametrize('k,d,size', [(8, 1, 8), (4, 4, 8), (3, 2, 7), (5, 3, 9)])
def test_avgpool_few_big_windows_in_thnn_order(k, d, size):
    # global pooling and other pools with few outputs sum strided views of the input in
    # THNN's order (rows, then columns, from 0): the same floating-point result, bit for bit
    x = np.random.default_rng(11).standard_normal((3, 4, size, size)) * 10 ** np.arange(size)
    assert F._few_windows(k, k, 0, 0, size, size, (size - k) // d + 1, (size - k) // d + 1, d, d)
    m = nn.SpatialAveragePooling(k, k, d, d)
    y = m.forward(T(x)).numpy()
    assert np.array_equal(y, avgpool_thnn(x, k, k, d, d, 0, 0, False, True))
    go = np.random.default_rng(12).standard_normal(y.shape)
    xt = torch.from_numpy(x.copy()).requires_grad_(True)
    TF.avg_pool2d(xt, k, d).backward(torch.from_numpy(go))
    np.testing.assert_allclose(m.backward(T(x), T(go)).numpy(), xt.grad.numpy(), atol=TOL, rtol=0)


def test_avgpool_defaults_and_divide():
    m = nn.SpatialAveragePooling(3, 3)
    assert (m.dW, m.dH, m.padW, m.padH) == (1, 1, 0, 0)  # Lua: stride defaults to 1
    assert m.ceil_mode is False and m.count_include_pad is True and m.divide is True
    x = pynn.randn(2, 3, 6, 6)
    y = m.forward(x).numpy().copy()
    m.divide = False  # old files: sum instead of mean
    np.testing.assert_allclose(m.forward(x).numpy(), 9 * y, atol=TOL)
    go = pynn.randn(2, 3, 4, 4)
    gi = m.backward(x, go).numpy().copy()
    m.divide = True
    np.testing.assert_allclose(m.backward(x, go).numpy() * 9, gi, atol=TOL)
    # an old file without ceil_mode / padding fields
    old = nn.SpatialAveragePooling(2, 2, 2, 2)
    for f in ('ceil_mode', 'count_include_pad', 'padW', 'padH'):
        del old.__dict__[f]
    assert old.forward(x).size() == (2, 3, 3, 3)
    assert old.ceil_mode is False and old.padW == 0 and old.count_include_pad is True


def test_ceil_floor_and_tostring():
    m = nn.SpatialMaxPooling(3, 3, 2, 2)
    assert m.ceil() is m and m.ceil_mode is True
    assert m.floor() is m and m.ceil_mode is False
    assert (nn.SpatialMaxPooling(2, 2).dW, nn.SpatialMaxPooling(2, 3).dH) == (2, 3)
    assert str(nn.SpatialMaxPooling(2, 2)) == 'nn.SpatialMaxPooling(2x2, 2,2)'
    assert str(nn.SpatialMaxPooling(3, 3, 2, 2, 1, 1)) == 'nn.SpatialMaxPooling(3x3, 2,2, 1,1)'
    assert str(nn.SpatialAveragePooling(3, 3, 1, 1, 1, 0)) == 'nn.SpatialAveragePooling(3x3, 1,1, 1,0)'
    a = nn.SpatialAveragePooling(2, 2)
    assert a.setCountExcludePad() is a and a.count_include_pad is False
    assert a.setCountIncludePad() is a and a.count_include_pad is True
    p = nn.SpatialMaxPooling(2, 2)
    assert str(nn.SpatialMaxUnpooling(p)) == 'nn.SpatialMaxUnpooling associated to nn.SpatialMaxPooling(2x2, 2,2)'
    assert str(nn.SpatialZeroPadding(1, 2, -1, 0)) == 'nn.SpatialZeroPadding(l=1, r=2, t=-1, b=0)'


def test_indices_type_and_clear_state():
    m = nn.SpatialMaxPooling(2, 2)
    assert m.indices.type() == 'torch.LongTensor' and m.indices.storage() is None
    x = pynn.randn(2, 3, 4, 4)
    m.forward(x)
    assert m.indices.size() == (2, 3, 2, 2) and m.indices.storage().nbytes() == 2 * 3 * 2 * 2 * 8
    m.float()  # Lua converts every tensor field, indices too; forward makes it Long again
    assert m.indices.type() == 'torch.FloatTensor'
    m.forward(x.float())
    assert m.indices.type() == 'torch.LongTensor' and m.output.type() == 'torch.FloatTensor'
    ind = m.indices
    m.clearState()
    assert m.indices is ind and m.indices.storage() is None and m.output.nElement() == 0


def test_unpool():
    rng = np.random.default_rng(6)
    for batch in (0, 3):
        p = nn.SpatialMaxPooling(2, 3)
        u = nn.SpatialMaxUnpooling(p)
        shape = (batch, 2, 7, 8) if batch else (2, 7, 8)
        x = T(rng.standard_normal(shape))
        y = p.forward(x)
        z = T(rng.standard_normal(y.size()))
        out = u.forward(z)
        assert u.indices is p.indices and (u.oheight, u.owidth) == (7, 8)
        assert out.size() == x.size()
        ind = th(p.indices) - 1
        ref = TF.max_unpool2d(th(z), ind, (3, 2), (3, 2), output_size=(7, 8))
        np.testing.assert_array_equal(out.numpy(), ref.numpy())
        go = T(rng.standard_normal(out.size()))
        gi = u.backward(z, go)
        zt = th(z).requires_grad_(True)
        TF.max_unpool2d(zt, ind, (3, 2), (3, 2), output_size=(7, 8)).backward(th(go))
        np.testing.assert_array_equal(gi.numpy(), zt.grad.numpy())
    with pytest.raises(ValueError, match='SpatialMaxPooling'):
        nn.SpatialMaxUnpooling(nn.SpatialAveragePooling(2, 2, 2, 2))
    with pytest.raises(ValueError, match='stride'):
        nn.SpatialMaxUnpooling(nn.SpatialMaxPooling(3, 3, 2, 2))


def test_unpool_bad_input_and_index():
    p = nn.SpatialMaxPooling(2, 2)
    u = nn.SpatialMaxUnpooling(p)
    with pytest.raises(ValueError, match='SpatialMaxUnpooling'):
        u.forward(pynn.randn(1, 2, 2))  # pooling never ran
    x = pynn.randn(1, 4, 4)
    p.forward(x)
    with pytest.raises(ValueError, match='SpatialMaxUnpooling'):
        u.forward(pynn.randn(1, 3, 2))
    p.indices.numpy()[0, 0, 0] = 17  # past the 4x4 plane
    with pytest.raises(ValueError, match='invalid max index'):
        u.forward(pynn.randn(1, 2, 2))
    p.forward(x)
    assert u.forward(pynn.randn(1, 2, 2)).size() == (1, 4, 4)


@pytest.mark.parametrize('pads', [(1, 1, 1, 1), (2, 0, 1, 3), (-1, 2, 0, -2), (-2, -1, -1, -3), (0, 0, 0, 0)])
@pytest.mark.parametrize('batch', [0, 2])
def test_zero_padding(pads, batch):
    l, r, t, b = pads
    m = nn.SpatialZeroPadding(l, r, t, b)
    rng = np.random.default_rng(4)
    shape = (batch, 3, 6, 5) if batch else (3, 6, 5)
    x = T(rng.standard_normal(shape))
    y = m.forward(x)
    xt = th(x).requires_grad_(True)
    ref = TF.pad(xt, (l, r, t, b))
    np.testing.assert_array_equal(y.numpy(), ref.detach().numpy())
    go = T(rng.standard_normal(y.size()))
    ref.backward(th(go))
    np.testing.assert_array_equal(m.backward(x, go).numpy(), xt.grad.numpy())


def test_zero_padding_defaults_and_errors():
    m = nn.SpatialZeroPadding(2)
    assert (m.pad_l, m.pad_r, m.pad_t, m.pad_b) == (2, 2, 2, 2)
    with pytest.raises(ValueError, match='SpatialZeroPadding'):
        nn.SpatialZeroPadding(-3).forward(pynn.randn(2, 5, 5))
    with pytest.raises(ValueError, match='SpatialZeroPadding'):
        m.forward(pynn.randn(5, 5))
    assert m.forward(pynn.randn(2, 5, 5)).size() == (2, 9, 9)


# ----------------------------------------------------------------------------- Jacobians
def jacobian_check(m, x, eps=1e-6):
    xa = x.numpy()
    y = m.forward(x).numpy().copy()
    num = np.zeros((xa.size, y.size))
    flat = xa.reshape(-1)
    for i in range(xa.size):
        old = flat[i]
        flat[i] = old + eps
        yp = m.forward(x).numpy().reshape(-1).copy()
        flat[i] = old - eps
        ym = m.forward(x).numpy().reshape(-1).copy()
        flat[i] = old
        num[i] = (yp - ym) / (2 * eps)
    m.forward(x)
    ana = np.zeros_like(num)
    go = pynn.Tensor(*y.shape)
    for j in range(y.size):
        go.zero()
        go.numpy().reshape(-1)[j] = 1
        ana[:, j] = m.updateGradInput(x, go).numpy().reshape(-1)
    return np.abs(num - ana).max()


def test_jacobians():
    rng = np.random.default_rng(12)
    x = T(rng.standard_normal((2, 2, 5, 6)))
    assert jacobian_check(nn.SpatialMaxPooling(3, 2, 2, 1, 1, 1).ceil(), x) < 1e-7
    assert jacobian_check(nn.SpatialAveragePooling(3, 2, 2, 1, 1, 1).ceil(), x) < 1e-7
    assert jacobian_check(nn.SpatialAveragePooling(3, 3, 2, 2, 1, 1).setCountExcludePad(), x) < 1e-7
    assert jacobian_check(nn.SpatialZeroPadding(1, -1, 2, -2), x) < 1e-7
    p = nn.SpatialMaxPooling(2, 2)
    p.forward(T(rng.standard_normal((2, 2, 6, 6))))
    assert jacobian_check(nn.SpatialMaxUnpooling(p), T(rng.standard_normal((2, 2, 3, 3)))) < 1e-7


# ----------------------------------------------------------------------------- errors, types, meta
@pytest.mark.parametrize('make', [lambda: nn.SpatialMaxPooling(2, 2), lambda: nn.SpatialAveragePooling(2, 2, 2, 2)])
def test_bad_input(make):
    m = make()
    good = pynn.randn(2, 3, 6, 6)
    y0 = m.forward(good).numpy().copy()
    for b in [pynn.randn(6, 6), pynn.randn(1, 2, 3, 6, 6), pynn.randn(3, 1, 1), [good],
              pynn.FloatTensor(2, 3, 6, 6)]:
        with pytest.raises(ValueError, match=m.__typename__):
            m.forward(b)
        assert m.output.size() == (2, 3, 3, 3)
    with pytest.raises(ValueError, match='gradOutput'):
        m.backward(good, pynn.randn(2, 3, 2, 2))
    with pytest.raises(ValueError, match='pad should be smaller'):
        type(m)(2, 2, 2, 2, 2, 0).forward(good)
    np.testing.assert_array_equal(m.forward(good).numpy(), y0)
    assert m.backward(good, pynn.randn(2, 3, 3, 3)).size() == good.size()


def test_float32():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 7, 7))
    for m in (nn.SpatialMaxPooling(3, 3, 2, 2, 1, 1).ceil(), nn.SpatialAveragePooling(3, 3, 2, 2, 1, 1),
              nn.SpatialZeroPadding(1, 2, 0, -1)):
        yd = m.forward(T(x)).numpy().copy()
        gd = m.backward(T(x), T(np.ones(yd.shape))).numpy().copy()
        m.float()
        xf = T(x.astype(np.float32))
        y = m.forward(xf)
        assert y.type() == 'torch.FloatTensor'
        np.testing.assert_allclose(y.numpy(), yd, atol=1e-5)
        gi = m.backward(xf, T(np.ones(yd.shape, np.float32)))
        assert gi.numpy().dtype == np.float32
        np.testing.assert_allclose(gi.numpy(), gd, atol=1e-5)


def test_meta():
    for make in (lambda: nn.SpatialMaxPooling(3, 3, 2, 2, 1, 1).ceil(),
                 lambda: nn.SpatialAveragePooling(2, 2, 2, 2).ceil(),
                 lambda: nn.SpatialZeroPadding(1, -1, 2, 0)):
        real, meta = make(), make().type('torch.MetaDoubleTensor')
        for shape in [(2, 3, 7, 9), (3, 5, 5)]:
            x = pynn.randn(*shape)
            real.forward(x)
            real.backward(x, pynn.randn(*real.output.size()))
            xm = pynn.MetaDoubleTensor(*shape)
            ym = meta.forward(xm)
            assert ym.is_meta() and ym.size() == real.output.size()
            meta.backward(xm, pynn.MetaDoubleTensor(*ym.size()))
            assert meta.gradInput.size() == x.size()
            if 'indices' in real.__dict__:
                assert meta.indices.type() == 'torch.MetaLongTensor'
                assert meta.indices.size() == real.indices.size()
                assert meta.indices.storage().size() == real.indices.storage().size()
    p = nn.SpatialMaxPooling(2, 2).type('torch.MetaDoubleTensor')
    u = nn.SpatialMaxUnpooling(p).type('torch.MetaDoubleTensor')
    p.forward(pynn.MetaDoubleTensor(2, 3, 6, 6))
    assert u.forward(pynn.MetaDoubleTensor(2, 3, 3, 3)).size() == (2, 3, 6, 6)


def module_storage_bytes(m):
    seen = {}
    for v in m.__dict__.values():
        if isinstance(v, pynn.Tensor) and v.storage() is not None:
            seen[id(v.storage())] = v.storage().nbytes()
    return sum(seen.values())


@pytest.mark.parametrize('make', [lambda: nn.SpatialMaxPooling(3, 3, 2, 2, 1, 1),
                                  lambda: nn.SpatialAveragePooling(2, 2, 2, 2).setCountExcludePad(),
                                  lambda: nn.SpatialAveragePooling(3, 3, 1, 1, 1, 1).ceil()])
def test_allocations_second_pass(make):
    m = make()
    x = pynn.randn(8, 16, 32, 32)
    m.forward(x)
    go = pynn.randn(*m.output.size())
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
    assert peak < 0.1 * module_storage_bytes(m), (peak, module_storage_bytes(m))


def test_functional_pool_sizes():
    # THNN's formula on a few hand-checked cases
    assert F.pool_output_size(5, 5, 2, 2, 2, 2, 0, 0, True) == (3, 3)
    assert F.pool_output_size(5, 5, 2, 2, 2, 2, 0, 0, False) == (2, 2)
    assert F.pool_output_size(5, 5, 1, 1, 3, 3, 0, 0, True) == (3, 3)   # PyTorch: 2
    assert F.pool_output_size(4, 4, 2, 2, 2, 2, 1, 1, True) == (3, 3)
    assert F.pool_output_size(6, 6, 3, 3, 2, 2, 1, 1, True) == (4, 4)   # last window kept
    assert F.pool_output_size(5, 5, 2, 2, 3, 3, 1, 1, True) == (2, 2)   # dropped: starts in pad


def test_functional_maxpool_backward_paths_agree():
    rng = np.random.default_rng(13)
    x = rng.standard_normal((2, 3, 7, 6))
    out = np.empty((2, 3, 4, 3))
    ind = np.empty(out.shape, dtype=np.int64)
    F.maxpool2d_forward(x, out, ind, 3, 3, 2, 2, 1, 1)
    go = rng.standard_normal(out.shape)
    a = np.empty_like(x)
    F.maxpool2d_backward(go, ind, a, 3, 3, 2, 2, 1, 1)
    b = np.empty((2, 3, 7, 8))[..., :6]  # not contiguous: the per-offset fallback
    F.maxpool2d_backward(go, ind, b, 3, 3, 2, 2, 1, 1)
    np.testing.assert_allclose(a, b, atol=TOL, rtol=0)
    ref = maxpool_thnn_backward(go, ind, x.shape)
    np.testing.assert_array_equal(a, ref)  # same summation order as THNN: bitwise equal


# ============================================================================= newer pool classes
# (SpatialDilatedMaxPooling, adaptive, fractional, LP poolings): hypothesis vs PyTorch, float64.
from hypothesis import HealthCheck, assume, given, settings, strategies as st  # noqa: E402

HSET = settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))


def _torch_pool_size(i, k, d, p, dil, ceil):
    span = i + 2 * p - dil * (k - 1) - 1
    o = (-(-span // d) if ceil else span // d) + 1
    if ceil and (o - 1) * d >= i + p:
        o -= 1
    return o


def _thnn_pool_size(i, k, d, p, dil, ceil, any_pad):
    span = i + 2 * p - dil * (k - 1) - 1
    o = (-(-span // d) if ceil else span // d) + 1
    if any_pad and (o - 1) * d >= i + p:
        o -= 1
    return o


@st.composite
def dilated_cfg(draw, nd):
    k = [draw(st.integers(1, 3)) for _ in range(nd)]
    d = [draw(st.integers(1, 3)) for _ in range(nd)]
    dil = [draw(st.integers(1, 3)) for _ in range(nd)]
    p = [draw(st.integers(0, kk // 2)) for kk in k]
    ceil = draw(st.booleans())
    isz = [draw(st.integers(dl * (kk - 1) + 1, dl * (kk - 1) + 6)) for kk, dl in zip(k, dil)]
    batch = draw(st.sampled_from([0, 1, 2]))
    C = draw(st.integers(1, 3))
    return k, d, p, dil, ceil, isz, batch, C


def _rand(shape, seed):
    return np.random.default_rng(seed).standard_normal(shape)


def _lead(batch, C):
    return (batch, C) if batch else (C,)


@given(dilated_cfg(2), st.integers(0, 10 ** 6))
@HSET
def test_dilated_maxpool_vs_torch(cfg, seed):
    (kH, kW), (dH, dW), (pH, pW), (lH, lW), ceil, (iH, iW), batch, C = cfg
    osz = [_thnn_pool_size(i, k, d, p, l, ceil, pH or pW) for i, k, d, p, l in
           zip((iH, iW), (kH, kW), (dH, dW), (pH, pW), (lH, lW))]
    assume(osz == [_torch_pool_size(i, k, d, p, l, ceil) for i, k, d, p, l in
                   zip((iH, iW), (kH, kW), (dH, dW), (pH, pW), (lH, lW))])
    assume(min(osz) >= 1)
    m = nn.SpatialDilatedMaxPooling(kW, kH, dW, dH, pW, pH, lW, lH)
    if ceil:
        m.ceil()
    x = _rand(_lead(batch, C) + (iH, iW), seed)
    y = m.forward(T(x))
    xt = torch.tensor(x, requires_grad=True)
    yt, it = TF.max_pool2d(xt, (kH, kW), (dH, dW), (pH, pW), (lH, lW), ceil_mode=ceil, return_indices=True)
    assert y.size() == tuple(yt.shape)
    np.testing.assert_allclose(y.numpy(), yt.detach().numpy(), rtol=0, atol=TOL)
    np.testing.assert_array_equal(m.indices.numpy() - 1, it.numpy())
    assert m.indices.type() == 'torch.LongTensor'
    g = _rand(y.size(), seed + 1)
    gi = m.backward(T(x), T(g))
    yt.backward(torch.from_numpy(g))
    np.testing.assert_allclose(gi.numpy(), xt.grad.numpy(), rtol=0, atol=TOL)


def test_dilated_maxpool_fields_and_string():
    m = nn.SpatialDilatedMaxPooling(3, 2, 1, 1, 1, 0, 2)
    assert (m.dilationW, m.dilationH, m.padW, m.padH, m.ceil_mode) == (2, 1, 1, 0, False)
    assert m.__tostring__() == 'nn.SpatialDilatedMaxPooling(3x2, 1,1, 1,0, 2,1)'
    assert nn.SpatialDilatedMaxPooling(2, 2, 1, 1, 0, 0, 2, 2).__tostring__() == \
        'nn.SpatialDilatedMaxPooling(2x2, 1,1, 2,2)'
    assert isinstance(m, nn.SpatialMaxPooling) and m.ceil() is m and m.ceil_mode


@given(st.integers(1, 7), st.integers(1, 7), st.integers(1, 9), st.integers(1, 9), st.sampled_from([0, 2]),
       st.integers(0, 10 ** 6))
@HSET
def test_adaptive_pools_vs_torch(oH, oW, iH, iW, batch, seed):
    x = _rand(_lead(batch, 2) + (iH, iW), seed)
    g = _rand(_lead(batch, 2) + (oH, oW), seed + 1)
    for m, f in ((nn.SpatialAdaptiveMaxPooling(oW, oH), TF.adaptive_max_pool2d),
                 (nn.SpatialAdaptiveAveragePooling(oW, oH), TF.adaptive_avg_pool2d)):
        y = m.forward(T(x))
        xt = torch.tensor(x, requires_grad=True)
        yt = f(xt, (oH, oW))
        np.testing.assert_allclose(y.numpy(), yt.detach().numpy(), rtol=0, atol=TOL)
        yt.backward(torch.from_numpy(g))
        np.testing.assert_allclose(m.backward(T(x), T(g)).numpy(), xt.grad.numpy(), rtol=0, atol=TOL)
    m = nn.SpatialAdaptiveMaxPooling(oW, oH)
    m.forward(T(x))
    ind = m.indices.numpy()
    assert m.indices.size() == (2,) + _lead(batch, 2) + (oH, oW)
    _, it = TF.adaptive_max_pool2d(torch.from_numpy(x), (oH, oW), return_indices=True)
    ys = np.floor(np.arange(oH, dtype=np.float32) / np.float32(oH) * np.float32(iH)).astype(int)
    xs = np.floor(np.arange(oW, dtype=np.float32) / np.float32(oW) * np.float32(iW)).astype(int)
    flat = (ind[0] - 1 + ys[:, None]) * iW + (ind[1] - 1 + xs[None, :])
    np.testing.assert_array_equal(flat, it.numpy())


@given(st.integers(2, 3), st.integers(2, 3), st.integers(1, 4), st.integers(1, 4), st.integers(0, 3),
       st.integers(0, 3), st.sampled_from([0, 2]), st.integers(0, 10 ** 6))
@HSET
def test_fractional_maxpool_vs_torch(kH, kW, oH, oW, eH, eW, batch, seed):
    iH, iW = oH + kH + eH, oW + kW + eW
    x = _rand(_lead(batch, 3) + (iH, iW), seed)
    samples = np.random.default_rng(seed + 2).random((max(batch, 1), 3, 2))
    m = nn.SpatialFractionalMaxPooling(kW, kH, oW, oH).fixPoolingRegions()
    m.randomSamples = T(samples)
    y = m.forward(T(x))
    xt = torch.tensor(x if batch else x[None], requires_grad=True)
    yt, it = TF.fractional_max_pool2d(xt, (kH, kW), output_size=(oH, oW), return_indices=True,
                                      _random_samples=torch.from_numpy(samples))
    np.testing.assert_allclose(y.numpy(), (yt if batch else yt[0]).detach().numpy(), rtol=0, atol=TOL)
    np.testing.assert_array_equal(m.indices.numpy() - 1, (it if batch else it[0]).numpy())
    g = _rand(y.size(), seed + 1)
    gi = m.backward(T(x), T(g))
    yt.backward(torch.from_numpy(g if batch else g[None]))
    np.testing.assert_allclose(gi.numpy(), (xt.grad if batch else xt.grad[0]).numpy(), rtol=0, atol=TOL)
    np.testing.assert_array_equal(m.randomSamples.numpy(), samples)   # fixed regions: not redrawn


def test_fractional_samples_ratio_and_string():
    m = nn.SpatialFractionalMaxPooling(2, 2, 0.5, 0.75)
    assert m.randomSamples is None and m.newRandomPool is False and m.outW is None
    x = pynn.randn(2, 3, 8, 8)
    y = m.forward(x)
    assert y.size() == (2, 3, 6, 4) and m.randomSamples.size() == (2, 3, 2)
    s0 = m.randomSamples.numpy().copy()
    m.forward(x)
    assert not np.array_equal(s0, m.randomSamples.numpy())       # redrawn each forward
    m.fixPoolingRegions()
    s1 = m.randomSamples.numpy().copy()
    m.forward(x)
    np.testing.assert_array_equal(s1, m.randomSamples.numpy())
    assert nn.SpatialFractionalMaxPooling(2, 3, 4, 5).__tostring__() == 'nn.SpatialFractionalMaxPooling(4x5, 2,3)'
    m.clearState()
    assert m.randomSamples is None and m.indices is None
    with pytest.raises(ValueError, match='SpatialFractionalMaxPooling'):
        nn.SpatialFractionalMaxPooling(2, 2, 4, 4).forward(pynn.randn(3, 5, 5))   # pool too large


@given(st.sampled_from([1, 2, 3]), st.integers(1, 3), st.integers(1, 3), st.integers(1, 3), st.integers(1, 3),
       st.integers(0, 10 ** 6))
@HSET
def test_lp_pooling_vs_torch(p, kH, kW, dH, dW, seed):
    x = np.abs(_rand((2, 2, kH + 3, kW + 4), seed)) + 0.1
    m = nn.SpatialLPPooling(2, p, kW, kH, dW, dH)
    y = m.forward(T(x))
    xt = torch.tensor(x, requires_grad=True)
    yt = TF.lp_pool2d(xt, p, (kH, kW), (dH, dW))
    np.testing.assert_allclose(y.numpy(), yt.detach().numpy(), rtol=1e-12, atol=TOL)
    g = _rand(y.size(), seed + 1)
    yt.backward(torch.from_numpy(g))
    np.testing.assert_allclose(m.backward(T(x), T(g)).numpy(), xt.grad.numpy(), rtol=1e-10, atol=TOL)
    assert not m.parameters() or m.parameters() == ([], [])
    assert [t.__typename__ for t in m.modules][1:3] == \
        ['nn.SpatialAveragePooling', 'nn.MulConstant']
    assert (m.kW, m.kH, m.dW, m.dH) == (kW, kH, dW, dH)


def feature_lp_reference(x, width, stride, p):
    F_ = x.shape[1]
    oF = (F_ - width) // stride + 1
    return np.stack([(np.abs(x[:, f * stride:f * stride + width]) ** p).sum(1) ** (1 / p)
                     if p % 2 else (x[:, f * stride:f * stride + width] ** p).sum(1) ** (1 / p)
                     for f in range(oF)], 1)


@pytest.mark.parametrize('batch,shape', [(False, (7,)), (False, (6, 3)), (False, (6, 2, 3)),
                                         (True, (2, 7)), (True, (2, 6, 3)), (True, (2, 8, 2, 2))])
@pytest.mark.parametrize('width,stride,p', [(2, 1, 2), (3, 2, 2), (4, 1, 3)])
def test_feature_lp_pooling(batch, shape, width, stride, p):
    rng = np.random.default_rng(5)
    x = np.abs(rng.standard_normal(shape)) + 0.2
    m = nn.FeatureLPPooling(width, stride, p, batch)
    y = m.forward(T(x))
    xb = x if batch else x[None]
    ref = feature_lp_reference(xb, width, stride, p)
    np.testing.assert_allclose(y.numpy(), ref if batch else ref[0], rtol=1e-12)
    assert jacobian_check(m, T(x)) < 1e-7


def test_new_pools_jacobians():
    rng = np.random.default_rng(4)
    x = T(rng.standard_normal((2, 2, 6, 7)))
    assert jacobian_check(nn.SpatialDilatedMaxPooling(2, 3, 1, 2, 1, 1, 2, 1).ceil(), x) < 1e-7
    assert jacobian_check(nn.SpatialAdaptiveMaxPooling(3, 4), x) < 1e-7
    assert jacobian_check(nn.SpatialAdaptiveAveragePooling(4, 3), x) < 1e-7
    assert jacobian_check(nn.SpatialAdaptiveAveragePooling(9, 8), x) < 1e-7   # upsampling windows
    assert jacobian_check(nn.SpatialFractionalMaxPooling(2, 2, 3, 3).fixPoolingRegions(), x) < 1e-7
    assert jacobian_check(nn.SpatialLPPooling(2, 2, 2, 2), T(np.abs(x.numpy()) + 0.1)) < 1e-6


NEW_POOLS = [lambda: nn.SpatialDilatedMaxPooling(3, 3, 2, 2, 1, 1, 2, 2).ceil(),
             lambda: nn.SpatialAdaptiveMaxPooling(3, 2), lambda: nn.SpatialAdaptiveAveragePooling(2, 3),
             lambda: nn.SpatialFractionalMaxPooling(2, 2, 3, 3).fixPoolingRegions(),
             lambda: nn.SpatialLPPooling(3, 2, 2, 2), lambda: nn.FeatureLPPooling(2, 1, 2, True)]


@pytest.mark.parametrize('make', NEW_POOLS)
def test_new_pools_float32_meta_and_bad_input(make):
    rng = np.random.default_rng(6)
    x = np.abs(rng.standard_normal((2, 3, 7, 7))) + 0.1
    m = make()
    yd = m.forward(T(x)).numpy().copy()
    gd = m.backward(T(x), T(np.ones(yd.shape))).numpy().copy()
    # bad input: a ValueError naming the module, the module still works afterwards
    for bad in (pynn.randn(7), pynn.randn(1, 1, 2, 3, 7, 7), pynn.FloatTensor(2, 3, 7, 7), [T(x)]):
        with pytest.raises((ValueError, TypeError), match=m.__typename__.split('.')[1][:7]):
            m.forward(bad)
    np.testing.assert_array_equal(m.forward(T(x)).numpy(), yd)
    # float32
    mf = make().float()
    if 'randomSamples' in m.__dict__:
        mf.randomSamples = m.randomSamples.float()
    y = mf.forward(T(x.astype(np.float32)))
    assert y.type() == 'torch.FloatTensor'
    np.testing.assert_allclose(y.numpy(), yd, rtol=1e-5, atol=1e-5)
    gi = mf.backward(T(x.astype(np.float32)), T(np.ones(yd.shape, np.float32)))
    assert gi.numpy().dtype == np.float32
    np.testing.assert_allclose(gi.numpy(), gd, rtol=1e-4, atol=1e-4)
    # meta: sizes (and index buffers) as with real data
    mm = make().type('torch.MetaDoubleTensor')
    ym = mm.forward(pynn.MetaDoubleTensor(2, 3, 7, 7))
    assert ym.is_meta() and ym.size() == yd.shape
    assert mm.backward(pynn.MetaDoubleTensor(2, 3, 7, 7), pynn.MetaDoubleTensor(*yd.shape)).size() == x.shape
    if m.__dict__.get('indices') is not None:
        assert mm.indices.type() == 'torch.MetaLongTensor' and mm.indices.size() == m.indices.size()


@given(dilated_cfg(2), st.booleans(), st.integers(0, 10 ** 6))
@HSET
def test_max_avg_pool2d_hypothesis_vs_torch(cfg, include, seed):
    """SpatialMaxPooling / SpatialAveragePooling (ceil mode, padding, count_include_pad)."""
    (kH, kW), (dH, dW), (pH, pW), _, ceil, (iH, iW), batch, C = cfg
    iH, iW = iH + kH, iW + kW
    args = ((iH, iW), (kH, kW), (dH, dW), (pH, pW), (1, 1))
    osz = [_thnn_pool_size(*a, ceil, pH or pW) for a in zip(*args)]
    assume(osz == [_torch_pool_size(*a, ceil) for a in zip(*args)] and min(osz) >= 1)
    x = _rand(_lead(batch, C) + (iH, iW), seed)
    g = _rand(_lead(batch, C) + tuple(osz), seed + 1)
    mp = nn.SpatialMaxPooling(kW, kH, dW, dH, pW, pH)
    ap = nn.SpatialAveragePooling(kW, kH, dW, dH, pW, pH)
    if not include:
        ap.setCountExcludePad()
    if ceil:
        mp.ceil()
        ap.ceil()
    for m, f in ((mp, lambda t: TF.max_pool2d(t, (kH, kW), (dH, dW), (pH, pW), ceil_mode=ceil)),
                 (ap, lambda t: TF.avg_pool2d(t, (kH, kW), (dH, dW), (pH, pW), ceil_mode=ceil,
                                              count_include_pad=include))):
        xt = torch.tensor(x, requires_grad=True)
        yt = f(xt)
        np.testing.assert_allclose(m.forward(T(x)).numpy(), yt.detach().numpy(), rtol=0, atol=TOL)
        yt.backward(torch.from_numpy(g))
        np.testing.assert_allclose(m.backward(T(x), T(g)).numpy(), xt.grad.numpy(), rtol=0, atol=TOL)


@given(st.integers(1, 3), st.integers(1, 3), st.integers(1, 4), st.integers(1, 4), st.sampled_from([0, 2]),
       st.integers(0, 10 ** 6))
@HSET
def test_max_unpool2d_hypothesis_vs_torch(kH, kW, oH, oW, batch, seed):
    x = _rand(_lead(batch, 2) + (kH * oH, kW * oW), seed)
    pool = nn.SpatialMaxPooling(kW, kH)
    un = nn.SpatialMaxUnpooling(pool)
    y = pool.forward(T(x))
    z = _rand(y.size(), seed + 1)
    _, it = TF.max_pool2d(torch.from_numpy(x), (kH, kW), return_indices=True)
    zt = torch.tensor(z, requires_grad=True)
    ut = TF.max_unpool2d(zt, it, (kH, kW), output_size=x.shape[-2:])
    np.testing.assert_allclose(un.forward(T(z)).numpy(), ut.detach().numpy(), rtol=0, atol=TOL)
    g = _rand(x.shape, seed + 2)
    ut.backward(torch.from_numpy(g))
    np.testing.assert_allclose(un.backward(T(z), T(g)).numpy(), zt.grad.numpy(), rtol=0, atol=TOL)
