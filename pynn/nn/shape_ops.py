"""Shape family, second part: Contiguous, Squeeze, Unsqueeze, Replicate, Transpose, Padding,
Collapse, Convert. Imported by shape.py (nn exports them from there). Dims are 1-based as in
Lua; outputs that Lua makes views of the input are views here too (same storage)."""
import numpy as np

from ..storage import Storage
from ..tensor import Tensor
from .module import Module
from .container import Container, Sequential
from .shape import Identity, Reshape, Select, _fmt


def _is_tensor(x):
    return isinstance(x, Tensor)


def index_add(xp, target, index, src):
    """target[index] += src with repeated indices accumulated (numpy's add.at; cupyx on GPU)."""
    if hasattr(xp.add, 'at'):
        xp.add.at(target, index, src)
    else:  # pragma: no cover - older CuPy
        import cupyx
        cupyx.scatter_add(target, index, src)


def _alias(t, size, stride):
    """A tensor sharing t's storage at t's offset with the given geometry."""
    return t._view_of(t._offset, tuple(size), tuple(stride))


def squeeze(t, dim=None):
    """Torch7's squeeze (all size-1 dims; a tensor of ones keeps one dim) / squeeze1d(dim)."""
    size, stride = list(t.size()), list(t.stride())
    if dim is not None:
        d = dim - 1
        if size[d] == 1 and len(size) > 1:
            del size[d], stride[d]
        return _alias(t, size, stride)
    keep = [i for i, s in enumerate(size) if s != 1]
    if not keep and size:
        return _alias(t, [1], [1])
    return _alias(t, [size[i] for i in keep], [stride[i] for i in keep])


def _view_back(m, input, gradOutput):
    """updateGradInput of the modules whose output is a view of the input (Squeeze,
    Unsqueeze, Collapse): gradInput is gradOutput viewed with the input's size."""
    if not _is_tensor(gradOutput) or gradOutput.nElement() != input.nElement():
        m._fail('a gradOutput with %d elements' % input.nElement(), gradOutput)
    if not gradOutput.isContiguous() or gradOutput.type() != m.gradInput.type():
        m._fail('a contiguous %s gradOutput' % m.gradInput.type(), gradOutput)
    m.gradInput.set(gradOutput.view(*input.size()))
    return m.gradInput


class Contiguous(Module):
    """output = input when contiguous (the same view), else a contiguous copy."""

    def updateOutput(self, input):
        if not _is_tensor(input):
            self._fail('a tensor', input)
        if input.type() != self.output.type():
            self._fail('a %s input' % self.output.type(), input)
        if not input.isContiguous():
            if self.output.storage() is not None and self.output.storage() is input.storage():
                self.output.set()
            self.output.resizeAs(input).copy(input)
        else:
            self.output.set(input)
        return self.output

    def updateGradInput(self, input, gradOutput):
        if not _is_tensor(gradOutput) or gradOutput.nElement() != input.nElement():
            self._fail('a gradOutput with %d elements' % input.nElement(), gradOutput)
        if gradOutput.type() != self.gradInput.type():
            self._fail('a %s gradOutput' % self.gradInput.type(), gradOutput)
        if not gradOutput.isContiguous():
            if self.gradInput.storage() is not None and self.gradInput.storage() is gradOutput.storage():
                self.gradInput.set()
            self.gradInput.resizeAs(gradOutput).copy(gradOutput)
        else:
            self.gradInput.set(gradOutput)
        return self.gradInput


class Squeeze(Module):
    """output = input:squeeze([dim]) (a view); with numInputDims, a batch input (one more dim)
    squeezes dim + 1, and a batch of one keeps its batch dim."""

    def __init__(self, dim=None, numInputDims=None):
        super().__init__()
        self.dim = dim
        self.setNumInputDims(numInputDims)

    def setNumInputDims(self, numInputDims):
        self.numInputDims = numInputDims
        return self

    def updateOutput(self, input):
        if not _is_tensor(input):
            self._fail('a tensor (Squeeze only works on tensors)', input)
        if input.type() != self.output.type():
            self._fail('a %s input' % self.output.type(), input)
        dim, addone = self.dim, False
        if self.numInputDims is not None and input.dim() == self.numInputDims + 1:
            if dim is not None:
                dim = dim + 1
            elif input.size(1) == 1:
                addone = True
        if dim is not None and not 1 <= dim <= input.dim():
            self._fail('a tensor with at least %d dimensions' % dim, input)
        if input.dim() == 0:
            self._fail('a non-empty tensor', input)
        out = squeeze(input, dim)
        if addone:
            out = _alias(out, (1,) + out.size(), (out.nElement(),) + out.stride())
            if not out.isContiguous():
                self._fail('a contiguous input (a batch of one is viewed)', input)
        self.output.set(out)
        return self.output

    def updateGradInput(self, input, gradOutput):
        return _view_back(self, input, gradOutput)


