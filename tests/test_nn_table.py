"""nn.JoinTable, SelectTable, NarrowTable, FlattenTable, CAddTable, CMulTable, CSubTable vs
PyTorch (float64, 1e-10), finite differences, object identity (Lua's table semantics), errors."""
import numpy as np
import pytest
import torch

import pynn
from pynn import nn
from _oracle import P, T
import torch.nn.functional as F

RNG = np.random.default_rng(99)
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


def table_jacobian(m, xs, eps=1e-6, tol=1e-6):
    """Finite differences of sum(output * R) w.r.t. each tensor of the input table."""
    out = m.forward(xs)
    R = randn(*out.size())
    gis = [g.numpy().copy() for g in m.backward(xs, P(R))]
    for k, x in enumerate(xs):
        xa = x.numpy()
        num = np.zeros_like(xa)
        for idx in np.ndindex(*xa.shape):
            old = xa[idx]
            xa[idx] = old + eps
            fp = (m.forward(xs).numpy() * R).sum()
            xa[idx] = old - eps
            fm = (m.forward(xs).numpy() * R).sum()
            xa[idx] = old
            num[idx] = (fp - fm) / (2 * eps)
        np.testing.assert_allclose(gis[k], num, rtol=tol, atol=tol)


# --------------------------------------------------------------------------- JoinTable
@pytest.mark.parametrize('shapes,args,tdim', [
    ([(2, 3), (4, 3)], (1,), 0),
    ([(2, 3), (2, 5), (2, 1)], (2,), 1),
    ([(2, 3, 4), (2, 3, 2)], (-1,), 2),
    ([(5, 2, 3), (5, 4, 3)], (1, 2), 1),   # nInputDims=2 with a batch: dim + 1
    ([(2, 3), (4, 3)], (1, 2), 0),         # nInputDims=2 without a batch
    ([(3,), (4,)], (1,), 0),
])
def test_jointable_vs_torch(shapes, args, tdim):
    arrs = [randn(*s) for s in shapes]
    m = nn.JoinTable(*args)
    xs = [P(a) for a in arrs]
    y = m.forward(xs)
    ts = [torch.from_numpy(a).requires_grad_() for a in arrs]
    yt = torch.cat(ts, tdim)
    close(y, yt)
    assert m.size.tolist() == list(yt.shape)
    go = randn(*yt.shape)
    gi = m.backward(xs, P(go))
    yt.backward(torch.from_numpy(go))
    assert isinstance(gi, list) and len(gi) == len(xs)
    for g, t in zip(gi, ts):
        close(g, t.grad)


def test_jointable_table_shrinks_types_and_errors():
    m = nn.JoinTable(2)
    xs = [P(randn(2, 3)) for _ in range(3)]
    m.forward(xs)
    gi = m.backward(xs, P(randn(2, 9)))
    assert len(gi) == 3
    first = gi[0]
    m.forward(xs[:2])
    gi = m.backward(xs[:2], P(randn(2, 6)))
    assert len(gi) == 2 and gi[0] is first  # gradInput tensors are reused, extra ones dropped
    table_jacobian(m, [P(randn(2, 2)), P(randn(2, 3))])
    with pytest.raises(ValueError, match='nn.JoinTable'):
        m.forward([P(randn(2, 3)), P(randn(3, 3))])
    with pytest.raises(ValueError, match='nn.JoinTable'):
        m.forward(P(randn(2, 3)))
    with pytest.raises(ValueError, match='nn.JoinTable'):
        m.forward([])
    with pytest.raises(ValueError, match='nn.JoinTable'):
        nn.JoinTable(3).forward([P(randn(2, 3))])
    with pytest.raises(ValueError, match='nn.JoinTable'):
        m.backward(xs[:2], P(randn(2, 5)))
    assert m.forward(xs[:2]).size() == (2, 6)
    m.float()
    assert m.gradInput == [] and m.output.type() == 'torch.FloatTensor'
    y = m.forward([P(randn(2, 2).astype(np.float32))] * 2)
    assert y.type() == 'torch.FloatTensor' and y.size() == (2, 4)


def test_jointable_meta():
    real, meta = nn.JoinTable(2), nn.JoinTable(2).type('torch.MetaDoubleTensor')
    real.forward([pynn.randn(2, 3, 4), pynn.randn(2, 5, 4)])
    ys = meta.forward([pynn.MetaDoubleTensor(2, 3, 4), pynn.MetaDoubleTensor(2, 5, 4)])
    assert ys.is_meta() and ys.size() == real.output.size() == (2, 8, 4)
    gi = meta.backward([pynn.MetaDoubleTensor(2, 3, 4), pynn.MetaDoubleTensor(2, 5, 4)],
                       pynn.MetaDoubleTensor(2, 8, 4))
    assert [g.size() for g in gi] == [(2, 3, 4), (2, 5, 4)]


