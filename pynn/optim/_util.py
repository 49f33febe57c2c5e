"""Helpers shared by the optim algorithms: whole-tensor arithmetic on the tensors' array views."""
from ..backend import array_module


def A(t):
    """The tensor's zero-copy array view (NumPy or CuPy)."""
    return t.numpy()


def xp_of(t):
    return array_module(t.numpy())


def like(t, fill=0.0):
    """A new tensor of t's type and size (Lua: torch.Tensor():typeAs(t):resizeAs(t):fill(v))."""
    n = t.new().resizeAs(t)
    if fill is not None:
        n.fill(fill)
    return n


def dot(a, b):
    xp = xp_of(a)
    return float(xp.dot(A(a).reshape(-1), A(b).reshape(-1)))


def get(d, key, default=None):
    """Lua's `config.key or default`: nil (absent or None) and false read the default."""
    v = d.get(key)
    if v is None or v is False:
        return default
    return v
