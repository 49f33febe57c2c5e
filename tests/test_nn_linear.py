"""nn.Linear vs PyTorch (float64, 1e-10), finite-difference Jacobians, buffers, errors."""
import math
import tracemalloc

import numpy as np
import pytest
import torch.nn.functional as F

import pynn
from pynn import nn
from _oracle import P, T, close

TOL = 1e-10


def rnd(*shape, seed=0):
    return P(np.random.default_rng(seed).standard_normal(shape))


def jacobian_check(m, x, params=(), h=1e-6, tol=1e-6):
    """Lua nn.Jacobian-style: analytic (one-hot gradOutput backward) vs central differences."""
    out = m.forward(x).clone()
    nout, nin = out.nElement(), x.nElement()
    xa = x.numpy().reshape(-1)
    jac_in = np.zeros((nin, nout))
    jac_p = [np.zeros((p.nElement(), nout)) for p, _ in params]
    for j in range(nout):
        g = out.new().resizeAs(out).zero()
        g.numpy().reshape(-1)[j] = 1
        m.forward(x)
        for _, gp in params:
            gp.zero()
        gi = m.backward(x, g)
        jac_in[:, j] = gi.numpy().reshape(-1)
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

    assert np.abs(numeric(xa) - jac_in).max() < tol
    for k, (p, _) in enumerate(params):
        assert np.abs(numeric(p.numpy()) - jac_p[k]).max() < tol


@pytest.mark.parametrize('batch', [None, 1, 7])
@pytest.mark.parametrize('bias', [True, False])
def test_linear_vs_torch(batch, bias):
    m = nn.Linear(6, 4, bias)
    if batch is None:
        x, g = rnd(6, seed=1), rnd(4, seed=2)
    else:
        x, g = rnd(batch, 6, seed=1), rnd(batch, 4, seed=2)
    xt = T(x).requires_grad_()
    wt = T(m.weight).requires_grad_()
    bt = T(m.bias).requires_grad_() if bias else None
    yt = F.linear(xt, wt, bt)
    yt.backward(T(g))
    m.zeroGradParameters()
    close(m.forward(x), yt)
    close(m.updateGradInput(x, g), xt.grad)
    m.accGradParameters(x, g, 0.5)
    close(m.gradWeight, 0.5 * wt.grad)
    if bias:
        close(m.gradBias, 0.5 * bt.grad)
    # accumulation, and backward == updateGradInput + accGradParameters(scale)
    m.backward(x, g, 2)
    close(m.gradWeight, 2.5 * wt.grad)
    if bias:
        close(m.gradBias, 2.5 * bt.grad)
    else:
        assert 'bias' not in m.__dict__ and 'gradBias' not in m.__dict__


def test_linear_fields_addbuffer_and_print():
    m = nn.Linear(10, 5)
    assert m.weight.size() == (5, 10) and m.gradWeight.size() == (5, 10)
    assert m.bias.size() == (5,) and m.gradBias.size() == (5,)
    assert str(m) == 'nn.Linear(10 -> 5)' and m.__typename__ == 'nn.Linear'
    assert 'addBuffer' not in m.__dict__
    m.forward(rnd(10))
    assert 'addBuffer' not in m.__dict__          # only created for batch input, as Lua
    m.forward(rnd(3, 10))
    assert m.addBuffer.size() == (3,) and np.all(m.addBuffer.numpy() == 1)
    st = m.addBuffer.storage()
    m.backward(rnd(3, 10), rnd(3, 5))
    m.forward(rnd(2, 10))
    assert m.addBuffer.size() == (2,) and m.addBuffer.storage() is st
    m.noBias()
    assert str(m) == 'nn.Linear(10 -> 5) without bias'
    assert m.parameters() == ([m.weight], [m.gradWeight])
    m.clearState()
    assert m.addBuffer.storage() is None and m.output.storage() is None


def test_linear_output_storage_reused():
    m = nn.Linear(4, 3)
    x = rnd(5, 4)
    o = m.forward(x)
    st = o.storage()
    m.forward(rnd(5, 4, seed=3))
    assert m.output is o and o.storage() is st


def test_linear_reset():
    pynn.manualSeed(1)
    m = nn.Linear(16, 8)
    stdv = 1 / math.sqrt(16)
    assert np.abs(m.weight.numpy()).max() <= stdv and np.abs(m.bias.numpy()).max() <= stdv
    assert np.abs(m.weight.numpy()).max() > stdv / 2
    m.reset(0.1)
    lim = 0.1 * math.sqrt(3)
    assert np.abs(m.weight.numpy()).max() <= lim and np.abs(m.weight.numpy()).max() > 0.1
    assert np.abs(m.bias.numpy()).max() <= lim


