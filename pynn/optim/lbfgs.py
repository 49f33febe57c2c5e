"""optim.lbfgs: limited-memory BFGS with a fixed step or a line search (config.lineSearch,
e.g. optim.lswolfe), as Lua's optim/lbfgs.lua; its recyclable history buffers included.

Returns x, f_hist (the two values Lua documents; Lua's undocumented third value, the
number of evaluations of this call, is not returned so that `x, fs = optim.lbfgs(...)`
ports unchanged: state['funcEval'] counts them)."""
from ._util import A, dot, get


def lbfgs(opfunc, x, config=None, state=None):
    config = {} if config is None else config
    state = config if state is None else state
    maxIter = get(config, 'maxIter', 20)
    maxEval = get(config, 'maxEval', maxIter * 1.25)
    tolFun = get(config, 'tolFun', 1e-5)
    tolX = get(config, 'tolX', 1e-9)
    nCorrection = get(config, 'nCorrection', 100)
    lineSearch = config.get('lineSearch')
    lineSearchOpts = config.get('lineSearchOptions')
    learningRate = get(config, 'learningRate', 1)
    isverbose = get(config, 'verbose', False)

    state['funcEval'] = get(state, 'funcEval', 0)
    state['nIter'] = get(state, 'nIter', 0)

    def verbose(*a):
        if isverbose:
            print('<optim.lbfgs> ', *a)

    f, g = opfunc(x)
    f_hist = [f]
    currentFuncEval = 1
    state['funcEval'] += 1
    p = g.size(1)

    if state.get('tmp1') is None:
        state['tmp1'] = g.new(*g.size()).zero()
    tmp1 = state['tmp1']
    T1 = A(tmp1)
    T1[...] = abs(A(g))
    if T1.sum() <= tolFun:
        verbose('optimality condition below tolFun')
        return x, f_hist

    if state.get('dir_bufs') is None:
        verbose('creating recyclable direction/step/history buffers')
        db = g.new(nCorrection + 1, p)
        sb = g.new(nCorrection + 1, p)
        state['dir_bufs'] = [db.select(1, i + 1) for i in range(nCorrection + 1)]
        state['stp_bufs'] = [sb.select(1, i + 1) for i in range(nCorrection + 1)]

    d = state.get('d')
    t = state.get('t')
    old_dirs = state.get('old_dirs')
    old_stps = state.get('old_stps')
    Hdiag = state.get('Hdiag')
    g_old = state.get('g_old')
    f_old = state.get('f_old')

    nIter = 0
    while nIter < maxIter:
        nIter += 1
        state['nIter'] += 1

        if state['nIter'] == 1:
            d = g.clone().mul(-1)
            old_dirs, old_stps = [], []
            Hdiag = 1
        else:
            y = state['dir_bufs'].pop()
            s = state['stp_bufs'].pop()
            A(y)[...] = A(g) + (-1) * A(g_old)
            A(s)[...] = A(d) * t
            ys = dot(y, s)
            if ys > 1e-10:
                if len(old_dirs) == nCorrection:
                    state['dir_bufs'].append(old_dirs.pop(0))
                    state['stp_bufs'].append(old_stps.pop(0))
                old_dirs.append(s)
                old_stps.append(y)
                Hdiag = ys / dot(y, y)
            else:
                state['dir_bufs'].append(y)
                state['stp_bufs'].append(s)

            k = len(old_dirs)
            if state.get('ro') is None:
                state['ro'] = g.new(nCorrection).zero()
            ro = A(state['ro'])
            for i in range(k):
                ro[i] = 1 / dot(old_stps[i], old_dirs[i])
            q = T1
            if state.get('al') is None:
                state['al'] = g.new(nCorrection).zero()
            al = A(state['al'])
            q[...] = A(g) * -1
            for i in range(k - 1, -1, -1):
                al[i] = float(A(old_dirs[i]) @ q) * ro[i]
                q += -al[i] * A(old_stps[i])
            r = A(d)
            r[...] = q * Hdiag
            for i in range(k):
                be_i = float(A(old_stps[i]) @ r) * ro[i]
                r += (al[i] - be_i) * A(old_dirs[i])
        if g_old is None:
            g_old = g.clone()
        A(g_old)[...] = A(g)
        f_old = f

        gtd = dot(g, d)
        if gtd > -tolX:
            break

        if state['nIter'] == 1:
            T1[...] = abs(A(g))
            t = min(1, 1 / T1.sum()) * learningRate
        else:
            t = learningRate

        lsFuncEval = 0
        if lineSearch is not None and callable(lineSearch):
            f, g, x, t, lsFuncEval = lineSearch(opfunc, x, t, d, f, g, gtd, lineSearchOpts)
            f_hist.append(f)
        else:
            A(x)[...] += t * A(d)
            if nIter != maxIter:
                f, g = opfunc(x)
                lsFuncEval = 1
                f_hist.append(f)

        currentFuncEval += lsFuncEval
        state['funcEval'] += lsFuncEval

        if nIter == maxIter:
            verbose('reached max number of iterations')
            break
        if currentFuncEval >= maxEval:
            verbose('max nb of function evals')
            break
        T1[...] = abs(A(g))
        if T1.sum() <= tolFun:
            verbose('optimality condition below tolFun')
            break
        T1[...] = abs(A(d) * t)
        if T1.sum() <= tolX:
            verbose('step size below tolX')
            break
        if abs(f - f_old) < tolX:
            verbose('function value changing less than tolX')
            break

    state['old_dirs'] = old_dirs
    state['old_stps'] = old_stps
    state['Hdiag'] = Hdiag
    state['g_old'] = g_old
    state['f_old'] = f_old
    state['t'] = t
    state['d'] = d
    return x, f_hist
