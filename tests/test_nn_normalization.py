"""BatchNormalization, SpatialBatchNormalization, SpatialCrossMapLRN, Normalize vs PyTorch
(float64, 1e-10), THNN's buffers and running statistics, Jacobians, errors, float32, meta."""
import math
import tracemalloc

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import pynn
from pynn import nn
from _oracle import P, T, close

TOL = 1e-10


def rnd(*shape, seed=0, scale=1.0, shift=0.0):
    return P(np.random.default_rng(seed).standard_normal(shape) * scale + shift)


def jacobian_check(m, x, params=(), h=1e-6, tol=1e-6):
    out = m.forward(x).clone()
    nout, nin = out.nElement(), x.nElement()
    jac_in = np.zeros((nin, nout))
    jac_p = [np.zeros((p.nElement(), nout)) for p, _ in params]
    for j in range(nout):
        g = out.new().resizeAs(out).zero()
        g.numpy().reshape(-1)[j] = 1
        m.forward(x)
        for _, gp in params:
            gp.zero()
        jac_in[:, j] = m.backward(x, g).numpy().reshape(-1)
        for k, (_, gp) in enumerate(params):
            jac_p[k][:, j] = gp.numpy().reshape(-1)

    def numeric(arr):
        J = np.zeros((arr.size, nout))
        flat = arr.reshape(-1)
        for i in range(arr.size):
            v = flat[i]
            flat[i] = v + h
            a = m.forward(x).numpy().reshape(-1).copy()
            flat[i] = v - h
            b = m.forward(x).numpy().reshape(-1).copy()
            flat[i] = v
            J[i] = (a - b) / (2 * h)
        return J

    assert np.abs(numeric(x.numpy()) - jac_in).max() < tol
    for k, (p, _) in enumerate(params):
        assert np.abs(numeric(p.numpy()) - jac_p[k]).max() < tol


# --- BatchNormalization -----------------------------------------------------------------------------
def bn_case(spatial, affine, shape, seed):
    C = shape[1]
    m = (nn.SpatialBatchNormalization if spatial else nn.BatchNormalization)(C, 1e-5, 0.1, affine)
    if affine:
        m.weight.copy(rnd(C, seed=seed + 1))
        m.bias.copy(rnd(C, seed=seed + 2))
    m.running_mean.copy(rnd(C, seed=seed + 3, scale=0.3))
    m.running_var.copy(P(np.random.default_rng(seed + 4).uniform(0.5, 2.0, C)))
    x = rnd(*shape, seed=seed, scale=2.0, shift=0.5)
    g = rnd(*shape, seed=seed + 5)
    return m, x, g


def torch_bn(m, x, g, training):
    affine = m.affine
    rm, rv = T(m.running_mean), T(m.running_var)
    xt = T(x).requires_grad_()
    wt = T(m.weight).requires_grad_() if affine else None
    bt = T(m.bias).requires_grad_() if affine else None
    y = F.batch_norm(xt, rm, rv, wt, bt, training, m.momentum, m.eps)
    y.backward(T(g))
    return y, xt.grad, (wt.grad if affine else None), (bt.grad if affine else None), rm, rv


@pytest.mark.parametrize('spatial,shape', [(False, (8, 5)), (False, (2, 3)), (True, (4, 3, 5, 6)),
                                           (True, (2, 4, 1, 1)), (True, (3, 2, 7, 1))])
@pytest.mark.parametrize('affine', [True, False])
@pytest.mark.parametrize('training', [True, False])
def test_bn_vs_torch(spatial, shape, affine, training):
    m, x, g = bn_case(spatial, affine, shape, seed=sum(shape))
    if not training:
        m.evaluate()
    y, gi, gw, gb, rm, rv = torch_bn(m, x, g, training)
    if affine:
        m.zeroGradParameters()
    close(m.forward(x), y)
    close(m.running_mean, rm)
    close(m.running_var, rv)
    close(m.updateGradInput(x, g), gi)
    if affine:
        m.accGradParameters(x, g, 0.5)
        close(m.gradWeight, 0.5 * gw.numpy())
        close(m.gradBias, 0.5 * gb.numpy())
        m.zeroGradParameters()
        close(m.backward(x, g, 2), gi)
        close(m.gradWeight, 2 * gw.numpy())
        close(m.gradBias, 2 * gb.numpy())
    else:
        assert m.parameters() is None
        assert 'weight' not in m.__dict__ and 'gradWeight' not in m.__dict__
        close(m.backward(x, g), gi)