# --------------------------------------------------------------------------- SelectTable
def test_selecttable_output_is_the_element_and_grad_zero_filled():
    a, b, c = P(randn(2, 3)), P(randn(4)), P(randn(3, 1))
    for index, k in [(2, 1), (-1, 2), (-3, 0), (1, 0)]:
        m = nn.SelectTable(index)
        y = m.forward([a, b, c])
        assert y is [a, b, c][k]
        go = P(randn(*y.size()))
        gi = m.backward([a, b, c], go)
        assert len(gi) == 3
        for j, (g, x) in enumerate(zip(gi, (a, b, c))):
            assert g.size() == x.size()
            if j == k:
                close(g, T(go))
                assert g is not go and g.storage() is not go.storage()  # a copy, as Lua
            else:
                assert not g.numpy().any()
    assert str(nn.SelectTable(-2)) == 'nn.SelectTable(-2)'


def test_selecttable_nested_tables():
    a, b, c = P(randn(2)), P(randn(3)), P(randn(4))
    m = nn.SelectTable(2)
    inner = [b, [c]]
    assert m.forward([a, inner]) is inner
    go = [P(randn(3)), [P(randn(4))]]
    gi = m.backward([a, inner], go)
    assert not gi[0].numpy().any()
    close(gi[1][0], T(go[0]))
    close(gi[1][1][0], T(go[1][0]))
    # gradInput tensors are reused across calls
    keep = gi[1][1][0]
    gi = m.backward([a, inner], go)
    assert gi[1][1][0] is keep
    # a smaller table drops the extra entries
    m2 = nn.SelectTable(1)
    m2.backward([a, b, c], P(randn(2)))
    assert len(m2.backward([a, b], P(randn(2)))) == 2


def test_selecttable_errors_and_state():
    m = nn.SelectTable(3)
    with pytest.raises(ValueError, match=r'nn\.SelectTable\(3\)'):
        m.forward([P(randn(2)), P(randn(2))])
    with pytest.raises(ValueError, match=r'nn\.SelectTable\(3\)'):
        m.forward(P(randn(3)))
    with pytest.raises(ValueError, match=r'nn\.SelectTable'):
        nn.SelectTable(-4).forward([P(randn(2))] * 3)
    xs = [P(randn(2)) for _ in range(3)]
    assert m.forward(xs) is xs[2]
    m.backward(xs, P(randn(2)))
    m.clearState()
    assert m.output is not xs[2] and isinstance(m.output, pynn.Tensor) and m.gradInput == []
    m.forward(xs)
    m.float()
    assert m.output == [] and m.gradInput == []


# --------------------------------------------------------------------------- NarrowTable
def test_narrowtable():
    xs = [P(randn(2, 3)) for _ in range(5)]
    m = nn.NarrowTable(2, 3)
    out0 = m.output
    y = m.forward(xs)
    assert y is out0 and y == xs[1:4] and all(u is v for u, v in zip(y, xs[1:4]))
    go = [P(randn(2, 3)) for _ in range(3)]
    gi = m.backward(xs, go)
    assert len(gi) == 5
    assert gi[1] is go[0] and gi[2] is go[1] and gi[3] is go[2]  # Lua passes them through
    assert not gi[0].numpy().any() and not gi[4].numpy().any()
    assert gi[0].size() == (2, 3)
    # smaller input: the table shrinks
    gi = m.backward(xs[:4], go)
    assert len(gi) == 4
    assert nn.NarrowTable(3).forward(xs) == [xs[2]]
    with pytest.raises(ValueError, match='nn.NarrowTable'):
        m.forward(xs[:3])
    with pytest.raises(ValueError, match='nn.NarrowTable'):
        m.backward(xs, go[:2])
    with pytest.raises(TypeError):
        nn.NarrowTable()
    assert len(m.forward(xs)) == 3
    # nested non-selected entries are zero-filled tables
    nested = [[P(randn(2)), P(randn(3))], P(randn(4))]
    m2 = nn.NarrowTable(2)
    gi = m2.backward(nested, [P(randn(4))])
    assert isinstance(gi[0], list) and [g.size() for g in gi[0]] == [(2,), (3,)]
    assert not gi[0][0].numpy().any()


