"""Table family, second part: CDivTable, CMaxTable, CMinTable, CAddTensorTable, SplitTable,
MixtureTable, ZipTable, ZipTableOneToMany, Index, MaskedSelect (CosineDistance, DotProduct, MM,
MV are in table_math.py). Imported by table.py (nn exports them from there). Lua tables are Python lists;
dims and indices stay 1-based."""
import numbers

import numpy as np

from .. import backend
from ..storage import Storage
from ..tensor import Tensor
from .module import Module, clear
from .table import _is_table, _set, _fmt, _tensor_table, _recursive_resize_as
from .shape_ops import index_add


def _xp(a):
    return backend.array_module(a)


def _new_list_entry(gi, i, proto):
    if i >= len(gi) or not isinstance(gi[i], Tensor):
        _set(gi, i, proto.new())
    return gi[i]


def _two_tensors(self, input, what='a table of two tensors'):
    if not _is_table(input) or len(input) < 2 or not isinstance(input[0], Tensor) \
            or not isinstance(input[1], Tensor):
        self._fail(what, input)
    return input[0], input[1]


def _grad_tensor(self, gradOutput, size):
    if not isinstance(gradOutput, Tensor) or gradOutput.nElement() != _numel(size):
        self._fail('gradOutput of size %s' % _fmt(size), gradOutput)


def _numel(size):
    n = 1
    for s in size:
        n *= int(s)
    return n if size else 0


class CDivTable(Module):
    """output = input[1] / input[2] (element-wise)."""

    def __init__(self):
        super().__init__()
        self.gradInput = []

    def _check(self, input):
        _tensor_table(self, input, 2)
        if input[0].nElement() != input[1].nElement():
            self._fail('two tensors with the same number of elements', input)

    def updateOutput(self, input):
        self._check(input)
        self.output.resizeAs(input[0])
        if self.output.is_meta():
            return self.output
        out = self.output.numpy()
        _xp(out).divide(input[0].numpy(), input[1].numpy().reshape(out.shape), out=out)
        return self.output

    def updateGradInput(self, input, gradOutput):
        self._check(input)
        _grad_tensor(self, gradOutput, input[0].size())
        gi = self.gradInput
        g1 = _new_list_entry(gi, 0, input[0])
        g2 = _new_list_entry(gi, 1, input[0])
        g1.resizeAs(input[0])
        g2.resizeAs(input[1])
        del gi[len(input):]
        if g1.is_meta():
            return gi
        a1, a2 = g1.numpy(), g2.numpy()
        xp = _xp(a1)
        xp.divide(gradOutput.numpy().reshape(a1.shape), input[1].numpy().reshape(a1.shape), out=a1)
        xp.divide(a1.reshape(a2.shape), input[1].numpy(), out=a2)
        xp.negative(a2, out=a2)
        xp.multiply(a2, input[0].numpy().reshape(a2.shape), out=a2)
        return gi


