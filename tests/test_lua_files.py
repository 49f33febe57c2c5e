"""Lua files from the wild: fields that Lua leaves nil (absent from a file), files of older nn
versions, GPU-saved files, classes from other packages, a user's own classes."""
import copy
import json
import warnings
from pathlib import Path

import numpy as np
import pytest

import pynn
from pynn import nn, optnet
from pynn.serialization import UnknownModule

from test_lua_nn import CASES, REF, check, case_id
from _lua_lazy import LAZY_FIELDS

T7 = Path(__file__).resolve().parents[1] / '..' / 'shared' / 'reference' / 't7' / 'lua'
PARAM_GRADS = ('gradWeight', 'gradBias')
# lazily made, but made at random: absent, the fractional poolings draw new regions (as Lua)
RANDOM_WHEN_ABSENT = {('nn.SpatialFractionalMaxPooling', 'randomSamples'),
                      ('nn.VolumetricFractionalMaxPooling', 'randomSamples')}


def optional_fields(obj):
    """(owner, field) for every field of obj and its modules that Lua may leave nil: false or
    nil flags, the fields Lua's code creates lazily or defaults (LAZY_FIELDS), `output` (made on
    first use for classes of old versions) and the parameter gradients (files saved without
    them)."""
    owners = obj.listModules() if isinstance(obj, nn.Module) else [obj]
    out = []
    for m in owners:
        # a decorator's alias of its module's tensor (WeightNorm.gradWeight) is that module's field
        theirs = {id(v) for o in owners if o is not m for v in o.__dict__.values()}
        lazy = LAZY_FIELDS.get(m.__typename__, ())
        for k, v in list(m.__dict__.items()):
            if k.startswith('_pynn') or k in ('modules', 'train', 'gradInput') or \
                    (isinstance(v, pynn.Tensor) and id(v) in theirs) or \
                    (m.__typename__, k) in RANDOM_WHEN_ABSENT:
                continue
            # a lazily defaulted number or true flag (`self.padW = self.padW or 0`) is a
            # field of an older format when absent: test_older_formats covers those
            if v is None or v is False or k in ('output',) + PARAM_GRADS or \
                    (k in lazy and isinstance(v, (pynn.Tensor, list, pynn.Storage))):
                out.append((m, k))
    return out


def _owner_index(obj, owner):
    owners = obj.listModules() if isinstance(obj, nn.Module) else [obj]
    return next(i for i, m in enumerate(owners) if m is owner)


@pytest.mark.skipif(not CASES, reason='Lua nn fixtures not found at ../shared/reference/lua-nn')
@pytest.mark.parametrize('case', CASES, ids=case_id)
def test_every_optional_field_can_be_absent(case):
    """Each optional field deleted in turn (as a file written without it holds it): the
    fixture's forward, backward, parameter gradients and second forward still match Lua's."""
    fx0 = pynn.load(REF / case['file'])
    key = 'criterion' if case['kind'] == 'criterion' else 'module'
    fields = [(_owner_index(fx0[key], m), k) for m, k in optional_fields(fx0[key])]
    for idx, k in fields:
        fx = copy.deepcopy(fx0)
        obj = fx[key]
        owner = (obj.listModules() if isinstance(obj, nn.Module) else [obj])[idx]
        del owner.__dict__[k]
        try:
            check(fx, case)
        except Exception as e:
            raise AssertionError('with %s.%s absent: %s' % (owner.__typename__, k, e)) from e


LUA_NETS = ['net', 'net_res', 'net_inception']


def _t7(name):
    if not (T7 / (name + '.t7')).exists():
        pytest.skip('Lua-written networks not found at ../shared/reference/t7/lua')
    return pynn.load(T7 / (name + '.t7'))


