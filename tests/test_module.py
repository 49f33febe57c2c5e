"""The Module protocol: parameters, getParameters and sharing, type conversion, cloning,
printing, error paths, and memory honesty (no hidden full-size temporaries)."""
import tracemalloc

import numpy as np
import pytest

import pynn
from pynn import nn
from pynn.optnet import countUsedMemory


def small_convnet():
    net = nn.Sequential()
    net.add(nn.SpatialConvolution(3, 16, 3, 3, 1, 1, 1, 1))
    net.add(nn.SpatialBatchNormalization(16))
    net.add(nn.ReLU(True))
    net.add(nn.SpatialMaxPooling(2, 2, 2, 2))
    net.add(nn.SpatialConvolution(16, 16, 3, 3, 1, 1, 1, 1))
    net.add(nn.ReLU(True))
    net.add(nn.View(16 * 8 * 8))
    net.add(nn.Linear(16 * 8 * 8, 10))
    net.add(nn.LogSoftMax())
    return net


def test_getParameters_keeps_sharing_made_by_clone():
    a = nn.Linear(4, 3)
    b = a.clone('weight', 'bias', 'gradWeight', 'gradBias')
    shared = nn.Sequential().add(a).add(b)
    w, g = shared.getParameters()
    assert w.nElement() == 4 * 3 + 3  # the clone's weights are the same storage: counted once
    assert a.weight.storage() is w.storage() and b.weight.storage() is w.storage()
    w.fill(0.25)
    assert np.all(b.weight.numpy() == 0.25) and np.all(a.bias.numpy() == 0.25)
    assert a.weight.storageOffset() == b.weight.storageOffset()


def test_getParameters_flat_views_drive_the_modules():
    net = small_convnet()
    w, g = net.getParameters()
    params, grads = net.parameters()
    assert w.nElement() == sum(p.nElement() for p in params)
    x = pynn.rand(2, 3, 16, 16)
    net.forward(x)
    net.zeroGradParameters()
    net.backward(x, pynn.rand(2, 10))
    total = sum(float(np.abs(gr.numpy()).sum()) for gr in grads)
    assert abs(float(np.abs(g.numpy()).sum()) - total) < 1e-8 * max(1, total)
    before = net.forward(x).numpy().copy()
    w.add(-0.01, g)  # a flat SGD step moves every module
    assert not np.array_equal(before, net.forward(x).numpy())


def test_sgd_reduces_loss():
    pynn.manualSeed(1)
    net = small_convnet()
    crit = nn.ClassNLLCriterion()
    x = pynn.rand(8, 3, 16, 16)
    y = pynn.LongTensor([1, 2, 3, 4, 5, 6, 7, 8])
    losses = []
    for _ in range(15):
        out = net.forward(x)
        losses.append(crit.forward(out, y))
        net.zeroGradParameters()
        net.backward(x, crit.backward(out, y))
        net.updateParameters(0.05)
    assert losses[-1] < 0.5 * losses[0]


def test_type_conversion_keeps_sharing_and_float_runs():
    net = small_convnet()
    seq = nn.Sequential().add(net)
    assert seq.output is net.output
    seq.float()
    assert net.get(1).weight.type() == 'torch.FloatTensor'
    assert seq.output is net.output  # the same object converted once
    out = seq.forward(pynn.FloatTensor(2, 3, 16, 16).uniform())
    assert out.type() == 'torch.FloatTensor' and out.size() == (2, 10)


def test_clone_is_deep_and_share_shares():
    a = nn.Linear(3, 2)
    b = a.clone()
    b.weight.fill(1)
    assert not np.all(a.weight.numpy() == 1)
    c = a.clone('weight')
    c.weight.fill(3)
    assert np.all(a.weight.numpy() == 3)
    assert c.bias.storage() is not a.bias.storage()


def test_errors_name_the_path_and_leave_the_net_usable():
    net = nn.Sequential().add(nn.Linear(5, 4)).add(nn.Concat(2).add(nn.Linear(4, 3)).add(nn.Linear(3, 2)))
    with pytest.raises(ValueError) as e:
        net.forward(pynn.rand(2, 5))
    msg = str(e.value)
    assert 'In 2nd module of nn.Sequential' in msg and 'In 2nd module of nn.Concat' in msg
    assert 'nn.Linear(3 -> 2)' in msg
    net.get(2).modules[1] = nn.Linear(4, 2)
    assert net.forward(pynn.rand(2, 5)).size() == (2, 5)


def test_printing_is_luas_tree():
    net = nn.Sequential().add(nn.Linear(2, 3)).add(nn.ReLU())
    s = repr(net)
    assert s.splitlines()[0] == 'nn.Sequential {'
    assert '[input -> (1) -> (2) -> output]' in s and '(1): nn.Linear(2 -> 3)' in s
    assert pynn.typename(net.get(2)) == 'nn.ReLU'
    assert [pynn.typename(m) for m in net.listModules()] == ['nn.Sequential', 'nn.Linear', 'nn.ReLU']
    assert net.findModules('nn.Linear') == [net.get(1)]


def test_clearState_empties_buffers():
    net = small_convnet()
    x = pynn.rand(2, 3, 16, 16)
    net.forward(x)
    net.backward(x, pynn.rand(2, 10))
    net.clearState()
    mem = countUsedMemory(net)
    assert mem['outputs'] == 0 and mem['gradInputs'] == 0
    assert net.forward(x).size() == (2, 10)


def test_memory_honesty_second_pass_allocates_little():
    """After a first forward+backward sized every buffer, a second one allocates in transient
    temporaries at most 10% of the bytes that the modules' storages hold."""
    pynn.setdefaulttensortype('torch.FloatTensor')
    try:
        net = small_convnet()
        x = pynn.rand(16, 3, 16, 16)
        g = pynn.rand(16, 10)
        net.forward(x)
        net.backward(x, g)
        held = countUsedMemory(net)['total_size']
        tracemalloc.start()
        try:
            tracemalloc.reset_peak()
            base = tracemalloc.get_traced_memory()[0]
            net.forward(x)
            net.backward(x, g)
            peak = tracemalloc.get_traced_memory()[1] - base
        finally:
            tracemalloc.stop()
    finally:
        pynn.setdefaulttensortype('torch.DoubleTensor')
    assert peak <= 0.10 * held, 'transient peak %d bytes vs %d held' % (peak, held)
