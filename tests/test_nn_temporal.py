"""Temporal family vs PyTorch (float64, 1e-10, hypothesis on random shapes): TemporalConvolution
(conv1d), TemporalMaxPooling (max_pool1d, with THNN's window-offset indices),
TemporalSubSampling (avg_pool1d), TemporalRowConvolution (conv1d with groups); finite
differences for TemporalRowConvolution and TemporalDynamicKMaxPooling; meta, float32, bad
input, printing."""
import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import given, settings, strategies as st, HealthCheck

import pynn
from pynn import nn

TOL = 1e-10
HYP = settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))


def T(a):
    return pynn.from_numpy(np.ascontiguousarray(a))


def close(got, want, tol=TOL):
    got = np.asarray(got).reshape(np.shape(want))
    scale = max(float(np.abs(want).max()), 1e-6)
    assert np.abs(got - want).max() <= tol * scale


def _seq(draw, kW):
    return kW + draw(st.integers(0, 6))


@HYP
@given(st.integers(1, 4), st.integers(1, 4), st.integers(1, 4), st.integers(1, 3),
       st.integers(0, 3), st.sampled_from([1.0, 0.5]), st.data())
def test_temporal_convolution_vs_conv1d(C, nOut, kW, dW, B, scale, data):
    rng = np.random.default_rng(data.draw(st.integers(0, 2 ** 31)))
    nT = _seq(data.draw, kW)
    m = nn.TemporalConvolution(C, nOut, kW, dW)
    lead = (B,) if B else ()
    x = rng.standard_normal(lead + (nT, C))
    oT = (nT - kW) // dW + 1
    go = rng.standard_normal(lead + (oT, nOut))
    y = m.forward(T(x)).numpy().copy()
    m.zeroGradParameters()
    gi = m.backward(T(x), T(go), scale).numpy().copy()
    # weight (nOut, kW*C): frame-major windows -> conv1d weight (nOut, C, kW)
    w = torch.from_numpy(m.weight.numpy().reshape(nOut, kW, C).transpose(0, 2, 1).copy())
    w.requires_grad_(True)
    b = torch.from_numpy(m.bias.numpy().copy()).requires_grad_(True)
    xt = torch.from_numpy(x).requires_grad_(True)
    xb = xt if B else xt[None]
    yt = TF.conv1d(xb.transpose(1, 2), w, b, dW).transpose(1, 2)
    yt = yt if B else yt[0]
    yt.backward(torch.from_numpy(go))
    close(y, yt.detach().numpy())
    close(gi, xt.grad.numpy())
    close(m.gradWeight.numpy().reshape(nOut, kW, C).transpose(0, 2, 1), scale * w.grad.numpy())
    close(m.gradBias.numpy(), scale * b.grad.numpy())


@HYP
@given(st.integers(1, 4), st.integers(1, 4), st.integers(0, 3), st.integers(1, 4), st.data())
def test_temporal_max_pooling_vs_max_pool1d(kW, dW, B, C, data):
    rng = np.random.default_rng(data.draw(st.integers(0, 2 ** 31)))
    nT = _seq(data.draw, kW)
    m = nn.TemporalMaxPooling(kW, dW)
    lead = (B,) if B else ()
    x = rng.standard_normal(lead + (nT, C))
    oT = (nT - kW) // dW + 1
    go = rng.standard_normal(lead + (oT, C))
    y = m.forward(T(x)).numpy().copy()
    gi = m.backward(T(x), T(go)).numpy().copy()
    xt = torch.from_numpy(x).requires_grad_(True)
    xb = xt if B else xt[None]
    yt, it = TF.max_pool1d(xb.transpose(1, 2), kW, dW, return_indices=True)
    yt = yt.transpose(1, 2)
    yt = yt if B else yt[0]
    yt.backward(torch.from_numpy(go))
    close(y, yt.detach().numpy())
    close(gi, xt.grad.numpy())
    # THNN's indices: the offset of the maximum inside its window (0-based), a LongTensor
    offs = it.transpose(1, 2).numpy() - (np.arange(oT) * dW)[None, :, None]
    assert m.indices.type() == 'torch.LongTensor'
    assert np.array_equal(m.indices.numpy().reshape(offs.shape), offs)


