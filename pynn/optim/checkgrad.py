"""optim.checkgrad: central finite differences against the analytic gradient, as Lua's
optim/checkgrad.lua. Returns diff, dC, dC_est."""
import numpy as np

from ._util import A


def checkgrad(opfunc, x, eps=None):
    Corg, dC = opfunc(x)
    dC.resize(*x.size())
    eps = 1e-7 if eps is None else eps
    dC_est = dC.new().resizeAs(dC)
    X, E = A(x).reshape(-1), A(dC_est).reshape(-1)
    for i in range(dC.size(1)):   # one coordinate at a time, as Lua (each needs two evaluations)
        tmp = X[i].item()
        X[i] = X[i] + eps
        C1 = opfunc(x)[0]
        C1 = C1.clone() if hasattr(C1, 'clone') else C1
        X[i] = X[i] - 2 * eps
        C2 = opfunc(x)[0]
        X[i] = tmp
        E[i] = (C1 - C2) / (2 * eps)
    D = A(dC)
    diff = float(np.linalg.norm((D - A(dC_est)).ravel()) / np.linalg.norm((D + A(dC_est)).ravel()))
    return diff, dC, dC_est
