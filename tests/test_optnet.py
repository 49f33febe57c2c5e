"""optnet's guarantees on every model builder, the Lua oracle's byte counts, bad input, graphgen."""
import re
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

import pynn
from pynn import nn, optnet
from pynn.optnet.check import schedule_violations
from pynn.optnet.trace import recursive_clone, tensors_of
from pynn import models

REF = Path(__file__).resolve().parents[1] / '..' / 'shared' / 'reference'

# (id, builder, opts, batch): resnets at depth 20, 56, 110; the big nets at batch 1.
MODELS = [
    ('basic_parallel', 'basic_parallel', None, None),
    ('basic_conv', 'basic_conv', None, None),
    ('basic_deep_conv', 'basic_deep_conv', None, None),
    ('basic_unpooling', 'basic_unpooling', None, None),
    ('siamese', 'siamese', None, None),
    ('basic_concat', 'basic_concat', None, None),
    ('basic_multiOutput', 'basic_multiOutput', None, None),
    ('alexnet', 'alexnet', None, 1),
    ('vgg-A', 'vgg', 'A', 1),
    ('googlenet', 'googlenet', None, 1),
    ('resnet-20', 'resnet', {'dataset': 'cifar10', 'depth': 20}, 2),
    ('resnet-56', 'resnet', {'dataset': 'cifar10', 'depth': 56}, 1),
    ('resnet-110', 'resnet', {'dataset': 'cifar10', 'depth': 110}, 1),
]
HEAVY = {'vgg-A'}


@pytest.fixture(autouse=True)
def float_default():
    pynn.setdefaulttensortype('torch.FloatTensor')
    yield
    pynn.setdefaulttensortype('torch.DoubleTensor')


def build(name, opts, batch, seed=1):
    pynn.manualSeed(seed)
    b = models.builders[name]
    kw = {'batch': batch} if batch else {}
    return b(opts, **kw) if opts is not None else b(**kw)


def arrays(x):
    return [t.numpy().copy() for t in tensors_of(x)]


def same(a, b):
    return len(a) == len(b) and all(x.shape == y.shape and np.array_equal(x, y) for x, y in zip(a, b))


def close(a, b, tol=1e-6):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.shape == y.shape
        scale = max(1.0, float(np.abs(y).max()) if y.size else 1.0)
        assert float(np.abs(x - y).max() if x.size else 0) <= tol * scale


def grads(net):
    p = net.parameters()
    return [g.numpy().copy() for g in p[1]] if p else []


@pytest.mark.parametrize('mid,name,opts,batch', MODELS, ids=[m[0] for m in MODELS])
def test_inference_guarantees(mid, name, opts, batch):
    net, inp = build(name, opts, batch)
    net.evaluate()
    ref = arrays(net.forward(inp))
    before = optnet.countUsedMemory(net)
    optnet.optimizeMemory(net, inp, {'mode': 'inference'})
    out = arrays(net.forward(inp))
    assert same(out, ref), 'outputs must be bit-identical after optimization'
    after = optnet.countUsedMemory(net)
    assert after['total_size'] <= before['total_size']
    assert after['outputs'] <= before['outputs']
    with pytest.raises(RuntimeError, match='removeOptimization'):
        net.backward(inp, recursive_clone(net.output))
    if mid not in HEAVY:
        assert schedule_violations(net, inp, 'inference') == []
    optnet.removeOptimization(net)
    assert same(arrays(net.forward(inp)), ref)
    net.backward(inp, recursive_clone(net.output))  # enabled again


@pytest.mark.parametrize('mid,name,opts,batch', [m for m in MODELS if m[0] not in HEAVY],
                         ids=[m[0] for m in MODELS if m[0] not in HEAVY])
def test_training_guarantees(mid, name, opts, batch):
    net, inp = build(name, opts, batch)
    ref_net, _ = build(name, opts, batch)
    ref_out = arrays(ref_net.forward(inp))
    gout = recursive_clone(ref_net.output)
    for t in tensors_of(gout):
        t.copy(pynn.rand(*t.size()).type(t.type()))
    ref_net.zeroGradParameters()
    ref_gin = arrays(ref_net.backward(inp, gout))
    ref_g = grads(ref_net)

    optnet.optimizeMemory(net, inp, {'mode': 'training'})
    net.zeroGradParameters()
    out = arrays(net.forward(inp))
    gin = arrays(net.backward(inp, gout))
    assert same(out, ref_out)
    close(gin, ref_gin)
    close(grads(net), ref_g)
    baseline = set(schedule_violations(ref_net, inp, 'training'))
    assert set(schedule_violations(net, inp, 'training')) <= baseline

    optnet.removeOptimization(net)
    net.zeroGradParameters()
    assert same(arrays(net.forward(inp)), ref_out)
    close(arrays(net.backward(inp, gout)), ref_gin)
    close(grads(net), ref_g)
    w, g = net.getParameters()
    assert w.nElement() == g.nElement()


