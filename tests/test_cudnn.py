"""pynn.cudnn: the cudnn.* modules against their nn twins and PyTorch (float64, 1e-10), their
lack of persistent buffers, the bounded convolution workspace, meta tensors, and convert."""
import gc
import tracemalloc

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import pynn
from pynn import nn, cudnn
from pynn.nn.module import Module

TOL = 1e-10
PARAMS = ('weight', 'bias', 'gradWeight', 'gradBias')


def T(a):
    return pynn.from_numpy(np.ascontiguousarray(a))


def th(a):
    return torch.from_numpy(np.array(a.numpy() if isinstance(a, pynn.Tensor) else a, copy=True))


def tensor_fields(m):
    return {k for k, v in m.__dict__.items() if isinstance(v, pynn.Tensor) and v.storage() is not None}


def twin(nn_module):
    """(nn module, cudnn module) with the same parameters (the cudnn one a converted deep copy)."""
    import copy
    c = cudnn.convert(copy.deepcopy(nn_module))
    return nn_module, c


def run(m, x, go, scale=1.0):
    m.zeroGradParameters()
    y = m.forward(T(x)).numpy().copy()
    gi = m.backward(T(x), T(go), scale).numpy().copy()
    gw = [g.numpy().copy() for g in (m.parameters() or ([], []))[1]]
    return y, gi, gw


def assert_same(a, b, tol=TOL):
    ya, ga, wa = a
    yb, gb, wb = b
    np.testing.assert_allclose(ya, yb, rtol=0, atol=tol)
    np.testing.assert_allclose(ga, gb, rtol=0, atol=tol)
    assert len(wa) == len(wb)
    for u, v in zip(wa, wb):
        np.testing.assert_allclose(u, v, rtol=0, atol=tol)


# --- convolution -----------------------------------------------------------------------------------
CONV_CASES = [  # nIn, nOut, kW, kH, dW, dH, padW, padH, batch (0: 3-D input), iH, iW
    (3, 5, 3, 3, 1, 1, 1, 1, 2, 9, 8),
    (4, 6, 1, 1, 1, 1, 0, 0, 3, 7, 7),     # pointwise: no unfold
    (2, 3, 5, 3, 3, 2, 2, 1, 1, 11, 10),
    (3, 4, 2, 4, 2, 1, 0, 2, 0, 8, 9),      # non-batch
    (1, 2, 7, 7, 2, 2, 3, 3, 4, 13, 12),
]


@pytest.mark.parametrize('case', CONV_CASES)
@pytest.mark.parametrize('limit', [1, 1 << 26])   # one sample per chunk / whole batch
def test_conv_vs_nn_and_torch(case, limit):
    nIn, nOut, kW, kH, dW, dH, pW, pH, B, iH, iW = case
    rng = np.random.default_rng(sum(case))
    a, c = twin(nn.SpatialConvolution(nIn, nOut, kW, kH, dW, dH, pW, pH))
    shape = (B, nIn, iH, iW) if B else (nIn, iH, iW)
    x = rng.standard_normal(shape)
    old = cudnn.setWorkspaceLimit(limit)
    try:
        y = c.forward(T(x)).numpy().copy()
        go = rng.standard_normal(y.shape)
        rc = run(c, x, go, 0.5)
    finally:
        cudnn.setWorkspaceLimit(old)
    ra = run(a, x, go, 0.5)
    assert_same(rc, ra)
    xt = th(x).requires_grad_(True)
    wt = th(a.weight).requires_grad_(True)
    bt = th(a.bias).requires_grad_(True)
    yt = TF.conv2d(xt[None] if not B else xt, wt, bt, (dH, dW), (pH, pW))
    yt = yt[0] if not B else yt
    yt.backward(th(go))
    assert_same(rc, (yt.detach().numpy(), xt.grad.numpy(), [0.5 * wt.grad.numpy(), 0.5 * bt.grad.numpy()]))
    assert tensor_fields(c) == {'output', 'gradInput'} | set(PARAMS)


