"""Containers (Sequential, Concat, DepthConcat, ConcatTable, ParallelTable, Parallel):
forward/backward/accGradParameters vs torch-built equivalents (float64, 1e-10), Lua's object
identities, error paths ('In 2nd module of nn.Sequential: ...'), recovery, printing, types.

The parameterised leaf modules are defined here (Affine, Square) so these tests only depend on
the containers and the shape/table families."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import pynn
from pynn import nn
from _oracle import P

RNG = np.random.default_rng(2024)
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


class Affine(nn.Module):
    """y = x W^T + b for 1-D or 2-D x (a Linear stand-in for these tests)."""

    def __init__(self, nin, nout):
        super().__init__()
        self.weight = pynn.Tensor(nout, nin).uniform(-1, 1)
        self.bias = pynn.Tensor(nout).uniform(-1, 1)
        self.gradWeight = pynn.Tensor(nout, nin).zero()
        self.gradBias = pynn.Tensor(nout).zero()

    def updateOutput(self, input):
        nin = self.weight.size(2)
        if not isinstance(input, pynn.Tensor) or input.dim() not in (1, 2) or input.size(input.dim()) != nin:
            self._fail('a 1D or 2D tensor with %d columns' % nin, input)
        x = input.numpy()
        self.output.resize(*(x.shape[:-1] + (self.weight.size(1),)))
        self.output.numpy()[...] = x @ self.weight.numpy().T + self.bias.numpy()
        return self.output

    def updateGradInput(self, input, gradOutput):
        if not isinstance(gradOutput, pynn.Tensor) or gradOutput.size() != self.output.size():
            self._fail('gradOutput of size %s' % (self.output.size(),), gradOutput)
        self.gradInput.resizeAs(input)
        self.gradInput.numpy()[...] = gradOutput.numpy() @ self.weight.numpy()
        return self.gradInput

    def accGradParameters(self, input, gradOutput, scale=1):
        x = input.numpy().reshape(-1, self.weight.size(2))
        g = gradOutput.numpy().reshape(-1, self.weight.size(1))
        self.gradWeight.numpy()[...] += scale * g.T @ x
        self.gradBias.numpy()[...] += scale * g.sum(0)

    def __tostring__(self):
        return 'nn.Affine(%d -> %d)' % (self.weight.size(2), self.weight.size(1))


class Square(nn.Module):
    def updateOutput(self, input):
        self.output.resizeAs(input)
        np.multiply(input.numpy(), input.numpy(), out=self.output.numpy())
        return self.output

    def updateGradInput(self, input, gradOutput):
        self.gradInput.resizeAs(input)
        self.gradInput.numpy()[...] = 2 * input.numpy() * gradOutput.numpy()
        return self.gradInput


def tw(m):
    """torch leaf tensors for an Affine's weight and bias."""
    return (torch.from_numpy(m.weight.numpy().copy()).requires_grad_(),
            torch.from_numpy(m.bias.numpy().copy()).requires_grad_())


# --------------------------------------------------------------------------- Sequential
def test_sequential_vs_torch_with_scale():
    l1, l2 = Affine(5, 4), Affine(4, 3)
    net = nn.Sequential(l1, Square(), nn.View(4), l2, nn.Narrow(2, 2, 2))
    xa = randn(6, 5)
    y = net.forward(P(xa))
    assert y is net.modules[-1].output
    assert net.output is net.modules[-1].output
    (w1, b1), (w2, b2) = tw(l1), tw(l2)
    xt = torch.from_numpy(xa).requires_grad_()
    yt = F.linear(F.linear(xt, w1, b1) ** 2, w2, b2)[:, 1:3]
    close(y, yt)
    go = randn(6, 2)
    net.zeroGradParameters()
    gi = net.backward(P(xa), P(go), 0.5)
    yt.backward(torch.from_numpy(go))
    close(gi, xt.grad)
    assert net.gradInput is l1.gradInput
    close(l1.gradWeight, 0.5 * w1.grad)
    close(l1.gradBias, 0.5 * b1.grad)
    close(l2.gradWeight, 0.5 * w2.grad)
    close(l2.gradBias, 0.5 * b2.grad)
    # updateGradInput + accGradParameters == backward
    net.zeroGradParameters()
    gi2 = net.updateGradInput(P(xa), P(go))
    net.accGradParameters(P(xa), P(go), 0.5)
    close(gi2, xt.grad)
    close(l2.gradWeight, 0.5 * w2.grad)
    close(l1.gradBias, 0.5 * b1.grad)
    params, grads = net.parameters()
    assert params == [l1.weight, l1.bias, l2.weight, l2.bias]
    assert grads == [l1.gradWeight, l1.gradBias, l2.gradWeight, l2.gradBias]