def test_bn_save_buffers_and_running_stats():
    m, x, g = bn_case(True, True, (4, 3, 5, 5), seed=1)
    assert 'save_mean' not in m.__dict__ and 'save_std' not in m.__dict__
    rm0, rv0 = m.running_mean.clone().numpy(), m.running_var.clone().numpy()
    m.forward(x)
    xa = x.numpy()
    mean = xa.mean(axis=(0, 2, 3))
    var = xa.var(axis=(0, 2, 3))
    n = xa.size // 3
    close(m.save_mean, mean)
    close(m.save_std, 1 / np.sqrt(var + 1e-5))                       # THNN: inverse std
    close(m.running_mean, 0.1 * mean + 0.9 * rm0)
    close(m.running_var, 0.1 * var * n / (n - 1) + 0.9 * rv0)        # unbiased
    assert m.save_mean.size() == (3,) and m.save_std.size() == (3,)
    assert m.running_mean.size() == (3,) and m.running_var.size() == (3,)
    assert str(m) == 'nn.SpatialBatchNormalization (4D) (3)'
    assert str(nn.BatchNormalization(7)) == 'nn.BatchNormalization (2D) (7)'
    b = nn.BatchNormalization(4)
    assert b.eps == 1e-5 and b.momentum == 0.1 and b.affine is True and b.train is True
    assert np.all(b.bias.numpy() == 0) and np.all((b.weight.numpy() >= 0) & (b.weight.numpy() <= 1))
    assert np.all(b.running_mean.numpy() == 0) and np.all(b.running_var.numpy() == 1)
    m.clearState()
    assert m.save_mean.storage() is None and m.save_std.storage() is None


def test_bn_batch_size_one_uses_running_stats():
    m, x, g = bn_case(False, True, (1, 4), seed=2)
    rm0, rv0 = m.running_mean.clone(), m.running_var.clone()
    y, gi, gw, gb, _, _ = torch_bn(m, x, g, False)     # Lua: train and batch > 1
    m.zeroGradParameters()
    close(m.forward(x), y)
    close(m.running_mean, rm0)
    close(m.running_var, rv0)
    close(m.backward(x, g), gi)
    close(m.gradWeight, gw)
    close(m.gradBias, gb)


@pytest.mark.parametrize('spatial', [False, True])
def test_bn_non_batch_in_evaluate(spatial):
    shape = (3, 4, 5) if spatial else (3,)
    C = shape[0]
    m = (nn.SpatialBatchNormalization if spatial else nn.BatchNormalization)(C)
    m.running_mean.copy(rnd(C, seed=3))
    x, g = rnd(*shape, seed=4), rnd(*shape, seed=5)
    with pytest.raises(ValueError, match='only mini-batch supported'):
        m.forward(x)                                    # training mode: batch required
    m.evaluate()
    y = m.forward(x)
    assert y.size() == (1,) + shape                     # Lua's makeBatch adds the batch dim
    assert x.size() == shape
    xb = x.numpy()[None]
    ref = F.batch_norm(torch.from_numpy(xb.copy()), T(m.running_mean), T(m.running_var),
                       T(m.weight), T(m.bias), False, 0.1, 1e-5)
    close(y, ref)
    gi = m.backward(x, g)
    assert gi.size() == (1,) + shape
    gi2 = m.backward(x, P(g.numpy()[None]))           # gradOutput shaped like the output
    close(gi2, gi)
    with pytest.raises(ValueError, match='gradOutput'):
        m.backward(x, rnd(2, *shape))


def test_bn_non_contiguous_input_buffers():
    m, x, g = bn_case(True, True, (3, 4, 5, 6), seed=6)
    xt = x.transpose(3, 4)                             # 3x4x6x5, non-contiguous
    gt = rnd(3, 4, 6, 5, seed=7)
    ref = bn_case(True, True, (3, 4, 5, 6), seed=6)[0]
    y = m.forward(xt)
    assert m._input.size() == (3, 4, 6, 5) and m._input.isContiguous()
    close(y, ref.forward(xt.clone()))
    gi = m.backward(xt, gt.transpose(3, 4).clone().transpose(3, 4))
    assert m._gradOutput.size() == (3, 4, 6, 5)
    close(gi, ref.backward(xt.clone(), gt))
    m.clearState()
    assert m._input.storage() is None


def test_bn_read_old_running_std():
    m = nn.BatchNormalization(3)
    del m.__dict__['running_var']
    m.running_std = P(np.array([1.0, 0.5, 2.0]))
    m.read(None, 1)
    assert 'running_std' not in m.__dict__
    close(m.running_var, [1 - 1e-5, 4 - 1e-5, 0.25 - 1e-5])


def test_bn_jacobian():
    for spatial, shape in [(False, (4, 3)), (True, (2, 2, 2, 3))]:
        m, x, _ = bn_case(spatial, True, shape, seed=8)
        jacobian_check(m, x, [(m.weight, m.gradWeight), (m.bias, m.gradBias)])
        m.evaluate()
        jacobian_check(m, x, [(m.weight, m.gradWeight), (m.bias, m.gradBias)])


