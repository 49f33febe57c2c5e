"""optnet's model builders (models/): construction, inputs, forward shapes, parameter
counts and shapes (against torch-built equivalents and well-known published figures),
initialisation, and the MulConstant-for-BatchNorm substitution of optnet's resnet."""
import math

import numpy as np
import pytest
import torch

import pynn
from pynn import models

tnn = torch.nn


# --------------------------------------------------------------------------- helpers
@pytest.fixture
def floatdefault():
    old = pynn.getdefaulttensortype()
    pynn.setdefaulttensortype('torch.FloatTensor')
    pynn.manualSeed(123)
    yield
    pynn.setdefaulttensortype(old)


@pytest.fixture
def metadefault():
    """Build big nets without data: only sizes (parameter counts/shapes are all we need)."""
    old = pynn.getdefaulttensortype()
    pynn.setdefaulttensortype('torch.MetaFloatTensor')
    yield
    pynn.setdefaulttensortype(old)


def build(name, *args, **kw):
    return models.builders[name](*args, **kw)


def forward(net, input):
    return net.forward(input)


def shape(x):
    if isinstance(x, list):
        return [shape(v) for v in x]
    return tuple(x.size())


def param_shapes(net):
    return [tuple(p.size()) for p in net.parameters()[0]]


def n_params(net):
    """Unique parameter elements (shared storages counted once)."""
    seen, n = set(), 0
    for p in net.parameters()[0]:
        key = (id(p.storage()), p.storageOffset(), p.size())
        if key not in seen:
            seen.add(key)
            n += p.nElement()
    return n


# ------------------------------------------------- torch-built equivalents (meta device)
def t_conv(i, o, k, s=1, p=0):
    return tnn.Conv2d(i, o, k, s, p, device='meta')


def t_lin(i, o):
    return tnn.Linear(i, o, device='meta')


def t_shapes(mods):
    return [tuple(p.shape) for m in mods for p in m.parameters()]


VGG_CFG = {  # Simonyan & Zisserman, table 1 (conv widths, 'M' = 2x2 max-pool)
    'A': [64, 'M', 128, 'M', 256, 256, 'M', 512, 512, 'M', 512, 512, 'M'],
    'B': [64, 64, 'M', 128, 128, 'M', 256, 256, 'M', 512, 512, 'M', 512, 512, 'M'],
    'D': [64, 64, 'M', 128, 128, 'M'] + [256] * 3 + ['M'] + [512] * 3 + ['M'] + [512] * 3 + ['M'],
    'E': [64, 64, 'M', 128, 128, 'M'] + [256] * 4 + ['M'] + [512] * 4 + ['M'] + [512] * 4 + ['M'],
}


def t_vgg(cfg):
    mods, c = [], 3
    for v in cfg:
        if v != 'M':
            mods.append(t_conv(c, v, 3, 1, 1))
            c = v
    return mods + [t_lin(512 * 7 * 7, 4096), t_lin(4096, 4096), t_lin(4096, 1000)]


def t_alexnet():
    branch = lambda: [t_conv(3, 48, 11, 4, 2), t_conv(48, 128, 5, 1, 2), t_conv(128, 192, 3, 1, 1),
                      t_conv(192, 192, 3, 1, 1), t_conv(192, 128, 3, 1, 1)]
    return branch() + branch() + [t_lin(9216, 4096), t_lin(4096, 4096), t_lin(4096, 1000)]


def t_inception(cin, c1, c3r, c3, cdr, cd, pool_proj):
    mods = []
    if c1:
        mods.append(t_conv(cin, c1, 1))
    mods += [t_conv(cin, c3r, 1), t_conv(c3r, c3, 3, 1, 1)]
    mods += [t_conv(cin, cdr, 1), t_conv(cdr, cd, 3, 1, 1), t_conv(cd, cd, 3, 1, 1)]
    if pool_proj:
        mods.append(t_conv(cin, pool_proj, 1))
    return mods, c1 + c3 + cd + (pool_proj if pool_proj else cin)


