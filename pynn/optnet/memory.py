"""countUsedMemory: the bytes a network's tensors hold, per category, each storage once."""
from ..tensor import Tensor
from .trace import tensors_of

PARAM_FIELDS = ('weight', 'bias', 'gradWeight', 'gradBias')
CATEGORIES = ('outputs', 'gradInputs', 'buffers', 'params')


def _module_tensors(m):
    """(category, tensor) pairs of one module, as the original counts them."""
    for t in tensors_of(m.__dict__.get('output')):
        yield 'outputs', t
    for t in tensors_of(m.__dict__.get('gradInput')):
        yield 'gradInputs', t
    for k, v in m.__dict__.items():
        if isinstance(v, Tensor) and k not in PARAM_FIELDS and k not in ('output', 'gradInput'):
            yield 'buffers', v
    for k in PARAM_FIELDS:
        v = m.__dict__.get(k)
        if isinstance(v, Tensor):
            yield 'params', v


def storages_by_category(net):
    """category -> {id(storage): storage}, in first-seen order (net.apply order)."""
    seen = {c: {} for c in CATEGORIES}
    for m in net.listModules():
        for cat, t in _module_tensors(m):
            st = t.storage()
            if st is not None:
                seen[cat].setdefault(id(st), st)
    return seen


def check_network(fn, net):
    """A clear TypeError when `net` is not an nn module (None, a tensor, a list, ...)."""
    from ..nn.module import Module
    if not isinstance(net, Module):
        raise TypeError('optnet.%s: expected an nn module (e.g. nn.Sequential), got %s'
                        % (fn, 'None' if net is None else type(net).__name__))


def countUsedMemory(net):
    """Bytes held by outputs, gradInputs, buffers and params (storage size x element size),
    each storage counted once per category; `total_size` is their sum (as the original)."""
    check_network('countUsedMemory', net)
    if net.__dict__.get('_pynn_arena') is not None:  # one arena, typed views: count bytes once
        from .report import arena_memory
        return arena_memory(net)
    sizes = {}
    for cat, stores in storages_by_category(net).items():
        sizes[cat] = sum(st.size() * st.elementSize() for st in stores.values())
    sizes['total_size'] = sum(sizes[c] for c in CATEGORIES)
    return sizes