class Unsqueeze(Module):
    """output = input with a singleton dim inserted at `pos` (a view), shifted by the batch
    dims beyond numInputDims (numInputDims defaults to the first input's dim)."""

    def __init__(self, pos=None, numInputDims=None):
        super().__init__()
        if pos is None:
            raise TypeError('nn.Unsqueeze: the position to insert singleton dim not specified')
        self.pos = pos
        self.setNumInputDims(numInputDims)

    def setNumInputDims(self, numInputDims):
        self.numInputDims = numInputDims
        return self

    def _getActualPosition(self, input):
        ind = input.dim()
        nid = self.numInputDims if self.numInputDims is not None else ind
        offset = ind - nid
        if offset < 0:
            self._fail('a tensor with at least %d dimensions (numInputDims)' % nid, input)
        pos = self.pos + offset
        if not 1 <= pos <= ind + 1:
            self._fail('a tensor where position %d fits (input:dim() %d, numInputDims %d)'
                       % (self.pos, ind, nid), input)
        self.numInputDims = nid  # Lua keeps the first input's dim
        return pos

    def updateOutput(self, input):
        if not _is_tensor(input):
            self._fail('a tensor (This module only works on tensor)', input)
        if input.type() != self.output.type():
            self._fail('a %s input' % self.output.type(), input)
        pos = self._getActualPosition(input)
        size, stride = list(input.size()), list(input.stride())
        size.insert(pos - 1, 1)
        stride.insert(pos - 1, 1)
        self.output.set(_alias(input, size, stride))
        return self.output

    def updateGradInput(self, input, gradOutput):
        return _view_back(self, input, gradOutput)

    def __tostring__(self):
        return '%s(dim %s)' % (self.__typename__, self.pos)


class Replicate(Module):
    """output = input repeated nf times along a new dim `dim` (a stride-0 view of the input);
    with ndim, inputs of more dims have a batch dim first."""

    def __init__(self, nf, dim=None, ndim=None):
        super().__init__()
        self.nfeatures = nf
        self.dim = dim or 1
        self.ndim = ndim
        if self.dim <= 0:
            raise ValueError('nn.Replicate: Can only replicate across positive integer dimensions.')

    def _rdim(self, input):
        if not _is_tensor(input):
            self._fail('a tensor', input)
        self.dim = self.dim or 1
        if self.dim > input.dim() + 1:
            self._fail('a tensor with at least %d dimensions (not enough input dimensions to '
                       'replicate along dimension %d)' % (self.dim - 1, self.dim), input)
        off = 1 if self.ndim is not None and input.dim() > self.ndim else 0
        return self.dim + off

    def updateOutput(self, input):
        r = self._rdim(input)
        if input.type() != self.output.type():
            self._fail('a %s input' % self.output.type(), input)
        size, stride = list(input.size()), list(input.stride())
        size.insert(r - 1, self.nfeatures)
        stride.insert(r - 1, 0)
        self.output.set(_alias(input, size, stride))
        return self.output

    def updateGradInput(self, input, gradOutput):
        r = self._rdim(input)
        size = list(input.size())
        size.insert(r - 1, self.nfeatures)
        if not _is_tensor(gradOutput) or list(gradOutput.size()) != size:
            self._fail('gradOutput of size %s' % _fmt(size), gradOutput)
        self.gradInput.resizeAs(input)
        if self.gradInput.is_meta():
            return self.gradInput
        g = self.gradInput.numpy()
        g.fill(0)
        gsz = list(input.size())
        gsz.insert(r - 1, 1)
        from .. import backend
        backend.array_module(g).sum(gradOutput.numpy(), axis=r - 1, keepdims=True, out=g.reshape(gsz))
        return self.gradInput


