"""optim.rmsprop, as Lua's optim/rmsprop.lua."""
from ._util import A, get, like, xp_of


def rmsprop(opfunc, x, config=None, state=None):
    config = {} if config is None else config
    state = config if state is None else state
    lr = get(config, 'learningRate', 1e-2)
    alpha = get(config, 'alpha', 0.99)
    epsilon = get(config, 'epsilon', 1e-8)
    wd = get(config, 'weightDecay', 0)
    mfill = get(config, 'initialMean', 0)

    fx, dfdx = opfunc(x)
    if wd != 0:
        A(dfdx)[...] += wd * A(x)
    if state.get('m') is None:
        state['m'] = like(dfdx, mfill)
        state['tmp'] = like(dfdx, None)
    g = A(dfdx)
    m, tmp = A(state['m']), A(state['tmp'])
    m *= alpha
    m += (1.0 - alpha) * g * g
    xp_of(x).sqrt(m, out=tmp)
    tmp += epsilon
    A(x)[...] += -lr * g / tmp
    return x, [fx]
