"""pynn.optim against real Lua optim: every run of ../shared/reference/lua-optim/ (iterates,
returned f values, extra returns, evaluation points and the final state, 1e-10 relative), plus
resuming, Logger's text format and ConfusionMatrix's counts and printing.

The random algorithms (cmaes, de) replay Lua's draws exactly through pynn's Mersenne Twister
(cmaes from the global stream seeded with the run's `seed`, de from its own generator seeded 1).
"""
import os
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

import pynn
import pynn.optim as optim

REF = Path(__file__).resolve().parents[1] / '..' / 'shared' / 'reference' / 'lua-optim'
RTOL = 1e-10
ALGOS = ['sgd', 'adam', 'adamax', 'adagrad', 'adadelta', 'rmsprop', 'nag', 'asgd', 'rprop',
         'lbfgs', 'cg', 'cmaes', 'de', 'fista', 'checkgrad', 'lswolfe', 'polyinterp']
RANDOM = {'cmaes', 'de'}


def _runs():
    out = []
    for a in ALGOS:
        f = REF / (a + '.t7')
        if not f.exists():
            continue
        for i, r in enumerate(pynn.load(str(f))):
            out.append(pytest.param(a, i, id='%s/%d-%s-%s' % (a, i, r.get('variant', ''), r.get('problem', ''))))
    return out


RUNS = _runs()
needs_ref = pytest.mark.skipif(not REF.exists(), reason='../shared/reference/lua-optim is absent')


def arr(x):
    return x.numpy() if isinstance(x, pynn.Tensor) else np.asarray(x, dtype=np.float64)


def magnitude(want):
    """The largest magnitude in a Lua value (NaN ignored): the scale of the 1e-10 tolerance,
    per field of a run (all iterates, all f values, one state field), as the conformance
    harness compares a tensor relative to its largest element."""
    if isinstance(want, dict):
        return max([magnitude(v) for v in want.values()] + [0.0])
    if isinstance(want, list):
        return max([magnitude(v) for v in want] + [0.0])
    if isinstance(want, pynn.Tensor) or (isinstance(want, (int, float)) and not isinstance(want, bool)):
        w = arr(want).astype(np.float64).reshape(-1)
        return float(np.abs(w[~np.isnan(w)]).max(initial=0.0))
    return 0.0


def close(got, want, what, scale=None):
    g, w = arr(got).astype(np.float64), arr(want).astype(np.float64)
    assert g.size == w.size, '%s: %d elements, Lua %d' % (what, g.size, w.size)
    g, w = g.reshape(-1), w.reshape(-1)
    keep = ~np.isnan(w)   # NaN: memory Lua allocated and never wrote
    scale = max(magnitude(want) if scale is None else scale, 1e-300)
    err = np.abs(g[keep] - w[keep]).max(initial=0.0)
    assert err <= RTOL * scale, '%s: max error %g (Lua scale %g)\n got %s\nwant %s' % (what, err, scale, g, w)


def compare(got, want, what, scale=None):
    if scale is None and not isinstance(want, dict):
        scale = magnitude(want)
    if isinstance(want, dict):
        assert isinstance(got, dict), what
        for k, v in want.items():
            assert k in got, '%s: missing field %r' % (what, k)
            compare(got[k], v, '%s.%s' % (what, k), scale)
    elif isinstance(want, list):
        if want and isinstance(want[0], pynn.Tensor) and not isinstance(got, list):
            raise AssertionError('%s: expected a list' % what)
        assert len(got) == len(want), '%s: length %d, Lua %d' % (what, len(got), len(want))
        for i, (g, w) in enumerate(zip(got, want)):
            compare(g, w, '%s[%d]' % (what, i + 1), scale)
    elif isinstance(want, (pynn.Tensor, int, float)) and not isinstance(want, bool):
        close(got, want, what, scale)
    else:
        assert got == want, '%s: %r, Lua %r' % (what, got, want)


def fma_dot(a, b):
    """r:dot(r) as Lua's BLAS computed it: a sequential chain of fused multiply-adds (the
    finite differences of checkgrad see the last bit of f)."""
    s = Fraction(0)
    acc = 0.0
    for u, v in zip(a.tolist(), b.tolist()):
        acc = float(Fraction(u) * Fraction(v) + Fraction(acc))
    return acc


def table(v):
    """Empty Lua tables load as []: a config/state is a dict."""
    return {} if isinstance(v, list) and not v else dict(v)


