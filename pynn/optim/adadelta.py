"""optim.adadelta (Zeiler), as Lua's optim/adadelta.lua."""
from ._util import A, get, like, xp_of


def adadelta(opfunc, x, config=None, state=None):
    if config is None and state is None:
        print('no state table, ADADELTA initializing')
    config = {} if config is None else config
    state = config if state is None else state
    rho = get(config, 'rho', 0.9)
    eps = get(config, 'eps', 1e-6)
    wd = get(config, 'weightDecay', 0)
    state['evalCounter'] = get(state, 'evalCounter', 0)

    fx, dfdx = opfunc(x)
    if wd != 0:
        A(dfdx)[...] += wd * A(x)
    if state.get('paramVariance') is None:
        for k in ('paramVariance', 'paramStd', 'delta', 'accDelta'):
            state[k] = like(dfdx)
    xp = xp_of(x)
    g = A(dfdx)
    pv, ps, delta, acc = (A(state[k]) for k in ('paramVariance', 'paramStd', 'delta', 'accDelta'))
    pv *= rho
    pv += (1 - rho) * g * g
    ps[...] = pv
    ps += eps
    xp.sqrt(ps, out=ps)
    delta[...] = acc
    delta += eps
    xp.sqrt(delta, out=delta)
    delta /= ps
    delta *= g
    A(x)[...] += -1 * delta
    acc *= rho
    acc += (1 - rho) * delta * delta
    state['evalCounter'] = state['evalCounter'] + 1
    return x, [fx]
