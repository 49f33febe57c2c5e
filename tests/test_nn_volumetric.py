"""Volumetric layers (pooling, unpooling, fractional pooling, batch normalization, dropout,
replication padding) vs PyTorch on random shapes (hypothesis, float64, 1e-10), vs a loop
transcription of THNN where THNN's packed indices or windows differ from PyTorch, finite
differences, float32, meta tensors and bad input."""
import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import HealthCheck, assume, given, settings, strategies as st

import pynn
from pynn import nn

TOL = 1e-10
HSET = settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))


def T(a):
    return pynn.from_numpy(np.ascontiguousarray(a))


def rnd(shape, seed):
    return np.random.default_rng(seed).standard_normal(shape)


def close(a, b, tol=TOL):
    a = a.numpy() if isinstance(a, pynn.Tensor) else a
    b = b.detach().numpy() if isinstance(b, torch.Tensor) else b
    assert a.shape == b.shape, (a.shape, b.shape)
    np.testing.assert_allclose(a, b, rtol=0, atol=tol)


def thnn_size(i, k, d, p, dil, ceil, any_pad):
    span = i + 2 * p - dil * (k - 1) - 1
    o = (-(-span // d) if ceil else span // d) + 1
    if any_pad and (o - 1) * d >= i + p:
        o -= 1
    return o


def torch_size(i, k, d, p, dil, ceil):
    span = i + 2 * p - dil * (k - 1) - 1
    o = (-(-span // d) if ceil else span // d) + 1
    if ceil and (o - 1) * d >= i + p:
        o -= 1
    return o


def lead(batch, C):
    return (batch, C) if batch else (C,)


def decode(ind, osz, d, p, dil, isz):
    """Packed THNN indices -> flat input positions (as PyTorch's)."""
    flat = 0
    for j in range(3):
        m = (ind >> (8 * j)) & 255
        shape = [1, 1, 1]
        shape[j] = osz[j]
        q = m * dil[j] + (np.arange(osz[j]) * d[j] - p[j]).reshape(shape)
        flat = flat * isz[j] + q
    return flat


@st.composite
def pool3d_cfg(draw):
    k = [draw(st.integers(1, 3)) for _ in range(3)]
    d = [draw(st.integers(1, 2)) for _ in range(3)]
    dil = [draw(st.integers(1, 2)) for _ in range(3)]
    p = [draw(st.integers(0, min(kk // 2, 1))) for kk in k]   # pad <= 1: PyTorch's windows (see below)
    ceil = draw(st.booleans())
    isz = [draw(st.integers(l * (kk - 1) + 1, l * (kk - 1) + 4)) for kk, l in zip(k, dil)]
    return k, d, p, dil, ceil, isz, draw(st.sampled_from([0, 2])), draw(st.integers(1, 2))


@given(pool3d_cfg(), st.integers(0, 10 ** 6))
@HSET
def test_maxpool3d_vs_torch(cfg, seed):
    k, d, p, dil, ceil, isz, batch, C = cfg
    osz = [thnn_size(*a, ceil, any(p)) for a in zip(isz, k, d, p, dil)]
    assume(osz == [torch_size(*a, ceil) for a in zip(isz, k, d, p, dil)] and min(osz) >= 1)
    (kT, kH, kW), (dT, dH, dW), (pT, pH, pW), (lT, lH, lW) = k, d, p, dil
    if dil == [1, 1, 1] and seed % 2:
        m = nn.VolumetricMaxPooling(kT, kW, kH, dT, dW, dH, pT, pW, pH)
    else:
        m = nn.VolumetricDilatedMaxPooling(kT, kW, kH, dT, dW, dH, pT, pW, pH, lT, lW, lH)
    if ceil:
        m.ceil()
    x = rnd(lead(batch, C) + tuple(isz), seed)
    y = m.forward(T(x))
    xt = torch.tensor(x, requires_grad=True)
    yt, it = TF.max_pool3d(xt, k, d, p, dil, ceil_mode=ceil, return_indices=True)
    close(y, yt)
    assert m.indices.type() == 'torch.LongTensor' and m.indices.size() == y.size()
    np.testing.assert_array_equal(decode(m.indices.numpy(), osz, d, p, dil, isz), it.numpy())
    assert (m.itime, m.iheight, m.iwidth) == tuple(isz)
    g = rnd(y.size(), seed + 1)
    yt.backward(torch.from_numpy(g))
    close(m.backward(T(x), T(g)), xt.grad)


def thnn_maxpool3d_loop(x, k, d, p, dil, osz):
    """Loop transcription of VolumetricDilatedMaxPooling_updateOutput_frame (one plane)."""
    out = np.empty(osz)
    ind = np.zeros(osz, dtype=np.int64)
    I = x.shape
    for o in np.ndindex(*osz):
        start = [oo * dd - pp for oo, dd, pp in zip(o, d, p)]
        kn = [min(kk, kk + s) for kk, s in zip(k, start)]
        for j in range(3):
            while start[j] < 0:
                start[j] += dil[j]
        best, mm = -np.inf, (-1, -1, -1)
        for z in np.ndindex(*kn):
            pos = [s + zz * l for s, zz, l in zip(start, z, dil)]
            if all(q < n for q, n in zip(pos, I)) and x[tuple(pos)] > best:
                best = x[tuple(pos)]
                mm = tuple(zz + kk - n for zz, kk, n in zip(z, k, kn))
        out[o] = best
        ind[o] = sum((v & 255) << (8 * j) for j, v in enumerate(mm))
    return out, ind


def test_maxpool3d_dilation_with_padding_follows_thnn():
    """dilation 2 with padding 2: THNN's forward walks the window from its first in-image
    position and records shifted offsets; its backward uses offset*dilation + start."""
    x = rnd((1, 7, 7, 7), 3)
    m = nn.VolumetricDilatedMaxPooling(4, 4, 4, 1, 2, 1, 2, 2, 1, 2, 2, 1)
    y = m.forward(T(x))
    k, d, p, dil = (4, 4, 4), (1, 1, 2), (2, 1, 2), (2, 1, 2)
    out, ind = thnn_maxpool3d_loop(x[0], k, d, p, dil, y.size()[1:])
    close(y[1], out)
    np.testing.assert_array_equal(m.indices.numpy()[0], ind)
    g = rnd(y.size(), 4)
    gi = np.zeros(x.shape)
    for o in np.ndindex(*y.size()[1:]):
        q = [((ind[o] >> (8 * j)) & 255) * dil[j] + o[j] * d[j] - p[j] for j in range(3)]
        gi[(0,) + tuple(q)] += g[(0,) + o]
    close(m.backward(T(x), T(g)), gi)


@given(st.tuples(*[st.integers(1, 3)] * 3), st.tuples(*[st.integers(1, 3)] * 3), st.sampled_from([0, 2]),
       st.integers(0, 10 ** 6))
@HSET
def test_avgpool3d_vs_torch(k, d, batch, seed):
    kT, kH, kW = k
    dT, dH, dW = d
    x = rnd(lead(batch, 2) + (kT + 2, kH + 3, kW + 1), seed)
    m = nn.VolumetricAveragePooling(kT, kW, kH, dT, dW, dH)
    y = m.forward(T(x))
    xt = torch.tensor(x, requires_grad=True)
    yt = TF.avg_pool3d(xt, k, d)
    close(y, yt)
    g = rnd(y.size(), seed + 1)
    yt.backward(torch.from_numpy(g))
    close(m.backward(T(x), T(g)), xt.grad)


@given(st.tuples(*[st.integers(1, 3)] * 3), st.sampled_from([0, 2]), st.integers(0, 10 ** 6))
@HSET
def test_max_unpool3d_vs_torch(k, batch, seed):
    kT, kH, kW = k
    isz = (kT * 2 + 1, kH * 2, kW * 3)
    x = rnd(lead(batch, 2) + isz, seed)
    pool = nn.VolumetricMaxPooling(kT, kW, kH)
    un = nn.VolumetricMaxUnpooling(pool)
    y = pool.forward(T(x))
    z = rnd(y.size(), seed + 1)
    u = un.forward(T(z))
    _, it = TF.max_pool3d(torch.from_numpy(x), k, k, return_indices=True)
    zt = torch.tensor(z, requires_grad=True)
    ut = TF.max_unpool3d(zt, it, k, k, output_size=isz)
    close(u, ut)
    g = rnd(u.size(), seed + 2)
    ut.backward(torch.from_numpy(g))
    close(un.backward(T(z), T(g)), zt.grad)
    assert un.indices is pool.indices and (un.otime, un.oheight, un.owidth) == isz


def test_unpool_errors_and_string():
    with pytest.raises(ValueError, match='VolumetricMaxPooling'):
        nn.VolumetricMaxUnpooling(nn.VolumetricDilatedMaxPooling(2, 2, 2))
    with pytest.raises(ValueError, match='stride'):
        nn.VolumetricMaxUnpooling(nn.VolumetricMaxPooling(2, 2, 2, 1, 1, 1))
    pool = nn.VolumetricMaxPooling(2, 2, 2)
    un = nn.VolumetricMaxUnpooling(pool)
    assert un.__tostring__() == 'nn.VolumetricMaxUnpooling associated to nn.VolumetricMaxPooling(2x2x2, 2,2,2)'
    with pytest.raises(ValueError, match='VolumetricMaxUnpooling'):
        un.forward(pynn.randn(2, 2, 2, 2))          # pooling never ran
    pool.forward(pynn.randn(2, 4, 4, 4))
    pool.indices.numpy()[0, 0, 0, 0] = 7             # offset 7 in time: outside the volume
    with pytest.raises(ValueError, match='invalid max index'):
        un.forward(pynn.randn(2, 2, 2, 2))


@given(st.integers(2, 3), st.integers(2, 3), st.integers(2, 3), st.integers(1, 3), st.integers(1, 3),
       st.integers(1, 3), st.sampled_from([0, 2]), st.integers(0, 10 ** 6))
@HSET
def test_fractional_maxpool3d_vs_torch(pT, pW, pH, oT, oW, oH, batch, seed):
    # THNN takes the input's spatial dims as (H, W, T) and the samples as (T, W, H):
    # PyTorch's (T, H, W) windows with the samples reversed are the same windows.
    isz = (oH + pH + 1, oW + pW + 2, oT + pT)
    x = rnd(lead(batch, 2) + isz, seed)
    s = np.random.default_rng(seed + 3).random((max(batch, 1), 2, 3))
    m = nn.VolumetricFractionalMaxPooling(pT, pW, pH, oT, oW, oH).fixPoolingRegions()
    m.randomSamples = T(s)
    y = m.forward(T(x))
    xt = torch.tensor(x if batch else x[None], requires_grad=True)
    yt, it = TF.fractional_max_pool3d(xt, (pH, pW, pT), output_size=(oH, oW, oT), return_indices=True,
                                      _random_samples=torch.from_numpy(s[..., ::-1].copy()))
    close(y, yt if batch else yt[0])
    np.testing.assert_array_equal(m.indices.numpy() - 1, (it if batch else it[0]).numpy())
    g = rnd(y.size(), seed + 1)
    yt.backward(torch.from_numpy(g if batch else g[None]))
    close(m.backward(T(x), T(g)), xt.grad if batch else xt.grad[0])
    assert m.__tostring__() == 'nn.VolumetricFractionalMaxPooling(%dx%dx%d, %d,%d,%d)' % (oT, oW, oH, pT, pW, pH)


@given(st.integers(1, 3), st.sampled_from([1, 2]), st.booleans(), st.booleans(), st.integers(0, 10 ** 6))
@HSET
def test_batchnorm3d_vs_torch(C, N, training, affine, seed):
    m = nn.VolumetricBatchNormalization(C, 1e-5, 0.1, affine)
    rng = np.random.default_rng(seed)
    if affine:
        m.weight.numpy()[...] = rng.random(C) + 0.5
        m.bias.numpy()[...] = rng.standard_normal(C)
    m.running_mean.numpy()[...] = rng.standard_normal(C)
    m.running_var.numpy()[...] = rng.random(C) + 0.5
    rm, rv = torch.from_numpy(m.running_mean.numpy().copy()), torch.from_numpy(m.running_var.numpy().copy())
    N = N + 1 if training else N
    x = rng.standard_normal((N, C, 2, 3, 2))
    m.training() if training else m.evaluate()
    y = m.forward(T(x))
    xt = torch.tensor(x, requires_grad=True)
    w = torch.tensor(m.weight.numpy(), requires_grad=True) if affine else None
    b = torch.tensor(m.bias.numpy(), requires_grad=True) if affine else None
    yt = TF.batch_norm(xt, rm, rv, w, b, training, 0.1, 1e-5)
    close(y, yt)
    close(m.running_mean, rm)
    close(m.running_var, rv)
    g = rng.standard_normal(x.shape)
    m.zeroGradParameters()
    gi = m.backward(T(x), T(g))
    yt.backward(torch.from_numpy(g))
    close(gi, xt.grad, 1e-9)
    if affine:
        close(m.gradWeight, w.grad, 1e-9)
        close(m.gradBias, b.grad, 1e-9)
    assert m.__tostring__() == 'nn.VolumetricBatchNormalization (5D) (%d)' % C
    if training:
        assert m.save_mean.size() == (C,) and m.save_std.size() == (C,)


@given(st.tuples(*[st.integers(0, 2)] * 6), st.sampled_from([0, 2]), st.integers(0, 10 ** 6))
@HSET
def test_replication_pad3d_vs_torch(pads, batch, seed):
    l, r, t, b, f, k = pads
    x = rnd(lead(batch, 2) + (2, 3, 4), seed)
    m = nn.VolumetricReplicationPadding(l, r, t, b, f, k)
    y = m.forward(T(x))
    xt = torch.tensor(x if batch else x[None], requires_grad=True)
    yt = TF.pad(xt, (l, r, t, b, f, k), mode='replicate')
    close(y, yt if batch else yt[0])
    g = rnd(y.size(), seed + 1)
    yt.backward(torch.from_numpy(g if batch else g[None]))
    close(m.backward(T(x), T(g)), xt.grad if batch else xt.grad[0])


def test_replication_pad3d_negative_pads():
    x = rnd((2, 3, 4, 5), 2)
    m = nn.VolumetricReplicationPadding(-1, 2, 1, -2, 0, -1)
    y = m.forward(T(x)).numpy()
    iz = np.clip(np.arange(3 + 0 - 1) - 0, 0, 2)
    iy = np.clip(np.arange(4 + 1 - 2) - 1, 0, 3)
    ix = np.clip(np.arange(5 - 1 + 2) + 1, 0, 4)
    close(y, x[:, iz][:, :, iy][:, :, :, ix])
    assert jacobian(m, T(x)) < 1e-7
    assert m.__tostring__() == 'nn.VolumetricReplicationPadding(left=-1, right=2, top=1, bottom=-2, front=0, back=-1)'


def test_dropout():
    x = rnd((2, 3, 2, 2, 2), 1)
    m = nn.VolumetricDropout(0.3)
    assert (m.p, m.train, m.stochastic_inference) == (0.3, True, False)
    y = m.forward(T(x)).numpy()
    assert m.noise.size() == (2, 3, 1, 1, 1)
    keep = m.noise.numpy()
    np.testing.assert_array_equal(y, x * keep)        # whole planes kept or dropped, no rescaling
    g = rnd(x.shape, 2)
    close(m.backward(T(x), T(g)), g * keep)
    m.evaluate()
    close(m.forward(T(x)), x * 0.7)
    with pytest.raises(ValueError, match='backprop only defined while training'):
        m.backward(T(x), T(g))
    m.training()
    m.forward(T(x[0]))
    assert m.noise.size() == (3, 1, 1, 1)
    p0 = nn.VolumetricDropout(0)
    close(p0.forward(T(x)), x)
    assert m.__tostring__() == 'nn.VolumetricDropout(0.300000)'
    with pytest.raises(ValueError, match='VolumetricDropout'):
        m.forward(pynn.randn(3, 4))


def jacobian(m, x, eps=1e-6):
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
    x = T(rnd((1, 2, 4, 5, 4), 7))
    assert jacobian(nn.VolumetricDilatedMaxPooling(2, 2, 2, 1, 2, 1, 1, 1, 1, 2, 1, 2).ceil(), x) < 1e-7
    assert jacobian(nn.VolumetricAveragePooling(2, 3, 2, 1, 1, 2), x) < 1e-7
    assert jacobian(nn.VolumetricFractionalMaxPooling(2, 2, 2, 2, 2, 2).fixPoolingRegions(), x) < 1e-7


MAKERS = [lambda: nn.VolumetricMaxPooling(2, 2, 2, 1, 2, 1, 1, 1, 0).ceil(),
          lambda: nn.VolumetricDilatedMaxPooling(2, 2, 2, 1, 1, 1, 0, 0, 0, 2, 1, 2),
          lambda: nn.VolumetricAveragePooling(2, 2, 3),
          lambda: nn.VolumetricFractionalMaxPooling(2, 2, 2, 3, 3, 3).fixPoolingRegions(),
          lambda: nn.VolumetricBatchNormalization(3),
          lambda: nn.VolumetricDropout(0),
          lambda: nn.VolumetricReplicationPadding(1, 0, 2, 1, 0, 1)]


@pytest.mark.parametrize('make', MAKERS)
def test_float32_meta_and_bad_input(make):
    x = rnd((2, 3, 5, 6, 5), 9)
    m = make()
    yd = m.forward(T(x)).numpy().copy()
    g = rnd(yd.shape, 10)
    gd = m.backward(T(x), T(g)).numpy().copy()
    name = m.__typename__
    for bad in (pynn.randn(3, 5, 6), pynn.randn(1, 2, 3, 5, 6, 5), pynn.FloatTensor(2, 3, 5, 6, 5), [T(x)]):
        with pytest.raises(ValueError, match=name):
            m.forward(bad)
    with pytest.raises(ValueError, match=name):
        m.backward(T(x), pynn.randn(1, 2))
    np.testing.assert_array_equal(m.forward(T(x)).numpy(), yd) if 'Batch' not in name else None
    mf = m.clone().float()      # same weights / samples
    y = mf.forward(T(x.astype(np.float32)))
    assert y.type() == 'torch.FloatTensor'
    np.testing.assert_allclose(y.numpy(), yd, rtol=1e-4, atol=1e-4)
    gi = mf.backward(T(x.astype(np.float32)), T(g.astype(np.float32)))
    assert gi.numpy().dtype == np.float32
    np.testing.assert_allclose(gi.numpy(), gd, rtol=1e-3, atol=1e-3)
    mm = make().type('torch.MetaDoubleTensor')
    ym = mm.forward(pynn.MetaDoubleTensor(2, 3, 5, 6, 5))
    assert ym.is_meta() and ym.size() == yd.shape
    assert mm.backward(pynn.MetaDoubleTensor(2, 3, 5, 6, 5), pynn.MetaDoubleTensor(*yd.shape)).size() == x.shape
    for f in ('indices', 'save_mean', 'save_std', 'noise'):
        if isinstance(m.__dict__.get(f), pynn.Tensor):
            assert mm.__dict__[f].size() == m.__dict__[f].size(), f


def test_strings_and_fields():
    m = nn.VolumetricMaxPooling(2, 3, 4)
    assert (m.dT, m.dW, m.dH, m.padT, m.ceil_mode) == (2, 3, 4, 0, False)
    assert m.__tostring__() == 'nn.VolumetricMaxPooling(2x3x4, 2,3,4)'
    assert nn.VolumetricMaxPooling(3, 3, 3, 1, 1, 1, 1, 0, 1).__tostring__() == \
        'nn.VolumetricMaxPooling(3x3x3, 1,1,1, 1,0,1)'
    assert nn.VolumetricDilatedMaxPooling(2, 2, 2, 1, 1, 1, 0, 0, 0, 2, 3, 1).__tostring__() == \
        'nn.VolumetricDilatedMaxPooling(2x2x2, 1,1,1, 2,3,1)'
    assert nn.VolumetricAveragePooling(2, 1, 3).__tostring__() == 'nn.VolumetricAveragePooling(2x1x3, 2,1,3)'
    a = nn.VolumetricAveragePooling(2, 2, 2)
    assert a.padT is None and a.indices is None
    m.forward(pynn.randn(1, 4, 6, 8))
    m.clearState()
    assert m.indices.nElement() == 0


def _optnet_net():
    pynn.manualSeed(1)
    return (nn.Sequential().add(nn.VolumetricDilatedMaxPooling(2, 2, 2, 1, 1, 1, 0, 0, 0, 1, 1, 1))
            .add(nn.VolumetricBatchNormalization(3)).add(nn.VolumetricReplicationPadding(1))
            .add(nn.VolumetricFractionalMaxPooling(2, 2, 2, 3, 3, 3).fixPoolingRegions())
            .add(nn.View(-1, 81)).add(nn.Linear(81, 64)).add(nn.View(-1, 4, 4, 4))
            .add(nn.SpatialDilatedMaxPooling(2, 2, 1, 1)).add(nn.SpatialAdaptiveMaxPooling(2, 2))
            .add(nn.SpatialCrossMapLRN(3)).add(nn.SpatialLPPooling(4, 2, 2, 2)))


@pytest.mark.parametrize('mode', ['inference', 'training'])
@pytest.mark.parametrize('planner', ['optnet', 'optimal'])
def test_optnet_keeps_results(mode, planner):
    """optnet's sharing (outputs, gradInputs, the pooled indices) leaves results unchanged."""
    from pynn import optnet
    x = pynn.randn(2, 3, 5, 6, 5)
    a, b = _optnet_net(), _optnet_net()
    if mode == 'inference':
        a.evaluate()
        b.evaluate()
    ya = a.forward(x).clone()
    b.modules[3].randomSamples = a.modules[3].randomSamples.clone()
    optnet.optimizeMemory(b, x, {'mode': mode, 'planner': planner})
    close(b.forward(x), ya.numpy())
    if mode == 'training':
        g = pynn.randn(*ya.size())
        ga = a.backward(x, g).clone()
        close(b.backward(x, g), ga.numpy())
