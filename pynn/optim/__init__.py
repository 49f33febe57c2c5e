"""pynn.optim: Lua's optim package (github.com/torch/optim), one file per algorithm.

Every algorithm has Lua's signature, `x, fs = optim.sgd(feval, x, config, state)`, where
`feval(x)` returns `(f, df_dx)`; config and state are dicts with Lua's field names, updated in
place, so a resumed run continues identically. Whole-tensor arithmetic runs on the tensors'
array views (NumPy or CuPy), writing into x and the state tensors in place.
"""
from .sgd import sgd
from .adam import adam
from .adamax import adamax
from .adagrad import adagrad
from .adadelta import adadelta
from .rmsprop import rmsprop
from .nag import nag
from .asgd import asgd
from .rprop import rprop
from .lbfgs import lbfgs
from .cg import cg
from .cmaes import cmaes
from .de import de
from .fista import FistaLS, fista
from .lswolfe import lswolfe
from .polyinterp import polyinterp
from .checkgrad import checkgrad
from .Logger import Logger
from .ConfusionMatrix import ConfusionMatrix

__all__ = ['sgd', 'adam', 'adamax', 'adagrad', 'adadelta', 'rmsprop', 'nag', 'asgd', 'rprop',
           'lbfgs', 'cg', 'cmaes', 'de', 'FistaLS', 'fista', 'lswolfe', 'polyinterp', 'checkgrad',
           'Logger', 'ConfusionMatrix']
