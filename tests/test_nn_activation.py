"""Activations vs PyTorch (float64, 1e-10), Jacobians, in-place semantics, Dropout, errors."""
import tracemalloc

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import pynn
from pynn import nn
from _oracle import P, T, close

TOL = 1e-10


def rnd(*shape, seed=0):
    return P(np.random.default_rng(seed).standard_normal(shape))


def jacobian_check(m, x, h=1e-6, tol=1e-6):
    out = m.forward(x).clone()
    nout, nin = out.nElement(), x.nElement()
    jac = np.zeros((nin, nout))
    for j in range(nout):
        g = out.new().resizeAs(out).zero()
        g.numpy().reshape(-1)[j] = 1
        m.forward(x)
        jac[:, j] = m.backward(x, g).numpy().reshape(-1)
    num = np.zeros((nin, nout))
    flat = x.numpy().reshape(-1)
    for i in range(nin):
        v = flat[i]
        flat[i] = v + h
        a = m.forward(x).numpy().reshape(-1).copy()
        flat[i] = v - h
        b = m.forward(x).numpy().reshape(-1).copy()
        flat[i] = v
        num[i] = (a - b) / (2 * h)
    assert np.abs(num - jac).max() < tol


def torch_ref(fn, x, g):
    xt = T(x).requires_grad_()
    y = fn(xt)
    y.backward(T(g))
    return y, xt.grad


SHAPES = [(7,), (3, 5), (2, 3, 4), (2, 3, 4, 5)]


# --- Threshold / ReLU -------------------------------------------------------------------------
@pytest.mark.parametrize('shape', SHAPES)
@pytest.mark.parametrize('th,val', [(0, 0), (0.3, -2.0), (1e-6, 0), (0, 1e-6), (-0.5, -0.5)])
def test_threshold_vs_torch(shape, th, val):
    x, g = rnd(*shape, seed=1), rnd(*shape, seed=2)
    x.numpy().reshape(-1)[0] = th    # exactly at the threshold: -> val
    m = nn.Threshold(th, val)
    y, gi = torch_ref(lambda t: F.threshold(t, th, val), x, g)
    close(m.forward(x), y)
    close(m.backward(x, g), gi)


@pytest.mark.parametrize('shape', SHAPES)
def test_relu_vs_torch(shape):
    x, g = rnd(*shape, seed=3), rnd(*shape, seed=4)
    y, gi = torch_ref(F.relu, x, g)
    m = nn.ReLU()
    close(m.forward(x), y)
    close(m.backward(x, g), gi)
    assert isinstance(m, nn.Threshold) and str(m) == 'nn.ReLU' and m.__typename__ == 'nn.ReLU'
    assert (m.threshold, m.val, m.inplace) == (0, 0, False)


@pytest.mark.parametrize('cls', ['relu', 'threshold'])
def test_threshold_inplace(cls):
    x, g = rnd(4, 5, seed=5), rnd(4, 5, seed=6)
    th, val = (0, 0) if cls == 'relu' else (0.2, -1.0)
    y, gi = torch_ref(lambda t: F.threshold(t, th, val), x, g)
    m = nn.ReLU(True) if cls == 'relu' else nn.Threshold(th, val, True)
    assert m.inplace is True
    out = m.forward(x)
    assert out is m.output and out.storage() is x.storage() and out.isSetTo(x)
    close(x, y)                          # input modified in place
    gin = m.backward(x, g)
    assert gin.storage() is g.storage() and gin.isSetTo(g)
    close(g, gi)


def test_threshold_nan_and_large():
    x = P(np.array([np.nan, 1.0, -1.0, 0.5]))
    close(nn.Threshold(0.5, -3).forward(x), [-3, 1, -3, -3])     # THNN: NaN > th is false
    close(nn.ReLU().forward(x), [0, 1, 0, 0.5])
    xi = x.clone()
    r = nn.ReLU(True).forward(xi).numpy()                        # in place: NaN <= th is false
    assert np.isnan(r[0]) and list(r[1:]) == [1, 0, 0.5]
    x = rnd(3, 40, 50, seed=7)                                   # several blocks
    for th, val in [(0.1, -0.2), (0, 0)]:
        y, gi = torch_ref(lambda t: F.threshold(t, th, val), x, x)
        m = nn.Threshold(th, val)
        close(m.forward(x), y)
        close(m.backward(x, x), gi)
    xt = x.transpose(1, 3)                                       # non-contiguous input
    y, gi = torch_ref(lambda t: F.threshold(t, 0.1, -0.2), xt.clone(), xt.clone())
    m = nn.Threshold(0.1, -0.2)
    close(m.forward(xt), y)
    close(m.backward(xt, xt.clone()), gi)


