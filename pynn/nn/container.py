"""Containers: Sequential, Concat, DepthConcat, ConcatTable, ParallelTable, Parallel.

Each mirrors Lua nn's data flow exactly (which tensor object is whose output, which
method of a child is called when), because optnet's analysis and sharing depend on it.
"""
import numpy as np

from ..storage import Storage
from ..tensor import Tensor
from .module import Module, ordinal, rethrow, describe


class Container(Module):
    """A module holding `modules` (a Python list; `get(i)` is 1-based as in Lua)."""

    def __init__(self, *modules):
        super().__init__()
        self.modules = []
        for m in modules:
            self.add(m)

    def add(self, module):
        if not isinstance(module, Module):
            raise TypeError('%s.add: expected an nn.Module, got %s' % (self.__typename__, type(module).__name__))
        self.modules.append(module)
        return self

    def get(self, index):
        return self.modules[index - 1]

    def size(self):
        return len(self.modules)

    def __len__(self):
        return len(self.modules)

    def _call(self, i, method, *args):
        """Call modules[i] (0-based here), prefixing any error with where it happened (Lua's rethrowErrors)."""
        m = self.modules[i]
        try:
            return getattr(m, method)(*args)
        except Exception as e:  # re-raised with the path, same type
            rethrow(e, 'In %s module of %s:' % (ordinal(i + 1), self.__typename__))

    def zeroGradParameters(self):
        for m in self.modules:
            m.zeroGradParameters()

    def updateParameters(self, learningRate):
        for m in self.modules:
            m.updateParameters(learningRate)

    def training(self):
        for m in self.modules:
            m.training()
        return super().training()

    def evaluate(self):
        for m in self.modules:
            m.evaluate()
        return super().evaluate()

    def share(self, other, *fields):
        for a, b in zip(self.modules, other.modules):
            a.share(b, *fields)
        return self

    def reset(self, stdv=None):
        for m in self.modules:
            m.reset(stdv)

    def parameters(self):
        w, gw = [], []
        for m in self.modules:
            p = m.parameters()
            if p:
                w.extend(p[0])
                gw.extend(p[1])
        return w, gw

    def clearState(self):
        # Fresh objects, not set(): the old tensors may be a child's output.
        for f in ('output', 'gradInput'):
            v = self.__dict__.get(f)
            if isinstance(v, Tensor):
                self.__dict__[f] = v.new()
            elif isinstance(v, list):
                self.__dict__[f] = []
        for m in self.modules:
            m.clearState()
        return self

    def __bool__(self):  # __len__ must not make an empty container falsy
        return True

    def _check_table_grad(self, i, input, g):
        """Lua's checks on a branch's gradInput for a table input."""
        if not isinstance(g, list):
            raise ValueError('%s: branch %d gradInput is not a table (got %s)'
                             % (self.__typename__, i + 1, describe(g)))
        if len(g) != len(input):
            raise ValueError('%s: table size mismatch: %d ~= %d' % (self.__typename__, len(input), len(g)))

    def _branches_str(self):
        s = self.__typename__ + ' {\n  input'
        n = len(self.modules)
        for i, m in enumerate(self.modules, 1):
            last = i == n
            pad = '       ' if last else '  |    '
            s += '\n  ' + ('   `-> ' if last else '  |`-> ') + '(%d): ' % i + \
                m.__tostring__().replace('\n', '\n  ' + pad)
        return s + '\n     ... -> output\n}'


