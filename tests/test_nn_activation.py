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


@pytest.mark.parametrize('dtype', [np.float32, np.float64])
def test_relu_forward_bitwise_thnn_rule(dtype):
    # THNN: y = x > 0 ? x : 0, so -0.0, NaN (either sign) and -inf give +0, denormals stay
    special = np.array([-0.0, 0.0, np.nan, -np.nan, np.inf, -np.inf, 1e-310, -1e-310, 1e-44,
                        -1e-44, 3.0, -3.0], dtype=dtype)
    v = np.random.default_rng(3).permutation(np.tile(special, 1000)).reshape(4, 3, 1000)
    def bits(a):
        return np.ascontiguousarray(a).view(np.uint8)
    t = pynn.from_numpy(v)
    for x in (t, t.transpose(1, 3)):                              # contiguous, strided
        a = x.numpy()
        want = np.where(a > 0, a, dtype(0))
        for m in (nn.Threshold(0, 0), nn.Threshold(0.0, 0.0), nn.ReLU()):
            got = m.type(x.type()).forward(x).numpy()
            assert got.dtype == want.dtype
            assert np.array_equal(bits(got), bits(want))              # sign bits too


@pytest.mark.parametrize('dtype', [np.float32, np.float64])
@pytest.mark.parametrize('n', [100, 6000])      # below and above the blocked path's floor
def test_relu_inplace_bitwise_thnn_rule(dtype, n):
    # THNN in place: x <= 0 -> 0, else x unchanged: -0.0 and -inf give +0, NaN keeps its bits
    special = np.array([-0.0, 0.0, np.nan, -np.nan, np.inf, -np.inf, 1e-310, -1e-310, 1e-44,
                        -1e-44, 3.0, -3.0], dtype=dtype)
    v = np.random.default_rng(4).permutation(np.tile(special, n)).reshape(4, 3, n)
    want = np.where(v <= 0, dtype(0), v)
    for strided in (False, True):
        t = pynn.from_numpy(v.copy())
        x = t.transpose(1, 3) if strided else t
        m = nn.ReLU(True).type(x.type())
        y = m.forward(x)
        assert y.storage() is x.storage()
        assert np.array_equal(t.numpy().view(np.uint8), want.view(np.uint8))