def test_linear_jacobian():
    m = nn.Linear(4, 3)
    jacobian_check(m, rnd(2, 4, seed=4), [(m.weight, m.gradWeight), (m.bias, m.gradBias)])
    jacobian_check(m, rnd(4, seed=5), [(m.weight, m.gradWeight), (m.bias, m.gradBias)])


def test_linear_shared_acc_update():
    m = nn.Linear(3, 2)
    x, g = rnd(4, 3), rnd(4, 2)
    w0, b0 = m.weight.clone(), m.bias.clone()
    m.forward(x)
    m.sharedAccUpdateGradParameters(x, g, 0.1)
    close(m.weight, w0.numpy() - 0.1 * g.numpy().T @ x.numpy())
    close(m.bias, b0.numpy() - 0.1 * g.numpy().sum(0))
    assert m.gradWeight is not m.weight


@pytest.mark.parametrize('bad', ['3d', 'features', 'type', 'table'])
def test_linear_bad_input(bad):
    m = nn.Linear(4, 3)
    x = {'3d': rnd(2, 3, 4), 'features': rnd(2, 5), 'type': pynn.FloatTensor(2, 4),
         'table': [rnd(2, 4)]}[bad]
    out_before = m.output
    with pytest.raises(ValueError, match='nn.Linear'):
        m.forward(x)
    assert m.output is out_before and m.output.nElement() == 0 and 'addBuffer' not in m.__dict__
    y = m.forward(rnd(2, 4))
    assert y.size() == (2, 3)
    with pytest.raises(ValueError, match='nn.Linear'):
        m.backward(rnd(2, 4), rnd(2, 4))
    m.backward(rnd(2, 4), rnd(2, 3))


def test_linear_float32():
    m = nn.Linear(5, 3).float()
    x = pynn.FloatTensor(4, 5).normal()
    y = m.forward(x)
    assert y.type() == 'torch.FloatTensor' and y.numpy().dtype == np.float32
    gi = m.backward(x, pynn.FloatTensor(4, 3).normal())
    assert gi.type() == 'torch.FloatTensor' and m.addBuffer.type() == 'torch.FloatTensor'
    ref = x.numpy().astype(np.float64) @ m.weight.numpy().T.astype(np.float64) + m.bias.numpy()
    np.testing.assert_allclose(y.numpy(), ref, atol=1e-5)


def test_linear_meta():
    m = nn.Linear(8, 4).type('torch.MetaDoubleTensor')
    y = m.forward(pynn.MetaDoubleTensor(3, 8))
    assert y.size() == (3, 4) and y.is_meta() and m.addBuffer.size() == (3,)
    gi = m.backward(pynn.MetaDoubleTensor(3, 8), pynn.MetaDoubleTensor(3, 4))
    assert gi.size() == (3, 8) and gi.is_meta()


def test_linear_no_big_temporaries():
    m = nn.Linear(256, 128)
    x, g = rnd(32, 256), rnd(32, 128)
    for _ in range(2):
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        m.forward(x)
        m.backward(x, g)
        peak = tracemalloc.get_traced_memory()[1] - base
        tracemalloc.stop()
    owned = sum(t.storage().nbytes() for t in (m.weight, m.bias, m.gradWeight, m.gradBias,
                                                m.output, m.gradInput, m.addBuffer))
    assert peak < 0.1 * owned, (peak, owned)


# ================================================================== the rest of the linear family
import torch  # noqa: E402
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

HYP = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def tt(t, grad=True):
    x = T(t)
    return x.requires_grad_() if grad else x


def backward_all(m, x, g, scale=1):
    m.zeroGradParameters()
    return m.backward(x, g, scale)


# --- Add / CAdd / CMul / Mul ----------------------------------------------------------------
@HYP
@given(st.integers(1, 4), st.integers(1, 5), st.booleans(), st.floats(0.25, 2))
def test_add_vs_torch(batch, n, scalar, scale):
    pynn.manualSeed(7)
    m = nn.Add(n, scalar or None)
    for x in (rnd(n, seed=batch), rnd(batch, n, seed=n)):
        g = rnd(*x.size(), seed=7)
        xt, bt = tt(x), tt(m.bias)
        yt = xt + (bt[0] if scalar else bt)
        yt.backward(T(g))
        close(m.forward(x), yt)
        close(backward_all(m, x, g, scale), xt.grad)
        close(m.gradBias, scale * bt.grad)


@HYP
@given(st.integers(1, 3), st.integers(1, 4), st.integers(1, 4), st.sampled_from(['same', 'expand', 'batch']),
       st.floats(0.25, 2))