def test_narrowtable_lua_test_with_split_join():
    # Lua's nntest.NarrowTable (SplitTable replaced by slicing): NarrowTable + JoinTable(1, 1)
    # + Reshape(3, 3, 4) == Narrow(2, 5, 3), outputs and gradInputs
    xa = randn(3, 10, 4)
    gos = randn(3, 3, 4)
    slices = [P(xa[:, i, :]) for i in range(10)]
    seq = nn.Sequential(nn.NarrowTable(5, 3), nn.JoinTable(1, 1), nn.Reshape(3, 3, 4))
    ref = nn.Narrow(2, 5, 3)
    out = seq.forward(slices)
    close(out, ref.forward(P(xa)))
    close(out, torch.from_numpy(xa[:, 4:7, :]))
    gi = seq.backward(slices, P(gos))
    rgi = ref.backward(P(xa), P(gos))
    assert len(gi) == 10
    for k in range(10):
        close(gi[k], rgi.numpy()[:, k, :])
    # a smaller input table (8 slices)
    out = seq.forward(slices[:8])
    close(out, torch.from_numpy(xa[:, 4:7, :]))
    assert len(seq.backward(slices[:8], P(gos))) == 8


# --------------------------------------------------------------------------- FlattenTable
def test_flattentable():
    a, b, c, d = (P(randn(2)) for _ in range(4))
    inp = [a, [b, [c]], d]
    m = nn.FlattenTable()
    y = m.forward(inp)
    assert len(y) == 4 and all(u is v for u, v in zip(y, (a, b, c, d)))
    assert m.input_map == [1, [2, [3]], 4]
    assert m.forward(inp) is y  # same structure and tensors: no rebuild
    go = [P(randn(2)) for _ in range(4)]
    gi = m.backward(inp, go)
    assert gi[0] is go[0] and gi[1][0] is go[1] and gi[1][1][0] is go[2] and gi[2] is go[3]
    assert m.backward(inp, go) is gi
    inp2 = [a, b]
    y2 = m.forward(inp2)
    assert y2 is not y and y2 == [a, b] and m.input_map == [1, 2]
    with pytest.raises(ValueError, match='nn.FlattenTable'):
        m.forward(a)
    with pytest.raises(ValueError, match='nn.FlattenTable'):
        m.backward(inp2, [go[0]])
    assert m.float() is m and m.input_map == [] and m.output == []
    assert len(m.forward(inp)) == 4


# --------------------------------------------------------------------------- CAddTable / CMulTable / CSubTable
@pytest.mark.parametrize('n', [1, 2, 4])
def test_caddtable_vs_torch(n):
    arrs = [randn(3, 4) for _ in range(n)]
    xs = [P(a) for a in arrs]
    m = nn.CAddTable()
    y = m.forward(xs)
    ts = [torch.from_numpy(a).requires_grad_() for a in arrs]
    yt = sum(ts[1:], ts[0])
    close(y, yt)
    go = randn(3, 4)
    gi = m.backward(xs, P(go))
    yt.backward(torch.from_numpy(go))
    for g, t in zip(gi, ts):
        close(g, t.grad)
        assert g.storage() is not xs[0].storage()


def test_caddtable_inplace_and_errors():
    arrs = [randn(2, 5) for _ in range(3)]
    xs = [P(a.copy()) for a in arrs]
    m = nn.CAddTable(True)
    assert m.inplace is True
    y = m.forward(xs)
    assert y.storage() is xs[0].storage()  # output set to the first input, as Lua
    close(y, arrs[0] + arrs[1] + arrs[2])
    close(xs[0], arrs[0] + arrs[1] + arrs[2])
    go = P(randn(2, 5))
    gi = m.backward(xs, go)
    assert all(g.storage() is go.storage() for g in gi)
    m2 = nn.CAddTable()
    m2.backward(xs, go)
    assert len(m2.backward(xs[:2], go)) == 2
    with pytest.raises(ValueError, match='nn.CAddTable'):
        m2.forward([P(randn(2, 5)), P(randn(3, 5))])
    with pytest.raises(ValueError, match='nn.CAddTable'):
        m2.forward([P(randn(2, 5)), 3])
    with pytest.raises(ValueError, match='nn.CAddTable'):
        m2.backward(xs, P(randn(4)))
    assert m2.forward(xs[:2]).size() == (2, 5)
    table_jacobian(nn.CAddTable(), [P(randn(2, 3)), P(randn(2, 3))])


@pytest.mark.parametrize('n', [2, 3])
def test_cmultable_vs_torch(n):
    arrs = [randn(3, 4) for _ in range(n)]
    xs = [P(a) for a in arrs]
    m = nn.CMulTable()
    y = m.forward(xs)
    ts = [torch.from_numpy(a).requires_grad_() for a in arrs]
    yt = ts[0]
    for t in ts[1:]:
        yt = yt * t
    close(y, yt)
    go = randn(3, 4)
    gi = m.backward(xs, P(go))
    yt.backward(torch.from_numpy(go))
    for g, t in zip(gi, ts):
        close(g, t.grad)
    gi2 = [g.numpy().copy() for g in m.updateGradInput_efficient(xs, P(go))]
    for g, t in zip(gi2, ts):
        close(g, t.grad, 1e-8)
    assert m.tout.size() == (3, 4)
    m.clearState()
    assert m.tout.storage() is None
    table_jacobian(nn.CMulTable(), [P(randn(2, 3)) for _ in range(3)])
    with pytest.raises(ValueError, match='nn.CMulTable'):
        m.forward([P(randn(3)), P(randn(4))])