def t_googlenet():
    mods = [t_conv(3, 64, 7, 2, 3), t_conv(64, 64, 1), t_conv(64, 192, 3, 1, 1)]
    c = 192
    for spec in [(64, 64, 64, 64, 96, 32), (64, 64, 96, 64, 96, 64), (0, 128, 160, 64, 96, 0)]:
        m, c = t_inception(c, *spec)
        mods += m
    assert c == 576
    mods.append(t_conv(576, 576, 2, 2))
    for spec in [(224, 64, 96, 96, 128, 128), (192, 96, 128, 96, 128, 128),
                 (160, 128, 160, 128, 160, 96), (96, 128, 192, 160, 192, 96)]:
        m, c = t_inception(c, *spec)
        mods += m
    assert c == 576
    m, c = t_inception(576, 0, 128, 192, 192, 256, 0)
    mods += m
    assert c == 1024
    mods.append(t_conv(1024, 1024, 2, 2))
    for spec in [(352, 192, 320, 160, 224, 128), (352, 192, 320, 192, 224, 128)]:
        m, c = t_inception(c, *spec)
        mods += m
    assert c == 1024
    mods.append(t_lin(1024, 1000))
    mods += [t_conv(576, 128, 1), t_lin(2048, 768), t_lin(768, 1000)]  # auxiliary classifier
    return mods


IMAGENET_CFG = {18: ((2, 2, 2, 2), False), 34: ((3, 4, 6, 3), False), 50: ((3, 4, 6, 3), True),
                101: ((3, 4, 23, 3), True), 152: ((3, 8, 36, 3), True)}


def t_resnet(dataset, depth, bn=False, shortcut='B', pre=False):
    """Parameter-holding modules of fb.resnet.torch's (pre)ResNet, in registration order.
    bn=False: optnet's variant (no batch-norm parameters)."""
    BN = (lambda c: [tnn.BatchNorm2d(c, device='meta')]) if bn else (lambda c: [])
    mods = []

    def sc(cin, cout, stride):
        if shortcut == 'C' or (shortcut == 'B' and cin != cout):
            return [t_conv(cin, cout, 1, stride)] + ([] if pre else BN(cout))
        return []

    def basic(cin, c, stride, preact):
        pre_bn = BN(cin) if preact else []
        if pre:
            body = pre_bn + [t_conv(cin, c, 3, stride, 1)] + BN(c) + [t_conv(c, c, 3, 1, 1)]
        else:
            body = [t_conv(cin, c, 3, stride, 1)] + BN(c) + [t_conv(c, c, 3, 1, 1)] + BN(c)
        return body + sc(cin, c, stride), c

    def bottle(cin, c, stride, preact):
        pre_bn = BN(cin) if preact else []
        body = [t_conv(cin, c, 1)] + BN(c) + [t_conv(c, c, 3, stride, 1)] + BN(c) + [t_conv(c, 4 * c, 1)]
        body = pre_bn + body if pre else body + BN(4 * c)
        return body + sc(cin, 4 * c, stride), 4 * c

    if dataset == 'cifar10':
        n = (depth - 2) // 6
        mods.append(t_conv(3, 16, 3, 1, 1))
        mods += [] if pre else BN(16)
        c = 16
        for width, stride in ((16, 1), (32, 2), (64, 2)):
            for i in range(n):
                m, c = basic(c, width, stride if i == 0 else 1, True)
                mods += m
        mods += BN(64) if pre else []
        mods.append(t_lin(64, 10))
    else:
        counts, is_bottle = IMAGENET_CFG[depth]
        block = bottle if is_bottle else basic
        mods.append(t_conv(3, 64, 7, 2, 3))
        mods += BN(64)
        c = 64
        for s, (width, count) in enumerate(zip((64, 128, 256, 512), counts)):
            for i in range(count):
                m, c = block(c, width, (1 if s == 0 else 2) if i == 0 else 1, not (pre and s == 0 and i == 0))
                mods += m
        mods += BN(c) if pre else []
        mods.append(t_lin(c, 1000))
    return mods


def t_count(mods):
    return sum(p.numel() for m in mods for p in m.parameters())


def conv_out_channels(mods):
    return sum(m.out_channels for m in mods if isinstance(m, tnn.Conv2d))


