"""The same layers on CuPy: CUDA results equal the NumPy results (float64 to 1e-10).

Runs where CuPy and a GPU are present; elsewhere every test is skipped with the reason.
"""
import numpy as np
import pytest

import pynn
from pynn import backend, nn, optnet

pytestmark = pytest.mark.skipif(not backend.HAS_CUDA,
                                reason='CuPy with a CUDA GPU is not available on this machine')


def _host(x):
    a = x.numpy()
    return a.get() if hasattr(a, 'get') else a


LAYERS = [
    ('conv', lambda: nn.SpatialConvolution(3, 5, 3, 3, 2, 1, 1, 0), (2, 3, 9, 8)),
    ('maxpool-ceil', lambda: nn.SpatialMaxPooling(3, 3, 2, 2, 1, 1).ceil(), (2, 3, 9, 8)),
    ('avgpool', lambda: nn.SpatialAveragePooling(2, 2, 2, 2), (2, 3, 8, 8)),
    ('batchnorm', lambda: nn.SpatialBatchNormalization(3), (4, 3, 5, 5)),
    ('lrn', lambda: nn.SpatialCrossMapLRN(3), (2, 4, 5, 5)),
    ('relu', lambda: nn.ReLU(), (2, 3, 4, 4)),
    ('linear', lambda: nn.Linear(7, 4), (3, 7)),
    ('logsoftmax', lambda: nn.LogSoftMax(), (3, 7)),
    ('sequential', lambda: nn.Sequential().add(nn.SpatialConvolution(3, 4, 3, 3, 1, 1, 1, 1))
     .add(nn.ReLU(True)).add(nn.View(4 * 6 * 6).setNumInputDims(3)).add(nn.Linear(144, 3)),
     (2, 3, 6, 6)),
]


@pytest.mark.parametrize('name,make,shape', LAYERS, ids=[x[0] for x in LAYERS])
def test_cuda_matches_cpu(name, make, shape):
    pynn.manualSeed(0)
    cpu = make()
    gpu = cpu.clone().type('torch.CudaDoubleTensor')
    x = pynn.rand(*shape)
    out = cpu.forward(x)
    g = pynn.rand(*out.size())
    cpu.zeroGradParameters()
    gin = cpu.backward(x, g)
    xg, gg = x.type('torch.CudaDoubleTensor'), g.type('torch.CudaDoubleTensor')
    gout = gpu.forward(xg)
    assert gout.type() == 'torch.CudaDoubleTensor'
    gpu.zeroGradParameters()
    ggin = gpu.backward(xg, gg)
    np.testing.assert_allclose(_host(gout), _host(out), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(_host(ggin), _host(gin), rtol=1e-10, atol=1e-10)
    p = cpu.parameters()
    if p:
        for a, b in zip(gpu.parameters()[1], p[1]):
            np.testing.assert_allclose(_host(a), _host(b), rtol=1e-9, atol=1e-10)


def test_optnet_on_cuda_keeps_outputs():
    from pynn import models
    pynn.manualSeed(1)
    net, x = models.resnet({'dataset': 'cifar10', 'depth': 20}, batch=2)
    net.evaluate()
    net.type('torch.CudaTensor')
    x = x.type('torch.CudaTensor')
    ref = _host(net.forward(x)).copy()
    before = optnet.countUsedMemory(net)
    optnet.optimizeMemory(net, x)
    assert np.array_equal(_host(net.forward(x)), ref)
    assert optnet.countUsedMemory(net)['total_size'] < before['total_size']