def test_threshold_args():
    m = nn.Threshold()
    assert (m.threshold, m.val, m.inplace) == (1e-6, 0, False)
    with pytest.raises(ValueError, match='not exceed threshold'):
        nn.Threshold(0, 1, True)
    with pytest.raises(ValueError):
        nn.Threshold('a', 0)
    with pytest.raises(ValueError, match='boolean'):
        nn.ReLU(1)


# --- Sigmoid / Tanh ------------------------------------------------------------------------------
@pytest.mark.parametrize('shape', SHAPES)
@pytest.mark.parametrize('name', ['Sigmoid', 'Tanh'])
def test_sigmoid_tanh_vs_torch(shape, name):
    x, g = rnd(*shape, seed=8), rnd(*shape, seed=9)
    y, gi = torch_ref(torch.sigmoid if name == 'Sigmoid' else torch.tanh, x, g)
    m = getattr(nn, name)()
    close(m.forward(x), y)
    close(m.backward(x, g), gi)
    assert str(m) == 'nn.' + name


# --- SoftMax / LogSoftMax ------------------------------------------------------------------------
@pytest.mark.parametrize('shape', SHAPES + [(3, 4, 1, 1), (700, 3), (2, 5, 30, 30)])
@pytest.mark.parametrize('name', ['SoftMax', 'LogSoftMax'])
def test_softmax_vs_torch(shape, name):
    x, g = rnd(*shape, seed=10), rnd(*shape, seed=11)
    x.numpy()[...] *= 5
    dim = 0 if len(shape) in (1, 3) else 1          # THNN's feature dim
    fn = (lambda t: F.softmax(t, dim)) if name == 'SoftMax' else (lambda t: F.log_softmax(t, dim))
    y, gi = torch_ref(fn, x, g)
    m = getattr(nn, name)()
    close(m.forward(x), y)
    close(m.backward(x, g), gi)


def test_softmax_large_values_stable():
    x = P(np.array([[1000.0, 1001.0, 999.0], [-1000.0, -1000.0, -1000.0]]))
    y = nn.SoftMax().forward(x).numpy()
    assert np.all(np.isfinite(y))
    close(y.sum(1), [1, 1])
    ly = nn.LogSoftMax().forward(x)
    close(ly, F.log_softmax(T(x), 1))


@pytest.mark.parametrize('m', [nn.Threshold(0.1, -0.5), nn.Sigmoid(), nn.Tanh(), nn.SoftMax(),
                               nn.LogSoftMax(), nn.MulConstant(-1.5), nn.AddConstant(0.7)],
                         ids=lambda m: str(m))
def test_jacobian(m):
    for shape in [(5,), (2, 4), (2, 2, 3), (2, 3, 2, 2)]:
        x = rnd(*shape, seed=12)
        if isinstance(m, nn.Threshold):   # keep away from the kink
            a = x.numpy()
            a[np.abs(a - 0.1) < 1e-3] += 0.01
        jacobian_check(m, x)


# --- MulConstant / AddConstant ---------------------------------------------------------------------
def test_mulconstant():
    x, g = rnd(3, 4, seed=13), rnd(3, 4, seed=14)
    m = nn.MulConstant(2.5)
    close(m.forward(x), 2.5 * x.numpy())
    close(m.backward(x, g), 2.5 * g.numpy())
    assert m.constant_scalar == 2.5 and m.inplace is False and str(m) == 'nn.MulConstant'
    xi, gi0, x0, g0 = x.clone(), g.clone(), x.clone(), g.clone()
    mi = nn.MulConstant(2.5, True)
    y = mi.forward(xi)
    assert y.isSetTo(xi)
    close(xi, 2.5 * x0.numpy())
    gi = mi.backward(xi, gi0)
    assert gi.isSetTo(gi0)
    close(gi, 2.5 * g0.numpy())
    close(xi, x0, 1e-12)                     # input restored
    with pytest.raises(ValueError, match='scalar'):
        nn.MulConstant(pynn.Tensor(3))