def test_sequential_object_identities_as_lua():
    l1, sq = Affine(3, 3), Square()
    net = nn.Sequential()
    net.add(l1)
    assert net.gradInput is l1.gradInput and net.output is l1.output
    net.add(sq)
    assert net.output is sq.output and net.gradInput is l1.gradInput
    x = P(randn(2, 3))
    net.forward(x)
    gi = net.backward(x, P(randn(2, 3)))
    assert gi is l1.gradInput and sq.gradInput is not None
    idn = nn.Identity()
    net2 = nn.Sequential(nn.Identity(), idn)
    go = P(randn(2))
    assert net2.forward(go) is go and net2.backward(go, go) is go
    assert idn.gradInput is go
    net.insert(nn.Identity(), 1)
    assert len(net) == 3 and net.get(2) is l1 and net.gradInput is net.get(1).gradInput
    net.remove(1)
    assert net.get(1) is l1 and net.size() == 2
    net.remove()
    net.remove()
    assert len(net) == 0 and isinstance(net.output, pynn.Tensor)
    with pytest.raises(IndexError):
        net.remove()
    with pytest.raises(IndexError):
        net.insert(sq, 3)
    with pytest.raises(TypeError):
        net.add(3)


def test_sequential_error_path_and_recovery():
    net = nn.Sequential(Affine(4, 6), nn.View(5), Affine(5, 2))
    x = P(randn(3, 4))
    with pytest.raises(ValueError) as e:
        net.forward(x)
    msg = str(e.value)
    assert msg.startswith('In 2nd module of nn.Sequential: nn.View(5): ')
    assert 'do not match' in msg
    with pytest.raises(ValueError, match=r'^In 1st module of nn\.Sequential: nn\.Affine\(4 -> 6\): expected'):
        net.forward(P(randn(3, 5)))
    with pytest.raises(ValueError, match=r'^In 3rd module of nn\.Sequential: nn\.Affine\(5 -> 2\)'):
        nn.Sequential(Affine(4, 6), nn.View(6), Affine(5, 2)).forward(x)
    # still usable afterwards
    good = nn.Sequential(Affine(4, 5), nn.View(5), Affine(5, 2))
    good.forward(P(randn(3, 4)))
    net.modules[1] = nn.View(6)
    net.modules[2] = Affine(6, 2)
    net.output = net.modules[2].output
    assert net.forward(x).size() == (3, 2)
    # errors in backward name the module too
    with pytest.raises(ValueError, match=r'^In 3rd module of nn\.Sequential: nn\.Affine\(6 -> 2\)'):
        net.backward(x, P(randn(3, 7)))
    assert net.backward(x, P(randn(3, 2))).size() == (3, 4)
    # nested containers give the whole path
    deep = nn.Sequential(nn.Identity(), nn.ConcatTable(nn.Identity(), nn.Sequential(nn.View(7))))
    with pytest.raises(ValueError, match=r'^In 2nd module of nn\.Sequential: In 2nd module of '
                                         r'nn\.ConcatTable: In 1st module of nn\.Sequential: nn\.View\(7\)'):
        deep.forward(P(randn(4)))
    out = deep.forward(P(randn(7)))
    assert isinstance(out, list) and out[1].size() == (7,)
    # module names over 10 use 'th'
    many = nn.Sequential(*[nn.Identity() for _ in range(11)], nn.View(3))
    with pytest.raises(ValueError, match=r'^In 12th module of nn\.Sequential'):
        many.forward(P(randn(4)))


def test_sequential_printing():
    net = nn.Sequential(Affine(3, 4), nn.Sequential(nn.View(4), nn.Identity()), nn.Narrow(1, 1, 2))
    assert str(net) == (
        'nn.Sequential {\n'
        '  [input -> (1) -> (2) -> (3) -> output]\n'
        '  (1): nn.Affine(3 -> 4)\n'
        '  (2): nn.Sequential {\n'
        '    [input -> (1) -> (2) -> output]\n'
        '    (1): nn.View(4)\n'
        '    (2): nn.Identity\n'
        '  }\n'
        '  (3): nn.Narrow\n'
        '}')
    assert repr(net) == str(net)


# --------------------------------------------------------------------------- Concat / DepthConcat
def test_concat_vs_torch():
    l1, l2 = Affine(4, 3), Affine(4, 5)
    net = nn.Concat(2, l1, nn.Sequential(l2, Square()))
    assert net.dimension == 2
    xa = randn(6, 4)
    y = net.forward(P(xa))
    (w1, b1), (w2, b2) = tw(l1), tw(l2)
    xt = torch.from_numpy(xa).requires_grad_()
    yt = torch.cat([F.linear(xt, w1, b1), F.linear(xt, w2, b2) ** 2], 1)
    close(y, yt)
    assert net.outputSize.tolist() == [6, 8]
    go = randn(6, 8)
    net.zeroGradParameters()
    gi = net.backward(P(xa), P(go), 2.0)
    yt.backward(torch.from_numpy(go))
    close(gi, xt.grad)
    close(l1.gradWeight, 2 * w1.grad)
    close(l2.gradBias, 2 * b2.grad)
    net.zeroGradParameters()
    close(net.updateGradInput(P(xa), P(go)), xt.grad)
    net.accGradParameters(P(xa), P(go))
    close(l2.gradWeight, w2.grad)
    # Concat along dim 1
    c1 = nn.Concat(1, nn.Narrow(1, 1, 2), nn.Identity())
    y = c1.forward(P(xa))
    close(y, np.concatenate([xa[:2], xa]))
    g = c1.backward(P(xa), P(np.ones((8, 4))))
    close(g, np.ones((6, 4)) + np.vstack([np.ones((2, 4)), np.zeros((4, 4))]))


