"""nn.JoinTable, SelectTable, NarrowTable, FlattenTable, CAddTable, CMulTable, CSubTable vs
PyTorch (float64, 1e-10), finite differences, object identity (Lua's table semantics), errors."""
import numpy as np
import pytest
import torch

import pynn
from pynn import nn
from _oracle import P, T

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