def test_csubtable_vs_torch():
    a, b = randn(4, 2), randn(4, 2)
    m = nn.CSubTable()
    y = m.forward([P(a), P(b)])
    at, bt = torch.from_numpy(a).requires_grad_(), torch.from_numpy(b).requires_grad_()
    yt = at - bt
    close(y, yt)
    go = randn(4, 2)
    gi = m.backward([P(a), P(b)], P(go))
    yt.backward(torch.from_numpy(go))
    close(gi[0], at.grad)
    close(gi[1], bt.grad)
    table_jacobian(m, [P(randn(2, 3)), P(randn(2, 3))])
    with pytest.raises(ValueError, match='nn.CSubTable'):
        m.forward([P(a)])
    assert m.forward([P(a), P(b)]).size() == (4, 2)


def test_float32_and_meta():
    for m in (nn.CAddTable(), nn.CMulTable(), nn.CSubTable()):
        m.float()
        xs = [P(randn(3, 2).astype(np.float32)) for _ in range(2)]
        y = m.forward(xs)
        assert y.type() == 'torch.FloatTensor'
        gi = m.backward(xs, P(np.ones((3, 2), np.float32)))
        assert all(g.type() == 'torch.FloatTensor' for g in gi)
        mm = type(m)().type('torch.MetaDoubleTensor')
        xm = [pynn.MetaDoubleTensor(3, 2), pynn.MetaDoubleTensor(3, 2)]
        assert mm.forward(xm).size() == (3, 2)
        gi = mm.backward(xm, pynn.MetaDoubleTensor(3, 2))
        assert [g.size() for g in gi] == [(3, 2), (3, 2)]


def test_table_modules_in_containers():
    # ConcatTable -> CAddTable (a residual block) vs torch
    xa = randn(3, 4)
    net = nn.Sequential(nn.ConcatTable(nn.Identity(), nn.Narrow(2, 1, 4), nn.Reshape(3, 4)),
                        nn.CAddTable())
    y = net.forward(P(xa))
    xt = torch.from_numpy(xa).requires_grad_()
    yt = xt + xt + xt
    close(y, yt)
    go = randn(3, 4)
    gi = net.backward(P(xa), P(go))
    yt.backward(torch.from_numpy(go))
    close(gi, xt.grad)
    with pytest.raises(ValueError, match=r'^In 2nd module of nn\.Sequential: nn\.CAddTable'):
        nn.Sequential(nn.Identity(), nn.CAddTable()).forward(P(xa))


# =========================================================================== the rest of the family
# CDivTable CMaxTable CMinTable CAddTensorTable SplitTable MixtureTable ZipTable ZipTableOneToMany
# CosineDistance DotProduct Index MaskedSelect MM MV: PyTorch on random shapes (hypothesis),
# finite differences, float32, meta, bad inputs.
from hypothesis import given, settings, strategies as st  # noqa: E402

HYP = settings(max_examples=15, deadline=None)
dims = st.integers(1, 4)


def _leaves(x):
    if isinstance(x, (list, tuple)):
        for v in x:
            yield from _leaves(v)
    else:
        yield x


def vs_torch(m, arrs, fn, tol=TOL, grad=None, nest=None):
    """forward/backward of m on the table of arrays (nest rebuilds nesting from a flat list)
    against fn on torch tensors with autograd; gradients of the float arrays compared."""
    nest = nest or (lambda v: v)
    xs = nest([P(a) for a in arrs])
    y = m.forward(xs)
    ts = [torch.from_numpy(a.copy()).requires_grad_(a.dtype.kind == 'f') for a in arrs]
    yt = fn(*ts)
    close(y, yt, tol)
    go = randn(*yt.shape)
    gi = m.backward(xs, P(go))
    yt.backward(torch.from_numpy(go))
    for g, t in zip(_leaves(gi), ts):
        if t.requires_grad:
            close(g, t.grad, tol)
    return xs, gi


def sign_safe(*shape):
    """Values at least 0.5 away from 0 (divisors)."""
    a = randn(*shape)
    return np.where(a >= 0, a + 0.5, a - 0.5)


@HYP
@given(st.lists(dims, min_size=1, max_size=3))
def test_cdivtable_vs_torch(shape):
    vs_torch(nn.CDivTable(), [randn(*shape), sign_safe(*shape)], lambda a, b: a / b)


@HYP
@given(st.lists(dims, min_size=1, max_size=3), st.integers(2, 4))
def test_cmax_cmin_table_vs_torch(shape, n):
    arrs = [randn(*shape) for _ in range(n)]
    def red(f):
        def g(*ts):
            out = ts[0]
            for t in ts[1:]:
                out = f(out, t)
            return out
        return g
    vs_torch(nn.CMaxTable(), arrs, red(torch.maximum))
    vs_torch(nn.CMinTable(), arrs, red(torch.minimum))