def test_concat_table_input():
    net = nn.Concat(2, nn.CAddTable(), nn.CMulTable(), nn.SelectTable(2))
    a, b = randn(3, 2), randn(3, 2)
    y = net.forward([P(a), P(b)])
    at, bt = torch.from_numpy(a).requires_grad_(), torch.from_numpy(b).requires_grad_()
    yt = torch.cat([at + bt, at * bt, bt], 1)
    close(y, yt)
    go = randn(3, 6)
    gi = net.backward([P(a), P(b)], P(go))
    yt.backward(torch.from_numpy(go))
    assert isinstance(gi, list) and len(gi) == 2
    close(gi[0], at.grad)
    close(gi[1], bt.grad)
    first = gi[0]
    gi = net.updateGradInput([P(a), P(b)], P(go))
    assert gi[0] is first  # tensors reused on the next call, as Lua's retable
    close(gi[1], bt.grad)


def test_concat_errors_and_printing():
    net = nn.Concat(2, nn.Narrow(2, 1, 2), nn.View(4))
    with pytest.raises(ValueError, match=r'^In 2nd module of nn\.Concat: nn\.View\(4\)'):
        net.forward(P(randn(3, 5)))
    with pytest.raises(ValueError, match='nn.Concat'):
        nn.Concat(2, nn.Narrow(1, 1, 2), nn.Identity()).forward(P(randn(3, 4)))
    assert net.forward(P(randn(3, 4))).size() == (3, 6)
    assert str(net) == ('nn.Concat {\n'
                        '  input\n'
                        '    |`-> (1): nn.Narrow\n'
                        '     `-> (2): nn.View(4)\n'
                        '     ... -> output\n'
                        '}')
    nested = nn.ConcatTable(nn.Sequential(nn.Identity()), nn.Identity())
    assert str(nested) == ('nn.ConcatTable {\n'
                           '  input\n'
                           '    |`-> (1): nn.Sequential {\n'
                           '    |      [input -> (1) -> output]\n'
                           '    |      (1): nn.Identity\n'
                           '    |    }\n'
                           '     `-> (2): nn.Identity\n'
                           '     ... -> output\n'
                           '}')


def test_depthconcat_vs_torch():
    # branch 2 is a centred 3x3 crop of 2 channels, zero-padded back to 5x5 by DepthConcat
    crop = nn.Sequential(nn.Narrow(2, 1, 2), nn.Narrow(3, 2, 3), nn.Narrow(4, 1, 3))
    net = nn.DepthConcat(2, nn.Identity(), crop, nn.Narrow(3, 1, 4))
    xa = randn(2, 3, 5, 5)
    y = net.forward(P(xa))
    xt = torch.from_numpy(xa).requires_grad_()
    b2 = F.pad(xt[:, 0:2, 1:4, 0:3], (1, 1, 1, 1))
    b3 = F.pad(xt[:, :, 0:4, :], (0, 0, 0, 1))  # 4 rows in 5: start floor(1/2)+1 = 1
    yt = torch.cat([xt, b2, b3], 1)
    close(y, yt)
    assert net.outputSize.tolist() == [2, 8, 5, 5]
    go = randn(2, 8, 5, 5)
    gi = net.backward(P(xa), P(go))
    yt.backward(torch.from_numpy(go))
    close(gi, xt.grad)
    close(net.updateGradInput(P(xa), P(go)), xt.grad)
    assert str(net).startswith('nn.DepthConcat {\n  input\n')


def test_depthconcat_odd_padding():
    # 4x4 inside 5x5... and 2x2 inside 5x5: start floor((5-2)/2)+1 = 2
    net = nn.DepthConcat(1, nn.Identity(), nn.Narrow(2, 1, 2))
    xa = randn(2, 5)
    y = net.forward(P(xa))
    exp = np.zeros((4, 5))
    exp[:2] = xa
    exp[2:, 1:3] = xa[:, :2]
    close(y, exp)