class _CExtremumTable(Module):
    """Shared code of CMaxTable / CMinTable: output[j] = extremum over the table; idx holds
    (as the module's tensor type) the 1-based table index that won, the first on ties."""
    _idx = _vals = None
    _strict = None  # numpy comparison: greater / less

    def __init__(self):
        super().__init__()
        self.gradInput = []
        self.__dict__[self._idx] = Tensor()
        self.mask = Tensor()
        self.__dict__[self._vals] = Tensor()
        self.gradMaxVals = Tensor()

    def _check(self, input):
        _tensor_table(self, input)
        for i, t in enumerate(input[1:], 2):
            if t.size() != input[0].size():
                self._fail('tensors of the same size (input[%d] is %s, input[1] is %s)'
                           % (i, _fmt(t.size()), _fmt(input[0].size())), input)

    def _byte_mask(self):
        if not isinstance(self.__dict__.get('maskByteTensor'), Tensor):
            dev = self.output.device
            self.maskByteTensor = Tensor(kind='Byte', device=dev if dev != 'cuda' else 'cuda')
        return self.maskByteTensor

    def updateOutput(self, input):
        self._check(input)
        idx, vals = self.__dict__[self._idx], self.__dict__[self._vals]
        self.output.resizeAs(input[0])
        idx.resizeAs(input[0])
        meta = self.output.is_meta()
        if not meta:
            self.output.copy(input[0])
            idx.fill(1)
        for i in range(2, len(input) + 1):
            mb = self._byte_mask()
            self.mask.resizeAs(input[i - 1])
            mb.resize(*self.mask.size())
            if meta:
                continue
            out, x = self.output.numpy(), input[i - 1].numpy()
            m = self.mask.numpy()
            getattr(_xp(out), self._strict)(x, out, out=m)
            mb.copy(self.mask)
            sel = mb.numpy().astype(bool)
            idx.numpy()[sel] = i
            vals.resize(int(sel.sum()))
            if vals.nElement():
                vals.numpy()[...] = x[sel]
                out[sel] = vals.numpy()
        return self.output

    def updateGradInput(self, input, gradOutput):
        self._check(input)
        _grad_tensor(self, gradOutput, input[0].size())
        idx = self.__dict__[self._idx]
        gi = self.gradInput
        for i in range(1, len(input) + 1):
            g = _new_list_entry(gi, i - 1, input[i - 1])
            g.resizeAs(input[i - 1])
            mb = self._byte_mask()
            self.mask.resizeAs(idx)
            mb.resize(*self.mask.size())
            if g.is_meta():
                continue
            g.zero()
            m = self.mask.numpy()
            m[...] = idx.numpy() == i
            mb.copy(self.mask)
            sel = mb.numpy().astype(bool)
            self.gradMaxVals.resize(int(sel.sum()))
            if self.gradMaxVals.nElement():
                self.gradMaxVals.numpy()[...] = gradOutput.numpy().reshape(sel.shape)[sel]
                g.numpy()[sel] = self.gradMaxVals.numpy()
        del gi[len(input):]
        return gi


class CMaxTable(_CExtremumTable):
    """output = element-wise maximum of the input table's tensors; the gradient goes to the
    (first) maximal entry."""
    _idx, _vals, _strict = 'maxIdx', 'maxVals', 'greater'


class CMinTable(_CExtremumTable):
    """output = element-wise minimum of the input table's tensors."""
    _idx, _vals, _strict = 'minIdx', 'minVals', 'less'


class CAddTensorTable(Module):
    """input = {v, {t1, ..., tn}}: output = {t1 + v, ..., tn + v} (fresh tensors each call)."""

    def __init__(self):
        super().__init__()
        self.gradInput = []

    def _check(self, input):
        if not _is_table(input) or len(input) < 2 or not isinstance(input[0], Tensor) \
                or not _is_table(input[1]) or not all(isinstance(t, Tensor) for t in input[1]):
            self._fail('a table {tensor, table of tensors}', input)
        n = input[0].nElement()
        for i, t in enumerate(input[1], 1):
            if t.nElement() != n:
                self._fail('input[2][%d] with %d elements like input[1]' % (i, n), input)

    def updateOutput(self, input):
        self._check(input)
        v = input[0]
        out = []
        for t in input[1]:
            o = v.new().resizeAs(v)
            if not o.is_meta():
                a = o.numpy()
                _xp(a).add(t.numpy().reshape(a.shape), v.numpy(), out=a)
            out.append(o)
        self.output = out
        return self.output

    def updateGradInput(self, input, gradOutput):
        self._check(input)
        v, ts = input[0], input[1]
        if not _is_table(gradOutput) or len(gradOutput) < len(ts) or len(ts) < 1 or \
                not all(isinstance(g, Tensor) and g.nElement() == v.nElement() for g in gradOutput[:len(ts)]):
            self._fail('gradOutput as a table of %d tensors of %d elements' % (len(ts), v.nElement()),
                       gradOutput)
        gi = self.gradInput
        g1 = _new_list_entry(gi, 0, v)
        g1.resizeAs(v)
        if len(gi) < 2 or not isinstance(gi[1], list):
            _set(gi, 1, [])
        g2 = gi[1]
        for i in range(len(ts)):
            _new_list_entry(g2, i, v).resizeAs(v)
        del g2[len(ts):]
        if g1.is_meta():
            return gi
        a = g1.numpy()
        a[...] = gradOutput[0].numpy().reshape(a.shape)
        for g in gradOutput[1:len(ts)]:
            a += g.numpy().reshape(a.shape)
        for i in range(len(ts)):
            g2[i].copy(gradOutput[i])
        return gi


