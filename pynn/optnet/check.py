"""Replaying a network's schedule to prove that no two live tensors share memory.

Every value a module writes (its output after updateOutput, its gradInput after
updateGradInput) is stamped with a copy; every value a module reads when it is called
(its input, its gradOutput, and in backward its input and output again) is compared with
its stamp. A read that differs means something overwrote a tensor while it was still
needed: two live tensors shared a storage. In-place modules overwrite their input by
design; their stamps are refreshed so that only foreign writes count.
"""
import numpy as np

from ..nn.module import tracing
from .trace import Recorder, recursive_clone, tensors_of, CONCAT_LIKE
from .needs import backward_reads, INPUT, OUTPUT, GRAD_OUTPUT


def _snap(t):
    if t.is_meta() or t.nElement() == 0:
        return None
    a = t.numpy()
    a = a.get() if hasattr(a, 'get') else a
    return (t.storage(), t._offset, t.size(), t.stride(), np.array(a, copy=True))


def schedule_violations(net, input, mode='inference'):
    """Run forward (and backward in training) checking every read against its stamp.
    Returns a list of (module index in net.listModules(), method, what) for each bad read."""
    index = {id(m): i for i, m in enumerate(net.listModules())}
    stamps = {}      # id(tensor) -> snapshot at its last legitimate write
    keep = []        # keep stamped tensors alive so their ids stay unique
    bad = []

    def stamp(x):
        for t in tensors_of(x):
            s = _snap(t)
            if s is not None:
                stamps[id(t)] = s
                keep.append(t)

    def check(m, name, what, x):
        for t in tensors_of(x):
            s = stamps.get(id(t))
            if s is None or t.is_meta():
                continue
            st, off, size, stride, data = s
            if t.storage() is not st or t._offset != off or t.size() != size:
                continue  # re-pointed since (e.g. a new forward): not a stale read
            a = t.numpy()
            a = a.get() if hasattr(a, 'get') else a
            if not np.array_equal(a, data, equal_nan=True):
                bad.append((index.get(id(m)), name, what))

    leaf = lambda m: m.__dict__.get('modules') is None  # noqa: E731

    def on_enter(c, m, name, args):
        if not leaf(m):
            return
        if name == 'updateOutput':
            check(m, name, 'input', args[0])
            return
        need = backward_reads(m, name)  # only values this method really reads
        if GRAD_OUTPUT in need:
            check(m, name, 'gradOutput', args[1])
        if INPUT in need:
            check(m, name, 'input', args[0])
        if OUTPUT in need:
            check(m, name, 'output', m.output)

    def on_exit(c, m, name, args):
        if name == 'updateOutput' and m.__typename__ in CONCAT_LIKE:
            for b in m.modules:  # the copy just made read each branch's output
                sub = b.__dict__.get('modules')
                check(m, name, 'branch output', (sub[-1] if sub else b).output)
        if not leaf(m):
            return
        if name == 'updateOutput':
            stamp(m.output)
            if m.__dict__.get('inplace'):
                stamp(args[0])  # overwritten by design
        elif name in ('updateGradInput', 'backward'):
            stamp(m.gradInput)
            if m.__dict__.get('inplace'):
                stamp(args[1])

    stamp(input)
    with tracing(Recorder(on_enter, on_exit)):
        out = net.forward(input)
        if mode == 'training':
            g = recursive_clone(out)
            stamp(g)
            net.backward(input, g)
    return bad
