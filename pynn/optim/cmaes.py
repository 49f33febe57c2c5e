"""optim.cmaes: Covariance Matrix Adaptation Evolution Strategy (Hansen's barecmaes2), as
Lua's optim/cmaes.lua. Called as Lua does, `optim.cmaes(feval, x, config)` (its state lives in
config). Draws its normal samples through the tensor `normal` method (Torch's stream once pynn's
generator is Torch's Mersenne Twister). Returns bestx, f_hist, counteval, as Lua."""
import math

import numpy as np

from .. import tensor as T
from ._util import A, get


def cmaes(opfunc, x, config=None, state=None):
    config = {} if config is None else config
    state = config if state is None else state
    xmean = A(x).reshape(-1).astype(np.float64).copy()
    N = xmean.shape[0]
    sigma = state.get('sigma')
    ftarget = state.get('ftarget')
    maxEval = get(state, 'maxEval', 1e3 * N ** 2)
    verb_disp = get(state, 'verb_disp', 0)
    min_iterations = get(state, 'min_iterations', 1)
    lam = state.get('popsize')
    if lam is None:
        lam = 4 + int(math.floor(3 * math.log(N)))
    mu = lam / 2
    # torch.range(0, mu-1): integers 0..floor(mu-1)
    idx = np.arange(0, math.floor(mu - 1) + 1, dtype=np.float64)
    weights = math.log(mu + 0.5) - np.log(idx + 1)
    weights = weights / weights.sum()
    mueff = weights.sum() ** 2 / (weights ** 2).sum()
    cc = (4 + mueff / N) / (N + 4 + 2 * mueff / N)
    cs = (mueff + 2) / (N + mueff + 5)
    c1 = 2 / ((N + 1.3) ** 2 + mueff)
    cmu = min(1 - c1, 2 * (mueff - 2 + 1 / mueff) / ((N + 2) ** 2 + mueff))
    damps = 2 * mueff / lam + 0.3 + cs

    pc = np.zeros(N)
    ps = np.zeros(N)
    B = np.eye(N)
    D = np.ones(N)
    C = np.eye(N)
    candidates = np.zeros((lam, N))
    invsqrtC = np.eye(N)
    st = {'eigeneval': 0, 'counteval': 0, 'sigma': sigma, 'B': B, 'D': D, 'C': C,
          'invsqrtC': invsqrtC, 'pc': pc, 'ps': ps}
    f_hist = [opfunc(x)[0]]
    fitvals = np.zeros(lam)
    best = {'x': None, 'f': None, 'evals': 0}
    zt = x.new(N)   # draws go through the tensor's normal() (the library's random stream)

    def ask():
        if st['counteval'] - st['eigeneval'] > lam / (c1 + cmu) / N / 10:
            st['eigeneval'] = st['counteval']
            C = np.triu(st['C']) + np.triu(st['C'], 1).T
            # torch.symeig(C, 'V') reads the upper triangle (uplo 'U'): the eigenvectors' signs,
            # and so the candidates B * z, follow LAPACK's upper-triangle reduction
            Dv, Bm = np.linalg.eigh(C, UPLO='U')
            Dv = np.sqrt(Dv)
            st['C'], st['D'], st['B'] = C, Dv, Bm
            st['invsqrtC'] = Bm @ np.diag(Dv ** -1) @ Bm.T
        for k in range(lam):
            zt.normal(0, 1)
            z = A(zt).astype(np.float64) * st['D']
            candidates[k] = xmean + (st['B'] @ z) * st['sigma']
        return candidates

    def tell(arx):
        nonlocal xmean, fitvals
        st['counteval'] += lam
        xold = xmean.copy()
        order = np.argsort(fitvals, kind='stable')
        fitvals = fitvals[order]
        arx = arx[order[:int(math.floor(mu))]]
        f_hist.append(float(fitvals[0]))
        if best['f'] is None or fitvals[0] < best['f']:
            best['x'], best['f'], best['evals'] = arx[0].copy(), float(fitvals[0]), st['counteval']
        xmean = arx.T @ weights
        y = xmean - xold
        z = st['invsqrtC'] @ y
        sg = st['sigma']
        c = (cs * (2 - cs) * mueff) ** 0.5 / sg
        st['ps'] = st['ps'] - st['ps'] * cs + z * c
        hsig = 1.0 if ((st['ps'] ** 2).sum() / (1 - (1 - cs) ** (2 * st['counteval'] / lam)) / N
                       < 2 + 4. / (N + 1)) else 0.0
        c = (cc * (2 - cc) * mueff) ** 0.5 / sg
        st['pc'] = st['pc'] - st['pc'] * cc + y * c * hsig
        c1a = c1 - (1 - hsig ** 2) * c1 * cc * (2 - cc)
        dv = arx - xold
        Cmu = (weights[:, None, None] * dv[:, :, None] * dv[:, None, :]).sum(0) / sg ** 2
        C = st['C']
        st['C'] = C + ((-c1a - cmu) * C + c1 * np.outer(st['pc'], st['pc']) + cmu * Cmu)
        st['sigma'] = sg * math.exp(min(0.6, (cs / damps) * ((st['ps'] ** 2).sum() / N - 1) / 2))

    def stop():
        res = {}
        if st['counteval'] > 0:
            if st['counteval'] >= maxEval:
                res['evals'] = maxEval
            if ftarget is not None and fitvals.size > 0 and fitvals[0] <= ftarget:
                res['ftarget'] = ftarget
            if st['D'].max() > 1e7 * st['D'].min():
                res['condition'] = 1e7
            if fitvals.size > 1 and fitvals[-1] - fitvals[0] < 1e-12:
                res['tolfun'] = 1e-12
            if st['sigma'] * st['D'].max() < 1e-11:
                res['tolx'] = 1e-11
        return res

    iteration = 0
    while not stop() or iteration < min_iterations:
        iteration += 1
        X = ask()
        cand = x.new().resizeAs(x)
        for i in range(lam):
            A(cand)[...] = X[i].reshape(A(x).shape)
            fitvals[i] = opfunc(cand)[0]
        tell(X.copy())
        if verb_disp:
            it = st['counteval'] / lam
            if it <= 2 or it % verb_disp == 0:
                print('%d:  %6.1f %8.1e %s' % (st['counteval'], st['D'].max() / st['D'].min(),
                                                st['sigma'] * math.sqrt(np.diag(st['C']).max()),
                                                fitvals[0]))
    f_hist.append(best['f'])
    bestx = x.new().resizeAs(x)
    A(bestx)[...] = best['x'].reshape(A(x).shape)
    return bestx, f_hist, st['counteval']
