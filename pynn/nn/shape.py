"""Shape family: View, Reshape, Narrow, Select, Copy, Identity, Sum, Mean, PairwiseDistance;
the rest (Contiguous, ..., Convert in shape_ops.py; the spatial paddings, up-samplings and
PixelShuffle in shape_spatial.py) is imported at the end of this file.

Semantics follow Lua nn (2017): 1-based dims and indices, negative dims/indices counted
from the end, the same fields and the same lazily created buffers.
"""
import numbers

import numpy as np

from .. import backend
from ..storage import Storage
from ..tensor import Tensor, generator
from .module import Module, clear


def _prod(seq):
    n = 1
    for s in seq:
        n *= int(s)
    return n


def _fmt(size):
    return 'x'.join(str(int(s)) for s in size)


def _long_storage(values):
    return Storage(list(int(v) for v in values), np.int64)


def _sizes_from_args(args, who):
    """View(2, 3) / View(LongStorage) / View((2, 3)) -> (list of ints, storage or None)."""
    if len(args) == 1 and isinstance(args[0], Storage):
        return [int(v) for v in args[0].tolist()], args[0]
    if len(args) == 1 and isinstance(args[0], (list, tuple)):
        args = tuple(args[0])
    out = []
    for a in args:
        if isinstance(a, bool) or not isinstance(a, numbers.Integral):
            raise TypeError('%s: sizes must be integers, got %r' % (who, a))
        out.append(int(a))
    return out, None


def _is_tensor(x):
    return isinstance(x, Tensor)


class View(Module):
    """output = input viewed with `size` (sharing its storage); one size may be -1.

    A leading batch dimension is added when the input holds a multiple of the view's
    elements (or has more than numInputDims dims, see setNumInputDims)."""

    def __init__(self, *sizes):
        super().__init__()
        self.resetSize(*sizes)
        self.numInputDims = None

    def resetSize(self, *sizes):
        vals, st = _sizes_from_args(sizes, 'nn.View')
        n, infer = 1, False
        for s in vals:
            if s >= 0:
                n *= s
            else:
                if s != -1:
                    raise ValueError('nn.View: size should be positive or -1, got %d' % s)
                if infer:
                    raise ValueError('nn.View: only one dimension can be at -1')
                infer = True
        self.size = st if st is not None else _long_storage(vals)
        self.numElements = n
        return self

    def setNumInputDims(self, numInputDims):
        self.numInputDims = numInputDims
        return self

    def _size_list(self):
        return [int(v) for v in self.size.tolist()]

    def _batchsize(self, input, size):
        """Lua's batchsize(): the batch size to prepend, or None (raises ValueError)."""
        ind = input.dim()
        isz = input.size()
        nid = getattr(self, 'numInputDims', None)
        maxdim = nid if nid is not None else ind
        if maxdim > ind:
            self._fail('a tensor with at least %d dimensions (numInputDims)' % maxdim, input)
        ine = _prod(isz[ind - maxdim:])
        if self.numElements == 0 or ine % self.numElements != 0:
            raise ValueError('%s: input view (%s) and desired view (%s) do not match'
                             % (self._name(), _fmt(isz), _fmt(size)))
        bsz = ine // self.numElements
        if -1 in size:
            bsz = 1
        bsz *= _prod(isz[:ind - maxdim])
        if bsz == 1 and (nid is None or ind <= nid):
            return None
        return bsz

    def _target(self, input):
        size = self._size_list()
        bsz = self._batchsize(input, size)
        want = ([bsz] if bsz is not None else []) + size
        n = input.nElement()
        if -1 in want:
            covered = _prod(s for s in want if s != -1)
            if covered == 0 or n % covered:
                raise ValueError('%s: input view (%s) and desired view (%s) do not match'
                                 % (self._name(), _fmt(input.size()), _fmt(size)))
            want[want.index(-1)] = n // covered
        if _prod(want) != n:
            raise ValueError('%s: wrong size for view: input size %s, output size %s'
                             % (self._name(), _fmt(input.size()), _fmt(want)))
        return want

    def updateOutput(self, input):
        if not _is_tensor(input) or input.dim() == 0:
            self._fail('a non-empty tensor', input)
        want = self._target(input)
        if not input.isContiguous():
            self._fail('a contiguous tensor (nn.View shares the input storage; use nn.Reshape '
                       'or nn.Contiguous)', input)
        if input.type() != self.output.type():
            self._fail('a %s input' % self.output.type(), input)
        self.output.set(input.view(*want))
        return self.output

    def updateGradInput(self, input, gradOutput):
        if not _is_tensor(gradOutput) or gradOutput.nElement() != input.nElement():
            self._fail('gradOutput with %d elements' % input.nElement(), gradOutput)
        if not gradOutput.isContiguous():
            self._fail('a contiguous gradOutput', gradOutput)
        if gradOutput.type() != self.gradInput.type():
            self._fail('a %s gradOutput' % self.gradInput.type(), gradOutput)
        self.gradInput.set(gradOutput.view(*input.size()))
        return self.gradInput

    def __tostring__(self):
        return '%s(%s)' % (self.__typename__, ', '.join(str(s) for s in self._size_list()))