def problem(run, log=None):
    """feval for the run's problem: a fresh gradient tensor each call, as optim's tests do."""
    name = run['problem']
    if name == 'rosenbrock':
        def feval(x):
            if log is not None:
                log.append(x.clone())
            X = arr(x)
            d = X.shape[0]
            x1 = X[:d - 1].copy()
            x1 *= x1
            x1 *= -1
            x1 += X[1:]
            x1 *= x1
            x1 *= 100
            x0 = X[:d - 1].copy()
            x0 *= -1
            x0 += 1
            x0 *= x0
            x1 += x0
            f = float(x1.sum())
            dx = x.new().resizeAs(x).zero()
            D = arr(dx)
            x1[...] = X[:d - 1]
            x1 *= x1
            x1 *= -1
            x1 += X[1:]
            x1 *= X[:d - 1]
            x1 *= -400
            x0[...] = X[:d - 1]
            x0 *= -1
            x0 += 1
            x0 *= -2
            x1 += x0
            D[:d - 1] = x1
            x0[...] = X[:d - 1]
            x0 *= x0
            x0 *= -1
            x0 += X[1:]
            x0 *= 200
            D[1:] += x0
            return f, dx
        return feval
    pd = run['problem_data']
    Am, b = arr(pd['A']), arr(pd['b'])

    def feval(x):
        if log is not None:
            log.append(x.clone())
        r = Am @ arr(x) - b
        dx = x.new().resizeAs(x)
        arr(dx)[...] = Am.T @ r
        return 0.5 * fma_dot(r, r), dx
    return feval


@needs_ref
@pytest.mark.parametrize('algo,index', RUNS)
def test_lua_run(algo, index):
    run = pynn.load(str(REF / (algo + '.t7')))[index]
    if algo == 'checkgrad':
        x = run['x'].clone()
        args = (problem(run), x) + ((run['eps'],) if 'eps' in run else ())
        diff, dC, dC_est = optim.checkgrad(*args)
        compare(dC, run['dC'], 'dC')
        compare(dC_est, run['dC_est'], 'dC_est')
        # diff is |dC - dC_est| / |dC + dC_est|: a ratio of roundoff (1e-12); compared at the
        # scale of its numerator's terms: 1e-10 of |dC|, relative to |dC + dC_est|
        assert abs(diff - run['diff']) <= 1e-10
        return
    if algo == 'lswolfe':
        x = run['x0'].clone()
        log = []
        res = optim.lswolfe(problem(run, log), x, run['t0'], run['d'], run['f'], run['g'].clone(),
                            run['gtd'], run.get('options'))
        compare(list(res), run['results'], 'results')
        compare(x, run['x_after'], 'x_after')
        return
    if algo == 'polyinterp':
        args = [run['points']]
        if 'xminBound' in run:
            args += [run['xminBound'], run['xmaxBound']]
        res = optim.polyinterp(*args)
        res = list(res) if isinstance(res, tuple) else [res]
        compare(res, run['results'], 'results')
        return
    if algo == 'fista':
        pd = run['problem_data']
        Am, b, lam = arr(pd['A']), arr(pd['b']), pd['lambda']

        def f(x, mode=None):
            r = Am @ arr(x) - b
            fx = float(0.5 * (r @ r))
            if mode == 'dx':
                g = x.new().resizeAs(x)
                arr(g)[...] = Am.T @ r
                return fx, g
            return fx

        def g(x):
            return float(lam * np.abs(arr(x)).sum())

        def pl(x, L):
            X = arr(x)
            X[...] = np.sign(X) * np.maximum(np.abs(X) - lam / L, 0)

        x = run['x0'].clone()
        config = table(run['config'])
        result, history = optim.FistaLS(f, g, pl, x, config)
        compare(result, run['result'], 'result')
        compare(x, run['x_after'], 'x_after')
        compare(history, run['history'], 'history')
        compare(config, table(run['config_after']), 'config_after')
        return

    config = table(run['config'])
    if config.get('lineSearch') == 'optim.lswolfe':
        config['lineSearch'] = optim.lswolfe
    pynn.manualSeed(run['seed'])
    log = []
    feval = problem(run, log)
    fn = getattr(optim, algo)
    x = run['x0'].clone()
    state = {} if algo != 'cmaes' else None
    xs, fss, extras, nevals = [], [], [], []
    for i in range(run['steps']):
        before = len(log)
        res = fn(feval, x, config) if algo == 'cmaes' else fn(feval, x, config, state)
        if algo in RANDOM:
            # Lua's recorded runs keep x: every call starts from x0 (cmaes evaluates x0 first
            # at each call) and xs[i] is x0; the returned best point is checked by its f value
            best, fs = res[0], res[1]
            assert best is not x
            if algo == 'cmaes':
                assert feval(best)[0] == fs[-1], 'cmaes: f(best) %r, f_hist[#f_hist] %r' % (feval(best)[0], fs[-1])
            else:   # de's best is a member or a child it evaluated: its f is one of fx's
                assert feval(best)[0] in arr(fs).tolist(), 'de: f(best) %r not among fx' % feval(best)[0]
            del log[-1]
        else:
            x, fs = res[0], res[1]
        xs.append(x.clone())
        fss.append(fs.clone() if isinstance(fs, pynn.Tensor) else list(fs))
        if len(res) > 2:
            extras.append(res[2].clone() if isinstance(res[2], pynn.Tensor) else res[2])
        nevals.append(len(log) - before)
    compare(xs, run['xs'], 'xs')
    compare(fss, run['fs'], 'fs')
    assert nevals == list(run['nevals']), 'evaluations per call %s, Lua %s' % (nevals, run['nevals'])
    compare(log, run['evals'], 'evals')
    if run.get('extra') and algo == 'lbfgs':
        # Lua's undocumented third value (evaluations of the call): pynn.optim.lbfgs returns
        # the two documented values; the count is the evaluations observed
        assert list(run['extra']) == nevals[:len(run['extra'])]  # Lua's list stops at the first early return (nil)
    elif run.get('extra'):
        compare(extras, run['extra'], 'extra')
    want_cfg = table(run['config_after'])
    if want_cfg.get('lineSearch') == 'optim.lswolfe':
        want_cfg['lineSearch'] = config['lineSearch']
    compare({k: v for k, v in config.items() if k in want_cfg}, want_cfg, 'config_after')
    assert set(config) == set(want_cfg), 'config fields %s, Lua %s' % (sorted(config), sorted(want_cfg))
    if 'state' in run and algo != 'cmaes':
        want = table(run['state'])
        assert set(state) == set(want), 'state fields %s, Lua %s' % (sorted(state), sorted(want))
        # The final state holds gradients and differences of gradients near the optimum, which
        # are differences of nearly equal numbers: their absolute error is ~eps * |g(x0)| however
        # exactly each step is computed (Lua's BLAS fuses multiply-adds; NumPy does not). Each
        # field is compared at 1e-10 relative to its largest magnitude or to |g(x0)|, the larger.
        g0 = magnitude(problem(run)(run['x0'].clone())[1])
        for k, v in want.items():
            compare(state[k], v, 'state.' + k, max(magnitude(v), g0))