class SplitTable(Module):
    """output = {input:select(dim, 1), ..., input:select(dim, n)} (views of the input)."""

    def __init__(self, dimension, nInputDims=None):
        super().__init__()
        self.dimension = dimension
        self.nInputDims = nInputDims

    def _getPositiveDimension(self, input):
        if not isinstance(input, Tensor) or input.dim() == 0:
            self._fail('a non-empty tensor', input)
        d = self.dimension
        if d < 0:
            d = input.dim() + d + 1
        elif self.nInputDims is not None and input.dim() == self.nInputDims + 1:
            d = d + 1
        if not 1 <= d <= input.dim():
            self._fail('a tensor with at least %d dimensions' % max(d, abs(self.dimension)), input)
        return d

    def updateOutput(self, input):
        d = self._getPositiveDimension(input)
        if input.dim() == 1:  # Lua's select on a vector gives numbers
            self.output = [] if input.is_meta() else [float(v) for v in input.numpy().tolist()]
        else:
            self.output = [input.select(d, i) for i in range(1, input.size(d) + 1)]
        return self.output

    def updateGradInput(self, input, gradOutput):
        d = self._getPositiveDimension(input)
        n = input.size(d)
        k = input.nElement() // n if n else 0
        ok = lambda g: (isinstance(g, Tensor) and g.nElement() == k) or \
            (input.dim() == 1 and isinstance(g, numbers.Real))  # noqa: E731
        if not _is_table(gradOutput) or len(gradOutput) < n or not all(ok(g) for g in gradOutput[:n]):
            self._fail('gradOutput as a table of %d %s' % (n, 'numbers' if input.dim() == 1 else
                                                          'tensors of %d elements' % k), gradOutput)
        if self.gradInput is not None:
            self.gradInput.resizeAs(input)
            if self.gradInput.is_meta():
                return self.gradInput
            if input.dim() == 1:
                g = self.gradInput.numpy()
                for i, v in enumerate(gradOutput[:n]):
                    g[i] = v if isinstance(v, numbers.Real) else v.numpy().reshape(-1)[0]
                return self.gradInput
            for i in range(1, n + 1):
                self.gradInput.select(d, i).copy(gradOutput[i - 1])
        return self.gradInput