# Published parameter counts (torchvision's vgg11/13/16/19 and resnet18..152, which have BN
# and bias-free convs; 'resnet20/56/110' CIFAR with option-A shortcuts and BN, as in He et
# al. 2015 / the common reference implementation).
VGG_KNOWN = {'A': 132863336, 'B': 133047848, 'D': 138357544, 'E': 143667240}
TV_RESNET_KNOWN = {18: 11689512, 34: 21797672, 50: 25557032, 101: 44549160, 152: 60192808}
CIFAR_A_BN_KNOWN = {20: 269722, 56: 853018, 110: 1727962}


# ------------------------------------------------------------------------------ tests
def test_builders_keys():
    assert set(models.builders) == {
        'basic_parallel', 'basic_conv', 'basic_deep_conv', 'basic_unpooling', 'siamese',
        'basic_concat', 'basic_multiOutput', 'alexnet', 'googlenet', 'vgg', 'resnet', 'preresnet'}
    for k, f in models.builders.items():
        assert getattr(models, k) is f


BASIC = {  # name: (default input shape, batch-3 input shape, output shape at batch 3)
    'basic_parallel': ([(2, 2), (2, 2)], [(3, 2), (3, 2)], (3, 2)),
    'basic_conv': ((1, 1, 32, 32), (3, 1, 32, 32), (3, 100)),
    'basic_deep_conv': ((1, 1, 32, 32), (3, 1, 32, 32), (3, 10)),
    'basic_unpooling': ((1, 1, 32, 32), (3, 1, 32, 32), (3, 1, 32, 32)),
    'siamese': ([(1, 1, 32, 32), (1, 1, 32, 32)], [(3, 1, 32, 32), (3, 1, 32, 32)], (3,)),
    'basic_concat': ((2, 2), (3, 2), (3, 2)),
    'basic_multiOutput': ((2, 2), (3, 2), [(3, 2), (3, 2), (3, 2)]),
}
BASIC_PARAMS = {  # parameter tensor shapes, in order
    'basic_parallel': [(2, 2), (2,), (1, 2), (1,), (1, 1), (1,), (2, 3), (2,)],
    'basic_conv': [(1, 1, 3, 3), (1,), (100, 1024), (100,)],
    'basic_deep_conv': [(1, 1, 3, 3), (1,)] * 4 + [(100, 1024), (100,), (10, 100), (10,)],
    'basic_unpooling': [(1, 1, 3, 3), (1,)] * 5,
    'siamese': [(1, 1, 3, 3), (1,)] * 8,
    'basic_concat': [(1, 2), (1,), (1, 1), (1,), (2, 2), (2,), (3, 2), (3,), (2, 3), (2,), (2, 1), (2,)],
    'basic_multiOutput': [(2, 2), (2,)] * 6,
}


@pytest.mark.parametrize('name', sorted(BASIC))
def test_basic(name, floatdefault):
    in_shape, in_shape3, out_shape3 = BASIC[name]
    net, input = build(name)
    assert shape(input) == (list(in_shape) if isinstance(in_shape, list) else in_shape)
    assert param_shapes(net) == BASIC_PARAMS[name]
    net, input = build(name, None, batch=3)  # optnet's harness passes opts (nil) positionally
    assert shape(input) == (list(in_shape3) if isinstance(in_shape3, list) else in_shape3)
    for t in (input if isinstance(input, list) else [input]):
        assert t.type() == 'torch.FloatTensor'
    out = forward(net, input)
    assert shape(out) == out_shape3