class Reshape(Module):
    """Reshape(d1, d2, ..., [batchMode]): a view of the input with the given sizes, a batch
    dimension kept in front when the input has a different number of elements (or a first
    size of 1). Non-contiguous inputs / gradOutputs are first copied into `_input` /
    `_gradOutput`."""

    def __init__(self, *args):
        super().__init__()
        args = list(args)
        self.batchMode = None
        if args and isinstance(args[-1], bool):
            self.batchMode = args.pop()
        vals, _ = _sizes_from_args(tuple(args), 'nn.Reshape')
        if any(v < 0 for v in vals):
            raise ValueError('nn.Reshape: sizes must be >= 0, got %s' % (vals,))
        self.size = _long_storage(vals)
        self.batchsize = _long_storage([0] + vals)
        self.nelement = _prod(vals)

    def _size_list(self):
        return [int(v) for v in self.size.tolist()]

    def updateOutput(self, input):
        if not _is_tensor(input) or input.dim() == 0:
            self._fail('a non-empty tensor', input)
        size = self._size_list()
        mode = getattr(self, 'batchMode', None)
        if mode is False or (mode is None and input.nElement() == self.nelement and input.size(1) != 1):
            want = size
        else:
            want = [input.size(1)] + size
        if _prod(want) != input.nElement():
            raise ValueError('%s: wrong size for view: input size %s, output size %s'
                             % (self._name(), _fmt(input.size()), _fmt(want)))
        if input.type() != self.output.type():
            self._fail('a %s input' % self.output.type(), input)
        if not input.isContiguous():
            if self.__dict__.get('_input') is None:
                self._input = input.new()
            self._input.resizeAs(input).copy(input)
            input = self._input
        if len(want) > len(size):
            self.batchsize[1] = want[0]
        self.output.set(input.view(*want))
        return self.output

    def updateGradInput(self, input, gradOutput):
        if not _is_tensor(gradOutput) or gradOutput.nElement() != input.nElement():
            self._fail('gradOutput with %d elements' % input.nElement(), gradOutput)
        if gradOutput.type() != self.gradInput.type():
            self._fail('a %s gradOutput' % self.gradInput.type(), gradOutput)
        if not gradOutput.isContiguous():
            if self.__dict__.get('_gradOutput') is None:
                self._gradOutput = gradOutput.new()
            self._gradOutput.resizeAs(gradOutput).copy(gradOutput)
            gradOutput = self._gradOutput
        self.gradInput.set(gradOutput.view(*input.size()))
        return self.gradInput

    def __tostring__(self):
        return '%s(%s)' % (self.__typename__, _fmt(self._size_list()))

    def clearState(self):
        clear(self, '_input', '_gradOutput')
        return super().clearState()


def _pos_dim(d, ndim):
    return ndim + d + 1 if d < 0 else d


