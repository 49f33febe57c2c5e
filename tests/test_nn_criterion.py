"""nn.ClassNLLCriterion, CrossEntropyCriterion, MSECriterion vs PyTorch (float64, 1e-10),
finite differences, Lua's fields, bad targets, float32 and meta."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import pynn
from pynn import nn
from _oracle import P

RNG = np.random.default_rng(7)
TOL = 1e-10


def randn(*shape):
    return RNG.standard_normal(shape)


def close(a, b, tol=TOL):
    a = a.numpy() if isinstance(a, pynn.Tensor) else np.asarray(a)
    b = b.detach().numpy() if isinstance(b, torch.Tensor) else np.asarray(b)
    assert a.shape == b.shape, (a.shape, b.shape)
    np.testing.assert_allclose(a, b, rtol=tol, atol=tol)


def fd_check(crit, x, target, eps=1e-6, tol=1e-6):
    crit.forward(x, target)
    gi = crit.backward(x, target).numpy().copy()
    xa = x.numpy()
    num = np.zeros_like(xa)
    for idx in np.ndindex(*xa.shape):
        old = xa[idx]
        xa[idx] = old + eps
        fp = crit.forward(x, target)
        xa[idx] = old - eps
        fm = crit.forward(x, target)
        xa[idx] = old
        num[idx] = (fp - fm) / (2 * eps)
    np.testing.assert_allclose(gi, num, rtol=tol, atol=tol)


def torch_ref(fn, xa, *args, **kw):
    xt = torch.from_numpy(xa.copy()).requires_grad_()
    out = fn(xt, *args, **kw)
    out.backward()
    return out.item(), xt.grad


# --------------------------------------------------------------------------- ClassNLLCriterion
@pytest.mark.parametrize('weighted', [False, True])
@pytest.mark.parametrize('size_average', [True, False])
def test_classnll_batch_vs_torch(weighted, size_average):
    n, c = 6, 5
    xa = np.log(np.abs(randn(n, c)) + 0.1)
    tg = RNG.integers(1, c + 1, n)
    w = np.abs(randn(c)) + 0.5 if weighted else None
    crit = nn.ClassNLLCriterion(P(w) if weighted else None, size_average)
    out = crit.forward(P(xa), P(tg))
    assert isinstance(out, float)
    ref, gref = torch_ref(F.nll_loss, xa, torch.from_numpy(tg - 1),
                          weight=torch.from_numpy(w) if weighted else None,
                          reduction='mean' if size_average else 'sum')
    assert abs(out - ref) < TOL
    gi = crit.backward(P(xa), P(tg))
    assert gi is crit.gradInput
    close(gi, gref)
    tw = w[tg - 1].sum() if weighted else float(n)
    assert abs(crit.total_weight_tensor[1] - tw) < TOL
    assert abs(crit.output_tensor[1] - out) < TOL
    assert crit.target.type() == 'torch.LongTensor' and crit.target.numpy().tolist() == tg.tolist()
    fd_check(crit, P(xa), P(tg))


@pytest.mark.parametrize('weighted', [False, True])
@pytest.mark.parametrize('size_average', [True, False])
def test_classnll_single_sample(weighted, size_average):
    c = 4
    xa = randn(c)
    w = np.abs(randn(c)) + 0.5 if weighted else None
    crit = nn.ClassNLLCriterion(P(w) if weighted else None, size_average)
    for target in (3, P(np.array([3])), P(np.array([3.0]))):
        out = crit.forward(P(xa), target)
        ref, gref = torch_ref(F.nll_loss, xa[None], torch.tensor([2]),
                              weight=torch.from_numpy(w) if weighted else None,
                              reduction='mean' if size_average else 'sum')
        assert abs(out - ref) < TOL
        gi = crit.backward(P(xa), target)
        close(gi, gref[0])
    assert crit.target.type() == 'torch.LongTensor'


def test_classnll_fields_and_ignore_index():
    crit = nn.ClassNLLCriterion()
    assert crit.sizeAverage is True and crit.ignoreIndex == -100
    assert 'weights' not in crit.__dict__
    assert crit.output_tensor.size() == (1,) and crit.total_weight_tensor[1] == 1
    assert crit.target.type() == 'torch.LongTensor' and crit.output == 0
    assert repr(crit) == 'nn.ClassNLLCriterion'
    xa = randn(4, 3)
    tg = np.array([1, 2, 2, 3])
    ign = nn.ClassNLLCriterion(None, True, 2)
    out = ign.forward(P(xa), P(tg))
    ref, gref = torch_ref(F.nll_loss, xa, torch.from_numpy(tg - 1), ignore_index=1)
    assert abs(out - ref) < TOL
    close(ign.backward(P(xa), P(tg)), gref)
    # everything ignored: 0 loss, total weight 0, zero gradient
    out = ign.forward(P(xa), P(np.array([2, 2, 2, 2])))
    assert out == 0 and ign.total_weight_tensor[1] == 0
    assert not ign.backward(P(xa), P(np.array([2, 2, 2, 2]))).numpy().any()
    with pytest.raises(ValueError, match='1-D'):
        nn.ClassNLLCriterion(P(randn(2, 2)))


def test_classnll_bad_targets_then_usable():
    crit = nn.ClassNLLCriterion()
    x = P(randn(3, 4))
    for bad in (P(np.array([1, 5, 2])), P(np.array([0, 1, 2])), P(np.array([1, 2])), 2,
                P(np.array([[1, 2, 3]])), 'a'):
        with pytest.raises(ValueError, match='nn.ClassNLLCriterion'):
            crit.forward(x, bad)
        with pytest.raises(ValueError, match='nn.ClassNLLCriterion'):
            crit.backward(x, bad)
    with pytest.raises(ValueError, match='nn.ClassNLLCriterion.*out of range'):
        crit.forward(P(randn(4)), 5)
    with pytest.raises(ValueError, match='nn.ClassNLLCriterion'):
        crit.forward(P(randn(2, 3, 4)), 1)
    with pytest.raises(ValueError, match='nn.ClassNLLCriterion.*weight'):
        nn.ClassNLLCriterion(P(np.ones(3))).forward(x, P(np.array([1, 2, 3])))
    with pytest.raises(ValueError, match='nn.ClassNLLCriterion'):
        crit.forward(P(randn(3, 4).astype(np.float32)), P(np.array([1, 2, 3])))
    out = crit.forward(x, P(np.array([1, 2, 4])))
    ref, _ = torch_ref(F.nll_loss, x.numpy(), torch.tensor([0, 1, 3]))
    assert abs(out - ref) < TOL


# --------------------------------------------------------------------------- CrossEntropyCriterion
@pytest.mark.parametrize('weighted', [False, True])
@pytest.mark.parametrize('size_average', [True, False])
def test_crossentropy_vs_torch(weighted, size_average):
    n, c = 5, 7
    xa = randn(n, c) * 3
    tg = RNG.integers(1, c + 1, n)
    w = np.abs(randn(c)) + 0.5 if weighted else None
    crit = nn.CrossEntropyCriterion(P(w) if weighted else None, size_average)
    out = crit.forward(P(xa), P(tg))
    ref, gref = torch_ref(F.cross_entropy, xa, torch.from_numpy(tg - 1),
                          weight=torch.from_numpy(w) if weighted else None,
                          reduction='mean' if size_average else 'sum')
    assert isinstance(out, float) and abs(out - ref) < TOL
    gi = crit.backward(P(xa), P(tg))
    close(gi, gref)
    assert gi.storage() is crit.lsm.gradInput.storage()
    fd_check(crit, P(xa), P(tg))


def test_crossentropy_squeeze_single_sample_and_fields():
    crit = nn.CrossEntropyCriterion()
    assert crit.lsm.__typename__ == 'nn.LogSoftMax'
    assert isinstance(crit.nll, nn.ClassNLLCriterion)
    assert crit.sizeAverage is True and crit.oldSizeAverage is True
    xa = randn(1, 6)
    ref, gref = torch_ref(F.cross_entropy, xa, torch.tensor([4]))
    for target in (5, P(np.array([5])), P(np.array([[5]]))):
        out = crit.forward(P(xa), target)
        assert abs(out - ref) < TOL
        gi = crit.backward(P(xa), target)
        assert gi.size() == (1, 6)  # viewed back to the input's size
        close(gi, gref)
    x1 = randn(6)
    out = crit.forward(P(x1), 2)
    ref, gref = torch_ref(F.cross_entropy, x1[None], torch.tensor([1]))
    assert abs(out - ref) < TOL
    close(crit.backward(P(x1), 2), gref[0])
    # a column of targets is squeezed as well
    xb, tb = randn(3, 4), np.array([[1], [4], [2]])
    ref, gref = torch_ref(F.cross_entropy, xb, torch.tensor([0, 3, 1]))
    assert abs(crit.forward(P(xb), P(tb)) - ref) < TOL
    close(crit.backward(P(xb), P(tb)), gref)


def test_crossentropy_sizeaverage_propagates_and_errors():
    crit = nn.CrossEntropyCriterion()
    xa, tg = randn(4, 3), np.array([1, 3, 2, 2])
    crit.sizeAverage = False
    out = crit.forward(P(xa), P(tg))
    assert crit.nll.sizeAverage is False and crit.oldSizeAverage is False
    ref, gref = torch_ref(F.cross_entropy, xa, torch.from_numpy(tg - 1), reduction='sum')
    assert abs(out - ref) < TOL
    close(crit.backward(P(xa), P(tg)), gref)
    with pytest.raises(ValueError, match='nn.CrossEntropyCriterion'):
        crit.forward(P(xa), P(np.array([1, 4, 2, 2])))
    with pytest.raises(ValueError, match='nn.CrossEntropyCriterion'):
        crit.forward(P(xa), P(np.array([1, 2])))
    with pytest.raises(ValueError, match='nn.CrossEntropyCriterion'):
        crit.forward(P(randn(2, 3, 4)), 1)
    with pytest.raises(ValueError, match='nn.CrossEntropyCriterion'):
        crit.forward([P(xa)], 1)
    assert abs(crit.forward(P(xa), P(tg)) - ref) < TOL


def test_crossentropy_float_converts_children():
    crit = nn.CrossEntropyCriterion().float()
    assert crit.nll.output_tensor.type() == 'torch.FloatTensor'
    assert crit.lsm.output.type() == 'torch.FloatTensor'
    assert crit.gradInput.type() == 'torch.FloatTensor'
    xa = randn(4, 5).astype(np.float32)
    tg = np.array([1, 2, 5, 3])
    out = crit.forward(P(xa), P(tg))
    ref, gref = torch_ref(F.cross_entropy, xa, torch.from_numpy(tg - 1))
    assert abs(out - ref) < 1e-5
    gi = crit.backward(P(xa), P(tg))
    assert gi.type() == 'torch.FloatTensor'
    np.testing.assert_allclose(gi.numpy(), gref.numpy(), rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------- MSECriterion
@pytest.mark.parametrize('size_average', [True, False])
@pytest.mark.parametrize('shape', [(7,), (3, 4), (2, 3, 2)])
def test_mse_vs_torch(size_average, shape):
    xa, ta = randn(*shape), randn(*shape)
    crit = nn.MSECriterion(size_average)
    assert 'output_tensor' not in crit.__dict__
    out = crit.forward(P(xa), P(ta))
    ref, gref = torch_ref(F.mse_loss, xa, torch.from_numpy(ta), reduction='mean' if size_average else 'sum')
    assert isinstance(out, float) and abs(out - ref) < TOL * max(1, abs(ref))
    assert crit.output_tensor.size() == (1,) and crit.output_tensor.type() == 'torch.DoubleTensor'
    gi = crit.backward(P(xa), P(ta))
    close(gi, gref)
    fd_check(crit, P(xa), P(ta))


def test_mse_target_shape_and_errors():
    crit = nn.MSECriterion()
    assert crit.sizeAverage is True
    xa, ta = randn(3, 4), randn(12)
    out = crit.forward(P(xa), P(ta))  # only the element count has to match, as THNN
    assert abs(out - ((xa - ta.reshape(3, 4)) ** 2).mean()) < TOL
    with pytest.raises(ValueError, match='nn.MSECriterion'):
        crit.forward(P(xa), P(randn(11)))
    with pytest.raises(ValueError, match='nn.MSECriterion'):
        crit.backward(P(xa), 3.0)
    with pytest.raises(ValueError, match='nn.MSECriterion'):
        crit.forward(P(xa.astype(np.float32)), P(ta.astype(np.float32)))
    assert abs(crit.forward(P(xa), P(ta)) - out) < TOL
    c32 = nn.MSECriterion().float()
    out32 = c32.forward(P(xa.astype(np.float32)), P(ta.astype(np.float32)))
    assert abs(out32 - out) < 1e-5 and c32.output_tensor.type() == 'torch.FloatTensor'
    assert c32.backward(P(xa.astype(np.float32)), P(ta.astype(np.float32))).type() == 'torch.FloatTensor'


def test_meta_criteria():
    mse = nn.MSECriterion().type('torch.MetaDoubleTensor')
    x, t = pynn.MetaDoubleTensor(3, 4), pynn.MetaDoubleTensor(3, 4)
    mse.forward(x, t)
    assert mse.backward(x, t).size() == (3, 4) and mse.gradInput.is_meta()
    nll = nn.ClassNLLCriterion().type('torch.MetaDoubleTensor')
    nll.forward(pynn.MetaDoubleTensor(5), 2)
    assert nll.backward(pynn.MetaDoubleTensor(5), 2).size() == (5,)
    tg = pynn.LongTensor(3).fill(1).type('torch.MetaLongTensor')
    assert nll.backward(pynn.MetaDoubleTensor(3, 5), tg).size() == (3, 5)


def test_criterion_in_training_step():
    # LogSoftMax output of a table module through ClassNLL: gradients flow back through JoinTable
    join = nn.JoinTable(2)
    a, b = randn(4, 2), randn(4, 3)
    crit = nn.CrossEntropyCriterion()
    tg = np.array([1, 5, 3, 2])
    y = join.forward([P(a), P(b)])
    loss = crit.forward(y, P(tg))
    gi = join.backward([P(a), P(b)], crit.backward(y, P(tg)))
    at, bt = torch.from_numpy(a).requires_grad_(), torch.from_numpy(b).requires_grad_()
    lt = F.cross_entropy(torch.cat([at, bt], 1), torch.from_numpy(tg - 1))
    lt.backward()
    assert abs(loss - lt.item()) < TOL
    close(gi[0], at.grad)
    close(gi[1], bt.grad)


def test_fallback_logsoftmax_matches_torch():
    from pynn.nn.criterion import _LogSoftMax
    m = _LogSoftMax()
    assert str(m) == 'nn.LogSoftMax'
    for shape in ((6,), (3, 5)):
        xa = randn(*shape) * 4
        y = m.forward(P(xa))
        xt = torch.from_numpy(xa).requires_grad_()
        yt = F.log_softmax(xt, -1)
        close(y, yt)
        go = randn(*shape)
        gi = m.backward(P(xa), P(go))
        yt.backward(torch.from_numpy(go))
        close(gi, xt.grad)
    with pytest.raises(ValueError, match='nn.LogSoftMax'):
        m.forward(P(randn(2, 3, 4)))


# =========================================================================== every other criterion
from hypothesis import given, settings, strategies as st  # noqa: E402

import json  # noqa: E402
from pathlib import Path  # noqa: E402

HSET = settings(max_examples=12, deadline=None, derandomize=True)
pytestmark = pytest.mark.filterwarnings('ignore:reduction:UserWarning')
REF = Path(__file__).resolve().parents[1] / '..' / 'shared' / 'reference' / 'lua-nn'
MANIFEST = REF / 'MANIFEST.json'


def rng_of(seed):
    return np.random.default_rng(seed)


def tt(a):
    return torch.from_numpy(np.ascontiguousarray(a))


def rel_close(got, ref, tol=TOL):
    assert abs(got - ref) <= tol * max(1.0, abs(ref)), (got, ref)


def grads_of(fn, *arrays):
    """Loss and gradients of a torch function of float64 arrays (autograd as the oracle)."""
    ts = [tt(a.copy()).requires_grad_() for a in arrays]
    out = fn(*ts)
    out.backward()
    return out.item(), [t.grad for t in ts]


def lua_case(crit, x, t, fn, *arrays):
    """forward/backward of a pynn criterion vs a torch oracle (loss, gradient w.r.t. arrays)."""
    out = crit.forward(x, t)
    assert isinstance(out, float)
    gi = crit.backward(x, t)
    ref, grads = grads_of(fn, *arrays)
    rel_close(out, ref)
    gis = gi if isinstance(gi, list) else [gi]
    assert len(gis) == len(grads)
    for g, r in zip(gis, grads):
        close(g, r)
    return out, gi


shapes = st.lists(st.integers(1, 4), min_size=1, max_size=3).map(tuple)
seeds = st.integers(0, 2 ** 31 - 1)
size_avg = st.booleans()


# --------------------------------------------------------------------------- element-wise vs PyTorch
@HSET
@given(shapes, seeds, size_avg)
def test_abs_smoothl1_mse_softmargin_vs_torch(shape, seed, sa):
    r = rng_of(seed)
    xa, ta = r.standard_normal(shape) * 2, r.standard_normal(shape) * 2
    red = 'mean' if sa else 'sum'
    lua_case(nn.AbsCriterion(sa), P(xa), P(ta), lambda x: F.l1_loss(x, tt(ta), reduction=red), xa)
    lua_case(nn.SmoothL1Criterion(sa), P(xa), P(ta),
             lambda x: F.smooth_l1_loss(x, tt(ta), reduction=red, beta=1.0), xa)
    lua_case(nn.MSECriterion(sa), P(xa), P(ta), lambda x: F.mse_loss(x, tt(ta), reduction=red), xa)
    ya = np.where(r.random(shape) < 0.5, -1.0, 1.0)
    sm = nn.SoftMarginCriterion()
    sm.sizeAverage = sa
    lua_case(sm, P(xa), P(ya), lambda x: F.soft_margin_loss(x, tt(ya), reduction=red), xa)


@HSET
@given(st.integers(1, 4), st.integers(1, 5), seeds, size_avg, st.booleans())
def test_bce_vs_torch(n, c, seed, sa, weighted):
    r = rng_of(seed)
    xa = r.uniform(0.05, 0.95, (n, c))
    ta = r.uniform(0, 1, (n, c))
    wa = r.uniform(0.5, 2, c) if weighted else None
    crit = nn.BCECriterion(P(wa) if weighted else None, sa)
    # THNN adds eps = 1e-12 inside the logs and the gradient's denominator: ~1e-11 relative
    lua_case(crit, P(xa), P(ta), lambda x: F.binary_cross_entropy(
        x, tt(ta), weight=tt(wa) if weighted else None, reduction='mean' if sa else 'sum'), xa)
    if weighted:  # a 1-D target: one weight per element
        w1 = r.uniform(0.5, 2, c)
        crit = nn.BCECriterion(P(w1), sa)
        lua_case(crit, P(xa[0]), P(ta[0]), lambda x: F.binary_cross_entropy(
            x, tt(ta[0]), weight=tt(w1), reduction='mean' if sa else 'sum'), xa[0])


@HSET
@given(shapes, seeds, size_avg)
def test_distkldiv_vs_torch(shape, seed, sa):
    r = rng_of(seed)
    xa = r.standard_normal(shape)
    ta = r.uniform(0.1, 1, shape) * (r.random(shape) < 0.8)  # some zero targets
    crit = nn.DistKLDivCriterion()
    crit.sizeAverage = sa
    lua_case(crit, P(xa), P(ta), lambda x: F.kl_div(x, tt(ta), reduction='mean' if sa else 'sum'), xa)


@HSET
@given(shapes, seeds, st.floats(-1, 2))
def test_hinge_embedding_vs_torch(shape, seed, margin):
    r = rng_of(seed)
    xa = r.standard_normal(shape)
    ya = np.where(r.random(shape) < 0.5, -1.0, 1.0)
    crit = nn.HingeEmbeddingCriterion(margin)
    lua_case(crit, P(xa), P(ya), lambda x: F.hinge_embedding_loss(x, tt(ya), margin=margin), xa)
    crit.sizeAverage = False
    lua_case(crit, P(xa), P(ya), lambda x: F.hinge_embedding_loss(x, tt(ya), margin=margin,
                                                                  reduction='sum'), xa)


def test_hinge_embedding_number_y_and_nil_sizeaverage():
    crit = nn.HingeEmbeddingCriterion(0.5)
    del crit.sizeAverage  # an older file without the field: Lua still averages (nil)
    xa = np.array([0.2])
    lua_case(crit, P(xa), -1, lambda x: F.hinge_embedding_loss(x, torch.tensor([-1.0]), margin=0.5), xa)
    assert crit.ty.size() == (1,)
    with pytest.raises(ValueError, match='nn.HingeEmbeddingCriterion'):
        crit.forward(P(randn(3)), 1)


@HSET
@given(shapes, seeds, st.floats(0, 2))
def test_margin_criterion_vs_torch(shape, seed, margin):
    r = rng_of(seed)
    xa = r.standard_normal(shape)
    ya = np.where(r.random(shape) < 0.5, -1.0, 1.0)
    crit = nn.MarginCriterion(margin)
    lua_case(crit, P(xa), P(ya), lambda x: torch.relu(margin - x * tt(ya)).mean(), xa)
    crit.sizeAverage = False
    lua_case(crit, P(xa), P(ya), lambda x: torch.relu(margin - x * tt(ya)).sum(), xa)


# --------------------------------------------------------------------------- class targets vs PyTorch
@HSET
@given(st.integers(1, 5), st.integers(2, 6), seeds, st.sampled_from([1, 2]), st.booleans(),
       st.floats(0.1, 2))
def test_multimargin_vs_torch(n, c, seed, p, weighted, margin):
    r = rng_of(seed)
    xa = r.standard_normal((n, c))
    tg = r.integers(1, c + 1, n)
    wa = r.uniform(0.5, 2, c) if weighted else None
    crit = nn.MultiMarginCriterion(p, P(wa) if weighted else None, margin)
    fn = lambda x: F.multi_margin_loss(x, tt(tg - 1), p=p, margin=margin,  # noqa: E731
                                       weight=tt(wa) if weighted else None)
    lua_case(crit, P(xa), P(tg), fn, xa)
    lua_case(crit, P(xa), P(tg.astype(np.float64)), fn, xa)  # a DoubleTensor of classes
    crit.sizeAverage = False
    lua_case(crit, P(xa), P(tg), lambda x: fn(x) * n, xa)
    # one sample: a number target lands in target_tensor
    crit.sizeAverage = True
    lua_case(crit, P(xa[0]), int(tg[0]), lambda x: F.multi_margin_loss(
        x[None], tt(tg[:1] - 1), p=p, margin=margin, weight=tt(wa) if weighted else None), xa[0])
    assert crit.target_tensor.type() == 'torch.LongTensor' and crit.target_tensor[1] == tg[0]


@HSET
@given(st.integers(1, 4), st.integers(1, 6), seeds)
def test_multilabel_margin_vs_torch(n, c, seed):
    r = rng_of(seed)
    xa = r.standard_normal((n, c))
    tg = np.zeros((n, c), dtype=np.int64)
    for i in range(n):  # test data: k distinct classes then 0 (and junk after the 0)
        k = r.integers(0, c + 1)
        tg[i, :k] = r.permutation(c)[:k] + 1
        if k + 1 < c:
            tg[i, k + 1:] = r.integers(1, c + 1, c - k - 1)
    crit = nn.MultiLabelMarginCriterion()
    fn = lambda x: F.multilabel_margin_loss(x, tt(tg - 1))  # noqa: E731
    lua_case(crit, P(xa), P(tg), fn, xa)
    assert crit.isTarget.size() == (n, c) and crit.isTarget.type() == 'torch.DoubleTensor'
    crit.sizeAverage = False
    lua_case(crit, P(xa), P(tg), lambda x: fn(x) * n, xa)
    lua_case(crit, P(xa[0]), P(tg[0]), lambda x: F.multilabel_margin_loss(x, tt(tg[0] - 1)), xa[0])
    small = nn.MultiLabelMarginCriterion()
    small.BLOCK = 1  # one sample per block: the blocked path gives the same
    lua_case(small, P(xa), P(tg), fn, xa)


@HSET
@given(st.integers(1, 4), st.integers(1, 5), seeds, size_avg, st.booleans())
def test_multilabel_soft_margin_vs_torch(n, c, seed, sa, weighted):
    r = rng_of(seed)
    xa = r.standard_normal((n, c)) * 3
    ta = (r.random((n, c)) < 0.5).astype(np.float64)
    wa = r.uniform(0.5, 2, c) if weighted else None
    crit = nn.MultiLabelSoftMarginCriterion(P(wa) if weighted else None, sa)
    assert crit.sigmoid.__typename__ == 'nn.Sigmoid'
    scale = 1.0 if sa else n * c
    lua_case(crit, P(xa), P(ta), lambda x: F.multilabel_soft_margin_loss(
        x, tt(ta), weight=tt(wa) if weighted else None) * scale, xa)
    assert crit._buffer1.size() == (n * c,) and crit._buffer2.size() == (n * c,)


@HSET
@given(st.integers(1, 3), st.integers(1, 4), st.integers(1, 3), st.integers(1, 3), seeds,
       size_avg, st.booleans())
def test_spatial_classnll_vs_torch(b, c, h, w, seed, sa, weighted):
    r = rng_of(seed)
    xa = r.standard_normal((b, c, h, w))
    tg = r.integers(1, c + 1, (b, h, w))
    wa = r.uniform(0.5, 2, c) if weighted else None
    crit = nn.SpatialClassNLLCriterion(P(wa) if weighted else None, sa)
    lua_case(crit, P(xa), P(tg), lambda x: F.nll_loss(
        x, tt(tg - 1), weight=tt(wa) if weighted else None, reduction='mean' if sa else 'sum'), xa)
    tw = wa[tg - 1].sum() if weighted else tg.size
    assert abs(crit.total_weight_tensor[1] - tw) < TOL
    assert crit.target.type() == 'torch.LongTensor' and crit.target.size() == (b, h, w)


@HSET
@given(st.integers(1, 5), st.integers(2, 5), seeds, st.booleans(), st.integers(1, 5))
def test_classnll_ignore_index_vs_torch(n, c, seed, weighted, ignore):
    r = rng_of(seed)
    xa = r.standard_normal((n, c))
    tg = r.integers(1, c + 1, n)
    wa = r.uniform(0.5, 2, c) if weighted else None
    crit = nn.ClassNLLCriterion(P(wa) if weighted else None, True, ignore)
    if (tg == ignore).all():
        assert crit.forward(P(xa), P(tg)) == 0 and not crit.backward(P(xa), P(tg)).numpy().any()
        return
    lua_case(crit, P(xa), P(tg), lambda x: F.nll_loss(
        x, tt(tg - 1), weight=tt(wa) if weighted else None, ignore_index=ignore - 1), xa)


# --------------------------------------------------------------------------- pairs vs PyTorch
@HSET
@given(st.integers(1, 4), st.integers(1, 5), seeds, st.floats(-0.5, 0.5), size_avg)
def test_cosine_embedding_vs_torch(n, d, seed, margin, sa):
    r = rng_of(seed)
    a, b = r.standard_normal((n, d)), r.standard_normal((n, d))
    ya = np.where(r.random(n) < 0.5, -1.0, 1.0)
    crit = nn.CosineEmbeddingCriterion(margin)
    crit.sizeAverage = sa
    red = 'mean' if sa else 'sum'
    lua_case(crit, [P(a), P(b)], P(ya),
             lambda x1, x2: F.cosine_embedding_loss(x1, x2, tt(ya), margin=margin, reduction=red), a, b)
    assert crit.w1.size() == (n, 1) and crit._outputs.size() == (n,)
    assert crit._idx.type() == 'torch.ByteTensor'
    # one pair: vectors and a number y
    y0 = float(ya[0])
    out, gi = lua_case(crit, [P(a[0]), P(b[0])], y0, lambda x1, x2: F.cosine_embedding_loss(
        x1[None], x2[None], torch.tensor([y0]), margin=margin, reduction=red), a[0], b[0])
    assert gi[0].size() == (d,) and gi[1].size() == (d,)


@HSET
@given(st.integers(1, 5), seeds, st.floats(-1, 1), size_avg)
def test_margin_ranking_vs_torch(n, seed, margin, sa):
    r = rng_of(seed)
    a, b = r.standard_normal(n), r.standard_normal(n)
    ya = np.where(r.random(n) < 0.5, -1.0, 1.0)
    crit = nn.MarginRankingCriterion(margin)
    crit.sizeAverage = sa
    lua_case(crit, [P(a), P(b)], P(ya), lambda x1, x2: F.margin_ranking_loss(
        x1, x2, tt(ya), margin=margin, reduction='mean' if sa else 'sum'), a, b)
    assert crit.dist.size() == (n,) and crit.mask.size() == (n,) and crit._output.size() == (n,)
    y0 = float(ya[0])  # non-batch: one-element tensors and a number y
    lua_case(crit, [P(a[:1]), P(b[:1])], y0, lambda x1, x2: F.margin_ranking_loss(
        x1, x2, torch.tensor([y0]), margin=margin, reduction='sum'), a[:1], b[:1])


# --------------------------------------------------------------------------- no PyTorch twin
@HSET
@given(st.integers(1, 4), st.integers(1, 4), seeds)
def test_l1cost_and_distance_ratio_autograd(n, d, seed):
    r = rng_of(seed)
    xa = r.standard_normal((n, d))
    lua_case(nn.L1Cost(), P(xa), None, lambda x: x.abs().sum(), xa)
    X, Y = r.uniform(0, 2, n), r.uniform(0, 2, n)
    crit = nn.DistanceRatioCriterion()
    out = crit.forward([P(X), P(Y)])
    gi = crit.backward([P(X), P(Y)])
    ref, (gx, gy) = grads_of(lambda x, y: (x + torch.log(torch.exp(-x) + torch.exp(-y))).sum() / n, X, Y)
    rel_close(out, ref)
    close(gi[0], gx)
    close(gi[1], gy)
    assert gi[0] is crit.dX and gi[1] is crit.dY
    assert crit.output == 0  # Lua's updateOutput returns the loss without setting output
    crit = nn.DistanceRatioCriterion(False)
    rel_close(crit.forward([P(X), P(Y)]), ref * n)
    fd_check_table(crit, [P(X), P(Y)], None)


def fd_check_table(crit, xs, target, eps=1e-6, tol=1e-6):
    crit.forward(xs, target)
    gis = [g.numpy().copy() for g in crit.backward(xs, target)]
    for x, gi in zip(xs, gis):
        xa = x.numpy()
        num = np.zeros_like(xa)
        for idx in np.ndindex(*xa.shape):
            old = xa[idx]
            xa[idx] = old + eps
            fp = crit.forward(xs, target)
            xa[idx] = old - eps
            fm = crit.forward(xs, target)
            xa[idx] = old
            num[idx] = (fp - fm) / (2 * eps)
        np.testing.assert_allclose(gi, num, rtol=tol, atol=tol)


@HSET
@given(st.integers(1, 6), seeds, st.sampled_from([1, -1]), st.floats(0.5, 8))
def test_l1_hinge_embedding(d, seed, y, margin):
    r = rng_of(seed)
    a, b = r.standard_normal(d), r.standard_normal(d)
    crit = nn.L1HingeEmbeddingCriterion(margin)
    if y == 1:
        fn = lambda x1, x2: (x1 - x2).abs().sum()  # noqa: E731
    else:
        fn = lambda x1, x2: torch.relu(margin - (x1 - x2).abs().sum())  # noqa: E731
    lua_case(crit, [P(a), P(b)], y, fn, a, b)
    fd_check_table(crit, [P(a), P(b)], y)


def test_l1_hinge_embedding_equal_elements_draw_a_sign():
    crit = nn.L1HingeEmbeddingCriterion()
    a = np.array([1.0, 2.0, 3.0])
    g = crit.backward([P(a), P(np.array([0.0, 2.0, 4.0]))], 1)
    assert g[0].numpy()[0] == 1 and g[0].numpy()[2] == -1 and abs(g[0].numpy()[1]) == 1
    close(g[1], -g[0].numpy())


@HSET
@given(st.integers(1, 4), st.integers(1, 4), seeds, size_avg, st.booleans())
def test_weighted_mse_vs_torch(n, d, seed, sa, batched):
    r = rng_of(seed)
    xa, ta = r.standard_normal((n, d)), r.standard_normal((n, d))
    wa = r.uniform(0.5, 2, d if batched else (n, d))
    crit = nn.WeightedMSECriterion(P(wa))
    crit.sizeAverage = sa
    wt = tt(wa)[None] if batched else tt(wa)
    lua_case(crit, P(xa), P(ta), lambda x: F.mse_loss(x, tt(ta) * wt, reduction='mean' if sa else 'sum'), xa)
    assert crit.buffer.size() == (n, d)
    assert crit.weight.storage() is not P(wa).storage()  # Lua clones w


@HSET
@given(st.integers(1, 2), st.integers(1, 3), st.integers(1, 3), st.integers(0, 3), st.integers(0, 3),
       seeds, st.booleans())
def test_spatial_autocrop_mse_vs_torch(b, h, w, dh, dw, seed, batch):
    r = rng_of(seed)
    shape = (b, 2, h, w) if batch else (2, h, w)
    tshape = shape[:-2] + (h + dh, w + dw)
    xa, ta = r.standard_normal(shape), r.standard_normal(tshape)
    r0, c0 = dh // 2, dw // 2
    crop = ta[..., r0:r0 + h, c0:c0 + w]
    crit = nn.SpatialAutoCropMSECriterion()
    out = crit.forward(P(xa), P(ta))
    rel_close(out, F.mse_loss(tt(xa), tt(crop)).item())
    # backward needs a target of the input's size (Lua asserts), e.g. the cropped one
    lua_case(crit, P(xa), P(crop), lambda x: F.mse_loss(x, tt(crop)), xa)
    if dh or dw:
        with pytest.raises(ValueError, match='nn.SpatialAutoCropMSECriterion'):
            crit.backward(P(xa), P(ta))
    with pytest.raises(ValueError, match='nn.SpatialAutoCropMSECriterion'):
        crit.forward(P(xa), P(ta[..., :h - 1, :] if h > 1 else ta[..., :0, :]))


@pytest.mark.parametrize('n_classes', [2, 3, 5, 8])
def test_class_simplex(n_classes):
    crit = nn.ClassSimplexCriterion(n_classes)
    s = crit.simplex.numpy()
    assert s.shape == (n_classes, n_classes) and not s[:, -1].any()
    # independent truth: unit vertices, pairwise dot -1/(n-1), centered at the origin
    np.testing.assert_allclose(np.linalg.norm(s, axis=1), 1, atol=1e-12)
    gram = s @ s.T
    np.testing.assert_allclose(gram[~np.eye(n_classes, dtype=bool)], -1 / (n_classes - 1), atol=1e-12)
    np.testing.assert_allclose(s.sum(0), 0, atol=1e-12)
    xa = randn(4, n_classes)
    tg = RNG.integers(1, n_classes + 1, 4)
    lua_case(crit, P(xa), P(tg), lambda x: F.mse_loss(x, tt(s[tg - 1])), xa)
    assert crit._target.size() == (4, n_classes)
    lua_case(crit, P(xa[0]), int(tg[0]), lambda x: F.mse_loss(x, tt(s[tg[0] - 1])), xa[0])
    top = crit.getTopPrediction(P(s[tg - 1]))
    assert top.type() == 'torch.LongTensor' and top.numpy().tolist() == tg.tolist()
    with pytest.raises(ValueError, match='nn.ClassSimplexCriterion'):
        nn.ClassSimplexCriterion(1)


# --------------------------------------------------------------------------- Lua's fields
def _ctor_namespace():
    class _Torch:
        @staticmethod
        def Tensor(v=None):
            return pynn.Tensor(v) if v is not None else pynn.Tensor()

        LongTensor = staticmethod(lambda v: pynn.LongTensor(v))
    return {'nn': nn, 'torch': _Torch}


CRIT_CASES = [c for c in json.loads(MANIFEST.read_text())
              if c['family'] == 'criterion' and 'file' in c] if MANIFEST.exists() else []


@pytest.mark.skipif(not CRIT_CASES, reason='Lua nn fixtures not found at ../shared/reference/lua-nn')
@pytest.mark.parametrize('case', CRIT_CASES, ids=lambda c: c['file'][:-3])
def test_constructor_fields_match_lua(case):
    """pynn's constructor builds the fields Lua's built (names, tensor types and sizes, values)."""
    lua = pynn.load(REF / case['file'])['criterion']
    ctor = case['ctor'].replace('{', '[').replace('}', ']')
    mine = eval(ctor, _ctor_namespace())
    assert type(mine) is type(lua)
    assert set(mine.__dict__) == set(k for k in lua.__dict__ if not k.startswith('_pynn'))
    for k, v in lua.__dict__.items():
        if k.startswith('_pynn'):
            continue
        m = mine.__dict__[k]
        if isinstance(v, pynn.Tensor):
            assert m.type() == v.type() and m.size() == v.size(), k
            if k in ('simplex', 'weight', 'total_weight_tensor'):
                np.testing.assert_allclose(m.numpy(), v.numpy(), atol=1e-14)
        elif isinstance(v, list):
            assert [x.size() for x in m] == [x.size() for x in v], k
        elif isinstance(v, (nn.Module, nn.Criterion)):
            assert type(m) is type(v), k
        elif k != 'output':
            assert m == v, k


# --------------------------------------------------------------------------- float32, meta, errors
def _instances():
    """(criterion, input, target) over every criterion, float64 numpy data."""
    r = rng_of(3)
    x, t = r.standard_normal((3, 4)), r.standard_normal((3, 4))
    sign = np.where(r.random((3, 4)) < 0.5, -1.0, 1.0)
    cls = np.array([1, 4, 2])
    ml = np.array([[2, 1, 0, 3], [4, 0, 0, 0], [1, 2, 3, 4]])
    v, w = r.standard_normal((3, 4)), r.standard_normal((3, 4))
    return [
        (nn.AbsCriterion(), x, t), (nn.SmoothL1Criterion(), x, t), (nn.MSECriterion(), x, t),
        (nn.BCECriterion(P(np.ones(4) * 0.5)), r.uniform(0.1, 0.9, (3, 4)), r.random((3, 4))),
        (nn.DistKLDivCriterion(), x, np.abs(t)), (nn.MarginCriterion(), x, sign),
        (nn.SoftMarginCriterion(), x, sign), (nn.L1Cost(), x, None),
        (nn.HingeEmbeddingCriterion(), x, sign), (nn.MultiLabelSoftMarginCriterion(), x, (sign > 0) * 1.0),
        (nn.WeightedMSECriterion(P(np.arange(1.0, 5.0))), x, t),
        (nn.SpatialAutoCropMSECriterion(), r.standard_normal((2, 2, 3)), r.standard_normal((2, 4, 5))),
        (nn.ClassSimplexCriterion(4), x, cls), (nn.ClassNLLCriterion(), x, cls),
        (nn.CrossEntropyCriterion(), x, cls), (nn.MultiMarginCriterion(2), x, cls),
        (nn.MultiLabelMarginCriterion(), x, ml),
        (nn.SpatialClassNLLCriterion(), r.standard_normal((2, 3, 2, 2)), r.integers(1, 4, (2, 2, 2))),
        (nn.CosineEmbeddingCriterion(0.1), [v, w], sign[:, 0]),
        (nn.MarginRankingCriterion(0.2), [v[0], w[0]], sign[0]),
        (nn.L1HingeEmbeddingCriterion(), [v[0], w[0]], -1),
        (nn.DistanceRatioCriterion(), [np.abs(v[0]), np.abs(w[0])], None),
    ]


def _wrap(a, dtype):
    if a is None or isinstance(a, (int, float)):
        return a
    if isinstance(a, list):
        return [_wrap(v, dtype) for v in a]
    if a.dtype.kind in 'iu':
        return P(a)
    return P(a.astype(dtype))


def _sizes(g):
    return [x.size() for x in g] if isinstance(g, list) else g.size()


INSTANCES = _instances()


@pytest.mark.parametrize('k', range(len(INSTANCES)), ids=[type(c).__name__ for c, _, _ in INSTANCES])
def test_float32_matches_float64(k):
    crit, xa, ta = INSTANCES[k]
    x64, t64 = _wrap(xa, np.float64), _wrap(ta, np.float64)
    c64 = crit.clone()
    if isinstance(crit, nn.SpatialAutoCropMSECriterion):
        t64 = P(ta[:, 1:3, 1:4].copy())  # backward needs the cropped size
    out64 = c64.forward(x64, t64)
    g64 = c64.backward(x64, t64)
    c32 = crit.clone().float()
    x32, t32 = _wrap(xa, np.float32), _wrap(ta, np.float32)
    if isinstance(crit, nn.SpatialAutoCropMSECriterion):
        t32 = P(ta[:, 1:3, 1:4].astype(np.float32))
    out32 = c32.forward(x32, t32)
    g32 = c32.backward(x32, t32)
    assert isinstance(out32, float) and abs(out32 - out64) <= 1e-4 * max(1, abs(out64))
    for a, b in zip(g32 if isinstance(g32, list) else [g32], g64 if isinstance(g64, list) else [g64]):
        assert a.type() == 'torch.FloatTensor'
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-5)


def _meta(a):
    if isinstance(a, list):
        return [_meta(v) for v in a]
    if isinstance(a, pynn.Tensor):
        return a.type(a.type().replace('torch.', 'torch.Meta'))
    return a


@pytest.mark.parametrize('k', range(len(INSTANCES)), ids=[type(c).__name__ for c, _, _ in INSTANCES])
def test_meta_sizes_like_data(k):
    crit, xa, ta = INSTANCES[k]
    x, t = _wrap(xa, np.float64), _wrap(ta, np.float64)
    if isinstance(crit, nn.SpatialAutoCropMSECriterion):
        t = P(ta[:, 1:3, 1:4].copy())
    real = crit.clone()
    real.forward(x, t)
    g = real.backward(x, t)
    meta = crit.clone().type('torch.MetaDoubleTensor')
    assert meta.forward(_meta(x), _meta(t)) == 0.0
    gm = meta.backward(_meta(x), _meta(t))
    assert _sizes(gm) == _sizes(g)
    for a in (gm if isinstance(gm, list) else [gm]):
        assert a.is_meta()


BAD = [
    (lambda: nn.ClassNLLCriterion(), randn(3, 4), [P(np.array([0, 1, 2])), P(np.array([1, 5, 2])),
                                                   P(np.array([1.5, 2.0, 3.0])), P(np.array([1, 2]))]),
    (lambda: nn.SpatialClassNLLCriterion(), randn(1, 3, 2, 2),
     [P(np.zeros((1, 2, 2), dtype=np.int64)), P(np.full((1, 2, 2), 4)), P(np.full((1, 2, 2), 1.5)),
      P(np.ones((1, 2, 3), dtype=np.int64)), 1]),
    (lambda: nn.MultiMarginCriterion(), randn(3, 4), [P(np.array([0, 1, 2])), P(np.array([1, 5, 2])),
                                                      P(np.array([1.5, 2.0, 3.0])), P(np.array([1, 2])), 'a']),
    (lambda: nn.MultiLabelMarginCriterion(), randn(2, 3),
     [P(np.array([[1, 4, 0], [1, 0, 0]])), P(np.array([[-1, 0, 0], [1, 0, 0]])),
      P(np.array([[1.5, 0, 0], [1, 0, 0]])), P(np.array([1, 2, 0]))]),
    (lambda: nn.ClassSimplexCriterion(4), randn(3, 4), [P(np.array([0, 1, 2])), P(np.array([1, 5, 2])),
                                                        P(np.array([1.5, 2.0, 3.0])), 2.5]),
    (lambda: nn.AbsCriterion(), randn(3, 4), [P(randn(11)), P(np.ones((3, 4), dtype=np.int64)),
                                             P(randn(3, 4).astype(np.float32)), 1.0]),
    (lambda: nn.BCECriterion(), np.full((2, 2), 0.5), [P(randn(3)), None]),
    (lambda: nn.DistKLDivCriterion(), randn(3, 4), [P(randn(12))]),
    (lambda: nn.MultiLabelSoftMarginCriterion(P(np.ones(3))), randn(2, 4), [P(np.ones((2, 4)))]),
    (lambda: nn.WeightedMSECriterion(P(np.ones(5))), randn(3, 4), [P(randn(3, 4))]),
    (lambda: nn.CosineEmbeddingCriterion(), [P(randn(3, 4)), P(randn(3, 4))], [P(np.ones(2)), 1]),
    (lambda: nn.MarginRankingCriterion(), [P(randn(3)), P(randn(3))], [P(np.ones(2))]),
]


@pytest.mark.parametrize('k', range(len(BAD)), ids=[f().__typename__ for f, _, _ in BAD])
def test_bad_input_raises_then_usable(k):
    make, x, bads = BAD[k]
    crit = make()
    name = crit.__typename__
    x = x if isinstance(x, list) else P(x)
    for bad in bads:
        with pytest.raises(ValueError, match=name.replace('.', r'\.')):
            crit.forward(x, bad)
        with pytest.raises(ValueError, match=name.replace('.', r'\.')):
            crit.backward(x, bad)
    # still usable on good input
    good = {'nn.ClassNLLCriterion': P(np.array([1, 2, 4])), 'nn.MultiMarginCriterion': P(np.array([1, 2, 4])),
            'nn.ClassSimplexCriterion': P(np.array([1, 2, 4])),
            'nn.SpatialClassNLLCriterion': P(np.ones((1, 2, 2), dtype=np.int64)),
            'nn.MultiLabelMarginCriterion': P(np.array([[1, 3, 0], [2, 0, 0]]))}.get(name)
    if good is None:
        good = P(np.full(x.size(), 0.5)) if isinstance(x, pynn.Tensor) else P(np.ones(x[0].size(1)))
    if name == 'nn.MultiLabelSoftMarginCriterion':
        return  # its weights do not fit this input at all
    if name == 'nn.WeightedMSECriterion':
        crit, good = nn.WeightedMSECriterion(P(np.ones(4))), P(randn(3, 4))
    out = crit.forward(x, good)
    assert isinstance(out, float) and np.isfinite(out)
    crit.backward(x, good)


def test_bce_input_outside_unit_interval():
    with pytest.raises(ValueError, match=r'nn\.BCECriterion.*between 0 and 1'):
        nn.BCECriterion().forward(P(np.array([0.5, 1.5])), P(np.array([1.0, 0.0])))


def test_constructor_errors():
    with pytest.raises(ValueError, match='nn.MultiMarginCriterion'):
        nn.MultiMarginCriterion(3)
    for cls in (nn.BCECriterion, nn.MultiLabelSoftMarginCriterion, nn.SpatialClassNLLCriterion):
        with pytest.raises(ValueError, match='1-D'):
            cls(P(randn(2, 2)))


# --------------------------------------------------------------------------- inside Lua's containers
def _fixture(name):
    path = REF / (name + '.t7')
    if not path.exists():
        pytest.skip('Lua nn fixtures not found at ../shared/reference/lua-nn')
    return pynn.load(path)


def test_criteria_inside_lua_container_fixtures():
    """The saved sub-criteria of Lua's ParallelCriterion / MultiCriterion / ModuleCriterion
    cases, combined by hand the way Lua's containers combine them (updateOutput's return value
    times the weight, updateGradInput's return value added), reproduce Lua's loss and gradInput."""
    fx = _fixture('ParallelCriterion_1')
    c = fx['criterion']
    x, t = fx['input'], fx['target']
    loss = sum(w * k.updateOutput(xi, ti) for w, k, xi, ti in zip(c.weights, c.criterions, x, t))
    rel_close(loss, fx['loss'])
    for w, k, xi, ti, want in zip(c.weights, c.criterions, x, t, fx['gradInput']):
        close(k.updateGradInput(xi, ti).numpy() * w, want.numpy())

    fx = _fixture('MultiCriterion_1')
    c = fx['criterion']
    ws = [c.weights[i] for i in range(1, 3)] if hasattr(c.weights, 'size') else list(c.weights)
    x, t = fx['input'], fx['target']
    loss = sum(w * k.updateOutput(x, t) for w, k in zip(ws, c.criterions))
    rel_close(loss, fx['loss'])
    g = sum(w * k.updateGradInput(x, t).numpy() for w, k in zip(ws, c.criterions))
    close(g, fx['gradInput'].numpy())

    fx = _fixture('ModuleCriterion_1')
    c = fx['criterion']
    x, t = fx['input'], fx['target']
    xi = c.inputModule.forward(x)
    ti = c.targetModule.forward(t)
    rel_close(c.criterion.forward(xi, ti), fx['loss'])
    close(c.inputModule.backward(x, c.criterion.backward(xi, ti)), fx['gradInput'].numpy())


def _cuda(a):
    if isinstance(a, list):
        return [_cuda(v) for v in a]
    if isinstance(a, pynn.Tensor):
        return a.type('torch.CudaLongTensor' if a.type() == 'torch.LongTensor' else 'torch.CudaDoubleTensor')
    return a


@pytest.mark.skipif(not pynn.backend.HAS_CUDA, reason='no CUDA device (CuPy) on this machine')
@pytest.mark.parametrize('k', range(len(INSTANCES)), ids=[type(c).__name__ for c, _, _ in INSTANCES])
def test_cuda_matches_cpu(k):
    crit, xa, ta = INSTANCES[k]
    x, t = _wrap(xa, np.float64), _wrap(ta, np.float64)
    if isinstance(crit, nn.SpatialAutoCropMSECriterion):
        t = P(ta[:, 1:3, 1:4].copy())
    cpu = crit.clone()
    out = cpu.forward(x, t)
    g = cpu.backward(x, t)
    gpu = crit.clone().type('torch.CudaDoubleTensor')
    out_c = gpu.forward(_cuda(x), _cuda(t))
    g_c = gpu.backward(_cuda(x), _cuda(t))
    assert isinstance(out_c, float) and abs(out_c - out) <= 1e-10 * max(1, abs(out))
    for a, b in zip(g_c if isinstance(g_c, list) else [g_c], g if isinstance(g, list) else [g]):
        assert a.type() == 'torch.CudaDoubleTensor'
        np.testing.assert_allclose(a.numpy().get(), b.numpy(), rtol=1e-10, atol=1e-12)
