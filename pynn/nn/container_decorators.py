"""Lua nn's decorators and other single-child containers: Decorator, Bottle, MapTable,
WeightNorm, GPU, DontCast, NaN, Profile; and the modules of the container family that hold a
criterion or only pass data through: CriterionTable, PrintSize.

Each follows its Lua file (nn/<Class>.lua): which tensor object is whose output, the fields it
keeps, its printing. nn.GPU and nn.Profile's torch.Timer load and save as Lua writes them (see
pynn/serialization: a class's `write(file)` / `read(file, version)` with file:writeObject /
file:readObject, as Lua's)."""
import math

import numpy as np

from ..storage import Storage
from ..tensor import Tensor
from .module import Module, Criterion, describe
from .container import Container
from .activation import xpof


def _sizes(st):
    return tuple(int(v) for v in (st.tolist() if isinstance(st, (Storage, Tensor)) else st))


class Decorator(Container):
    """Wraps one module (modules[1]) and forwards every call to it."""

    def __init__(self, module):
        super().__init__()
        self.modules = [module]

    def updateOutput(self, input):
        self.output = self._call(0, 'updateOutput', input)
        return self.output

    def updateGradInput(self, input, gradOutput):
        self.gradInput = self._call(0, 'updateGradInput', input, gradOutput)
        return self.gradInput

    def accGradParameters(self, input, gradOutput, scale=1):
        self._call(0, 'accGradParameters', input, gradOutput, scale)

    def accUpdateGradParameters(self, input, gradOutput, lr):
        self._call(0, 'accUpdateGradParameters', input, gradOutput, lr)

    def sharedAccUpdateGradParameters(self, input, gradOutput, lr):
        self._call(0, 'sharedAccUpdateGradParameters', input, gradOutput, lr)

    def _inner_str(self):
        return self.modules[0].__tostring__()

    def __tostring__(self):
        return '%s @ %s' % (self.__typename__, self._inner_str())


class Bottle(Decorator):
    """Applies a module of nInputDim-dimensional input to inputs with more (leading) dims: they
    are folded into the first dim for the call, and unfolded from the output."""

    def __init__(self, module, nInputDim=None, nOutputDim=None):
        super().__init__(module)
        self.nInputDim = nInputDim or 2
        self.nOutputDim = nOutputDim or self.nInputDim
        self.dimDelta = self.nInputDim - self.nOutputDim
        self.inShape = Tensor(self.nInputDim)
        self.outShape = Tensor(self.nOutputDim)

    def _check(self, input):
        if not isinstance(input, Tensor):
            self._fail('a Tensor', input)
        if input.dim() < self.nInputDim:
            self._fail('an input of at least %d dims' % self.nInputDim, input)

    def updateOutput(self, input):
        self._check(input)
        batchDims = input.dim() - self.nInputDim + 1
        if batchDims > 1:
            inSize = list(input.size())
            squeeze = int(np.prod(inSize[:batchDims - 1]))
            inShape = inSize[batchDims - 1:]
            inShape[0] *= squeeze
            output = self._call(0, 'updateOutput', input.view(*inShape))
            if not isinstance(output, Tensor) or output.dim() != self.nOutputDim:
                raise ValueError('%s: wrong number of output dims on module. Expected: %d but got %s'
                                 % (self._name(), self.nOutputDim, output.dim() if isinstance(output, Tensor)
                                    else describe(output)))
            self.inShape.resize(len(inShape))
            self.outShape.resize(output.dim())
            if not self.inShape.is_meta():
                self.inShape.numpy()[...] = inShape
                self.outShape.numpy()[...] = output.size()
            if abs(self.dimDelta) > 0:
                inSize = inSize[:len(inSize) - self.dimDelta] if self.dimDelta > 0 else \
                    inSize + [0] * (-self.dimDelta)
            inSize[batchDims - 1:] = list(output.size())
            inSize[batchDims - 1] //= squeeze
            self.output.set(output.view(*inSize))
        else:
            self.output.set(self._call(0, 'updateOutput', input))
        return self.output

    def _shapes(self, input):
        """inShape, outShape of the last forward (kept in the tensors of those names, as Lua; a
        meta module has no values there, so they are derived from the sizes)."""
        if not self.inShape.is_meta():
            return [int(v) for v in self.inShape.tolist()], [int(v) for v in self.outShape.tolist()]
        b = input.dim() - self.nInputDim + 1
        inShape = [int(np.prod(input.size()[:b]))] + list(input.size()[b:])
        return inShape, list(self.modules[0].output.size())

    def updateGradInput(self, input, gradOutput):
        m = self.modules[0]
        if input.dim() > self.nInputDim:
            inShape, outShape = self._shapes(input)
            self._call(0, 'updateGradInput', input.view(*inShape), gradOutput.view(*outShape))
            if m.gradInput is not None:
                self.gradInput.set(m.gradInput.viewAs(input))
            else:
                self.gradInput = None
        else:
            if m.gradInput is not None:
                self.gradInput.set(self._call(0, 'updateGradInput', input, gradOutput))
            else:
                self.gradInput = None
        return self.gradInput

    def accGradParameters(self, input, gradOutput, scale=1):
        if input.dim() > self.nInputDim:
            inShape, outShape = self._shapes(input)
            input = input.view(*inShape)
            gradOutput = gradOutput.view(*outShape)
        self._call(0, 'accGradParameters', input, gradOutput, scale)