def test_cmaxtable_ties_go_to_the_first_and_buffers():
    m = nn.CMaxTable()
    a = np.array([1.0, 2.0, 3.0])
    xs = [P(a), P(a.copy()), P(np.array([0.0, 5.0, 3.0]))]
    close(m.forward(xs), [1, 5, 3])
    close(m.maxIdx, [1, 3, 1])                   # strict '>': the first maximum wins
    gi = m.backward(xs, P(np.array([1.0, 2.0, 3.0])))
    close(gi[0], [1, 0, 3])
    close(gi[1], [0, 0, 0])
    close(gi[2], [0, 2, 0])
    assert m.maskByteTensor.type() == 'torch.ByteTensor' and m.mask.size() == (3,)
    assert len(m.backward(xs[:2], P(np.ones(3)))) == 2     # table shrinks with the input


@HYP
@given(st.lists(dims, min_size=1, max_size=2), st.integers(1, 3))
def test_caddtensortable_vs_torch(shape, n):
    arrs = [randn(*shape) for _ in range(n + 1)]
    m = nn.CAddTensorTable()
    xs = [P(arrs[0]), [P(a) for a in arrs[1:]]]
    y = m.forward(xs)
    ts = [torch.from_numpy(a.copy()).requires_grad_() for a in arrs]
    yts = [t + ts[0] for t in ts[1:]]
    assert len(y) == n
    for a, b in zip(y, yts):
        close(a, b)
    gos = [randn(*shape) for _ in range(n)]
    gi = m.backward(xs, [P(g) for g in gos])
    torch.autograd.backward(yts, [torch.from_numpy(g) for g in gos])
    close(gi[0], ts[0].grad)
    for g, t in zip(gi[1], ts[1:]):
        close(g, t.grad)
    assert m.forward(xs)[0] is not y[0]          # Lua builds fresh output tensors each call


@HYP
@given(st.lists(dims, min_size=2, max_size=3), st.data())
def test_splittable_vs_torch(shape, data):
    d = data.draw(st.integers(1, len(shape)))
    neg = data.draw(st.booleans())
    m = nn.SplitTable(d - len(shape) - 1 if neg else d)
    a = randn(*shape)
    x = P(a)
    y = m.forward(x)
    t = torch.from_numpy(a.copy()).requires_grad_()
    yt = torch.unbind(t, d - 1)
    assert len(y) == len(yt)
    for u, v in zip(y, yt):
        close(u, v)
        assert u.storage() is x.storage()         # views of the input, as Lua's select
    gos = [randn(*v.shape) for v in yt]
    gi = m.backward(x, [P(g) for g in gos])
    torch.autograd.backward(yt, [torch.from_numpy(g) for g in gos])
    close(gi, t.grad)


def test_splittable_vector_gives_numbers_like_lua():
    a = randn(3)
    m = nn.SplitTable(1)
    y = m.forward(P(a))
    assert y == a.tolist() and all(isinstance(v, float) for v in y)
    close(m.backward(P(a), [1.0, 2.0, 3.0]), [1, 2, 3])


def test_splittable_ninputdims_and_errors():
    m = nn.SplitTable(1, 2)
    assert len(m.forward(P(randn(5, 3, 4)))) == 3    # batch: dim 1 + 1
    assert len(m.forward(P(randn(3, 4)))) == 3
    with pytest.raises(ValueError, match=r'nn\.SplitTable: expected a tensor with at least'):
        nn.SplitTable(3).forward(P(randn(2, 2)))
    with pytest.raises(ValueError, match=r'nn\.SplitTable: expected gradOutput as a table'):
        m.backward(P(randn(3, 4)), P(randn(3, 4)))
    assert len(m.forward(P(randn(3, 4)))) == 3


@HYP
@given(st.integers(1, 3), st.integers(1, 4), st.integers(1, 4), st.booleans())
def test_mixturetable_table_experts_vs_torch(B, n, D, batch):
    g = randn(B, n) if batch else randn(n)
    es = [randn(B, D) if batch else randn(D) for _ in range(n)]

    def fn(gt, *ets):
        if batch:
            return sum(gt[:, i:i + 1] * e for i, e in enumerate(ets))
        return sum(gt[i] * e for i, e in enumerate(ets))
    vs_torch(nn.MixtureTable(), [g] + es, fn, nest=lambda v: [v[0], v[1:]])


