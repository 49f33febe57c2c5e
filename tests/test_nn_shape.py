"""nn.View, Reshape, Narrow, Select, Copy, Identity, Sum, Mean, PairwiseDistance vs PyTorch
(float64, 1e-10), finite differences, storage sharing, Lua's batch rules, errors, meta."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import pynn
from pynn import nn
from _oracle import P, T

RNG = np.random.default_rng(1234)
TOL = 1e-10


def randn(*shape):
    return RNG.standard_normal(shape)


def close(a, b, tol=TOL):
    a = a.numpy() if isinstance(a, pynn.Tensor) else np.asarray(a)
    if isinstance(b, pynn.Tensor):
        b = b.numpy()
    b = b.detach().numpy() if isinstance(b, torch.Tensor) else np.asarray(b)
    assert a.shape == b.shape, (a.shape, b.shape)
    np.testing.assert_allclose(a, b, rtol=tol, atol=tol)


def jacobian_check(m, x, eps=1e-6, tol=1e-6):
    """Finite differences of sum(output * R) w.r.t. the input vs backward(x, R)."""
    out = m.forward(x)
    R = P(randn(*out.size()))
    gi = m.backward(x, R).numpy().copy()
    xa = x.numpy()
    num = np.zeros_like(xa)
    for idx in np.ndindex(*xa.shape):
        old = xa[idx]
        xa[idx] = old + eps
        fp = float((m.forward(x).numpy() * R.numpy()).sum())
        xa[idx] = old - eps
        fm = float((m.forward(x).numpy() * R.numpy()).sum())
        xa[idx] = old
        num[idx] = (fp - fm) / (2 * eps)
    np.testing.assert_allclose(gi, num, rtol=tol, atol=tol)


# --------------------------------------------------------------------------- View
def test_view_lua_cases():
    x = P(randn(10))
    assert nn.View(5, 2).forward(x).size() == (5, 2)
    assert nn.View((5, 2)).forward(x).size() == (5, 2)
    assert nn.View(pynn.LongStorage([5, 2])).forward(x).size() == (5, 2)
    mb = P(randn(5, 10))
    m = nn.View(5, 2)
    assert m.forward(mb).size() == (5, 5, 2)
    assert nn.View(-1).setNumInputDims(1).forward(mb).size() == (5, 10)
    assert nn.View(-1).setNumInputDims(2).forward(P(randn(5, 4, 10))).size() == (5, 40)
    assert nn.View(4, -1).setNumInputDims(2).forward(P(randn(2, 5, 4, 10))).size() == (10, 4, 10)
    assert nn.View(6).forward(P(randn(5, 2, 6))).size() == (10, 6)
    # -1 without numInputDims: no batch dim is added
    assert nn.View(-1, 2).forward(P(randn(3, 4))).size() == (6, 2)
    # numInputDims equal to the input's dims: no batch even for bsz 1
    assert nn.View(2, 3).setNumInputDims(2).forward(P(randn(3, 2))).size() == (2, 3)
    # a batch of one with numInputDims set keeps the batch dim
    assert nn.View(6).setNumInputDims(2).forward(P(randn(1, 2, 3))).size() == (1, 6)


def test_view_matches_torch_and_shares_storage():
    xa = randn(4, 3, 6)
    x = P(xa)
    m = nn.View(3, 2, 3)
    out0 = m.output
    y = m.forward(x)
    assert y is out0  # the same output object, re-pointed at the input's storage
    assert y.storage() is x.storage()
    close(y, torch.from_numpy(xa).view(4, 3, 2, 3))
    x.numpy()[0, 0, 0] = 42.0
    assert y.numpy()[0, 0, 0, 0] == 42.0
    go = P(randn(4, 3, 2, 3))
    gi = m.backward(x, go)
    assert gi.size() == (4, 3, 6) and gi.storage() is go.storage()
    close(gi, T(go).view(4, 3, 6))
    assert str(m) == 'nn.View(3, 2, 3)'
    assert str(nn.View(-1, 4)) == 'nn.View(-1, 4)'
    assert m.numElements == 18 and m.numInputDims is None
    assert m.size.tolist() == [3, 2, 3]


def test_view_errors_and_recovery():
    m = nn.View(3, 3)
    with pytest.raises(ValueError, match=r'nn\.View\(3, 3\).*do not match'):
        m.forward(P(randn(2, 5)))
    with pytest.raises(ValueError, match=r'nn\.View\(3, 3\).*contiguous'):
        m.forward(P(randn(9, 2)).transpose(1, 2))
    with pytest.raises(ValueError, match='nn.View'):
        nn.View(3).setNumInputDims(3).forward(P(randn(3)))
    with pytest.raises(ValueError):
        nn.View(-1, -1)
    with pytest.raises(ValueError):
        nn.View(2, -2)
    assert m.forward(P(randn(2, 9))).size() == (2, 3, 3)


def test_view_in_sequential_error_path():
    s = nn.Sequential(nn.Identity(), nn.View(3, 3))
    with pytest.raises(ValueError, match=r'^In 2nd module of nn\.Sequential: nn\.View\(3, 3\)'):
        s.forward(P(randn(7)))
    assert s.forward(P(randn(9))).size() == (3, 3)


# --------------------------------------------------------------------------- Reshape
def test_reshape_batch_rules_and_torch():
    xa = randn(10)
    m = nn.Reshape(5, 2)
    y = m.forward(P(xa))
    assert y.size() == (5, 2)
    close(y, torch.from_numpy(xa).reshape(5, 2))
    mb = randn(5, 10)
    y = m.forward(P(mb))
    assert y.size() == (5, 5, 2)
    close(y, torch.from_numpy(mb).reshape(5, 5, 2))
    # a first size of 1 means a batch of one
    assert m.forward(P(randn(1, 10))).size() == (1, 5, 2)
    # batchMode false: never a batch dim; true: always
    assert nn.Reshape(1, 10, False).forward(P(randn(1, 10))).size() == (1, 10)
    mt = nn.Reshape(5, 2, True)
    assert mt.forward(P(randn(1, 10))).size() == (1, 5, 2)
    assert mt.batchMode is True and mt.batchsize.tolist() == [1, 5, 2]
    assert str(m) == 'nn.Reshape(5x2)'
    assert m.nelement == 10 and m.size.tolist() == [5, 2]
    with pytest.raises(ValueError, match=r'nn\.Reshape\(5x2\)'):
        mt.forward(P(randn(10)))
    assert mt.forward(P(randn(3, 10))).size() == (3, 5, 2)


def test_reshape_shares_or_copies_like_lua():
    m = nn.Reshape(6)
    x = P(randn(4, 2, 3))
    y = m.forward(x)
    assert y.storage() is x.storage()
    assert m.__dict__.get('_input') is None
    go = P(randn(4, 6))
    gi = m.backward(x, go)
    assert gi.storage() is go.storage() and gi.size() == (4, 2, 3)
    # non-contiguous input: copied into _input, output views _input
    xt = P(randn(3, 2, 4)).transpose(1, 3)
    y = m.forward(xt)
    assert m._input.storage() is y.storage() and y.storage() is not xt.storage()
    close(y, T(xt).reshape(4, 6))
    got = P(randn(6, 4)).t()
    gi = m.backward(xt, got)
    assert m._gradOutput.storage() is gi.storage()
    close(gi, T(got).reshape(4, 2, 3))
    m.clearState()
    assert m._input.storage() is None and m._gradOutput.storage() is None


# --------------------------------------------------------------------------- Narrow
@pytest.mark.parametrize('shape,args,ref', [
    ((9, 4, 14), (1, 3, 5), (0, 2, 5)),
    ((9, 4, 14), (1, 3, -3), (0, 2, 5)),
    ((3, 10, 4), (2, 5, 3), (1, 4, 3)),
    ((3, 10, 4), (2, 5, -4), (1, 4, 3)),
    ((6, 11, 7), (3, 1, 1), (2, 0, 1)),
    ((6, 11, 7), (3, 1, -7), (2, 0, 1)),
    ((3, 10, 4), (-2, 5, 3), (1, 4, 3)),
    ((3, 10, 4), (-2, 5, -4), (1, 4, 3)),
    ((3, 10, 4), (2, -1, 7), (1, 0, 3)),   # Lua 2017: negative offset -> start 1, length size - length
    ((3, 10, 4), (2, 2, -1), (1, 1, 9)),
    ((4, 5), (2, 1), (1, 0, 1)),           # default length 1
])
def test_narrow_vs_torch(shape, args, ref):
    xa = randn(*shape)
    m = nn.Narrow(*args)
    y = m.forward(P(xa))
    d, start, length = ref
    xt = torch.from_numpy(xa).requires_grad_()
    yt = xt.narrow(d, start, length)
    close(y, yt)
    go = randn(*yt.shape)
    gi = m.backward(P(xa), P(go))
    yt.backward(torch.from_numpy(go))
    close(gi, xt.grad)
    assert y.storage() is not None and y.storage() is not P(xa).storage()


def test_narrow_jacobian_errors_and_fields():
    m = nn.Narrow(2, 2, 3)
    assert (m.dimension, m.index, m.length) == (2, 2, 3)
    assert str(m) == 'nn.Narrow'
    jacobian_check(m, P(randn(3, 6)))
    with pytest.raises(ValueError, match='nn.Narrow'):
        m.forward(P(randn(3, 3)))
    with pytest.raises(ValueError, match='nn.Narrow'):
        nn.Narrow(4, 1, 1).forward(P(randn(3, 3)))
    with pytest.raises(TypeError):
        nn.Narrow(1)
    assert m.forward(P(randn(2, 5))).size() == (2, 3)
    # typeAs: a float input gives a float output
    assert m.forward(P(randn(2, 5).astype(np.float32))).type() == 'torch.FloatTensor'


# --------------------------------------------------------------------------- Select
@pytest.mark.parametrize('shape,dim,index', [((3, 4, 5), 1, 2), ((3, 4, 5), 2, -1), ((3, 4, 5), -1, 5),
                                             ((3, 4, 5), 3, -5), ((2, 7), 2, 4)])
def test_select_vs_torch(shape, dim, index):
    xa = randn(*shape)
    m = nn.Select(dim, index)
    y = m.forward(P(xa))
    d = dim - 1 if dim > 0 else len(shape) + dim
    i = index - 1 if index > 0 else shape[d] + index
    xt = torch.from_numpy(xa).requires_grad_()
    yt = xt.select(d, i)
    close(y, yt)
    go = randn(*yt.shape)
    gi = m.backward(P(xa), P(go))
    yt.backward(torch.from_numpy(go))
    close(gi, xt.grad)


def test_select_errors_and_jacobian():
    m = nn.Select(2, 3)
    jacobian_check(m, P(randn(2, 4)))
    with pytest.raises(ValueError, match='nn.Select'):
        m.forward(P(randn(2, 2)))
    with pytest.raises(ValueError, match='nn.Select'):
        m.forward(P(randn(5)))
    assert m.forward(P(randn(2, 3))).size() == (2,)


# --------------------------------------------------------------------------- Copy / Identity
def test_copy_types_and_sharing():
    m = nn.Copy('torch.DoubleTensor', 'torch.FloatTensor')
    x = P(randn(3, 4))
    y = m.forward(x)
    assert y.type() == 'torch.FloatTensor' and y is m.output
    close(y, T(x).float(), 1e-6)
    go = P(randn(3, 4).astype(np.float32))
    gi = m.backward(x, go)
    assert gi.type() == 'torch.DoubleTensor'
    close(gi, T(go).double())
    # dontCast: type() leaves it alone
    d = nn.Copy('torch.DoubleTensor', 'torch.FloatTensor', False, True)
    assert d.float() is d and d.gradInput.type() == 'torch.DoubleTensor'
    # same types and no forceCopy: output/gradInput share the input/gradOutput
    s = nn.Copy()
    y = s.forward(x)
    assert y.storage() is x.storage()
    assert s.backward(x, x).storage() is x.storage()
    f = nn.Copy(None, None, True)
    y = f.forward(x)
    assert y.storage() is not x.storage()
    close(y, T(x))
    with pytest.raises(ValueError, match='nn.Copy'):
        m.forward([x])


def test_identity():
    m = nn.Identity()
    x = P(randn(2, 3))
    assert m.forward(x) is x and m.output is x
    g = P(randn(2, 3))
    assert m.backward(x, g) is g and m.gradInput is g
    tbl = [x, [g]]
    assert m.forward(tbl) is tbl
    m.clearState()
    assert isinstance(m.output, list) and m.output == [] and m.gradInput is not g
    assert x.storage() is not None  # clearState must not touch the input's tensors
    m.forward(x)
    m.clearState()
    assert m.output is not x and x.nElement() == 6


# --------------------------------------------------------------------------- Sum / Mean
@pytest.mark.parametrize('shape,args,tdim,mean,keep', [
    ((3, 4, 5), (1,), 0, False, False),
    ((3, 4, 5), (2,), 1, False, False),
    ((3, 4, 5), (-1,), 2, False, False),
    ((3, 4, 5), (2, 2), 2, False, False),        # nInputDims=2, batch input -> dim + 1
    ((4, 5), (2, 2), 1, False, False),           # nInputDims=2, non-batch input
    ((3, 4, 5), (2, None, True), 1, True, False),
    ((3, 4, 5), (3, None, False, False), 2, False, True),
    ((6,), (1,), 0, False, True),                # 1-D result is never squeezed
])
def test_sum_vs_torch(shape, args, tdim, mean, keep):
    xa = randn(*shape)
    m = nn.Sum(*args)
    y = m.forward(P(xa))
    xt = torch.from_numpy(xa).requires_grad_()
    yt = (xt.mean if mean else xt.sum)(tdim, keepdim=keep)
    if yt.dim() == 0:
        yt = yt.reshape(1)
    close(y, yt)
    go = randn(*yt.shape)
    gi = m.backward(P(xa), P(go))
    yt.backward(torch.from_numpy(go))
    close(gi, xt.grad)


def test_mean_module_and_jacobian():
    m = nn.Mean(2)
    assert m.sizeAverage is True and m.dimension == 2 and m.squeeze is True
    assert str(m) == 'nn.Mean' and str(nn.Sum()) == 'nn.Sum'
    xa = randn(3, 5)
    close(m.forward(P(xa)), torch.from_numpy(xa).mean(1))
    m2 = nn.Mean(1, 1)
    close(m2.forward(P(xa)), torch.from_numpy(xa).mean(1))
    jacobian_check(nn.Sum(2), P(randn(3, 4, 2)))
    jacobian_check(nn.Mean(-1), P(randn(3, 4)))


def test_sum_noncontiguous_gradoutput_and_errors():
    m = nn.Sum(3)
    x = P(randn(2, 3, 4))
    m.forward(x)
    go = P(randn(3, 2)).t()
    gi = m.backward(x, go)
    assert m._gradOutput.size() == (2, 3)
    close(gi, T(go).unsqueeze(2).expand(2, 3, 4))
    with pytest.raises(ValueError, match='nn.Sum'):
        nn.Sum(4).forward(x)
    with pytest.raises(ValueError, match='nn.Sum'):
        m.backward(x, P(randn(5)))
    m.clearState()
    assert m._gradOutput.storage() is None
    assert m.forward(x).size() == (2, 3)
    with pytest.raises(TypeError):
        nn.Sum(1, None, False, 1)


def test_sum_output_storage_is_reused():
    m = nn.Sum(2)
    x = P(randn(4, 5))
    y = m.forward(x)
    st = y.storage()
    assert st.size() == 4
    m.forward(P(randn(4, 5)))
    assert m.output.storage() is st and st.size() == 4


# --------------------------------------------------------------------------- PairwiseDistance
def lua_pd_grad(a, b, go, p):
    """Lua's PairwiseDistance gradient formula (1e-6 added to the norm; |d|^(p-2) only for p > 2)."""
    d = a - b
    if a.ndim == 1:
        nrm = (np.abs(d) ** p).sum() ** (1 / p)
    else:
        nrm = ((np.abs(d) ** p).sum(1) ** (1 / p))[:, None]
    if p == 1:
        g = np.sign(d)
    else:
        g = d * (np.abs(d) ** (p - 2) if p > 2 else 1)
        g = g * (nrm + 1e-6) ** (-(p - 1))
    g = g * (go[0] if a.ndim == 1 else go[:, None])
    return g, -g