@pytest.mark.parametrize('name', LUA_NETS)
def test_lua_networks_run_with_any_optional_field_absent(name):
    net0 = _t7(name)
    inp, want = _t7(name + '_input'), _t7(name + '_output')
    fields = [(_owner_index(net0, m), k) for m, k in optional_fields(net0)]
    assert fields
    for idx, k in fields:
        net = copy.deepcopy(net0)
        del net.listModules()[idx].__dict__[k]
        out = net.forward(inp.clone())
        np.testing.assert_allclose(out.numpy(), want.numpy(), rtol=0, atol=1e-10, err_msg=k)


@pytest.mark.parametrize('name', LUA_NETS)
def test_networks_saved_without_gradients_run_optimize_and_train(name, tmp_path):
    """A common way to save space: gradWeight/gradBias set to nil before torch.save."""
    net = _t7(name)
    inp = _t7(name + '_input')
    for m in net.listModules():
        for k in PARAM_GRADS:
            m.__dict__.pop(k, None)
    p = net.parameters()
    assert p and not p[1]                        # Lua: {weights...}, {}
    pynn.save(tmp_path / 'stripped.t7', net)
    net = pynn.load(tmp_path / 'stripped.t7')
    before = optnet.countUsedMemory(net)
    net.evaluate()
    want = net.forward(inp.clone()).clone()
    optnet.optimizeMemory(net, inp.clone(), {'mode': 'inference'})
    np.testing.assert_array_equal(net.forward(inp.clone()).numpy(), want.numpy())
    optnet.removeOptimization(net)
    assert before['params'] > 0
    # training works too: the missing gradients are made (zero) when first needed
    net.training()
    out = net.forward(inp.clone())
    net.zeroGradParameters()
    net.backward(inp.clone(), out.clone().fill(1))
    w, g = net.getParameters()
    assert w.nElement() == g.nElement() > 0 and np.abs(g.numpy()).sum() > 0


# --- GPU-saved files and other packages -----------------------------------------------------------
def _as_class(obj, typename):
    """An inert object of Lua class `typename` with obj's fields, as a file from a package
    pynn maps (cudnn, cunn) would hold it."""
    u = UnknownModule.__new__(UnknownModule)
    u.__dict__.update(obj.__dict__)
    u.__dict__['_pynn_typename'] = typename
    u.__dict__['_pynn_version'] = 1
    return u


def test_cudnn_classes_without_a_pynn_cudnn_twin_load_as_nn(tmp_path):
    pynn.manualSeed(3)
    conv = nn.SpatialConvolution(3, 4, 3, 3, 1, 1, 1, 1)
    x = pynn.rand(2, 3, 5, 5)
    want = conv.forward(x).clone()
    clipped = _as_class(nn.ReLU(), 'cudnn.ClippedReLU')
    clipped.__dict__.pop('threshold', None)
    clipped.__dict__.pop('val', None)
    clipped.__dict__['ceiling'] = 0.25
    net = nn.Sequential().add(_as_class(conv, 'cudnn.SpatialConvolution')).add(clipped)
    pynn.save(tmp_path / 'c.t7', net)
    back = pynn.load(tmp_path / 'c.t7')
    assert back.get(1).__typename__ == 'cudnn.SpatialConvolution'
    assert back.get(2).__typename__ == 'nn.HardTanh'
    out = back.forward(x)
    np.testing.assert_allclose(out.numpy(), np.clip(want.numpy(), 0, 0.25), rtol=0, atol=1e-12)


def test_data_parallel_table_loads_as_the_network_it_wraps(tmp_path):
    from pynn.cunn import DataParallelTable
    pynn.manualSeed(4)
    inner = nn.Sequential().add(nn.Linear(5, 3)).add(nn.Tanh())
    x = pynn.rand(4, 5)
    want = inner.forward(x).clone()
    dpt = DataParallelTable(1).add(inner, [1, 2])
    assert str(dpt).startswith('DataParallelTable: 2 x nn.Sequential')
    pynn.save(tmp_path / 'dpt.t7', dpt)
    back = pynn.load(tmp_path / 'dpt.t7')
    pynn.save(tmp_path / 'dpt2.t7', back)      # saved again: the same bytes
    assert (tmp_path / 'dpt2.t7').read_bytes() == (tmp_path / 'dpt.t7').read_bytes()
    assert type(back) is DataParallelTable and back.gpuAssignments == [1, 2]
    np.testing.assert_array_equal(back.forward(x).numpy(), want.numpy())
    gi = back.backward(x, want.clone().fill(1))
    assert gi.size() == x.size()
    with pytest.raises(ValueError, match='add should only be called once'):
        back.add(nn.Identity())