class MapTable(Container):
    """Applies one module (and clones of it, sharing its parameters by default) to each element of
    the input table."""

    def __init__(self, module=None, shared=None):
        super().__init__()
        self.shared = True if shared is None else shared
        self.sharedparams = ['weight', 'bias', 'gradWeight', 'gradBias']
        self.output = []
        self.gradInput = []
        if module is not None:
            self.add(module)

    def _extend(self, n):
        if self.sharedparams is None:
            self.sharedparams = ['weight', 'bias', 'gradWeight', 'gradBias']
        if self.modules:
            self.modules[0] = self.module
        else:
            self.modules.append(self.module)
        for i in range(1, n):
            if i >= len(self.modules):
                if self.shared:
                    self.modules.append(self.module.clone(*self.sharedparams))
                else:
                    self.modules.append(self.module.clone())

    def resize(self, n):
        self._extend(n)
        for m in self.modules[n:]:
            m.clearState()
        del self.modules[max(n, 1):]
        return self

    def add(self, module):
        if self.module is not None:
            raise ValueError('%s: single module required' % self.__typename__)
        if not isinstance(module, Module):
            raise TypeError('%s.add: expected an nn.Module, got %s' % (self.__typename__, type(module).__name__))
        self.module = module
        if self.modules:
            self.modules[0] = module
        else:
            self.modules.append(module)
        return self

    def _check(self, input, what='input'):
        if not isinstance(input, list):
            self._fail('a table as %s' % what, input)

    def updateOutput(self, input):
        self._check(input)
        self._extend(len(input))
        self.output = [self._call(i, 'updateOutput', x) for i, x in enumerate(input)]
        return self.output

    def updateGradInput(self, input, gradOutput):
        self._check(input)
        self._check(gradOutput, 'gradOutput')
        if len(gradOutput) < len(input):
            self._fail('a gradOutput table of %d' % len(input), gradOutput)
        self._extend(len(input))
        self.gradInput = [self._call(i, 'updateGradInput', x, gradOutput[i]) for i, x in enumerate(input)]
        return self.gradInput

    def accGradParameters(self, input, gradOutput, scale=1):
        self._check(input)
        self._extend(len(input))
        for i, x in enumerate(input):
            self._call(i, 'accGradParameters', x, gradOutput[i], 1 if scale is None else scale)

    def accUpdateGradParameters(self, input, gradOutput, lr=1):
        self._extend(len(input))
        for i, x in enumerate(input):
            self._call(i, 'accUpdateGradParameters', x, gradOutput[i], lr)

    def zeroGradParameters(self):
        if self.module is not None:
            if self.shared:
                self.module.zeroGradParameters()
            else:
                super().zeroGradParameters()

    def updateParameters(self, learningRate):
        if self.module is not None:
            if self.shared:
                self.module.updateParameters(learningRate)
            else:
                super().updateParameters(learningRate)

    def clearState(self):
        for m in self.modules[1:]:
            m.clearState()
        del self.modules[1:]
        return super().clearState()

    def __tostring__(self):
        if self.module is None:
            return self.__typename__ + ' { }'
        return '%s {\n  %s\n}' % (self.__typename__, self.module.__tostring__().replace('\n', '\n' + '  ' + '      '))