@HYP
@given(st.integers(1, 3), st.integers(1, 4), st.integers(1, 3), st.integers(1, 3), st.booleans())
def test_mixturetable_tensor_experts_vs_torch(B, n, D, E, batch):
    # experts in one tensor along dim 2 (batch) / 1; and along dim 3 for a batch
    g = randn(B, n) if batch else randn(n)
    ex = randn(B, n, D, E) if batch else randn(n, D, E)

    def fn(gt, et):
        if batch:
            return (gt[:, :, None, None] * et).sum(1)
        return (gt[:, None, None] * et).sum(0)
    vs_torch(nn.MixtureTable(), [g, ex], fn, nest=lambda v: [v[0], v[1]])
    if batch:
        ex3 = randn(B, D, n, E)
        vs_torch(nn.MixtureTable(3), [g, ex3], lambda gt, et: (gt[:, None, :, None] * et).sum(2),
                 nest=lambda v: [v[0], v[1]])


def test_mixturetable_errors_and_state():
    m = nn.MixtureTable()
    with pytest.raises(ValueError, match=r'nn\.MixtureTable: expected one gater output per expert'):
        m.forward([P(randn(2, 3)), [P(randn(2, 4)), P(randn(2, 4))]])
    with pytest.raises(ValueError, match=r'nn\.MixtureTable: expected a table'):
        m.forward(P(randn(2, 3)))
    xs = [P(randn(2, 2)), [P(randn(2, 4)), P(randn(2, 4))]]
    assert m.forward(xs).size() == (2, 4)
    assert m.dim == 2 and m.table is True and m.size.tolist() == [2, 2, 1]
    m.clearState()
    assert m._gaterView.nElement() == 0


def test_ziptable_and_onetomany():
    a1, a2, b1, b2 = (P(randn(2)) for _ in range(4))
    m = nn.ZipTable()
    y = m.forward([[a1, a2], [b1, b2]])
    assert y[0][0] is a1 and y[0][1] is b1 and y[1][0] is a2 and y[1][1] is b2
    gi = m.backward([[a1, a2], [b1, b2]], y)
    assert gi[0][0] is a1 and gi[1][1] is b2
    v, a, b = P(randn(3)), P(randn(2)), P(randn(4))
    m = nn.ZipTableOneToMany()
    y = m.forward([v, [a, b]])
    assert y[0][0] is v and y[0][1] is a and y[1][0] is v and y[1][1] is b
    g1, g2, ga, gb = randn(3), randn(3), randn(2), randn(4)
    gi = m.backward([v, [a, b]], [[P(g1), P(ga)], [P(g2), P(gb)]])
    close(gi[0], g1 + g2)
    assert gi[0] is m.gradInputEl
    close(gi[1][0], ga)
    close(gi[1][1], gb)
    with pytest.raises(ValueError, match=r'nn\.ZipTableOneToMany: expected a table of an element'):
        m.forward([v])
    with pytest.raises(ValueError, match=r'nn\.ZipTable: expected input as a table of tables'):
        nn.ZipTable().forward([a1, a2])


@HYP
@given(st.integers(1, 4), st.integers(1, 5), st.booleans())
def test_cosine_distance_vs_torch(B, D, batch):
    sh = (B, D) if batch else (D,)
    fn = (lambda a, b: F.cosine_similarity(a, b, dim=1, eps=0)) if batch else \
        (lambda a, b: F.cosine_similarity(a, b, dim=0, eps=0).reshape(1))
    # Lua adds 1e-12 to the squared norms: 1e-12 relative to norms of about 1
    vs_torch(nn.CosineDistance(), [sign_safe(*sh), sign_safe(*sh)], fn, tol=1e-9)


@HYP
@given(st.integers(1, 4), st.integers(1, 5), st.booleans())
def test_dot_product_vs_torch(B, D, batch):
    sh = (B, D) if batch else (D,)
    fn = (lambda a, b: (a * b).sum(1)) if batch else (lambda a, b: (a * b).sum().reshape(1))
    xs, gi = vs_torch(nn.DotProduct(), [randn(*sh), randn(*sh)], fn)
    assert gi[0].size() == sh and gi[1].size() == sh


def test_cosine_and_dot_jacobians():
    for m, sh in ((nn.CosineDistance(), (3, 4)), (nn.CosineDistance(), (4,)), (nn.DotProduct(), (2, 3))):
        xs = [P(randn(*sh)), P(randn(*sh))]
        table_jacobian(m, xs)


@HYP
@given(st.lists(dims, min_size=1, max_size=3), st.data())
def test_index_vs_torch(shape, data):
    d = data.draw(st.integers(1, len(shape)))
    k = data.draw(st.integers(1, 5))
    idx = np.asarray(data.draw(st.lists(st.integers(1, shape[d - 1]), min_size=k, max_size=k)), np.int64)
    m = nn.Index(d)
    a = randn(*shape)
    xs = [P(a), pynn.LongTensor(idx.tolist())]
    y = m.forward(xs)
    t = torch.from_numpy(a.copy()).requires_grad_()
    yt = torch.index_select(t, d - 1, torch.from_numpy(idx - 1))
    close(y, yt)
    go = randn(*yt.shape)
    gi = m.backward(xs, P(go))
    yt.backward(torch.from_numpy(go))
    close(gi[0], t.grad)                            # repeated indices accumulate
    assert gi[1].type() == 'torch.DoubleTensor' and gi[1].size() == (k,) and not gi[1].numpy().any()