# --------------------------------------------------------------------------- ConcatTable / ParallelTable / Parallel
def test_concattable_vs_torch():
    l1 = Affine(3, 2)
    net = nn.ConcatTable(l1, Square(), nn.Identity())
    xa = randn(4, 3)
    out0 = net.output
    y = net.forward(P(xa))
    assert y is out0 and len(y) == 3 and y[0] is l1.output
    (w1, b1) = tw(l1)
    xt = torch.from_numpy(xa).requires_grad_()
    outs = [F.linear(xt, w1, b1), xt ** 2, xt]
    for a, b in zip(y, outs):
        close(a, b)
    gos = [randn(4, 2), randn(4, 3), randn(4, 3)]
    net.zeroGradParameters()
    gi = net.backward(P(xa), [P(g) for g in gos], 3.0)
    sum((o * torch.from_numpy(g)).sum() for o, g in zip(outs, gos)).backward()
    close(gi, xt.grad)
    close(l1.gradWeight, 3 * w1.grad)
    close(l1.gradBias, 3 * b1.grad)
    with pytest.raises(ValueError, match='nn.ConcatTable'):
        net.backward(P(xa), P(gos[0]))
    with pytest.raises(ValueError, match=r'^In 1st module of nn\.ConcatTable: nn\.Affine'):
        net.forward(P(randn(4, 2)))
    assert len(net.forward(P(xa))) == 3


def test_concattable_table_input():
    net = nn.ConcatTable(nn.SelectTable(1), nn.CAddTable(), nn.NarrowTable(2))
    a, b = randn(2, 3), randn(2, 3)
    y = net.forward([P(a), P(b)])
    assert isinstance(y[2], list)
    close(y[1], a + b)
    ga, gb, gc = randn(2, 3), randn(2, 3), randn(2, 3)
    gi = net.backward([P(a), P(b)], [P(ga), P(gb), [P(gc)]])
    close(gi[0], ga + gb)
    close(gi[1], gb + gc)


def test_paralleltable_vs_torch():
    l1 = Affine(3, 2)
    net = nn.ParallelTable(l1, Square())
    a, b = randn(5, 3), randn(4)
    y = net.forward([P(a), P(b)])
    assert y[0] is l1.output and len(y) == 2
    (w1, b1) = tw(l1)
    at, bt = torch.from_numpy(a).requires_grad_(), torch.from_numpy(b).requires_grad_()
    outs = [F.linear(at, w1, b1), bt ** 2]
    close(y[0], outs[0])
    close(y[1], outs[1])
    gos = [randn(5, 2), randn(4)]
    net.zeroGradParameters()
    gi = net.backward([P(a), P(b)], [P(g) for g in gos])
    sum((o * torch.from_numpy(g)).sum() for o, g in zip(outs, gos)).backward()
    close(gi[0], at.grad)
    close(gi[1], bt.grad)
    close(l1.gradWeight, w1.grad)
    with pytest.raises(ValueError, match='nn.ParallelTable'):
        net.forward([P(a)])
    with pytest.raises(ValueError, match=r'^In 2nd module of nn\.ParallelTable'):
        nn.ParallelTable(nn.Identity(), nn.View(3)).forward([P(a), P(b)])
    assert len(net.forward([P(a), P(b)])) == 2
    assert str(net).startswith('nn.ParallelTable {\n  input\n    |`-> (1): nn.Affine(3 -> 2)\n')


def test_parallel_vs_torch():
    l1, l2 = Affine(3, 2), Affine(3, 4)
    net = nn.Parallel(2, 1, l1, l2)
    xa = randn(3, 2)
    y = net.forward(P(xa))
    (w1, b1), (w2, b2) = tw(l1), tw(l2)
    xt = torch.from_numpy(xa).requires_grad_()
    yt = torch.cat([F.linear(xt[:, 0], w1, b1), F.linear(xt[:, 1], w2, b2)], 0)
    close(y, yt)
    go = randn(6)
    net.zeroGradParameters()
    gi = net.backward(P(xa), P(go))
    yt.backward(torch.from_numpy(go))
    close(gi, xt.grad)
    close(l1.gradWeight, w1.grad)
    close(l2.gradBias, b2.grad)
    with pytest.raises(ValueError, match='nn.Parallel'):
        net.forward(P(randn(3, 3)))
    with pytest.raises(ValueError, match=r'^In 2nd module of nn\.Parallel: nn\.Affine\(3 -> 4\)'):
        nn.Parallel(1, 1, Affine(2, 2), Affine(3, 4)).forward(P(randn(2, 2)))
    assert net.forward(P(xa)).size() == (6,)
    assert str(net) == ('nn.Parallel {\n  input\n    |`-> (1): nn.Affine(3 -> 2)\n'
                        '     `-> (2): nn.Affine(3 -> 4)\n     ... -> output\n}')


# --------------------------------------------------------------------------- types, state, meta
def test_container_type_and_clear_state():
    l1 = Affine(3, 4)
    net = nn.Sequential(l1, nn.ConcatTable(nn.Identity(), nn.Narrow(2, 1, 2)), nn.JoinTable(2))
    x = P(randn(2, 3))
    net.forward(x)
    net.float()
    assert l1.weight.type() == 'torch.FloatTensor' and net.output.type() == 'torch.FloatTensor'
    assert net.output is net.modules[-1].output
    y = net.forward(P(randn(2, 3).astype(np.float32)))
    assert y.type() == 'torch.FloatTensor' and y.size() == (2, 6)
    net.clearState()
    assert net.modules[1].output == [] and net.modules[2].gradInput == []
    assert l1.output.storage() is None and l1.weight.storage() is not None
    net.double()
    assert net.forward(x).size() == (2, 6)