class WeightNorm(Decorator):
    """Weight normalization of the wrapped module's weight: w = g * v / ||v|| over the dims other
    than outputDim; parameters v, g (and the module's bias)."""

    def __init__(self, module, outputDim=None):
        super().__init__(module)
        if module.__dict__.get('weight') is None:
            raise ValueError('nn.WeightNorm: the module has no weight')
        if module.__dict__.get('bias') is not None:
            self.bias = module.bias
            self.gradBias = module.gradBias
        self.gradWeight = module.gradWeight
        self.weight = module.weight
        self.outputDim = outputDim or 1
        other = 1
        for i in range(1, self.weight.dim() + 1):
            if i != self.outputDim:
                other *= self.weight.size(i)
        self.otherDims = other
        n = self.weight.size(self.outputDim)
        self.viewIn = Storage([n, other], np.int64)
        out = list(self.weight.size())
        for i in range(self.outputDim - 1, 0, -1):
            out[i - 1], out[i] = out[i], out[i - 1]
        self.viewOut = Storage(out, np.int64)
        self.weightSize = Storage(list(self.weight.size()), np.int64)
        self.v = Tensor(n, other)
        self.g = Tensor(n)
        self._norm = Tensor(n)
        self._scale = Tensor(n)
        self.gradG = Tensor(n).zero()
        self.gradV = Tensor(n, other)
        self.resetInit()

    def permuteIn(self, t):
        for i in range(self.outputDim - 1, 0, -1):
            t = t.transpose(i, i + 1)
        return t

    def permuteOut(self, t):
        for i in range(1, self.outputDim):
            t = t.transpose(i, i + 1)
        return t

    def resetInit(self, inputSize=None, outputSize=None):
        self.v.normal(0, math.sqrt(2 / _sizes(self.viewIn)[1]))
        self.g.resize(self.v.size(1), 1)   # Lua's g:norm(v, 2, 2) keeps the reduced dim
        if not self.g.is_meta():
            v = self.v.numpy()
            self.g.numpy()[...] = xpof(v).sqrt((v * v).sum(axis=1, keepdims=True))
        if self.__dict__.get('bias') is not None:
            self.bias.zero()

    def evaluate(self):
        if self.train is not False:
            self.updateWeight()
            super().evaluate()
        return self

    def updateWeight(self):
        vin, vout = _sizes(self.viewIn), _sizes(self.viewOut)
        self.gradV.copy(self.permuteIn(self.weight))
        self.gradV = self.gradV.view(*vin)
        self._norm.resize(vin[0], 1)
        if not self.v.is_meta():
            v = self.v.numpy()
            nrm = self._norm.numpy()
            xp = xpof(v)
            nrm[...] = xp.sqrt((v * v).sum(axis=1, keepdims=True))
            nrm **= 2
            nrm += 10e-5
            xp.sqrt(nrm, out=nrm)
            self.gradV.copy(self.v)
            self._scale.copy(self.g)
            s = self._scale.numpy()
            s /= nrm.reshape(s.shape)
            self.gradV.numpy()[...] *= s.reshape(-1, 1)
        self.gradV = self.gradV.view(*vout)
        self.weight.copy(self.permuteOut(self.gradV))

    def updateOutput(self, input):
        if self.train is not False:
            self.updateWeight()
        self.output.set(self._call(0, 'updateOutput', input))
        return self.output

    def accGradParameters(self, input, gradOutput, scale=1):
        self._call(0, 'accGradParameters', input, gradOutput, 1 if scale is None else scale)
        vin, vout = _sizes(self.viewIn), _sizes(self.viewOut)
        self.weight.copy(self.permuteIn(self.weight))
        self.gradV.copy(self.permuteIn(self.gradWeight))
        self.weight = self.weight.view(*vin)
        self.gradV = self.gradV.view(*vin)
        self.gradG.resize(vin[0], 1)
        if not self.v.is_meta():
            norm = self._norm.numpy().reshape(-1, 1)
            sc = self._scale.numpy().reshape(-1, 1)
            w, gv, v, gg = self.weight.numpy(), self.gradV.numpy(), self.v.numpy(), self.gradG.numpy()
            xp = xpof(v)
            xp.multiply(gv, v, out=w)
            w /= norm
            w.sum(axis=1, keepdims=True, out=gg)
            gv *= sc
            xp.multiply(v, sc, out=w)
            w /= norm
            w *= gg
            gv -= w
        self.gradV = self.gradV.view(*vout)
        self.weight = self.weight.view(*vout)
        self.gradWeight.copy(self.permuteOut(self.gradV))

    def updateGradInput(self, input, gradOutput):
        self.gradInput.set(self._call(0, 'updateGradInput', input, gradOutput))
        return self.gradInput

    def zeroGradParameters(self):
        self.modules[0].zeroGradParameters()
        self.gradV.zero()
        self.gradG.zero()

    def updateParameters(self, lr):
        self.modules[0].updateParameters(lr)
        self.g.add(-lr, self.gradG)
        self.v.add(-lr, self.gradV)

    def parameters(self):
        if self.__dict__.get('bias') is not None:
            # the wrapped module's bias gradient (this field is an alias of it, which a file may lack)
            gb = self.modules[0].gradBias if self.modules[0].gradBias is not None else self.gradBias
            return [self.v, self.g, self.bias], [self.gradV, self.gradG, gb]
        return [self.v, self.g], [self.gradV, self.gradG]

    def write(self, file):
        """Lua's WeightNorm:write: the fields without weight and gradWeight (here and in the
        module), which read() recomputes from v and g."""
        import copy
        m = self.modules[0]
        inner = copy.copy(m)
        inner.__dict__ = {k: v for k, v in m.__dict__.items() if k not in ('weight', 'gradWeight')}
        fields = {}
        for k, v in self.__dict__.items():
            if k in ('weight', 'gradWeight') or k.startswith('_pynn'):
                continue
            fields[k] = [inner] + list(v[1:]) if k == 'modules' else v
        if fields.get('weightSize') is None:
            fields['weightSize'] = Storage(list(m.weight.size()), np.int64)
        file.writeObject(fields)

    def read(self, file=None, version=None):
        """Lua's WeightNorm:read: files hold no weight/gradWeight (its write drops them); they are
        recomputed from v and g. Called by pynn.load after the fields were filled."""
        if self.__dict__.get('weight') is None and self.__dict__.get('v') is not None:
            size = _sizes(self.weightSize)
            m = self.modules[0]
            m.weight = self.v.new(*size)
            m.gradWeight = self.v.new(*size)
            self.weight = m.weight
            self.gradWeight = m.gradWeight
            self.updateWeight()
            self.gradWeight.copy(self.permuteOut(self.gradV))
        return self