def test_cadd_cmul_vs_torch(b, r, c, mode, scale):
    pynn.manualSeed(7)
    for cls in (nn.CAdd, nn.CMul):
        if mode == 'expand':   # a 1 x c parameter broadcast over r rows
            m, x = cls(1, c), rnd(r, c, seed=b)
        elif mode == 'batch':
            m, x = cls(r, c), rnd(b, r, c, seed=c)
        else:
            m, x = cls(r, c), rnd(r, c, seed=r)
        p = m.bias if cls is nn.CAdd else m.weight
        gp = m.gradBias if cls is nn.CAdd else m.gradWeight
        g = rnd(*x.size(), seed=11)
        xt, pt = tt(x), tt(p)
        yt = xt + pt if cls is nn.CAdd else xt * pt
        yt.backward(T(g))
        close(m.forward(x), yt)
        close(backward_all(m, x, g, scale), xt.grad)
        close(gp, scale * pt.grad)


def test_mul_vs_torch_and_printing():
    m = nn.Mul()
    x, g = rnd(3, 4), rnd(3, 4, seed=1)
    xt, wt = tt(x), tt(m.weight)
    yt = xt * wt[0]
    yt.backward(T(g))
    close(m.forward(x), yt)
    close(backward_all(m, x, g, 0.5), xt.grad)
    close(m.gradWeight, 0.5 * wt.grad)
    assert str(m) == 'nn.Mul' and str(nn.CMul(2, 3)) == 'nn.CMul'
    assert nn.CAdd(2, 3).size.tolist() == [2, 3] and nn.CMul(pynn.LongStorage([4])).weight.size() == (4,)


# --- Bilinear --------------------------------------------------------------------------------
@HYP
@given(st.integers(1, 4), st.integers(1, 4), st.integers(1, 4), st.integers(1, 3), st.booleans())
def test_bilinear_vs_torch(b, n1, n2, k, bias):
    pynn.manualSeed(7)
    m = nn.Bilinear(n1, n2, k, bias)
    x = [rnd(b, n1, seed=1), rnd(b, n2, seed=2)]
    g = rnd(b, k, seed=3)
    x1, x2, wt = tt(x[0]), tt(x[1]), tt(m.weight)
    bt = tt(m.bias) if bias else None
    yt = F.bilinear(x1, x2, wt, bt)
    yt.backward(T(g))
    close(m.forward(x), yt)
    gi = backward_all(m, x, g)
    close(gi[0], x1.grad)
    close(gi[1], x2.grad)
    close(m.gradWeight, wt.grad)
    if bias:
        close(m.gradBias, bt.grad)
    # Lua scales only the bias gradient
    m.zeroGradParameters()
    m.backward(x, g, 0.5)
    close(m.gradWeight, wt.grad)
    if bias:
        close(m.gradBias, 0.5 * bt.grad)


def test_bilinear_printing_and_bad_input():
    m = nn.Bilinear(3, 2, 4)
    assert str(m) == 'nn.Bilinear(3x2 -> 4) '
    assert str(nn.Bilinear(3, 2, 4, False)) == 'nn.Bilinear(3x2 -> 4)  without bias'
    for bad in (rnd(2, 3), [rnd(2, 3)], [rnd(2, 3), rnd(2, 3)], [rnd(2, 3), rnd(3, 2)], [rnd(3), rnd(2)]):
        with pytest.raises(ValueError, match='nn.Bilinear'):
            m.forward(bad)
    assert m.output.nElement() == 0
    assert m.forward([rnd(2, 3), rnd(2, 2)]).size() == (2, 4)


# --- Euclidean / WeightedEuclidean / Cosine --------------------------------------------------
def _torch_euclid(x, w, c=None):
    d = x.unsqueeze(-1) - w            # (..., in, out)
    if c is not None:
        d = d * c
    return d.pow(2).sum(-2).sqrt()


@HYP
@given(st.integers(1, 4), st.integers(1, 4), st.integers(1, 4), st.booleans())
def test_euclidean_vs_torch(b, n_in, n_out, weighted):
    pynn.manualSeed(7)
    m = nn.WeightedEuclidean(n_in, n_out) if weighted else nn.Euclidean(n_in, n_out)
    if weighted:
        m.diagCov.uniform(0.5, 1.5)
    for x in (rnd(n_in, seed=b), rnd(b, n_in, seed=n_in)):
        g = rnd(*m.forward(x).size(), seed=5)
        xt, wt = tt(x), tt(m.weight)
        ct = tt(m.diagCov) if weighted else None
        yt = _torch_euclid(xt, wt, ct)
        yt.backward(T(g))
        close(m.forward(x), yt)
        # Lua divides by output + 1e-7 in the backward: equal to ~1e-7 relative
        close(backward_all(m, x, g), xt.grad, 1e-5)
        close(m.gradWeight, wt.grad, 1e-5)
        if weighted:
            close(m.gradDiagCov, ct.grad, 1e-5)