def test_containers_on_meta():
    net = nn.Sequential(nn.View(-1).setNumInputDims(3),
                        nn.ConcatTable(nn.Narrow(2, 1, 10), nn.Identity()),
                        nn.JoinTable(2),
                        nn.Concat(2, nn.Identity(), nn.Narrow(2, 1, 2)),
                        nn.Sum(2))
    x = pynn.randn(2, 3, 4, 4)
    ref = net.forward(x).size()
    meta = net.clone().type('torch.MetaDoubleTensor')
    y = meta.forward(pynn.MetaDoubleTensor(2, 3, 4, 4))
    assert y.is_meta() and y.size() == ref == (2,)
    gi = meta.backward(pynn.MetaDoubleTensor(2, 3, 4, 4), pynn.MetaDoubleTensor(2))
    assert gi.size() == (2, 3, 4, 4)


def test_table_checks_added_to_containers():
    assert bool(nn.Sequential()) and bool(nn.ConcatTable())  # __len__ 0 must not make them falsy
    net = nn.ParallelTable(nn.Identity(), nn.Identity())
    a, b = P(randn(2)), P(randn(3))
    net.forward([a, b])
    with pytest.raises(ValueError, match='nn.ParallelTable'):
        net.backward([a, b], P(randn(2)))
    assert net.backward([a, b], [a, b])[1] is b
    # a branch giving a tensor gradInput for a table input (Lua: 'currentGradInput is not a table!')
    ct = nn.ConcatTable(nn.JoinTable(1), nn.CAddTable())
    ct.forward([a, a])
    ct.backward([a, a], [P(randn(4)), P(randn(2))])
    bad = nn.ConcatTable(nn.SelectTable(1), nn.Sequential(nn.JoinTable(1), nn.Narrow(1, 1, 2)))
    bad.modules[1].updateGradInput = lambda i, g: g  # a (wrong) tensor gradInput
    bad.forward([a, a])
    with pytest.raises(ValueError, match='nn.ConcatTable: branch 2 gradInput is not a table'):
        bad.updateGradInput([a, a], [P(randn(2)), P(randn(2))])


# =========================================================================== decorators and others
import io  # noqa: E402
from pathlib import Path  # noqa: E402

from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

from pynn import serialization  # noqa: E402

HYP = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
REF = Path(__file__).resolve().parents[1] / '..' / 'shared' / 'reference' / 'lua-nn'


def roundtrip(obj):
    buf = io.BytesIO()
    pynn.save(buf, obj)
    return pynn.load(io.BytesIO(buf.getvalue()))


@pytest.mark.parametrize('cls', ['Decorator', 'GPU', 'NaN', 'Profile', 'DontCast'])
def test_decorators_pass_through(cls, capsys):
    inner = Affine(3, 2)
    m = {'Decorator': lambda: nn.Decorator(inner), 'GPU': lambda: nn.GPU(inner, 2),
         'NaN': lambda: nn.NaN(inner, 7), 'Profile': lambda: nn.Profile(inner, 2, 'lin'),
         'DontCast': lambda: nn.DontCast(inner)}[cls]()
    x, g = P(randn(4, 3)), P(randn(4, 2))
    w, b = tw(inner)
    xt = torch.from_numpy(x.numpy().copy()).requires_grad_()
    yt = F.linear(xt, w, b)
    yt.backward(torch.from_numpy(g.numpy()))
    y = m.forward(x)
    assert y is inner.output
    close(y, yt)
    m.zeroGradParameters()
    gi = m.backward(x, g, 0.5)
    assert gi is inner.gradInput
    close(gi, xt.grad)
    close(inner.gradWeight, 0.5 * w.grad)
    assert m.parameters() == ([inner.weight, inner.bias], [inner.gradWeight, inner.gradBias])
    m.forward(x)
    m.backward(x, g)
    if cls == 'Profile':
        assert 'lin took' in capsys.readouterr().out
    assert str(m) == {'Decorator': 'nn.Decorator @ nn.Affine(3 -> 2)', 'GPU': 'nn.GPU(2) @ nn.Affine(3 -> 2)',
                      'NaN': 'nn.NaN(7) @ nn.Affine(3 -> 2)', 'Profile': 'nn.Profile @ nn.Affine(3 -> 2)',
                      'DontCast': 'nn.DontCast @ nn.Affine(3 -> 2)'}[cls]
    with pytest.raises(ValueError, match='In 1st module of nn.%s' % cls):
        m.forward(P(randn(4, 5)))
    close(m.forward(x), yt)


def test_nan_reports_where():
    m = nn.NaN(nn.Linear(3, 2), 1)
    x = P(randn(2, 3))
    m.forward(x)
    bad = x.clone()
    bad.numpy()[0, 0] = np.nan
    with pytest.raises(ValueError, match='NaN found in input'):
        m.forward(bad)
    m.modules[0].weight.numpy()[0, 0] = np.nan
    with pytest.raises(ValueError, match='NaN found in parameters'):
        m.forward(x)