def test_temporal_max_pooling_nan_window():
    m = nn.TemporalMaxPooling(2)
    x = T(np.array([[np.nan, 1.0], [np.nan, 2.0], [0.5, 3.0], [0.25, -1.0]]))
    y = m.forward(x).numpy()
    assert y[0, 0] == -np.inf and m.indices.numpy()[0, 0] == -1
    assert y[1, 0] == 0.5 and m.indices.numpy()[1, 0] == 0
    gi = m.backward(x, T(np.ones((2, 2)))).numpy()
    assert gi[:, 0].tolist() == [0, 0, 1, 0]


@HYP
@given(st.integers(1, 4), st.integers(1, 4), st.integers(1, 4), st.data())
def test_temporal_subsampling_vs_avg_pool1d(C, kW, dW, data):
    rng = np.random.default_rng(data.draw(st.integers(0, 2 ** 31)))
    nT = _seq(data.draw, kW)
    m = nn.TemporalSubSampling(C, kW, dW)
    x = rng.standard_normal((nT, C))
    oT = (nT - kW) // dW + 1
    go = rng.standard_normal((oT, C))
    y = m.forward(T(x)).numpy().copy()
    m.zeroGradParameters()
    gi = m.backward(T(x), T(go), 0.5).numpy().copy()
    xt = torch.from_numpy(x).requires_grad_(True)
    w = torch.from_numpy(m.weight.numpy().copy()).requires_grad_(True)
    b = torch.from_numpy(m.bias.numpy().copy()).requires_grad_(True)
    yt = TF.avg_pool1d(xt.T[None], kW, dW)[0].T * kW * w + b
    yt.backward(torch.from_numpy(go))
    close(y, yt.detach().numpy())
    close(gi, xt.grad.numpy())
    close(m.gradWeight.numpy(), 0.5 * w.grad.numpy())
    close(m.gradBias.numpy(), 0.5 * b.grad.numpy())


@HYP
@given(st.integers(1, 4), st.integers(1, 4), st.integers(1, 3), st.integers(0, 3), st.booleans(),
       st.booleans(), st.data())
def test_temporal_row_convolution_vs_grouped_conv1d(C, kW, dW, B, featFirst, bias, data):
    rng = np.random.default_rng(data.draw(st.integers(0, 2 ** 31)))
    nT = _seq(data.draw, kW)
    m = nn.TemporalRowConvolution(C, kW, dW, featFirst)
    if not bias:
        m.noBias()
    lead = (B,) if B else ()
    oT = (nT - kW) // dW + 1
    x = rng.standard_normal(lead + ((C, nT) if featFirst else (nT, C)))
    go = rng.standard_normal(lead + ((C, oT) if featFirst else (oT, C)))
    y = m.forward(T(x)).numpy().copy()
    m.zeroGradParameters()
    gi = m.backward(T(x), T(go), 0.5).numpy().copy()
    xt = torch.from_numpy(x).requires_grad_(True)
    w = torch.from_numpy(m.weight.numpy().copy()).requires_grad_(True)
    b = torch.from_numpy(m.bias.numpy().copy()).requires_grad_(True) if bias else None
    xb = xt if B else xt[None]
    xb = xb if featFirst else xb.transpose(1, 2)
    yt = TF.conv1d(xb, w, b, dW, groups=C)
    yt = yt if featFirst else yt.transpose(1, 2)
    yt = yt if B else yt[0]
    yt.backward(torch.from_numpy(go))
    close(y, yt.detach().numpy())
    close(gi, xt.grad.numpy())
    close(m.gradWeight.numpy(), 0.5 * w.grad.numpy())
    if bias:
        close(m.gradBias.numpy(), 0.5 * b.grad.numpy())
    assert m.finput.size() == lead + (C, kW, oT) == m.fgradInput.size()
    if not featFirst and oT != C and C > 1 and oT > 1:   # THNN's transposed view
        assert not m.output.isContiguous()