def test_replay_catches_a_bad_sharing():
    """The schedule check is not vacuous: share two live tensors by hand and it complains."""
    branches = nn.ConcatTable().add(nn.SpatialConvolution(3, 4, 3, 3, 1, 1, 1, 1)) \
        .add(nn.SpatialConvolution(3, 4, 1, 1))
    net = nn.Sequential().add(branches).add(nn.CAddTable())
    inp = pynn.rand(1, 3, 5, 5)
    net.forward(inp)
    assert schedule_violations(net, inp) == []
    assert schedule_violations(net, inp, 'training') == []
    # branch 2 writes over branch 1's output before CAddTable reads it
    branches.get(2).output.set(branches.get(1).output)
    assert schedule_violations(net, inp) != []


def test_bad_input_leaves_network_as_it_was():
    net, inp = build('basic_conv', None, None)
    net.evaluate()
    ref = arrays(net.forward(inp))
    mem = optnet.countUsedMemory(net)
    bad = pynn.rand(1, 7, 5, 5)  # wrong channel count
    with pytest.raises(ValueError, match='nn.SpatialConvolution'):
        optnet.optimizeMemory(net, bad)
    with pytest.raises(TypeError, match='DoubleTensor'):
        optnet.optimizeMemory(net, inp.double())
    with pytest.raises(ValueError, match='mode'):
        optnet.optimizeMemory(net, inp, {'mode': 'fast'})
    assert '__memoryOptimized' not in net.__dict__
    assert optnet.countUsedMemory(net) == mem
    assert same(arrays(net.forward(inp)), ref)
    net.backward(inp, recursive_clone(net.output))


def test_double_optimization_warns_and_larger_batch_works():
    net, inp = build('resnet', {'dataset': 'cifar10', 'depth': 20}, 2)
    net.evaluate()
    optnet.optimizeMemory(net, inp)
    with pytest.warns(UserWarning, match='already optimized'):
        optnet.optimizeMemory(net, inp)
    big = pynn.rand(5, 3, 32, 32)
    out = arrays(net.forward(big))
    ref_net, _ = build('resnet', {'dataset': 'cifar10', 'depth': 20}, 2)
    ref_net.evaluate()
    assert same(out, arrays(ref_net.forward(big)))
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        optnet.removeOptimization(net)
    with pytest.warns(UserWarning, match='not optimized'):
        optnet.removeOptimization(net)


def test_table_inputs():
    net, inp = build('siamese', None, None)
    assert isinstance(inp, list)
    net.evaluate()
    ref = arrays(net.forward(inp))
    optnet.optimizeMemory(net, inp)
    assert same(arrays(net.forward(inp)), ref)


def _oracle():
    path = REF / 'lua-oracle' / 'optnet_inference_cpu_double_b1.txt'
    if not path.exists():
        pytest.skip('shared/reference is absent here (outside this repository\'s CI)')
    res, cur = {}, None
    for line in path.read_text().splitlines():
        m = re.match(r'== (\S+)', line)
        if m:
            cur = res[m.group(1)] = {}
            continue
        parts = line.split()
        if cur is not None and len(parts) == 5 and parts[1].isdigit():
            cur[parts[0]] = (int(parts[1]), int(parts[2]))
    return res


ORACLE = [('alexnet', 'alexnet', None), ('vgg-A', 'vgg', 'A'), ('googlenet', 'googlenet', None),
          ('resnet110-cifar10', 'resnet', {'dataset': 'cifar10', 'depth': 110})]


@pytest.mark.parametrize('key,name,opts', ORACLE, ids=[o[0] for o in ORACLE])
def test_byte_for_byte_with_lua_optnet(key, name, opts):
    """countUsedMemory before and after, per field, equals what Lua optnet printed (float64, batch 1)."""
    want = _oracle()[key]
    pynn.setdefaulttensortype('torch.DoubleTensor')
    net, inp = build(name, opts, 1)
    net.evaluate()
    net.forward(inp)
    before = optnet.countUsedMemory(net)
    optnet.optimizeMemory(net, inp, {'inplace': True, 'reuseBuffers': True, 'mode': 'inference'})
    net.forward(inp)
    after = optnet.countUsedMemory(net)
    got = {k: (before[k], after[k]) for k in want}
    assert got == want


