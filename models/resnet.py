"""optnet's ResNet and pre-activation ResNet builders (from facebook/fb.resnet.torch), for
CIFAR-10 (depth 6n+2: 20, 32, 44, 56, 110, 1202) and ImageNet (18, 34, 50, 101, 152; preresnet
also 200).

Faithful to optnet's models.lua: every batch normalization is replaced by nn.MulConstant(1)
whose `inplace` field is cleared (Lua's `m.inplace = nil`, here None), so optnet's in-place pass
leaves it alone and the memory figures match the Lua oracle byte for byte. Pass
opt={'batchNorm': True} to get real nn.SpatialBatchNormalization layers instead (initialised
weight 1, bias 0 as fb.resnet.torch does).

Options (a dict, Lua's `opt` table, or keyword arguments): depth, dataset ('cifar10' or
'imagenet'), shortcutType ('A', 'B' default, 'C'), cudnn ('deterministic' calls setMode(1,1,1)
on modules that have it), batchNorm (False default).
"""
import math

from pynn import nn

from ._common import check_batch, options, rand_input

IMAGENET = {
    18: ((2, 2, 2, 2), 512, 'basic'),
    34: ((3, 4, 6, 3), 512, 'basic'),
    50: ((3, 4, 6, 3), 2048, 'bottleneck'),
    101: ((3, 4, 23, 3), 2048, 'bottleneck'),
    152: ((3, 8, 36, 3), 2048, 'bottleneck'),
}
PRE_IMAGENET = dict(IMAGENET)
PRE_IMAGENET[200] = ((3, 24, 36, 3), 2048, 'bottleneck')


def _sbatchnorm(batchNorm):
    def make(n):
        if batchNorm:
            return nn.SpatialBatchNormalization(n)
        m = nn.MulConstant(1)
        m.inplace = None  # Lua: m.inplace = nil
        return m
    return make


def _shortcut(shortcutType, nInputPlane, nOutputPlane, stride, SBatchNorm):
    """Identity, a 1x1 strided conv (types 'B' when the widths differ, and 'C'), or (type 'A')
    a strided, zero-padded identity: SpatialAveragePooling(1,1,s,s) then Concat(2)(Identity,
    MulConstant(0)). SBatchNorm follows the conv (resnet) or is None (preresnet)."""
    useConv = shortcutType == 'C' or (shortcutType == 'B' and nInputPlane != nOutputPlane)
    if useConv:
        s = nn.Sequential().add(nn.SpatialConvolution(nInputPlane, nOutputPlane, 1, 1, stride, stride))
        if SBatchNorm is not None:
            s.add(SBatchNorm(nOutputPlane))
        return s
    if nInputPlane != nOutputPlane:
        return (nn.Sequential()
                .add(nn.SpatialAveragePooling(1, 1, stride, stride))
                .add(nn.Concat(2).add(nn.Identity()).add(nn.MulConstant(0))))
    return nn.Identity()


def _check_opts(opt, who, imagenet_cfg):
    depth = opt.get('depth')
    dataset = opt.get('dataset')
    shortcutType = opt.get('shortcutType') or 'B'
    if shortcutType not in ('A', 'B', 'C'):
        raise ValueError('%s: invalid shortcutType %r (expected A, B or C)' % (who, shortcutType))
    if dataset == 'imagenet':
        if depth not in imagenet_cfg:
            raise ValueError('%s: Invalid depth: %s (ImageNet depths: %s)'
                             % (who, depth, ', '.join(map(str, sorted(imagenet_cfg)))))
    elif dataset == 'cifar10':
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 2 or (depth - 2) % 6 != 0:
            raise ValueError('%s: depth should be one of 20, 32, 44, 56, 110, 1202, got %r' % (who, depth))
    else:
        raise ValueError("%s: invalid dataset: %r (expected 'cifar10' or 'imagenet')" % (who, dataset))
    return depth, dataset, shortcutType


def _init(model, opt, convs=('nn.SpatialConvolution',)):
    """fb.resnet.torch's init: conv weight ~ N(0, sqrt(2/(kW*kH*nOutputPlane))), conv bias 0;
    batch norm weight 1, bias 0; Linear bias 0 (Linear weight keeps its reset() init)."""
    for name in convs:
        for v in model.findModules(name):
            n = v.kW * v.kH * v.nOutputPlane
            v.weight.normal(0, math.sqrt(2 / n))
            v.bias.zero()
    for v in model.findModules('nn.SpatialBatchNormalization'):
        v.weight.fill(1)
        v.bias.zero()
    for v in model.findModules('nn.Linear'):
        v.bias.zero()
    if opt.get('cudnn') == 'deterministic':
        def det(m):
            if callable(getattr(type(m), 'setMode', None)):
                m.setMode(1, 1, 1)
        model.apply(det)