# --- finite differences --------------------------------------------------------------------------
def jacobian(m, x, param=None, gparam=None, eps=1e-6):
    """(numeric, analytic) Jacobians of the output wrt x (param None) or param."""
    target = (param if param is not None else x).numpy().reshape(-1)
    y = m.forward(x).numpy().copy()
    num = np.zeros((target.size, y.size))
    for i in range(target.size):
        old = target[i]
        target[i] = old + eps
        yp = m.forward(x).numpy().reshape(-1).copy()
        target[i] = old - eps
        ym = m.forward(x).numpy().reshape(-1).copy()
        target[i] = old
        num[i] = (yp - ym) / (2 * eps)
    ana = np.zeros_like(num)
    for j in range(y.size):
        m.forward(x)
        go = np.zeros(y.shape)
        go.reshape(-1)[j] = 1
        if param is None:
            ana[:, j] = m.updateGradInput(x, T(go)).numpy().reshape(-1)
        else:
            gparam.zero()
            m.accGradParameters(x, T(go), 1)
            ana[:, j] = gparam.numpy().reshape(-1)
    return num, ana


@pytest.mark.parametrize('featFirst', [False, True])
@pytest.mark.parametrize('shape', [(6, 3), (2, 6, 3)])
def test_row_convolution_finite_differences(featFirst, shape):
    rng = np.random.default_rng(1)
    m = nn.TemporalRowConvolution(3, 2, 2, featFirst)
    if featFirst:
        shape = shape[:-2] + (shape[-1], shape[-2])
    x = T(rng.standard_normal(shape))
    for p, g in ((None, None), (m.weight, m.gradWeight), (m.bias, m.gradBias)):
        num, ana = jacobian(m, x, p, g)
        assert np.abs(num - ana).max() < 1e-7


@pytest.mark.parametrize('shape', [(7, 3), (2, 7, 3)])
def test_dynamic_k_max_pooling_finite_differences_and_values(shape):
    rng = np.random.default_rng(2)
    m = nn.TemporalDynamicKMaxPooling(2, 0.5)
    x = T(rng.standard_normal(shape))
    num, ana = jacobian(m, x)
    assert np.abs(num - ana).max() < 1e-7
    y = m.forward(x).numpy()
    k = max(2, int(np.ceil(0.5 * shape[-2])))
    xa = x.numpy()
    top = np.sort(np.argsort(-xa, axis=-2, kind='stable')[..., :k, :], axis=-2)
    assert y.shape[-2] == k and np.array_equal(y, np.take_along_axis(xa, top, axis=-2))
    assert m.indices.type() == 'torch.LongTensor'
    assert np.array_equal(m.indices.numpy(), top + 1)


# --- meta, float32, bad input, printing ----------------------------------------------------------
CASES = [
    ('TemporalConvolution', lambda: nn.TemporalConvolution(3, 4, 2, 2), (7, 3), (2, 7, 3)),
    ('TemporalSubSampling', lambda: nn.TemporalSubSampling(3, 2, 1), (7, 3), (5, 3)),
    ('TemporalMaxPooling', lambda: nn.TemporalMaxPooling(2, 1), (7, 3), (2, 7, 3)),
    ('TemporalDynamicKMaxPooling', lambda: nn.TemporalDynamicKMaxPooling(2, 0.5), (7, 3), (2, 7, 3)),
    ('TemporalRowConvolution', lambda: nn.TemporalRowConvolution(3, 2, 2), (7, 3), (2, 7, 3)),
]