def test_graphgen_colours_shared_storages_and_renders(tmp_path):
    net, inp = build('basic_concat', None, None)
    net.evaluate()
    g = optnet.graphgen(net, inp, {'nodeData': lambda label, t: label + '\nSize: %d' % t.nElement(),
                                  'displayProps': {'shape': 'ellipse'}, 'addOutputNode': True})
    src = g.source
    assert 'Size:' in src and 'Output' in src and 'ellipse' in src
    ids_before = set(re.findall(r'Storage id: (\d+)', src))
    optnet.optimizeMemory(net, inp)
    g2 = optnet.graphgen(net, inp)
    ids_after = set(re.findall(r'Storage id: (\d+)', g2.source))
    assert len(ids_after) < len(ids_before)
    if shutil.which('dot') is None:
        pytest.skip("Graphviz's dot program is not installed (Debian: apt-get install graphviz; "
                    ".ci/run installs it), so the SVG rendering is not tested")
    out = g.render(str(tmp_path / 'g'), format='svg')
    assert Path(out).read_text().lstrip().startswith(('<?xml', '<svg'))


# The original graphgen.lua's counts, derived by hand from its algorithm (see graphgen's
# docstring): every single-operation module is one node (its output tensor) with one edge per
# input tensor; an operative container (Concat) is one node with one edge per branch; an
# Identity adds nothing (its output is its input tensor); plus the input node.
# resnet-20 (cifar10, shortcut B): stem conv/BN/ReLU 3 nodes 3 edges; 7 identity-shortcut blocks
# of conv/BN/ReLU/conv/BN (5, 5) + CAddTable (1 node, 2 edges) + ReLU (1, 1) = 7 nodes 8 edges;
# 2 downsampling blocks with a conv/BN shortcut: 9 nodes 10 edges; avg-pool/View/Linear 3, 3:
# 1 + 3 + 49 + 18 + 3 = 74 nodes, 3 + 56 + 20 + 3 = 82 edges.
# googlenet: 173 leaves (stem 8; 8 four-branch inceptions of 16 leaves, 2 three-branch ones of
# 12; two strided convs; main tail avg-pool/View/Linear/LogSoftMax; aux classifier 7) and 11
# Concats (10 inceptions with 38 branches, the splitter with 2): 1 + 173 + 11 = 185 nodes,
# 173 + 40 = 213 edges.
GRAPH_COUNTS = [('resnet-20', 'resnet', {'dataset': 'cifar10', 'depth': 20}, 74, 82),
                ('googlenet', 'googlenet', None, 185, 213)]


@pytest.mark.parametrize('mid,name,opts,nodes,edges', GRAPH_COUNTS, ids=[g[0] for g in GRAPH_COUNTS])
def test_graphgen_draws_the_originals_graph(mid, name, opts, nodes, edges):
    net, inp = build(name, opts, 1)
    net.evaluate()
    for optimized in (False, True):
        if optimized:
            optnet.optimizeMemory(net, inp)
        src = optnet.graphgen(net, inp).source
        node_lines = re.findall(r'^\s*n(\d+) \[label="([^"]*)"', src, re.M)
        edge_lines = re.findall(r'^\s*n(\d+) -> n(\d+)', src, re.M)
        assert (len(node_lines), len(edge_lines)) == (nodes, edges)
        assert all(a != b for a, b in edge_lines), 'no node has an edge to itself'
        assert not any('Identity' in label for _, label in node_lines)
        labels = [label for _, label in node_lines]
        assert all(re.search(r'\nStorage id: \d+$', label.replace('\\n', '\n')) for label in labels)
        assert labels[0].startswith('Input')
    # storage ids: one per storage the nodes hold, numbered from 1 in order of first use
    ids = [int(i) for i in re.findall(r'Storage id: (\d+)', src)]
    assert sorted(set(ids)) == list(range(1, max(ids) + 1))


