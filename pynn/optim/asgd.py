"""optim.asgd: averaged SGD (Bottou's sgd-2.0), as Lua's optim/asgd.lua. Returns x, {f}, ax."""
import math

from ._util import A, get, like


def asgd(opfunc, x, config=None, state=None):
    config = {} if config is None else config
    state = config if state is None else state
    config['eta0'] = get(config, 'eta0', 1e-4)
    config['lambda'] = get(config, 'lambda', 1e-4)
    config['alpha'] = get(config, 'alpha', 0.75)
    config['t0'] = get(config, 't0', 1e6)
    state['eta_t'] = get(state, 'eta_t', config['eta0'])
    state['mu_t'] = get(state, 'mu_t', 1)
    state['t'] = get(state, 't', 0)

    fx, dfdx = opfunc(x)
    X = A(x)
    X *= 1 - config['lambda'] * state['eta_t']
    X += -state['eta_t'] * A(dfdx)
    if state.get('ax') is None:
        state['ax'] = like(x)
    if state.get('tmp') is None:
        state['tmp'] = like(state['ax'], None)
    ax, tmp = A(state['ax']), A(state['tmp'])
    if state['mu_t'] != 1:
        tmp[...] = X
        tmp += -1 * ax
        tmp *= state['mu_t']
        ax += tmp
    else:
        ax[...] = X
    state['t'] = state['t'] + 1
    state['eta_t'] = config['eta0'] / math.pow(1 + config['lambda'] * config['eta0'] * state['t'],
                                               config['alpha'])
    state['mu_t'] = 1 / max(1, state['t'] - config['t0'])
    return x, [fx], state['ax']
