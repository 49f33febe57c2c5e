"""optim.cg: nonlinear conjugate gradient (Rasmussen's minimize.m), as Lua's optim/cg.lua.
Returns x, fx (the f of every accepted iteration), i (the number of evaluations)."""
import math

from ._util import A, dot, get


def cg(opfunc, x, config=None, state=None):
    config = {} if config is None else config
    state = config if state is None else state
    rho = get(config, 'rho', 0.01)
    sig = get(config, 'sig', 0.5)
    INT = get(config, 'int', 0.1)
    ext = get(config, 'ext', 3.0)
    maxIter = get(config, 'maxIter', 20)
    ratio = get(config, 'ratio', 100)
    maxEval = get(config, 'maxEval', maxIter * 1.25)
    red = 1

    i = 0
    ls_failed = 0
    fx = []
    z1 = z2 = z3 = 0
    d1 = d2 = d3 = 0
    f1 = f2 = f3 = 0

    df1 = _or_new(state.get('df1'), x)
    df2 = _or_new(state.get('df2'), x)
    df3 = _or_new(state.get('df3'), x)
    for t in (df1, df2, df3):
        t.resizeAs(x)
    s = _or_new(state.get('s'), x)
    s.resizeAs(x)
    x0 = _or_new(state.get('x0'), x)
    f0 = 0
    df0 = _or_new(state.get('df0'), x)
    x0.resizeAs(x)
    df0.resizeAs(x)
    X, S, DF0, DF1, DF2, X0 = A(x), A(s), A(df0), A(df1), A(df2), A(x0)

    f1, tdf = opfunc(x)
    fx.append(f1)
    DF1[...] = A(tdf)
    i += 1
    S[...] = DF1 * -1
    d1 = -dot(s, s)
    z1 = red / (1 - d1)

    while i < abs(maxEval):
        X0[...] = X
        f0 = f1
        DF0[...] = DF1
        X += z1 * S
        f2, tdf = opfunc(x)
        DF2[...] = A(tdf)
        i += 1
        d2 = dot(df2, s)
        f3, d3, z3 = f1, d1, -z1
        m = min(maxIter, maxEval - i)
        success = 0
        limit = -1
        while True:
            while (f2 > f1 + z1 * rho * d1 or d2 > -sig * d1) and m > 0:
                limit = z1
                if f2 > f1:
                    z2 = z3 - (0.5 * d3 * z3 * z3) / (d3 * z3 + f2 - f3)
                else:
                    AA = 6 * (f2 - f3) / z3 + 3 * (d2 + d3)
                    B = 3 * (f3 - f2) - z3 * (d3 + 2 * d2)
                    z2 = (_sqrt(B * B - AA * d2 * z3 * z3) - B) / AA if AA != 0 else _div0(
                        _sqrt(B * B - AA * d2 * z3 * z3) - B)
                if z2 != z2 or z2 in (math.inf, -math.inf):
                    z2 = z3 / 2
                z2 = max(min(z2, INT * z3), (1 - INT) * z3)
                z1 = z1 + z2
                X += z2 * S
                f2, tdf = opfunc(x)
                DF2[...] = A(tdf)
                i += 1
                m -= 1
                d2 = dot(df2, s)
                z3 = z3 - z2
            if f2 > f1 + z1 * rho * d1 or d2 > -sig * d1:
                break
            elif d2 > sig * d1:
                success = 1
                break
            elif m == 0:
                break
            AA = 6 * (f2 - f3) / z3 + 3 * (d2 + d3)
            B = 3 * (f3 - f2) - z3 * (d3 + 2 * d2)
            den = B + _sqrt(B * B - AA * d2 * z3 * z3)
            z2 = -d2 * z3 * z3 / den if den != 0 else _div0(-d2 * z3 * z3)
            if z2 != z2 or z2 in (math.inf, -math.inf) or z2 < 0:
                if limit < -0.5:
                    z2 = z1 * (ext - 1)
                else:
                    z2 = (limit - z1) / 2
            elif limit > -0.5 and (z2 + z1) > limit:
                z2 = (limit - z1) / 2
            elif limit < -0.5 and (z2 + z1) > z1 * ext:
                z2 = z1 * (ext - 1)
            elif z2 < -z3 * INT:
                z2 = -z3 * INT
            elif limit > -0.5 and z2 < (limit - z1) * (1 - INT):
                z2 = (limit - z1) * (1 - INT)
            f3, d3, z3 = f2, d2, -z2
            z1 = z1 + z2
            X += z2 * S
            f2, tdf = opfunc(x)
            DF2[...] = A(tdf)
            i += 1
            m -= 1
            d2 = dot(df2, s)
        if success == 1:
            f1 = f2
            fx.append(f1)
            ss = (dot(df2, df2) - dot(df2, df1)) / dot(df1, df1)
            S *= ss
            S += -1 * DF2
            tmp = DF1.copy()
            DF1[...] = DF2
            DF2[...] = tmp
            d2 = dot(df1, s)
            if d2 > 0:
                S[...] = DF1
                S *= -1
                d2 = -dot(s, s)
            z1 = z1 * min(ratio, d1 / (d2 - 1e-320))
            d1 = d2
            ls_failed = 0
        else:
            X[...] = X0
            f1 = f0
            DF1[...] = DF0
            # Lua: `if ls_failed or i > maxEval`: 0 is true in Lua, so a failed line search
            # always ends the call
            break
    state['df0'] = df0
    state['df1'] = df1
    state['df2'] = df2
    state['df3'] = df3
    state['x0'] = x0
    state['s'] = s
    return x, fx, i


def _sqrt(v):
    return math.sqrt(v) if v >= 0 else math.nan


def _div0(num):
    """Lua's division by zero: +-inf, or nan for 0/0."""
    if num != num or num == 0:
        return math.nan
    return math.inf if num > 0 else -math.inf


def _or_new(t, x):
    return x.new() if t is None else t