class MixtureTable(Module):
    """input = {gater, experts}: output = sum_i gater[., i] * expert_i, with experts a table of
    tensors or one tensor holding the experts along `dim` (default 2 in batch mode, else 1)."""

    def __init__(self, dim=None):
        super().__init__()
        self.dim = dim
        self.size = Storage(0, np.int64)
        self.batchSize = 0
        self.size2 = Storage(0, np.int64)
        self.backwardSetup = False
        self.gradInput = []

    def _check(self, input):
        if not _is_table(input) or len(input) < 2 or not isinstance(input[0], Tensor) or \
                not (isinstance(input[1], Tensor) or (_is_table(input[1]) and input[1] and
                                                      all(isinstance(t, Tensor) for t in input[1]))):
            self._fail('a table {gater, experts (a tensor or a table of tensors)}', input)
        gater, experts = input[0], input[1]
        if gater.dim() not in (1, 2):
            self._fail('a 1D or 2D (batch) gater', input)
        dimG = 2 if gater.dim() == 2 else 1
        dim = self.dim if self.dim is not None else dimG
        if _is_table(experts) or self.table:
            if not _is_table(experts):
                self._fail('experts as a table (as in the first call)', input)
            if gater.size(dimG) != len(experts):
                self._fail('one gater output per expert (%d experts, gater is %s)'
                           % (len(experts), _fmt(gater.size())), input)
            e0 = experts[0]
            for i, e in enumerate(experts, 1):
                if e.size() != e0.size():
                    self._fail('experts of the same size', input)
            if not 1 <= dim <= e0.dim() + 1 or (dimG == 2 and e0.size(1) != gater.size(1)):
                self._fail('experts of %s matching the gater %s (dim %d)'
                           % (_fmt(e0.size()), _fmt(gater.size()), dim), input)
        else:
            if not 1 <= dim <= experts.dim() or experts.size(dim) != gater.size(dimG) or \
                    (dimG == 2 and experts.size(1) != gater.size(1)):
                self._fail('experts tensor whose dim %d holds the %d gater outputs'
                           % (dim, gater.size(dimG)), input)
        if not gater.isContiguous():
            self._fail('a contiguous gater', input)

    def _views(self, input):
        for f in ('_gaterView', '_expert', '_expertView'):
            if not isinstance(self.__dict__.get(f), Tensor):
                self.__dict__[f] = input[0].new()

    def updateOutput(self, input):
        self._check(input)
        gater, experts = input[0], input[1]
        self._views(input)
        self.dimG = 2
        batchSize = gater.size(1)
        if gater.dim() < 2:
            self.dimG = 1
            self.dim = self.dim or 1
            batchSize = 1
        self.dim = self.dim or 2
        dim, dimG = self.dim, self.dimG
        if self.table or _is_table(experts):
            self.table = True
            e0 = experts[0]
            size = [1] * (e0.dim() + 1)
            if dimG > 1:
                size[0] = gater.size(1)
            size[dim - 1] = gater.size(dimG)
            self.size.resize(len(size))
            if self.size.data is not None:
                self.size.data[:] = size
            self.output.resizeAs(e0)
            self.batchSize = batchSize
            self._gaterView.set(gater.view(*size))
            if self.output.is_meta():
                return self.output
            out = self.output.numpy()
            xp = _xp(out)
            out.fill(0)
            gv = self._gaterView.numpy()
            for i, e in enumerate(experts):
                gate = xp.take(gv, [i], axis=dim - 1).reshape(gv.shape[:dim - 1] + gv.shape[dim:])
                out += e.numpy() * gate
        else:
            size = [1] * experts.dim()
            if dimG > 1:
                size[0] = gater.size(1)
            size[dim - 1] = gater.size(dimG)
            self.size.resize(len(size))
            if self.size.data is not None:
                self.size.data[:] = size
            osize = experts.size()[:dim - 1] + experts.size()[dim:]
            self.output.resize(*osize)
            self.batchSize = batchSize
            self._gaterView.set(gater.view(*size))
            self._expert.resizeAs(experts)
            if self.output.is_meta():
                return self.output
            ex = self._expert.numpy()
            xp = _xp(ex)
            xp.multiply(self._gaterView.numpy(), experts.numpy(), out=ex)
            xp.sum(ex, axis=dim - 1, out=self.output.numpy())
        return self.output

    def updateGradInput(self, input, gradOutput):
        self._check(input)
        gater, experts = input[0], input[1]
        if not isinstance(self._gaterView, Tensor) or self.dimG is None:
            self._fail('a forward before the backward', input)
        if not isinstance(gradOutput, Tensor) or gradOutput.size() != self.output.size():
            self._fail('gradOutput of size %s' % _fmt(self.output.size()), gradOutput)
        self.gradInput = _recursive_resize_as(self.gradInput, input)
        ggi, egi = self.gradInput[0], self.gradInput[1]
        for f in ('_sum', '_expertView2', '_expert2'):
            if not isinstance(self.__dict__.get(f), Tensor):
                self.__dict__[f] = input[0].new()
        dim, dimG = self.dim, self.dimG
        meta = ggi.is_meta()
        if self.table:
            for i, e in enumerate(experts):
                _new_list_entry(egi, i, e).resizeAs(e)
            ggi.resizeAs(gater)
            del egi[len(experts):]
            self._expert.resizeAs(gradOutput)
            self._sum.resize(*((gradOutput.size(1), 1) if dimG == 2 else (1,)))
            if meta:
                return self.gradInput
            go = gradOutput.numpy()
            xp = _xp(go)
            ex = self._expert.numpy()
            gg = ggi.numpy()
            gv = self._gaterView.numpy()
            sm = self._sum.numpy()
            for i, e in enumerate(experts):
                xp.multiply(go, e.numpy(), out=ex)
                if dimG == 1:
                    self._expertView.set(self._expert.view(-1))
                    xp.sum(self._expertView.numpy(), axis=0, keepdims=True, out=sm)
                    gg[i] = sm[0]
                else:
                    self._expertView.set(self._expert.view(gradOutput.size(1), -1))
                    xp.sum(self._expertView.numpy(), axis=1, keepdims=True, out=sm)
                    gg[:, i] = sm[:, 0]
                gate = xp.take(gv, [i], axis=dim - 1).reshape(gv.shape[:dim - 1] + gv.shape[dim:])
                xp.multiply(gate, go, out=egi[i].numpy())
        else:
            size2 = list(experts.size())
            size2[dim - 1] = 1
            self.size2.resize(len(size2))
            if self.size2.data is not None:
                self.size2.data[:] = size2
            ggi.resizeAs(gater)
            self._expertView.set(gradOutput.contiguous().view(*size2))
            self._expert.resizeAs(experts)
            tsize = list(experts.size())
            tsize[dim - 1], tsize[dimG - 1] = tsize[dimG - 1], tsize[dim - 1]
            if dim != dimG:
                self._expert2.resize(*tsize)
            if meta:
                return self.gradInput
            gob = self._expertView.numpy()  # broadcasts like expandAs(experts)
            xp = _xp(gob)
            ex = self._expert.numpy()
            xp.multiply(gob, experts.numpy(), out=ex)
            expert = xp.swapaxes(ex, dim - 1, dimG - 1)
            if dim != dimG:
                e2 = self._expert2.numpy()
                e2[...] = expert
                expert = e2
            lead = (gater.size(1), -1) if dimG == 1 else (gater.size(1), gater.size(2), -1)
            view = expert.reshape(lead)
            gg = ggi.numpy()
            xp.sum(view, axis=dimG, out=gg.reshape(gg.shape))
            xp.multiply(self._gaterView.numpy(), gob, out=egi.numpy())
        return self.gradInput

    def type(self, name=None, tensorCache=None):
        if name is None:
            return super().type()
        for f in ('_gaterView', '_expert', '_expertView', '_sum', '_expert2', '_expertView2'):
            self.__dict__.pop(f, None)
        return super().type(name, tensorCache)

    def clearState(self):
        clear(self, '_gaterView', '_expert', '_expertView', '_sum', '_expert2', '_expertView2')
        return super().clearState()