def test_addconstant():
    x, g = rnd(3, 4, seed=15), rnd(3, 4, seed=16)
    m = nn.AddConstant(-1.25)
    close(m.forward(x), x.numpy() - 1.25)
    gi = m.backward(x, g)
    close(gi, g)
    assert gi.storage() is not g.storage()
    xi, gg, x0 = x.clone(), g.clone(), x.clone()
    mi = nn.AddConstant(-1.25, True)
    assert mi.forward(xi).isSetTo(xi)
    close(xi, x0.numpy() - 1.25)
    assert mi.backward(xi, gg).isSetTo(gg)
    close(xi, x0, 1e-12)
    c = rnd(4, seed=17)
    mt = nn.AddConstant(c)
    close(mt.forward(x), x.numpy() + c.numpy())
    close(mt.forward(x.select(1, 1)), x.select(1, 1).numpy() + c.numpy())
    with pytest.raises(ValueError, match='nn.AddConstant'):
        mt.forward(rnd(3, 5))
    close(mt.forward(x), x.numpy() + c.numpy())


# --- Dropout ---------------------------------------------------------------------------------------
def test_dropout_fields_and_print():
    m = nn.Dropout()
    assert m.p == 0.5 and m.train is True and m.v2 is True and m.stochastic_inference is False
    assert isinstance(m.noise, pynn.Tensor) and m.noise.nElement() == 0
    assert str(m) == 'nn.Dropout(0.500000)'
    assert str(nn.Dropout(0.25)) == 'nn.Dropout(0.250000)'
    for bad in (1, 1.5, -0.1):
        with pytest.raises(ValueError, match='illegal percentage'):
            nn.Dropout(bad)


def test_dropout_p0_identity():
    x, g = rnd(4, 6, seed=18), rnd(4, 6, seed=19)
    m = nn.Dropout(0)
    close(m.forward(x), F.dropout(T(x), 0.0, True))
    close(m.backward(x, g), g)
    assert m.noise.nElement() == 0           # Lua only touches noise when p > 0


@pytest.mark.parametrize('p', [0.2, 0.5, 0.8])
def test_dropout_v2_statistics(p):
    pynn.manualSeed(123)
    x = pynn.ones(200, 500)
    m = nn.Dropout(p)
    y = m.forward(x).numpy()
    noise = m.noise.numpy()
    assert m.noise.size() == x.size()
    vals = np.unique(noise)
    np.testing.assert_allclose(vals, [0, 1 / (1 - p)], rtol=1e-12)
    close(y, noise)                          # y = x * noise
    frac = (noise == 0).mean()
    assert abs(frac - p) < 4 * np.sqrt(p * (1 - p) / noise.size)
    assert abs(y.mean() - 1) < 0.02           # E[y] = x, as torch's (inverted) dropout
    g = rnd(200, 500, seed=20)
    close(m.backward(x, g), g.numpy() * noise)
    yt = F.dropout(torch.ones(200, 500, dtype=torch.float64), p, True)
    assert abs(yt.mean().item() - y.mean()) < 0.03
    m.evaluate()
    close(m.forward(x), x)
    close(m.backward(x, g), g)


def test_dropout_v1_and_stochastic_inference():
    pynn.manualSeed(5)
    x, g = rnd(50, 40, seed=21), rnd(50, 40, seed=22)
    m = nn.Dropout(0.3, True)
    assert m.v2 is False
    y = m.forward(x).numpy()
    noise = m.noise.numpy()
    assert set(np.unique(noise)) <= {0.0, 1.0}
    close(y, x.numpy() * noise)
    close(m.backward(x, g), g.numpy() * noise)
    m.evaluate()
    close(m.forward(x), 0.7 * x.numpy())
    close(m.backward(x, g), 0.7 * g.numpy())
    s = nn.Dropout(0.3, False, False, True)
    s.evaluate()
    y = s.forward(x).numpy()
    assert (y == 0).any()
    close(y, x.numpy() * s.noise.numpy())
    close(s.backward(x, g), g)               # Lua: no mask in backward when not training