@HYP
@given(st.integers(1, 4), st.integers(2, 4), st.integers(1, 4))
def test_cosine_vs_torch(b, n_in, n_out):
    pynn.manualSeed(7)
    m = nn.Cosine(n_in, n_out)
    for x in (rnd(n_in, seed=b), rnd(b, n_in, seed=n_in)):
        g = rnd(*m.forward(x).size(), seed=5)
        xt, wt = tt(x), tt(m.weight)
        xb = xt if x.dim() == 2 else xt.unsqueeze(0)
        yt = F.cosine_similarity(xb.unsqueeze(1), wt.unsqueeze(0), dim=2, eps=0)
        yt = yt if x.dim() == 2 else yt[0]
        yt.backward(T(g))
        close(m.forward(x), yt, 1e-10)
        # Lua's 1e-12 added to the norms: gradients equal to ~1e-9 where they nearly cancel
        close(backward_all(m, x, g), xt.grad, 1e-8)
        close(m.gradWeight, wt.grad, 1e-8)


def test_distance_jacobians():
    for m in (nn.Euclidean(3, 2), nn.WeightedEuclidean(3, 2), nn.Cosine(3, 2)):
        params = [(m.weight, m.gradWeight)]
        if m.__typename__ == 'nn.WeightedEuclidean':
            params.append((m.diagCov, m.gradDiagCov))
        jacobian_check(m, rnd(2, 3, seed=4), params, tol=1e-5)
        jacobian_check(m, rnd(3, seed=5), params, tol=1e-5)


# --- LinearWeightNorm ------------------------------------------------------------------------
@HYP
@given(st.integers(1, 4), st.integers(1, 4), st.integers(1, 4), st.booleans(), st.booleans())
def test_linear_weight_norm_vs_torch(b, n_in, n_out, bias, batch):
    pynn.manualSeed(7)
    m = nn.LinearWeightNorm(n_in, n_out, bias)
    m.g.uniform(0.5, 2)
    x = rnd(b, n_in, seed=1) if batch else rnd(n_in, seed=1)
    g = rnd(b, n_out, seed=2) if batch else rnd(n_out, seed=2)
    vt, gt = tt(m.v), tt(m.g)
    bt = tt(m.bias) if bias else None
    xt = tt(x)
    wt = gt * vt / vt.norm(dim=1, keepdim=True)
    yt = F.linear(xt, wt, bt)
    yt.backward(T(g))
    close(m.forward(x), yt)
    close(backward_all(m, x, g), xt.grad)
    close(m.gradV, vt.grad)
    close(m.gradG, gt.grad)
    if bias:
        close(m.gradBias, bt.grad)
    assert [p for p in m.parameters()[0]] == ([m.v, m.g, m.bias] if bias else [m.v, m.g])
    assert str(m) == 'nn.LinearWeightNorm(%d -> %d)%s' % (n_in, n_out, '' if bias else ' without bias')


def test_linear_weight_norm_to_and_from_linear():
    lin = nn.Linear(4, 3)
    m = nn.LinearWeightNorm.fromLinear(lin)
    x = rnd(2, 4)
    close(m.forward(x), lin.forward(x))
    back = m.toLinear()
    close(back.weight, lin.weight)
    m.evaluate()
    close(m.forward(x), lin.forward(x))


# --- LookupTable -----------------------------------------------------------------------------
@HYP
@given(st.integers(2, 8), st.integers(1, 4), st.lists(st.integers(1, 8), min_size=1, max_size=6),
       st.booleans(), st.booleans(), st.floats(0.25, 2))
def test_lookup_table_vs_torch(n, d, idx, batch, freq, scale):
    pynn.manualSeed(7)
    idx = [min(i, n) for i in idx]
    m = nn.LookupTable(n, d)
    if freq:
        m.scaleGradByFreq()
    x = pynn.LongTensor([idx, idx[::-1]] if batch else idx)
    g = rnd(*((2, len(idx), d) if batch else (len(idx), d)), seed=3)
    wt = tt(m.weight)
    yt = F.embedding(T(x) - 1, wt, scale_grad_by_freq=freq)
    yt.backward(T(g))
    close(m.forward(x), yt)
    gi = backward_all(m, x, g, scale)
    assert gi.type() == 'torch.LongTensor' and gi.size() == x.size() and not gi.numpy().any()
    close(m.gradWeight, scale * wt.grad)
    # the same indices as doubles (Lua copies them into the LongTensor _input)
    close(m.forward(x.double()), yt)