def test_index_errors():
    m = nn.Index(1)
    with pytest.raises(ValueError, match=r'nn\.Index: expected a 1D LongTensor index'):
        m.forward([P(randn(3, 2)), P(np.array([1.0]))])
    with pytest.raises(ValueError, match=r'nn\.Index: expected indices in 1\.\.3'):
        m.forward([P(randn(3, 2)), pynn.LongTensor([4])])
    assert m.forward([P(randn(3, 2)), pynn.LongTensor([3, 1])]).size() == (2, 2)


@HYP
@given(st.lists(dims, min_size=1, max_size=3))
def test_masked_select_vs_torch(shape):
    a = randn(*shape)
    mask = (RNG.random(shape) < 0.5).astype(np.uint8)
    m = nn.MaskedSelect()
    xs = [P(a), pynn.ByteTensor(*shape)]
    xs[1].numpy()[...] = mask
    y = m.forward(xs)
    t = torch.from_numpy(a.copy()).requires_grad_()
    yt = torch.masked_select(t, torch.from_numpy(mask.astype(bool)))
    close(y, yt)
    go = randn(*yt.shape)
    gi = m.backward(xs, P(go))
    yt.backward(torch.from_numpy(go))
    close(gi[0], t.grad)
    assert gi[1].type() == 'torch.ByteTensor' and not gi[1].numpy().any()
    assert m._maskIndices.type() == 'torch.LongTensor' and m._maskIndices.size() == (int(mask.sum()),) \
        or int(mask.sum()) == 0


def test_masked_select_errors_and_type():
    m = nn.MaskedSelect()
    with pytest.raises(ValueError, match=r'nn\.MaskedSelect: expected a ByteTensor mask'):
        m.forward([P(randn(2, 2)), P(np.ones((2, 2)))])
    m.float()
    assert m._gradBuffer.type() == 'torch.FloatTensor' and m._maskIndices.type() == 'torch.LongTensor'
    mask = pynn.ByteTensor(2, 2).fill(1)
    assert m.forward([P(randn(2, 2).astype(np.float32)), mask]).type() == 'torch.FloatTensor'


@HYP
@given(st.integers(1, 4), st.integers(1, 4), st.integers(1, 4), st.integers(0, 3), st.booleans(), st.booleans())
def test_mm_vs_torch(n, k, p, B, ta, tb):
    sa = (k, n) if ta else (n, k)
    sb = (p, k) if tb else (k, p)
    if B:
        sa, sb = (B,) + sa, (B,) + sb

    def fn(a, b):
        if ta:
            a = a.transpose(-1, -2)
        if tb:
            b = b.transpose(-1, -2)
        return torch.bmm(a, b) if B else torch.mm(a, b)
    vs_torch(nn.MM(ta, tb), [randn(*sa), randn(*sb)], fn)


@HYP
@given(st.integers(1, 4), st.integers(1, 4), st.integers(0, 3), st.booleans())
def test_mv_vs_torch(n, k, B, trans):
    sm = (k, n) if trans else (n, k)
    sv = (k,)
    if B:
        sm, sv = (B,) + sm, (B,) + sv

    def fn(M, v):
        if trans:
            M = M.transpose(-1, -2)
        return torch.bmm(M, v[:, :, None])[:, :, 0] if B else torch.mv(M, v)
    vs_torch(nn.MV(trans), [randn(*sm), randn(*sv)], fn)


def test_mm_mv_errors():
    with pytest.raises(ValueError, match=r'nn\.MM: expected matrices whose sizes match'):
        nn.MM().forward([P(randn(2, 3)), P(randn(2, 3))])
    with pytest.raises(ValueError, match=r'nn\.MM: expected two 2D or two 3D tensors'):
        nn.MM().forward([P(randn(2, 3)), P(randn(1, 3, 2))])
    with pytest.raises(ValueError, match=r'nn\.MV: expected a 2D matrix and a 1D vector'):
        nn.MV().forward([P(randn(2, 3)), P(randn(2, 3))])
    with pytest.raises(TypeError):
        nn.MV(1)


