"""Small helpers shared by the model builders (input tensors, option handling)."""
import numbers

import pynn


def check_batch(batch, who):
    if isinstance(batch, bool) or not isinstance(batch, numbers.Integral) or batch < 1:
        raise ValueError('%s: batch must be a positive integer, got %r' % (who, batch))
    return int(batch)


def rand_input(batch, *shape):
    """torch.rand(batch, ...) in pynn's default tensor type."""
    return pynn.rand(batch, *shape)


def options(opt, kw, who):
    """Lua's `opt` table as a dict: a dict, an object with attributes (argparse), or None; kw wins."""
    if opt is None:
        d = {}
    elif isinstance(opt, dict):
        d = dict(opt)
    elif hasattr(opt, '__dict__'):
        d = dict(vars(opt))
    else:
        raise TypeError('%s: opt must be a dict (Lua table) of options, got %s' % (who, type(opt).__name__))
    d.update(kw)
    return d
