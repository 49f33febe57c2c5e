"""Helpers shared by the criterion files (validation, Lua's output_tensor, class indices).

Conventions of every pynn criterion (Lua nn's protocol):
- `forward(input, target)` validates first (a ValueError naming the criterion, expected versus
  given, before any field changes) and returns a Python float; `backward` returns gradInput.
- THNN-backed criteria keep Lua's lazy `output_tensor` (input.new(1)) and read the loss back
  from it, so a float criterion returns the float32-rounded loss as Lua does.
- Meta tensors: gradInput and buffers are sized as with data, nothing is computed, and forward
  returns 0.0 (a meta loss has no value; 0.0 keeps `total = total + loss` in a dry run of a
  training loop working where nan would poison it).
"""
import numbers

import numpy as np

from .. import backend
from ..tensor import Tensor
from .module import describe


def fail(crit, expected, got):
    raise ValueError('%s: expected %s, got %s' % (crit.__typename__, expected, describe(got)))


def error(crit, msg):
    raise ValueError('%s: %s' % (crit.__typename__, msg))


def sizestr(t):
    return 'x'.join(map(str, t.size())) or 'empty'


def is_number(x):
    return isinstance(x, numbers.Number) and not isinstance(x, bool)


def is_float_tensor(t):
    return isinstance(t, Tensor) and t._kind in ('Double', 'Float', 'Half')


def grad_type(crit):
    """The type of the criterion's gradInput (the first tensor where it is a table)."""
    g = crit.__dict__.get('gradInput')
    if isinstance(g, (list, tuple)):
        g = g[0] if g else None
    return g.type() if isinstance(g, Tensor) else None


def check_input(crit, input, dims=None, what='input'):
    """input: a floating tensor of the criterion's type (convert criteria with :type(), as Lua's
    THNN calls require), with a number of dimensions in `dims` when given. Lua's THNN criteria
    fail on a type mismatch only in backward (gradInput has the other type); pynn fails at once
    in forward, so that a forward never succeeds on what its backward cannot take."""
    if not is_float_tensor(input):
        fail(crit, 'a floating-point %s tensor' % what, input)
    gt = grad_type(crit)
    if gt is not None and input.type() != gt:
        fail(crit, 'a %s %s (convert the criterion with :type())' % (gt, what), input)
    if dims is not None and input.dim() not in dims:
        fail(crit, 'a %s %s' % ('D or '.join(map(str, dims)) + 'D', what), input)


def check_target(crit, input, target, what='target'):
    """THNN's element-wise targets: a tensor of the input's type and element count."""
    if not isinstance(target, Tensor) or target.type() != input.type():
        fail(crit, 'a %s %s of %d elements' % (input.type(), what, input.nElement()), target)
    if target.nElement() != input.nElement():
        fail(crit, 'a %s of %d elements (input %s)' % (what, input.nElement(), sizestr(input)), target)


def check_same_size(crit, input, target, what='target'):
    if not isinstance(target, Tensor) or target.type() != input.type():
        fail(crit, 'a %s %s of size %s' % (input.type(), what, sizestr(input)), target)
    if target.size() != input.size():
        fail(crit, 'a %s of size %s (the input size)' % (what, sizestr(input)), target)


def xpof(a):
    return backend.array_module(a)


def arr_as(t, shape):
    """The tensor's elements in Torch's logical order, as an array of `shape` (a view if it can)."""
    a = t.numpy()
    return a if a.shape == tuple(shape) else a.reshape(shape)


def host(a):
    """A NumPy copy (or the array itself) of a NumPy/CuPy array, for small checks."""
    return a if xpof(a) is np else a.get()


def meta_any(*xs):
    for x in xs:
        if isinstance(x, Tensor) and x.is_meta():
            return True
        if isinstance(x, (list, tuple)) and meta_any(*x):
            return True
    return False


