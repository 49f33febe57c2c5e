"""optim.nag: Nesterov's accelerated gradient (Sutskever's formulation), as Lua's optim/nag.lua."""
from ._util import A, get, like


def nag(opfunc, x, config=None, state=None):
    config = {} if config is None else config
    state = config if state is None else state
    lr = get(config, 'learningRate', 1e-3)
    lrd = get(config, 'learningRateDecay', 0)
    wd = get(config, 'weightDecay', 0)
    mom = get(config, 'momentum', 0.9)
    damp = get(config, 'dampening', mom)  # read (as Lua) but unused by the update
    lrs = config.get('learningRates')
    state['evalCounter'] = get(state, 'evalCounter', 0)
    nevals = state['evalCounter']
    if mom <= 0:
        raise ValueError('Momentum must be positive for Nesterov Accelerated Gradient')

    if state.get('dfdx') is not None:
        A(x)[...] += mom * A(state['dfdx'])
    fx, dfdx = opfunc(x)
    if wd != 0:
        A(dfdx)[...] += wd * A(x)
    clr = lr / (1 + nevals * lrd)
    if state.get('dfdx') is None:
        state['dfdx'] = like(dfdx, 0)
    else:
        A(state['dfdx'])[...] *= mom
    if lrs is not None:
        if state.get('deltaParameters') is None:
            state['deltaParameters'] = like(dfdx, None)
        dp = A(state['deltaParameters'])
        dp[...] = A(lrs)
        dp *= A(dfdx)
        A(x)[...] += -clr * dp
        A(state['dfdx'])[...] += -clr * dp
    else:
        A(x)[...] += -clr * A(dfdx)
        A(state['dfdx'])[...] += -clr * A(dfdx)
    state['evalCounter'] = state['evalCounter'] + 1
    return x, [fx]
