"""optim.rprop: resilient backpropagation (Riedmiller), as Lua's optim/rprop.lua."""
from .. import tensor as T
from ._util import A, get, xp_of


def rprop(opfunc, x, config=None, state=None):
    if config is None and state is None:
        print('no state table RPROP initializing')
    config = {} if config is None else config
    state = config if state is None else state
    stepsize = get(config, 'stepsize', 0.1)
    etaplus = get(config, 'etaplus', 1.2)
    etaminus = get(config, 'etaminus', 0.5)
    stepsizemax = get(config, 'stepsizemax', 50.0)
    stepsizemin = get(config, 'stepsizemin', 1e-6)
    niter = get(config, 'niter', 1)

    hfx = []
    for _ in range(niter):
        fx, dfdx = opfunc(x)
        if state.get('delta') is None:
            size = dfdx.size()
            state['delta'] = dfdx.new(*size).zero()
            state['stepsize'] = dfdx.new(*size).fill(stepsize)
            state['sign'] = dfdx.new(*size)
            for k in ('psign', 'nsign', 'zsign', 'dminmax'):
                state[k] = T.Tensor(*size, kind='Byte', device=x.device)
        xp = xp_of(x)
        g = A(dfdx)
        sign, delta, step = A(state['sign']), A(state['delta']), A(state['stepsize'])
        psign, nsign, zsign, dmm = (A(state[k]) for k in ('psign', 'nsign', 'zsign', 'dminmax'))
        xp.multiply(g, delta, out=sign)
        xp.sign(sign, out=sign)
        psign[...] = sign > 0
        nsign[...] = sign < 0
        zsign[...] = sign == 0
        sign[psign.astype(bool)] = etaplus
        sign[nsign.astype(bool)] = etaminus
        sign[zsign.astype(bool)] = 1
        step *= sign
        dmm[...] = step > stepsizemax
        step[dmm.astype(bool)] = stepsizemax
        dmm[...] = step < stepsizemin
        step[dmm.astype(bool)] = stepsizemin
        g[nsign.astype(bool)] = 0
        xp.sign(g, out=sign)
        A(x)[...] += -1 * sign * step
        delta[...] = g
        hfx.append(fx)
    return x, hfx
