"""optim.lswolfe: a line search satisfying the strong Wolfe conditions (Schmidt's minFunc),
as Lua's optim/lswolfe.lua. Returns f_new, g_new, x, t, lsFuncEval."""

import numpy as np

from ._util import A, dot, get
from .polyinterp import polyinterp


def lswolfe(opfunc, x, t, d, f, g, gtd, options=None):
    options = {} if options is None else options
    c1 = get(options, 'c1', 1e-4)
    c2 = get(options, 'c2', 0.9)
    tolX = get(options, 'tolX', 1e-9)
    maxIter = get(options, 'maxIter', 20)
    isverbose = get(options, 'verbose', False)

    def verbose(*a):
        if isverbose:
            print('<optim.lswolfe> ', *a)

    X = A(x)
    x_init = X.copy()
    X += t * A(d)
    f_new, g_new = opfunc(x)
    lsFuncEval = 1
    gtd_new = dot(g_new, d)

    LSiter, t_prev, done = 0, 0, False
    f_prev, g_prev, gtd_prev = f, A(g).copy(), gtd
    bracket = bracketF = bracketG = None
    while LSiter < maxIter:
        if (f_new > (f + c1 * t * gtd)) or (LSiter > 1 and f_new >= f_prev):
            bracket, bracketF = [t_prev, t], [f_prev, f_new]
            bracketG = np.stack([g_prev, A(g_new).copy()])
            break
        elif abs(gtd_new) <= -c2 * gtd:
            bracket, bracketF = [t], [f_new]
            bracketG = A(g_new).copy()[None]
            done = True
            break
        elif gtd_new >= 0:
            bracket, bracketF = [t_prev, t], [f_prev, f_new]
            bracketG = np.stack([g_prev, A(g_new).copy()])
            break
        tmp = t_prev
        t_prev = t
        minStep = t + 0.01 * (t - tmp)
        maxStep = t * 10
        t = polyinterp(np.array([[tmp, f_prev, gtd_prev], [t, f_new, gtd_new]]), minStep, maxStep)[0]
        f_prev = f_new
        g_prev = A(g_new).copy()
        gtd_prev = gtd_new
        X[...] = x_init
        X += t * A(d)
        f_new, g_new = opfunc(x)
        lsFuncEval += 1
        gtd_new = dot(g_new, d)
        LSiter += 1

    if LSiter == maxIter:
        bracket, bracketF = [0, t], [f, f_new]
        bracketG = np.stack([A(g).copy(), A(g_new).copy()])

    D = A(d)
    insufProgress = False
    while not done and LSiter < maxIter:
        LOpos = int(np.argmin(bracketF))
        f_LO = bracketF[LOpos]
        HIpos = 1 - LOpos
        t = polyinterp(np.array([[bracket[0], bracketF[0], float(bracketG[0] @ D)],
                                 [bracket[1], bracketF[1], float(bracketG[1] @ D)]]))
        bmax, bmin = max(bracket), min(bracket)
        if min(bmax - t, t - bmin) / (bmax - bmin) < 0.1:
            if insufProgress or t >= bmax or t <= bmin:
                if abs(t - bmax) < abs(t - bmin):
                    t = bmax - 0.1 * (bmax - bmin)
                else:
                    t = bmin + 0.1 * (bmax - bmin)
                insufProgress = False
            else:
                insufProgress = True
        else:
            insufProgress = False
        X[...] = x_init
        X += t * D
        f_new, g_new = opfunc(x)
        lsFuncEval += 1
        gtd_new = dot(g_new, d)
        LSiter += 1
        if f_new > f + c1 * t * gtd or f_new >= f_LO:
            bracket[HIpos], bracketF[HIpos] = t, f_new
            bracketG[HIpos] = A(g_new)
        else:
            if abs(gtd_new) <= -c2 * gtd:
                done = True
            elif gtd_new * (bracket[HIpos] - bracket[LOpos]) >= 0:
                bracket[HIpos], bracketF[HIpos] = bracket[LOpos], bracketF[LOpos]
                bracketG[HIpos] = bracketG[LOpos]
            bracket[LOpos], bracketF[LOpos] = t, f_new
            bracketG[LOpos] = A(g_new)
        if not done and abs((bracket[0] - bracket[1]) * gtd_new) < tolX:
            break

    if LSiter == maxIter:
        verbose('reached max number of iterations')
    LOpos = int(np.argmin(bracketF))
    t = bracket[LOpos]
    f_new = bracketF[LOpos]
    gv = g.new(*bracketG.shape)
    A(gv)[...] = bracketG
    g_new = gv.select(1, LOpos + 1)
    X[...] = x_init
    X += t * A(d)
    return f_new, g_new, x, t, lsFuncEval