def test_lookup_table_padding_and_max_norm_vs_torch():
    m = nn.LookupTable(6, 3, 2)          # paddingValue 2: index 2 gets no gradient
    x = pynn.LongTensor([1, 2, 2, 5])
    m.forward(x)
    g = rnd(4, 3)
    backward_all(m, x, g)
    wt = tt(m.weight)
    F.embedding(T(x) - 1, wt, padding_idx=1).backward(T(g))
    close(m.gradWeight, wt.grad)
    m = nn.LookupTable(6, 3, 0, 1.0)     # maxNorm 1: rows used are renormalized (THNN's 1e-7)
    m.weight.mul(3)
    w0 = T(m.weight).clone()
    idx = pynn.LongTensor([[1, 4], [4, 6]])
    y = m.forward(idx)
    ref = F.embedding(T(idx) - 1, w0, max_norm=1.0)
    close(y, ref)
    close(m.weight, w0)                  # torch renormalized the rows of w0 in place, as THNN
    assert str(m) == 'nn.LookupTable'


def test_lookup_table_bad_input():
    m = nn.LookupTable(5, 2)
    for bad in (pynn.LongTensor([0, 1]), pynn.LongTensor([6]), pynn.DoubleTensor([1.5]), [pynn.LongTensor([1])],
                pynn.LongTensor(1, 1, 1).fill(1)):
        with pytest.raises(ValueError, match='nn.LookupTable'):
            m.forward(bad)
    assert m.forward(pynn.LongTensor([1, 5])).size() == (2, 2)


def test_lookup_table_meta_and_float():
    m = nn.LookupTable(5, 2).float()
    y = m.forward(pynn.LongTensor([[1, 2, 3]]))
    assert y.type() == 'torch.FloatTensor' and y.size() == (1, 3, 2)
    m.backward(pynn.LongTensor([[1, 2, 3]]), pynn.FloatTensor(1, 3, 2).fill(1))
    assert m.gradWeight.numpy()[:3].sum() == 6
    mm = nn.LookupTable(5, 2).type('torch.MetaDoubleTensor')
    assert mm.forward(pynn.LongTensor([[1, 2, 3]])).size() == (1, 3, 2)


# --- SparseLinear / IndexLinear --------------------------------------------------------------
def _dense(entries, n_in):
    a = np.zeros((len(entries), n_in))
    for r, e in enumerate(entries):
        for k, v in e:
            a[r, k - 1] += v
    return a


def _sparse(e):
    return P(np.array(e, dtype=np.float64).reshape(-1, 2))


@HYP
@given(st.integers(1, 6), st.integers(1, 4),
       st.lists(st.lists(st.tuples(st.integers(1, 6), st.floats(-2, 2)), min_size=1, max_size=4,
                         unique_by=lambda kv: kv[0]), min_size=1, max_size=3),
       st.booleans())
def test_sparse_linear_vs_torch(n_in, n_out, entries, batch):
    pynn.manualSeed(7)
    entries = [[(min(k, n_in), v) for k, v in dict((min(k, n_in), v) for k, v in e).items()] for e in entries]
    if not batch:
        entries = entries[:1]
    m = nn.SparseLinear(n_in, n_out, True)
    x = [_sparse(e) for e in entries] if batch else _sparse(entries[0])
    xd = T(P(_dense(entries, n_in))).requires_grad_()
    wt, bt = tt(m.weight), tt(m.bias)
    yt = F.linear(xd, wt, bt)
    g = rnd(*yt.shape, seed=2)
    yt.backward(T(g))
    y = m.forward(x)
    close(y, yt if batch else yt[0])
    m.zeroGradParameters()
    go = g if batch else P(g.numpy()[0])
    gi = m.backward(x, go)
    close(m.gradWeight, wt.grad)
    close(m.gradBias, bt.grad)
    assert len(gi) == len(entries)
    for r, t in enumerate(gi):   # doGradInput: dense gradient as (index, value) rows
        close(P(t.numpy()[:, 1].copy()), xd.grad[r])


def test_sparse_linear_legacy_and_sparse_updates():
    m = nn.SparseLinear(5, 3)
    x = P(np.array([[[1, 0.5], [4, -1.0]], [[2, 2.0], [5, 0.0]]]))    # legacy: batch x nnz x 2
    dense = np.array([[0.5, 0, 0, -1, 0], [0, 2, 0, 0, 0]])
    close(m.forward(x), dense @ m.weight.numpy().T + m.bias.numpy())
    m.zeroGradParameters()
    g = rnd(2, 3)
    assert m.backward(x, g).size() == x.size()
    close(m.gradWeight, g.numpy().T @ dense)
    # sparse zeroGradParameters / updateParameters touch only the columns of the last input
    w0 = m.weight.clone()
    m.updateParameters(0.1)
    changed = np.abs(m.weight.numpy() - w0.numpy()).sum(0) > 0
    assert list(changed) == [True, True, False, True, False]
    m.zeroGradParameters()
    assert not m.gradWeight.numpy().any() and not m.gradBias.numpy().any()


