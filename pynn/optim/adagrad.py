"""optim.adagrad, as Lua's optim/adagrad.lua."""
from ._util import A, get, like, xp_of


def adagrad(opfunc, x, config=None, state=None):
    if config is None and state is None:
        print('no state table, ADAGRAD initializing')
    config = {} if config is None else config
    state = config if state is None else state
    lr = get(config, 'learningRate', 1e-3)
    lrd = get(config, 'learningRateDecay', 0)
    wd = get(config, 'weightDecay', 0)
    state['evalCounter'] = get(state, 'evalCounter', 0)
    nevals = state['evalCounter']

    fx, dfdx = opfunc(x)
    if wd != 0:
        A(dfdx)[...] += wd * A(x)
    clr = lr / (1 + nevals * lrd)
    if state.get('paramVariance') is None:
        state['paramVariance'] = like(dfdx)
        state['paramStd'] = like(dfdx, None)
    g = A(dfdx)
    pv = A(state['paramVariance'])
    pv += 1 * g * g
    state['paramStd'].resizeAs(state['paramVariance'])
    ps = A(state['paramStd'])
    xp_of(x).sqrt(pv, out=ps)
    ps += 1e-10
    A(x)[...] += -clr * g / ps
    state['evalCounter'] = state['evalCounter'] + 1
    return x, [fx]
