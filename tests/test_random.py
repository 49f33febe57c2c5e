"""Torch's random streams: the Mersenne Twister of TH/THRandom.c and its transforms.

Truths: NumPy's legacy RandomState (the same MT19937 with the same init_genrand seeding) for the
raw 32-bit words; a scalar transcription of THRandom.c's transforms (Box-Muller with its cached
value, ...) for the vectorized fills; numbers Lua Torch printed; and the weights Lua nn's
constructors drew after torch.manualSeed (lua-nn fixtures, t7/lua networks).
"""
import json
import math
import time
from pathlib import Path

import numpy as np
import pytest

import pynn
from pynn import rng

REF = Path(__file__).resolve().parents[1] / '..' / 'shared' / 'reference'


def _words(seed, n):
    return np.random.RandomState(seed).randint(0, 2 ** 32, size=n, dtype=np.uint64)


@pytest.mark.parametrize('seed', [0, 1, 5, 123456789, 2 ** 32 - 1])
def test_words_are_mt19937(seed):
    g = rng.Generator(seed)
    got = np.concatenate([g.words(1), g.words(700), g.words(1), g.words(1500)])
    assert (got == _words(seed, got.size)).all()


def test_lua_printed_rand():
    pynn.manualSeed(5)
    x = pynn.rand(3, 4)
    assert np.allclose(np.asarray(x).reshape(-1)[:4], [0.2220, 0.0552, 0.8707, 0.8313], atol=1e-4)


class _ScalarTH:
    """THRandom.c transcribed scalar by scalar on top of MT words (the independent truth)."""

    def __init__(self, seed):
        self.w = iter(_words(seed, 20000).tolist())
        self.valid = False

    def u(self):
        return next(self.w) * (1.0 / 4294967296.0)

    def normal(self, mean, std):
        if not self.valid:
            self.x, self.y = self.u(), self.u()
            self.rho = math.sqrt(-2. * math.log(1.0 - self.y))
            self.valid = True
            return self.rho * math.cos(2. * math.pi * self.x) * std + mean
        self.valid = False
        return self.rho * math.sin(2. * math.pi * self.x) * std + mean


@pytest.mark.parametrize('sizes', [(1,), (3,), (2, 3), (5, 7)])
def test_normal_cache_across_calls(sizes):
    ref = _ScalarTH(11)
    pynn.manualSeed(11)
    for n in sizes:   # odd counts leave a cached value for the next call, as Torch
        got = np.asarray(pynn.Tensor(n).normal(1.5, 2.0))
        want = [ref.normal(1.5, 2.0) for _ in range(n)]
        assert np.allclose(got, want, rtol=0, atol=1e-12)
    assert pynn.normal(0, 1) == pytest.approx(ref.normal(0, 1), abs=1e-12)


def test_transforms_match_scalar_formulas():
    ref = _ScalarTH(3)
    pynn.manualSeed(3)
    t = pynn.Tensor(6)
    assert np.allclose(t.uniform(-2, 3), [ref.u() * 5 - 2 for _ in range(6)], atol=1e-14)
    assert np.allclose(t.exponential(2), [-1. / 2 * math.log(1 - ref.u()) for _ in range(6)], atol=1e-14)
    assert np.allclose(t.cauchy(1, 2), [1 + 2 * math.tan(math.pi * (ref.u() - .5)) for _ in range(6)],
                       atol=1e-12)
    assert np.allclose(t.geometric(0.3), [int(math.log(1 - ref.u()) / math.log(0.3)) + 1 for _ in range(6)])
    assert np.allclose(t.bernoulli(0.4), [float(ref.u() <= 0.4) for _ in range(6)])
    assert np.allclose(t.random(3, 9), [next(ref.w) % 7 + 3 for _ in range(6)])
    assert np.allclose(t.logNormal(1, 0.5), [math.exp(ref.normal(1, 0.5)) for _ in range(6)], atol=1e-12)


def test_rng_state_roundtrip():
    pynn.manualSeed(7)
    pynn.randn(3)                       # leaves a cached normal
    state = pynn.getRNGState()
    assert state.type() == 'torch.ByteTensor'
    a = pynn.randn(5).clone()
    b = pynn.rand(700).clone()
    pynn.setRNGState(state)
    assert np.array_equal(np.asarray(pynn.randn(5)), np.asarray(a))
    assert np.array_equal(np.asarray(pynn.rand(700)), np.asarray(b))
    with pytest.raises(ValueError, match='setRNGState'):
        pynn.setRNGState(pynn.ByteTensor(10))


def test_float_fill_and_meta():
    pynn.manualSeed(2)
    f = pynn.FloatTensor(4).uniform()
    pynn.manualSeed(2)
    d = pynn.DoubleTensor(4).uniform()
    assert f.type() == 'torch.FloatTensor'
    assert np.allclose(np.asarray(f), np.asarray(d).astype(np.float32))
    m = pynn.MetaDoubleTensor(3, 4)
    assert m.uniform() is m and m.normal() is m


def test_bad_arguments_name_the_function():
    with pytest.raises(ValueError, match='normal'):
        pynn.Tensor(3).normal(0, -1)
    with pytest.raises(ValueError, match='geometric'):
        pynn.Tensor(3).geometric(1.5)
    with pytest.raises(ValueError, match='randperm'):
        pynn.randperm(0)
    with pytest.raises(ValueError, match='random'):
        pynn.Tensor(2).random(5, 1)


def test_large_draws_are_fast():
    pynn.manualSeed(1)
    t0 = time.perf_counter()
    x = pynn.rand(2000000)
    y = pynn.randn(1000000)
    assert time.perf_counter() - t0 < 5
    assert abs(float(np.asarray(x).mean()) - 0.5) < 0.01 and abs(float(np.asarray(y).std()) - 1) < 0.01