def resnet(opt=None, batch=1, **kw):
    """Post-activation ResNet: conv-BN-ReLU-conv-BN (basic) or 1x1-3x3-1x1 with BN and ReLU
    (bottleneck, x4 widths) plus the shortcut (its 1x1 conv followed by BN), CAddTable(true),
    ReLU(true). ImageNet: 7x7/2 conv 64, BN, ReLU, MaxPool(3,3,2,2,1,1), four stages, 7x7 avg,
    View, Linear(nFeatures,1000); input rand(batch,3,224,224). CIFAR-10: 3x3 conv 16, BN, ReLU,
    three stages of (depth-2)/6 basic blocks (16, 32, 64), 8x8 avg, View(64), Linear(64,10);
    input rand(batch,3,32,32)."""
    batch = check_batch(batch, 'resnet')
    opt = options(opt, kw, 'resnet')
    depth, dataset, shortcutType = _check_opts(opt, 'resnet', IMAGENET)
    SBatchNorm = _sbatchnorm(opt.get('batchNorm', False))
    state = {}

    def shortcut(nIn, nOut, stride):
        return _shortcut(shortcutType, nIn, nOut, stride, SBatchNorm)

    def basicblock(n, stride):
        nInputPlane = state['iChannels']
        state['iChannels'] = n
        s = nn.Sequential()
        s.add(nn.SpatialConvolution(nInputPlane, n, 3, 3, stride, stride, 1, 1))
        s.add(SBatchNorm(n))
        s.add(nn.ReLU(True))
        s.add(nn.SpatialConvolution(n, n, 3, 3, 1, 1, 1, 1))
        s.add(SBatchNorm(n))
        return (nn.Sequential()
                .add(nn.ConcatTable().add(s).add(shortcut(nInputPlane, n, stride)))
                .add(nn.CAddTable(True))
                .add(nn.ReLU(True)))

    def bottleneck(n, stride):
        nInputPlane = state['iChannels']
        state['iChannels'] = n * 4
        s = nn.Sequential()
        s.add(nn.SpatialConvolution(nInputPlane, n, 1, 1, 1, 1, 0, 0))
        s.add(SBatchNorm(n))
        s.add(nn.ReLU(True))
        s.add(nn.SpatialConvolution(n, n, 3, 3, stride, stride, 1, 1))
        s.add(SBatchNorm(n))
        s.add(nn.ReLU(True))
        s.add(nn.SpatialConvolution(n, n * 4, 1, 1, 1, 1, 0, 0))
        s.add(SBatchNorm(n * 4))
        return (nn.Sequential()
                .add(nn.ConcatTable().add(s).add(shortcut(nInputPlane, n * 4, stride)))
                .add(nn.CAddTable(True))
                .add(nn.ReLU(True)))

    def layer(block, features, count, stride=1):
        s = nn.Sequential()
        for i in range(1, count + 1):
            s.add(block(features, stride if i == 1 else 1))
        return s

    model = nn.Sequential()
    if dataset == 'imagenet':
        defs, nFeatures, kind = IMAGENET[depth]
        block = basicblock if kind == 'basic' else bottleneck
        state['iChannels'] = 64
        model.add(nn.SpatialConvolution(3, 64, 7, 7, 2, 2, 3, 3))
        model.add(SBatchNorm(64))
        model.add(nn.ReLU(True))
        model.add(nn.SpatialMaxPooling(3, 3, 2, 2, 1, 1))
        model.add(layer(block, 64, defs[0]))
        model.add(layer(block, 128, defs[1], 2))
        model.add(layer(block, 256, defs[2], 2))
        model.add(layer(block, 512, defs[3], 2))
        model.add(nn.SpatialAveragePooling(7, 7, 1, 1))
        model.add(nn.View(nFeatures).setNumInputDims(3))
        model.add(nn.Linear(nFeatures, 1000))
        input = rand_input(batch, 3, 224, 224)
    else:
        n = (depth - 2) // 6
        state['iChannels'] = 16
        model.add(nn.SpatialConvolution(3, 16, 3, 3, 1, 1, 1, 1))
        model.add(SBatchNorm(16))
        model.add(nn.ReLU(True))
        model.add(layer(basicblock, 16, n))
        model.add(layer(basicblock, 32, n, 2))
        model.add(layer(basicblock, 64, n, 2))
        model.add(nn.SpatialAveragePooling(8, 8, 1, 1))
        model.add(nn.View(64).setNumInputDims(3))
        model.add(nn.Linear(64, 10))
        input = rand_input(batch, 3, 32, 32)

    _init(model, opt)
    return model, input