@pytest.mark.parametrize('case', CASES, ids=[c[0] for c in CASES])
def test_meta_sizes_equal_real(case):
    name, ctor, s1, s2 = case
    real, meta = ctor(), ctor().type('torch.MetaDoubleTensor')
    for shape in (s1, s2, s1):
        x, xm = pynn.randn(*shape), pynn.MetaDoubleTensor(*shape)
        real.forward(x)
        real.backward(x, pynn.randn(*real.output.size()))
        ym = meta.forward(xm)
        assert ym.is_meta() and ym.size() == real.output.size()
        gm = meta.backward(xm, pynn.MetaDoubleTensor(*ym.size()))
        assert gm.size() == real.gradInput.size()
        for f in ('finput', 'fgradInput', 'indices'):
            a, b = real.__dict__.get(f), meta.__dict__.get(f)
            assert (a is None) == (b is None), f
            if a is not None:
                assert a.size() == b.size(), f


@pytest.mark.parametrize('case', CASES, ids=[c[0] for c in CASES])
def test_float32_matches_float64(case):
    name, ctor, s1, s2 = case
    rng = np.random.default_rng(3)
    md, mf = ctor(), ctor()
    p = md.parameters()
    if p:
        for a, b in zip(mf.parameters()[0], p[0]):
            a.copy(b)
    mf.float()
    for shape in (s1, s2):
        x = rng.standard_normal(shape)
        yd = md.forward(T(x)).numpy().copy()
        yf = mf.forward(T(x.astype(np.float32)))
        assert yf.type() == 'torch.FloatTensor'
        go = rng.standard_normal(yd.shape)
        gd = md.backward(T(x), T(go)).numpy().copy()
        gf = mf.backward(T(x.astype(np.float32)), T(go.astype(np.float32)))
        assert gf.numpy().dtype == np.float32
        np.testing.assert_allclose(yf.numpy(), yd, atol=1e-5)
        np.testing.assert_allclose(gf.numpy(), gd, atol=1e-5)


@pytest.mark.parametrize('case', CASES, ids=[c[0] for c in CASES])
def test_bad_input(case):
    name, ctor, s1, s2 = case
    m = ctor()
    good = pynn.randn(*s2)
    y0 = m.forward(good).numpy().copy()
    bad = [pynn.randn(3), pynn.randn(1, 1, 1, 1), pynn.randn(1, 3), 'x']
    if name != 'TemporalDynamicKMaxPooling' and name != 'TemporalMaxPooling':
        bad += [pynn.FloatTensor(*s2), pynn.randn(*(s2[:-1] + (s2[-1] + 1,)))]
    for b in bad:
        with pytest.raises(ValueError, match='nn.' + name):
            m.forward(b)
    with pytest.raises(ValueError):
        m.backward(good, pynn.randn(*(y0.shape[:-1] + (y0.shape[-1] + 1,))))
    np.testing.assert_array_equal(m.forward(good).numpy(), y0)
    m.backward(good, pynn.randn(*y0.shape))


def test_tostring_and_fields():
    assert str(nn.TemporalConvolution(3, 4, 2)) == 'nn.TemporalConvolution'
    assert str(nn.TemporalRowConvolution(3, 2)) == 'nn.TemporalRowConvolution(3, 2)'
    assert str(nn.TemporalRowConvolution(3, 2, 2).noBias()) == \
        'nn.TemporalRowConvolution(3, 2, 2) without bias'
    assert str(nn.TemporalMaxPooling(2)) == 'nn.TemporalMaxPooling'
    mp = nn.TemporalMaxPooling(3)
    assert mp.dW == 3 and mp.indices is None
    r = nn.TemporalRowConvolution(3, 2)
    assert r.featFirst is False and r.finput is None and r.weight.size() == (3, 1, 2)
    d = nn.TemporalDynamicKMaxPooling(2)
    assert d.factor == 0 and d.indices is None
    assert nn.TemporalConvolution(3, 4, 2).weight.size() == (4, 6)