@pytest.mark.parametrize('groups', [2, 3])
def test_conv_groups_vs_torch(groups):
    rng = np.random.default_rng(groups)
    m = cudnn.SpatialConvolution(6, 3 * groups, 3, 3, 2, 1, 1, 0, groups)
    assert m.weight.size() == (3 * groups, 6 // groups, 3, 3)
    x = rng.standard_normal((2, 6, 7, 8))
    y = m.forward(T(x)).numpy().copy()
    go = rng.standard_normal(y.shape)
    r = run(m, x, go)
    xt = th(x).requires_grad_(True)
    wt = th(m.weight).requires_grad_(True)
    bt = th(m.bias).requires_grad_(True)
    yt = TF.conv2d(xt, wt, bt, (1, 2), (0, 1), groups=groups)
    yt.backward(th(go))
    assert_same(r, (yt.detach().numpy(), xt.grad.numpy(), [wt.grad.numpy(), bt.grad.numpy()]))
    with pytest.raises(ValueError, match='groups'):
        cudnn.SpatialConvolution(5, 4, 3, 3, 1, 1, 0, 0, 2)
    with pytest.raises(ValueError, match='groups'):
        cudnn.convert(nn.Sequential().add(m), nn)


def test_conv_from_mm_keeps_2d_weight():
    rng = np.random.default_rng(3)
    a = nn.SpatialConvolutionMM(3, 4, 3, 3, 1, 1, 1, 1)
    net = cudnn.convert(nn.Sequential().add(a))
    c = net.get(1)
    assert c.__typename__ == 'cudnn.SpatialConvolution' and c.weight is a.weight and c.weight.dim() == 2
    x = rng.standard_normal((2, 3, 6, 6))
    go = rng.standard_normal((2, 4, 6, 6))
    import copy
    assert_same(run(c, x, go), run(copy.deepcopy(a), x, go))


def test_conv_non_contiguous_input_and_gradoutput():
    rng = np.random.default_rng(5)
    a, c = twin(nn.SpatialConvolution(3, 4, 3, 3, 1, 1, 1, 1))
    big = T(rng.standard_normal((2, 6, 7, 7)))
    x = big.narrow(2, 2, 3)                       # a non-contiguous channel window
    gbig = T(rng.standard_normal((2, 8, 7, 7)))
    go = gbig.narrow(2, 3, 4)
    for m in (a, c):
        m.zeroGradParameters()
    ya = a.forward(x.clone()).numpy().copy()
    yc = c.forward(x).numpy().copy()
    np.testing.assert_allclose(yc, ya, atol=TOL, rtol=0)
    np.testing.assert_allclose(c.backward(x, go).numpy(), a.backward(x.clone(), go.clone()).numpy(),
                               atol=TOL, rtol=0)
    np.testing.assert_allclose(c.gradWeight.numpy(), a.gradWeight.numpy(), atol=TOL, rtol=0)
    assert '_input' not in c.__dict__ and '_gradOutput' not in c.__dict__


def test_conv_workspace_is_transient_and_bounded():
    rng = np.random.default_rng(7)
    m = cudnn.SpatialConvolution(16, 16, 3, 3, 1, 1, 1, 1)
    x = T(rng.standard_normal((8, 16, 24, 24)))
    go = T(rng.standard_normal((8, 16, 24, 24)))
    per_sample = 16 * 9 * 24 * 24 * 8          # one sample's unfolded columns, bytes
    old = cudnn.setWorkspaceLimit(2 * per_sample)
    try:
        m.forward(x)
        m.backward(x, go)
        gc.collect()
        tracemalloc.start()
        try:
            base = tracemalloc.get_traced_memory()[0]
            m.forward(x)
            m.backward(x, go)
            peak = tracemalloc.get_traced_memory()[1] - base
        finally:
            tracemalloc.stop()
    finally:
        cudnn.setWorkspaceLimit(old)
    full = 8 * per_sample                        # what nn keeps in finput (and again in fgradInput)
    assert peak <= 2 * per_sample + 16 * 144 * 8 + (1 << 16), (peak, full)
    assert peak < full / 3
    assert tensor_fields(m) == {'output', 'gradInput'} | set(PARAMS)
    assert cudnn.getWorkspaceLimit() == old
    with pytest.raises(ValueError):
        cudnn.setWorkspaceLimit(-1)


def test_conv_bad_input_names_module_and_still_works():
    m = cudnn.SpatialConvolution(3, 4, 3, 3)
    with pytest.raises(ValueError, match='cudnn.SpatialConvolution'):
        m.forward(pynn.rand(2, 5, 8, 8))
    with pytest.raises(ValueError, match='cudnn.SpatialConvolution'):
        m.forward(pynn.rand(8, 8))
    assert m.forward(pynn.rand(2, 3, 8, 8)).size() == (2, 4, 6, 6)
    assert m.__tostring__() == 'cudnn.SpatialConvolution(3 -> 4, 3x3)'


# --- other layers -----------------------------------------------------------------------------------
def _inputs(shape, seed):
    rng = np.random.default_rng(seed)
    return rng.standard_normal(shape), rng.standard_normal


LAYER_CASES = [
    ('relu', lambda: nn.ReLU(), (2, 3, 5, 4)),
    ('relu_inplace', lambda: nn.ReLU(True), (2, 3, 5, 4)),
    ('tanh', lambda: nn.Tanh(), (3, 7)),
    ('sigmoid', lambda: nn.Sigmoid(), (3, 7)),
    ('softmax', lambda: nn.SoftMax(), (4, 10)),
    ('softmax_1d', lambda: nn.SoftMax(), (10,)),
    ('logsoftmax', lambda: nn.LogSoftMax(), (4, 10)),
    ('maxpool', lambda: nn.SpatialMaxPooling(3, 3, 2, 2), (2, 3, 9, 8)),
    ('maxpool_ceil_pad', lambda: nn.SpatialMaxPooling(3, 2, 2, 2, 1, 1).ceil(), (2, 2, 8, 7)),
    ('maxpool_3d', lambda: nn.SpatialMaxPooling(2, 2), (3, 6, 6)),
    ('avgpool', lambda: nn.SpatialAveragePooling(3, 3, 1, 1), (2, 3, 7, 7)),
    ('avgpool_ceil_pad', lambda: nn.SpatialAveragePooling(3, 3, 2, 2, 1, 1).ceil(), (2, 3, 8, 9)),
    ('avgpool_exclude', lambda: nn.SpatialAveragePooling(2, 3, 2, 1, 1, 1).setCountExcludePad(), (1, 2, 6, 7)),
    ('bn', lambda: nn.SpatialBatchNormalization(3), (4, 3, 5, 5)),
    ('bn1d', lambda: nn.BatchNormalization(6), (5, 6)),
    ('lrn', lambda: nn.SpatialCrossMapLRN(3, 1e-2, 0.75, 2), (2, 6, 4, 5)),
    ('lrn_3d', lambda: nn.SpatialCrossMapLRN(5), (7, 3, 4)),
]


@pytest.mark.parametrize('name,make,shape', LAYER_CASES, ids=[c[0] for c in LAYER_CASES])
def test_layer_vs_nn(name, make, shape):
    rng = np.random.default_rng(abs(hash(name)) % 1000)
    a, c = twin(make())
    assert c.__typename__ == 'cudnn.' + a.__typename__.split('.')[1]
    x = rng.standard_normal(shape)
    y = c.forward(T(x)).numpy().copy()
    go = rng.standard_normal(y.shape)
    rc = run(c, x, go, 0.5)
    ra = run(a, x, go, 0.5)
    assert_same(rc, ra)
    nn_fields = tensor_fields(a)
    kept = tensor_fields(c)
    assert kept <= {'output', 'gradInput', 'running_mean', 'running_var', 'save_mean', 'save_std'} | set(PARAMS)
    assert kept <= nn_fields | {'gradInput'}
    if name.startswith('relu'):
        assert c.inplace == a.inplace


def test_layers_vs_torch():
    rng = np.random.default_rng(11)
    x = rng.standard_normal((2, 3, 9, 8))
    xt = th(x)
    m = cudnn.SpatialMaxPooling(3, 3, 2, 2, 1, 1)
    np.testing.assert_allclose(m.forward(T(x)).numpy(), TF.max_pool2d(xt, 3, 2, 1).numpy(), atol=TOL)
    xg = th(x).requires_grad_(True)
    yt = TF.max_pool2d(xg, 3, 2, 1)
    go = rng.standard_normal(tuple(yt.shape))
    yt.backward(th(go))
    np.testing.assert_allclose(m.backward(T(x), T(go)).numpy(), xg.grad.numpy(), atol=TOL)
    a = cudnn.SpatialAveragePooling(2, 2)                     # cudnn's stride defaults to the kernel
    assert (a.dW, a.dH) == (2, 2)
    np.testing.assert_allclose(a.forward(T(x)).numpy(), TF.avg_pool2d(xt, 2).numpy(), atol=TOL)
    s = cudnn.LogSoftMax()
    z = rng.standard_normal((3, 5))
    np.testing.assert_allclose(s.forward(T(z)).numpy(), TF.log_softmax(th(z), 1).numpy(), atol=TOL)
    lrn = cudnn.SpatialCrossMapLRN(5, 1e-3, 0.75, 1)
    np.testing.assert_allclose(lrn.forward(T(x)).numpy(),
                               TF.local_response_norm(xt, 5, 1e-3, 0.75, 1).numpy(), atol=TOL)


def test_batchnorm_cudnn_semantics():
    """As cudnn.torch: updateGradInput also accumulates gradWeight/gradBias, accGradParameters
    does nothing, backward needs training mode."""
    rng = np.random.default_rng(2)
    a, c = twin(nn.SpatialBatchNormalization(3))
    x, go = T(rng.standard_normal((4, 3, 5, 5))), T(rng.standard_normal((4, 3, 5, 5)))
    for m in (a, c):
        m.zeroGradParameters()
        m.forward(x)
    c.updateGradInput(x, go)
    assert abs(c.gradWeight.numpy()).sum() > 0
    a.backward(x, go)
    np.testing.assert_allclose(c.gradWeight.numpy(), a.gradWeight.numpy(), atol=TOL)
    c.accGradParameters(x, go, 5)
    np.testing.assert_allclose(c.gradWeight.numpy(), a.gradWeight.numpy(), atol=TOL)
    c.evaluate()
    c.forward(x)
    with pytest.raises(ValueError, match='training mode'):
        c.backward(x, go)
    c.training()
    c.backward(x, go)


def test_maxpool_keeps_no_indices_and_bad_input():
    m = cudnn.SpatialMaxPooling(2, 2)
    m.forward(pynn.rand(1, 2, 6, 6))
    m.backward(pynn.rand(1, 2, 6, 6), pynn.rand(1, 2, 3, 3))
    assert tensor_fields(m) == {'output', 'gradInput'}
    with pytest.raises(ValueError, match='cudnn.SpatialMaxPooling'):
        m.forward(pynn.rand(6))
    assert m.forward(pynn.rand(2, 6, 6)).size() == (2, 3, 3)
    assert m.__tostring__() == 'cudnn.SpatialMaxPooling(2x2, 2,2)'


# --- float32, meta --------------------------------------------------------------------------------
def _all_modules():
    return [cudnn.SpatialConvolution(3, 4, 3, 3, 1, 1, 1, 1), cudnn.ReLU(), cudnn.ReLU(True), cudnn.Tanh(),
            cudnn.Sigmoid(), cudnn.SpatialMaxPooling(2, 2), cudnn.SpatialAveragePooling(3, 3, 1, 1, 1, 1),
            cudnn.SpatialBatchNormalization(3), cudnn.SpatialCrossMapLRN(3), cudnn.SoftMax(), cudnn.LogSoftMax(),
            cudnn.BatchNormalization(3)]


def _shape_for(m):
    if m.__typename__ in ('cudnn.SoftMax', 'cudnn.LogSoftMax', 'cudnn.BatchNormalization'):
        return (4, 3)
    return (2, 3, 6, 6)


def test_float32():
    rng = np.random.default_rng(1)
    for m in _all_modules():
        md = m.clone().double()
        m.float()
        x = rng.standard_normal(_shape_for(m))
        y = m.forward(T(x.astype(np.float32)))
        assert y.type() == 'torch.FloatTensor'
        go = rng.standard_normal(y.size())
        gi = m.backward(T(x.astype(np.float32)), T(go.astype(np.float32)))
        assert gi.numpy().dtype == np.float32
        np.testing.assert_allclose(y.numpy(), md.forward(T(x)).numpy(), atol=1e-4)
        np.testing.assert_allclose(gi.numpy(), md.backward(T(x), T(go)).numpy(), atol=1e-3)


def test_meta_sizes_equal_real():
    for m in _all_modules():
        real = m.clone()
        m.type('torch.MetaDoubleTensor')
        shape = _shape_for(m)
        y = m.forward(pynn.MetaDoubleTensor(*shape))
        yr = real.forward(pynn.rand(*shape))
        assert y.size() == yr.size() and y.is_meta()
        g = m.backward(pynn.MetaDoubleTensor(*shape), pynn.MetaDoubleTensor(*y.size()))
        gr = real.backward(pynn.rand(*shape), pynn.rand(*yr.size()))
        assert g.size() == gr.size()
        for k in tensor_fields(real):
            assert m.__dict__[k].size() == real.__dict__[k].size(), (m, k)
            assert m.__dict__[k].storage().size() == real.__dict__[k].storage().size(), (m, k)


# --- convert -----------------------------------------------------------------------------------------
def _net():
    pynn.manualSeed(3)
    feat = nn.Sequential()
    feat.add(nn.SpatialConvolution(3, 8, 3, 3, 1, 1, 1, 1)).add(nn.SpatialBatchNormalization(8))
    feat.add(nn.ReLU(True)).add(nn.SpatialCrossMapLRN(3)).add(nn.SpatialMaxPooling(2, 2))
    feat.add(nn.SpatialConvolutionMM(8, 6, 1, 1)).add(nn.Tanh())
    feat.add(nn.SpatialAveragePooling(2, 2, 2, 2)).add(nn.Threshold(0, 1e-6))
    net = nn.Sequential().add(feat).add(nn.View(6 * 2 * 2)).add(nn.Linear(24, 5)).add(nn.LogSoftMax())
    return net


def test_convert_keeps_fields_and_numerics():
    rng = np.random.default_rng(4)
    net = _net()
    x = T(rng.standard_normal((3, 3, 8, 8)))
    ref = net.forward(x).numpy().copy()   # creates nn's buffers (finput, indices, scale, ...)
    go = T(rng.standard_normal((3, 5)))
    net.zeroGradParameters()
    gref = net.backward(x, go).numpy().copy()
    wref = [g.numpy().copy() for g in net.parameters()[1]]
    before = {id(m): m for m in net.listModules()}
    weights = [id(w) for w in net.parameters()[0]]
    net.evaluate()
    net.training()
    out = cudnn.convert(net)
    assert out is net                      # the root is a container: kept
    names = [m.__typename__ for m in net.listModules()]
    assert names.count('cudnn.SpatialConvolution') == 2 and 'nn.SpatialConvolution' not in names
    assert {'cudnn.SpatialBatchNormalization', 'cudnn.ReLU', 'cudnn.SpatialCrossMapLRN', 'cudnn.SpatialMaxPooling',
            'cudnn.Tanh', 'cudnn.SpatialAveragePooling', 'cudnn.LogSoftMax', 'nn.Threshold', 'nn.Linear',
            'nn.View'} <= set(names)
    assert [id(w) for w in net.parameters()[0]] == weights           # the same tensor objects
    relu = net.findModules('cudnn.ReLU')[0]
    assert relu.inplace is True and all(m.train for m in net.listModules())
    for m in net.listModules():
        if m.__typename__.startswith('cudnn.'):
            assert id(m) not in before
            assert not ({'finput', 'fgradInput', 'indices', 'scale', 'paddedRatio', 'accumRatio'} & set(m.__dict__))
    net.zeroGradParameters()
    np.testing.assert_allclose(net.forward(x).numpy(), ref, atol=TOL, rtol=0)
    np.testing.assert_allclose(net.backward(x, go).numpy(), gref, atol=TOL, rtol=0)
    for g, w in zip(net.parameters()[1], wref):
        np.testing.assert_allclose(g.numpy(), w, atol=TOL, rtol=0)
    back = cudnn.convert(net, nn)
    names = [m.__typename__ for m in back.listModules()]
    assert not [n for n in names if n.startswith('cudnn.')]
    np.testing.assert_allclose(back.forward(x).numpy(), ref, atol=TOL, rtol=0)
    assert cudnn.convert(nn.ReLU()).__typename__ == 'cudnn.ReLU'   # a bare module is replaced


def test_convert_exclusion_unpooling_and_errors():
    net = _net()
    n = cudnn.convert(net, 'cudnn', lambda m: m.__typename__ == 'nn.SpatialConvolution')
    assert n.findModules('nn.SpatialConvolution') and n.findModules('cudnn.ReLU')
    pool = nn.SpatialMaxPooling(2, 2, 2, 2)
    un = nn.Sequential().add(pool).add(nn.SpatialMaxUnpooling(pool)).add(nn.SpatialMaxPooling(2, 2))
    cudnn.convert(un)
    assert un.get(1) is pool and un.get(3).__typename__ == 'cudnn.SpatialMaxPooling'
    un.forward(pynn.rand(1, 1, 4, 4))
    with pytest.raises(ValueError, match='dst'):
        cudnn.convert(net, 'cunn')
    with pytest.raises(TypeError):
        cudnn.convert('not a module')


def test_registry_and_serialization(tmp_path):
    reg = cudnn.registry()
    for k in ('cudnn.SpatialConvolution', 'cudnn.ReLU', 'cudnn.SpatialMaxPooling', 'cudnn.SpatialAveragePooling',
              'cudnn.SpatialBatchNormalization', 'cudnn.SoftMax', 'cudnn.LogSoftMax', 'cudnn.SpatialCrossMapLRN'):
        assert reg[k].__typename__ == k and issubclass(reg[k], Module)
    net = cudnn.convert(_net())
    x = pynn.rand(2, 3, 8, 8)
    y = net.forward(x).numpy().copy()
    path = tmp_path / 'net.t7'
    pynn.save(str(path), net)
    back = pynn.load(str(path))
    assert [m.__typename__ for m in back.listModules()] == [m.__typename__ for m in net.listModules()]
    np.testing.assert_allclose(back.forward(x).numpy(), y, atol=TOL)


def test_lua_contiguous_copies():
    """pynn.cudnn.luaContiguousCopies: cudnn.torch's persistent copies of non-contiguous
    gradOutputs (an in-place activation's gradInput is then that copy)."""
    rng = np.random.default_rng(9)
    cat = nn.Concat(2).add(nn.Sequential().add(nn.SpatialConvolution(2, 3, 1, 1)).add(nn.ReLU(True)))
    cat.add(nn.SpatialMaxPooling(1, 1))
    net = cudnn.convert(nn.Sequential().add(cat))
    x = T(rng.standard_normal((2, 2, 4, 4)))
    y = net.forward(x).numpy().copy()
    go = T(rng.standard_normal(y.shape))
    g0 = net.backward(x, go).numpy().copy()
    relu = net.findModules('cudnn.ReLU')[0]
    pool = net.findModules('cudnn.SpatialMaxPooling')[0]
    assert '_gradOutput' not in relu.__dict__ and '_gradOutput' not in pool.__dict__
    cudnn.luaContiguousCopies(net)
    net.forward(x)
    np.testing.assert_allclose(net.backward(x, go).numpy(), g0, atol=TOL)
    assert relu._gradOutput.storage() is relu.gradInput.storage()
    assert pool._gradOutput.isContiguous() and pool._gradOutput.size() == (2, 2, 4, 4)
    cudnn.luaContiguousCopies(net, False)
    assert not [m for m in net.listModules() if m.__dict__.get('_pynn_lua_copies')]
