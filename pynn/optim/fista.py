"""optim.FistaLS: FISTA / ISTA with backtracking line search (Beck & Teboulle), as Lua's
optim/fista.lua. f(x, 'dx') -> (f, df), f(x) -> f; g(x) -> the non-smooth part; pl(x, L)
the proximal step in place. Returns (solution, history)."""
import math

from .. import tensor as T
from ._util import A, dot, get


def FistaLS(f, g, pl, xinit, params=None):
    params = {} if params is None else params
    L = get(params, 'L', 0.1)
    Lstep = get(params, 'Lstep', 1.5)
    maxiter = get(params, 'maxiter', 50)
    maxline = get(params, 'maxline', 20)
    errthres = get(params, 'errthres', 1e-4)
    doFistaUpdate = params.get('doFistaUpdate')
    verbose = params.get('verbose')

    for k in ('xkm', 'y', 'ply'):
        if params.get(k) is None:
            params[k] = T.Tensor()
    xkm, y, ply = params['xkm'], params['y'], params['ply']
    xk = xinit
    xkm.resizeAs(xk).zero()
    ply.resizeAs(xk).zero()
    y.resizeAs(xk).zero()

    history = []
    niter = 0
    converged = False
    tk, tkp = 1, 0
    gy = g(y)
    fval = math.inf
    while not converged and niter < maxiter:
        fy, gfy = f(y, 'dx')
        fply = gply = Q = 0
        nline = 0
        linesearchdone = False
        while not linesearchdone:
            A(ply)[...] = A(y)
            A(ply)[...] += (-1 / L) * A(gfy)
            pl(ply, L)
            A(xk)[...] = A(ply)
            fply = f(ply)
            A(ply)[...] += -1 * A(y)
            Q2 = dot(gfy, ply)
            Q3 = L / 2 * dot(ply, ply)
            Q = fy + Q2 + Q3
            if verbose:
                print('nline=%d L=%g fply=%g Q=%g fy=%g Q2=%g Q3=%g' % (nline, L, fply, Q, fy, Q2, Q3))
            if fply <= Q:
                linesearchdone = True
            elif nline >= maxline:
                linesearchdone = True
                A(xk)[...] = A(xkm)
            else:
                L = L * Lstep
            nline += 1

        if doFistaUpdate:
            tkp = (1 + math.sqrt(1 + 4 * tk * tk)) / 2
            A(xkm)[...] += -1 * A(xk)
            A(y)[...] = A(xk)
            A(y)[...] += ((1 - tk) / tkp) * A(xkm)
            A(xkm)[...] = A(xk)
        else:
            A(y)[...] = A(xk)
        tk = tkp
        fply = f(y)
        gply = g(y)
        if verbose:
            print('iter=%d eold=%g enew=%g' % (niter, fval, fply + gply))
        niter += 1
        fval = fply + gply
        h = {'nline': nline, 'L': L, 'F': fval, 'Fply': fply, 'Gply': gply, 'Q': Q}
        history.append(h)
        params['L'] = L
        if verbose:
            h['xk'] = xk.clone()
            h['y'] = y.clone()
        if niter > 1 and abs(history[-1]['F'] - history[-2]['F']) <= errthres:
            converged = True
            xinit.copy(y)
            return y, history
        if niter >= maxiter:
            xinit.copy(y)
            return y, history
    raise RuntimeError('not supposed to be here')


fista = FistaLS
