"""Table family: JoinTable, SelectTable, NarrowTable, FlattenTable, CAddTable, CMulTable,
CSubTable; the rest of the family (CDivTable, CMaxTable, ...) is in table_ops.py and table_math.py,
imported at the end of this file. Lua tables with keys 1..n are Python lists (indices here stay 1-based)."""
import numbers

import numpy as np

from .. import backend
from ..storage import Storage
from ..tensor import Tensor
from .module import Module
from .shape import identity_clear_state


def _is_table(x):
    return isinstance(x, (list, tuple))


def _set(t, k, v):
    """t[k] = v on a list (0-based k), growing it by one when k == len(t)."""
    while len(t) < k:
        t.append(None)
    if k < len(t):
        t[k] = v
    else:
        t.append(v)


def _fmt(size):
    return 'x'.join(str(s) for s in size) or 'empty'


def _tensor_table(self, input, least=1):
    if not _is_table(input) or len(input) < least or not all(isinstance(t, Tensor) for t in input):
        self._fail('a table of at least %d tensor%s' % (least, 's' if least > 1 else ''), input)


def _same_numel(self, input):
    n = input[0].nElement()
    for i, t in enumerate(input[1:], 2):
        if t.nElement() != n:
            self._fail('tensors with the same number of elements (input[%d] has %d, input[1] has %d)'
                       % (i, t.nElement(), n), input)


def _arr(t, shape):
    """t's ndarray, viewed with `shape` when its own shape differs (same element count)."""
    a = t.numpy()
    return a if a.shape == tuple(shape) else a.reshape(shape)


class JoinTable(Module):
    """Concatenates the tensors of the input table along `dimension` (negative counts from the
    end; shifted by one when inputs have nInputDims + 1 dims)."""

    def __init__(self, dimension, nInputDims=None):
        super().__init__()
        self.size = Storage(0, np.int64)
        self.dimension = dimension
        self.gradInput = []
        self.nInputDims = nInputDims

    def _getPositiveDimension(self, input):
        d = self.dimension
        nid = getattr(self, 'nInputDims', None)
        if d < 0:
            d = input[0].dim() + d + 1
        elif nid is not None and input[0].dim() == nid + 1:
            d = d + 1
        return d

    def _check(self, input):
        _tensor_table(self, input)
        d = self._getPositiveDimension(input)
        first = input[0]
        if not 1 <= d <= first.dim():
            self._fail('tensors with at least %d dimensions' % max(d, 1), input)
        ref = first.size()[:d - 1] + first.size()[d:]
        for i, t in enumerate(input[1:], 2):
            if t.dim() != first.dim() or t.size()[:d - 1] + t.size()[d:] != ref:
                self._fail('tensors of the same size except in dimension %d (input[%d] is %s, input[1] '
                           'is %s)' % (d, i, _fmt(t.size()), _fmt(first.size())), input)
        return d

    def updateOutput(self, input):
        d = self._check(input)
        size = list(input[0].size())
        size[d - 1] = sum(t.size(d) for t in input)
        self.size.resize(len(size))
        if self.size.data is not None:
            self.size.data[:] = size
        self.output.resize(*size)
        if self.output.is_meta():
            return self.output
        out = self.output.numpy()
        off = 0
        idx = [slice(None)] * len(size)
        for t in input:
            n = t.size(d)
            idx[d - 1] = slice(off, off + n)
            if t.nElement():
                out[tuple(idx)] = t.numpy()
            off += n
        return self.output

    def updateGradInput(self, input, gradOutput):
        d = self._check(input)
        size = list(input[0].size())
        size[d - 1] = sum(t.size(d) for t in input)
        if not isinstance(gradOutput, Tensor) or list(gradOutput.size()) != size:
            self._fail('gradOutput of size %s' % _fmt(size), gradOutput)
        gi = self.gradInput
        for i, t in enumerate(input):
            if i >= len(gi) or gi[i] is None:
                _set(gi, i, t.new())
            gi[i].resizeAs(t)
        del gi[len(input):]
        off = 1
        for i, t in enumerate(input):
            n = t.size(d)
            gi[i].copy(gradOutput.narrow(d, off, n))
            off += n
        return gi

    def type(self, name=None, tensorCache=None):
        if name is None:
            return super().type()
        self.gradInput = []
        return super().type(name, tensorCache)


