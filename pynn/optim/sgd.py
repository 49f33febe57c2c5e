"""optim.sgd: stochastic gradient descent (momentum, dampening, Nesterov, weight decay(s),
learning-rate decay, per-parameter learning rates), as Lua's optim/sgd.lua."""
from ._util import A, get, like


def sgd(opfunc, x, config=None, state=None):
    config = {} if config is None else config
    state = config if state is None else state
    lr = get(config, 'learningRate', 1e-3)
    lrd = get(config, 'learningRateDecay', 0)
    wd = get(config, 'weightDecay', 0)
    mom = get(config, 'momentum', 0)
    damp = get(config, 'dampening', mom)
    nesterov = get(config, 'nesterov', False)
    lrs = config.get('learningRates')
    wds = config.get('weightDecays')
    state['evalCounter'] = get(state, 'evalCounter', 0)
    nevals = state['evalCounter']
    if nesterov and not (mom > 0 and damp == 0):
        raise AssertionError('Nesterov momentum requires a momentum and zero dampening')

    fx, dfdx = opfunc(x)

    if wd != 0:
        A(dfdx)[...] += wd * A(x)
    elif wds is not None:
        if state.get('decayParameters') is None:
            state['decayParameters'] = like(dfdx, None)
        dp = A(state['decayParameters'])
        dp[...] = A(wds)
        dp *= A(x)
        A(dfdx)[...] += dp

    if mom != 0:
        if state.get('dfdx') is None:
            state['dfdx'] = like(dfdx, None).copy(dfdx)
        else:
            m = A(state['dfdx'])
            m *= mom
            m += (1 - damp) * A(dfdx)
        if nesterov:
            A(dfdx)[...] += mom * A(state['dfdx'])
        else:
            dfdx = state['dfdx']

    clr = lr / (1 + nevals * lrd)

    if lrs is not None:
        if state.get('deltaParameters') is None:
            state['deltaParameters'] = like(dfdx, None)
        dp = A(state['deltaParameters'])
        dp[...] = A(lrs)
        dp *= A(dfdx)
        A(x)[...] += -clr * dp
    else:
        A(x)[...] += -clr * A(dfdx)

    state['evalCounter'] = state['evalCounter'] + 1
    return x, [fx]