def test_dontcast_keeps_its_module_type():
    inner = nn.Linear(3, 2)
    net = nn.Sequential(nn.DontCast(inner, True), nn.Identity())
    net.float()
    assert inner.weight.type() == 'torch.DoubleTensor'
    y = net.forward(P(randn(2, 3)).float())     # cast in to double, out to the network's float
    assert y.type() == 'torch.FloatTensor'
    close(y.double(), net.modules[0].modules[0].output, 1e-6)
    gi = net.backward(P(randn(2, 3)).float(), P(randn(2, 2)).float())
    assert gi.type() == 'torch.FloatTensor'


@HYP
@given(st.integers(1, 3), st.integers(1, 3), st.integers(1, 4), st.integers(1, 4))
def test_bottle_vs_torch(a, b, n_in, n_out):
    pynn.manualSeed(3)
    lin = nn.Linear(n_in, n_out)
    m = nn.Bottle(lin)
    xa, ga = randn(a, b, n_in), randn(a, b, n_out)
    x, g = P(xa), P(ga)
    w, bb = tw(lin)
    xt = torch.from_numpy(xa).requires_grad_()
    yt = F.linear(xt, w, bb)
    yt.backward(torch.from_numpy(ga))
    y = m.forward(x)
    assert y.size() == (a, b, n_out) and y.storage() is lin.output.storage()
    close(y, yt)
    m.zeroGradParameters()
    close(m.backward(x, g), xt.grad)
    close(lin.gradWeight, w.grad)
    assert m.inShape.tolist() == [a * b, n_in] and m.outShape.tolist() == [a * b, n_out]
    close(m.forward(P(xa[0])), yt[0])          # no extra dims: passes through


@HYP
@given(st.integers(1, 4), st.integers(1, 3), st.booleans())
def test_maptable_vs_torch(n, b, shared):
    pynn.manualSeed(4)
    lin = nn.Linear(3, 2)
    m = nn.MapTable(lin, shared)
    xs = [randn(b, 3) for _ in range(n)]
    gs = [randn(b, 2) for _ in range(n)]
    w, bb = tw(lin)
    ys = m.forward([P(x) for x in xs])
    assert len(ys) == n and len(m.modules) == n and ys[0] is lin.output
    m.zeroGradParameters()
    gi = m.backward([P(x) for x in xs], [P(g) for g in gs])
    tot = 0
    for x, y, g, gin in zip(xs, ys, gs, gi):
        xt = torch.from_numpy(x).requires_grad_()
        yt = F.linear(xt, w, bb)
        close(y, yt)
        yt.backward(torch.from_numpy(g))
        close(gin, xt.grad)
        tot = tot + 0
    if shared:   # clones share weight and gradients: the gradient of all the uses
        close(lin.gradWeight, w.grad)
        assert all(c.weight.storage() is lin.weight.storage() for c in m.modules)
    else:
        assert m.modules[-1].weight.storage() is not lin.weight.storage() or n == 1
    m.forward([P(xs[0])])
    assert len(m.modules) == n              # clones are kept
    m.clearState()
    assert len(m.modules) == 1
    assert str(m) == 'nn.MapTable {\n  nn.Linear(3 -> 2)\n}'


def test_maptable_bad_input():
    m = nn.MapTable(nn.Linear(3, 2))
    with pytest.raises(ValueError, match='nn.MapTable'):
        m.forward(P(randn(2, 3)))
    with pytest.raises(ValueError, match='In 2nd module of nn.MapTable'):
        m.forward([P(randn(3)), P(randn(4))])
    assert len(m.forward([P(randn(3))])) == 1


@HYP
@given(st.integers(1, 3), st.integers(1, 4), st.integers(1, 4), st.booleans())
def test_weightnorm_vs_torch(b, n_in, n_out, bias):
    pynn.manualSeed(5)
    lin = nn.Linear(n_in, n_out, bias)
    m = nn.WeightNorm(lin)
    assert m.weight is lin.weight and m.v.size() == (n_out, n_in) and m.g.size() == (n_out, 1)   # Lua's g:norm(v, 2, 2)
    xa, ga = randn(b, n_in), randn(b, n_out)
    vt = torch.from_numpy(m.v.numpy().copy()).requires_grad_()
    gt = torch.from_numpy(m.g.numpy().reshape(-1).copy()).requires_grad_()
    bt = torch.from_numpy(lin.bias.numpy().copy()).requires_grad_() if bias else None
    xt = torch.from_numpy(xa).requires_grad_()
    norm = (vt.pow(2).sum(1, keepdim=True) + 10e-5).sqrt()     # Lua's 10e-5 inside the norm
    yt = F.linear(xt, gt.unsqueeze(1) * vt / norm, bt)
    yt.backward(torch.from_numpy(ga))
    close(m.forward(P(xa)), yt)
    m.zeroGradParameters()
    close(m.backward(P(xa), P(ga)), xt.grad)
    close(m.gradV, vt.grad)
    close(m.gradG.numpy().reshape(-1), gt.grad)
    if bias:
        close(m.gradBias, bt.grad)
    assert m.parameters()[0][:2] == [m.v, m.g]