class Transpose(Module):
    """output = contiguous copy of input transposed by each pair in turn:
    nn.Transpose({1, 4}, {1, 3}) (pairs as lists), offset by the batch dims beyond
    numInputDims."""

    def __init__(self, *permutations):
        super().__init__()
        for p in permutations:
            if not isinstance(p, (list, tuple)) or len(p) != 2:
                raise TypeError('nn.Transpose: each permutation is a pair of dims, got %r' % (p,))
        self.permutations = [list(p) for p in permutations]
        self.numInputDims = None

    def setNumInputDims(self, numInputDims):
        self.numInputDims = numInputDims
        return self

    def _offset(self, input, what='input'):
        if not _is_tensor(input):
            self._fail('a tensor', input)
        off = input.dim() - self.numInputDims if self.numInputDims is not None else 0
        for a, b in self.permutations:
            if not (1 <= a + off <= input.dim() and 1 <= b + off <= input.dim()):
                self._fail('a tensor with at least %d dimensions' % (max(a, b) + off), input)
        return off

    def updateOutput(self, input):
        off = self._offset(input)
        for a, b in self.permutations:
            input = input.transpose(a + off, b + off)
        self.output.resizeAs(input)
        if not self.output.is_meta():
            self.output.copy(input)
        return self.output

    def updateGradInput(self, input, gradOutput):
        off = self._offset(input)
        want = input
        for a, b in self.permutations:
            want = want.transpose(a + off, b + off)
        if not _is_tensor(gradOutput) or gradOutput.size() != want.size():
            self._fail('gradOutput of size %s' % _fmt(want.size()), gradOutput)
        for a, b in reversed(self.permutations):
            gradOutput = gradOutput.transpose(a + off, b + off)
        self.gradInput.resizeAs(gradOutput)
        if not self.gradInput.is_meta():
            self.gradInput.copy(gradOutput)
        return self.gradInput


class Padding(Module):
    """Pads `pad` entries of `value` along dim (dim + 1 when the input's dim differs from
    nInputDim); pad > 0 pads after, pad < 0 before; index (from the end for pad > 0, from the
    start for pad < 0) moves the padding inside the dim."""

    def __init__(self, dim, pad, nInputDim=None, value=None, index=None):
        self.value = value or 0
        self.index = index or 1
        self.dim = dim
        self.pad = pad
        self.nInputDim = nInputDim
        self.outputSize = Storage(0, np.int64)
        super().__init__()

    def _geom(self, input):
        if not _is_tensor(input) or input.dim() == 0:
            self._fail('a non-empty tensor', input)
        dim = self.dim
        if self.nInputDim is not None and input.dim() != self.nInputDim:
            dim = dim + 1
        if not 1 <= dim <= input.dim():
            self._fail('a tensor with at least %d dimensions' % dim, input)
        n = input.size(dim)
        index, pad = self.index, self.pad
        if pad > 0:
            index = n - index + 2
        else:
            pad = -pad
        if not 1 <= index <= n + 1:
            self._fail('a tensor whose dim %d has at least %d entries (index %d)'
                       % (dim, abs(self.index) - 1, self.index), input)
        return dim, n, index, pad

    def _parts(self, dim, n, index, pad):
        """(input window, output window) pairs as (start, length), 1-based."""
        if index == 1:
            return [((1, n), (1 + pad, n))]
        if index == n + 1:
            return [((1, n), (1, n))]
        return [((1, index - 1), (1, index - 1)), ((index, n - index + 1), (index + pad, n - index + 1))]

    def updateOutput(self, input):
        dim, n, index, pad = self._geom(input)
        size = list(input.size())
        size[dim - 1] += abs(self.pad)
        self.outputSize.resize(len(size))
        if self.outputSize.data is not None:
            self.outputSize.data[:] = size
        self.output.resize(*size)
        if self.output.is_meta():
            return self.output
        self.output.fill(self.value)
        for (i0, il), (o0, ol) in self._parts(dim, n, index, pad):
            if il:
                self.output.narrow(dim, o0, ol).copy(input.narrow(dim, i0, il))
        return self.output

    def updateGradInput(self, input, gradOutput):
        dim, n, index, pad = self._geom(input)
        size = list(input.size())
        size[dim - 1] += abs(self.pad)
        if not _is_tensor(gradOutput) or list(gradOutput.size()) != size:
            self._fail('gradOutput of size %s' % _fmt(size), gradOutput)
        self.gradInput.resizeAs(input)
        if self.gradInput.is_meta():
            return self.gradInput
        for (i0, il), (o0, ol) in self._parts(dim, n, index, pad):
            if il:
                self.gradInput.narrow(dim, i0, il).copy(gradOutput.narrow(dim, o0, ol))
        return self.gradInput