def test_basic_structure(floatdefault):
    net, _ = build('basic_unpooling')
    pools = net.findModules('nn.SpatialMaxPooling')
    unpools = net.findModules('nn.SpatialMaxUnpooling')
    assert len(pools) == 2 and len(unpools) == 2
    # first unpooling undoes the second pooling, and the second the first
    assert unpools[0].pooling is pools[1] and unpools[1].pooling is pools[0]
    assert [m.inplace for m in net.findModules('nn.ReLU')] == [True] * 4

    net, _ = build('siamese')
    b1, b2 = net.get(1).modules
    assert n_params(net) == 4 * (9 + 1)
    for c1, c2 in zip(b1.findModules('nn.SpatialConvolution'), b2.findModules('nn.SpatialConvolution')):
        assert c1 is not c2
        for f in ('weight', 'bias', 'gradWeight', 'gradBias'):
            assert getattr(c1, f).storage() is getattr(c2, f).storage()
    assert [m.inplace for m in net.findModules('nn.ReLU')] == [False] * 8
    assert net.get(2).__typename__ == 'nn.PairwiseDistance' and net.get(2).norm == 2

    net, _ = build('basic_concat')
    assert [m.__typename__ for m in net.modules] == ['nn.ConcatTable', 'nn.ConcatTable',
                                                     'nn.ParallelTable', 'nn.CMulTable']
    nt = net.get(2).get(2)
    assert (nt.offset, nt.length) == (2, 2) and net.get(2).get(1).index == 1


def test_alexnet(floatdefault):
    net, input = build('alexnet')
    assert shape(input) == (1, 3, 224, 224) and input.type() == 'torch.FloatTensor'
    assert (net.imageSize, net.imageCrop) == (256, 224)
    assert param_shapes(net) == t_shapes(t_alexnet())
    assert n_params(net) == t_count(t_alexnet()) == 60522856
    b1, b2 = net.get(1).modules
    assert net.get(1).__typename__ == 'nn.Concat' and net.get(1).dimension == 2
    for c1, c2 in zip(b1.findModules('nn.SpatialConvolution'), b2.findModules('nn.SpatialConvolution')):
        assert c1.weight.storage() is not c2.weight.storage()
        assert not np.array_equal(c1.weight.numpy(), c2.weight.numpy())  # branch 2 was reset
        stdv = 1 / math.sqrt(c2.kW * c2.kH * c2.nInputPlane)
        assert np.abs(c2.weight.numpy()).max() <= stdv * (1 + 1e-6)
    thr = net.get(2).findModules('nn.Threshold')
    assert len(thr) == 2 and all((t.threshold, t.val) == (0, 1e-6) for t in thr)
    assert not net.findModules('nn.Dropout')
    out = forward(net, input)  # View(9216) without numInputDims: batch 1 runs as a vector
    assert shape(out) == (1000,)
    assert out.type() == 'torch.FloatTensor'
    assert abs(np.exp(out.numpy().astype(np.float64)).sum() - 1) < 1e-4


@pytest.mark.parametrize('mtype', ['A', 'B', 'D', 'E'])
def test_vgg_params(mtype, metadefault):
    net, input = build('vgg', mtype)
    assert shape(input) == (1, 3, 224, 224)
    tm = t_vgg(VGG_CFG[mtype])
    assert param_shapes(net) == t_shapes(tm)
    assert n_params(net) == t_count(tm) == VGG_KNOWN[mtype]
    assert len(net.findModules('nn.SpatialMaxPooling')) == 5
    convs = {'A': 8, 'B': 10, 'D': 13, 'E': 16}[mtype]
    assert len(net.findModules('nn.SpatialConvolution')) == convs


def test_vgg_default_and_errors(metadefault):
    net, _ = build('vgg')
    assert n_params(net) == VGG_KNOWN['A']
    net, _ = build('vgg', None, batch=2)  # optnet's harness calls models.vgg(nil)
    assert n_params(net) == VGG_KNOWN['A']
    with pytest.raises(ValueError, match='Unknown model type'):
        models.vgg('C')


def test_vgg_forward(floatdefault):
    net, input = build('vgg', 'A')
    assert shape(input) == (1, 3, 224, 224) and (net.imageSize, net.imageCrop) == (256, 224)
    out = forward(net, input)  # ~2.5 s on 2 cores (batch 1, float32)
    assert shape(out) == (1000,) and np.isfinite(out.numpy()).all()


