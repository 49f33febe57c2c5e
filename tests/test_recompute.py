"""optnet recomputation under a memory budget (pynn/optnet/recompute.py).

The truth each test compares with is the same network, unoptimized: its outputs, gradients,
parameter updates, batch-normalization running statistics and random stream after training
steps must be bit for bit the same; the liveness of the recomputed values is checked by
replaying the plan with every byte poisoned outside its live intervals (report.replay)."""
import copy

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import pynn
from pynn import nn, optnet
from pynn.optnet import recompute, report
from pynn.optnet.trace import recursive_clone, tensors_of

TRAIN = {'mode': 'training', 'planner': 'optimal'}


def _arrays(x):
    return [t.numpy().copy() for t in tensors_of(x)]


def _running(net):
    return [v.numpy().copy() for m in net.listModules() for k, v in sorted(m.__dict__.items())
            if k.startswith('running_') and isinstance(v, pynn.Tensor)]


def _step(net, x, g, seed):
    # fresh copies: modules in place at either end write the input or the gradOutput (as Lua)
    x, g = recursive_clone(x), recursive_clone(g)
    pynn.manualSeed(seed)
    net.zeroGradParameters()
    out = _arrays(net.forward(x))
    gin = _arrays(net.backward(x, g))
    grads = [p.numpy().copy() for p in net.parameters()[1]]
    net.updateParameters(0.05)
    params = [p.numpy().copy() for p in net.parameters()[0]]
    return out, gin, grads, params, _running(net), pynn.tensor.generator().bit_generator.state


def _same(a, b):
    for x, y in zip(a[:5], b[:5]):
        assert len(x) == len(y)
        for u, v in zip(x, y):
            assert u.shape == v.shape and np.array_equal(u, v)
    assert a[5] == b[5]  # the random stream after the step


def _grad_for(net, x):
    out = net.forward(x)
    g = recursive_clone(out)
    for t in tensors_of(g):
        t.copy(pynn.rand(*t.size()))
    return g


def _check_exact(net, x, opts, steps=2):
    """optimize a copy with opts; training steps of both agree bit for bit; the plan replays
    under poisoning; removeOptimization restores an exact plain net. Returns the copy."""
    g = _grad_for(net, x)
    ref = copy.deepcopy(net)
    opt = copy.deepcopy(net)
    state = _running(ref)
    optnet.optimizeMemory(opt, x, dict(TRAIN, **opts))
    # optimizeMemory's own runs moved the running statistics: start both from the same ones
    for v, arr in zip([v for m in opt.listModules() for k, v in sorted(m.__dict__.items())
                       if k.startswith('running_') and isinstance(v, pynn.Tensor)], state):
        v.numpy()[...] = arr
    for s in range(steps):
        _same(_step(ref, x, g, s), _step(opt, x, g, s))
    assert report.overlaps(opt) == []
    # fresh inputs: a first module in place changes the input it is given (as in Lua)
    x1, x2 = x.clone(), x.clone()
    pynn.manualSeed(7)
    got = report.replay(opt, x1, recursive_clone(g))
    plain = copy.deepcopy(opt)
    pynn.manualSeed(7)
    optnet.removeOptimization(plain)
    assert type(plain) is nn.Sequential and '_pynn_recompute' not in plain.__dict__
    plain.forward(x2)  # replay runs a forward before the replayed one (same draws)
    want = (_arrays(plain.forward(x2)), _arrays(plain.backward(x2, recursive_clone(g))))
    for a, b in zip(got[0] + got[1], want[0] + want[1]):
        assert np.array_equal(a, b)
    return opt


def _conv_chain(n, c=4, extra=None):
    net = nn.Sequential()
    cin = 2
    for i in range(n):
        net.add(nn.SpatialConvolution(cin, c, 3, 3, 1, 1, 1, 1))
        cin = c
        net.add(nn.ReLU(True))
        if extra:
            for m in extra(i, c):
                net.add(m)
    net.add(nn.View(c * 5 * 5)).add(nn.Linear(c * 5 * 5, 3))
    return net


def _x(b=3, c=2, h=5):
    return pynn.rand(b, c, h, h)


def _planner(net, x):
    """The planner optimizeMemory runs, on a copy prepared as it prepares the net (in-place flags)."""
    clone = copy.deepcopy(net)
    report._prepare(clone, x, {'mode': 'training', 'inplace': True})
    return recompute.Planner(clone, x, TRAIN)


def _spec(net):
    return recompute.parse(net.__dict__.get('_pynn_recompute'))


