"""pynn: Lua Torch7's tensors and nn in Python, with optnet's memory optimizer.

The torch-like face: Tensor and Storage, typed constructors, random fills, type names.
"""
from .storage import Storage, LongStorage
from .tensor import (Tensor, setdefaulttensortype, getdefaulttensortype, manualSeed,
                     is_tensor, from_numpy, typed)
from . import backend
from .threads import setnumthreads, getnumthreads
from . import tensor_math as _tensor_math
from . import rng as _random
from .rng import (getRNGState, setRNGState, initialSeed, seed, rand, randn, randperm,
                     multinomial, Generator)

# Torch7's math library: pynn.f(...) for every function of TensorMath.lua (also Tensor methods)
globals().update(_tensor_math.bind())
random = _random.random
uniform, normal, bernoulli = _random.uniform_fn, _random.normal_fn, _random.bernoulli_fn
exponential, cauchy = _random.exponential_fn, _random.cauchy_fn
logNormal, geometric = _random.logNormal_fn, _random.geometric_fn

fromNumpy = from_numpy
isTensor = is_tensor

DoubleTensor = typed('Double')
FloatTensor = typed('Float')
LongTensor = typed('Long')
IntTensor = typed('Int')
ByteTensor = typed('Byte')
CharTensor = typed('Char')
ShortTensor = typed('Short')
CudaTensor = typed('Float', 'cuda')
CudaDoubleTensor = typed('Double', 'cuda')
CudaLongTensor = typed('Long', 'cuda')
MetaFloatTensor = typed('Float', 'meta')
MetaDoubleTensor = typed('Double', 'meta')


def typename(obj):
    """torch.typename: 'nn.SpatialConvolution', 'torch.FloatTensor', 'torch.DoubleStorage'."""
    if hasattr(obj, '__typename__'):
        return obj.__typename__
    if isinstance(obj, (Tensor, Storage)):
        return obj.type()
    return None


def pointer(obj):
    """torch.pointer: an identity for storages and tensors (equal iff the same object)."""
    return id(obj)


def _lazy(name):
    import importlib
    return importlib.import_module('.' + name, __name__)


def __getattr__(name):
    if name in ('nn', 'optnet', 'cudnn', 'optim', 'nngraph', 'cunn'):
        return _lazy(name)
    if name == 'models':
        from ._models import load
        return load()
    if name in ('load', 'save', 'T7FormatError', 'registerClass'):
        return getattr(_lazy('serialization'), name)
    raise AttributeError("module 'pynn' has no attribute %r" % name)