def test_unknown_classes_name_their_package_and_load_inertly(tmp_path):
    seq = _as_class(nn.Linear(3, 2), 'nn.Sequencer')
    lm = _as_class(nn.Identity(), 'nn.LanguageModel')
    pynn.save(tmp_path / 'u.t7', nn.Sequential().add(seq).add(lm))
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always')
        net = pynn.load(tmp_path / 'u.t7')
    text = ' '.join(str(x.message) for x in w)
    assert "'nn.Sequencer' (from the Lua package Element-Research's rnn)" in text
    assert "'nn.LanguageModel' (from the Lua package jcjohnson's torch-rnn)" in text
    assert net.get(1).weight.size() == (2, 3)                  # tensors reachable
    with pytest.raises(NotImplementedError, match="Element-Research's rnn.*registerClass"):
        net.forward(pynn.rand(3))


def test_user_classes_are_found_by_lua_name_and_registerClass(tmp_path):
    pynn.save(tmp_path / 'u.t7', nn.Sequential().add(_as_class(nn.Identity(), 'nn.MyScale')))

    class MyScale(nn.Module):                 # defined before the load: found by its name
        def updateOutput(self, input):
            self.output = input.clone().mul(self.factor or 2)
            return self.output

    net = pynn.load(tmp_path / 'u.t7')
    assert type(net.get(1)) is MyScale
    x = pynn.rand(3)
    np.testing.assert_allclose(net.forward(x).numpy(), 2 * x.numpy())

    class Other(nn.Module):
        __typename__ = 'nn.NotMyScale'

        def updateOutput(self, input):
            self.output = input
            return input

    pynn.registerClass('nn.MyScale', Other)
    try:
        assert type(pynn.load(tmp_path / 'u.t7').get(1)) is Other
    finally:
        from pynn import serialization
        serialization._REGISTERED.pop('nn.MyScale')
    with pytest.raises(ValueError, match='registerClass: expected a Lua class name'):
        pynn.registerClass('not a name!', Other)
    with pytest.raises(TypeError, match='registerClass: expected a class'):
        pynn.registerClass('nn.X', 3)


def test_spatial_convolution_mm_of_2013_runs_with_a_warning(tmp_path):
    pynn.manualSeed(5)
    m = nn.SpatialConvolutionMM(2, 3, 3, 3)
    x = pynn.rand(2, 2, 6, 6)
    want = m.forward(x).clone()
    old = nn.SpatialConvolutionMM(2, 3, 3, 3)
    old.__dict__.update({k: v for k, v in m.__dict__.items()})
    for k in ('dW', 'dH', 'padW', 'padH', 'finput', 'fgradInput'):
        old.__dict__.pop(k, None)
    pynn.save(tmp_path / 'mm.t7', old)
    with pytest.warns(UserWarning, match='SpatialConvolutionMM from before strides and padding'):
        back = pynn.load(tmp_path / 'mm.t7')
    np.testing.assert_allclose(back.forward(x).numpy(), want.numpy(), rtol=0, atol=1e-12)


@pytest.mark.skipif(not CASES, reason='Lua nn fixtures not found at ../shared/reference/lua-nn')
def test_every_fixture_saves_back_byte_for_byte():
    """Loading adds nothing that Lua would not write: each Lua-written fixture, loaded and
    saved again, is the file Lua wrote."""
    import io
    differ = []
    for c in CASES:
        raw = (REF / c['file']).read_bytes()
        buf = io.BytesIO()
        pynn.save(buf, pynn.load(REF / c['file']))
        if buf.getvalue() != raw:
            differ.append(c['file'])
    assert not differ