def test_sparse_linear_bad_input():
    m = nn.SparseLinear(4, 2)
    for bad in (rnd(3), P(np.array([[0, 1.0]])), P(np.array([[5, 1.0]])), rnd(2, 3), ['x']):
        with pytest.raises(ValueError, match='nn.SparseLinear'):
            m.forward(bad)
    assert m.forward(P(np.array([[1, 1.0]]))).size() == (2,)


def test_sparse_linear_jacobian_wrt_weights():
    m = nn.SparseLinear(4, 3)
    x = [_sparse([(1, 0.5), (3, -1.0)]), _sparse([(4, 2.0)])]
    out = m.forward(x)
    g = rnd(*out.size(), seed=9)
    m.zeroGradParameters()
    m.backward(x, g)
    num = np.zeros(m.weight.size())
    w = m.weight.numpy()
    for i in np.ndindex(*w.shape):
        v = w[i]
        w[i] = v + 1e-6
        a = (m.forward(x).numpy() * g.numpy()).sum()
        w[i] = v - 1e-6
        b = (m.forward(x).numpy() * g.numpy()).sum()
        w[i] = v
        num[i] = (a - b) / 2e-6
    np.testing.assert_allclose(m.gradWeight.numpy(), num, atol=1e-6)


@HYP
@given(st.integers(2, 8), st.integers(1, 4),
       st.lists(st.lists(st.tuples(st.integers(1, 8), st.floats(-2, 2)), min_size=1, max_size=4),
                min_size=1, max_size=3), st.floats(0.25, 2))
def test_index_linear_vs_torch(n_in, n_out, entries, scale):
    pynn.manualSeed(7)
    entries = [[(min(k, n_in), v) for k, v in e] for e in entries]
    m = nn.IndexLinear(n_in, n_out)
    m.reset()
    keys = [pynn.LongTensor([k for k, _ in e]) for e in entries]
    vals = [pynn.DoubleTensor([v for _, v in e]) for e in entries]
    xd = torch.from_numpy(_dense(entries, n_in))
    wt, bt = tt(m.weight), tt(m.bias)
    yt = xd @ wt + bt
    g = rnd(*yt.shape, seed=4)
    yt.backward(T(g))
    close(m.forward([keys, vals]), yt)
    m.zeroGradParameters()
    assert m.backward([keys, vals], g, scale) == []
    close(m.gradBias, scale * bt.grad)
    # the dense gradient rows, one per key, scattered back = torch's weight gradient
    gw = np.zeros((n_in, n_out))
    np.add.at(gw, m.running['keys'][0].numpy() - 1, m.running['gradWeight'][0].numpy())
    close(P(gw), scale * wt.grad)
    assert m.running['counter'] == 2
    # updateParameters applies exactly that gradient
    w0 = m.weight.clone()
    m.updateParameters(0.1)
    close(m.weight, w0.numpy() - 0.1 * gw)


def test_index_linear_forms_and_normalize():
    m = nn.IndexLinear(6, 2, True)
    m.reset()
    k, v = pynn.LongTensor([2, 5]), pynn.DoubleTensor([1.0, -0.5])
    one = m.forward([k, v]).clone()
    assert one.size() == (2,)
    close(one, m.weight.numpy()[[1, 4]].T @ v.numpy() + m.bias.numpy())
    flat = m.forward([pynn.LongTensor([2, 5, 1]), pynn.DoubleTensor([1.0, -0.5, 3.0]), pynn.LongTensor([2, 1])])
    close(flat.select(1, 1), one)
    m.forward([k, v])
    gi = m.backward([k, v], rnd(2))
    assert len(gi) == 2 and gi[0].size() == (6,) and gi[1].size() == (6,)
    # normalize: values scaled by the running max |value| of their feature (training)
    n = nn.IndexLinear(4, 1, False, None, None, None, True)
    n.reset()
    n.weight.numpy()[:, 3] = 0
    y = n.forward([[pynn.LongTensor([1, 1, 2])], [pynn.DoubleTensor([2.0, -4.0, 0.5])]])
    w = n.weight.numpy()
    assert w[0, 0] == 4.0 and w[0, 1] == 0.25 and w[1, 0] == 0.5
    nv = np.array([2.0 / 2.0, -4.0 / 4.0, 0.5 / 0.5])   # each against the max seen so far
    close(n.normalizedValues, nv)
    close(y, np.array([[nv[0] * w[0, 4] + nv[1] * w[0, 4] + nv[2] * w[1, 4]]]) + n.bias.numpy())