class ZipTable(Module):
    """{{a1, a2}, {b1, b2}} -> {{a1, b1}, {a2, b2}} (the objects themselves)."""

    def __init__(self):
        super().__init__()
        self.output = []
        self.gradInput = []

    @staticmethod
    def _zip(self, tables, what):
        if not _is_table(tables) or not all(_is_table(t) for t in tables):
            self._fail('%s as a table of tables' % what, tables)
        out = []
        for i, t in enumerate(tables):
            for j, x in enumerate(t):
                if x is None:
                    break
                if j >= len(out):
                    out.append([])
                _set(out[j], i, x)
        return out

    def updateOutput(self, input):
        self.output = self._zip(self, input, 'input')
        return self.output

    def updateGradInput(self, input, gradOutput):
        self.gradInput = self._zip(self, gradOutput, 'gradOutput')
        return self.gradInput


class ZipTableOneToMany(Module):
    """{v, {a, b, c}} -> {{v, a}, {v, b}, {v, c}}; gradInput[1] (`gradInputEl`) sums the
    gradients of v."""

    def __init__(self):
        super().__init__()
        self.output = []
        self.gradInput = []
        self.gradInputEl = Tensor()

    def _check(self, input):
        if not _is_table(input) or len(input) != 2 or not _is_table(input[1]):
            self._fail('a table of an element and a table (input must be table of element and table)',
                       input)

    def updateOutput(self, input):
        self._check(input)
        self.output = [[input[0], v] for v in input[1]]
        return self.output

    def updateGradInput(self, input, gradOutput):
        self._check(input)
        el = input[0]
        if not isinstance(el, Tensor):
            self._fail('a tensor as input[1]', input)
        if not _is_table(gradOutput) or not all(
                _is_table(g) and len(g) >= 2 and isinstance(g[0], Tensor) and
                g[0].nElement() == el.nElement() for g in gradOutput):
            self._fail('gradOutput as a table of {gradient of input[1], gradient}', gradOutput)
        if not isinstance(self.gradInputEl, Tensor) or self.gradInputEl.type() != el.type():
            self.gradInputEl = el.new()
        self.gradInputEl.resizeAs(el)
        if not self.gradInputEl.is_meta():
            a = self.gradInputEl.numpy()
            a.fill(0)
            for g in gradOutput:
                a += g[0].numpy().reshape(a.shape)
        self.gradInput = [self.gradInputEl, [g[1] for g in gradOutput]]
        return self.gradInput


