"""Running a network once under a tracer, and the original optnet's liveness analysis.

`Recorder` numbers every traced module call the way the original optnet counts them
(updateOutput, updateGradInput, accGradParameters and backward of every module,
containers included, nested calls included) and hands each call to callbacks.
`optnet_analysis` rebuilds, from those calls, exactly the table the original builds:
per storage, the first call that defines it and the last call that uses it.
"""
from ..tensor import Tensor
from ..nn.module import tracing
from ..nn.container import Sequential

K_NOT_USED = 10000
K_NOT_DEFINED = 0
K_MIN_FOR_SHARING = 2
K_ALWAYS_LIVE = 10000

CONCAT_LIKE = ('nn.Concat', 'nn.Parallel', 'nn.DepthConcat')


class Recorder:
    """A tracer: `count` is the number of the next call; callbacks get (count, module, name, args).
    `on_reads(count, container, reads, writes)` gets what a container reads and writes itself
    between its children's calls (nngraph's gModule summing gradOutputs into a buffer),
    numbered as the next call."""

    def __init__(self, on_enter=None, on_exit=None, on_reads=None):
        self.count = 1
        self.on_enter, self.on_exit, self.on_reads = on_enter, on_exit, on_reads

    def container_reads(self, container, reads, writes=()):
        if self.on_reads:
            self.on_reads(self.count, container, reads, writes)

    def enter(self, module, name, args):
        if self.on_enter:
            self.on_enter(self.count, module, name, args)
        self.count += 1

    def exit(self, module, name, args):
        if self.on_exit:
            self.on_exit(self.count, module, name, args)


def recursive_clone(x):
    if isinstance(x, Tensor):
        return x.clone()
    return [recursive_clone(v) for v in x]


def tensors_of(x):
    """The tensors in x (a tensor or nested lists), in Lua's ipairs order."""
    if isinstance(x, Tensor):
        yield x
    elif isinstance(x, (list, tuple)):
        for v in x:
            yield from tensors_of(v)


class Info:
    """One row of the original's analysis: a storage, its first definition and last use."""
    __slots__ = ('used', 'defined', 'tensor', 'storage', 'name')

    def __init__(self, tensor, name):
        self.used, self.defined = K_NOT_USED, K_NOT_DEFINED
        self.tensor, self.storage, self.name = tensor, tensor.storage(), name

    def __repr__(self):
        return 'Info(%s, defined=%d, used=%d, numel=%d)' % (self.name, self.defined, self.used,
                                                              self.tensor.nElement())


class _Track:
    def __init__(self):
        self.by_storage = {}
        self.rows = []

    def keep(self, x, var, c, combine, not_used, name):
        for t in tensors_of(x):
            st = t.storage()
            if st is None:
                continue
            info = self.by_storage.get(id(st))
            if info is None:
                info = self.by_storage[id(st)] = Info(t, name)
                self.rows.append(info)
            val = getattr(info, var)
            setattr(info, var, c if val == not_used else combine(c, val))


def optnet_analysis(net, input, mode):
    """Run net (forward, and backward in training) and return the original's analysis rows."""
    track = _Track()

    def on_enter(c, m, name, args):
        label = m.__typename__
        if name == 'updateOutput':
            if mode != 'inference':
                return
            track.keep(args[0], 'used', c, max, K_NOT_USED, label)
            mods = m.__dict__.get('modules')
            if mods is None:
                track.keep(m.output, 'defined', c, min, K_NOT_DEFINED, label)
            elif m.__typename__ in CONCAT_LIKE:
                # The original marks each branch's last output as defined when the Concat
                # starts and never as used: those storages never share (see issue 6).
                track.keep(m.output, 'defined', c, min, K_NOT_DEFINED, label)
                for branch in mods:
                    sub = branch.__dict__.get('modules')
                    last = sub[-1] if sub else branch
                    track.keep(last.output, 'defined', c, min, K_NOT_DEFINED, label)
        elif not isinstance(m, Sequential):
            track.keep(args[1], 'used', c, max, K_NOT_USED, label)
            track.keep(m.gradInput, 'defined', c, min, K_NOT_DEFINED, label)

    def on_reads(c, m, reads, writes):
        # a container's own reads and writes (a gModule summing the gradOutputs of a node
        # used twice into a buffer) happen just before call c: uses and a definition at c
        track.keep(reads, 'used', c, max, K_NOT_USED, m.__typename__)
        track.keep(writes, 'defined', c, min, K_NOT_DEFINED, m.__typename__)
        track.keep(writes, 'used', c, max, K_NOT_USED, m.__typename__)

    with tracing(Recorder(on_enter, on_reads=on_reads)):
        out = net.forward(input)
        grad = None
        if mode == 'training':
            grad = recursive_clone(out)
            net.backward(input, grad)
    # the caller reads the network's output (inference) or gradInput (training) after the
    # run: a graph's output may also feed one of its nodes, and its gradInput may be the
    # gradOutput an Identity input node passes on; neither may be reused after those reads.
    # Only graphs (which the original never supported) need it: for nn containers the
    # original's plan is kept byte for byte.
    graphs = any(m.__typename__ == 'nn.gModule' for m in net.listModules())
    for t in tensors_of(out if mode == 'inference' else net.gradInput) if graphs else ():
        if t.storage() is not None:
            info = track.by_storage.get(id(t.storage()))
            if info is not None:
                info.used = K_NOT_USED

    def always_live(x, name):
        # the original overwrites both fields, whatever they held
        for t in tensors_of(x):
            if t.storage() is None:
                continue
            track.keep(t, 'used', K_ALWAYS_LIVE, lambda a, b: a, 0, name)
            track.keep(t, 'defined', -K_ALWAYS_LIVE, lambda a, b: a, 0, name)

    always_live(input, 'input')
    if grad is not None:
        always_live(grad, 'grad')
    return track.rows


class Step:
    """One forward computation: a leaf module's updateOutput (reading its input), or a
    Concat-like container copying its branches' outputs (reading them)."""
    __slots__ = ('module', 'reads', 'writes')

    def __init__(self, module, reads, writes):
        self.module, self.reads, self.writes = module, reads, writes


def forward_schedule(net, input):
    """Run net.forward once and return (output, [Step, ...]) in execution order."""
    steps = []

    def on_enter(c, m, name, args):
        if name == 'updateOutput' and m.__dict__.get('modules') is None:
            steps.append(Step(m, list(tensors_of(args[0])), None))

    def on_exit(c, m, name, args):
        if name != 'updateOutput':
            return
        mods = m.__dict__.get('modules')
        if mods is None:
            for s in reversed(steps):
                if s.module is m and s.writes is None:
                    s.writes = list(tensors_of(m.output))
                    break
        elif m.__typename__ in CONCAT_LIKE:
            reads = []
            for b in mods:
                sub = b.__dict__.get('modules')
                reads.extend(tensors_of((sub[-1] if sub else b).output))
            steps.append(Step(m, reads, list(tensors_of(m.output))))

    with tracing(Recorder(on_enter, on_exit)):
        out = net.forward(input)
    return out, steps