def _zero_table_copy(t1, t2):
    """Lua's zeroTableCopy: make t1 a zero-filled copy of the (nested) table t2, reusing t1's tensors."""
    for k, v in enumerate(t2):
        cur = t1[k] if k < len(t1) else None
        if _is_table(v):
            _set(t1, k, _zero_table_copy(cur if isinstance(cur, list) else [], v))
        elif isinstance(v, Tensor):
            if not isinstance(cur, Tensor):
                _set(t1, k, v.clone().zero())
            else:
                cur.resizeAs(v).zero()
        else:
            _set(t1, k, None)
    del t1[len(t2):]
    return t1


def _recursive_copy(t1, t2):
    """nn.utils.recursiveCopy: t1 becomes a copy of t2 (reusing t1's tensors); returns t1."""
    if _is_table(t2):
        if not isinstance(t1, list):
            t1 = [] if t1 is None else [t1]
        for k, v in enumerate(t2):
            _set(t1, k, _recursive_copy(t1[k] if k < len(t1) else None, v))
        return t1
    if isinstance(t2, Tensor):
        t1 = t1 if isinstance(t1, Tensor) else t2.new()
        t1.resize(*t2.size()).copy(t2)
        return t1
    raise ValueError('expecting nested tensors or tables, got %s' % type(t2).__name__)


def _recursive_resize_as(t1, t2):
    """nn.utils.recursiveResizeAs (returns the resized t1)."""
    if _is_table(t2):
        if not isinstance(t1, list):
            t1 = [] if t1 is None else [t1]
        for k, v in enumerate(t2):
            _set(t1, k, _recursive_resize_as(t1[k] if k < len(t1) else None, v))
        del t1[len(t2):]
        return t1
    if isinstance(t2, Tensor):
        t1 = t1 if isinstance(t1, Tensor) else t2.new()
        t1.resize(*t2.size())
        return t1
    raise ValueError('expecting nested tensors or tables, got %s and %s'
                     % (type(t1).__name__, type(t2).__name__))


def _recursive_fill(t, val):
    if _is_table(t):
        for v in t:
            _recursive_fill(v, val)
    elif isinstance(t, Tensor):
        t.fill(val)
    else:
        raise ValueError('expecting tensor or table thereof, got %s' % type(t).__name__)
    return t


class SelectTable(Module):
    """output = input[index] (the object itself; negative index counts from the end);
    gradInput is a zero-filled copy of the input table with gradOutput copied at index."""

    def __init__(self, index):
        super().__init__()
        self.index = index
        self.gradInput = []

    def _pos(self, input):
        if not _is_table(input):
            self._fail('a table', input)
        index = self.index
        if isinstance(index, numbers.Integral) and index < 0:
            index = len(input) + index + 1
        if not isinstance(index, numbers.Integral) or not 1 <= index <= len(input) \
                or input[index - 1] is None:
            self._fail('a table holding index %s (index does not exist in the input table)'
                       % (self.index,), input)
        return index

    def updateOutput(self, input):
        index = self._pos(input)
        self.output = input[index - 1]
        return self.output

    def updateGradInput(self, input, gradOutput):
        index = self._pos(input)
        if not (isinstance(gradOutput, Tensor) or _is_table(gradOutput)):
            self._fail('a tensor or a table as gradOutput', gradOutput)
        if not isinstance(self.gradInput, list):
            self.gradInput = []
        _zero_table_copy(self.gradInput, input)
        self.gradInput[index - 1] = _recursive_copy(self.gradInput[index - 1], gradOutput)
        return self.gradInput

    def type(self, name=None, tensorCache=None):
        if name is None:
            return super().type()
        self.gradInput = []
        self.output = []
        return super().type(name, tensorCache)

    def __tostring__(self):
        return '%s(%s)' % (self.__typename__, self.index)

    clearState = identity_clear_state


