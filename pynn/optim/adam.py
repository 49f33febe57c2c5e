"""optim.adam (Kingma & Ba), as Lua's optim/adam.lua."""
import math

from ._util import A, get, like, xp_of


def adam(opfunc, x, config=None, state=None):
    config = {} if config is None else config
    state = config if state is None else state
    lr = get(config, 'learningRate', 0.001)
    lrd = get(config, 'learningRateDecay', 0)
    beta1 = get(config, 'beta1', 0.9)
    beta2 = get(config, 'beta2', 0.999)
    epsilon = get(config, 'epsilon', 1e-8)
    wd = get(config, 'weightDecay', 0)

    fx, dfdx = opfunc(x)
    if wd != 0:
        A(dfdx)[...] += wd * A(x)

    state['t'] = get(state, 't', 0)
    for k in ('m', 'v', 'denom'):
        if state.get(k) is None:
            state[k] = like(dfdx)
    clr = lr / (1 + state['t'] * lrd)
    state['t'] = state['t'] + 1

    g = A(dfdx)
    m, v, denom = A(state['m']), A(state['v']), A(state['denom'])
    m *= beta1
    m += (1 - beta1) * g
    v *= beta2
    v += (1 - beta2) * g * g
    xp = xp_of(x)
    xp.sqrt(v, out=denom)
    denom += epsilon

    bc1 = 1 - beta1 ** state['t']
    bc2 = 1 - beta2 ** state['t']
    step = clr * math.sqrt(bc2) / bc1
    A(x)[...] += -step * m / denom
    return x, [fx]