class Sequential(Container):
    """Chains modules; its output/gradInput are its last/first child's tensor objects."""

    def add(self, module):
        super().add(module)
        if len(self.modules) == 1:
            self.gradInput = module.gradInput
        self.output = module.output
        return self

    def insert(self, module, index=None):
        """Insert module at 1-based index (default: the end); returns the container (Lua's
        returns nothing, so ported code is unaffected), so that calls chain as add's do."""
        if not isinstance(module, Module):
            raise TypeError('nn.Sequential.insert: expected an nn.Module, got %s' % type(module).__name__)
        index = len(self.modules) + 1 if index is None else index
        if not 1 <= index <= len(self.modules) + 1:
            raise IndexError('nn.Sequential.insert: index should be contiguous to existing modules '
                             '(1..%d), got %r' % (len(self.modules) + 1, index))
        self.modules.insert(index - 1, module)
        self.output = self.modules[-1].output
        self.gradInput = self.modules[0].gradInput
        return self

    def remove(self, index=None):
        """Remove the module at 1-based index (default: the last) and return it."""
        index = len(self.modules) if index is None else index
        if not 1 <= index <= len(self.modules):
            raise IndexError('nn.Sequential.remove: index out of range (1..%d), got %r'
                             % (len(self.modules), index))
        removed = self.modules.pop(index - 1)
        if self.modules:
            self.output = self.modules[-1].output
            self.gradInput = self.modules[0].gradInput
        else:
            self.output, self.gradInput = Tensor(), Tensor()
        return removed

    def updateOutput(self, input):
        cur = input
        for i in range(len(self.modules)):
            cur = self._call(i, 'updateOutput', cur)
        self.output = cur
        return cur

    def updateGradInput(self, input, gradOutput):
        cur = gradOutput
        for i in range(len(self.modules) - 1, 0, -1):
            cur = self._call(i, 'updateGradInput', self.modules[i - 1].output, cur)
        cur = self._call(0, 'updateGradInput', input, cur)
        self.gradInput = cur
        return cur

    def accGradParameters(self, input, gradOutput, scale=1):
        cur = gradOutput
        for i in range(len(self.modules) - 1, 0, -1):
            self._call(i, 'accGradParameters', self.modules[i - 1].output, cur, scale)
            cur = self.modules[i].gradInput
        self._call(0, 'accGradParameters', input, cur, scale)

    def backward(self, input, gradOutput, scale=1):
        cur = gradOutput
        for i in range(len(self.modules) - 1, 0, -1):
            cur = self._call(i, 'backward', self.modules[i - 1].output, cur, scale)
            self.modules[i].gradInput = cur
        cur = self._call(0, 'backward', input, cur, scale)
        self.gradInput = cur
        return cur

    def __tostring__(self):
        n = len(self.modules)
        s = 'nn.Sequential {\n  [input' + ''.join(' -> (%d)' % i for i in range(1, n + 1)) + ' -> output]'
        for i, m in enumerate(self.modules, 1):
            s += '\n  (%d): ' % i + m.__tostring__().replace('\n', '\n  ')
        return s + '\n}'


def _retable(t1, t2, f):
    """Lua's retable: make list t1 mirror nested list t2, applying f(t1, k, v) at leaves."""
    for k, v in enumerate(t2):
        if isinstance(v, list):
            if k >= len(t1) or not isinstance(t1[k], list):
                _set(t1, k, [])
            _retable(t1[k], v, f)
        else:
            f(t1, k, v)
    del t1[len(t2):]
    return t1


def _set(t, k, v):
    if k < len(t):
        t[k] = v
    else:
        t.append(v)


def _first(t, k, v):
    if k >= len(t) or not isinstance(t[k], Tensor):
        _set(t, k, v.clone())
    t[k].resize(*v.size()).copy(v)


def _accumulate(t, k, v):
    if k < len(t) and isinstance(t[k], Tensor):
        t[k].add(v)
    else:
        _set(t, k, v.clone())