class Narrow(Module):
    """output = copy of input:narrow(dimension, offset, length); negative dimension counts
    from the end; negative length means size - offset + length + 2 (so -1 reaches the end);
    a negative offset makes the window start at 1 with length size - length (Lua 2017)."""

    def __init__(self, dimension=None, offset=None, length=1):
        super().__init__()
        if dimension is None or offset is None:
            raise TypeError('nn.Narrow(dimension, offset, length)')
        self.dimension = dimension
        self.index = offset
        self.length = length if length is not None else 1

    def _window(self, input):
        if not _is_tensor(input) or input.dim() == 0:
            self._fail('a non-empty tensor', input)
        dim = _pos_dim(self.dimension, input.dim())
        if not 1 <= dim <= input.dim():
            self._fail('a tensor with at least %d dimensions' % abs(self.dimension), input)
        n = input.size(dim)
        length = self.length
        if length < 0:
            length = n - self.index + self.length + 2
        index = self.index
        if self.index < 0:
            index = 1
            length = n - length
        if not (1 <= index <= n and length >= 1 and index + length - 1 <= n):
            self._fail('a tensor whose dim %d can hold the window %d..%d (offset %d, length %d)'
                       % (dim, index, index + length - 1, self.index, self.length), input)
        return dim, index, length

    def updateOutput(self, input):
        dim, index, length = self._window(input)
        window = input.narrow(dim, index, length)
        if self.output.type() != input.type():
            self.output = self.output.type(input.type())
        self.output.resizeAs(window).copy(window)
        return self.output

    def updateGradInput(self, input, gradOutput):
        dim, index, length = self._window(input)
        n = _prod(input.size()) // input.size(dim) * length
        if not _is_tensor(gradOutput) or gradOutput.nElement() != n:
            self._fail('gradOutput with %d elements' % n, gradOutput)
        if self.gradInput.type() != input.type():
            self.gradInput = self.gradInput.type(input.type())
        self.gradInput.resizeAs(input).zero()
        self.gradInput.narrow(dim, index, length).copy(gradOutput)
        return self.gradInput


class Select(Module):
    """output = copy of input:select(dimension, index); negative dimension/index count from
    the end."""

    def __init__(self, dimension, index):
        super().__init__()
        self.dimension = dimension
        self.index = index

    def _where(self, input):
        if not _is_tensor(input) or input.dim() < 2:
            self._fail('a tensor with at least 2 dimensions', input)
        dim = _pos_dim(self.dimension, input.dim())
        if not 1 <= dim <= input.dim():
            self._fail('a tensor with at least %d dimensions' % abs(self.dimension), input)
        n = input.size(dim)
        index = n + self.index + 1 if self.index < 0 else self.index
        if not 1 <= index <= n:
            self._fail('a tensor whose dim %d has index %d' % (dim, self.index), input)
        return dim, index

    def updateOutput(self, input):
        dim, index = self._where(input)
        sel = input.select(dim, index)
        self.output.resizeAs(sel).copy(sel)
        return self.output

    def updateGradInput(self, input, gradOutput):
        dim, index = self._where(input)
        n = input.nElement() // input.size(dim)
        if not _is_tensor(gradOutput) or gradOutput.nElement() != n:
            self._fail('gradOutput with %d elements' % n, gradOutput)
        self.gradInput.resizeAs(input).zero()
        self.gradInput.select(dim, index).copy(gradOutput)
        return self.gradInput


def _typed_tensor(name):
    kind, device = backend.parse_typename(name)
    return Tensor(kind=kind, device=device)


class Copy(Module):
    """Copies (and converts) input to an `outtype` output; gradients back to `intype`.
    With intype == outtype and no forceCopy, output/gradInput just share input/gradOutput."""

    def __init__(self, intype=None, outtype=None, forceCopy=None, dontCast=None):
        from ..tensor import getdefaulttensortype
        intype = intype or getdefaulttensortype()
        outtype = outtype or getdefaulttensortype()
        self.dontCast = dontCast
        super().__init__()
        self.gradInput = _typed_tensor(intype)
        self.output = _typed_tensor(outtype)
        # Lua replaces the instance's update functions in this case; we keep a flag.
        self._shareOnly = (not forceCopy) and intype == outtype

    def updateOutput(self, input):
        if not _is_tensor(input):
            self._fail('a tensor', input)
        if self.__dict__.get('_shareOnly'):
            if input.type() != self.output.type():
                self._fail('a %s input' % self.output.type(), input)
            self.output.set(input)
            return self.output
        self.output.resize(*input.size()).copy(input)
        return self.output

    def updateGradInput(self, input, gradOutput):
        if not _is_tensor(gradOutput):
            self._fail('a tensor gradOutput', gradOutput)
        if self.__dict__.get('_shareOnly'):
            if gradOutput.type() != self.gradInput.type():
                self._fail('a %s gradOutput' % self.gradInput.type(), gradOutput)
            self.gradInput.set(gradOutput)
            return self.gradInput
        self.gradInput.resize(*gradOutput.size()).copy(gradOutput)
        return self.gradInput

    def type(self, name=None, tensorCache=None):
        if name is not None and self.__dict__.get('dontCast'):
            return self
        return super().type(name, tensorCache)