class GPU(Container):
    """Runs its module on a device (cutorch's `device`). pynn has one device per tensor type, so
    the call passes through (Lua's path for non-CUDA types); loads and saves as Lua writes it."""

    __t7_objects__ = 2   # Lua's GPU:write writes a header {_type, device}, then the fields

    def __init__(self, module, device, outdevice=None):
        super().__init__()
        if not isinstance(device, (int, float)) or isinstance(device, bool):
            raise ValueError('nn.GPU: device must be a number')
        if not isinstance(module, Module):
            raise TypeError('nn.GPU: expected an nn.Module')
        self.device = device
        self.outdevice = outdevice or device
        self.modules = [module]

    def setDevice(self, device=None):
        self.device = device or self.device
        return self

    def updateOutput(self, input):
        self.output = self._call(0, 'updateOutput', input)
        return self.output

    def updateGradInput(self, input, gradOutput):
        self.gradInput = self._call(0, 'updateGradInput', input, gradOutput)
        return self.gradInput

    def accGradParameters(self, input, gradOutput, scale=1):
        self._call(0, 'accGradParameters', input, gradOutput, scale)

    def accUpdateGradParameters(self, input, gradOutput, lr):
        raise NotImplementedError('Not Implemented for nn.GPU')

    sharedAccUpdateGradParameters = accUpdateGradParameters

    def type(self, name=None, tensorCache=None):
        if name is not None and 'Cuda' not in name:
            for f in ('output', 'gradInput', '_input', '_gradOutput'):
                self.__dict__.pop(f, None)
        return super().type(name, tensorCache)

    def clearState(self):
        for f in ('_input', '_gradOutput'):
            self.__dict__.pop(f, None)
        return super().clearState()

    def write(self, file):
        """Lua's GPU:write: a header {_type, device}, then the fields as a table."""
        file.writeObject([self._type, self.device])
        file.writeObject({k: v for k, v in self.__dict__.items() if not k.startswith('_pynn')})

    def read(self, file=None, version=None):
        """Lua's GPU:read: the header, then the fields (pynn.load passes the file's objects)."""
        if file is None:
            return self
        file.readObject()
        obj = file.readObject()
        if isinstance(obj, dict):
            self.__dict__.update(obj)
        return self

    def __tostring__(self):
        return '%s(%s) @ %s' % (self.__typename__, _num(self.device), self.modules[0].__tostring__())


