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