def test_weightnorm_outputdim_2_and_load_recomputes_weight():
    pynn.manualSeed(6)
    inner = nn.Linear(3, 4)
    m = nn.WeightNorm(inner, 2)
    assert m.v.size() == (3, 4) and m.viewOut.tolist() == [3, 4]
    y = m.forward(P(randn(2, 3)))
    v, g = m.v.numpy(), m.g.numpy().reshape(-1)
    w = (g[:, None] * v / np.sqrt((v * v).sum(1, keepdims=True) + 1e-4)).T
    close(inner.weight, w)
    assert y.size() == (2, 4)
    if (REF / 'WeightNorm_1.t7').exists():
        fx = pynn.load(REF / 'WeightNorm_1.t7')      # Lua writes no weight: read() recomputes it
        wn = fx['module']
        assert wn.weight is wn.modules[0].weight and wn.weight.size() == tuple(wn.weightSize.tolist())


def test_printsize_and_criteriontable(capsys):
    m = nn.PrintSize('x')
    x = P(randn(2, 3))
    assert m.forward(x) is x
    g = P(randn(2, 3))
    assert m.backward(x, g) is g
    out = capsys.readouterr().out
    assert 'x:input' in out and 'x:gradOutput' in out
    ct = nn.CriterionTable(nn.MSECriterion())
    a, b = randn(3, 4), randn(3, 4)
    loss = ct.forward([P(a), P(b)])
    at = torch.from_numpy(a).requires_grad_()
    lt = F.mse_loss(at, torch.from_numpy(b))
    lt.backward()
    assert abs(loss - lt.item()) < 1e-12
    gi = ct.backward([P(a), P(b)], 1)
    assert isinstance(gi, list) and len(gi) == 1 and gi[0] is ct.criterion.gradInput
    close(gi[0], at.grad)
    with pytest.raises(ValueError, match='nn.CriterionTable'):
        ct.forward(P(a))


# --------------------------------------------------------------------------- criterion containers
@HYP
@given(st.integers(1, 4), st.floats(0.1, 2), st.floats(0.1, 2), st.booleans())
def test_parallel_and_multi_criterion_vs_torch(n, w1, w2, repeat):
    a, b, t = randn(n, 3), randn(n, 3), randn(n, 3)
    at, bt = torch.from_numpy(a).requires_grad_(), torch.from_numpy(b).requires_grad_()
    tt = torch.from_numpy(t)
    pc = nn.ParallelCriterion(repeat or None).add(nn.MSECriterion(), w1).add(nn.MSECriterion())
    target = P(t) if repeat else [P(t), P(t)]
    loss = pc.forward([P(a), P(b)], target)
    lt = w1 * F.mse_loss(at, tt) + F.mse_loss(bt, tt)
    lt.backward()
    assert abs(loss - lt.item()) < 1e-12
    gi = pc.backward([P(a), P(b)], target)
    close(gi[0], at.grad)
    close(gi[1], bt.grad)
    mc = nn.MultiCriterion().add(nn.MSECriterion(), w1).add(nn.MSECriterion(False), w2)
    at2 = torch.from_numpy(a).requires_grad_()
    lt2 = w1 * F.mse_loss(at2, tt) + w2 * F.mse_loss(at2, tt, reduction='sum')
    lt2.backward()
    assert abs(mc.forward(P(a), P(t)) - lt2.item()) < 1e-10 * max(1, abs(lt2.item()))
    close(mc.backward(P(a), P(t)), at2.grad)
    assert mc.weights.tolist() == [w1, w2]


def test_parallel_criterion_with_classnll_and_errors():
    x = randn(3, 4)
    pc = nn.ParallelCriterion().add(nn.ClassNLLCriterion(), 0.5)
    tgt = pynn.LongTensor([1, 4, 2])
    xt = torch.from_numpy(x).requires_grad_()
    lt = 0.5 * F.nll_loss(xt, torch.tensor([0, 3, 1]))
    lt.backward()
    assert abs(pc.forward([P(x)], [tgt]) - lt.item()) < 1e-12
    close(pc.backward([P(x)], [tgt])[0], xt.grad)
    with pytest.raises(ValueError, match='nn.ParallelCriterion'):
        pc.forward(P(x), [tgt])
    with pytest.raises(TypeError, match='nn.ParallelCriterion'):
        pc.add(nn.Linear(2, 2))