@pytest.mark.parametrize('mode', ['inference', 'training'])
def test_optimal_planner_categories_add_up_and_compare(mode):
    """planner='optimal': the arena's bytes are split by category at its peak (report.arena_memory):
    the categories add up to total_size, the arena shares to `arena`, and each category is at
    most what the unoptimized network holds in it (they compare with countUsedMemory's)."""
    from pynn.optnet import report
    net, inp = build('resnet', {'dataset': 'cifar10', 'depth': 20}, 1)
    net.training() if mode == 'training' else net.evaluate()
    out = net.forward(inp)
    if mode == 'training':
        net.backward(inp, recursive_clone(out))
    before = optnet.countUsedMemory(net)
    optnet.optimizeMemory(net, inp, {'mode': mode, 'planner': 'optimal'})
    out = net.forward(inp)
    if mode == 'training':
        net.backward(inp, recursive_clone(out))
    mem = optnet.countUsedMemory(net)
    cats = ('outputs', 'gradInputs', 'buffers', 'params')
    assert mem['total_size'] == sum(mem[c] for c in cats)
    shares = report.arena_shares(net._pynn_arena.plan.schedule, mem['arena'])
    assert sum(shares.values()) == mem['arena'] >= mem['lower_bound']
    for c in ('outputs', 'gradInputs', 'buffers'):
        assert 0 <= shares[c] <= mem[c] <= before[c]
    if mode == 'training':
        assert mem['gradInputs'] > 0 and mem['outputs'] > 0   # both live at the peak
    # the peak's live bytes by category, recomputed from the buffers' spans by brute force
    sched = net._pynn_arena.plan.schedule
    live = [sum(b.nbytes for b in sched.buffers if any(lo <= s <= hi for lo, hi in b.spans))
            for s in range(sched.spans)]
    peak = live.index(max(live))
    for c in ('outputs', 'gradInputs', 'buffers'):
        at_peak = sum(b.nbytes for b in sched.buffers if b.category == c and
                      any(lo <= peak <= hi for lo, hi in b.spans))
        assert at_peak <= shares[c] <= at_peak + (mem['arena'] - max(live))


def test_replays_leave_running_averages_and_input_as_the_original():
    """optimizeMemory's extra replays leave batch normalization's running averages as the
    original's two training forwards do, and the input as given."""
    def make():
        pynn.manualSeed(3)
        return nn.Sequential().add(nn.SpatialConvolution(2, 3, 3, 3, 1, 1, 1, 1)) \
            .add(nn.SpatialBatchNormalization(3)).add(nn.ReLU()).add(nn.MulConstant(2.0))
    pynn.setdefaulttensortype('torch.DoubleTensor')
    x = pynn.rand(2, 2, 5, 5)
    ref, net = make(), make()
    for _ in range(2):   # the original: forward/backward, then its analysis' forward/backward
        ref.backward(x, recursive_clone(ref.forward(x)))
    x0 = x.clone()
    optnet.optimizeMemory(net, x, {'mode': 'training'})
    assert np.array_equal(x.numpy(), x0.numpy())
    for f in ('running_mean', 'running_var'):
        assert np.allclose(net.get(2).__dict__[f].numpy(), ref.get(2).__dict__[f].numpy(), rtol=0, atol=1e-15)


def test_remove_optimization_unshares_in_place_switched_outputs():
    # inference mode switches ReLU and Dropout in place: their outputs become views of their
    # input's storage. removeOptimization gives every module fresh, unshared outputs, so that
    # a training pass (in-place flags off again) matches a never-optimized copy
    pynn.setdefaulttensortype('torch.DoubleTensor')
    pynn.manualSeed(0)
    net = (nn.Sequential()
           .add(nn.Concat(2).add(nn.Sequential().add(nn.ReLU()).add(nn.ReLU())).add(nn.Dropout(0.3)))
           .add(nn.SpatialMaxPooling(2, 2, 2, 2)).add(nn.View(-1).setNumInputDims(3)))
    ref = net.clone()
    x = pynn.rand(1, 1, 4, 4)
    net.evaluate()
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        optnet.optimizeMemory(net, x.clone(), {'mode': 'inference'})
    net.forward(x.clone())
    optnet.removeOptimization(net)
    storages = [m.output.storage() for m in net.listModules() if m.output.storage() is not None]
    assert storages == []                         # every output empty until the next pass
    g = pynn.rand(1, 8)
    got = []
    for m in (net, ref):
        m.training()
        pynn.manualSeed(5)
        m.forward(x.clone())
        got.append((m.output.numpy().copy(), m.backward(x.clone(), g.clone()).numpy().copy()))
    np.testing.assert_array_equal(got[0][0], got[1][0])
    np.testing.assert_array_equal(got[0][1], got[1][1])