class NarrowTable(Module):
    """output = {input[offset], ..., input[offset + length - 1]} (the objects themselves)."""

    def __init__(self, offset=None, length=1):
        super().__init__()
        if offset is None:
            raise TypeError('nn.NarrowTable(offset, length)')
        self.offset = offset
        self.length = length if length is not None else 1
        self.output = []
        self.gradInput = []

    def _check(self, input):
        if not _is_table(input):
            self._fail('a table', input)
        last = self.offset + self.length - 1
        if self.offset < 1 or self.length < 0 or last > len(input):
            self._fail('a table of at least %d elements (offset %d, length %d)'
                       % (last, self.offset, self.length), input)

    def updateOutput(self, input):
        self._check(input)
        self.output[:] = list(input[self.offset - 1:self.offset - 1 + self.length])
        return self.output

    def updateGradInput(self, input, gradOutput):
        self._check(input)
        if not _is_table(gradOutput) or len(gradOutput) != self.length:
            self._fail('gradOutput as a table of %d' % self.length, gradOutput)
        gi = self.gradInput
        while len(gi) < len(input):
            gi.append(None)
        for i, g in enumerate(gradOutput):
            gi[self.offset - 1 + i] = g
        for i in range(1, len(input) + 1):
            if i < self.offset or i >= self.offset + self.length:
                gi[i - 1] = _recursive_resize_as(gi[i - 1], input[i - 1])
                _recursive_fill(gi[i - 1], 0)
        del gi[len(input):]
        return gi

    def type(self, name=None, tensorCache=None):
        if name is None:
            return super().type()
        self.output = []
        self.gradInput = []
        return super().type(name, tensorCache)

    clearState = identity_clear_state


def _flatten(output, input):
    """Append input's tensors to output in depth-first order; return the input map
    (same nesting as input, 1-based positions in output at the leaves)."""
    if _is_table(input):
        return [_flatten(output, v) for v in input]
    output.append(input)
    return len(output)


def _check_mapping(output, input, input_map):
    if input_map is None or output is None or input is None:
        return False
    if _is_table(input):
        if not isinstance(input_map, list) or len(input) != len(input_map):
            return False
        return all(_check_mapping(output, v, m) for v, m in zip(input, input_map))
    if isinstance(input_map, bool) or not isinstance(input_map, numbers.Integral):
        return False
    return 1 <= input_map <= len(output) and output[input_map - 1] is input


def _inverse_flatten(gradOutput, input_map):
    if isinstance(input_map, list):
        return [_inverse_flatten(gradOutput, m) for m in input_map]
    return gradOutput[input_map - 1] if input_map - 1 < len(gradOutput) else None


class FlattenTable(Module):
    """Flattens a nested table of tensors into a flat table (depth-first order); gradInput
    rebuilds the nesting from gradOutput's tensors."""

    def __init__(self):
        super().__init__()
        self.output = []
        self.input_map = []
        self.gradInput = []

    def updateOutput(self, input):
        if not _is_table(input):
            self._fail('a table', input)
        if not _check_mapping(self.output, input, self.input_map):
            self.output = []
            self.input_map = _flatten(self.output, input)
        return self.output

    def updateGradInput(self, input, gradOutput):
        if not _is_table(input):
            self._fail('a table', input)
        if not _is_table(gradOutput) or len(gradOutput) != len(self.output):
            self._fail('gradOutput as a table of %d' % len(self.output), gradOutput)
        if not _check_mapping(gradOutput, self.gradInput, self.input_map):
            self.gradInput = _inverse_flatten(gradOutput, self.input_map)
        return self.gradInput

    def type(self, name=None, tensorCache=None):
        if name is None:
            return super().type()
        # holds references only: just empty the tables (Lua returns nothing here; we return self)
        self.clearState()
        return self

    def clearState(self):
        self.input_map = []
        return super().clearState()


class CAddTable(Module):
    """output = sum of the input table's tensors. inplace: output shares input[1] (which is
    overwritten) and every gradInput[i] shares gradOutput."""

    def __init__(self, inplace=False):
        super().__init__()
        self.inplace = inplace
        self.gradInput = []

    def updateOutput(self, input):
        _tensor_table(self, input)
        _same_numel(self, input)
        if self.inplace:
            if input[0].type() != self.output.type():
                self._fail('a table of %s (inplace)' % self.output.type(), input)
            self.output.set(input[0])
        else:
            self.output.resizeAs(input[0])
        if self.output.is_meta():
            return self.output
        out = self.output.numpy()
        xp = backend.array_module(out)
        rest = input[1:]
        if not self.inplace:   # the first sum straight into output: one pass fewer than a copy
            if rest:
                xp.add(input[0].numpy(), _arr(rest[0], out.shape), out=out)
                rest = rest[1:]
            else:
                out[...] = input[0].numpy()
        for t in rest:
            xp.add(out, _arr(t, out.shape), out=out)
        return self.output

    def updateGradInput(self, input, gradOutput):
        _tensor_table(self, input)
        if not isinstance(gradOutput, Tensor) or gradOutput.nElement() != input[0].nElement():
            self._fail('gradOutput with %d elements' % input[0].nElement(), gradOutput)
        gi = self.gradInput
        for i, t in enumerate(input):
            if i >= len(gi) or gi[i] is None:
                _set(gi, i, input[0].new())
            if self.inplace:
                if gradOutput.type() != gi[i].type():
                    self._fail('a %s gradOutput (inplace)' % gi[i].type(), gradOutput)
                gi[i].set(gradOutput)
            else:
                gi[i].resizeAs(t).copy(gradOutput)
        del gi[len(input):]
        return gi