def set_output(crit, input, value):
    """Lua: output_tensor = output_tensor or input.new(1); output_tensor[1] = value;
    output = output_tensor[1]. Meta input: 0.0 (see the module docstring)."""
    if crit.__dict__.get('output_tensor') is None:
        crit.output_tensor = input.new(1)
    ot = crit.output_tensor
    if ot.is_meta() or input.is_meta() or value is None:
        crit.output = 0.0
        return crit.output
    ot[1] = float(value)
    crit.output = float(ot[1])
    return crit.output


def average(sum_, n, on):
    """THNN's `if (sizeAverage) sum /= nElement` (0/0 gives nan as in C)."""
    if not on:
        return sum_
    return sum_ / n if n else float('nan')


def class_values(crit, target, n_classes, what='target', low=1, ignore=None):
    """The class indices of a tensor target as an int64 array (same array module), checked:
    integral, and within low..n_classes (or equal to `ignore`). None for a meta target."""
    if target.is_meta():
        return None
    a = target.numpy()
    xp = xpof(a)
    if target._kind not in ('Long', 'Int', 'Short', 'Char', 'Byte'):
        if a.size and not bool(xp.all(a == xp.trunc(a))):
            bad = host(a[a != xp.trunc(a)].reshape(-1))[0]
            error(crit, 'expected integral class indices in the %s, got %r' % (what, float(bad)))
    v = a.astype(np.int64)
    if v.size:
        out = (v < low) | (v > n_classes)
        if ignore is not None:
            out &= v != ignore
        if bool(out.any()):
            bad = int(host(v[out].reshape(-1))[0])
            error(crit, 'expected class indices in %d..%d in the %s, got %d (out of range)'
                  % (low, n_classes, what, bad))
    return v


def number_class(crit, target, n_classes, ignore=None):
    """A class index given as a Lua number: integral, within 1..n_classes (or `ignore`)."""
    if float(target) != int(target):
        error(crit, 'expected an integral class index, got %r' % (target,))
    v = int(target)
    if (v < 1 or v > n_classes) and v != ignore:
        error(crit, 'expected a class index in 1..%d, got %d (out of range)' % (n_classes, v))
    return v


def long_on(t, device):
    """t converted to a Long tensor on `device` (the same object when it already is one)."""
    return t.type(backend.tensor_typename('Long', device))


def weight_array(crit, weights, target, n, what='weights'):
    """Lua's `weights:view(1, target:size(2)):expandAs(target)` for targets of more than one
    dimension (the weights as they are for a 1-D target), as an array of n elements in order."""
    w = weights.numpy()
    xp = xpof(w)
    if target.dim() != 1:
        if target.dim() < 2 or w.size != target.size(2):
            fail(crit, '%s of %s elements for a target %s'
                 % (what, target.size(2) if target.dim() >= 2 else '?', sizestr(target)), weights)
        try:
            w = xp.broadcast_to(w.reshape(1, -1), target.size())
        except ValueError:
            fail(crit, '%s expandable to the target %s' % (what, sizestr(target)), weights)
    if w.size != n:
        fail(crit, '%s of %d elements (the input\'s)' % (what, n), weights)
    return w.reshape(-1)


def check_weights(crit, weights, target, n):
    """Validation-only form of weight_array (works on meta tensors)."""
    if weights is None:
        return
    if not isinstance(weights, Tensor):
        fail(crit, 'weights as a tensor', weights)
    if target.dim() != 1:
        if target.dim() < 2 or weights.nElement() != target.size(2):
            fail(crit, 'weights of %s elements for a target %s'
                 % (target.size(2) if target.dim() >= 2 else '?', sizestr(target)), weights)
        shape = target.size()
        if len(shape) > 2 and shape[-1] != weights.nElement():
            fail(crit, 'weights expandable to the target %s' % sizestr(target), weights)
        m = 1
        for s in shape:
            m *= s
        if m != n:
            fail(crit, 'weights of %d elements (the input\'s)' % n, weights)
    elif weights.nElement() != n:
        fail(crit, 'weights of %d elements (the input\'s)' % n, weights)