@needs_ref
@pytest.mark.parametrize('algo', ['sgd', 'adam', 'rmsprop', 'lbfgs', 'adagrad', 'nag'])
def test_resume_continues_identically(algo):
    """A run split in two with the state carried over equals the whole run: copying config and
    state (dicts of tensors, as a training script saves them) and continuing gives the same x."""
    import copy
    run = [r for r in pynn.load(str(REF / (algo + '.t7'))) if r['problem'] == 'lsq'][0]
    config = table(run['config'])
    feval = problem(run)
    x1, s1 = run['x0'].clone(), {}
    for _ in range(10):
        x1 = getattr(optim, algo)(feval, x1, dict(config), s1)[0]
    x2, s2 = run['x0'].clone(), {}
    for _ in range(5):
        x2 = getattr(optim, algo)(feval, x2, dict(config), s2)[0]
    s2 = copy.deepcopy(s2)
    x2 = x2.clone()
    for _ in range(5):
        x2 = getattr(optim, algo)(feval, x2, dict(config), s2)[0]
    np.testing.assert_array_equal(arr(x1), arr(x2))


def test_sgd_per_parameter_rates_and_decays():
    """learningRates and weightDecays (vectors) against the update written out by hand."""
    x = pynn.Tensor([1.0, -2.0, 3.0])
    lrs = pynn.Tensor([0.1, 0.2, 0.3])
    wds = pynn.Tensor([0.01, 0.0, 0.5])
    g0 = np.array([0.5, 0.25, -1.0])

    def feval(x):
        return 0.0, pynn.from_numpy(g0.copy())
    cfg = {'learningRate': 0.5, 'learningRates': lrs, 'weightDecays': wds}
    state = {}
    x0 = arr(x).copy()
    optim.sgd(feval, x, cfg, state)
    want = x0 - 0.5 * (arr(lrs) * (g0 + arr(wds) * x0))
    np.testing.assert_allclose(arr(x), want, rtol=1e-15)
    assert state['evalCounter'] == 1 and 'decayParameters' in state and 'deltaParameters' in state