def _fresh(v):
    if isinstance(v, Tensor):
        return v.new()
    if isinstance(v, list):
        return []
    return None


def identity_clear_state(self):
    """Lua's Identity:clearState: fresh output/gradInput objects (never set(): they may be
    someone else's tensors)."""
    for f in ('output', 'gradInput'):
        if f in self.__dict__:
            self.__dict__[f] = _fresh(self.__dict__[f])
    return self


class Identity(Module):
    """output is the input object itself; gradInput is the gradOutput object itself."""

    def updateOutput(self, input):
        self.output = input
        return self.output

    def updateGradInput(self, input, gradOutput):
        self.gradInput = gradOutput
        return self.gradInput

    clearState = identity_clear_state


class Sum(Module):
    """Sum over `dimension` (negative counts from the end; shifted by one when the input has
    nInputDims + 1 dims), divided by its size when sizeAverage; the summed dim is dropped
    (squeeze, default) unless the result is 1-D."""

    def __init__(self, dimension=1, nInputDims=None, sizeAverage=False, squeeze=None):
        super().__init__()
        self.dimension = dimension if dimension is not None else 1
        self.nInputDims = nInputDims
        self.sizeAverage = bool(sizeAverage)
        if squeeze is not None:
            if not isinstance(squeeze, bool):
                raise TypeError('squeeze has to be true/false')
            self.squeeze = squeeze
        else:
            self.squeeze = True

    def _getPositiveDimension(self, input):
        if not _is_tensor(input) or input.dim() == 0:
            self._fail('a non-empty tensor', input)
        d = self.dimension
        nid = getattr(self, 'nInputDims', None)
        if d < 0:
            d = input.dim() + d + 1
        elif nid is not None and input.dim() == nid + 1:
            d = d + 1
        if not 1 <= d <= input.dim():
            self._fail('a tensor with at least %d dimensions (dimension exceeds input dimensions)'
                       % max(d, abs(self.dimension)), input)
        return d

    def updateOutput(self, input):
        d = self._getPositiveDimension(input)
        if not isinstance(self.output, Tensor):
            self.output = input.new()
        size = list(input.size())
        size[d - 1] = 1
        self.output.resize(*size)
        if not self.output.is_meta():
            out = self.output.numpy()
            xp = backend.array_module(out)
            xp.sum(input.numpy(), axis=d - 1, keepdims=True, out=out)
            if self.sizeAverage:
                out /= input.size(d)
        sq = getattr(self, 'squeeze', None)
        if (sq is None or sq) and self.output.dim() > 1:
            self.output.set(self.output.select(d, 1))
        return self.output

    def updateGradInput(self, input, gradOutput):
        d = self._getPositiveDimension(input)
        size = list(input.size())
        size[d - 1] = 1
        if not _is_tensor(gradOutput) or gradOutput.nElement() != _prod(size):
            self._fail('gradOutput with %d elements' % _prod(size), gradOutput)
        if not gradOutput.isContiguous():
            if self.__dict__.get('_gradOutput') is None:
                self._gradOutput = gradOutput.new()
            self._gradOutput.resizeAs(gradOutput).copy(gradOutput)
            gradOutput = self._gradOutput
        self.gradInput.resizeAs(input)
        if self.gradInput.is_meta():
            return self.gradInput
        g = self.gradInput.numpy()
        xp = backend.array_module(g)
        go = gradOutput.numpy().reshape(size)
        if self.sizeAverage:
            xp.divide(go, input.size(d), out=g)  # broadcasts along dim d
        else:
            g[...] = go
        return self.gradInput

    def clearState(self):
        clear(self, '_gradOutput')
        return super().clearState()


class Mean(Sum):
    """Sum with sizeAverage = true (kept by Lua nn for backward compatibility)."""

    def __init__(self, dimension=1, nInputDims=None):
        super().__init__(dimension, nInputDims, True)