def test_index_linear_bad_input():
    m = nn.IndexLinear(4, 2)
    for bad in (rnd(3), [pynn.LongTensor([5])], [pynn.LongTensor([5]), pynn.DoubleTensor([1.0])],
                [pynn.LongTensor([1, 2]), pynn.DoubleTensor([1.0])]):
        with pytest.raises(ValueError, match='nn.IndexLinear'):
            m.forward(bad)
    assert m.forward([pynn.LongTensor([4]), pynn.DoubleTensor([1.0])]).size() == (2,)


# --- float32, meta, bad input of the dense layers ------------------------------------------------
DENSE = [lambda: nn.Add(4), lambda: nn.CAdd(4), lambda: nn.CMul(4), lambda: nn.Mul(), lambda: nn.Euclidean(4, 3),
         lambda: nn.WeightedEuclidean(4, 3), lambda: nn.Cosine(4, 3), lambda: nn.LinearWeightNorm(4, 3)]


@pytest.mark.parametrize('make', DENSE)
def test_dense_float32_and_meta(make):
    x = rnd(2, 4)
    ref = make()
    y = ref.forward(x)
    gi = ref.backward(x, rnd(*y.size(), seed=1))
    m32 = make().float()
    y32 = m32.forward(x.float())
    assert y32.type() == 'torch.FloatTensor' and y32.size() == y.size()
    assert m32.backward(x.float(), rnd(*y.size(), seed=1).float()).type() == 'torch.FloatTensor'
    meta = make().type('torch.MetaDoubleTensor')
    ym = meta.forward(pynn.MetaDoubleTensor(2, 4))
    assert ym.is_meta() and ym.size() == y.size()
    gm = meta.backward(pynn.MetaDoubleTensor(2, 4), pynn.MetaDoubleTensor(*y.size()))
    assert gm.is_meta() and gm.size() == gi.size()


@pytest.mark.parametrize('make', DENSE)
def test_dense_bad_input(make):
    m = make()
    for bad in ([rnd(2, 4)], pynn.FloatTensor(2, 4)) + ((rnd(2, 5),) if m.__typename__ != 'nn.Mul' else ()):
        with pytest.raises(ValueError, match=m.__typename__):
            m.forward(bad)
    assert m.forward(rnd(2, 4)).dim() == 2


def test_maxout_and_partial_linear_need_their_parts():
    reg = nn.registry()
    if 'nn.Max' in reg:
        m = nn.Maxout(4, 3, 2)
        x = rnd(5, 4)
        y = m.forward(x)
        ref = (x.numpy() @ m.modules[0].weight.numpy().T + m.modules[0].bias.numpy()).reshape(5, 2, 3).max(1)
        close(y, ref)
    if 'nn.MM' in reg:
        m = nn.PartialLinear(4, 5)
        m.network.modules[0].modules[1].weight.normal()
        m.bias.normal()
        m.setPartition(pynn.LongTensor([2, 5]))
        x = rnd(3, 4)
        w = m.network.modules[0].modules[1].weight.numpy()
        close(m.forward(x), x.numpy() @ w[[1, 4]].T + m.bias.numpy()[:, [1, 4]])
        g = rnd(3, 2)
        m.zeroGradParameters()
        gi = m.backward(x, g)
        close(gi, g.numpy() @ w[[1, 4]])
        gb = np.zeros((1, 5))
        gb[0, [1, 4]] = g.numpy().sum(0)
        close(m.gradBias, gb)
        assert str(m) == 'nn.PartialLinear(4 -> 5)'


def test_linear_weight_norm_after_clear_state():
    m = nn.LinearWeightNorm(3, 2)
    y = m.forward(rnd(2, 3)).clone()
    m.clearState()
    assert m.weight.storage() is None
    close(m.forward(rnd(2, 3)), y)
    with pytest.raises(ValueError, match='nn.LinearWeightNorm'):
        m.forward(rnd(2, 4))


