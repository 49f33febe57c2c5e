"""The meta tensor type: shape-only storages. Every model runs forward and backward on it, and
optnet's accounting of a meta run equals a real run's, byte for byte: countUsedMemory before and
after optimizeMemory, in inference and in training, with nn and with cudnn modules, for every
model builder at a small batch. (This is what makes `pynn-optnet tables --meta` trustworthy.)

The real runs of the big models cost seconds each: by default they run at batch 1, but for the
three slowest (VGG in training, GoogLeNet in training with nn modules); with PYNN_SLOW_TESTS=1
all of them run, at batch 2."""
import os

import numpy as np
import pytest

import pynn
from pynn import models
from pynn import optnet, cudnn
from pynn.optnet.trace import recursive_clone, tensors_of

SLOW = os.environ.get('PYNN_SLOW_TESTS') == '1'
SMALL = ['basic_parallel', 'basic_conv', 'basic_deep_conv', 'basic_unpooling', 'siamese', 'basic_concat',
         'basic_multiOutput']
ARGS = {'vgg': 'A', 'resnet': {'dataset': 'cifar10', 'depth': 110},
        'preresnet': {'dataset': 'cifar10', 'depth': 110}}
BIG = ['alexnet', 'vgg', 'googlenet', 'resnet', 'preresnet']


def build(name, kind, meta, batch):
    old = pynn.getdefaulttensortype()
    pynn.setdefaulttensortype('torch.%s%sTensor' % ('Meta' if meta else '', kind))
    try:
        pynn.manualSeed(0)
        b = models.builders[name]
        if name in SMALL:
            return b()
        return b(ARGS.get(name), batch=batch)
    finally:
        pynn.setdefaulttensortype(old)


def accounting(name, mode, use_cudnn, meta, batch=2, kind='Float'):
    net, inp = build(name, kind, meta, batch)
    if use_cudnn:
        net = cudnn.convert(net)
    net.training() if mode == 'training' else net.evaluate()

    def run():
        out = net.forward(inp)
        if mode == 'training':
            net.backward(inp, recursive_clone(out))
        return out

    out = run()
    before = optnet.countUsedMemory(net)
    optnet.optimizeMemory(net, inp, {'mode': mode})
    out2 = run()
    after = optnet.countUsedMemory(net)
    shapes = [t.size() for t in tensors_of(out2)]
    if meta:
        assert all(t.is_meta() for t in tensors_of(out)) and all(t.is_meta() for t in tensors_of(out2))
    return before, after, shapes


# the slowest real runs (seconds each at batch 1): only with PYNN_SLOW_TESTS=1
def cases():
    out = []
    for name in SMALL:
        for mode in ('inference', 'training'):
            out.append((name, mode, False))
    for name in BIG:  # every big model too, at batch 1 (a few seconds each)
        for mode in ('inference', 'training'):
            for uc in (False, True):
                out.append((name, mode, uc))
    return out


@pytest.fixture(scope='module', autouse=True)
def one_blas_thread():
    """Real runs with one BLAS thread: on a shared 2-core machine OpenBLAS's spinning threads
    can make them several times slower."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield
        return
    with threadpool_limits(limits=1, user_api='blas'):
        yield


@pytest.mark.parametrize('name,mode,use_cudnn', cases())
def test_meta_accounting_equals_real(name, mode, use_cudnn):
    batch = 2 if SLOW or name in SMALL else 1
    m_before, m_after, m_shapes = accounting(name, mode, use_cudnn, True, batch)
    r_before, r_after, r_shapes = accounting(name, mode, use_cudnn, False, batch)
    assert m_before == r_before
    assert m_after == r_after
    assert m_shapes == r_shapes
    assert m_after['total_size'] <= m_before['total_size']


def test_meta_storages_have_sizes_but_no_data():
    t = pynn.MetaFloatTensor(2, 3, 4)
    assert t.is_meta() and t.type() == 'torch.MetaFloatTensor'
    assert t.storage().size() == 24 and t.storage().data is None
    with pytest.raises(RuntimeError, match='meta'):
        t.numpy()
    t.resize(5, 5)
    assert t.storage().size() == 25
    t.fill(3).add(1).mul(2)                          # no-ops, no error
    assert pynn.MetaDoubleTensor(3).storage().nbytes() == 24


def test_net_type_to_meta_and_setdefaulttensortype():
    net, inp = models.builders['basic_deep_conv']()
    real_out = net.forward(inp).size()
    net.type('torch.MetaFloatTensor')
    assert all(p.is_meta() for p in net.parameters()[0])
    out = net.forward(inp.type('torch.MetaFloatTensor'))
    assert out.is_meta() and out.size() == real_out
    old = pynn.getdefaulttensortype()
    pynn.setdefaulttensortype('torch.MetaDoubleTensor')
    try:
        big, x = models.builders['vgg']('A', batch=128)   # no memory, no compute
    finally:
        pynn.setdefaulttensortype(old)
    assert x.type() == 'torch.MetaDoubleTensor'
    big.evaluate()
    assert big.forward(x).size() == (128, 1000)
    before = optnet.countUsedMemory(big)
    optnet.optimizeMemory(big, x)
    big.forward(x)
    after = optnet.countUsedMemory(big)
    assert after['total_size'] < before['total_size']
    assert before['outputs'] == 128 * 8 * sum(int(np.prod(m.output.size())) // 128 for m in big.listModules()
                                              if m.__dict__.get('modules') is None
                                              and m.__typename__ not in ('nn.ReLU', 'nn.View'))