def test_bn_eps_zero_constant_plane():
    m = nn.BatchNormalization(2, 0, 0.1, False)
    x = P(np.array([[1.0, 2.0], [1.0, 3.0]]))
    y = m.forward(x).numpy()
    assert m.save_std[1] == 0 and np.all(y[:, 0] == 0)   # THNN: invstd = 0 when var = 0 = eps


@pytest.mark.parametrize('bad', ['dim', 'features', 'type', 'table'])
def test_bn_bad_input(bad):
    m = nn.SpatialBatchNormalization(3)
    x = {'dim': rnd(2, 3, 4), 'features': rnd(2, 4, 3, 3), 'type': pynn.FloatTensor(2, 3, 4, 4),
         'table': [rnd(2, 3, 4, 4)]}[bad]
    with pytest.raises(ValueError, match='nn.SpatialBatchNormalization'):
        m.forward(x)
    assert 'save_mean' not in m.__dict__ and m.output.nElement() == 0
    with pytest.raises(ValueError, match='updateOutput'):
        m.backward(rnd(2, 3, 4, 4), rnd(2, 3, 4, 4))
    x = rnd(2, 3, 4, 4)
    assert m.forward(x).size() == (2, 3, 4, 4)
    with pytest.raises(ValueError, match='nn.SpatialBatchNormalization'):
        m.backward(x, rnd(2, 3, 4, 5))
    assert m.backward(x, rnd(2, 3, 4, 4)).size() == (2, 3, 4, 4)
    with pytest.raises(ValueError):
        nn.BatchNormalization(0)
    with pytest.raises(ValueError):
        nn.BatchNormalization(3, 1e-5, 0.1, 1)