def test_dropout_inplace_and_clear():
    pynn.manualSeed(7)
    x, g = rnd(6, 7, seed=23), rnd(6, 7, seed=24)
    x0, g0 = x.clone(), g.clone()
    m = nn.Dropout(0.4, False, True)
    y = m.forward(x)
    assert y.isSetTo(x)
    close(x, x0.numpy() * m.noise.numpy())
    gi = m.backward(x, g)
    assert gi.isSetTo(g)
    close(g, g0.numpy() * m.noise.numpy())
    m.setp(0.1)
    assert m.p == 0.1
    m.clearState()
    assert m.noise.storage() is None and m.output.storage() is None and 'noise' in m.__dict__


# --- errors, types, meta, memory ------------------------------------------------------------------
ALL = [lambda: nn.Threshold(0.1, 0), lambda: nn.ReLU(), lambda: nn.ReLU(True), lambda: nn.Sigmoid(),
       lambda: nn.Tanh(), lambda: nn.SoftMax(), lambda: nn.LogSoftMax(), lambda: nn.MulConstant(2),
       lambda: nn.AddConstant(1), lambda: nn.Dropout(0.3), lambda: nn.MulConstant(2, True)]


@pytest.mark.parametrize('make', ALL, ids=lambda f: str(f()))
def test_bad_input_then_usable(make):
    m = make()
    for bad in ([rnd(2, 3)], 3.0, pynn.FloatTensor(2, 3)):
        with pytest.raises(ValueError, match=m.__typename__):
            m.forward(bad)
        assert m.output.nElement() == 0
    x, g = rnd(2, 3, seed=25), rnd(2, 3, seed=26)
    assert m.forward(x).size() == (2, 3)
    with pytest.raises(ValueError, match=m.__typename__):
        m.backward(x, pynn.FloatTensor(2, 3))
    if not isinstance(m, (nn.MulConstant, nn.AddConstant, nn.Dropout)):
        with pytest.raises(ValueError, match=m.__typename__):
            m.backward(x, rnd(4, 5))
    assert m.backward(x, g).size() == (2, 3)


def test_softmax_bad_dims():
    m = nn.SoftMax()
    with pytest.raises(ValueError, match='nn.SoftMax.*1D, 2D, 3D or 4D'):
        m.forward(rnd(1, 2, 2, 2, 2))
    assert m.forward(rnd(2, 3)).size() == (2, 3)


@pytest.mark.parametrize('make', ALL, ids=lambda f: str(f()))
def test_float32(make):
    m = make().float()
    x = pynn.FloatTensor(3, 4, 5).normal()
    xd = x.double()
    y = m.forward(x.clone())
    assert y.numpy().dtype == np.float32
    md = make()
    if isinstance(m, nn.Dropout):
        m.evaluate()
        md.evaluate()
    y = m.forward(x)
    yd = md.forward(xd)
    np.testing.assert_allclose(y.numpy(), yd.numpy(), atol=1e-5, rtol=1e-5)
    gi = m.backward(x, pynn.FloatTensor(3, 4, 5).fill(1))
    assert gi.numpy().dtype == np.float32 and gi.size() == (3, 4, 5)


@pytest.mark.parametrize('make', ALL, ids=lambda f: str(f()))
def test_meta(make):
    m = make().type('torch.MetaDoubleTensor')
    x = pynn.MetaDoubleTensor(2, 3, 8, 8)
    y = m.forward(x)
    assert y.is_meta() and y.size() == (2, 3, 8, 8)
    gi = m.backward(x, pynn.MetaDoubleTensor(2, 3, 8, 8))
    assert gi.is_meta() and gi.size() == (2, 3, 8, 8)
    if isinstance(m, nn.Dropout):
        assert m.noise.size() == (2, 3, 8, 8) and m.noise.is_meta()


def _owned(m):
    seen = {}
    for v in m.__dict__.values():
        if isinstance(v, pynn.Tensor) and v.storage() is not None:
            seen[id(v.storage())] = v.storage().nbytes()
    return sum(seen.values())


@pytest.mark.parametrize('make', ALL, ids=lambda f: str(f()))
def test_no_big_temporaries(make):
    m = make()
    x, g = rnd(4, 16, 16, 16, seed=27), rnd(4, 16, 16, 16, seed=28)
    for _ in range(2):
        xi, gg = x.clone(), g.clone()
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        m.forward(xi)
        m.backward(xi, gg)
        peak = tracemalloc.get_traced_memory()[1] - base
        tracemalloc.stop()
    owned = _owned(m) + (0 if m.output.storage() is not xi.storage() else xi.storage().nbytes())
    assert peak < 0.1 * owned, (peak, owned)