def _num(v):
    return str(int(v)) if isinstance(v, float) and v.is_integer() else str(v)


def _table_tensor_type(src):
    """Lua DontCast's tableTensorType: (type name of the first tensor found, found)."""
    if isinstance(src, (list, tuple)):
        tname, found = None, False
        for v in src:
            tname, found = _table_tensor_type(v)
            if found:
                return tname, True
        return tname, found
    if isinstance(src, dict):
        tname, found = None, False
        for v in src.values():
            tname, found = _table_tensor_type(v)
            if found:
                return tname, True
        return tname, found
    if isinstance(src, Tensor):
        return src.type(), True
    return type(src).__name__, False


def _type_copy(dst, src, tname):
    if isinstance(src, (list, tuple)):
        dst = dst if isinstance(dst, list) else []
        for i, v in enumerate(src):
            val = _type_copy(dst[i] if i < len(dst) else None, v, tname)
            if i < len(dst):
                dst[i] = val
            else:
                dst.append(val)
        return dst
    if isinstance(src, Tensor):
        if not (isinstance(dst, Tensor) and dst.type() == tname):
            from .. import backend
            kind, device = backend.parse_typename(tname)
            dst = Tensor(kind=kind, device=device)
        dst.resize(*src.size())
        if src.nElement() > 0:
            dst.copy(src)
        return dst
    return dst


