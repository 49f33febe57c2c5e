"""optim.polyinterp: minimum of the cubic (or higher) interpolating polynomial of points
{x, f, f'} within bounds, as Lua's optim/polyinterp.lua (gels least squares, companion-matrix
roots). Returns minPos (the closed form for two points without bounds) or (minPos, fmin)."""
import math

import numpy as np


def _roots(c):
    c = np.array(c, dtype=np.float64)
    c[np.abs(c) < 1e-12] = 0
    nz_idx = np.nonzero(c)[0]
    if len(nz_idx) == 0:
        return np.zeros((0, 2))
    c = c[nz_idx[0]:]
    nz = 0
    for v in c[::-1]:
        if v != 0:
            break
        nz += 1
    c = c[:len(c) - nz]
    n = len(c) - 1
    if n == 1:
        e = np.array([[-c[1] / c[0], 0.0]])
    elif n > 1:
        A = np.diag(np.ones(n - 1), -1)
        A[0] = -c[1:n + 1] / c[0]
        ev = np.linalg.eigvals(A)
        e = np.stack([np.real(ev), np.imag(ev)], axis=1)
    else:
        e = np.zeros((0, 2))
    if nz > 0:
        e = np.concatenate([e, np.zeros((nz, 2))], axis=0)
    return e


def _polyval(p, x):
    pwr = len(p)
    val = 0
    for pc in p:
        pwr -= 1
        val = val + pc * x ** pwr
    return val


def polyinterp(points, xminBound=None, xmaxBound=None):
    P = np.asarray(points.numpy() if hasattr(points, 'numpy') else points, dtype=np.float64)
    nPoints = P.shape[0]
    order = nPoints * 2 - 1

    if nPoints == 2 and order == 3 and xminBound is None and xmaxBound is None:
        minPos = int(np.argmin(P[:, 0]))
        notMinPos = 1 - minPos
        d1 = P[minPos, 2] + P[notMinPos, 2] - 3 * (P[minPos, 1] - P[notMinPos, 1]) / (
            P[minPos, 0] - P[notMinPos, 0])
        disc = d1 ** 2 - P[minPos, 2] * P[notMinPos, 2]
        if disc >= 0:   # Lua: sqrt of a negative is NaN, which is not "real"
            d2 = math.sqrt(disc)
            t = P[notMinPos, 0] - (P[notMinPos, 0] - P[minPos, 0]) * (
                (P[notMinPos, 2] + d2 - d1) / (P[notMinPos, 2] - P[minPos, 2] + 2 * d2))
            return min(max(t, P[minPos, 0]), P[notMinPos, 0])
        return float(np.mean(P[:, 0]))

    xmin, xmax = P[:, 0].min(), P[:, 0].max()
    xminBound = xmin if xminBound is None else xminBound
    xmaxBound = xmax if xmaxBound is None else xmaxBound

    Am = np.zeros((nPoints * 2, order + 1))
    b = np.zeros(nPoints * 2)
    for i in range(nPoints):
        for j in range(order, -1, -1):
            Am[i, order - j] = P[i, 0] ** j
        b[i] = P[i, 1]
    for i in range(nPoints):
        for j in range(1, order + 1):
            Am[nPoints + i, j - 1] = (order - j + 1) * P[i, 0] ** (order - j)
        b[nPoints + i] = P[i, 2]
    params = np.linalg.lstsq(Am, b, rcond=None)[0][:nPoints * 2].copy()
    params[np.abs(params) <= 1e-12] = 0
    dParams = np.zeros(order)
    for i in range(len(params) - 1):
        dParams[i] = params[i] * (order - i)
    nans = bool(np.isnan(dParams).any() or (dParams == math.inf).any())

    cp = np.concatenate([[xminBound, xmaxBound], P[:, 0]])
    cp = np.stack([cp, np.zeros_like(cp)], axis=1)
    if not nans:
        cp = np.concatenate([cp, _roots(dParams)], axis=0)

    fmin = math.inf
    minPos = (xminBound + xmaxBound) / 2
    for rx, ix in cp:
        if ix == 0 and xminBound <= rx <= xmaxBound:
            fCP = _polyval(params, rx)
            if fCP < fmin:
                minPos, fmin = float(rx), float(fCP)
    return minPos, fmin
