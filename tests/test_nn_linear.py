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
