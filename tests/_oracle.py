"""Helpers shared by the layer tests: pynn <-> torch conversion and the 1e-10 comparison."""
import numpy as np
import torch

import pynn

TOL = 1e-10


def T(t):
    return torch.from_numpy(t.numpy().copy())


def P(arr):
    return pynn.from_numpy(np.ascontiguousarray(arr))


def close(a, b, tol=TOL):
    a = a.numpy() if isinstance(a, pynn.Tensor) else np.asarray(a)
    if isinstance(b, pynn.Tensor):
        b = b.numpy()
    b = b.detach().numpy() if isinstance(b, torch.Tensor) else np.asarray(b)
    assert a.shape == b.shape, (a.shape, b.shape)
    np.testing.assert_allclose(a, b, rtol=0, atol=tol)