class PairwiseDistance(Module):
    """p-norm distance between the two tensors of the input table (vectors or rows of
    matrices). Buffers as Lua: diff, outExpand, grad, ones."""

    def __init__(self, p=None):
        super().__init__()
        self.gradInput = []
        self.diff = Tensor()
        self.norm = p if p is not None else 2

    def _check(self, input):
        if (not isinstance(input, (list, tuple)) or len(input) < 2 or not _is_tensor(input[0])
                or not _is_tensor(input[1])):
            self._fail('a table of two tensors', input)
        a, b = input[0], input[1]
        if a.dim() not in (1, 2):
            self._fail('input must be vector or matrix', input)
        if a.size() != b.size():
            self._fail('two tensors of the same size', input)
        return a, b

    def updateOutput(self, input):
        a, b = self._check(input)
        p = self.norm
        self.output.resize(1)
        if a.dim() == 1:
            self.output.resize(1)
            if not self.output.is_meta():
                xa = a.numpy()
                xp = backend.array_module(xa)
                d = xp.abs(xa - b.numpy())
                self.output.numpy()[0] = (d ** p).sum() ** (1.0 / p)
        else:
            if self.__dict__.get('diff') is None:
                self.diff = a.new()
            self.diff.resizeAs(a)
            self.output.resize(a.size(1))
            if self.output.is_meta():
                return self.output
            diff = self.diff.numpy()
            xp = backend.array_module(diff)
            xp.subtract(a.numpy(), b.numpy(), out=diff)
            xp.abs(diff, out=diff)
            xp.power(diff, p, out=diff)
            out = self.output.numpy()
            xp.sum(diff, axis=1, out=out)
            xp.power(out, 1.0 / p, out=out)
        return self.output

    def updateGradInput(self, input, gradOutput):
        a, b = self._check(input)
        n = 1 if a.dim() == 1 else a.size(1)
        if not _is_tensor(gradOutput) or gradOutput.nElement() != n:
            self._fail('gradOutput with %d elements' % n, gradOutput)
        gi = self.gradInput
        while len(gi) < 2:
            gi.append(None)
        if gi[0] is None:
            gi[0] = a.new()
        if gi[1] is None:
            gi[1] = b.new()
        gi[0].resize(*a.size())
        gi[1].resize(*b.size())
        p = self.norm
        if a.dim() > 1:
            if self.__dict__.get('outExpand') is None:
                self.outExpand = self.output.new()
            self.outExpand.resize(self.output.size(1), 1)
            if self.__dict__.get('grad') is None:
                self.grad = gradOutput.new()
            if self.__dict__.get('ones') is None:
                self.ones = gradOutput.new()
            self.grad.resizeAs(a)
            self.ones.resize(a.size(2))
        if gi[0].is_meta():
            return gi
        g1, g2 = gi[0].numpy(), gi[1].numpy()
        xp = backend.array_module(g1)
        xp.subtract(a.numpy(), b.numpy(), out=g1)
        if p == 1:
            # sign, with a random +-1 where the difference is exactly 0 (Lua's mathsign)
            zeros = g1 == 0
            xp.sign(g1, out=g1)
            nz = int(zeros.sum())
            if nz:
                draw = generator().integers(0, 2, nz) * 2 - 1
                g1[zeros] = xp.asarray(draw, dtype=g1.dtype)
        else:
            if p > 2:
                xp.abs(g1, out=g2)  # g2 is scratch here; it is overwritten below
                xp.power(g2, p - 2, out=g2)
                g1 *= g2
            if a.dim() > 1:
                oe = self.outExpand.numpy()
                oe[...] = self.output.numpy().reshape(oe.shape)
                oe += 1.0e-6
                xp.power(oe, -(p - 1), out=oe)
                g1 *= oe
            else:
                g1 *= (self.output.numpy()[0] + 1e-6) ** (-(p - 1))
        if a.dim() == 1:
            g1 *= gradOutput.numpy().reshape(-1)[0]
        else:
            grad = self.grad.numpy()
            self.ones.fill(1)
            xp.multiply(gradOutput.numpy().reshape(-1, 1), self.ones.numpy().reshape(1, -1), out=grad)
            g1 *= grad
        xp.negative(g1, out=g2)
        return gi

    def clearState(self):
        clear(self, 'diff', 'outExpand', 'grad', 'ones')
        return super().clearState()


# The rest of the family (imported here so that nn exports it from this module).
from .shape_ops import (Contiguous, Squeeze, Unsqueeze, Replicate, Transpose, Padding,  # noqa: E402,F401
                        Collapse, Convert)
from .shape_spatial import (SpatialReflectionPadding, SpatialReplicationPadding,  # noqa: E402,F401
                            SpatialUpSamplingNearest, SpatialUpSamplingBilinear, UpSampling,
                            PixelShuffle)