class Index(Module):
    """input = {t, index (LongTensor)}: output = t:index(dimension, index); gradInput =
    {indexAdd of gradOutput, zeros like index}."""

    def __init__(self, dimension):
        super().__init__()
        self.dimension = dimension
        self.gradInput = [self.gradInput, self.gradInput.new()]

    def _check(self, input):
        t, index = _two_tensors(self, input, 'a table {tensor, LongTensor index}')
        if index.type() not in ('torch.LongTensor', 'torch.CudaLongTensor', 'torch.MetaLongTensor') \
                or index.dim() != 1:
            self._fail('a 1D LongTensor index as input[2]', input)
        d = self.dimension
        if not isinstance(d, numbers.Integral) or not 1 <= d <= t.dim():
            self._fail('a tensor with at least %s dimensions' % (d,), input)
        if not index.is_meta() and index.nElement():
            ix = index.numpy()
            if int(ix.min()) < 1 or int(ix.max()) > t.size(d):
                self._fail('indices in 1..%d' % t.size(d), input)
        return t, index, d

    def updateOutput(self, input):
        t, index, d = self._check(input)
        size = list(t.size())
        size[d - 1] = index.nElement()
        if self.output.type() != t.type():
            self.output = t.new()
        self.output.resize(*size)
        if self.output.is_meta() or not index.nElement():
            return self.output
        out = self.output.numpy()
        _xp(out).take(t.numpy(), index.numpy() - 1, axis=d - 1, out=out)
        return self.output

    def updateGradInput(self, input, gradOutput):
        t, index, d = self._check(input)
        size = list(t.size())
        size[d - 1] = index.nElement()
        if not isinstance(gradOutput, Tensor) or gradOutput.nElement() != _numel(size):
            self._fail('gradOutput of size %s' % _fmt(size), gradOutput)
        gi = self.gradInput
        gi[1].resize(*index.size())
        g = gi[0]
        g.resizeAs(t)
        if g.is_meta():
            return gi
        gi[1].zero()
        g.zero()
        if index.nElement():
            a = g.numpy()
            xp = _xp(a)
            idx = (slice(None),) * (d - 1) + (index.numpy() - 1,)
            index_add(xp, a, idx, gradOutput.numpy().reshape(size))
        return gi

    def clearState(self):
        self.gradInput[0].set()
        self.gradInput[1].set()
        self.output.set()
        return self