def test_sgd_nesterov_requires_zero_dampening():
    with pytest.raises(AssertionError):
        optim.sgd(lambda x: (0.0, x.clone()), pynn.Tensor([1.0]), {'momentum': 0.9, 'nesterov': True})


def test_logger_text_format(tmp_path):
    path = tmp_path / 'sub' / 'train.log'
    log = optim.Logger(str(path))
    log.setNames(['training error', 'test error'])
    log.add([0.5, 0.25])
    log.add([1e-3, 12345.678])
    text = path.read_text()
    assert text == ('training error\ttest error\t\n'
                    '%11.4e\t%11.4e\t\n' % (0.5, 0.25) +
                    '%11.4e\t%11.4e\t\n' % (1e-3, 12345.678))
    assert ' 5.0000e-01' in text
    log2 = optim.Logger(str(tmp_path / 'b.log'))
    log2.add({'loss': 2.0})
    log2.add({'loss': 1.0})
    assert (tmp_path / 'b.log').read_text() == 'loss\t\n 2.0000e+00\t\n 1.0000e+00\t\n'


def test_logger_plot_png(tmp_path):
    pytest.importorskip('matplotlib')
    log = optim.Logger(str(tmp_path / 'c.log'))
    for v in (3.0, 2.0, 1.0):
        log.add({'loss': v})
    out = log.plot()
    assert out and os.path.exists(out)


@pytest.mark.parametrize('algo', ['cmaes', 'de'])
def test_random_algorithms_run_and_improve(algo):
    """cmaes and de follow Lua's protocol on a fresh seed: they return a new x (not the input,
    which they leave unchanged) and f values, and the best f found is below f(x0)."""
    pynn.manualSeed(3)
    run = {'problem': 'rosenbrock'}
    feval = problem(run)
    x = pynn.Tensor([-1.2, 1.0])
    f0 = feval(x)[0]
    if algo == 'cmaes':
        cfg = {'sigma': 0.5, 'maxEval': 60, 'popsize': 6, 'verb_disp': 0}
        best, fs, evals = optim.cmaes(feval, x, cfg)
        assert evals == 60 and fs[0] == f0 and fs[-1] < f0 and len(fs) == 2 + 60 // 6
    else:
        cfg = {'scaleFactor': 0.5, 'crossoverRate': 0.9, 'maxFEs': 80, 'maxRegion': 2, 'minRegion': -2, 'popsize': 8}
        best, fs = optim.de(feval, x, cfg, {})
        assert fs.size() == (80,)
        assert feval(best)[0] <= arr(fs).min() + 1e-12
    assert best is not x and arr(x).tolist() == [-1.2, 1.0]


def test_confusion_matrix_counts_and_printing():
    conf = optim.ConfusionMatrix(['cat', 'dog', 'person'])
    preds = np.array([[0.9, 0.05, 0.05], [0.1, 0.8, 0.1], [0.2, 0.7, 0.1], [0.1, 0.1, 0.8]])
    targets = np.array([1, 2, 3, 3])
    conf.batchAdd(pynn.from_numpy(preds), pynn.from_numpy(targets.astype(np.float64)))
    conf.add(pynn.from_numpy(np.array([0.2, 0.3, 0.5])), 1)
    conf.add(2, 2)
    m = conf.mat.numpy()
    want = np.zeros((3, 3), dtype=np.int64)
    for p, t in [(1, 1), (2, 2), (2, 3), (3, 3), (3, 1), (2, 2)]:
        want[t - 1, p - 1] += 1
    np.testing.assert_array_equal(m, want)
    conf.updateValids()
    assert conf.totalValid == pytest.approx(4 / 6)
    np.testing.assert_allclose(conf.valids.numpy(), [0.5, 1.0, 0.5], rtol=1e-7)
    s = str(conf)
    lines = s.split('\n')
    assert lines[0] == 'ConfusionMatrix:'
    assert lines[1] == '[[       1       0       1]   50.000% \t[class: cat]'
    assert lines[2] == ' [       0       2       0]   100.000% \t[class: dog]'
    assert lines[3] == ' [       0       1       1]]  50.000% \t[class: person]'
    assert lines[4] == ' + average row correct: 66.666666666667% '
    assert lines[6] == ' + global correct: 66.666666666667%'
    conf.zero()
    assert conf.mat.numpy().sum() == 0 and conf.totalValid == 0