@pytest.mark.parametrize('dtype', [np.float32, np.float64])
@pytest.mark.parametrize('inplace', [False, True])
def test_relu_backward_bitwise_thnn_rule(dtype, inplace):
    # THNN: gradInput = x > 0 ? gradOutput : +0 (in place: x <= 0 -> +0, so a NaN input keeps
    # the gradient), every gradOutput value kept as it is, inf and NaN included; big enough
    # for the blocked bit path, and a strided copy
    special = np.array([-0.0, 0.0, np.nan, -np.nan, np.inf, -np.inf, 1e-310, -1e-310, 2.5,
                        -2.5], dtype=dtype)
    rng = np.random.default_rng(5)
    n = 1 << 18                                  # blocks of 2^14: the bit path
    xv = rng.permutation(np.tile(special, n // len(special) + 1)[:n]).reshape(4, 4, 1 << 14)
    gv = rng.permutation(np.tile(special, n // len(special) + 1)[:n]).reshape(4, 4, 1 << 14)
    finite = special[np.isfinite(special)]
    gv[0] = rng.choice(finite, gv[0].shape)      # a quarter without inf/NaN
    for strided in (False, True):
        x, g = pynn.from_numpy(xv.copy()), pynn.from_numpy(gv.copy())
        if strided:
            x, g = x.transpose(1, 3), g.transpose(1, 3)
        a = x.numpy().copy()
        keep = ~(a <= 0) if inplace else a > 0
        want = np.where(keep, g.numpy(), dtype(0))
        m = nn.ReLU(inplace).type(x.type())
        if inplace:   # the input the backward sees is the forward's output
            m.forward(x)
            x.numpy()[...] = a
        got = m.updateGradInput(x, g).numpy()
        assert np.array_equal(np.ascontiguousarray(got).view(np.uint8),
                              np.ascontiguousarray(want).view(np.uint8))


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
    torch.manual_seed(123)                   # torch's own stream: seeded, so the test is not flaky
    yt = F.dropout(torch.ones(200, 500, dtype=torch.float64), p, True)
    sd = np.sqrt(p / (1 - p) / noise.size)   # the spread of the mean of one draw
    assert abs(yt.mean().item() - y.mean()) < 6 * sd
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


# =================================================================================================
# The rest of the pointwise family (pynn/nn/pointwise.py, rectifier.py): PyTorch on random shapes
# (hypothesis, float64, 1e-10), in-place variants, Lua's quirks and printing, errors, float32, meta.
# =================================================================================================
from hypothesis import given, settings, HealthCheck, strategies as st  # noqa: E402

HYP = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def shaped(draw, min_dims=1, max_dims=4):
    nd = draw(st.integers(min_dims, max_dims))
    shape = tuple(draw(st.integers(1, 4)) for _ in range(nd))
    return shape, draw(st.integers(0, 2 ** 31 - 1))


def xg(shape, seed, scale=1.5):
    rng = np.random.default_rng(seed)
    return P(scale * rng.standard_normal(shape)), P(rng.standard_normal(shape))


def run_both(m, fn, x, g, inplace=False):
    """pynn forward/backward vs PyTorch's fn (autograd), at 1e-10."""
    y, gi = torch_ref(fn, x, g)
    xi, gg = (x.clone(), g.clone()) if inplace else (x, g)
    close(m.forward(xi), y)
    close(m.backward(xi, gg), gi)
    return xi, gg


POINTWISE_TORCH = {
    'Abs': (lambda: nn.Abs(), torch.abs),
    'Exp': (lambda: nn.Exp(), torch.exp),
    'Square': (lambda: nn.Square(), lambda t: t * t),
    'Power3': (lambda: nn.Power(3), lambda t: torch.pow(t, 3)),
    'ELU': (lambda: nn.ELU(), F.elu),
    'ELU0.7': (lambda: nn.ELU(0.7), lambda t: F.elu(t, 0.7)),
    'HardShrink': (lambda: nn.HardShrink(), F.hardshrink),
    'HardShrink0.3': (lambda: nn.HardShrink(0.3), lambda t: F.hardshrink(t, 0.3)),
    'SoftShrink': (lambda: nn.SoftShrink(), F.softshrink),
    'SoftShrink0.8': (lambda: nn.SoftShrink(0.8), lambda t: F.softshrink(t, 0.8)),
    'HardTanh': (lambda: nn.HardTanh(), F.hardtanh),
    'HardTanh-0.5,2': (lambda: nn.HardTanh(-0.5, 2), lambda t: F.hardtanh(t, -0.5, 2)),
    'Clamp': (lambda: nn.Clamp(-0.3, 0.6), lambda t: torch.clamp(t, -0.3, 0.6)),
    'ReLU6': (lambda: nn.ReLU6(), F.relu6),
    'LeakyReLU': (lambda: nn.LeakyReLU(), F.leaky_relu),
    'LeakyReLU0.2': (lambda: nn.LeakyReLU(0.2), lambda t: F.leaky_relu(t, 0.2)),
    'LogSigmoid': (lambda: nn.LogSigmoid(), F.logsigmoid),
    'PReLU': (lambda: nn.PReLU(), lambda t: F.prelu(t, torch.tensor([0.25], dtype=t.dtype))),
    'RReLU-eval': (lambda: nn.RReLU().evaluate(), lambda t: F.rrelu(t, 1 / 8, 1 / 3, training=False)),
    'SoftPlus': (lambda: nn.SoftPlus(), F.softplus),
    'SoftPlus2': (lambda: nn.SoftPlus(2), lambda t: F.softplus(t, 2, 20)),
    'SoftSign': (lambda: nn.SoftSign(), F.softsign),
    'TanhShrink': (lambda: nn.TanhShrink(), F.tanhshrink),
}


@pytest.mark.parametrize('name', sorted(POINTWISE_TORCH))
@HYP
@given(case=shaped())
def test_pointwise_vs_torch(name, case):
    shape, seed = case
    make, fn = POINTWISE_TORCH[name]
    x, g = xg(shape, seed, scale=8 if name.startswith('SoftPlus') else 1.5)
    run_both(make(), fn, x, g)


@pytest.mark.parametrize('name', ['Log', 'Sqrt', 'Power0.5', 'Power-1.5'])
@HYP
@given(case=shaped())
def test_positive_domain_vs_torch(name, case):
    shape, seed = case
    x, g = xg(shape, seed)
    x.abs().add(0.1)
    make, fn = {'Log': (nn.Log, torch.log), 'Sqrt': (nn.Sqrt, torch.sqrt),
                'Power0.5': (lambda: nn.Power(0.5), lambda t: t ** 0.5),
                'Power-1.5': (lambda: nn.Power(-1.5), lambda t: t ** -1.5)}[name]
    run_both(make(), fn, x, g)


def test_sqrt_zero_output_has_zero_gradient():
    x, g = P(np.array([0.0, 4.0])), P(np.array([1.0, 1.0]))
    m = nn.Sqrt()
    m.forward(x)
    close(m.backward(x, g), np.array([0.0, 0.25]))    # THNN: output == 0 -> 0 (not inf)
    assert m.eps == 0 and nn.Sqrt(1e-3).eps == 1e-3


@HYP
@given(case=shaped(2, 4), k=st.integers(1, 4))
def test_prelu_planes_vs_torch(case, k):
    shape, seed = case
    shape = (shape[0], k) + shape[2:]
    x, g = xg(shape, seed)
    m = nn.PReLU(k)
    m.weight.numpy()[...] = np.random.default_rng(seed).uniform(-0.5, 0.5, k)
    w = T(m.weight).requires_grad_()
    xt = T(x).requires_grad_()
    y = F.prelu(xt, w)
    y.backward(T(g))
    close(m.forward(x), y)
    m.zeroGradParameters()
    close(m.backward(x, g), xt.grad)
    close(m.gradWeight, w.grad)
    m.backward(x, g, 0.5)                        # accumulates, scaled
    close(m.gradWeight, 1.5 * w.grad.numpy())
    assert m.weight.size() == (k,) and m.gradWeight.size() == (k,) and m.nOutputPlane == k


def test_prelu_shared_and_1d():
    x, g = xg((5,), 3)
    m = nn.PReLU()
    assert m.nOutputPlane == 0 and m.weight.size() == (1,) and m.weight[1] == 0.25
    w = torch.tensor([0.25], dtype=torch.float64, requires_grad=True)
    xt = T(x).requires_grad_()
    y = F.prelu(xt, w)
    y.backward(T(g))
    close(m.forward(x), y)
    close(m.backward(x, g), xt.grad)
    close(m.gradWeight, w.grad)
    m5 = nn.PReLU(5)                              # 1-D input: the planes are dim 1
    w5 = torch.full((5,), 0.25, dtype=torch.float64, requires_grad=True)
    xt = T(x).requires_grad_()
    y = (torch.where(xt > 0, xt, w5 * xt))
    y.backward(T(g))
    close(m5.forward(x), y)
    m5.zeroGradParameters()
    close(m5.backward(x, g), xt.grad)
    close(m5.gradWeight, w5.grad)
    with pytest.raises(ValueError, match='nn.PReLU'):
        m5.forward(rnd(2, 4))
    assert m5.forward(rnd(2, 5)).size() == (2, 5)


@pytest.mark.parametrize('name', ['SoftMin', 'SpatialSoftMax', 'SpatialLogSoftMax'])
@HYP
@given(case=shaped(1, 4))
def test_softmin_spatial_softmax_vs_torch(name, case):
    shape, seed = case
    x, g = xg(shape, seed)
    d = {1: 0, 2: 1, 3: 0, 4: 1}[len(shape)]      # THNN's feature dim
    fn = {'SoftMin': lambda t: F.softmin(t, d), 'SpatialSoftMax': lambda t: F.softmax(t, d),
          'SpatialLogSoftMax': lambda t: F.log_softmax(t, d)}[name]
    m = getattr(nn, name)()
    run_both(m, fn, x, g)
    if name == 'SoftMin':
        close(m.mininput, -x.numpy())


@HYP
@given(case=shaped(1, 4), which=st.integers(0, 3))
def test_glu_vs_torch(case, which):
    shape, seed = case
    dim = 1 + which % len(shape)
    shape = tuple(2 * s if i == dim - 1 else s for i, s in enumerate(shape))
    x, g0 = xg(shape, seed)
    half = list(shape)
    half[dim - 1] //= 2
    g = P(np.random.default_rng(seed + 1).standard_normal(half))
    last = dim == len(shape)
    run_both(nn.GatedLinearUnit() if last and which % 2 else nn.GatedLinearUnit(dim),
             lambda t: F.glu(t, dim - 1), x, g)


def test_glu_odd_size():
    m = nn.GatedLinearUnit(2)
    with pytest.raises(ValueError, match='nn.GatedLinearUnit.*even'):
        m.forward(rnd(2, 3))
    assert m.forward(rnd(2, 4)).size() == (2, 2)


@HYP
@given(case=shaped(1, 3), batch=st.booleans())
def test_crelu_vs_torch(case, batch):
    shape, seed = case
    n = len(shape) - 1 if batch and len(shape) > 1 else len(shape)
    x, _ = xg(shape, seed)
    batched = x.dim() == n + 1
    rows = shape[0] if batched else 1

    def fn(t):
        f = t.reshape(rows, -1)
        out = F.relu(torch.cat([f, -f], 1))
        osize = list(shape)
        osize[1 if batched else 0] *= 2
        return out.reshape(osize)
    osize = list(shape)
    osize[1 if batched else 0] *= 2
    g = P(np.random.default_rng(seed + 1).standard_normal(osize))
    m = nn.CReLU(n)
    run_both(m, fn, x, g)
    assert str(m) == 'CReLU()' and isinstance(m, nn.Sequential) and len(m.modules) == 3


@pytest.mark.parametrize('name', ['ELU', 'LeakyReLU', 'HardTanh', 'ReLU6', 'RReLU-eval', 'CReLU'])
def test_inplace_variants(name):
    make, fn = {'ELU': (lambda ip: nn.ELU(0.5, ip), lambda t: F.elu(t, 0.5)),
                'LeakyReLU': (lambda ip: nn.LeakyReLU(0.3, ip), lambda t: F.leaky_relu(t, 0.3)),
                'HardTanh': (lambda ip: nn.HardTanh(-0.4, 0.9, ip), lambda t: F.hardtanh(t, -0.4, 0.9)),
                'ReLU6': (lambda ip: nn.ReLU6(ip), F.relu6),
                'RReLU-eval': (lambda ip: nn.RReLU(0.1, 0.3, ip).evaluate(),
                               lambda t: F.rrelu(t, 0.1, 0.3, training=False)),
                'CReLU': (lambda ip: nn.CReLU(1, ip), None)}[name]
    x, g = xg((3, 4), 11, scale=4)
    if name == 'CReLU':
        g = rnd(3, 8, seed=12)
    ref = make(False)
    y = ref.forward(x).clone()
    gi = ref.backward(x, g).clone()
    if fn is not None:
        yt, git = torch_ref(fn, x, g)
        close(y, yt)
        close(gi, git)
    m = make(True)
    assert m.inplace is True
    xi, gg = x.clone(), g.clone()
    out = m.forward(xi)
    close(out, y)
    if name != 'CReLU':
        assert out.isSetTo(xi)                    # Lua: output set to the modified input
    gin = m.backward(xi, gg)
    close(gin, gi)
    if name != 'CReLU':
        assert gin.isSetTo(gg)


def test_rrelu_training_noise():
    x, g = xg((6, 7), 12)
    m = nn.RReLU(0.1, 0.3)
    y = m.forward(x)
    n = m.noise.numpy()
    xa = x.numpy()
    assert m.noise.size() == x.size()
    assert (n[xa > 0] == 1).all() and ((n[xa <= 0] >= 0.1) & (n[xa <= 0] <= 0.3)).all()
    assert len(np.unique(n[xa <= 0])) > 1
    close(y, xa * n)
    close(m.backward(x, g), g.numpy() * n)        # the training gradient is the noise
    lr = nn.RReLU(0.25, 0.25)                      # u - l <= 1e-6: the constant slope
    close(lr.forward(x), F.leaky_relu(T(x), 0.25))
    close(lr.backward(x, g), torch_ref(lambda t: F.leaky_relu(t, 0.25), x, g)[1])
    assert str(m) == 'nn.RReLU (l:0.100000, u:0.300000)'
    m.clearState()
    assert m.noise.storage() is None
    with pytest.raises(ValueError):
        nn.RReLU(0.5, 0.2)


def test_lua_constructor_quirks_and_printing():
    assert str(nn.ELU()) == 'nn.ELU (alpha:1.000000)' and nn.ELU().inplace is False
    assert str(nn.LeakyReLU()) == 'nn.LeakyReLU(0.01)' and str(nn.LeakyReLU(0.2)) == 'nn.LeakyReLU(0.2)'
    # Lua: a boolean first argument means the default slope; the in-place flag is the second
    ip = nn.LeakyReLU(True)
    assert ip.negval == 0.01 and ip.inplace is False
    assert nn.LeakyReLU(-0.1, True).inplace is False   # negative slope: never in place
    h = nn.HardTanh()
    assert (h.min_val, h.max_val, h.inplace) == (-1, 1, False) and str(h) == 'nn.HardTanh'
    c = nn.Clamp(-2, 3)
    assert isinstance(c, nn.HardTanh) and c.__typename__ == 'nn.Clamp' and (c.min_val, c.max_val) == (-2, 3)
    with pytest.raises(ValueError):
        nn.HardTanh(1, 1)
    with pytest.raises(ValueError):
        nn.HardTanh(-1, 1, 'yes')
    with pytest.raises(ValueError):
        nn.Power()
    assert getattr(nn.HardShrink(), 'lambda') == 0.5 and getattr(nn.SoftShrink(0.2), 'lambda') == 0.2
    sp = nn.SoftPlus()
    assert (sp.beta, sp.threshold) == (1, 20)
    assert isinstance(nn.TanhShrink().tanh, nn.Tanh)
    assert nn.GatedLinearUnit().dim is None and nn.ReLU6().inplace is False
    assert str(nn.CReLU(2)) == 'CReLU()'
    for name in ('Abs', 'Exp', 'Log', 'Square', 'LogSigmoid', 'SoftSign', 'SoftMin', 'SpatialSoftMax',
                 'SpatialLogSoftMax', 'TanhShrink', 'GatedLinearUnit'):
        assert str(getattr(nn, name)()) == 'nn.' + name


def test_lazy_buffers_as_lua():
    x, g = xg((3, 4), 13)
    ls, ss, sm = nn.LogSigmoid(), nn.SoftSign(), nn.SoftMin()
    assert ls.buffer is None and ss.temp is None and ss.tempgrad is None and sm.mininput is None
    for m in (ls, ss, sm):
        m.forward(x)
        m.backward(x, g)
    assert ls.buffer.size() == (3, 4) and ss.temp.size() == (3, 4) and ss.tempgrad.size() == (3, 4)
    close(ss.tempgrad, (1 + np.abs(x.numpy())) ** 2)
    p = nn.PReLU(4)
    assert p.gradWeightBuf is None
    p.forward(x)
    p.backward(x, g)
    assert p.gradWeightBuf.nElement() == 0 and p.gradWeightBuf2.nElement() == 0
    for m in (ls, ss, sm, p):
        m.clearState()
    assert ls.buffer.storage() is None and ss.temp.storage() is None and sm.mininput.storage() is None


def test_jacobians_of_new_pointwise():
    for m in (nn.LogSigmoid(), nn.SoftSign(), nn.ELU(0.6), nn.SoftPlus(1.5), nn.GatedLinearUnit(2),
              nn.TanhShrink(), nn.SoftMin(), nn.Power(3), nn.SpatialLogSoftMax()):
        jacobian_check(m, rnd(2, 4, seed=14))


NEW_POINTWISE = [lambda: nn.Abs(), lambda: nn.Exp(), lambda: nn.Square(), lambda: nn.Power(2),
                 lambda: nn.ELU(), lambda: nn.ELU(1, True), lambda: nn.HardShrink(), lambda: nn.SoftShrink(),
                 lambda: nn.HardTanh(), lambda: nn.HardTanh(-1, 1, True), lambda: nn.Clamp(-0.5, 0.5),
                 lambda: nn.ReLU6(), lambda: nn.ReLU6(True), lambda: nn.LeakyReLU(), lambda: nn.LeakyReLU(0.1, True),
                 lambda: nn.LogSigmoid(), lambda: nn.PReLU(), lambda: nn.RReLU(), lambda: nn.RReLU(0.1, 0.3, True),
                 lambda: nn.SoftPlus(), lambda: nn.SoftSign(), lambda: nn.TanhShrink(), lambda: nn.SoftMin(),
                 lambda: nn.SpatialSoftMax(), lambda: nn.SpatialLogSoftMax(), lambda: nn.GatedLinearUnit(),
                 lambda: nn.Log(), lambda: nn.Sqrt()]


def _positive(m):
    return isinstance(m, (nn.Log, nn.Sqrt))


@pytest.mark.parametrize('make', NEW_POINTWISE, ids=lambda f: str(f()))
def test_new_bad_input_then_usable(make):
    m = make()
    for bad in ([rnd(2, 4)], 3.0, pynn.FloatTensor(2, 4)):
        with pytest.raises(ValueError, match=m.__typename__):
            m.forward(bad)
        assert m.output.nElement() == 0
    x, g = rnd(2, 4, seed=25), rnd(2, 4, seed=26)
    if _positive(m):
        x.abs().add(0.1)
    half = isinstance(m, nn.GatedLinearUnit)
    if half:
        g = rnd(2, 2, seed=26)
    assert m.forward(x).size() == ((2, 2) if half else (2, 4))
    with pytest.raises(ValueError, match=m.__typename__):
        m.backward(x, pynn.FloatTensor(*g.size()))
    with pytest.raises(ValueError, match=m.__typename__):
        m.backward(x, rnd(4, 5))
    assert m.backward(x, g).size() == (2, 4)


@pytest.mark.parametrize('make', NEW_POINTWISE, ids=lambda f: str(f()))
def test_new_float32(make):
    x = pynn.FloatTensor(3, 4, 6).normal()
    if _positive(make()):
        x.abs().add(0.1)
    m, md = make().float(), make()
    if isinstance(m, nn.RReLU):
        m.evaluate()
        md.evaluate()
    y = m.forward(x.clone())
    yd = md.forward(x.double())
    assert y.numpy().dtype == np.float32
    np.testing.assert_allclose(y.numpy(), yd.numpy(), atol=1e-5, rtol=1e-5)
    g = pynn.FloatTensor(*y.size()).fill(1)
    gi = m.backward(x.clone(), g.clone())
    gid = md.backward(x.double(), g.double())
    assert gi.numpy().dtype == np.float32 and gi.size() == (3, 4, 6)
    np.testing.assert_allclose(gi.numpy(), gid.numpy(), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize('make', NEW_POINTWISE + [lambda: nn.CReLU(3)], ids=lambda f: str(f()))
def test_new_meta(make):
    real = make()
    x = rnd(2, 4, 6, 6, seed=30)
    if _positive(real):
        x.abs().add(0.1)
    y = real.forward(x)
    gi = real.backward(x, rnd(*y.size(), seed=31))
    m = make().type('torch.MetaDoubleTensor')
    mx = pynn.MetaDoubleTensor(2, 4, 6, 6)
    my = m.forward(mx)
    assert my.is_meta() and my.size() == y.size()
    mgi = m.backward(mx, pynn.MetaDoubleTensor(*y.size()))
    assert mgi.is_meta() and mgi.size() == gi.size()
    for f in ('buffer', 'temp', 'tempgrad', 'mininput', 'noise'):      # buffers sized as on real data
        if isinstance(real.__dict__.get(f), pynn.Tensor):
            assert m.__dict__[f].size() == real.__dict__[f].size() and m.__dict__[f].is_meta()


@pytest.mark.parametrize('make', NEW_POINTWISE + [lambda: nn.PReLU(16)], ids=lambda f: str(f()))
def test_new_no_big_temporaries(make):
    # block-wise temporaries are at least 4096 elements: a bigger tensor than the test above
    m = make()
    x, g = rnd(4, 16, 32, 64, seed=27), rnd(4, 16, 32, 64, seed=28)
    if _positive(m):
        x.abs().add(0.1)
    if isinstance(m, nn.GatedLinearUnit):
        g = rnd(4, 16, 32, 32, seed=28)
    if isinstance(m, nn.RReLU):      # training draws through Tensor.uniform (its own full-size draw)
        m.evaluate()
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


@pytest.mark.parametrize('mode', ['inference', 'training'])
def test_new_pointwise_under_optnet(mode):
    """optnet (in-place switching, sharing) leaves outputs and gradients of a net of the new
    classes exactly as without it."""
    import copy
    from pynn import optnet
    pynn.manualSeed(1)
    net = (nn.Sequential().add(nn.Linear(6, 8)).add(nn.TanhShrink()).add(nn.Linear(8, 8)).add(nn.ELU())
           .add(nn.Linear(8, 8)).add(nn.LeakyReLU(0.1)).add(nn.PReLU(8)).add(nn.CReLU(1)).add(nn.Linear(16, 8))
           .add(nn.SoftPlus()).add(nn.HardTanh()).add(nn.ReLU6()).add(nn.RReLU(0.2, 0.2)).add(nn.LogSigmoid())
           .add(nn.Linear(8, 8)).add(nn.SoftMin()).add(nn.SoftSign()).add(nn.Square()))
    if mode == 'inference':
        net.evaluate()
    ref = copy.deepcopy(net)
    x, g = rnd(4, 6, seed=40), rnd(4, 8, seed=41)
    optnet.optimizeMemory(net, x.clone(), mode=mode)
    assert any(m.inplace for m in net.listModules() if isinstance(m, (nn.ELU, nn.LeakyReLU, nn.ReLU6)))
    close(net.forward(x.clone()), ref.forward(x.clone()).numpy())
    if mode == 'training':
        ref.zeroGradParameters()
        net.zeroGradParameters()
        close(net.backward(x.clone(), g.clone()), ref.backward(x.clone(), g.clone()).numpy())
        close(net.getParameters()[1], ref.getParameters()[1].numpy())