class MaskedSelect(Module):
    """input = {t, mask (ByteTensor)}: output = the elements of t where mask is 1 (a 1D
    tensor, row-major order); gradInput = {gradOutput scattered back, zeros like mask}."""

    def __init__(self):
        super().__init__()
        self._maskIndices = Tensor(kind='Long')
        self._maskIndexBuffer = Tensor(kind='Long')
        self._maskIndexBufferCPU = Tensor(kind='Float')
        self._gradBuffer = Tensor()
        self._gradMask = Tensor(kind='Byte')

    def _check(self, input):
        t, mask = _two_tensors(self, input, 'a table {tensor, ByteTensor mask}')
        if mask.dtype != np.uint8:
            self._fail('a ByteTensor mask as input[2]', input)
        if mask.nElement() != t.nElement():
            self._fail('a mask with as many elements as the tensor (%d)' % t.nElement(), input)
        return t, mask

    def updateOutput(self, input):
        t, mask = self._check(input)
        if self.output.type() != t.type():
            self.output = t.new()
        if mask.is_meta() or t.is_meta():
            self._fail('real (not meta) tensors: the output size depends on the mask values', input)
        sel = mask.numpy().reshape(t.numpy().shape).astype(bool)
        n = int(sel.sum())
        self.output.resize(n)
        if n:
            self.output.numpy()[...] = t.numpy()[sel]
        return self.output

    def updateGradInput(self, input, gradOutput):
        t, mask = self._check(input)
        if mask.is_meta():
            self._fail('real (not meta) tensors: the gradient depends on the mask values', input)
        m = mask.numpy().astype(bool)
        n = int(m.sum())
        if not isinstance(gradOutput, Tensor) or gradOutput.nElement() != n:
            self._fail('gradOutput with %d elements' % n, gradOutput)
        N = mask.nElement()
        if self._maskIndexBuffer.device == 'cuda':
            self._maskIndexBufferCPU.resize(*mask.size())
            self._maskIndexBufferCPU.numpy()[...] = np.arange(1, N + 1, dtype=np.float32).reshape(m.shape)
        self._maskIndexBuffer.resize(*mask.size())
        mib = self._maskIndexBuffer.numpy()
        xp = _xp(mib)
        mib[...] = xp.arange(1, N + 1, dtype=mib.dtype).reshape(mib.shape)
        self._maskIndices.resize(n)
        if n:
            self._maskIndices.numpy()[...] = mib[xp.asarray(m)]
        if self._gradBuffer.type() != t.type():
            self._gradBuffer = t.new()
        self._gradBuffer.resize(t.nElement()).zero()
        if n:
            gb = self._gradBuffer.numpy()
            gb[self._maskIndices.numpy() - 1] = gradOutput.numpy().reshape(-1)
        self._gradBuffer.resize(*t.size())
        self._gradMask.resize(*mask.size()).fill(0)
        self.gradInput = [self._gradBuffer, self._gradMask]
        return self.gradInput

    def type(self, name=None, tensorCache=None):
        if name is None:
            return self._type
        from .module import recursive_type
        cache = {} if tensorCache is None else tensorCache
        self._gradBuffer = recursive_type(self._gradBuffer, name, cache)
        self.gradInput = recursive_type(self.gradInput, name, cache)
        self.output = recursive_type(self.output, name, cache)
        if backend.parse_typename(name)[1] != 'cuda':
            self._maskIndexBuffer = self._maskIndexBuffer.long()
            self._maskIndices = self._maskIndices.long()
            self._gradMask = self._gradMask.byte()
        else:
            self._maskIndexBuffer = self._maskIndexBuffer.type('torch.CudaLongTensor')
            self._maskIndices = self._maskIndices.type('torch.CudaLongTensor')
            self._gradMask = self._gradMask.cuda()
        self._type = name
        return self

    def clearState(self):
        return clear(self, 'output', 'gradInput', '_maskIndexBuffer', '_maskIndexBufferCPU',
                     '_maskIndices', '_gradBuffer', '_gradMask')