def test_googlenet(floatdefault):
    net, input = build('googlenet')
    assert shape(input) == (1, 3, 224, 224)
    assert param_shapes(net) == t_shapes(t_googlenet())
    assert n_params(net) == t_count(t_googlenet())
    features, splitter = net.modules
    assert splitter.__typename__ == 'nn.Concat' and splitter.dimension == 2
    main, aux = splitter.modules
    assert [m.__typename__ for m in aux.modules] == [
        'nn.SpatialAveragePooling', 'nn.SpatialConvolution', 'nn.View', 'nn.Linear', 'nn.ReLU',
        'nn.Linear', 'nn.LogSoftMax']
    assert len(net.findModules('nn.SpatialZeroPadding')) == 10
    out = forward(net, input)
    assert shape(out) == (1, 2000)  # main and auxiliary log-probabilities side by side
    o = out.numpy().astype(np.float64)
    assert abs(np.exp(o[0, :1000]).sum() - 1) < 1e-4 and abs(np.exp(o[0, 1000:]).sum() - 1) < 1e-4


RESNET_CASES = [('resnet', 'cifar10', d) for d in (20, 32, 44, 56, 110, 1202)] + \
               [('resnet', 'imagenet', d) for d in (18, 34, 50, 101, 152)] + \
               [('preresnet', 'cifar10', d) for d in (20, 32, 44, 56, 110, 1202)] + \
               [('preresnet', 'imagenet', d) for d in (18, 34, 50, 101, 152)]


@pytest.mark.parametrize('name,dataset,depth', RESNET_CASES)
def test_resnet_params(name, dataset, depth, metadefault):
    net, input = build(name, {'dataset': dataset, 'depth': depth})
    assert shape(input) == ((1, 3, 32, 32) if dataset == 'cifar10' else (1, 3, 224, 224))
    tm = t_resnet(dataset, depth, pre=name == 'preresnet')
    assert param_shapes(net) == t_shapes(tm)
    assert n_params(net) == t_count(tm)
    if name == 'resnet' and dataset == 'imagenet':
        # torchvision's figure has BN (2 per channel) and no conv bias; optnet's has conv bias, no BN
        assert n_params(net) == TV_RESNET_KNOWN[depth] - conv_out_channels(tm)
    assert not net.findModules('nn.SpatialBatchNormalization')
    mc = net.findModules('nn.MulConstant')
    assert mc and all(m.constant_scalar == 1 and m.inplace is None for m in mc)


@pytest.mark.parametrize('depth', [20, 56, 110])
def test_resnet_cifar_known_counts(depth, metadefault):
    # shortcut A + real batch norm is the paper's CIFAR ResNet (+ conv biases, which Lua's
    # nn.SpatialConvolution always has)
    net, _ = build('resnet', {'dataset': 'cifar10', 'depth': depth, 'shortcutType': 'A', 'batchNorm': True})
    tm = t_resnet('cifar10', depth, bn=True, shortcut='A')
    assert param_shapes(net) == t_shapes(tm)
    assert n_params(net) == CIFAR_A_BN_KNOWN[depth] + conv_out_channels(tm)
    # optnet's default: shortcut B, MulConstant(1) in place of batch norm
    net, _ = build('resnet', dataset='cifar10', depth=depth)
    assert n_params(net) == t_count(t_resnet('cifar10', depth))