class DontCast(Decorator):
    """A decorator that keeps its module's type when the network is converted; with castin /
    castout it converts inputs and outputs between the network's type and moduleType."""

    def __init__(self, module, castin=None, castout=None, moduleType=None):
        super().__init__(module)
        self.castin = castin
        self.castout = castin if castout is None else castout
        self.moduleType = moduleType
        if (self.castin or self.castout) and not self.moduleType:
            t, found = _table_tensor_type(module.output)
            if not found:
                p = module.parameters()
                t, found = _table_tensor_type(list(p) if p else [])
            if not found:
                raise ValueError('nn.DontCast: cannot extrapolate moduleType: provide constructor argument 4')
            self.moduleType = t

    def updateOutput(self, input):
        if self.castin and _table_tensor_type(input)[0] != self.moduleType:
            self._input = _type_copy(self.__dict__.get('_input'), input, self.moduleType)
            input = self._input
        output = self._call(0, 'updateOutput', input)
        if self.castout:
            self.output = _type_copy(self.output, output, _table_tensor_type(self.output)[0])
        else:
            self.output = output
        return self.output

    def updateGradInput(self, input, gradOutput):
        if self.castin and _table_tensor_type(input)[0] != self.moduleType:
            input = self._input
        if self.castout and _table_tensor_type(gradOutput)[0] != self.moduleType:
            self._gradOutput = _type_copy(self.__dict__.get('_gradOutput'), gradOutput, self.moduleType)
            gradOutput = self._gradOutput
        gradInput = self._call(0, 'updateGradInput', input, gradOutput)
        if self.castin:
            self.gradInput = _type_copy(self.gradInput, gradInput, _table_tensor_type(self.gradInput)[0])
        else:
            self.gradInput = gradInput
        return self.gradInput

    def accGradParameters(self, input, gradOutput, scale=1):
        if self.castin and _table_tensor_type(input)[0] != self.moduleType:
            input = self._input
        if self.castout and _table_tensor_type(gradOutput)[0] != self.moduleType:
            gradOutput = self._gradOutput
        self._call(0, 'accGradParameters', input, gradOutput, scale)

    def type(self, name=None, tensorCache=None):
        """Lua's DontCast:type: the module keeps its type; only the cast output/gradInput change."""
        if name is None:
            return self._type
        if self.castout and _table_tensor_type(self.output)[0] != name:
            self.output = _type_copy(None, self.output, name)
        if self.castin and _table_tensor_type(self.gradInput)[0] != name:
            self.gradInput = _type_copy(None, self.gradInput, name)
        return self


_nan_ids = [0]


def _has_nan(x):
    if isinstance(x, (list, tuple)):
        return any(_has_nan(v) for v in x)
    if isinstance(x, dict):
        return any(_has_nan(v) for v in x.values())
    if isinstance(x, Tensor):
        if x.is_meta() or x.nElement() == 0:
            return False
        return bool(x.numpy().sum() != x.numpy().sum())
    return False


class NaN(Decorator):
    """Raises (naming where: input, parameters, output, gradOutput, gradInput, gradParameters)
    as soon as a NaN appears in what its module computes."""

    def __init__(self, module, id=None):
        super().__init__(module)
        if id is None:
            _nan_ids[0] += 1
            id = _nan_ids[0]
        self.id = id

    def _error(self, what):
        raise ValueError('NaN found in %s of module :\n%s' % (what, self.__tostring__()))

    def updateOutput(self, input):
        self.output = self._call(0, 'updateOutput', input)
        if _has_nan(self.output):
            if _has_nan(input):
                self._error('input')
            p = self.parameters()
            if _has_nan(list(p) if p else []):
                self._error('parameters')
            self._error('output')
        return self.output

    def updateGradInput(self, input, gradOutput):
        self.gradInput = self._call(0, 'updateGradInput', input, gradOutput)
        if _has_nan(self.gradInput):
            if _has_nan(gradOutput):
                self._error('gradOutput')
            self._error('gradInput')
        return self.gradInput

    def accGradParameters(self, input, gradOutput, scale=1):
        self._call(0, 'accGradParameters', input, gradOutput, scale)
        p = self.parameters()
        if p and _has_nan(p[1]):
            self._error('gradParameters')

    def __tostring__(self):
        return '%s(%s) @ %s' % (self.__typename__, _num(self.id), self._inner_str())


