"""nngraph's nesting helpers on nested tables (Python lists) of tensors."""
from ..tensor import Tensor


def clone_nested(obj):
    if isinstance(obj, Tensor):
        return obj.clone()
    return [clone_nested(v) for v in obj]


def resize_nested_as(out, inp):
    if isinstance(out, Tensor):
        out.resizeAs(inp)
        return out
    for i, child in enumerate(inp):
        if i >= len(out) or out[i] is None:
            while len(out) <= i:
                out.append(None)
            out[i] = clone_nested(child)
        else:
            resize_nested_as(out[i], child)
    del out[len(inp):]
    return out


def copy_nested(out, inp):
    if isinstance(out, Tensor):
        out.copy(inp)
        return
    if len(out) != len(inp):
        raise ValueError('key %d present in output but not in input' % (len(inp) + 1))
    for o, i in zip(out, inp):
        copy_nested(o, i)


def add_nested_to(out, inp):
    if isinstance(out, Tensor):
        out.numpy()[...] += inp.numpy().reshape(out.numpy().shape)
        return
    for o, i in zip(out, inp):
        add_nested_to(o, i)