def test_randperm_is_a_permutation():
    pynn.manualSeed(4)
    p = np.asarray(pynn.randperm(50)).astype(int)
    assert sorted(p.tolist()) == list(range(1, 51))


# --- modules draw Lua's initial weights ---------------------------------------------------------

NN = REF / 'lua-nn'
def _has_parameters(path):
    """Fixtures whose module has parameters: the ones whose constructor draws from the stream."""
    p = pynn.load(path)['module'].parameters()
    return bool(p and p[0])


NN_CASES = []
if (NN / 'MANIFEST.json').exists():
    NN_CASES = [c for c in json.loads((NN / 'MANIFEST.json').read_text())
                if 'file' in c and not c.get('setup') and c.get('kind') != 'criterion'
                and _has_parameters(NN / c['file'])]


def _ctor_python(ctor):
    from test_lua_torch import lua_to_python
    return lua_to_python(ctor)


def _params(m):
    p = m.parameters()
    return list(p[0]) if p else []


@pytest.mark.skipif(not NN_CASES, reason='lua-nn fixtures not found at ../shared/reference/lua-nn')
@pytest.mark.parametrize('case', NN_CASES, ids=lambda c: '%s/%s' % (c['family'], c['file'][:-3]))
def test_module_reset_draws_lua_weights(case):
    """manualSeed(seed) then the constructor: the same initial weights as Lua's saved module."""
    cls = case['class'].split('.')[-1]
    if not hasattr(pynn.nn, cls):
        pytest.skip('nn.%s is not in this checkout of pynn' % cls)
    try:
        fx = pynn.load(NN / case['file'])
    except pynn.T7FormatError as e:
        pytest.skip('fixture does not load here: %s' % e)
    want = _params(fx['module'])
    pynn.manualSeed(case['seed'])
    m = eval(_ctor_python(case['ctor']), {'nn': pynn.nn, 'torch': pynn})
    got = _params(m)
    assert len(got) == len(want)
    for i, (g, w) in enumerate(zip(got, want)):
        assert tuple(g.size()) == tuple(w.size()), 'param %d size' % (i + 1)
        assert np.allclose(np.asarray(g), np.asarray(w), rtol=0, atol=1e-12), \
            '%s: parameter %d differs from Lua' % (case['ctor'], i + 1)


T7 = REF / 't7' / 'lua'


def _build_net(nn):
    net = nn.Sequential()
    net.add(nn.SpatialConvolution(3, 8, 3, 3, 1, 1, 1, 1)).add(nn.SpatialBatchNormalization(8))
    net.add(nn.ReLU(True)).add(nn.SpatialMaxPooling(2, 2, 2, 2))
    net.add(nn.View(128).setNumInputDims(3)).add(nn.Linear(128, 10)).add(nn.LogSoftMax())
    return net


def _build_net_res(nn):
    branch = nn.Sequential()
    branch.add(nn.SpatialConvolution(8, 8, 3, 3, 1, 1, 1, 1)).add(nn.SpatialBatchNormalization(8))
    branch.add(nn.ReLU(True)).add(nn.SpatialConvolution(8, 8, 3, 3, 1, 1, 1, 1))
    branch.add(nn.SpatialBatchNormalization(8))
    net = nn.Sequential()
    net.add(nn.ConcatTable().add(branch).add(nn.Identity()))
    net.add(nn.CAddTable(True)).add(nn.ReLU(True))
    return net


def _build_net_inception(nn):
    net = nn.Concat(2)
    net.add(nn.Sequential().add(nn.SpatialConvolution(4, 3, 1, 1)).add(nn.ReLU(True)))
    net.add(nn.Sequential().add(nn.SpatialConvolution(4, 2, 1, 1)).add(nn.ReLU(True))
            .add(nn.SpatialConvolution(2, 5, 3, 3, 1, 1, 1, 1)).add(nn.ReLU(True)))
    net.add(nn.Sequential().add(nn.SpatialMaxPooling(3, 3, 1, 1, 1, 1))
            .add(nn.SpatialConvolution(4, 2, 1, 1)))
    return net


@pytest.mark.parametrize('name,build', [('net', _build_net), ('net_res', _build_net_res),
                                        ('net_inception', _build_net_inception)])
def test_networks_built_after_manualSeed_1_have_lua_weights(name, build):
    """t7/lua/<name>.t7 was built right after torch.manualSeed(1): every convolution's and
    linear layer's weight and bias, and batch norm's weight, are the constructors' draws (batch
    norm's running statistics and bias were randomized afterwards, so they are not compared)."""
    if not (T7 / (name + '.t7')).exists():
        pytest.skip('t7/lua networks not found at ../shared/reference/t7/lua')
    pynn.manualSeed(1)
    net = build(pynn.nn)
    lua = pynn.load(T7 / (name + '.t7'))
    mine, theirs = net.listModules(), lua.listModules()
    assert [m.__typename__ for m in mine] == [m.__typename__ for m in theirs]
    compared = 0
    for i, (m, w) in enumerate(zip(mine, theirs)):
        fields = ('weight',) if 'BatchNormalization' in m.__typename__ else ('weight', 'bias')
        for f in fields:
            if getattr(w, f, None) is None:
                continue
            assert np.allclose(np.asarray(getattr(m, f)), np.asarray(getattr(w, f)), rtol=0, atol=1e-12), \
                '%s module %d (%s) %s differs from Lua' % (name, i + 1, m.__typename__, f)
            compared += 1
    assert compared >= 3