def test_resnet_structure(floatdefault):
    net, input = build('resnet', {'dataset': 'cifar10', 'depth': 20}, batch=2)
    assert shape(input) == (2, 3, 32, 32) and input.type() == 'torch.FloatTensor'
    assert len(net.findModules('nn.MulConstant')) == 1 + 9 * 2 + 2
    assert len(net.findModules('nn.CAddTable')) == 9
    assert all(m.inplace for m in net.findModules('nn.CAddTable'))
    block = net.get(5).get(1)  # first block of stage 2: conv shortcut (type B)
    assert [m.__typename__ for m in block.modules] == ['nn.ConcatTable', 'nn.CAddTable', 'nn.ReLU']
    sc = block.get(1).get(2)
    assert [m.__typename__ for m in sc.modules] == ['nn.SpatialConvolution', 'nn.MulConstant']
    assert (sc.get(1).dW, sc.get(1).kW) == (2, 1)
    # fb.resnet.torch's init
    for c in net.findModules('nn.SpatialConvolution'):
        assert not c.bias.numpy().any()
        if c.nOutputPlane == 64 and c.kW == 3:
            std = math.sqrt(2 / (9 * 64))
            assert abs(c.weight.numpy().std() / std - 1) < 0.05
    lin = net.findModules('nn.Linear')[0]
    assert not lin.bias.numpy().any() and lin.weight.numpy().any()

    net, _ = build('resnet', {'dataset': 'cifar10', 'depth': 20, 'shortcutType': 'A'})
    sc = net.get(5).get(1).get(1).get(2)
    assert [m.__typename__ for m in sc.modules] == ['nn.SpatialAveragePooling', 'nn.Concat']
    assert [m.__typename__ for m in sc.get(2).modules] == ['nn.Identity', 'nn.MulConstant']
    assert sc.get(2).get(2).constant_scalar == 0

    net, _ = build('preresnet', {'dataset': 'cifar10', 'depth': 20})
    assert len(net.findModules('nn.MulConstant')) == 9 * 2 + 1
    assert len(net.findModules('nn.Copy')) == 1
    first = net.get(2).get(1)  # 'both_preact': BN, ReLU before the ConcatTable
    assert [m.__typename__ for m in first.modules] == ['nn.MulConstant', 'nn.ReLU', 'nn.ConcatTable',
                                                      'nn.CAddTable']
    second = net.get(2).get(2)  # later blocks: BN, ReLU at the start of the residual branch
    assert [m.__typename__ for m in second.modules] == ['nn.ConcatTable', 'nn.CAddTable']
    assert second.get(1).get(1).get(1).__typename__ == 'nn.MulConstant'


def test_resnet_batchnorm_option(floatdefault):
    net, _ = build('resnet', {'dataset': 'cifar10', 'depth': 20, 'batchNorm': True})
    bns = net.findModules('nn.SpatialBatchNormalization')
    assert len(bns) == 21 and not net.findModules('nn.MulConstant')
    for b in bns:
        assert (b.weight.numpy() == 1).all() and not b.bias.numpy().any()
    net, _ = build('preresnet', {'dataset': 'imagenet', 'depth': 18, 'batchNorm': True})
    # stem, 1 in the first ('no_preact') block, 2 in each of the other 7 blocks, final
    assert len(net.findModules('nn.SpatialBatchNormalization')) == 1 + 1 + 7 * 2 + 1


def test_resnet_errors():
    with pytest.raises(ValueError, match='depth'):
        models.resnet({'dataset': 'cifar10', 'depth': 21})
    with pytest.raises(ValueError, match='Invalid depth'):
        models.resnet({'dataset': 'imagenet', 'depth': 20})
    with pytest.raises(ValueError, match='Invalid depth'):
        models.resnet({'dataset': 'imagenet', 'depth': 200})  # only preresnet has 200
    with pytest.raises(ValueError, match='invalid dataset'):
        models.preresnet({'depth': 20})
    with pytest.raises(ValueError, match='batch'):
        models.basic_conv(batch=0)


@pytest.mark.parametrize('name,dataset,depth,batch', [
    ('resnet', 'cifar10', 20, 2), ('resnet', 'cifar10', 56, 2), ('resnet', 'cifar10', 110, 1),
    ('preresnet', 'cifar10', 20, 2), ('preresnet', 'cifar10', 56, 1),
    ('resnet', 'imagenet', 18, 1), ('resnet', 'imagenet', 50, 1), ('preresnet', 'imagenet', 18, 1),
])
def test_resnet_forward(name, dataset, depth, batch, floatdefault):
    net, input = build(name, {'dataset': dataset, 'depth': depth}, batch=batch)
    out = forward(net, input)
    assert shape(out) == (batch, 10 if dataset == 'cifar10' else 1000)
    assert out.type() == 'torch.FloatTensor' and np.isfinite(out.numpy()).all()


def test_resnet_batchnorm_forward(floatdefault):
    net, input = build('resnet', {'dataset': 'cifar10', 'depth': 20, 'batchNorm': True}, batch=2)
    out = forward(net, input)
    assert shape(out) == (2, 10)