# --- SpatialCrossMapLRN ---------------------------------------------------------------------------
@pytest.mark.parametrize('size,C', [(5, 7), (3, 4), (1, 3), (5, 2), (7, 3), (3, 1)])
@pytest.mark.parametrize('params', [(1e-4, 0.75, 1), (0.5, 0.6, 2.0)])
def test_lrn_vs_torch(size, C, params):
    alpha, beta, k = params
    x, g = rnd(2, C, 4, 5, seed=size + C, scale=3), rnd(2, C, 4, 5, seed=9)
    xt = T(x).requires_grad_()
    y = F.local_response_norm(xt, size, alpha, beta, k)
    y.backward(T(g))
    m = nn.SpatialCrossMapLRN(size, alpha, beta, k)
    close(m.forward(x), y)
    xa = x.numpy()
    sq = np.pad(xa ** 2, ((0, 0), ((size - 1) // 2, (size - 1) // 2), (0, 0), (0, 0)))
    ref_scale = k + alpha / size * sum(sq[:, i:i + C] for i in range(size))
    close(m.scale, ref_scale)
    close(m.backward(x, g), xt.grad)


def test_lrn_buffers_and_non_batch():
    m = nn.SpatialCrossMapLRN(5)
    assert (m.size, m.alpha, m.beta, m.k) == (5, 1e-4, 0.75, 1)
    assert 'scale' not in m.__dict__
    x, g = rnd(6, 4, 3, seed=10), rnd(6, 4, 3, seed=11)
    out0 = m.output
    y = m.forward(x)
    assert y.size() == (6, 4, 3) and m.output is y and y is not out0     # Lua: output = output[1]
    assert y.storage() is out0.storage()
    assert m.scale.size() == (1, 6, 4, 3)
    assert 'paddedRatio' not in m.__dict__
    xt = T(x)[None].requires_grad_()
    yt = F.local_response_norm(xt, 5, 1e-4, 0.75, 1)
    yt.backward(T(g)[None])
    close(y, yt[0])
    gi = m.backward(x, g)
    close(gi, xt.grad[0])
    assert gi.size() == (6, 4, 3) and m.output.size() == (6, 4, 3)
    assert m.paddedRatio.size() == (6 + 4, 4, 3) and m.accumRatio.size() == (1, 4, 3)
    y2 = m.forward(x)
    assert y2.storage() is out0.storage()
    m.clearState()
    for f in ('scale', 'paddedRatio', 'accumRatio', 'output', 'gradInput'):
        assert m.__dict__[f].storage() is None


def test_lrn_jacobian():
    m = nn.SpatialCrossMapLRN(3, 0.3, 0.75, 1.5)
    jacobian_check(m, rnd(2, 4, 2, 2, seed=12))
    jacobian_check(m, rnd(3, 2, 2, seed=13))


def test_lrn_bad_input():
    m = nn.SpatialCrossMapLRN(3)
    for bad in (rnd(3, 4), pynn.FloatTensor(1, 3, 2, 2), [rnd(1, 3, 2, 2)]):
        with pytest.raises(ValueError, match='nn.SpatialCrossMapLRN'):
            m.forward(bad)
    assert 'scale' not in m.__dict__
    with pytest.raises(ValueError, match='odd'):
        nn.SpatialCrossMapLRN(4).forward(rnd(1, 3, 2, 2))
    x = rnd(1, 3, 2, 2)
    assert m.forward(x).size() == (1, 3, 2, 2)
    with pytest.raises(ValueError, match='nn.SpatialCrossMapLRN'):
        m.backward(x, rnd(1, 3, 2, 3))
    assert m.backward(x, rnd(1, 3, 2, 2)).size() == (1, 3, 2, 2)


# --- Normalize --------------------------------------------------------------------------------------
def torch_normalize(x, g, p, eps):
    xt = T(x).requires_grad_()
    x2 = xt if xt.dim() == 2 else xt.view(1, -1)
    if p == math.inf:
        norm = x2.abs().max(1, keepdim=True)[0] + eps
    else:
        norm = (x2.abs() ** p).sum(1, keepdim=True).add(eps) ** (1 / p)
    y = (x2 / norm).view_as(xt)
    y.backward(T(g))
    return y, xt.grad


@pytest.mark.parametrize('p,tol', [(2, TOL), (1, TOL), (3, TOL), (4, TOL), (1.5, 1e-8), (2.5, TOL),
                                   (math.inf, 1e-9)])
@pytest.mark.parametrize('shape', [(6,), (4, 7)])
def test_normalize_vs_torch(p, tol, shape):
    x, g = rnd(*shape, seed=14), rnd(*shape, seed=15)
    m = nn.Normalize(p)
    y, gi = torch_normalize(x, g, p, 1e-10)
    close(m.forward(x), y, tol)
    close(m.backward(x, g), gi, tol)
    if p == 2:
        close(m.output, F.normalize(T(x), 2, -1))


def test_normalize_buffers_and_print():
    m = nn.Normalize(2)
    assert m.p == 2 and m.eps == 1e-10 and str(m) == 'nn.Normalize(2)'
    assert str(nn.Normalize(1.5)) == 'nn.Normalize(1.500000)'
    assert str(nn.Normalize(math.inf)) == 'nn.Normalize(inf)'
    x, g = rnd(3, 5, seed=16), rnd(3, 5, seed=17)
    y = m.forward(x)
    assert y.storage() is m._output.storage()
    assert m.norm.size() == (3, 1) and m.normp.size() == (3, 1) and m.buffer.size() == (3, 5)
    assert '_indices' not in m.__dict__ and 'cross' not in m.__dict__
    gi = m.backward(x, g)
    assert gi.storage() is m._gradInput.storage()
    assert m.cross.size() == (3, 1) and m.buffer2.size() == (3, 5)
    mi = nn.Normalize(math.inf)
    mi.forward(x)
    assert mi._indices.type() == 'torch.LongTensor' and mi._indices.size() == (3, 1)
    assert 'normp' not in mi.__dict__
    close(mi._indices, np.abs(x.numpy()).argmax(1)[:, None] + 1)       # 1-based, as Lua
    mi.float()
    assert '_indices' not in mi.__dict__
    mi.forward(x.float())
    assert mi._indices.type() == 'torch.LongTensor'
    v = rnd(5, seed=18)
    assert m.forward(v).size() == (5,) and m.backward(v, rnd(5, seed=19)).size() == (5,)
    m.clearState()
    for f in ('_output', 'norm', 'normp', 'buffer', 'cross', '_gradInput'):
        assert m.__dict__[f].storage() is None


@pytest.mark.parametrize('p', [2, 3, 1.5, math.inf])
def test_normalize_jacobian(p):
    m = nn.Normalize(p)
    jacobian_check(m, rnd(3, 4, seed=20), tol=1e-5)
    jacobian_check(m, rnd(4, seed=21), tol=1e-5)


def test_normalize_bad_input():
    m = nn.Normalize(2)
    for bad in (rnd(2, 3, 4), pynn.FloatTensor(2, 3), 5):
        with pytest.raises(ValueError, match=r'nn.Normalize\(2\)'):
            m.forward(bad)
    with pytest.raises(ValueError):
        nn.Normalize(0)
    with pytest.raises(ValueError):
        nn.Normalize(None)
    x = rnd(2, 3)
    assert m.forward(x).size() == (2, 3)
    with pytest.raises(ValueError, match='nn.Normalize'):
        m.backward(x, rnd(2, 4))
    assert m.backward(x, rnd(2, 3)).size() == (2, 3)


# --- float32, meta, memory -------------------------------------------------------------------------
MAKERS = {
    'BN': (lambda: nn.BatchNormalization(4), (6, 4)),
    'SBN': (lambda: nn.SpatialBatchNormalization(3), (2, 3, 5, 5)),
    'LRN': (lambda: nn.SpatialCrossMapLRN(3, 0.2), (2, 5, 4, 4)),
    'LRN3': (lambda: nn.SpatialCrossMapLRN(3, 0.2), (5, 4, 4)),
    'Norm2': (lambda: nn.Normalize(2), (3, 6)),
    'NormInf': (lambda: nn.Normalize(math.inf), (3, 6)),
}


@pytest.mark.parametrize('key', list(MAKERS))
def test_float32(key):
    make, shape = MAKERS[key]
    md = make()
    mf = make()
    if md.__dict__.get('weight') is not None:
        mf.weight.copy(md.weight)
    mf.float()
    x = rnd(*shape, seed=22)
    g = rnd(*shape, seed=23)
    yd = md.forward(x)
    gd = md.backward(x, g)
    yf = mf.forward(x.float())
    gf = mf.backward(x.float(), g.float())
    assert yf.numpy().dtype == np.float32 and gf.numpy().dtype == np.float32
    np.testing.assert_allclose(yf.numpy(), yd.numpy(), atol=2e-5, rtol=1e-4)
    np.testing.assert_allclose(gf.numpy(), gd.numpy(), atol=2e-4, rtol=1e-3)
    for f in ('running_mean', 'running_var', 'save_std', 'scale', 'norm'):
        if isinstance(md.__dict__.get(f), pynn.Tensor):
            np.testing.assert_allclose(mf.__dict__[f].numpy(), md.__dict__[f].numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize('key', list(MAKERS))
def test_meta(key):
    make, shape = MAKERS[key]
    real = make()
    x, g = rnd(*shape, seed=24), rnd(*shape, seed=25)
    real.forward(x)
    real.backward(x, g)
    meta = make().type('torch.MetaDoubleTensor')
    y = meta.forward(pynn.MetaDoubleTensor(*shape))
    gi = meta.backward(pynn.MetaDoubleTensor(*shape), pynn.MetaDoubleTensor(*shape))
    assert y.is_meta() and gi.is_meta()
    assert y.size() == real.output.size() and gi.size() == real.gradInput.size()
    for k, v in real.__dict__.items():
        if isinstance(v, pynn.Tensor):
            mv = meta.__dict__[k]
            assert mv.size() == v.size(), k
            assert (mv.storage() is None) == (v.storage() is None), k
            if v.storage() is not None:
                assert mv.storage().size() == v.storage().size(), k
    assert set(k for k, v in real.__dict__.items() if isinstance(v, pynn.Tensor)) == \
        set(k for k, v in meta.__dict__.items() if isinstance(v, pynn.Tensor))


def _owned(m):
    seen = {}
    for v in m.__dict__.values():
        if isinstance(v, pynn.Tensor) and v.storage() is not None:
            seen[id(v.storage())] = v.storage().nbytes()
    return sum(seen.values())


@pytest.mark.parametrize('make,shape', [
    (lambda: nn.SpatialBatchNormalization(16), (4, 16, 16, 16)),
    (lambda: nn.BatchNormalization(64), (128, 64)),
    (lambda: nn.SpatialCrossMapLRN(5), (4, 16, 16, 16)),
    (lambda: nn.Normalize(2), (128, 64)),
    (lambda: nn.Normalize(math.inf), (128, 64)),
], ids=['SBN', 'BN', 'LRN', 'Norm2', 'NormInf'])
def test_no_big_temporaries(make, shape):
    m = make()
    x, g = rnd(*shape, seed=26), rnd(*shape, seed=27)
    for _ in range(2):
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        m.forward(x)
        m.backward(x, g)
        peak = tracemalloc.get_traced_memory()[1] - base
        tracemalloc.stop()
    assert peak < 0.1 * _owned(m), (peak, _owned(m))


# ============================================================================= hypothesis vs PyTorch
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

HSET = settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))


def _np(shape, seed, scale=1.0):
    return np.random.default_rng(seed).standard_normal(shape) * scale


@given(st.integers(1, 4), st.integers(2, 5), st.sampled_from([(), (3,), (2, 3)]), st.booleans(), st.booleans(),
       st.integers(0, 10 ** 6))
@HSET
def test_batchnorm_hypothesis_vs_torch(C, N, rest, training, affine, seed):
    cls = {0: nn.BatchNormalization, 1: None, 2: nn.SpatialBatchNormalization}[len(rest)]
    if cls is None:
        return
    m = cls(C, 1e-5, 0.1, affine)
    rng = np.random.default_rng(seed)
    if affine:
        m.weight.numpy()[...] = rng.random(C) + 0.5
        m.bias.numpy()[...] = rng.standard_normal(C)
    m.running_mean.numpy()[...] = rng.standard_normal(C)
    m.running_var.numpy()[...] = rng.random(C) + 0.5
    rm, rv = torch.from_numpy(m.running_mean.numpy().copy()), torch.from_numpy(m.running_var.numpy().copy())
    x = rng.standard_normal((N, C) + rest) * 2 + 1
    m.training() if training else m.evaluate()
    y = m.forward(P(x))
    xt = torch.tensor(x, requires_grad=True)
    w = torch.tensor(m.weight.numpy(), requires_grad=True) if affine else None
    b = torch.tensor(m.bias.numpy(), requires_grad=True) if affine else None
    yt = F.batch_norm(xt, rm, rv, w, b, training, 0.1, 1e-5)
    close(y, yt)
    close(m.running_mean, rm)
    close(m.running_var, rv)
    g = rng.standard_normal(x.shape)
    m.zeroGradParameters()
    gi = m.backward(P(x), P(g))
    yt.backward(torch.from_numpy(g))
    close(gi, xt.grad, 1e-9)
    if affine:
        close(m.gradWeight, w.grad, 1e-9)
        close(m.gradBias, b.grad, 1e-9)


def _lua_layer_norm_torch(xt, n, eps, w, b):
    """Lua's LayerNormalization in torch ops. A 1-D input is the usual layer normalization; on a
    batch B x n, Lua's Replicate(n, 1, 1) of the B row means gives an n x B (stride 0) tensor
    that CSubTable subtracts in element order: element k of the batch gets mean[k % B] (what
    real Lua computes: the Lua fixture agrees)."""
    if xt.dim() == 1:
        c = xt - xt.mean()
        y = c / torch.sqrt((c * c).sum() + eps)
    else:
        B = xt.shape[0]
        c = xt - xt.mean(1).repeat(n).reshape(B, n)
        y = c / torch.sqrt((c * c).sum(1, keepdim=True) + eps)
    y = y * math.sqrt(n)
    return y * w + b if w is not None else y


@given(st.integers(2, 6), st.integers(0, 4), st.booleans(), st.integers(0, 10 ** 6))
@HSET
def test_layer_norm_vs_torch(n, B, affine, seed):
    m = nn.LayerNormalization(n, 0.25, 1e-10, affine)
    rng = np.random.default_rng(seed)
    if affine:
        m.modules[4].weight.numpy()[...] = rng.random(n) + 0.5
        m.modules[5].bias.numpy()[...] = rng.standard_normal(n)
    x = rng.standard_normal((B, n) if B else (n,))
    y = m.forward(P(x))
    xt = torch.tensor(x, requires_grad=True)
    w = torch.tensor(m.modules[4].weight.numpy(), requires_grad=True) if affine else None
    b = torch.tensor(m.modules[5].bias.numpy(), requires_grad=True) if affine else None
    yt = _lua_layer_norm_torch(xt, n, 1e-10, w, b)
    if not B:   # the 1-D case is PyTorch's layer_norm (eps / n inside the variance)
        close(F.layer_norm(xt, (n,), w, b, 1e-10 / n).detach().numpy(), yt, 1e-9)
    close(y, yt, 1e-9)
    g = rng.standard_normal(x.shape)
    m.zeroGradParameters()
    yt.backward(torch.from_numpy(g))
    close(m.backward(P(x), P(g)), xt.grad, 1e-9)
    if affine:
        close(m.modules[4].gradWeight, w.grad, 1e-9)
        close(m.modules[5].gradBias, b.grad, 1e-9)


def test_layer_norm_structure():
    m = nn.LayerNormalization(4)
    assert [c.__typename__ for c in m.modules] == ['nn.ConcatTable', 'nn.CSubTable', 'nn.Normalize',
                                                   'nn.MulConstant', 'nn.CMul', 'nn.Add']
    assert [c.__typename__ for c in m.modules[0].modules[1].modules] == ['nn.Mean', 'nn.Replicate']
    assert m.modules[2].eps == 1e-10 and m.modules[3].constant_scalar == 2
    np.testing.assert_array_equal(m.modules[4].weight.numpy(), 1)
    np.testing.assert_array_equal(m.modules[5].bias.numpy(), 0)
    assert len(nn.LayerNormalization(4, 1.5, 1e-5, False).modules) == 4
    assert m.__tostring__().startswith('nn.Sequential {')


@given(st.sampled_from([1, 3, 5]), st.integers(1, 6), st.floats(1e-4, 1.0), st.floats(0.5, 1.0),
       st.floats(0.5, 2.0), st.integers(0, 10 ** 6))
@HSET
def test_lrn_hypothesis_vs_torch(size, C, alpha, beta, k, seed):
    x, g = _np((2, C, 3, 4), seed, 2), _np((2, C, 3, 4), seed + 1)
    m = nn.SpatialCrossMapLRN(size, alpha, beta, k)
    xt = torch.tensor(x, requires_grad=True)
    yt = F.local_response_norm(xt, size, alpha, beta, k)
    close(m.forward(P(x)), yt)
    yt.backward(torch.from_numpy(g))
    close(m.backward(P(x), P(g)), xt.grad)


@given(st.sampled_from([1, 2, 3, 4.5]), st.sampled_from([(5,), (3, 4), (1, 7)]), st.integers(0, 10 ** 6))
@HSET
def test_normalize_hypothesis_vs_torch(p, shape, seed):
    x, g = _np(shape, seed) + 0.05, _np(shape, seed + 1)
    m = nn.Normalize(p, 0)        # eps 0: PyTorch's normalize divides by max(norm, eps)
    xt = torch.tensor(x, requires_grad=True)
    yt = F.normalize(xt, p, dim=-1, eps=0)
    close(m.forward(P(x)), yt, 1e-9)
    yt.backward(torch.from_numpy(g))
    close(m.backward(P(x), P(g)), xt.grad, 1e-9)


# ============================================================================= local normalizations
def _local_mean_ref(x, kernel2d):
    """Independent reference of SpatialSubtractiveNormalization's output (one sample, C x H x W):
    kernel-weighted mean over the neighbourhood and the planes, divided by the same weights over
    ones (the border correction), subtracted."""
    C, H, W = x.shape
    kh, kw = kernel2d.shape
    k = kernel2d / (kernel2d.sum() * C)
    pad = np.pad(x, ((0, 0), (kh // 2, kh // 2), (kw // 2, kw // 2)))
    ones = np.pad(np.ones_like(x), ((0, 0), (kh // 2, kh // 2), (kw // 2, kw // 2)))
    s = np.zeros((H, W))
    c = np.zeros((H, W))
    for i in range(kh):
        for j in range(kw):
            s += k[i, j] * pad[:, i:i + H, j:j + W].sum(0)
            c += k[i, j] * ones[:, i:i + H, j:j + W].sum(0)
    return x - (s / c)[None]


@pytest.mark.parametrize('kernel', [np.ones((3, 3)), np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1.]]),
                                    np.ones((5, 3))])
@pytest.mark.parametrize('batch', [False, True])
def test_subtractive_vs_reference(kernel, batch):
    x = _np((2, 3, 6, 7), 3)
    m = nn.SpatialSubtractiveNormalization(3, P(kernel.copy()))
    y = m.forward(P(x if batch else x[0])).numpy()
    ref = np.stack([_local_mean_ref(xi, kernel) for xi in x])
    close(y, ref if batch else ref[0])
    assert m.meanestimator.__typename__ == 'nn.Sequential' and m.subtractor.__typename__ == 'nn.CSubTable'
    assert m.divider.__typename__ == 'nn.CDivTable'
    assert abs(m.kernel.numpy().sum() - 1 / 3) < 1e-12      # normalized in place, as Lua


def _divisive_ref(x, kernel2d, th):
    C, H, W = x.shape
    kh, kw = kernel2d.shape
    k = kernel2d / (kernel2d.sum() * C)
    pad = np.pad(x ** 2, ((0, 0), (kh // 2, kh // 2), (kw // 2, kw // 2)))
    ones = np.pad(np.ones_like(x), ((0, 0), (kh // 2, kh // 2), (kw // 2, kw // 2)))
    s = np.zeros((H, W))
    c = np.zeros((H, W))
    for i in range(kh):
        for j in range(kw):
            s += k[i, j] * pad[:, i:i + H, j:j + W].sum(0)
            c += k[i, j] * ones[:, i:i + H, j:j + W].sum(0)
    std = np.sqrt(s) / c
    std = np.where(std > th, std, th)
    return x / std[None]


@pytest.mark.parametrize('batch', [False, True])
def test_divisive_vs_reference(batch):
    kernel = np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1.]])
    x = _np((2, 2, 5, 6), 4)
    m = nn.SpatialDivisiveNormalization(2, P(kernel.copy()), 0.2)
    y = m.forward(P(x if batch else x[0])).numpy()
    ref = np.stack([_divisive_ref(xi, kernel, 0.2) for xi in x])
    close(y, ref if batch else ref[0])
    assert (m.threshold, m.thresval) == (0.2, 0.2)
    assert m.thresholder.__typename__ == 'nn.Threshold'
    assert [s.__typename__ for s in m.stdestimator.modules][0] == 'nn.Square'


@pytest.mark.parametrize('make', [
    lambda: nn.SpatialSubtractiveNormalization(2, P(np.ones((3, 3)))),
    lambda: nn.SpatialSubtractiveNormalization(2, P(np.array([0.25, 0.5, 0.25]))),
    lambda: nn.SpatialDivisiveNormalization(2, P(np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1.]]))),
    lambda: nn.SpatialDivisiveNormalization(2, P(np.array([1., 2, 1]))),
    lambda: nn.SpatialContrastiveNormalization(2, P(np.ones((3, 3)))),
    lambda: nn.SpatialContrastiveNormalization(2, P(np.array([1., 1, 1]))),
], ids=['sub2d', 'sub1d', 'div2d', 'div1d', 'con2d', 'con1d'])
@pytest.mark.parametrize('batch', [False, True])
def test_local_normalization_jacobians(make, batch):
    m = make()
    x = rnd(*((2, 2, 4, 5) if batch else (2, 4, 5)), seed=12, shift=0.5)
    jacobian_check(m, x, tol=1e-6)


def test_local_normalization_defaults_errors_and_bad_input():
    m = nn.SpatialContrastiveNormalization()
    assert m.nInputPlane == 1 and m.kernel.size() == (9, 9) and (m.threshold, m.thresval) == (1e-4, 1e-4)
    assert [c.__typename__ for c in m.normalizer.modules] == ['nn.SpatialSubtractiveNormalization',
                                                              'nn.SpatialDivisiveNormalization']
    with pytest.raises(ValueError, match='ODD'):
        nn.SpatialSubtractiveNormalization(1, P(np.ones((4, 3))))
    with pytest.raises(ValueError, match='2D or 1D'):
        nn.SpatialDivisiveNormalization(1, P(np.ones((3, 3, 3))))
    s = nn.SpatialSubtractiveNormalization(2, P(np.ones((3, 3))))
    good = rnd(2, 5, 5, seed=1)
    y0 = s.forward(good).numpy().copy()
    for bad in (rnd(5, 5), rnd(3, 5, 5), pynn.FloatTensor(2, 5, 5), [good]):
        with pytest.raises(ValueError, match='SpatialSubtractiveNormalization'):
            s.forward(bad)
    close(s.forward(good), y0)


@pytest.mark.parametrize('make', [
    lambda: nn.SpatialSubtractiveNormalization(2, P(np.array([0.25, 0.5, 0.25]))),
    lambda: nn.SpatialDivisiveNormalization(2, P(np.ones((3, 3)))),
    lambda: nn.SpatialContrastiveNormalization(2, P(np.ones((3, 3)))),
    lambda: nn.LayerNormalization(5),
], ids=['sub', 'div', 'con', 'layer'])
def test_composite_float32(make):
    m = make()
    shape = (3, 5) if m.__typename__ == 'nn.LayerNormalization' else (2, 2, 5, 6)
    x = np.random.default_rng(2).standard_normal(shape)
    g = np.random.default_rng(3).standard_normal(shape)
    yd = m.forward(P(x)).numpy().copy()
    gd = m.backward(P(x), P(g)).numpy().copy()
    mf = m.clone().float()
    y = mf.forward(P(x.astype(np.float32)))
    assert y.type() == 'torch.FloatTensor'
    np.testing.assert_allclose(y.numpy(), yd, rtol=1e-4, atol=1e-4)
    gi = mf.backward(P(x.astype(np.float32)), P(g.astype(np.float32)))
    assert gi.numpy().dtype == np.float32
    np.testing.assert_allclose(gi.numpy(), gd, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize('make,shape', [
    (lambda: nn.SpatialSubtractiveNormalization(2, P(np.ones((3, 3)))), (2, 2, 5, 6)),
    (lambda: nn.SpatialDivisiveNormalization(2, P(np.ones((3, 3)))), (2, 5, 6)),
    (lambda: nn.SpatialContrastiveNormalization(2, P(np.ones((3, 3)))), (2, 2, 5, 6)),
    (lambda: nn.LayerNormalization(5), (3, 5)),
], ids=['sub', 'div', 'con', 'layer'])
def test_composite_meta(make, shape):
    real, meta = make(), make().type('torch.MetaDoubleTensor')
    x = rnd(*shape, seed=3)
    y = real.forward(x)
    real.backward(x, rnd(*y.size(), seed=4))
    ym = meta.forward(pynn.MetaDoubleTensor(*shape))
    assert ym.is_meta() and ym.size() == y.size()
    assert meta.backward(pynn.MetaDoubleTensor(*shape), pynn.MetaDoubleTensor(*y.size())).size() == shape