def test_plain_chain_recomputes_and_saves_memory():
    pynn.manualSeed(0)
    net, x = _conv_chain(8), _x()
    base = optnet.lowerBound(net, x, {'mode': 'training'})
    opt = _check_exact(net, x, {'recompute': True})
    assert any(r for _, _, r in _spec(opt))
    assert opt._pynn_arena.plan.nbytes < base
    # lowerBound keeps its meaning: the bound without recomputation
    assert optnet.lowerBound(opt, x, {'mode': 'training'}) == base


def test_dropout_noise_is_reproduced():
    pynn.manualSeed(1)
    net = _conv_chain(6, extra=lambda i, c: [nn.Dropout(0.4)] if i % 2 else [nn.Dropout(0.3, False, True)])
    x = _x()
    opt = _check_exact(net, x, {'recompute': True}, steps=3)
    segs = _spec(opt)
    units, _ = recompute.units_of(opt)
    assert any(r and any(u.__typename__ == 'nn.Dropout' for u in units[a:b]) for a, b, r in segs)


def test_batch_normalization_running_statistics_updated_once():
    pynn.manualSeed(2)
    net = _conv_chain(6, extra=lambda i, c: [nn.SpatialBatchNormalization(c)])
    x = _x()
    opt = _check_exact(net, x, {'recompute': True}, steps=3)
    units, _ = recompute.units_of(opt)
    assert any(r and any(u.__typename__ == 'nn.SpatialBatchNormalization' for u in units[a:b])
               for a, b, r in _spec(opt))


def test_inplace_modules_never_lose_a_checkpoint():
    pynn.manualSeed(3)

    def extra(i, c):
        return [nn.MulConstant(0.5, True), nn.AddConstant(0.25, True), nn.View(c, 5, 5), nn.ReLU(True)]
    net = _conv_chain(6, extra=extra)
    x = _x()
    opt = _check_exact(net, x, {'recompute': True})
    units, _ = recompute.units_of(opt)
    for a, b, r in _spec(opt):
        if a and r:  # a segment starts where its checkpoint is not written in place
            assert units[a].__typename__ not in ('nn.MulConstant', 'nn.AddConstant', 'nn.ReLU', 'nn.View')


def _containers_net():
    def block(c):
        cat = nn.Concat(2).add(nn.SpatialConvolution(c, 2, 3, 3, 1, 1, 1, 1)) \
            .add(nn.Sequential().add(nn.SpatialConvolution(c, 2, 1, 1)).add(nn.ReLU(True)))
        res = nn.Sequential().add(nn.ConcatTable().add(
            nn.Sequential().add(nn.SpatialConvolution(4, 4, 3, 3, 1, 1, 1, 1)).add(nn.ReLU(True)))
            .add(nn.Identity())).add(nn.CAddTable(True)).add(nn.ReLU(True))
        par = nn.Sequential().add(nn.ConcatTable().add(nn.SpatialConvolution(4, 2, 1, 1))
                                  .add(nn.SpatialConvolution(4, 2, 1, 1)))
        par.add(nn.ParallelTable().add(nn.ReLU()).add(nn.Tanh())).add(nn.JoinTable(2))
        return nn.Sequential().add(cat).add(nn.Sequential().add(res)).add(par)
    net = nn.Sequential().add(nn.SpatialConvolution(2, 4, 3, 3, 1, 1, 1, 1))
    for _ in range(4):
        net.add(block(4))
    net.add(nn.View(4 * 5 * 5)).add(nn.Linear(4 * 5 * 5, 3))
    return net


def test_containers_of_every_kind():
    pynn.manualSeed(4)
    net, x = _containers_net(), _x()
    opt = _check_exact(net, x, {'recompute': True})
    units, _ = recompute.units_of(opt)
    kinds = {u.__typename__ for u in units}
    assert {'nn.Concat', 'nn.ConcatTable', 'nn.ParallelTable'} <= kinds
    assert any(r for _, _, r in _spec(opt))