class Collapse(Module):
    """output = input viewed as (batch, -1) when it has more than nInputDim dims, else (-1);
    a non-contiguous input is first copied into `_input`."""

    def __init__(self, nInputDim):
        super().__init__()
        self.nInputDim = nInputDim

    def updateOutput(self, input):
        if not _is_tensor(input) or input.dim() == 0:
            self._fail('a non-empty tensor', input)
        if input.type() != self.output.type():
            self._fail('a %s input' % self.output.type(), input)
        if not input.isContiguous():
            if not _is_tensor(self.__dict__.get('_input')):
                self._input = input.new()
            self._input.resize(*input.size()).copy(input)
            input = self._input
        if input.dim() > self.nInputDim:
            self.output.set(input.view(input.size(1), -1))
        else:
            self.output.set(input.view(-1))
        return self.output

    def updateGradInput(self, input, gradOutput):
        return _view_back(self, input, gradOutput)

    def clearState(self):
        # Lua drops _input only (output and gradInput are views kept as they are)
        self.__dict__.pop('_input', None)
        return self


def _geti(m, f):
    return m.__dict__.get(f)


class Convert(Container):
    """Converts between data layouts named by axis letters, e.g. nn.Convert('bchw', 'bf'),
    nn.Convert('chw', 'hwc'); 'b' is the batch axis (added when missing; a non-batch input,
    with fewer dims, gets a batch of one). The converter (Transpose, Reshape, Select,
    Identity) is built on the first forward and becomes modules[1]; inputs of another
    tensor type are first copied to the module's type."""

    def __init__(self, inputShape=None, outputShape=None):
        if outputShape and not inputShape:
            raise ValueError('nn.Convert: Expecting non-nil arg 1 when arg 2 is provided')
        inputShape = inputShape or 'b*'
        outputShape = outputShape or inputShape
        self.inputShape = inputShape if 'b' in inputShape else 'b' + inputShape
        self.outputShape = outputShape if 'b' in outputShape else 'b' + outputShape
        self.inputBatchDim = self.inputShape.find('b') + 1
        self.outputBatchDim = self.outputShape.find('b') + 1
        if self.inputShape == 'b*' or self.outputShape == 'b*':
            if not (self.inputShape == 'b*' and self.outputShape == 'b*'):
                raise ValueError('nn.Convert: Both or neither shapes must be b*')
            self.nInputDim = -1
            self.nOutputDim = -1
            self.transposition = True
        else:
            self.nInputDim = len(self.inputShape)
            self.nOutputDim = len(self.outputShape)
            if self.nInputDim == self.nOutputDim:
                self.transposition = all(c in self.outputShape for c in self.inputShape)
        super().__init__()

    # --- converters (Lua's methods named by the output shape) ---------------------------
    def findAxis(self, axis_char, shape=None, silent=False):
        shape = shape or self.inputShape
        pos = shape.find(axis_char) + 1
        if not silent and not pos:
            raise ValueError("nn.Convert: Provided shape '%s' has no axis '%s'" % (shape, axis_char))
        return pos or None

    def bf(self, input):
        b_pos = self.findAxis('b', self.inputShape)
        dim = len(self.inputShape)
        if self.inputShape == 'bt':
            raise ValueError('nn.Convert: Conversion of shape bt to bf not supported')
        if dim == 1:
            return Reshape(1)
        modula = None
        if b_pos != 1:
            modula = Transpose([1, b_pos])
        if dim > 2:
            transpose = modula
            sampleSize = input.select(self.findAxis('b'), 1).nElement()
            reshape = Reshape(sampleSize)
            if transpose is not None:
                modula = Sequential().add(transpose).add(reshape)
            else:
                modula = reshape
        return modula or Identity()

    def b(self, input):
        if self.inputShape in ('bt', 'tb'):
            return Select(self.findAxis('t'), 1)
        if self.inputShape in ('bf', 'fb'):
            f_pos = self.findAxis('f')
            if input.size(f_pos) > 1:
                raise ValueError('nn.Convert: Cannot convert shape %s to b when feature > 1' % self.inputShape)
            return Select(f_pos, 1)
        raise ValueError('nn.Convert: Cannot convert shape %s to shape b' % self.inputShape)

    def bt(self, input=None):
        if self.inputShape == 'b':
            return Reshape(1)
        raise ValueError("nn.Convert: cannot convert shape '%s' to bt" % self.inputShape)

    def default(self, input=None):
        return Identity()

    def transpose(self, newShape):
        if newShape == self.inputShape:
            return Identity()
        shape = list(self.inputShape)
        trans = []
        for i in range(1, len(newShape) + 1):
            j = shape.index(newShape[i - 1]) + 1 if newShape[i - 1] in shape else None
            if j is None:
                raise ValueError('nn.Convert: axis %s of %s is not in %s'
                                 % (newShape[i - 1], newShape, self.inputShape))
            if i != j:
                shape[i - 1], shape[j - 1] = shape[j - 1], shape[i - 1]
                trans.append([j, i])
        return Transpose(*trans)

    def buildConverter(self, input):
        if self.transposition:
            self.converter = self.transpose(self.outputShape)
        else:
            fn = {'bf': self.bf, 'b': self.b, 'bt': self.bt}.get(self.outputShape)
            if fn is None:
                raise ValueError('nn.Convert: Unrecognized conversion of shape %s to %s'
                                 % (self.inputShape, self.outputShape))
            self.converter = fn(input)
        self.converter.type(self.output.type())
        if self.modules:
            self.modules[0] = self.converter
        else:
            self.modules.append(self.converter)

    # --- protocol ---------------------------------------------------------------------------
    def updateOutput(self, input):
        if not _is_tensor(input):
            self._fail('a tensor', input)
        if self.nInputDim > 0 and input.dim() not in (self.nInputDim, self.nInputDim - 1):
            self._fail('a %dD (%s) or %dD tensor' % (self.nInputDim, self.inputShape, self.nInputDim - 1),
                       input)
        if input.type() != self.output.type():
            if not _is_tensor(_geti(self, '_input')):
                self._input = self.output.new()
            self._input.resize(*input.size()).copy(input)
            input = self._input
        self.batchMode = True
        if input.dim() < self.nInputDim:
            size = list(input.size())
            size.insert(self.inputBatchDim - 1, 1)
            if not _is_tensor(_geti(self, '__input')):
                self.__dict__['__input'] = input.new()
            self.__dict__['__input'].set(input).resize(*size)
            input = self.__dict__['__input']
            self.batchMode = False
        if self.converter is None:
            self.buildConverter(input)
        self.output = self.converter.updateOutput(input)
        if not self.batchMode:
            size = list(self.output.size())
            del size[self.outputBatchDim - 1]
            if not _is_tensor(_geti(self, '__output')):
                self.__dict__['__output'] = self.output.new()
            self.__dict__['__output'].set(self.output).resize(*size)
            self.output = self.__dict__['__output']
        return self.output

    def updateGradInput(self, input, gradOutput):
        if self.converter is None:
            self._fail('a forward before the backward', input)
        if not _is_tensor(gradOutput) or gradOutput.nElement() != self.output.nElement():
            self._fail('a gradOutput with %d elements' % self.output.nElement(), gradOutput)
        input_ = input
        if _is_tensor(_geti(self, '_input')):
            input = _geti(self, '_input')
        if not self.batchMode:
            input = _geti(self, '__input')
            if not _is_tensor(_geti(self, '__gradOutput')):
                self.__dict__['__gradOutput'] = gradOutput.new()
            self.__dict__['__gradOutput'].set(gradOutput).resize(*self.converter.output.size())
            gradOutput = self.__dict__['__gradOutput']
        gradInput = self.converter.updateGradInput(input, gradOutput)
        if not self.batchMode:
            if not _is_tensor(_geti(self, '__gradInput')):
                self.__dict__['__gradInput'] = gradInput.new()
            self.__dict__['__gradInput'].set(gradInput).resize(*input_.size())
            gradInput = self.__dict__['__gradInput']
        if _is_tensor(_geti(self, '_input')):
            if not _is_tensor(_geti(self, '_gradInput')):
                self._gradInput = input.new()
            self._gradInput.resize(*input.size()).copy(gradInput)
            self.gradInput = self._gradInput
        else:
            self.gradInput = gradInput
        return self.gradInput

    def accGradParameters(self, input, gradOutput, scale=1):
        if self.converter is None:
            return
        if self.batchMode and _is_tensor(_geti(self, '__input')):
            input = _geti(self, '__input')
        elif _is_tensor(_geti(self, '_input')):
            input = _geti(self, '_input')
        if self.batchMode and _is_tensor(_geti(self, '__gradOutput')):
            gradOutput = _geti(self, '__gradOutput')
        self.converter.accGradParameters(input, gradOutput, scale)

    def clearState(self):
        for f in ('_input', '_gradInput', '__input', '__output', '__gradInput', '__gradOutput'):
            self.__dict__.pop(f, None)
        return self

    def type(self, name=None, tensorCache=None):
        if name is None:
            return super().type()
        self.clearState()
        return super().type(name, tensorCache)

    def __tostring__(self):
        return self.__typename__