def test_module_criterion_vs_torch():
    mc = nn.ModuleCriterion(nn.MSECriterion(), nn.Tanh(), nn.Sigmoid())
    a, b = randn(2, 3), randn(2, 3)
    at = torch.from_numpy(a).requires_grad_()
    lt = F.mse_loss(torch.tanh(at), torch.sigmoid(torch.from_numpy(b)))
    lt.backward()
    assert abs(mc.forward(P(a), P(b)) - lt.item()) < 1e-12
    close(mc.backward(P(a), P(b)), at.grad)
    mc.float()
    assert mc.criterion.gradInput.type() == 'torch.FloatTensor'


# --------------------------------------------------------------------------- files: GPU, Timer
def test_gpu_writes_and_reads_as_lua():
    m = nn.GPU(nn.Linear(3, 2), 2)
    back = roundtrip(m)
    assert type(back) is nn.GPU and back.device == 2 and back.outdevice == 2
    close(back.modules[0].weight, m.modules[0].weight)
    raw = serialization.dumps(m)
    # Lua's GPU:write: class name, then the header table {_type, device}, then the fields
    i = raw.index(b'nn.GPU') + len(b'nn.GPU')
    # a table (tag 3) of 2 entries: 1 -> '<_type>', 2 -> device
    assert raw[i:i + 4] == b'\x03\x00\x00\x00' and raw[i + 8:i + 12] == b'\x02\x00\x00\x00'
    assert b'torch.DoubleTensor' in raw[i:i + 80]
    if (REF / 'GPU_1.t7').exists():
        data = (REF / 'GPU_1.t7').read_bytes()
        fx = pynn.load(REF / 'GPU_1.t7')
        assert serialization.dumps(fx) == data      # byte for byte as Lua wrote it
        assert str(fx['module']) == 'nn.GPU(1) @ nn.Linear(3 -> 2)'


def test_profile_timer_loads_and_saves():
    m = nn.Profile(nn.Linear(3, 2), 10, 'lin')
    assert isinstance(m.timer, serialization.Timer)
    back = roundtrip(m)
    assert isinstance(back.timer, serialization.Timer) and back.name == 'lin'
    t = back.timer.time()
    assert set(t) == {'real', 'user', 'sys'} and t['real'] >= 0
    back.forward(P(randn(2, 3)))
    assert back.numFwds == 1
    assert isinstance(m.clone().timer, serialization.Timer)
    if (REF / 'Profile_1.t7').exists():
        data = (REF / 'Profile_1.t7').read_bytes()
        assert serialization.dumps(pynn.load(REF / 'Profile_1.t7')) == data


# --------------------------------------------------------------------------- float32 and meta
@pytest.mark.parametrize('make', [lambda: nn.Decorator(nn.Linear(3, 2)), lambda: nn.Bottle(nn.Linear(3, 2)),
                                  lambda: nn.WeightNorm(nn.Linear(3, 2)), lambda: nn.GPU(nn.Linear(3, 2), 1),
                                  lambda: nn.NaN(nn.Linear(3, 2))])
def test_decorators_float32_and_meta(make):
    x = P(randn(4, 2, 3) if 'Bottle' in str(make()) else randn(4, 3))
    ref = make()
    y = ref.forward(x)
    m32 = make().float()
    y32 = m32.forward(x.float())
    assert y32.type() == 'torch.FloatTensor' and y32.size() == y.size()
    assert m32.backward(x.float(), y32.clone()).type() == 'torch.FloatTensor'
    meta = make().type('torch.MetaDoubleTensor')
    ym = meta.forward(pynn.MetaDoubleTensor(*x.size()))
    assert ym.is_meta() and ym.size() == y.size()
    gm = meta.backward(pynn.MetaDoubleTensor(*x.size()), pynn.MetaDoubleTensor(*y.size()))
    assert gm.size() == x.size()


def test_weightnorm_writes_as_lua_without_weight():
    pynn.manualSeed(8)
    m = nn.WeightNorm(nn.Linear(3, 4))
    m.forward(P(randn(2, 3)))
    raw = serialization.dumps(m)
    back = pynn.load(io.BytesIO(raw))
    assert back.weight is back.modules[0].weight and back.gradWeight is back.modules[0].gradWeight
    close(back.weight, m.weight)
    assert 'weight' in m.modules[0].__dict__      # the saved network keeps its weight
    if (REF / 'WeightNorm_1.t7').exists():
        data = (REF / 'WeightNorm_1.t7').read_bytes()
        assert serialization.dumps(pynn.load(REF / 'WeightNorm_1.t7')) == data


def test_bottle_bad_input_and_printing():
    m = nn.Bottle(nn.Linear(3, 2))
    for bad in (P(randn(3)), [P(randn(2, 3))]):
        with pytest.raises(ValueError, match='nn.Bottle'):
            m.forward(bad)
    with pytest.raises(ValueError, match='In 1st module of nn.Bottle'):
        m.forward(P(randn(2, 2, 4)))
    assert m.forward(P(randn(2, 2, 3))).size() == (2, 2, 2)
    assert str(m) == 'nn.Bottle @ nn.Linear(3 -> 2)'
    assert str(nn.WeightNorm(nn.Linear(3, 2))) == 'nn.WeightNorm @ nn.Linear(3 -> 2)'
