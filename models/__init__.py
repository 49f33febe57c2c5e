"""optnet's model builders (optnet/models.lua) in Python.

Each builder returns (net, input) like the original: the same layers, order, shapes,
initialisation and input (torch.rand in pynn's default tensor type, so
`pynn.setdefaulttensortype('torch.FloatTensor')` gives float models). Every builder takes
`batch=` to change the input's batch size (default: the original's).

`builders` maps the original table's keys to the functions:
    basic_parallel, basic_conv, basic_deep_conv, basic_unpooling, siamese, basic_concat,
    basic_multiOutput, alexnet, googlenet, vgg, resnet, preresnet
and, like optnet's tests, builders[name](opts) works for all of them (the basic nets and
alexnet/googlenet ignore opts; vgg takes the model type, resnet/preresnet an options dict,
e.g. {'dataset': 'cifar10', 'depth': 20}).
"""
from .basic import (basic_parallel, basic_conv, basic_deep_conv, basic_unpooling, siamese,
                    basic_concat, basic_multiOutput)
from .alexnet import alexnet
from .googlenet import googlenet
from .vgg import vgg
from .resnet import resnet, preresnet

builders = {
    'basic_parallel': basic_parallel,
    'basic_conv': basic_conv,
    'basic_deep_conv': basic_deep_conv,
    'basic_unpooling': basic_unpooling,
    'siamese': siamese,
    'basic_concat': basic_concat,
    'basic_multiOutput': basic_multiOutput,
    'alexnet': alexnet,
    'googlenet': googlenet,
    'vgg': vgg,
    'resnet': resnet,
    'preresnet': preresnet,
}

__all__ = ['builders'] + list(builders)