NEW_TABLE = [
    (lambda: nn.CDivTable(), lambda: [(3, 2), (3, 2)]),
    (lambda: nn.CMaxTable(), lambda: [(3, 2), (3, 2), (3, 2)]),
    (lambda: nn.CMinTable(), lambda: [(3, 2), (3, 2)]),
    (lambda: nn.CosineDistance(), lambda: [(3, 4), (3, 4)]),
    (lambda: nn.DotProduct(), lambda: [(3, 4), (3, 4)]),
    (lambda: nn.MM(), lambda: [(2, 3), (3, 4)]),
    (lambda: nn.MM(True, True), lambda: [(2, 3, 2), (2, 4, 3)]),
    (lambda: nn.MV(), lambda: [(2, 3, 4), (2, 4)]),
]


@pytest.mark.parametrize('make,shapes', NEW_TABLE)
def test_new_table_float32_matches_float64(make, shapes):
    arrs = [randn(*s) for s in shapes()]
    m64, m32 = make(), make().float()
    y64 = m64.forward([P(a) for a in arrs])
    xs32 = [P(a.astype(np.float32)) for a in arrs]
    y32 = m32.forward(xs32)
    assert y32.type() == 'torch.FloatTensor'
    close(y32, y64.numpy().astype(np.float32), 1e-5)
    go = randn(*y64.size())
    g64 = m64.backward([P(a) for a in arrs], P(go))
    g32 = m32.backward(xs32, P(go.astype(np.float32)))
    for a, b in zip(g32, g64):
        assert a.type() == 'torch.FloatTensor'
        close(a, b.numpy().astype(np.float32), 1e-4)


@pytest.mark.parametrize('make,shapes', NEW_TABLE + [
    (lambda: nn.SplitTable(2), None), (lambda: nn.MixtureTable(), None)])
def test_new_table_meta_sizes_equal_real(make, shapes):
    if shapes is None:
        if isinstance(make(), nn.SplitTable):
            real_in, meta_in = P(randn(2, 3)), pynn.MetaDoubleTensor(2, 3)
        else:
            real_in = [P(randn(2, 3)), [P(randn(2, 4)) for _ in range(3)]]
            meta_in = [pynn.MetaDoubleTensor(2, 3), [pynn.MetaDoubleTensor(2, 4) for _ in range(3)]]
    else:
        real_in = [P(randn(*s)) for s in shapes()]
        meta_in = [pynn.MetaDoubleTensor(*s) for s in shapes()]
    real, meta = make(), make().type('torch.MetaDoubleTensor')
    y = real.forward(real_in)
    ym = meta.forward(meta_in)
    sizes = lambda v: [t.size() for t in _leaves(v)]  # noqa: E731
    assert sizes(ym) == sizes(y)
    go = [P(randn(*t.size())) for t in y] if isinstance(y, list) else P(randn(*y.size()))
    gom = [pynn.MetaDoubleTensor(*t.size()) for t in y] if isinstance(y, list) \
        else pynn.MetaDoubleTensor(*y.size())
    assert sizes(meta.backward(meta_in, gom)) == sizes(real.backward(real_in, go))


@pytest.mark.parametrize('make,bad', [
    (lambda: nn.CDivTable(), lambda: P(randn(2))),
    (lambda: nn.CDivTable(), lambda: [P(randn(2)), P(randn(3))]),
    (lambda: nn.CMaxTable(), lambda: [P(randn(2)), P(randn(3))]),
    (lambda: nn.CAddTensorTable(), lambda: [P(randn(2)), P(randn(2))]),
    (lambda: nn.CosineDistance(), lambda: [P(randn(2, 3)), P(randn(3, 2))]),
    (lambda: nn.DotProduct(), lambda: [P(randn(2, 2, 2)), P(randn(2, 2, 2))]),
    (lambda: nn.Index(2), lambda: [P(randn(3)), pynn.LongTensor([1])]),
    (lambda: nn.MaskedSelect(), lambda: [P(randn(3)), pynn.ByteTensor(4)]),
])
def test_new_table_bad_input_then_usable(make, bad):
    m = make()
    with pytest.raises(ValueError, match=r'^nn\.\w+.*: expected .*, got '):
        m.forward(bad())
    good = {nn.CDivTable: lambda: [P(randn(2)), P(sign_safe(2))],
            nn.CMaxTable: lambda: [P(randn(2)), P(randn(2))],
            nn.CAddTensorTable: lambda: [P(randn(2)), [P(randn(2))]],
            nn.CosineDistance: lambda: [P(randn(2, 3)), P(randn(2, 3))],
            nn.DotProduct: lambda: [P(randn(2, 3)), P(randn(2, 3))],
            nn.Index: lambda: [P(randn(3, 2)), pynn.LongTensor([2])],
            nn.MaskedSelect: lambda: [P(randn(3)), pynn.ByteTensor(3).fill(1)]}[type(m)]()
    m.forward(good)


def test_new_table_printing():
    assert str(nn.CDivTable()) == 'nn.CDivTable'
    assert str(nn.MM(True)) == 'nn.MM'
    assert str(nn.MixtureTable()) == 'nn.MixtureTable'