def test_sparse_layers_float32_and_meta():
    m = nn.SparseLinear(5, 3).float()
    x = [_sparse([(1, 0.5), (4, -1.0)]).float(), _sparse([(2, 2.0)]).float()]
    y = m.forward(x)
    assert y.type() == 'torch.FloatTensor' and y.size() == (2, 3)
    m.backward(x, pynn.FloatTensor(2, 3).fill(1))
    np.testing.assert_allclose(m.gradBias.numpy(), [2, 2, 2])
    mm = nn.SparseLinear(5, 3).type('torch.MetaDoubleTensor')
    assert mm.forward([pynn.MetaDoubleTensor(2, 2), pynn.MetaDoubleTensor(1, 2)]).size() == (2, 3)
    mm.backward([pynn.MetaDoubleTensor(2, 2), pynn.MetaDoubleTensor(1, 2)], pynn.MetaDoubleTensor(2, 3))
    il = nn.IndexLinear(5, 2).float()
    il.reset()
    y = il.forward([[pynn.LongTensor([1, 3])], [pynn.FloatTensor([1.0, 2.0])]])
    assert y.type() == 'torch.FloatTensor' and y.size() == (1, 2)
    w, b = il.weight.numpy().astype(np.float64), il.bias.numpy().astype(np.float64)
    # float32 sums of three terms: a few roundings of the terms' size (relative to the result
    # they can be large where the terms cancel)
    scale = np.abs(w[0]) + 2 * np.abs(w[2]) + np.abs(b)
    np.testing.assert_allclose(y.numpy()[0], w[0] + 2 * w[2] + b, rtol=0,
                               atol=4 * np.finfo(np.float32).eps * scale.max())


def _index_linear_reference_sgd(w, b, keys, rows, gb, lr, wd, off):
    """THNN's IndexLinear_updateParameters loop (outDim > 1, no normalize), entry by entry."""
    b = b - lr * gb
    for k, g in zip(keys, rows):
        r = k + off
        if wd:
            w[r] -= w[r] * wd
        w[r] -= g * lr
    return w, b


@pytest.mark.parametrize('wd', [0, 0.1])
def test_index_linear_update_parameters_accumulated_and_duplicates(wd):
    m = nn.IndexLinear(5, 3)
    m.reset()
    m.weightDecay = wd
    w0, b0 = m.weight.numpy().copy(), m.bias.numpy().copy()
    batches = [[[pynn.LongTensor([1, 3, 1])], [pynn.DoubleTensor([1.0, 2.0, -1.0])]],
               [[pynn.LongTensor([3]), pynn.LongTensor([5, 3])], [pynn.DoubleTensor([0.5]), pynn.DoubleTensor([1.0, 1.0])]]]
    m.zeroGradParameters()
    keys, rows = [], []
    for i, x in enumerate(batches):          # two accumulations: counter 3, the concatenated path
        y = m.forward(x)
        g = rnd(*y.size(), seed=i)
        m.backward(x, g)
        keys.extend(m.keys.numpy().tolist())
        rows.extend(m.running['gradWeight'][i].numpy())
    assert m.running['counter'] == 3
    gb = m.gradBias.numpy().copy()
    m.updateParameters(0.1)
    w, b = _index_linear_reference_sgd(w0, b0, keys, rows, gb, 0.1, wd, -1)
    np.testing.assert_allclose(m.weight.numpy(), w, atol=1e-12)
    np.testing.assert_allclose(m.bias.numpy(), b, atol=1e-12)
    # accUpdateGradParameters: the same step straight from the last forward's keys and values
    m2 = nn.IndexLinear(5, 3)
    m2.reset()
    m2.weightDecay = wd
    x = batches[0]
    w0, b0 = m2.weight.numpy().copy(), m2.bias.numpy().copy()
    g = rnd(1, 3, seed=4)
    m2.forward(x)
    m2.accUpdateGradParameters(x, g, 0.5)
    rows = [0.5 * v * g.numpy()[0] for v in x[1][0].numpy()]
    w, b = _index_linear_reference_sgd(w0, b0, x[0][0].numpy().tolist(), rows, 0.5 * g.numpy()[0], 1, wd, -1)
    np.testing.assert_allclose(m2.weight.numpy(), w, atol=1e-12)
    np.testing.assert_allclose(m2.bias.numpy(), b, atol=1e-12)


def test_index_linear_normalize_update_parameters():
    m = nn.IndexLinear(4, 2, False, None, None, None, True)
    m.reset()
    x = [[pynn.LongTensor([2, 2, 4])], [pynn.DoubleTensor([1.5, -3.0, 0.5])]]
    m.zeroGradParameters()
    y = m.forward(x)
    m.backward(x, rnd(*y.size(), seed=2))
    w = m.weight.numpy().copy()
    b = m.bias.numpy() - 0.1 * m.gradBias.numpy()
    G = m.running['gradWeight'][0].numpy()
    assert G.shape == (3, 4)                 # [gradOutput, value * gradOutput] per key
    for k, g in zip(m.keys.numpy() - 1, G):   # THNN's loop, entry by entry
        lr = 0.1 * w[k, 2]
        w[k, 3] -= (g[:2] * w[k, 4:]).sum() * lr
        w[k, 4:] -= g[2:] * lr
    m.updateParameters(0.1)
    np.testing.assert_allclose(m.weight.numpy(), w, atol=1e-12)
    np.testing.assert_allclose(m.bias.numpy(), b, atol=1e-12)