def preresnet(opt=None, batch=1, **kw):
    """Pre-activation ResNet. Blocks: [BN, ReLU], conv, BN, ReLU, conv (basic) or the
    1x1-3x3-1x1 bottleneck, plus a shortcut (1x1 conv without BN), CAddTable(true). The first
    block of a stage is 'both_preact' (BN+ReLU before the ConcatTable) except the very first
    ('no_preact'); later blocks put BN+ReLU at the start of the residual branch. The net ends
    with Copy(nil,nil,true), BN, ReLU, avg-pool, View, Linear. CIFAR-10 has no BN/ReLU after
    the first conv."""
    batch = check_batch(batch, 'preresnet')
    opt = options(opt, kw, 'preresnet')
    depth, dataset, shortcutType = _check_opts(opt, 'preresnet', PRE_IMAGENET)
    SBatchNorm = _sbatchnorm(opt.get('batchNorm', False))
    state = {}

    def shortcut(nIn, nOut, stride):
        return _shortcut(shortcutType, nIn, nOut, stride, None)

    def preact(block, s, nInputPlane, type_):
        if type_ == 'both_preact':
            block.add(SBatchNorm(nInputPlane))
            block.add(nn.ReLU(True))
        elif type_ != 'no_preact':
            s.add(SBatchNorm(nInputPlane))
            s.add(nn.ReLU(True))

    def basicblock(n, stride, type_=None):
        nInputPlane = state['iChannels']
        state['iChannels'] = n
        block = nn.Sequential()
        s = nn.Sequential()
        preact(block, s, nInputPlane, type_)
        s.add(nn.SpatialConvolution(nInputPlane, n, 3, 3, stride, stride, 1, 1))
        s.add(SBatchNorm(n))
        s.add(nn.ReLU(True))
        s.add(nn.SpatialConvolution(n, n, 3, 3, 1, 1, 1, 1))
        return (block
                .add(nn.ConcatTable().add(s).add(shortcut(nInputPlane, n, stride)))
                .add(nn.CAddTable(True)))

    def bottleneck(n, stride, type_=None):
        nInputPlane = state['iChannels']
        state['iChannels'] = n * 4
        block = nn.Sequential()
        s = nn.Sequential()
        preact(block, s, nInputPlane, type_)
        s.add(nn.SpatialConvolution(nInputPlane, n, 1, 1, 1, 1, 0, 0))
        s.add(SBatchNorm(n))
        s.add(nn.ReLU(True))
        s.add(nn.SpatialConvolution(n, n, 3, 3, stride, stride, 1, 1))
        s.add(SBatchNorm(n))
        s.add(nn.ReLU(True))
        s.add(nn.SpatialConvolution(n, n * 4, 1, 1, 1, 1, 0, 0))
        return (block
                .add(nn.ConcatTable().add(s).add(shortcut(nInputPlane, n * 4, stride)))
                .add(nn.CAddTable(True)))

    def layer(block, features, count, stride, type_=None):
        s = nn.Sequential()
        if count < 1:
            return s
        s.add(block(features, stride, 'no_preact' if type_ == 'first' else 'both_preact'))
        for _ in range(2, count + 1):
            s.add(block(features, 1))
        return s

    model = nn.Sequential()
    if dataset == 'imagenet':
        defs, nFeatures, kind = PRE_IMAGENET[depth]
        block = basicblock if kind == 'basic' else bottleneck
        state['iChannels'] = 64
        model.add(nn.SpatialConvolution(3, 64, 7, 7, 2, 2, 3, 3))
        model.add(SBatchNorm(64))
        model.add(nn.ReLU(True))
        model.add(nn.SpatialMaxPooling(3, 3, 2, 2, 1, 1))
        model.add(layer(block, 64, defs[0], 1, 'first'))
        model.add(layer(block, 128, defs[1], 2))
        model.add(layer(block, 256, defs[2], 2))
        model.add(layer(block, 512, defs[3], 2))
        model.add(nn.Copy(None, None, True))
        model.add(SBatchNorm(state['iChannels']))
        model.add(nn.ReLU(True))
        model.add(nn.SpatialAveragePooling(7, 7, 1, 1))
        model.add(nn.View(nFeatures).setNumInputDims(3))
        model.add(nn.Linear(nFeatures, 1000))
        input = rand_input(batch, 3, 224, 224)
    else:
        n = (depth - 2) // 6
        state['iChannels'] = 16
        model.add(nn.SpatialConvolution(3, 16, 3, 3, 1, 1, 1, 1))
        model.add(layer(basicblock, 16, n, 1))
        model.add(layer(basicblock, 32, n, 2))
        model.add(layer(basicblock, 64, n, 2))
        model.add(nn.Copy(None, None, True))
        model.add(SBatchNorm(state['iChannels']))
        model.add(nn.ReLU(True))
        model.add(nn.SpatialAveragePooling(8, 8, 1, 1))
        model.add(nn.View(64).setNumInputDims(3))
        model.add(nn.Linear(64, 10))
        input = rand_input(batch, 3, 32, 32)

    _init(model, opt)
    return model, input
