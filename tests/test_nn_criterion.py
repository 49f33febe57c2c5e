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
