"""pynn.nn: Lua nn's modules under their Lua names (nn.Sequential, nn.SpatialConvolution, ...)."""
import importlib

from .module import Module, Criterion, tracing, current_tracer, BackwardDisabledError
from .container import Container, Sequential, Concat, DepthConcat, ConcatTable, ParallelTable, Parallel

# Layer families; every Module/Criterion subclass they define is exported here.
_FAMILIES = ('container', 'linear', 'conv', 'pooling', 'activation', 'normalization', 'shape',
             'table', 'criterion', 'misc', 'temporal', 'volumetric')


def _export():
    g = globals()
    for fam in _FAMILIES:
        try:
            mod = importlib.import_module('.' + fam, __name__)
        except ModuleNotFoundError as e:
            if e.name != __name__ + '.' + fam:
                raise
            continue
        for k, v in vars(mod).items():
            if isinstance(v, type) and issubclass(v, (Module, Criterion)) and not k.startswith('_'):
                g.setdefault(k, v)


_export()


def registry():
    """Lua class name -> pynn class, for every exported module and criterion."""
    out = {}
    for v in list(globals().values()):
        if isinstance(v, type) and issubclass(v, (Module, Criterion)):
            out[v.__typename__] = v
    return out
