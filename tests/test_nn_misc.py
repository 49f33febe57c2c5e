"""The misc family (pynn/nn/misc.py): Max, Min, OneHot, L1Penalty, GradientReversal vs PyTorch on
random shapes (hypothesis, float64, 1e-10); Kmeans vs an independent PyTorch computation;
Constant, ZeroGrad, SpatialDropout, WhiteNoise semantics; errors, float32, meta."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings, HealthCheck, strategies as st

import pynn
from pynn import nn
from _oracle import P, T, close

HYP = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def rnd(*shape, seed=0):
    return P(np.random.default_rng(seed).standard_normal(shape))


@st.composite
def shaped(draw, min_dims=1, max_dims=4):
    nd = draw(st.integers(min_dims, max_dims))
    return tuple(draw(st.integers(1, 4)) for _ in range(nd)), draw(st.integers(0, 2 ** 31 - 1))


# --- Max / Min ---------------------------------------------------------------------------------------
@pytest.mark.parametrize('name', ['Max', 'Min'])
@HYP
@given(case=shaped(), pick=st.integers(0, 7), batch=st.booleans())
def test_max_min_vs_torch(name, case, pick, batch):
    shape, seed = case
    nd = len(shape)
    x = rnd(*shape, seed=seed)
    if pick % 2 and nd > 1:                      # negative dimension
        dim = -(1 + pick // 2 % nd)
        m, d0 = getattr(nn, name)(dim), nd + dim
    elif batch and nd > 1:                       # nInputDims: batch input shifts the dim by one
        dim = 1 + pick // 2 % (nd - 1)
        m, d0 = getattr(nn, name)(dim, nd - 1), dim
    else:
        dim = 1 + pick // 2 % nd
        m, d0 = getattr(nn, name)(dim), dim - 1
    xt = T(x).requires_grad_()
    val, idx = (torch.max if name == 'Max' else torch.min)(xt, d0)
    g = rnd(*val.shape, seed=seed + 1) if val.dim() else P(np.random.default_rng(seed).standard_normal(1))
    val.backward(T(g).reshape(val.shape))
    y = m.forward(x)
    close(y, val.reshape(y.size()) if val.dim() == 0 else val)
    assert y.size() == (tuple(val.shape) if nd > 1 else (1,))
    ind = m.__dict__['_indices']
    assert ind.type() == 'torch.LongTensor'
    close(ind, (idx + 1).unsqueeze(d0).numpy().reshape(ind.size()))      # 1-based, dim kept
    close(m.backward(x, g), xt.grad)


def test_max_fields_print_and_errors():
    m = nn.Max()
    assert (m.dimension, m.nInputDims, str(m)) == (1, None, 'nn.Max')
    assert m.__dict__.get('_output') is None and m.__dict__.get('_indices') is None
    m2 = nn.Min(3)
    with pytest.raises(ValueError, match='nn.Min'):
        m2.forward(rnd(2, 2))
    assert m2.forward(rnd(2, 2, 3)).size() == (2, 2)
    with pytest.raises(ValueError, match='nn.Min'):
        m2.backward(rnd(2, 2, 3), rnd(5))
    assert m2.backward(rnd(2, 2, 3), rnd(2, 2)).size() == (2, 2, 3)
    m2.clearState()
    assert m2.__dict__['_indices'].storage() is None
    m2.float()
    assert m2.__dict__['_indices'] is None
    assert m2.forward(pynn.FloatTensor(2, 3, 4).normal()).numpy().dtype == np.float32
    assert m2.__dict__['_indices'].type() == 'torch.LongTensor'


# --- OneHot ------------------------------------------------------------------------------------------
@HYP
@given(case=shaped(1, 3), n=st.integers(1, 6), long=st.booleans())
def test_onehot_vs_torch(case, n, long):
    shape, seed = case
    idx = np.random.default_rng(seed).integers(1, n + 1, shape)
    x = pynn.from_numpy(idx.astype(np.int64)) if long else P(idx.astype(np.float64))
    m = nn.OneHot(n)
    y = m.forward(x)
    close(y, F.one_hot(torch.from_numpy(idx - 1), n).double())
    assert y.type() == 'torch.DoubleTensor'
    assert (m.__dict__.get('_input') is None) == long                        # non-Long input goes through _input
    gi = m.backward(x, y.clone())
    assert gi.size() == x.size() and gi.type() == 'torch.DoubleTensor' and not gi.numpy().any()


def test_onehot_number_and_errors():
    m = nn.OneHot(4)
    close(m.forward(3), np.array([0, 0, 1, 0.]))
    assert m.__dict__['_single'].type() == 'torch.LongTensor' and m.updateGradInput(3, m.output) == 0
    with pytest.raises(ValueError, match='nn.OneHot'):
        m.forward(pynn.from_numpy(np.array([1, 5])))
    with pytest.raises(ValueError, match='nn.OneHot'):
        m.forward([1, 2])
    assert m.forward(pynn.from_numpy(np.array([4, 1]))).size() == (2, 4)
    m.clearState()
    assert m.__dict__.get('_single') is None and m.__dict__.get('_input') is None


# --- L1Penalty / GradientReversal / ZeroGrad / Constant ----------------------------------------------
@HYP
@given(case=shaped(), w=st.floats(0.01, 3), avg=st.booleans(), provide=st.booleans())
def test_l1penalty_vs_torch(case, w, avg, provide):
    shape, seed = case
    x, g = rnd(*shape, seed=seed), rnd(*shape, seed=seed + 1)
    m = nn.L1Penalty(w, avg, provide)
    xt = T(x).requires_grad_()
    loss = w / (xt.numel() if avg else 1) * xt.abs().sum()
    total = loss + ((xt * T(g)).sum() if provide else 0)
    total.backward()
    assert m.forward(x) is x and m.output is x
    assert abs(m.loss - loss.item()) <= 1e-10 * max(1, abs(loss.item()))
    close(m.backward(x, g), xt.grad)


@HYP
@given(case=shaped(), lam=st.floats(-3, 3))
def test_gradient_reversal_vs_torch(case, lam):
    shape, seed = case
    x, g = rnd(*shape, seed=seed), rnd(*shape, seed=seed + 1)
    m = nn.GradientReversal(lam)
    assert m.forward(x).isSetTo(x)
    close(m.backward(x, g), -lam * T(g))
    m.setLambda(2)
    close(m.backward(x, g), -2 * g.numpy())
    assert getattr(nn.GradientReversal(), 'lambda') == 1


def test_zerograd_and_constant():
    x, g = rnd(3, 4, seed=1), rnd(3, 4, seed=2)
    z = nn.ZeroGrad()
    assert z.forward(x).isSetTo(x)
    gi = z.backward(x, g)
    assert gi.size() == (3, 4) and not gi.numpy().any()
    tab = z.updateGradInput([x, [rnd(2)]], None)                  # Lua's recursiveResizeAs
    assert len(tab) == 2 and tab[0].size() == (3, 4) and tab[1][0].size() == (2,)
    c = nn.Constant(2.5)
    assert c.value.size() == (1,)
    close(c.forward(x), np.array([2.5]))
    v = P(np.array([1., -2, 3]))
    cb = nn.Constant(v, 1)
    close(cb.forward(x), np.tile(v.numpy(), (3, 1)))            # batch: replicated per sample
    close(cb.forward(rnd(4)), v.numpy())
    gi = cb.backward(x, rnd(3, 3))
    assert gi.size() == (3, 4) and not gi.numpy().any()
    with pytest.raises(ValueError, match='nn.Constant'):
        nn.Constant('x')


# --- Kmeans ------------------------------------------------------------------------------------------
@HYP
@given(b=st.integers(1, 12), k=st.integers(1, 5), dim=st.integers(1, 4), seed=st.integers(0, 2 ** 31 - 1),
       scale=st.sampled_from([None, 0.5]))
def test_kmeans_vs_torch(b, k, dim, seed, scale):
    pynn.manualSeed(seed)
    m = nn.Kmeans(k, dim, scale)
    x = rnd(b, dim, seed=seed)
    w = T(m.weight)
    d = torch.cdist(T(x), w) ** 2                                 # b x k squared distances
    best, arg = d.min(1)
    y = m.forward(x)
    close(y, (arg + 1).double())
    assert y.type() == 'torch.DoubleTensor'
    assert abs(m.loss - best.sum().item()) <= 1e-10 * max(1, best.sum().item())
    m.zeroGradParameters()
    gi = m.backward(x, y.clone(), 2.0)
    assert gi.size() == (b, dim) and not gi.numpy().any()
    s = scale or 2.0
    counts = torch.zeros(k, dtype=torch.float64).index_add_(0, arg, torch.ones(b, dtype=torch.float64))
    upd = torch.zeros(k, dim, dtype=torch.float64).index_add_(0, arg, -s * (T(x) - w[arg]))
    close(m.gradWeight, upd / (counts + 1e-7)[:, None])
    close(m.clusterSampleCount, counts)


def test_kmeans_init_methods_and_state():
    pynn.manualSeed(3)
    x = rnd(20, 3, seed=4)
    m = nn.Kmeans(4, 3)
    assert m.weight.size() == (4, 3) and m.gradWeight.size() == (4, 3) and m.loss == 0
    assert (np.abs(m.weight.numpy()) <= 1).all()
    m.initRandom(x)
    rows = {tuple(r) for r in x.numpy()}
    assert all(tuple(r) in rows for r in m.weight.numpy())
    m.initKmeansPlus(x, 0.9)
    assert m.p == 0.9 and all(tuple(r) in rows for r in m.weight.numpy())
    m.forward(x)
    d = m.__dict__
    assert d['_expandedSamples'].size() == (4, 20, 3) and d['_minIndx'].type() == 'torch.LongTensor'
    m.clearState()
    assert '_expandedSamples' not in m.__dict__ and '_minIndx' not in m.__dict__
    with pytest.raises(ValueError, match='nn.Kmeans'):
        m.forward(rnd(5, 2))
    with pytest.raises(ValueError):
        nn.Kmeans(0, 3)
    assert m.forward(x).size() == (20,)


# --- SpatialDropout / WhiteNoise ----------------------------------------------------------------------
@pytest.mark.parametrize('shape', [(3, 5, 4, 4), (40, 2, 3)])
def test_spatial_dropout(shape):
    pynn.manualSeed(1)
    x, g = rnd(*shape, seed=5), rnd(*shape, seed=6)
    m = nn.SpatialDropout(0.3)
    assert str(m) == 'nn.SpatialDropout(0.300000)' and m.train and m.stochastic_inference is False
    y = m.forward(x)
    nsize = (shape[0], shape[1], 1, 1) if len(shape) == 4 else (shape[0], 1, 1)
    assert m.noise.size() == nsize and set(np.unique(m.noise.numpy())) <= {0.0, 1.0}
    close(y, x.numpy() * m.noise.numpy())                         # whole maps dropped, no rescaling
    close(m.backward(x, g), g.numpy() * m.noise.numpy())
    m.evaluate()
    close(m.forward(x), 0.7 * x.numpy())
    with pytest.raises(RuntimeError, match='backprop only defined while training'):
        m.backward(x, g)
    m.training()
    with pytest.raises(ValueError, match='nn.SpatialDropout'):
        m.forward(rnd(3, 4))
    assert m.forward(x).size() == shape


def test_spatial_dropout_rate():
    pynn.manualSeed(2)
    m = nn.SpatialDropout(0.25)
    m.forward(rnd(50, 40, 1, 1))
    assert abs(m.noise.numpy().mean() - 0.75) < 0.05
    m0 = nn.SpatialDropout(0)
    x = rnd(2, 3, 2, 2)
    close(m0.forward(x), x)


def test_white_noise():
    pynn.manualSeed(3)
    x, g = rnd(60, 50, seed=7), rnd(60, 50, seed=8)
    m = nn.WhiteNoise(0.5, 0.2)
    assert str(m) == 'nn.WhiteNoise mean: 0.500000, std: 0.200000'
    y = m.forward(x)
    close(y, x.numpy() + m.noise.numpy())
    n = m.noise.numpy()
    assert abs(n.mean() - 0.5) < 0.02 and abs(n.std() - 0.2) < 0.02
    close(m.backward(x, g), g)
    m.evaluate()
    close(m.forward(x), x.numpy() + 0.5)
    with pytest.raises(RuntimeError, match='backprop only defined while training'):
        m.backward(x, g)
    m.clearState()
    assert m.noise.storage() is None


# --- errors, float32, meta ------------------------------------------------------------------------------
ALL = {
    'Max': (lambda: nn.Max(2), (3, 4), (3,)),
    'Min': (lambda: nn.Min(-1), (3, 4), (3,)),
    'GradientReversal': (lambda: nn.GradientReversal(0.5), (3, 4), (3, 4)),
    'L1Penalty': (lambda: nn.L1Penalty(0.1), (3, 4), (3, 4)),
    'SpatialDropout': (lambda: nn.SpatialDropout(0.2), (2, 3, 2, 2), (2, 3, 2, 2)),
    'WhiteNoise': (lambda: nn.WhiteNoise(), (3, 4), (3, 4)),
    'Kmeans': (lambda: nn.Kmeans(2, 4), (3, 4), (3,)),
}


@pytest.mark.parametrize('name', sorted(ALL))
def test_bad_input_then_usable(name):
    make, shape, oshape = ALL[name]
    m = make()
    bads = [[rnd(*shape)], 3.0, pynn.FloatTensor(*shape)]
    if name in ('SpatialDropout', 'Kmeans'):
        bads += [rnd(2, 2, 2, 2, 2), rnd(4)]
    if name == 'Max':
        bads += [rnd(4)]                          # dimension 2 of a 1-D tensor
    for bad in bads:
        with pytest.raises(ValueError, match=m.__typename__):
            m.forward(bad)
    x = rnd(*shape, seed=9)
    assert m.forward(x).size() == oshape
    assert m.backward(x, rnd(*oshape, seed=10)).size() == shape


@pytest.mark.parametrize('name', sorted(ALL) + ['Constant', 'OneHot', 'ZeroGrad'])
def test_float32(name):
    if name in ALL:
        make, shape, oshape = ALL[name]
    else:
        make, shape, oshape = {'Constant': (lambda: nn.Constant(P(np.array([1., 2])), 1), (3, 4), (3, 2)),
                               'OneHot': (lambda: nn.OneHot(5), (3, 4), (3, 4, 5)),
                               'ZeroGrad': (lambda: nn.ZeroGrad(), (3, 4), (3, 4))}[name]
    pynn.manualSeed(4)
    m = make().float()
    pynn.manualSeed(4)
    md = make()
    for mm in (m, md):
        if isinstance(mm, (nn.SpatialDropout, nn.WhiteNoise)):
            mm.evaluate()
    x = pynn.FloatTensor(*shape).normal() if name != 'OneHot' else pynn.FloatTensor(*shape).fill(2)
    if isinstance(m, nn.Kmeans):
        m.weight.copy(md.weight)
    y, yd = m.forward(x), md.forward(x.double())
    assert y.numpy().dtype == np.float32 and y.size() == oshape
    np.testing.assert_allclose(y.numpy(), yd.numpy(), atol=1e-5, rtol=1e-5)
    if not isinstance(m, (nn.SpatialDropout, nn.WhiteNoise)):
        gi = m.backward(x, pynn.FloatTensor(*oshape).fill(1))
        assert gi.numpy().dtype == np.float32 and gi.size() == shape


META = {**ALL, 'Constant': (lambda: nn.Constant(P(np.array([1., 2])), 1), (3, 4), (3, 2)),
        'ZeroGrad': (lambda: nn.ZeroGrad(), (3, 4), (3, 4)), 'Max1': (lambda: nn.Max(1, 2), (2, 3, 4), (2, 4))}


@pytest.mark.parametrize('name', sorted(META))
def test_meta(name):
    make, shape, oshape = META[name]
    real = make()
    x = rnd(*shape, seed=11)
    y = real.forward(x)
    gi = real.backward(x, rnd(*y.size(), seed=12))
    m = make().type('torch.MetaDoubleTensor')
    my = m.forward(pynn.MetaDoubleTensor(*shape))
    assert my.is_meta() and my.size() == y.size() == oshape
    mgi = m.backward(pynn.MetaDoubleTensor(*shape), pynn.MetaDoubleTensor(*oshape))
    assert mgi.is_meta() and mgi.size() == gi.size()
    for f, t in real.__dict__.items():                            # every buffer sized as on real data
        if isinstance(t, pynn.Tensor) and f not in ('output', 'gradInput'):
            assert isinstance(m.__dict__.get(f), pynn.Tensor) and m.__dict__[f].size() == t.size(), f


def test_onehot_meta():
    m = nn.OneHot(5).type('torch.MetaDoubleTensor')
    y = m.forward(pynn.MetaDoubleTensor(3, 2))
    assert y.is_meta() and y.size() == (3, 2, 5)
