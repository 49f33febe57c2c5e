"""cunn's classes that saved networks hold, for running them on pynn's devices.

`nn.DataParallelTable` splits each batch over several GPUs, each running a replica of one
network (`modules[1]`). A file saved from it holds that network once; pynn runs it as the
network itself on the tensors' device (one replica: the results are the same as the gathered
results of the replicas).
"""
from .nn.container import Container


def _objects_written(version):
    return 2 if version >= 2 else 1


class DataParallelTable(Container):
    """nn.DataParallelTable(dimension, flattenParams, usenccl): a container of one network."""

    __version__ = 3
    # cunn's __write: from version 2 on, the gpuAssignments, then the fields as a table
    __t7_objects__ = staticmethod(_objects_written)

    def write(self, file):
        file.writeObject(self.gpuAssignments or [])
        file.writeObject({k: v for k, v in self.__dict__.items() if not k.startswith('_pynn')})

    def read(self, file=None, version=3):
        """cunn's __read (pynn.load passes the objects the file holds after the class name)."""
        if file is None:
            return self
        first = file.readObject()
        fields = first if version < 2 else file.readObject()
        if isinstance(fields, dict):
            self.__dict__.update(fields)
        if version >= 2 and first is not None:
            self.gpuAssignments = first
        return self

    def __init__(self, dimension=1, flattenParams=False, usenccl=False):
        super().__init__()
        self.dimension = dimension
        self.gpuAssignments = []
        self.flattenParams = bool(flattenParams)
        self.usenccl = False

    def add(self, module, gpus=None):
        """Lua: add(module, {gpu ids}). Only one network, as Lua asserts."""
        if self.modules:
            raise ValueError('nn.DataParallelTable: add should only be called once, with the '
                             'network and its list of GPU ids')
        self.modules.append(module)
        self.gpuAssignments = list(gpus) if gpus is not None else [1]
        return self

    def _net(self):
        if not self.modules:
            raise ValueError('nn.DataParallelTable: no network: call add(net, gpus) first')
        return self.modules[0]

    def updateOutput(self, input):
        self.output = self._net().updateOutput(input)
        return self.output

    def updateGradInput(self, input, gradOutput):
        self.gradInput = self._net().updateGradInput(input, gradOutput)
        return self.gradInput

    def accGradParameters(self, input, gradOutput, scale=1):
        self._net().accGradParameters(input, gradOutput, scale)

    def backward(self, input, gradOutput, scale=1):
        self.gradInput = self._net().backward(input, gradOutput, scale)
        return self.gradInput

    def __tostring__(self):
        inner = self.modules[0].__tostring__() if self.modules else 'nil'
        return 'DataParallelTable: %d x %s' % (len(self.gpuAssignments or [1]), inner)


def registry():
    return {'nn.DataParallelTable': DataParallelTable}