class Concat(Container):
    """Applies each module to the same input and joins outputs along `dimension` (1-based)."""

    def __init__(self, dimension, *modules):
        super().__init__(*modules)
        self.outputSize = Storage(0, np.int64)
        self.dimension = dimension

    def _check_out(self, i, out, first):
        d = self.dimension
        if not isinstance(out, Tensor) or out.dim() < d:
            raise ValueError('%s: branch %d gave %s, expected a tensor with at least %d dims'
                             % (self.__typename__, i + 1, describe(out), d))
        if first is not None:
            a = out.size()[:d - 1] + out.size()[d:]
            b = first.size()[:d - 1] + first.size()[d:]
            if len(a) != len(b) or (a != b and self.__typename__ == 'nn.Concat'):
                raise ValueError('%s: branch %d output %s does not match branch 1 output %s except in dim %d'
                                 % (self.__typename__, i + 1, describe(out), describe(first), d))

    def _output_size(self, outs):
        d = self.dimension - 1
        size = list(outs[0].size())
        for o in outs[1:]:
            size[d] += o.size(self.dimension)
        return size

    def updateOutput(self, input):
        outs = []
        for i in range(len(self.modules)):
            out = self._call(i, 'updateOutput', input)
            self._check_out(i, out, outs[0] if outs else None)
            outs.append(out)
        size = self._output_size(outs)
        if self.outputSize is None:   # files of older nn versions: Lua makes it here too
            self.outputSize = Storage(0, np.int64)
        self.outputSize.resize(len(size))
        if self.outputSize.data is not None:
            self.outputSize.data[:] = size
        self.output.resize(*size)
        self._fill_output(outs)
        return self.output

    def _fill_output(self, outs):
        offset = 1
        for out in outs:
            n = out.size(self.dimension)
            self._window(self.output, out, offset).copy(out)
            offset += n

    def _window(self, t, out, offset):
        return t.narrow(self.dimension, offset, out.size(self.dimension))

    def _backward(self, method, input, gradOutput, scale=1):
        args = (scale,) if method != 'updateGradInput' else ()
        if isinstance(input, list):
            was_table = isinstance(self.gradInput, list)
            offset = 1
            for i, m in enumerate(self.modules):
                g = self._call(i, method, input, self._window(gradOutput, m.output, offset), *args)
                self._check_table_grad(i, input, g)
                if i == 0:
                    self.gradInput = self.gradInput if was_table else []
                    _retable(self.gradInput, g, _first)
                else:
                    _retable(self.gradInput, g, _accumulate)
                offset += m.output.size(self.dimension)
            return self.gradInput
        if isinstance(self.gradInput, list):
            self.gradInput = input.clone()
        else:
            self.gradInput.resizeAs(input)
        offset = 1
        for i, m in enumerate(self.modules):
            g = self._call(i, method, input, self._window(gradOutput, m.output, offset), *args)
            if g is not None:
                if i == 0:
                    self.gradInput.copy(g)
                else:
                    self.gradInput.add(g)
            offset += m.output.size(self.dimension)
        return self.gradInput

    def updateGradInput(self, input, gradOutput):
        return self._backward('updateGradInput', input, gradOutput)

    def backward(self, input, gradOutput, scale=1):
        return self._backward('backward', input, gradOutput, scale)

    def accGradParameters(self, input, gradOutput, scale=1):
        offset = 1
        for i, m in enumerate(self.modules):
            self._call(i, 'accGradParameters', input, self._window(gradOutput, m.output, offset), scale)
            offset += m.output.size(self.dimension)

    def __tostring__(self):
        return self._branches_str()


