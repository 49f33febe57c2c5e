"""optim.adamax (the infinity-norm variant of Adam), as Lua's optim/adamax.lua."""
from ._util import A, get, like, xp_of


def adamax(opfunc, x, config=None, state=None):
    config = {} if config is None else config
    state = config if state is None else state
    lr = get(config, 'learningRate', 0.002)
    beta1 = get(config, 'beta1', 0.9)
    beta2 = get(config, 'beta2', 0.999)
    epsilon = get(config, 'epsilon', 1e-38)
    wd = get(config, 'weightDecay', 0)

    fx, dfdx = opfunc(x)
    if wd != 0:
        A(dfdx)[...] += wd * A(x)

    state['t'] = get(state, 't', 0)
    if state.get('m') is None:
        state['m'] = like(dfdx)
    if state.get('u') is None:
        state['u'] = like(dfdx)
    if state.get('max') is None:
        state['max'] = x.new(2, *dfdx.size()).zero()
    state['t'] = state['t'] + 1

    g = A(dfdx)
    m = A(state['m'])
    m *= beta1
    m += (1 - beta1) * g
    mx = A(state['max'])
    mx[0] = A(state['u'])
    mx[0] *= beta2
    xp = xp_of(x)
    xp.abs(g, out=mx[1])
    mx[1] += epsilon
    # u:max(max, 1) leaves u of size 1 x n (Torch keeps the reduced dimension)
    state['u'].resize(1, *dfdx.size())
    u = A(state['u'])
    u[...] = mx.max(axis=0)[None]
    bc1 = 1 - beta1 ** state['t']
    step = lr / bc1
    A(x)[...] += -step * m / u.reshape(m.shape)
    return x, [fx]