def test_budget_minimizes_extra_compute_and_fits():
    pynn.manualSeed(5)
    net, x = _conv_chain(10), _x()
    p = _planner(net, x)
    lo, hi = p.smallest().arena, p.base().arena
    assert lo < hi
    prev = None
    for budget in (hi, (lo + hi) // 2, lo):
        opt = _check_exact(net, x, {'budget': budget}, steps=1)
        assert opt._pynn_arena.plan.nbytes <= budget
        info = opt.__dict__.get('_pynn_recompute_info')
        extra = info['extra_flops'] if info else 0
        if budget == hi:
            assert extra == 0 and type(opt) is nn.Sequential
        if prev is not None:
            assert extra >= prev  # less memory never costs less compute
        prev = extra
        assert extra <= p.forward_flops


def test_budget_below_reachable_raises_and_leaves_net_as_it_was():
    pynn.manualSeed(6)
    net, x = _conv_chain(6), _x()
    net.forward(x)
    before = {id(m): dict(m.__dict__) for m in net.listModules()}
    with pytest.raises(ValueError, match='smallest reachable arena') as e:
        optnet.optimizeMemory(net, x, dict(TRAIN, budget=1000))
    assert type(net) is nn.Sequential
    for m in net.listModules():
        assert m.__dict__ == before[id(m)]
    import re
    smallest = int(re.search(r'smallest reachable arena.*? is (\d+) bytes', str(e.value)).group(1))
    opt = copy.deepcopy(net)
    optnet.optimizeMemory(opt, x, dict(TRAIN, budget=smallest))  # that figure is reachable
    assert opt._pynn_arena.plan.nbytes <= smallest


def test_bad_options():
    net, x = _conv_chain(2), _x()
    with pytest.raises(ValueError, match='planner'):
        optnet.optimizeMemory(copy.deepcopy(net), x, {'mode': 'training', 'budget': 10 ** 6})
    with pytest.raises(ValueError, match='training'):
        optnet.optimizeMemory(copy.deepcopy(net), x, {'planner': 'optimal', 'recompute': True})
    with pytest.raises(ValueError, match='positive'):
        optnet.optimizeMemory(copy.deepcopy(net), x, dict(TRAIN, budget=-5))


def test_root_that_is_not_a_chain():
    pynn.manualSeed(8)
    net = nn.Concat(2).add(nn.SpatialConvolution(2, 2, 3, 3, 1, 1, 1, 1)).add(nn.SpatialConvolution(2, 3, 1, 1))
    x = _x()
    opt = copy.deepcopy(net)
    optnet.optimizeMemory(opt, x, dict(TRAIN, recompute=True))  # nothing to recompute: plain plan
    with pytest.raises(ValueError, match='no nn.Sequential chain'):
        optnet.optimizeMemory(copy.deepcopy(net), x, dict(TRAIN, budget=64))


def test_meta_plans_without_data_equal_the_real_plan():
    pynn.manualSeed(9)
    net, x = _conv_chain(8, extra=lambda i, c: [nn.SpatialBatchNormalization(c), nn.Dropout(0.2)]), _x()
    real = copy.deepcopy(net)
    optnet.optimizeMemory(real, x, dict(TRAIN, recompute=True))
    old = pynn.getdefaulttensortype()
    meta = net.clone().type('torch.MetaDoubleTensor')
    xm = pynn.Tensor(kind=x._kind, device='meta').resize(*x.size())
    optnet.optimizeMemory(meta, xm, dict(TRAIN, recompute=True))
    assert pynn.getdefaulttensortype() == old
    assert meta._pynn_recompute == real._pynn_recompute
    assert meta._pynn_arena.plan.nbytes == real._pynn_arena.plan.nbytes
    meta.forward(xm)
    meta.backward(xm, recursive_clone(meta.output))  # runs on meta too


def test_plan_report_shows_kept_and_recomputed_values():
    pynn.manualSeed(10)
    net, x = _conv_chain(8), _x()
    r = optnet.planReport(copy.deepcopy(net), x, {'mode': 'training', 'recompute': True})
    d = r.as_dict()
    values = {row['value'] for row in d['buffers']}
    assert values == {'kept', 'recomputed'}
    assert d['recompute']['extra_flops'] > 0 and 'measured_ratio' not in d['recompute']
    opt = copy.deepcopy(net)
    optnet.optimizeMemory(opt, x, dict(TRAIN, recompute=True))
    assert opt._pynn_arena.plan.nbytes == d['arena_bytes']
    opt.forward(x)
    opt.backward(x, recursive_clone(opt.output))
    r2 = optnet.planReport(opt)
    assert r2.as_dict()['recompute']['measured_ratio'] > 0
    text = str(r2)
    assert 'recomputed' in text and 'extra compute' in text and 'measured' in text


def test_replan_on_new_input_sizes_keeps_recomputation_exact():
    pynn.manualSeed(11)
    net = _conv_chain(6, extra=lambda i, c: [nn.Dropout(0.3)])
    x = _x()
    opt = _check_exact(net, x, {'recompute': True}, steps=1)
    ref = copy.deepcopy(opt)
    optnet.removeOptimization(ref)
    x2 = _x(b=5)
    g2 = _grad_for(ref, x2)
    _same(_step(ref, x2, g2, 3), _step(opt, x2, g2, 3))
    assert opt._pynn_arena.replans >= 1
    assert report.overlaps(opt) == []


@pytest.mark.parametrize('model', ['resnet', 'googlenet', 'vgg'])
def test_zoo_on_meta_recompute_below_the_bound(model):
    from pynn.optnet import tables
    name = {'resnet': 'resnet-110-cifar', 'googlenet': 'googlenet', 'vgg': 'vgg-A'}[model]
    s = next(x for x in tables.SETTINGS if x['key'] == 'training_cudnn_float_batch64')
    s = dict(s, batch=2)
    net, x = tables.prepare(s, name, meta=True, network='nobn' if model == 'resnet' else 'today')
    lb = optnet.lowerBound(net, x, {'mode': 'training'})
    optnet.optimizeMemory(net, x, dict(TRAIN, recompute=True))
    info = net._pynn_recompute_info
    # resnet: a long chain of equal stages; googlenet and vgg are bounded below by their first
    # layers (a segment's own values and gradients at the widest layer)
    assert net._pynn_arena.plan.nbytes < {'resnet': 0.3, 'googlenet': 0.6, 'vgg': 0.85}[model] * lb
    assert info['extra_forwards'] <= 1.0
    net.forward(x)
    net.backward(x, recursive_clone(net.output))


def test_zoo_resnet_real_gradients_identical():
    from pynn import models
    from pynn.optnet import tables
    pynn.manualSeed(12)
    net, x = models.resnet({'dataset': 'cifar10', 'depth': 20}, batch=2)
    tables.strip_normalization(net)
    net.float()
    x = x.float()
    opt = _check_exact(net, x, {'recompute': True}, steps=1)
    assert sum(r for _, _, r in _spec(opt)) >= 2


# --- random networks ------------------------------------------------------------------------------
def _block(draw, c, depth):
    kind = draw(st.sampled_from(['conv', 'conv', 'relu', 'drop', 'bn', 'mul', 'concat', 'residual', 'parallel']
                                if depth < 2 else ['conv', 'relu', 'drop']))
    if kind == 'conv':
        k = draw(st.sampled_from([1, 3]))
        c2 = draw(st.integers(1, 4))
        return nn.SpatialConvolution(c, c2, k, k, 1, 1, k // 2, k // 2), c2
    if kind == 'relu':
        return nn.ReLU(draw(st.booleans())), c
    if kind == 'drop':
        return nn.Dropout(draw(st.sampled_from([0.2, 0.5])), False, draw(st.booleans())), c
    if kind == 'bn':
        return nn.SpatialBatchNormalization(c), c
    if kind == 'mul':
        return nn.MulConstant(draw(st.sampled_from([0.5, 2.0])), draw(st.booleans())), c
    if kind == 'concat':
        cat = nn.Concat(2)
        total = 0
        for _ in range(draw(st.integers(2, 3))):
            m, c2 = _chain(draw, c, depth + 1)
            cat.add(m)
            total += c2
        return cat, total
    if kind == 'residual':
        m, c2 = _chain(draw, c, depth + 1)
        m.add(nn.SpatialConvolution(c2, c, 1, 1))
        branches = nn.ConcatTable().add(m).add(nn.Identity())
        return nn.Sequential().add(branches).add(nn.CAddTable(draw(st.booleans()))), c
    a, ca = _chain(draw, c, depth + 1)
    b, cb = _chain(draw, c, depth + 1)
    seq = nn.Sequential().add(nn.ConcatTable().add(a).add(b))
    seq.add(nn.ParallelTable().add(nn.ReLU()).add(nn.Tanh())).add(nn.JoinTable(2))
    return seq, ca + cb


def _chain(draw, c, depth):
    seq = nn.Sequential()
    for _ in range(draw(st.integers(1, 4 if depth == 0 else 2))):
        m, c = _block(draw, c, depth)
        seq.add(m)
    return seq, c


@st.composite
def networks(draw):
    pynn.manualSeed(draw(st.integers(0, 10 ** 6)))
    c0 = draw(st.integers(1, 3))
    net = nn.Sequential()
    c = c0
    for _ in range(draw(st.integers(2, 4))):
        body, c = _chain(draw, c, 0)
        net.add(body)
    net.add(nn.View(c * 4 * 4).setNumInputDims(3))
    net.add(nn.Linear(c * 4 * 4, draw(st.integers(2, 4))))
    x = pynn.rand(draw(st.integers(1, 3)), c0, 4, 4)
    return net, x, draw(st.floats(0, 1))


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
@given(spec=networks())
def test_random_networks_recompute_exactly(spec):
    net, x, where = spec
    if where < 0.3:
        opts = {'recompute': True}
    else:
        p = _planner(net, x)
        lo, hi = p.smallest().arena, p.base().arena
        opts = {'budget': int(lo + (hi - lo) * (where - 0.3) / 0.7)}
    opt = _check_exact(net, x, opts, steps=2)
    if 'budget' in opts:
        assert opt._pynn_arena.plan.nbytes <= opts['budget']