@pytest.mark.parametrize('p', [1, 2, 3, 1.5])
@pytest.mark.parametrize('shape', [(7,), (5, 4)])
def test_pairwise_distance_vs_torch(p, shape):
    a, b = randn(*shape), randn(*shape)
    m = nn.PairwiseDistance(p)
    y = m.forward([P(a), P(b)])
    at, bt = torch.from_numpy(a).requires_grad_(), torch.from_numpy(b).requires_grad_()
    yt = F.pairwise_distance(at, bt, p=p, eps=0)
    if yt.dim() == 0:
        yt = yt.reshape(1)
    close(y, yt)
    go = randn(*yt.shape)
    gi = m.backward([P(a), P(b)], P(go))
    ga, gb = lua_pd_grad(a, b, go, p)
    close(gi[0], ga)
    close(gi[1], gb)
    if p != 1.5:  # Lua skips |d|^(p-2) for 1 < p < 2, so only there it is not the true gradient
        yt.backward(torch.from_numpy(go))
        np.testing.assert_allclose(gi[0].numpy(), at.grad.numpy(), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(gi[1].numpy(), bt.grad.numpy(), rtol=1e-4, atol=1e-5)


def test_pairwise_distance_buffers_and_errors():
    m = nn.PairwiseDistance()
    assert m.norm == 2 and m.gradInput == [] and m.diff.storage() is None
    a, b = P(randn(5, 3)), P(randn(5, 3))
    m.forward([a, b])
    assert m.diff.size() == (5, 3)
    m.backward([a, b], P(randn(5)))
    assert m.outExpand.size() == (5, 1) and m.grad.size() == (5, 3) and m.ones.size() == (3,)
    with pytest.raises(ValueError, match='nn.PairwiseDistance'):
        m.forward([P(randn(2, 3, 4)), P(randn(2, 3, 4))])
    with pytest.raises(ValueError, match='nn.PairwiseDistance'):
        m.forward([a, P(randn(5, 2))])
    with pytest.raises(ValueError, match='nn.PairwiseDistance'):
        m.forward(a)
    assert m.forward([a, b]).size() == (5,)
    m.clearState()
    assert m.diff.storage() is None and m.gradInput == []
    # p=1 with equal entries: a random +-1 sign, as Lua's mathsign
    m1 = nn.PairwiseDistance(1)
    x = P(randn(4, 3))
    m1.forward([x, x])
    g = m1.backward([x, x], P(np.ones(4)))
    assert set(np.unique(g[0].numpy())) <= {-1.0, 1.0}


def test_pairwise_distance_jacobian():
    m = nn.PairwiseDistance(3)
    a, b = P(randn(3, 4)), P(randn(3, 4))
    out = m.forward([a, b])
    R = randn(*out.size())
    gi = m.backward([a, b], P(R))
    for k, x in enumerate((a, b)):
        xa = x.numpy()
        num = np.zeros_like(xa)
        for idx in np.ndindex(*xa.shape):
            old = xa[idx]
            xa[idx] = old + 1e-6
            fp = (m.forward([a, b]).numpy() * R).sum()
            xa[idx] = old - 1e-6
            fm = (m.forward([a, b]).numpy() * R).sum()
            xa[idx] = old
            num[idx] = (fp - fm) / 2e-6
        np.testing.assert_allclose(gi[k].numpy(), num, rtol=1e-4, atol=1e-5)


# --------------------------------------------------------------------------- float32, meta, memory
def test_float32():
    xa = randn(4, 6).astype(np.float32)
    for m, ref in [(nn.View(2, 3), lambda t: t.view(4, 2, 3)), (nn.Narrow(2, 2, 3), lambda t: t[:, 1:4]),
                   (nn.Select(2, 1), lambda t: t[:, 0]), (nn.Sum(2), lambda t: t.sum(1)),
                   (nn.Mean(1), lambda t: t.mean(0)), (nn.Reshape(3, 2), lambda t: t.reshape(4, 3, 2))]:
        m.float()
        y = m.forward(P(xa))
        assert y.type() == 'torch.FloatTensor'
        close(y, ref(torch.from_numpy(xa)), 1e-5)
        gi = m.backward(P(xa), P(np.ones(y.size(), dtype=np.float32)))
        assert gi.type() == 'torch.FloatTensor' and gi.size() == (4, 6)


def test_wrong_type_input_is_a_clear_error():
    m = nn.View(6)
    with pytest.raises(ValueError, match='nn.View'):
        m.forward(P(randn(2, 6).astype(np.float32)))
    assert m.forward(P(randn(2, 6))).size() == (2, 6)


@pytest.mark.parametrize('make,shape', [
    (lambda: nn.View(-1).setNumInputDims(3), (2, 3, 8, 8)),
    (lambda: nn.Reshape(3 * 64), (2, 3, 8, 8)),
    (lambda: nn.Narrow(2, 2, 2), (2, 3, 8, 8)),
    (lambda: nn.Select(2, 1), (2, 3, 8, 8)),
    (lambda: nn.Sum(2), (2, 3, 8, 8)),
    (lambda: nn.Mean(3, 3), (2, 3, 8, 8)),
])
def test_meta_same_sizes(make, shape):
    real, meta = make(), make().type('torch.MetaDoubleTensor')
    x = pynn.randn(*shape)
    real.forward(x)
    real.backward(x, pynn.randn(*real.output.size()))
    xm = pynn.MetaDoubleTensor(*shape)
    meta.forward(xm)
    assert meta.output.is_meta() and meta.output.size() == real.output.size()
    meta.backward(xm, pynn.MetaDoubleTensor(*real.output.size()))
    assert meta.gradInput.size() == real.gradInput.size()


def test_meta_pairwise_distance():
    m = nn.PairwiseDistance(2).type('torch.MetaDoubleTensor')
    a, b = pynn.MetaDoubleTensor(5, 3), pynn.MetaDoubleTensor(5, 3)
    assert m.forward([a, b]).size() == (5,)
    gi = m.backward([a, b], pynn.MetaDoubleTensor(5))
    assert gi[0].size() == (5, 3) and gi[1].size() == (5, 3)
    assert m.outExpand.size() == (5, 1) and m.grad.size() == (5, 3)


def test_no_hidden_temporaries():
    import tracemalloc
    x = P(randn(64, 128))
    go = P(randn(64, 64))
    for m, g in [(nn.Narrow(2, 10, 64), go), (nn.Sum(2), P(randn(64))), (nn.Select(1, 3), P(randn(128)))]:
        m.forward(x)
        m.backward(x, g)
        tracemalloc.start()
        m.forward(x)
        m.backward(x, g)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        own = m.output.storage().nbytes() + m.gradInput.storage().nbytes()
        assert peak <= 0.1 * own + 4096, (m, peak, own)


# =========================================================================== the rest of the family
# Contiguous Squeeze Unsqueeze Replicate Transpose Padding Collapse Convert
# SpatialReflectionPadding SpatialReplicationPadding SpatialUpSamplingNearest
# SpatialUpSamplingBilinear UpSampling PixelShuffle: PyTorch on random shapes (hypothesis),
# THNN's bilinear kernel (float32 weights) transcribed as loops, finite differences, views,
# float32, meta, bad inputs, printing.
from hypothesis import given, settings, strategies as st  # noqa: E402

HYP = settings(max_examples=15, deadline=None)
small = st.integers(1, 4)


def vs_torch(m, a, fn, tol=TOL):
    """forward and backward of m on array a against fn with torch autograd."""
    x = P(a)
    y = m.forward(x)
    t = torch.from_numpy(a.copy()).requires_grad_()
    yt = fn(t)
    close(y, yt, tol)
    go = randn(*yt.shape)
    gi = m.backward(x, P(go))
    yt.backward(torch.from_numpy(go))
    close(gi, t.grad, tol)
    return x, y, gi


def test_contiguous_shares_or_copies():
    m = nn.Contiguous()
    x = P(randn(3, 4))
    assert m.forward(x).isSetTo(x)
    xt = x.transpose(1, 2)
    y = m.forward(xt)
    assert y.isContiguous() and y.storage() is not x.storage()
    close(y, x.numpy().T)
    g = P(randn(3, 4)).transpose(1, 2)
    gi = m.backward(xt, g)
    assert gi.isContiguous()
    close(gi, g.numpy())


@HYP
@given(st.lists(st.integers(1, 3), min_size=1, max_size=4), st.data())
def test_squeeze_unsqueeze_vs_torch(shape, data):
    a = randn(*shape)
    x, y, _ = vs_torch(nn.Squeeze(), a, lambda t: t.squeeze() if t.numel() > 1 else t.reshape(1))
    assert y.storage() is x.storage()
    d = data.draw(st.integers(1, len(shape)))
    vs_torch(nn.Squeeze(d), a, lambda t: t.squeeze(d - 1) if len(shape) > 1 else t)
    p = data.draw(st.integers(1, len(shape) + 1))
    x, y, _ = vs_torch(nn.Unsqueeze(p), a, lambda t: t.unsqueeze(p - 1))
    assert y.storage() is x.storage()


def test_squeeze_unsqueeze_batch_rules():
    # numInputDims: a batch of one keeps its batch dim; dim shifts by one in batch mode
    assert nn.Squeeze(None, 2).forward(P(randn(1, 1, 3))).size() == (1, 3)
    assert nn.Squeeze(1, 2).forward(P(randn(4, 1, 3))).size() == (4, 3)
    assert nn.Squeeze(1, 2).forward(P(randn(1, 3))).size() == (3,)
    m = nn.Unsqueeze(2)
    assert m.forward(P(randn(3, 4))).size() == (3, 1, 4)
    assert m.numInputDims == 2                       # Lua keeps the first input's dim
    assert m.forward(P(randn(5, 3, 4))).size() == (5, 3, 1, 4)
    assert str(m) == 'nn.Unsqueeze(dim 2)'
    with pytest.raises(ValueError, match=r'nn\.Unsqueeze\(dim 2\): expected a tensor with at least 2'):
        m.forward(P(randn(3)))
    assert m.forward(P(randn(3, 4))).size() == (3, 1, 4)


@HYP
@given(st.lists(small, min_size=1, max_size=3), st.integers(1, 3), st.data())
def test_replicate_vs_torch(shape, nf, data):
    d = data.draw(st.integers(1, len(shape) + 1))
    a = randn(*shape)
    x, y, _ = vs_torch(nn.Replicate(nf, d), a, lambda t: t.unsqueeze(d - 1).expand(
        *(shape[:d - 1] + [nf] + shape[d - 1:])))
    assert y.storage() is x.storage() and y.stride(d) == 0


def test_replicate_ndim_batch():
    y = nn.Replicate(3, 1, 1).forward(P(randn(2, 4)))      # input has more than ndim dims
    assert y.size() == (2, 3, 4)


@HYP
@given(st.lists(small, min_size=2, max_size=4), st.data())
def test_transpose_vs_torch(shape, data):
    n = len(shape)
    perms = data.draw(st.lists(st.tuples(st.integers(1, n), st.integers(1, n)), min_size=1, max_size=3))

    def fn(t):
        for a, b in perms:
            t = t.transpose(a - 1, b - 1)
        return t
    x, y, _ = vs_torch(nn.Transpose(*[list(p) for p in perms]), randn(*shape), fn)
    assert y.isContiguous()


def test_transpose_num_input_dims():
    m = nn.Transpose([1, 2]).setNumInputDims(2)
    assert m.forward(P(randn(5, 3, 4))).size() == (5, 4, 3)
    assert m.forward(P(randn(3, 4))).size() == (4, 3)


@HYP
@given(st.lists(small, min_size=1, max_size=3), st.data())
def test_padding_vs_torch(shape, data):
    n = len(shape)
    d = data.draw(st.integers(1, n))
    pad = data.draw(st.integers(-3, 3).filter(bool))
    value = data.draw(st.sampled_from([0, 0.5, -2.0]))
    size = shape[d - 1]
    index = data.draw(st.integers(1, size + 1))
    # Lua: pad > 0 puts the padding `index - 1` entries from the end; pad < 0, index - 1 from the start
    cut = size - (index - 1) if pad > 0 else index - 1

    def fn(t):
        a, b = t.narrow(d - 1, 0, cut), t.narrow(d - 1, cut, size - cut)
        fill = torch.full(shape[:d - 1] + [abs(pad)] + shape[d:], float(value), dtype=t.dtype)
        return torch.cat([a, fill, b], d - 1)
    vs_torch(nn.Padding(d, pad, None, value, index), randn(*shape), fn)


def test_padding_ninputdim_and_fields():
    m = nn.Padding(1, -2, 1, 0.5)
    y = m.forward(P(randn(3, 4)))                       # 2D input, nInputDim 1: dim 2
    assert y.size() == (3, 6) and m.outputSize.tolist() == [3, 6]
    close(y.narrow(2, 1, 2), np.full((3, 2), 0.5))
    assert m.forward(P(randn(4))).size() == (6,)


def test_collapse_and_views():
    m = nn.Collapse(2)
    x = P(randn(3, 2, 4))
    y = m.forward(x)
    assert y.size() == (3, 8) and y.storage() is x.storage()
    assert m.forward(P(randn(2, 4))).size() == (8,)
    xt = P(randn(4, 2, 3)).transpose(1, 3)
    close(m.forward(xt), xt.numpy().reshape(3, 8))
    gi = m.backward(xt, P(randn(3, 8)))
    assert gi.size() == (3, 2, 4)


@pytest.mark.parametrize('ins,outs,shape,fn', [
    ('bchw', 'bf', (2, 3, 2, 2), lambda t: t.reshape(2, -1)),
    ('chw', 'f', (3, 2, 2), lambda t: t.reshape(-1)),
    ('bchw', 'bhwc', (2, 3, 2, 4), lambda t: t.permute(0, 2, 3, 1)),
    ('chw', 'hwc', (3, 2, 4), lambda t: t.permute(1, 2, 0)),
    ('hwcb', 'bchw', (2, 4, 3, 5), lambda t: t.permute(3, 2, 0, 1)),
    ('fb', 'bf', (3, 5), lambda t: t.t()),
    ('bf', 'b', (4, 1), lambda t: t[:, 0]),
    ('b', 'bt', (4,), lambda t: t.reshape(4, 1)),
    (None, None, (2, 3), lambda t: t),
])
def test_convert_vs_torch(ins, outs, shape, fn):
    m = nn.Convert(ins, outs)
    vs_torch(m, randn(*shape), fn)
    assert m.modules[0] is m.converter and str(m) == 'nn.Convert'


def test_convert_type_and_errors():
    m = nn.Convert('bchw', 'bf')
    x32 = P(randn(2, 3, 2, 2).astype(np.float32))
    y = m.forward(x32)                                # another type is copied to the module's
    assert y.type() == 'torch.DoubleTensor'
    gi = m.backward(x32, P(randn(2, 12)))
    assert gi.type() == 'torch.DoubleTensor' and gi.size() == (2, 3, 2, 2)
    with pytest.raises(ValueError, match=r'nn\.Convert: expected a 4D \(bchw\) or 3D tensor'):
        nn.Convert('bchw', 'bf').forward(P(randn(2, 3)))
    with pytest.raises(ValueError):
        nn.Convert(None, 'bf')
    with pytest.raises(ValueError, match='Unrecognized conversion'):
        nn.Convert('bchw', 'bhc').forward(P(randn(2, 3, 2, 2)))


# --------------------------------------------------------------------------- spatial
pads = st.integers(0, 2)


@HYP
@given(st.integers(1, 2), st.integers(1, 3), st.integers(3, 5), st.integers(3, 5),
       pads, pads, pads, pads, st.booleans(), st.booleans())
def test_spatial_reflection_replication_vs_torch(b, c, h, w, l, r, t, bo, batch, reflect):
    shape = (b, c, h, w) if batch else (c, h, w)
    m = (nn.SpatialReflectionPadding if reflect else nn.SpatialReplicationPadding)(l, r, t, bo)
    mode = 'reflect' if reflect else 'replicate'
    vs_torch(m, randn(*shape), lambda x: F.pad(x, (l, r, t, bo), mode=mode))


def test_spatial_padding_negative_crops_and_printing():
    a = randn(2, 5, 6)
    for cls in (nn.SpatialReflectionPadding, nn.SpatialReplicationPadding):
        m = cls(-1, 2, 1, -2)
        y = m.forward(P(a))
        want = F.pad(torch.from_numpy(a[:, :, 1:]), (0, 2, 1, 0),
                     mode='reflect' if cls is nn.SpatialReflectionPadding else 'replicate')[:, :4]
        close(y, want)
        jacobian_check(m, P(randn(1, 3, 4)))
    assert str(nn.SpatialReflectionPadding(1, 1, 2, 0)) == 'nn.SpatialReflectionPadding(l=1, r=1, t=2, b=0)'
    assert str(nn.SpatialReplicationPadding(3)) == 'nn.SpatialReplicationPadding(l=3, r=3, t=3, b=3)'


def thnn_bilinear(x, oh, ow):
    """SpatialUpSamplingBilinear_updateOutput transcribed (loops, float32 positions)."""
    c, ih, iw = x.shape
    out = np.zeros((c, oh, ow))
    f32 = np.float32
    rh = f32(ih - 1) / f32(oh - 1) if oh > 1 else f32(0)
    rw = f32(iw - 1) / f32(ow - 1) if ow > 1 else f32(0)
    for h2 in range(oh):
        h1r = f32(rh * f32(h2))
        h1 = int(h1r)
        h1p = 1 if h1 < ih - 1 else 0
        l1 = float(h1r - f32(h1))
        l0 = 1.0 - l1
        for w2 in range(ow):
            w1r = f32(rw * f32(w2))
            w1 = int(w1r)
            w1p = 1 if w1 < iw - 1 else 0
            m1 = float(w1r - f32(w1))
            m0 = 1.0 - m1
            out[:, h2, w2] = l0 * (m0 * x[:, h1, w1] + m1 * x[:, h1, w1 + w1p]) + \
                l1 * (m0 * x[:, h1 + h1p, w1] + m1 * x[:, h1 + h1p, w1 + w1p])
    return out


@HYP
@given(st.integers(1, 2), st.integers(1, 4), st.integers(1, 4), st.integers(1, 3))
def test_bilinear_vs_thnn_kernel_and_torch(c, h, w, s):
    a = randn(c, h, w)
    m = nn.SpatialUpSamplingBilinear(s)
    close(m.forward(P(a)), thnn_bilinear(a, h * s, w * s), 1e-12)
    # PyTorch computes the positions in double, THNN in float32: equal to about 1e-7
    vs_torch(nn.SpatialUpSamplingBilinear(s), a[None], lambda t: F.interpolate(
        t, scale_factor=s, mode='bilinear', align_corners=True), tol=1e-6)


def test_bilinear_sizes_table_3d_and_jacobian():
    m = nn.SpatialUpSamplingBilinear({'oheight': 5, 'owidth': 7})
    a = randn(2, 3, 4)
    y = m.forward(P(a))
    assert y.size() == (2, 5, 7) and str(m) == 'nn.SpatialUpSamplingBilinear(5, 7)'
    close(y, thnn_bilinear(a, 5, 7), 1e-12)
    jacobian_check(m, P(randn(1, 3, 4)))
    assert m.forward(P(randn(1, 2, 3, 4))).size() == (1, 2, 5, 7)


@HYP
@given(st.integers(1, 2), st.integers(1, 3), st.integers(1, 4), st.integers(1, 4), st.integers(2, 3),
       st.booleans())
def test_nearest_vs_torch(b, c, h, w, s, batch):
    shape = (b, c, h, w) if batch else (c, h, w)
    fn = lambda t: F.interpolate(t if batch else t[None], scale_factor=s, mode='nearest')[  # noqa: E731
        slice(None) if batch else 0]
    vs_torch(nn.SpatialUpSamplingNearest(s), randn(*shape), fn)
    if batch:
        vs_torch(nn.UpSampling(s), randn(*shape), fn)


@HYP
@given(st.integers(1, 2), st.integers(1, 3), st.integers(1, 3), st.integers(1, 3), st.integers(2, 3))
def test_upsampling_volumetric_vs_torch(c, d, h, w, s):
    a = randn(1, c, d, h, w)
    vs_torch(nn.UpSampling(s), a, lambda t: F.interpolate(t, scale_factor=s, mode='nearest'))
    vs_torch(nn.UpSampling(s, 'trilinear'), a, lambda t: F.interpolate(
        t, scale_factor=s, mode='trilinear', align_corners=True), tol=1e-6)
    m = nn.UpSampling({'odepth': 2, 'oheight': 3, 'owidth': 5}, 'linear')
    vs_torch(m, a, lambda t: F.interpolate(t, size=(2, 3, 5), mode='trilinear', align_corners=True),
             tol=1e-6)


def test_upsampling_linear_4d_matches_bilinear_and_printing():
    a = randn(1, 2, 3, 4)
    close(nn.UpSampling(3, 'bilinear').forward(P(a)), nn.SpatialUpSamplingBilinear(3).forward(P(a)), 0)
    assert str(nn.UpSampling(2)) == 'nn.UpSampling(2x, nearest)'
    assert str(nn.UpSampling({'oheight': 3, 'owidth': 4}, 'linear')) == 'nn.UpSampling(3x4, linear)'
    with pytest.raises(ValueError):
        nn.UpSampling({'oheight': 3, 'owidth': 4})
    with pytest.raises(ValueError):
        nn.UpSampling(1.5)


@HYP
@given(st.integers(1, 2), st.integers(1, 2), st.integers(1, 3), st.integers(1, 3), st.integers(1, 3),
       st.booleans())
def test_pixel_shuffle_vs_torch(b, c, h, w, r, batch):
    shape = (b, c * r * r, h, w) if batch else (c * r * r, h, w)
    m = nn.PixelShuffle(r)
    x, y, gi = vs_torch(m, randn(*shape), lambda t: F.pixel_shuffle(t, r))
    assert y.storage() is m._shuffleOut.storage() and gi.storage() is m._shuffleIn.storage()


SPATIAL = [
    (lambda: nn.SpatialReflectionPadding(1, 2, 0, 1), (2, 3, 4, 4)),
    (lambda: nn.SpatialReplicationPadding(1, 0, 2, 1), (3, 4, 4)),
    (lambda: nn.SpatialUpSamplingNearest(2), (2, 3, 3, 3)),
    (lambda: nn.SpatialUpSamplingBilinear(2), (2, 3, 3)),
    (lambda: nn.UpSampling(2, 'linear'), (1, 2, 2, 3, 3)),
    (lambda: nn.PixelShuffle(2), (2, 8, 3, 3)),
    (lambda: nn.Transpose([1, 3]), (2, 3, 4)),
    (lambda: nn.Replicate(3, 2), (2, 4)),
    (lambda: nn.Padding(2, 3), (2, 4)),
    (lambda: nn.Squeeze(), (2, 1, 3)),
    (lambda: nn.Unsqueeze(2), (2, 3)),
    (lambda: nn.Collapse(2), (3, 2, 4)),
    (lambda: nn.Contiguous(), (2, 3)),
    (lambda: nn.Convert('bchw', 'bf'), (2, 3, 2, 2)),
]


@pytest.mark.parametrize('make,shape', SPATIAL)
def test_new_shape_float32(make, shape):
    a = randn(*shape)
    m64, m32 = make(), make().float()
    y64 = m64.forward(P(a))
    y32 = m32.forward(P(a.astype(np.float32)))
    assert y32.type() == 'torch.FloatTensor'
    close(y32, y64.numpy().astype(np.float32), 1e-5)
    go = randn(*y64.size())
    g64 = m64.backward(P(a), P(go))
    g32 = m32.backward(P(a.astype(np.float32)), P(go.astype(np.float32)))
    assert g32.type() == 'torch.FloatTensor'
    close(g32, g64.numpy().astype(np.float32), 1e-4)


@pytest.mark.parametrize('make,shape', SPATIAL)
def test_new_shape_meta_same_sizes(make, shape):
    real, meta = make(), make().type('torch.MetaDoubleTensor')
    x = pynn.randn(*shape)
    y = real.forward(x)
    gi = real.backward(x, pynn.randn(*y.size()))
    xm = pynn.MetaDoubleTensor(*shape)
    ym = meta.forward(xm)
    assert ym.is_meta() and ym.size() == y.size()
    gm = meta.backward(xm, pynn.MetaDoubleTensor(*y.size()))
    assert gm.size() == gi.size()


@pytest.mark.parametrize('make,bad,good', [
    (lambda: nn.SpatialReflectionPadding(1), (3, 3), (1, 3, 3)),
    (lambda: nn.SpatialReflectionPadding(3), (1, 3, 3), (1, 4, 4)),   # pad must be < size
    (lambda: nn.SpatialUpSamplingNearest(2), (3, 3), (1, 3, 3)),
    (lambda: nn.SpatialUpSamplingBilinear(2), (3,), (1, 3, 3)),
    (lambda: nn.UpSampling(2), (1, 3, 3), (1, 1, 3, 3)),
    (lambda: nn.PixelShuffle(2), (3, 2, 2), (4, 2, 2)),
    (lambda: nn.Transpose([1, 3]), (2, 2), (2, 2, 2)),
    (lambda: nn.Replicate(2, 3), (2,), (2, 2)),
    (lambda: nn.Padding(3, 1), (2, 2), (2, 2, 2)),
    (lambda: nn.Squeeze(3), (2, 2), (2, 2, 1)),
])
def test_new_shape_bad_input_then_usable(make, bad, good):
    m = make()
    with pytest.raises(ValueError, match=r'^nn\.\w+.*: expected .*, got '):
        m.forward(P(randn(*bad)))
    y = m.forward(P(randn(*good)))
    m.backward(P(randn(*good)), P(randn(*y.size())))


def test_new_shape_gradoutput_checked():
    m = nn.SpatialReplicationPadding(1)
    x = P(randn(1, 3, 3))
    m.forward(x)
    with pytest.raises(ValueError, match=r'nn\.SpatialReplicationPadding.*expected gradOutput of size 1x5x5'):
        m.backward(x, P(randn(1, 3, 3)))
    assert m.backward(x, P(randn(1, 5, 5))).size() == (1, 3, 3)