class Profile(Decorator):
    """Times its module's forward and backward (a torch.Timer), printing the sums every
    print_interval calls."""

    def __init__(self, module, print_interval=None, name=None):
        from ..serialization import Timer
        super().__init__(module)
        self.print_interval = print_interval or 100
        self.name = name or module.__typename__
        self.module = module
        self.numFwds = 0
        self.numBwds = 0
        self.summedFwdTime = 0
        self.summedBwdTime = 0
        self.timer = Timer()

    def _timer(self):
        if self.timer is None:
            from ..serialization import Timer
            self.timer = Timer()
        return self.timer

    def updateOutput(self, input):
        t = self._timer()
        t.reset()
        self.output = self._call(0, 'updateOutput', input)
        self.summedFwdTime = self.summedFwdTime + t.time()['real']
        self.numFwds = self.numFwds + 1
        if self.numFwds % self.print_interval == 0:
            print('%s took %.3f seconds for %d forward passes' % (self.name, self.summedFwdTime,
                                                                 self.print_interval))
            self.numFwds = 0
            self.summedFwdTime = 0
        return self.output

    def updateGradInput(self, input, gradOutput):
        t = self._timer()
        t.reset()
        self.gradInput = self._call(0, 'updateGradInput', input, gradOutput)
        self.summedBwdTime = self.summedBwdTime + t.time()['real']
        self.numBwds = self.numBwds + 1
        if self.numBwds % self.print_interval == 0:
            print('%s took %.3f seconds for %d backward passes' % (self.name, self.summedBwdTime,
                                                                  self.print_interval))
            self.numBwds = 0
            self.summedBwdTime = 0
        return self.gradInput


def _lua_size(x):
    if isinstance(x, Tensor):
        return '[torch.LongStorage of size %d]' % x.dim() if x.dim() == 0 else \
            '\n'.join(str(s) for s in x.size()) + '\n[torch.LongStorage of size %d]' % x.dim()
    if x is None:
        return 'missing size'
    return repr(x)


class PrintSize(Module):
    """Identity that prints the size of its input (forward) and gradOutput (backward)."""

    def __init__(self, prefix=None):
        super().__init__()
        self.prefix = prefix or 'PrintSize'

    def updateOutput(self, input):
        self.output = input
        print('%s:input\n\t%s' % (self.prefix, _lua_size(input)))
        return self.output

    def updateGradInput(self, input, gradOutput):
        print('%s:gradOutput\n\t%s' % (self.prefix, _lua_size(gradOutput)))
        self.gradInput = gradOutput
        return self.gradInput


class CriterionTable(Module):
    """A criterion as a module: input {input, target} -> output = criterion:forward(input, target)
    (a number); gradInput = {criterion.gradInput}."""

    def __init__(self, criterion):
        super().__init__()
        if not isinstance(criterion, Criterion):
            raise TypeError('nn.CriterionTable: expected an nn.Criterion, got %s' % type(criterion).__name__)
        self.criterion = criterion
        self.gradInput = [criterion.gradInput]

    def _check(self, input):
        if not isinstance(input, list) or len(input) < 1:
            self._fail('a table {input, target}', input)

    def updateOutput(self, input):
        self._check(input)
        self.output = self.criterion.updateOutput(*input)
        return self.output

    def updateGradInput(self, input, gradOutput):
        self._check(input)
        g = self.criterion.updateGradInput(*input)
        if isinstance(self.gradInput, list) and self.gradInput and self.gradInput[0] is not g:
            self.gradInput[0] = g  # a criterion that replaced its gradInput object
        return self.gradInput

    def type(self, name=None, tensorCache=None):
        out = super().type(name, tensorCache)
        if name is not None and isinstance(self.gradInput, list) and self.gradInput:
            self.gradInput[0] = self.criterion.gradInput
        return out
