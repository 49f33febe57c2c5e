"""Which array module serves a storage (NumPy, CuPy) and the table of Torch7 type names.

A device is one of 'cpu' (NumPy), 'cuda' (CuPy) or 'meta' (sizes only, no data).
"""
import numpy as np

try:  # CuPy is an optional extra; everything works without it.
    import cupy  # type: ignore
    try:
        HAS_CUDA = cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # no driver / no device
        HAS_CUDA = False
except ImportError:  # pragma: no cover - depends on the machine
    cupy = None
    HAS_CUDA = False

# element kind -> numpy dtype
KINDS = {
    'Double': np.float64, 'Float': np.float32, 'Half': np.float16, 'Long': np.int64,
    'Int': np.int32, 'Short': np.int16, 'Char': np.int8, 'Byte': np.uint8,
}
_DEVICE_PREFIX = {'cpu': '', 'cuda': 'Cuda', 'meta': 'Meta'}


def tensor_typename(kind, device):
    """('Float', 'cuda') -> 'torch.CudaTensor' (Torch names the float CUDA type plainly)."""
    if device == 'cuda' and kind == 'Float':
        return 'torch.CudaTensor'
    return 'torch.%s%sTensor' % (_DEVICE_PREFIX[device], kind)


def parse_typename(name):
    """'torch.CudaDoubleTensor' -> ('Double', 'cuda'); also accepts Storage names."""
    if not isinstance(name, str) or not name.startswith('torch.'):
        raise ValueError("unknown tensor type %r" % (name,))
    body = name[len('torch.'):]
    for suffix in ('Tensor', 'Storage'):
        if body.endswith(suffix):
            body = body[:-len(suffix)]
            break
    else:
        raise ValueError("unknown tensor type %r" % (name,))
    device = 'cpu'
    for dev, prefix in (('cuda', 'Cuda'), ('meta', 'Meta')):
        if body.startswith(prefix):
            device, body = dev, body[len(prefix):]
            break
    if body == '' and device == 'cuda':
        body = 'Float'
    if body not in KINDS:
        raise ValueError("unknown tensor type %r" % (name,))
    return body, device


def kind_of_dtype(dtype):
    dtype = np.dtype(dtype)
    for k, v in KINDS.items():
        if np.dtype(v) == dtype:
            return k
    raise ValueError("no Torch type for dtype %s" % dtype)


def xp_for(device):
    """The array module of a device; meta has none (no data)."""
    if device == 'cpu':
        return np
    if device == 'cuda':
        if cupy is None or not HAS_CUDA:
            raise RuntimeError("CUDA tensors need CuPy and a GPU; none is available here")
        return cupy
    return None


def array_module(arr):
    if cupy is not None and isinstance(arr, cupy.ndarray):
        return cupy
    return np