# ------------------------------------------- wiring checks: forward equals torch's (float64)
F = torch.nn.functional


def torch_params(net):
    return iter([torch.from_numpy(p.numpy().copy()) for p in net.parameters()[0]])


def to_torch(t):
    return torch.from_numpy(t.numpy().copy())


def t_resnet_cifar_forward(params, x, depth, pre, shortcut='B'):
    """fb.resnet.torch's CIFAR (pre)ResNet with identity batch norm, from the paper's description."""
    def conv(h, stride, pad):
        w, b = next(params), next(params)
        return F.conv2d(h, w, b, stride, pad)

    def sc(h, cout, stride):
        if h.shape[1] == cout:
            return h
        if shortcut == 'B':
            return conv(h, stride, 0)
        h = h[:, :, ::stride, ::stride]
        return torch.cat([h, h * 0], 1)

    n = (depth - 2) // 6
    x = conv(x, 1, 1)
    x = x if pre else F.relu(x)
    for width, stride in ((16, 1), (32, 2), (64, 2)):
        for i in range(n):
            s = stride if i == 0 else 1
            if pre:
                a = F.relu(x)
                h = conv(F.relu(conv(a, s, 1)), 1, 1)
                x = h + sc(a if i == 0 else x, width, s)  # first block of a stage: 'both_preact'
            else:
                h = conv(F.relu(conv(x, s, 1)), 1, 1)
                x = F.relu(h + sc(x, width, s))
    if pre:
        x = F.relu(x)
    x = F.avg_pool2d(x, 8, 1).reshape(x.shape[0], 64)
    w, b = next(params), next(params)
    return F.linear(x, w, b)


@pytest.mark.parametrize('name,shortcut', [('resnet', 'B'), ('resnet', 'A'), ('preresnet', 'B')])
def test_resnet_cifar_matches_torch(name, shortcut):
    pynn.manualSeed(7)
    net, input = build(name, {'dataset': 'cifar10', 'depth': 20, 'shortcutType': shortcut}, batch=2)
    assert input.type() == 'torch.DoubleTensor'  # the default default type
    out = forward(net, input)
    ref = t_resnet_cifar_forward(torch_params(net), to_torch(input), 20, name == 'preresnet', shortcut)
    np.testing.assert_allclose(out.numpy(), ref.numpy(), rtol=1e-10, atol=1e-10)


def test_basic_tables_match_torch():
    net, input = build('basic_concat', batch=3)
    out = forward(net, input)
    p, x = torch_params(net), to_torch(input)
    lin = lambda h: F.linear(h, next(p), next(p))
    b1 = lin(F.relu(lin(x)))
    b2 = F.relu(lin(x))
    b3 = lin(F.relu(lin(x)))
    ref = lin(b1) * (b2 + b3)
    np.testing.assert_allclose(out.numpy(), ref.numpy(), rtol=1e-12, atol=1e-12)

    net, input = build('basic_parallel', batch=3)
    out = forward(net, input)
    p = torch_params(net)
    x1, x2 = to_torch(input[0]), to_torch(input[1])
    ref = F.relu(lin(torch.cat([lin(x1), lin(torch.sigmoid(lin(x2)))], 1)))
    np.testing.assert_allclose(out.numpy(), ref.numpy(), rtol=1e-12, atol=1e-12)


def _clone(x):
    return [_clone(v) for v in x] if isinstance(x, list) else x.clone()


@pytest.mark.parametrize('name,opt', [(k, None) for k in sorted(BASIC)] + [
    ('resnet', {'dataset': 'cifar10', 'depth': 20, 'shortcutType': 'A'}),
    ('resnet', {'dataset': 'cifar10', 'depth': 20, 'batchNorm': True}),
    ('preresnet', {'dataset': 'cifar10', 'depth': 20, 'shortcutType': 'C'})])
def test_backward_smoke(name, opt, floatdefault):
    """optnet's training-mode tests run backward on every model: it must go through."""
    net, input = build(name, opt, batch=2)
    net.training()
    out = forward(net, input)
    net.zeroGradParameters()
    g = net.backward(input, _clone(out))
    assert shape(g) == shape(input)