class DepthConcat(Concat):
    """Concat that zero-pads smaller outputs (centred) to the largest spatial size."""

    def _output_size(self, outs):
        size = list(outs[0].size())
        d = self.dimension - 1
        for o in outs[1:]:
            size[d] += o.size(self.dimension)
            for k in range(len(size)):
                if k != d:
                    size[k] = max(size[k], o.size(k + 1))
        return size

    def _fill_output(self, outs):
        self.output.zero()  # zero for padding
        super()._fill_output(outs)

    def _window(self, t, out, offset):
        w = t.narrow(self.dimension, offset, out.size(self.dimension))
        for k in range(1, t.dim() + 1):
            cur = out.size(k)
            if k != self.dimension and t.size(k) != cur:
                w = w.narrow(k, (t.size(k) - cur) // 2 + 1, cur)
        return w

    def _backward(self, method, input, gradOutput, scale=1):
        # Lua's DepthConcat: tensor inputs only; its backward calls children's backward without scale
        args = ()
        self.gradInput.resizeAs(input)
        offset = 1
        for i, m in enumerate(self.modules):
            g = self._call(i, method, input, self._window(gradOutput, m.output, offset), *args)
            if i == 0:
                self.gradInput.copy(g)
            else:
                self.gradInput.add(g)
            offset += m.output.size(self.dimension)
        return self.gradInput


class ConcatTable(Container):
    """Applies each module to the same input; output is the list of their outputs."""

    def __init__(self, *modules):
        super().__init__(*modules)
        self.output = []

    def updateOutput(self, input):
        for i in range(len(self.modules)):
            _set(self.output, i, self._call(i, 'updateOutput', input))
        del self.output[len(self.modules):]
        return self.output

    def _backward(self, method, input, gradOutput, scale=1):
        args = (scale,) if method != 'updateGradInput' else ()
        if not isinstance(gradOutput, list) or len(gradOutput) < len(self.modules):
            raise ValueError('%s: expected gradOutput as a table of %d, got %s'
                             % (self.__typename__, len(self.modules), describe(gradOutput)))
        if isinstance(input, list):
            was_table = isinstance(self.gradInput, list)
            for i in range(len(self.modules)):
                g = self._call(i, method, input, gradOutput[i], *args)
                self._check_table_grad(i, input, g)
                if i == 0:
                    self.gradInput = self.gradInput if was_table else []
                    _retable(self.gradInput, g, _first)
                else:
                    _retable(self.gradInput, g, _accumulate)
            return self.gradInput
        if isinstance(self.gradInput, list):
            self.gradInput = input.clone()
        for i in range(len(self.modules)):
            g = self._call(i, method, input, gradOutput[i], *args)
            if i == 0:
                self.gradInput.resize(*g.size()).copy(g)
            else:
                self.gradInput.add(g)
        return self.gradInput

    def updateGradInput(self, input, gradOutput):
        return self._backward('updateGradInput', input, gradOutput)

    def backward(self, input, gradOutput, scale=1):
        return self._backward('backward', input, gradOutput, scale)

    def accGradParameters(self, input, gradOutput, scale=1):
        for i in range(len(self.modules)):
            self._call(i, 'accGradParameters', input, gradOutput[i], scale)

    def __tostring__(self):
        return self._branches_str()


class ParallelTable(Container):
    """Applies the i-th module to the i-th element of the input table."""

    def __init__(self, *modules):
        super().__init__(*modules)
        self.output = []
        self.gradInput = []

    def _check(self, input):
        if not isinstance(input, list) or len(input) < len(self.modules):
            raise ValueError('%s: expected a table of %d inputs, got %s'
                             % (self.__typename__, len(self.modules), describe(input)))

    def updateOutput(self, input):
        self._check(input)
        for i in range(len(self.modules)):
            _set(self.output, i, self._call(i, 'updateOutput', input[i]))
        return self.output

    def _check_grad(self, gradOutput):
        if not isinstance(gradOutput, list) or len(gradOutput) < len(self.modules):
            raise ValueError('%s: expected gradOutput as a table of %d, got %s'
                             % (self.__typename__, len(self.modules), describe(gradOutput)))

    def updateGradInput(self, input, gradOutput):
        self._check(input)
        self._check_grad(gradOutput)
        for i in range(len(self.modules)):
            _set(self.gradInput, i, self._call(i, 'updateGradInput', input[i], gradOutput[i]))
        return self.gradInput

    def accGradParameters(self, input, gradOutput, scale=1):
        self._check(input)
        self._check_grad(gradOutput)
        for i in range(len(self.modules)):
            self._call(i, 'accGradParameters', input[i], gradOutput[i], scale)

    def __tostring__(self):
        return self._branches_str()


class Parallel(Container):
    """Module i gets input:select(inputDimension, i); outputs join along outputDimension."""

    def __init__(self, inputDimension, outputDimension, *modules):
        super().__init__(*modules)
        self.inputDimension = inputDimension
        self.outputDimension = outputDimension

    def updateOutput(self, input):
        if not isinstance(input, Tensor) or input.dim() < self.inputDimension or \
                input.size(self.inputDimension) > len(self.modules):
            self._fail('a tensor whose dim %d has at most %d slices' % (self.inputDimension, len(self.modules)),
                       input)
        n = input.size(self.inputDimension)
        outs = [self._call(i, 'updateOutput', input.select(self.inputDimension, i + 1)) for i in range(n)]
        size = list(outs[0].size())
        for o in outs[1:]:
            size[self.outputDimension - 1] += o.size(self.outputDimension)
        self.totalOutputSize = Storage(size, np.int64)
        self.output.resize(*size)
        offset = 1
        for o in outs:
            k = o.size(self.outputDimension)
            self.output.narrow(self.outputDimension, offset, k).copy(o)
            offset += k
        return self.output

    def updateGradInput(self, input, gradOutput):
        self.gradInput.resizeAs(input)
        offset = 1
        for i in range(input.size(self.inputDimension)):
            k = self.modules[i].output.size(self.outputDimension)
            g = self._call(i, 'updateGradInput', input.select(self.inputDimension, i + 1),
                           gradOutput.narrow(self.outputDimension, offset, k))
            self.gradInput.select(self.inputDimension, i + 1).copy(g)
            offset += k
        return self.gradInput

    def accGradParameters(self, input, gradOutput, scale=1):
        offset = 1
        for i in range(input.size(self.inputDimension)):
            k = self.modules[i].output.size(self.outputDimension)
            self._call(i, 'accGradParameters', input.select(self.inputDimension, i + 1),
                       gradOutput.narrow(self.outputDimension, offset, k), scale)
            offset += k

    def __tostring__(self):
        return self._branches_str()


# The rest of the container family (they import Container from here).
from .container_decorators import (Decorator, Bottle, MapTable, WeightNorm, GPU, DontCast, NaN,  # noqa: E402,F401
                                   Profile, PrintSize, CriterionTable)
from .container_criteria import ParallelCriterion, MultiCriterion, ModuleCriterion  # noqa: E402,F401