class CMulTable(Module):
    """output = element-wise product of the input table's tensors."""

    def __init__(self):
        super().__init__()
        self.gradInput = []

    def updateOutput(self, input):
        _tensor_table(self, input)
        _same_numel(self, input)
        self.output.resizeAs(input[0])
        if self.output.is_meta():
            return self.output
        out = self.output.numpy()
        out[...] = input[0].numpy()
        xp = backend.array_module(out)
        for t in input[1:]:
            xp.multiply(out, _arr(t, out.shape), out=out)
        return self.output

    def _grad_tables(self, input, gradOutput):
        _tensor_table(self, input)
        _same_numel(self, input)
        if not isinstance(gradOutput, Tensor) or gradOutput.nElement() != input[0].nElement():
            self._fail('gradOutput with %d elements' % input[0].nElement(), gradOutput)
        gi = self.gradInput
        for i, t in enumerate(input):
            if i >= len(gi) or gi[i] is None:
                _set(gi, i, input[0].new())
            gi[i].resizeAs(t).copy(gradOutput)
        del gi[len(input):]
        return gi

    def updateGradInput(self, input, gradOutput):
        gi = self._grad_tables(input, gradOutput)
        if gi[0].is_meta():
            return gi
        for i in range(len(input)):
            g = gi[i].numpy()
            xp = backend.array_module(g)
            for j, t in enumerate(input):
                if j != i:
                    xp.multiply(g, _arr(t, g.shape), out=g)
        return gi

    def updateGradInput_efficient(self, input, gradOutput):
        """Lua's alternative: gradInput[i] = gradOutput * output / input[i] (buffer `tout`)."""
        if self.__dict__.get('tout') is None:
            self.tout = input[0].new()
        self.tout.resizeAs(self.output)
        gi = self._grad_tables(input, gradOutput)
        if gi[0].is_meta():
            return gi
        tout = self.tout.numpy()
        xp = backend.array_module(tout)
        for i, t in enumerate(input):
            tout[...] = _arr(self.output, tout.shape)
            xp.divide(tout, _arr(t, tout.shape), out=tout)
            g = gi[i].numpy()
            xp.multiply(g, _arr(self.tout, g.shape), out=g)
        return gi

    def clearState(self):
        if isinstance(self.__dict__.get('tout'), Tensor):
            self.tout.set()
        return super().clearState()


class CSubTable(Module):
    """output = input[1] - input[2]."""

    def __init__(self):
        super().__init__()
        self.gradInput = []

    def _check(self, input):
        _tensor_table(self, input, 2)
        _same_numel(self, input[:2])

    def updateOutput(self, input):
        self._check(input)
        self.output.resizeAs(input[0])
        if self.output.is_meta():
            return self.output
        out = self.output.numpy()
        xp = backend.array_module(out)
        xp.subtract(input[0].numpy(), _arr(input[1], out.shape), out=out)
        return self.output

    def updateGradInput(self, input, gradOutput):
        self._check(input)
        if not isinstance(gradOutput, Tensor) or gradOutput.nElement() != input[0].nElement():
            self._fail('gradOutput with %d elements' % input[0].nElement(), gradOutput)
        gi = self.gradInput
        for i in range(2):
            if i >= len(gi) or gi[i] is None:
                _set(gi, i, input[0].new())
        gi[0].resizeAs(input[0]).copy(gradOutput)
        gi[1].resizeAs(input[1]).copy(gradOutput)
        gi[1].mul(-1)
        del gi[len(input):]
        return gi


# The rest of the family (imported here so that nn exports it from this module).
from .table_ops import (CDivTable, CMaxTable, CMinTable, CAddTensorTable, SplitTable,  # noqa: E402,F401
                        MixtureTable, ZipTable, ZipTableOneToMany, Index, MaskedSelect)
from .table_math import CosineDistance, DotProduct, MM, MV  # noqa: E402,F401
