"""Torch7 .t7 files: pynn.load / pynn.save.

Real files written by Lua Torch (../shared/reference/t7), value and type mapping, shared
references and cycles, all tensor types, ascii and b32 files, old-format upgrades, unknown
classes, Lua functions, malformed files (T7FormatError with the offset), the writer's refusals,
a cross-check of what pynn writes with the independent `torchfile` reader, and save/load
round trips of networks (identical outputs, gradients and bytes)."""
import io
import os
import struct
import time
from pathlib import Path

import numpy as np
import pytest

import pynn
from pynn import nn
from pynn.serialization import (dumps, loads, T7FormatError, T7FunctionError, TorchObject,
                                UnknownModule, LuaFunction, TdsVec, TdsHash, TableKey)

REF = Path(__file__).resolve().parents[1] / '..' / 'shared' / 'reference' / 't7'
LUA = REF / 'lua'
TF = REF / 'torchfile'
needs_ref = pytest.mark.skipif(not REF.is_dir(), reason='reference files (../shared/reference/t7) absent')


# --------------------------------------------------------------------------- raw file crafting
def i32(v):
    return struct.pack('<i', v)


def i64(v):
    return struct.pack('<q', v)


def f64(v):
    return struct.pack('<d', v)


def lstr(b):
    b = b.encode() if isinstance(b, str) else b
    return i32(len(b)) + b


def number(v):
    return i32(1) + f64(v)


def string(s):
    return i32(2) + lstr(s)


def torch_head(index, name, version='V 1'):
    return i32(4) + i32(index) + (lstr(version) if version else b'') + lstr(name)


def storage(index, name, arr):
    return torch_head(index, name) + i64(len(arr)) + np.ascontiguousarray(arr).tobytes()


def tensor(index, name, size, stride, offset1, storage_bytes):
    return (torch_head(index, name) + i32(len(size)) + b''.join(i64(s) for s in size) +
            b''.join(i64(s) for s in stride) + i64(offset1) + storage_bytes)


def table(index, *pairs):
    return i32(3) + i32(index) + i32(len(pairs)) + b''.join(k + v for k, v in pairs)


def arr(t):
    return t.numpy().copy()


def ones_like(x):
    if isinstance(x, list):
        return [ones_like(v) for v in x]
    return x.new().resizeAs(x).fill(1)


def clone_input(x):
    return [clone_input(v) for v in x] if isinstance(x, list) else x.clone()


def flat_arrays(x):
    if isinstance(x, list):
        return [a for v in x for a in flat_arrays(v)]
    return [arr(x)]


# --------------------------------------------------------------------------- Lua's files
@needs_ref
def test_every_reference_file_loads_and_resaves_to_the_same_bytes():
    files = sorted(REF.glob('*/*.t7'))
    assert len(files) >= 30
    for f in files:
        obj = pynn.load(f, allow_functions=True)
        # pynn.save writes what Lua's torch.save wrote: same names, layouts and references
        assert dumps(obj) == f.read_bytes(), f.name


@needs_ref
def test_reference_tensors():
    t = pynn.load(LUA / 'tensor_long.t7')
    assert t.type() == 'torch.LongTensor' and t.size() == (2, 3)
    assert t.tolist() == [[-3, 0, 7], [2 ** 40, -2 ** 33, 123456789012]]
    f = pynn.load(LUA / 'tensor_float.t7')
    assert f.type() == 'torch.FloatTensor' and f.size() == (2, 3, 4) and f.numpy().dtype == np.float32
    d = pynn.load(LUA / 'tensor_double.t7')
    assert d.type() == 'torch.DoubleTensor' and d.size() == (3, 5)
    assert pynn.load(TF / 'doubletensor.t7').tolist() == [[1, 2, 3], [4, 5, 6.9]]
    # writable, owned memory
    d.numpy()[0, 0] = 5
    assert d.numpy()[0, 0] == 5


@needs_ref
def test_torchfile_suite_files():
    assert pynn.load(TF / 'hello=123.t7') == {'hello': 123}
    assert pynn.load(TF / 'list_table.t7') == ['hello', 'world', 'third item', 123]
    assert pynn.load(TF / 'map_table1.t7') == {0: 'zero', 1: 'hello', 2: 'world', 3: 'third item', 4: 123}
    m2 = pynn.load(TF / 'map_table2.t7')
    assert isinstance(m2, dict) and m2['a'] == 'non number key' and m2[4] == 123
    c = pynn.load(TF / 'custom_class.t7')
    assert isinstance(c, TorchObject) and c.torch_typename() == 'Blah' and pynn.typename(c) == 'Blah'
    r = pynn.load(TF / 'recursive_class.t7')
    assert r.torch_typename() == 'A' and r.a is r   # a cycle through a torch object
    v = pynn.load(TF / 'tds_vec.t7')
    assert isinstance(v, TdsVec) and v == [123, 456]
    h = pynn.load(TF / 'tds_hash.t7')
    assert isinstance(h, TdsHash) and h == {1: 2, 2: 3, 10: 11}


@needs_ref
def test_reference_functions_are_refused_by_default_and_inert_when_allowed():
    for name in ('function.t7', 'function_upvals.t7'):
        with pytest.raises(T7FunctionError, match='allow_functions=True') as ei:
            pynn.load(TF / name)
        assert isinstance(ei.value, T7FormatError) and ei.value.offset == 0
        fn = pynn.load(TF / name, allow_functions=True)
        assert isinstance(fn, LuaFunction) and fn.bytecode.startswith(b'\x1bLJ')
        with pytest.raises(TypeError, match='never runs Lua code'):
            fn(1, 2)
    up = pynn.load(TF / 'function_upvals.t7', allow_functions=True).upvalues
    assert up == [{'name': 'asdf', 'value': 123}]


REF_NETS = ('net', 'net_res', 'net_inception')


@needs_ref
@pytest.mark.parametrize('name', REF_NETS)
def test_reference_networks_reproduce_lua(name):
    P = lambda suffix: pynn.load(LUA / (name + suffix + '.t7'))  # noqa: E731
    x = P('_input')
    net = P('')
    assert net.train is False
    out = net.forward(x)
    np.testing.assert_allclose(arr(out), arr(P('_output')), rtol=0, atol=1e-6)

    net = P('')   # a fresh copy, as Lua's clone: training mode, forward, backward(ones)
    net.training()
    net.zeroGradParameters()
    out = net.forward(x)
    np.testing.assert_allclose(arr(out), arr(P('_train_output')), rtol=0, atol=1e-6)
    gi = net.backward(x, ones_like(out))
    np.testing.assert_allclose(arr(gi), arr(P('_gradinput')), rtol=0, atol=1e-6)
    _, grads = net.getParameters()
    ref = P('_gradparams')
    assert grads.size() == ref.size()
    np.testing.assert_allclose(arr(grads), arr(ref), rtol=0, atol=1e-6)


@needs_ref
def test_reference_network_structure_and_sharing():
    net = pynn.load(LUA / 'net.t7')
    assert [m.__typename__ for m in net.modules] == [
        'nn.SpatialConvolution', 'nn.SpatialBatchNormalization', 'nn.ReLU', 'nn.SpatialMaxPooling',
        'nn.View', 'nn.Linear', 'nn.LogSoftMax']
    conv = net.modules[0]
    assert type(conv) is nn.SpatialConvolution
    assert (conv.nInputPlane, conv.nOutputPlane, conv.kW, conv.padW) == (3, 8, 3, 1)
    assert isinstance(conv.kW, int) and conv.weight.size() == (8, 3, 3, 3)
    assert net.modules[1].eps == 1e-5 and isinstance(net.modules[1].eps, float)
    assert net.modules[2].inplace is True and net._type == 'torch.DoubleTensor'
    view = net.modules[4]
    assert isinstance(view.size, pynn.Storage) and view.size.type() == 'torch.LongStorage'
    assert view.size.tolist() == [128]
    # Lua's Container:clearState gave the Sequential fresh (empty) output/gradInput objects
    assert net.output is not net.modules[-1].output and net.output.storage() is None
    inc = pynn.load(LUA / 'net_inception.t7')
    assert type(inc) is nn.Concat and inc.dimension == 2
    assert inc.outputSize.type() == 'torch.LongStorage' and inc.outputSize.tolist() == [1, 10, 8, 8]
    res = pynn.load(LUA / 'net_res.t7')
    assert type(res.modules[0]) is nn.ConcatTable and type(res.modules[1]) is nn.CAddTable


# --------------------------------------------------------------------------- values
def rt(obj, mode='binary'):
    return loads(dumps(obj, mode))


@pytest.mark.parametrize('mode', ['binary', 'ascii'])
def test_scalars(mode):
    for v in (None, True, False, 0, 1, -7, 2 ** 53, -2 ** 53, 0.5, -1e-300, 1e300, 2.0 ** 60, 'hello', '', 'ünï',
              b'\xff\x00raw'):
        got = rt(v, mode)
        assert got == v and type(got) is type(v), v
    assert type(rt(3.0, mode)) is int and rt(3.0, mode) == 3   # integral doubles load as int
    assert type(rt(np.float32(1.5), mode)) is float and rt(np.int64(-4), mode) == -4
    assert rt(float('inf'), mode) == float('inf') and rt(float('nan'), mode) != rt(float('nan'), mode)
    z = rt(-0.0, mode)
    assert type(z) is float and np.signbit(z)


@pytest.mark.parametrize('mode', ['binary', 'ascii'])
def test_tables(mode):
    assert rt([1, 'a', [2, [3]], None, True], mode) == [1, 'a', [2, [3]], None, True]
    d = {'x': 1, 2: 'two', 0.5: [1], True: 'yes', 'nested': {'k': []}}
    assert rt(d, mode) == d
    assert rt({1: 'a', 2: 'b'}, mode) == ['a', 'b']      # keys 1..n: a list
    assert rt({2: 'a', 3: 'b'}, mode) == {2: 'a', 3: 'b'}  # not from 1: a dict
    assert rt({}, mode) == [] and rt([], mode) == []      # Lua's empty table loads as []
    assert rt((1, (2, 3)), mode) == [1, [2, 3]]           # tuples save as tables
    key = [1, 2]
    got = rt({TableKey(key): 'v', 'k': key}, mode)        # a table as a key
    (tk,) = [k for k in got if isinstance(k, TableKey)]
    assert got[tk] == 'v' and tk.table == [1, 2] and tk.table is got['k']


def test_shared_references_and_cycles():
    a = [1]
    d = {'a': a, 'b': a}
    d['self'] = d
    got = rt(d)
    assert got['a'] is got['b'] and got['self'] is got
    lst = []
    lst.append(lst)
    got = rt(lst)
    assert got[0] is got
    # the same tuple twice gives two tables (Python shares tuples for no reason of the program's)
    t = (1, 2)
    got = rt([t, t])
    assert got == [[1, 2], [1, 2]] and got[0] is not got[1]


ALL_KINDS = ['Double', 'Float', 'Half', 'Long', 'Int', 'Short', 'Char', 'Byte']


@pytest.mark.parametrize('mode', ['binary', 'ascii'])
@pytest.mark.parametrize('kind', ALL_KINDS)
def test_tensor_types(kind, mode):
    rng = np.random.default_rng(1)
    t = pynn.typed(kind)(3, 4)
    a = t.numpy()
    if a.dtype.kind == 'f':
        a[...] = rng.standard_normal(a.shape)
    else:
        info = np.iinfo(a.dtype)
        a[...] = rng.integers(info.min, info.max, a.shape, endpoint=True, dtype=a.dtype)
    got = rt(t, mode)
    assert got.type() == t.type() and got.size() == (3, 4)
    np.testing.assert_array_equal(arr(got), a)
    st = rt(t.storage(), mode)
    assert st.type() == t.storage().type()
    np.testing.assert_array_equal(st.data, t.storage().data)


def test_tensor_views_and_shared_storages():
    base = pynn.Tensor(4, 5)
    base.numpy()[...] = np.arange(20).reshape(4, 5)
    tr = base.t()
    nar = base.narrow(1, 2, 2)
    sel = base.select(2, 3)
    g1, g2, g3, g4 = rt([base, tr, nar, sel])
    st = g1.storage()
    assert g2.storage() is st and g3.storage() is st and g4.storage() is st
    assert g2.stride() == (1, 5) and g3.storageOffset() == 6 and g4.stride() == (5,)
    for a, b in zip((g1, g2, g3, g4), (base, tr, nar, sel)):
        np.testing.assert_array_equal(arr(a), arr(b))
    g1.fill(7)                       # they still share after loading
    assert (arr(g2) == 7).all() and (arr(g4) == 7).all()
    # a storage shared by tensors in different places of the object graph
    s1 = pynn.Tensor(2, 2).fill(1)
    s2 = pynn.Tensor(s1.storage(), 1, (4,))
    got = rt({'a': {'t': s1}, 'b': [s2]})
    assert got['a']['t'].storage() is got['b'][0].storage()


def test_storage_shared_in_the_file():
    # two tensors of a Lua file whose second storage is a reference to the first one's
    st = storage(3, 'torch.FloatStorage', np.arange(6, dtype='<f4'))
    t1 = tensor(2, 'torch.FloatTensor', (2, 3), (3, 1), 1, st)
    t2 = tensor(4, 'torch.FloatTensor', (3,), (2,), 2, i32(4) + i32(3))
    a, b = loads(table(1, (number(1), t1), (number(2), t2)))
    assert a.storage() is b.storage()
    assert b.tolist() == [1, 3, 5]
    a.numpy()[0, 1] = 10
    assert b.tolist() == [10, 3, 5]
    a2, b2 = rt([a, b])
    assert a2.storage() is b2.storage() and b2.tolist() == [10, 3, 5]


def test_public_names():
    assert pynn.T7FormatError is T7FormatError and issubclass(T7FormatError, ValueError)
    assert pynn.load is pynn.serialization.load and pynn.save is pynn.serialization.save


def test_class_names_are_only_looked_up_never_imported():
    obj = loads(torch_head(1, 'os.system') + table(2, (string('cmd'), string('rm -rf /'))))
    assert type(obj) is TorchObject and obj.torch_typename() == 'os.system' and obj.cmd == 'rm -rf /'
    with pytest.raises(NotImplementedError):
        obj.forward()


def test_empty_and_odd_tensors():
    e = rt(pynn.Tensor())
    assert e.dim() == 0 and e.storage() is None and e.type() == 'torch.DoubleTensor'
    assert dumps(pynn.Tensor()) == dumps(e)
    z = pynn.Tensor(0)
    assert rt(z).size() == (0,)
    s = pynn.Storage(3)
    zero_dim = pynn.Tensor().set(s, 2, ())   # a storage but no dimensions
    got = rt(zero_dim)
    assert got.dim() == 0 and got.storage().size() == 3 and got.storageOffset() == 2
    long_storage = pynn.LongStorage([3, -1, 2 ** 40])
    got = rt(long_storage)
    assert got.type() == 'torch.LongStorage' and got.tolist() == [3, -1, 2 ** 40]
    with pytest.raises(ValueError, match='meta'):
        dumps(pynn.MetaDoubleTensor(2, 2))


def test_cuda_type_names_load_on_the_cpu():
    data = torch_head(1, 'nn.Linear') + table(
        2, (string('weight'), tensor(3, 'torch.CudaTensor', (2,), (1,), 1,
                                     storage(4, 'torch.CudaStorage', np.array([1.5, 2.5], '<f4')))),
        (string('_type'), string('torch.CudaTensor')))
    obj = loads(data)
    assert obj.weight.type() == 'torch.FloatTensor' and obj.weight.tolist() == [1.5, 2.5]
    assert obj._type == 'torch.FloatTensor'
    d = loads(tensor(1, 'torch.CudaDoubleTensor', (1,), (1,), 1,
                     storage(2, 'torch.CudaDoubleStorage', np.array([3.0]))))
    assert d.type() == 'torch.DoubleTensor' and d.tolist() == [3.0]


# --------------------------------------------------------------------------- ascii and b32 files
ASCII_TABLE = b'3\n1\n4\n1\n1\n1\n1\n1\n2\n1\n2.5\n1\n3\n2\n2\nab\n1\n4\n5\n1\n'
ASCII_TENSOR = (b'4\n1\n3\nV 1\n18\ntorch.DoubleTensor\n2\n2 2\n2 1\n1\n'
                b'4\n2\n3\nV 1\n19\ntorch.DoubleStorage\n4\n1 2 3 4.5\n')


def test_ascii_files_as_torch_writes_them():
    # torch.save(f, {1, 2.5, 'ab', true}, 'ascii') and torch.save(f, torch.Tensor{{1,2},{3,4.5}}, 'ascii')
    assert loads(ASCII_TABLE) == [1, 2.5, 'ab', True]
    assert dumps([1, 2.5, 'ab', True], 'ascii') == ASCII_TABLE
    t = loads(ASCII_TENSOR)
    assert t.tolist() == [[1, 2], [3, 4.5]] and t.type() == 'torch.DoubleTensor'
    assert dumps(t, 'ascii') == ASCII_TENSOR
    assert loads(ASCII_TENSOR, mode='ascii').tolist() == t.tolist()
    with pytest.raises(T7FormatError, match='not a number'):
        loads(ASCII_TENSOR.replace(b'4.5', b'4.x'))
    with pytest.raises(T7FormatError):
        loads(ASCII_TENSOR, mode='binary')


def test_ascii_network_round_trip():
    net = nn.Sequential().add(nn.Linear(3, 2)).add(nn.ReLU())
    x = pynn.rand(4, 3)
    net.forward(x)
    got = loads(dumps(net, 'ascii'))
    np.testing.assert_array_equal(arr(got.forward(x)), arr(net.forward(x)))


def test_b32_files():
    # 4-byte longs (torch.load(f, 'b32'))
    data = (torch_head(1, 'torch.FloatTensor') + i32(1) + i32(3) + i32(1) + i32(1) +
            torch_head(2, 'torch.FloatStorage') + i32(3) + np.array([1, 2, 3], '<f4').tobytes())
    assert loads(data, mode='b32').tolist() == [1, 2, 3]
    with pytest.raises(T7FormatError):
        loads(data)


# --------------------------------------------------------------------------- modules
def small_net():
    net = nn.Sequential()
    net.add(nn.SpatialConvolution(3, 4, 3, 3, 1, 1, 1, 1))
    net.add(nn.SpatialBatchNormalization(4))
    net.add(nn.ReLU(True))
    net.add(nn.SpatialMaxPooling(2, 2, 2, 2))
    net.add(nn.View(4 * 3 * 3).setNumInputDims(3))
    net.add(nn.Linear(36, 5))
    net.add(nn.LogSoftMax())
    return net, pynn.rand(2, 3, 6, 6)


def res_net():
    block = nn.Sequential().add(nn.SpatialConvolution(4, 4, 3, 3, 1, 1, 1, 1)) \
        .add(nn.SpatialBatchNormalization(4)).add(nn.ReLU(True))
    net = nn.Sequential().add(nn.ConcatTable().add(block).add(nn.Identity())) \
        .add(nn.CAddTable(True)).add(nn.ReLU(True))
    return net, pynn.randn(2, 4, 5, 5)


def inception_net():
    net = nn.Concat(2)
    net.add(nn.Sequential().add(nn.SpatialConvolution(3, 2, 1, 1)).add(nn.ReLU(True)))
    net.add(nn.Sequential().add(nn.SpatialMaxPooling(3, 3, 1, 1, 1, 1)).add(nn.SpatialConvolution(3, 2, 1, 1)))
    return net, pynn.randn(2, 3, 5, 5)


def run_both(net, net2, x, train=True):
    """Forward and backward(ones) on both; every output, gradInput and gradient is identical."""
    for m in (net, net2):
        m.training() if train else m.evaluate()
        m.zeroGradParameters()
    x, x2 = clone_input(x), clone_input(x)   # in-place first layers may change their input
    pynn.manualSeed(5)
    o1 = flat_arrays(net.forward(x))
    g1 = flat_arrays(net.backward(x, ones_like(net.output)))
    p1 = [arr(g) for g in (net.parameters() or ([], []))[1]]
    pynn.manualSeed(5)
    o2 = flat_arrays(net2.forward(x2))
    g2 = flat_arrays(net2.backward(x2, ones_like(net2.output)))
    p2 = [arr(g) for g in (net2.parameters() or ([], []))[1]]
    for a, b in zip(o1 + g1 + p1, o2 + g2 + p2):
        np.testing.assert_array_equal(a, b)
    assert len(o1 + g1 + p1) == len(o2 + g2 + p2)


@pytest.mark.parametrize('build', [small_net, res_net, inception_net])
def test_network_round_trip(build, tmp_path):
    net, x = build()
    net.forward(x)
    path = tmp_path / 'net.t7'
    pynn.save(path, net)
    net2 = pynn.load(path)
    assert type(net2) is type(net) and net2.__tostring__() == net.__tostring__()
    if net.output is net.modules[-1].output:   # Sequential shares its last module's output
        assert net2.output is net2.modules[-1].output
    assert dumps(net2) == path.read_bytes()           # save -> load -> save: the same bytes
    run_both(net, net2, x)
    run_both(net, net2, x, train=False)
    # and again after the runs, through file objects
    buf = io.BytesIO()
    pynn.save(buf, net)
    net3 = pynn.load(io.BytesIO(buf.getvalue()))
    run_both(net, net3, x)


def test_float_network_round_trip():
    net, x = small_net()
    net.float()
    x = x.float()
    net.forward(x)
    net2 = rt(net)
    assert net2.modules[0].weight.type() == 'torch.FloatTensor' and net2._type == 'torch.FloatTensor'
    run_both(net, net2, x)


def test_sharing_between_modules_is_kept():
    a = nn.Linear(3, 3)
    b = a.clone('weight', 'bias', 'gradWeight', 'gradBias')
    net = nn.Sequential().add(a).add(b)
    net2 = rt(net)
    a2, b2 = net2.modules
    assert a2.weight.storage() is b2.weight.storage() and a2.gradBias.storage() is b2.gradBias.storage()
    assert a2.weight.storage() is not a.weight.storage()


def test_cyclic_module_fields():
    m = nn.Identity()
    m.me = m
    m.friends = [m, {'m': m}]
    got = rt(m)
    assert got.me is got and got.friends[0] is got and got.friends[1]['m'] is got


def test_pynn_private_fields_are_not_written():
    m = nn.Linear(2, 2)
    m._pynn_cache = object()          # would not even be writable
    got = rt(m)
    assert '_pynn_cache' not in got.__dict__ and got.weight.size() == (2, 2)


def test_unknown_class_loads_as_generic_object():
    inner = TorchObject('nn.FancyLayer', {'output': pynn.Tensor(), 'gradInput': pynn.Tensor(),
                                          'weight': pynn.Tensor(2).fill(3), 'gradWeight': pynn.Tensor(2),
                                          'alpha': 0.25, 'train': True})
    seq = nn.Sequential().add(nn.Identity())
    seq.modules.append(inner)   # what a Lua file holds; pynn's add() takes only pynn modules
    data = dumps(seq)
    got = loads(data)
    assert dumps(got) == data          # saved back unchanged
    fancy = got.modules[1]
    assert isinstance(fancy, UnknownModule) and isinstance(fancy, nn.Module)
    assert fancy.torch_typename() == 'nn.FancyLayer' == pynn.typename(fancy)
    assert fancy.alpha == 0.25 and fancy.weight.tolist() == [3, 3]
    assert fancy.parameters()[0][0] is fancy.weight
    with pytest.raises(NotImplementedError, match='nn.FancyLayer'):
        got.forward(pynn.rand(2))
    # something not module-like stays a plain TorchObject, with a version kept
    obj = loads(dumps(TorchObject('my.Config', {'lr': 0.1}, version=3)))
    assert type(obj) is TorchObject and obj.lr == 0.1 and obj._pynn_version == 3
    with pytest.raises(NotImplementedError, match='my.Config'):
        obj.forward(1)
    # a payload that is not a table of named fields is kept as it is
    odd = loads(torch_head(1, 'odd.Thing') + number(5))
    assert odd._pynn_payload == 5 and dumps(odd) == torch_head(1, 'odd.Thing') + number(5)


def test_class_versions_are_written_as_lua_does():
    bn = dumps(nn.SpatialBatchNormalization(3))
    assert b'V 2' in bn[:20]
    assert dumps(nn.Linear(2, 2))[12:15] == b'V 1'


# --------------------------------------------------------------------------- old nn files
def test_upgrade_old_spatial_convolution():
    conv = nn.SpatialConvolution(2, 3, 3, 3, 1, 1, 1, 1)
    x = pynn.rand(1, 2, 5, 5)
    want = arr(conv.forward(x))
    old = TorchObject('nn.SpatialConvolution', {k: v for k, v in conv.__dict__.items()
                                                 if k not in ('padW', 'padH', 'finput', 'fgradInput')})
    old.weight = conv.weight.view(3, 18)       # the 2-D weight of old nn
    old.gradWeight = conv.gradWeight.view(3, 18)
    old.padding = 1                            # before padW/padH
    got = rt(old)
    assert type(got) is nn.SpatialConvolution
    assert got.weight.size() == (3, 2, 3, 3) and got.gradWeight.size() == (3, 2, 3, 3)
    assert (got.padW, got.padH) == (1, 1) and 'padding' not in got.__dict__
    np.testing.assert_allclose(arr(got.forward(x)), want, atol=1e-12)
    got.backward(x, ones_like(got.output))
    # no padding at all in very old files: padW = padH = 0
    older = TorchObject('nn.SpatialConvolution', dict(old.__dict__))
    del older.__dict__['padding']
    got = rt(older)
    assert (got.padW, got.padH) == (0, 0)


def test_upgrade_batchnorm_version_1():
    bn = nn.SpatialBatchNormalization(3)
    bn.running_mean.numpy()[...] = [0.1, 0.2, 0.3]
    var = np.array([0.5, 2.0, 4.0])
    fields = dict(bn.__dict__)
    del fields['running_var']
    std = pynn.Tensor(3)
    std.numpy()[...] = 1 / np.sqrt(var + bn.eps)
    fields['running_std'] = std
    got = rt(TorchObject('nn.SpatialBatchNormalization', fields, version=1))
    assert type(got) is nn.SpatialBatchNormalization and 'running_std' not in got.__dict__
    np.testing.assert_allclose(arr(got.running_var), var, rtol=1e-12)
    # version 2 files are left alone
    got2 = rt(bn)
    np.testing.assert_array_equal(arr(got2.running_var), arr(bn.running_var))


def test_upgrade_old_pooling_dropout_threshold():
    mp = nn.SpatialMaxPooling(2, 2, 2, 2)
    f = {k: v for k, v in mp.__dict__.items() if k not in ('ceil_mode', 'padW', 'padH')}
    got = rt(TorchObject('nn.SpatialMaxPooling', f))
    assert not got.ceil_mode and (got.padW, got.padH) == (0, 0)   # nil, as in Lua: floor
    got.forward(pynn.rand(1, 1, 4, 4))
    relu = nn.ReLU()
    f = {k: v for k, v in relu.__dict__.items() if k != 'inplace'}
    got = rt(TorchObject('nn.ReLU', f))
    assert not got.inplace
    assert got.forward(pynn.Tensor([-1.0, 2.0])).tolist() == [0, 2]
    if 'nn.Dropout' in nn.registry():
        d = nn.Dropout(0.5)
        f = {k: v for k, v in d.__dict__.items() if k not in ('v2', 'inplace', 'stochastic_inference')}
        got = rt(TorchObject('nn.Dropout', f))
        assert not got.v2
        got.evaluate()
        assert got.forward(pynn.Tensor([2.0, 4.0])).tolist() == [1, 2]   # v1: scaled at evaluation


def test_upgrade_with_wrong_fields_is_a_format_error():
    bad = TorchObject('nn.SpatialConvolution', {'weight': pynn.Tensor(3, 18), 'nOutputPlane': 'x'})
    with pytest.raises(T7FormatError, match='nn.SpatialConvolution'):
        rt(bad)


# --------------------------------------------------------------------------- malformed files
def tensor_file(n=4):
    return tensor(1, 'torch.DoubleTensor', (n,), (1,), 1,
                  storage(2, 'torch.DoubleStorage', np.arange(n, dtype='<f8')))


def test_valid_crafted_file():
    assert loads(tensor_file()).tolist() == [0, 1, 2, 3]


def format_error(data, match=None, **kw):
    t0 = time.perf_counter()
    with pytest.raises(T7FormatError, match=match) as ei:
        loads(data, **kw)
    assert time.perf_counter() - t0 < 1.0
    return ei.value


def test_huge_sizes_fail_at_once():
    head = torch_head(1, 'torch.DoubleStorage')
    e = format_error(head + i64(10 ** 12) + bytes(1000), 'file ends early')
    assert e.offset == len(head) + 8
    format_error(torch_head(1, 'torch.ByteStorage') + i64(2 ** 62) + bytes(1000), 'file ends early')
    format_error(i32(2) + i32(2 ** 31 - 1) + b'abc', 'file ends early')           # string
    format_error(i32(3) + i32(1) + i32(2 ** 31 - 1) + bytes(64), 'file ends early')  # table
    format_error(torch_head(1, 'torch.FloatTensor') + i32(2 ** 30) + bytes(64), 'dimensions')
    format_error(torch_head(1, 'tds.Vec', 'V 0') + i64(10 ** 15) + bytes(64), 'file ends early')
    format_error(i32(4) + i32(1) + i32(2 ** 31 - 1) + b'V 1', 'file ends early')     # version string
    ascii_storage = b'4\n1\n3\nV 1\n19\ntorch.DoubleStorage\n1000000000000\n1 2 3\n'
    format_error(ascii_storage, 'file ends early')


def test_truncated_files():
    data = tensor_file()
    for n in range(len(data)):
        e = format_error(data[:n])
        assert e.offset is not None and e.offset <= n


@needs_ref
def test_truncated_reference_network():
    data = (LUA / 'net.t7').read_bytes()
    for n in list(range(0, 400)) + list(range(400, len(data), 101)):
        format_error(data[:n])


def test_unknown_tags_versions_classes_and_references():
    e = format_error(i32(9), 'unknown type tag 9')
    assert e.offset == 0 and 'at byte 0' in str(e)
    format_error(i32(-1), 'unknown type tag')
    format_error(torch_head(1, 'torch.DoubleTensor', 'V x'), 'bad version string')
    format_error(torch_head(1, '\x00\x01garbage', version=None), 'bad version string or class name')
    format_error(torch_head(1, 'torch.Generator') + bytes(100), 'unsupported Torch type')
    format_error(torch_head(1, 'torch.QuuxTensor') + bytes(100), 'unsupported Torch type')
    # a reference to an object never read: index 5 when the next new object would be 2
    e = format_error(table(1, (number(1), i32(3) + i32(5) + i32(0))), 'points to no object')
    assert e.offset == 4 * 3 + 12 + 4
    format_error(i32(3) + i32(0) + i32(0), 'points to no object')
    # but a reference back to an object read before is fine
    got = loads(table(1, (number(1), i32(3) + i32(1))))
    assert got[0] is got


def test_inconsistent_tensors():
    st = storage(2, 'torch.DoubleStorage', np.arange(4, dtype='<f8'))
    format_error(tensor(1, 'torch.DoubleTensor', (5,), (1,), 1, st), 'does not fit')
    format_error(tensor(1, 'torch.DoubleTensor', (2,), (1,), 4, st), 'does not fit')
    format_error(tensor(1, 'torch.DoubleTensor', (2,), (-1,), 1, st), 'negative')
    format_error(tensor(1, 'torch.DoubleTensor', (-2,), (1,), 1, st), 'negative')
    format_error(tensor(1, 'torch.DoubleTensor', (2,), (1,), 0, st), 'negative')
    format_error(tensor(1, 'torch.FloatTensor', (2,), (1,), 1, st), 'storage of type torch.DoubleStorage')
    format_error(tensor(1, 'torch.DoubleTensor', (2,), (1,), 1, number(3)), 'storage of type')
    format_error(tensor(1, 'torch.DoubleTensor', (2,), (1,), 1, i32(0)), 'has no storage')
    format_error(tensor_file() + b'\x00', 'unexpected bytes after the end')
    format_error(table(1, (i32(0), number(1))), 'table key is nil')
    format_error(table(1, (number(float('nan')), number(1))), 'NaN')
    # a known module whose payload is not a table of fields
    format_error(torch_head(1, 'nn.Linear') + number(3), 'not a table of named fields')
    format_error(torch_head(1, 'nn.Linear') + table(2, (string('_pynn_x'), number(1))), 'reserved')
    # Lua true and 1 as keys of one table
    format_error(table(1, (number(1), number(1)), (i32(5) + i32(1), number(2))), 'twice')


def test_nesting_without_recursion_limit():
    depth = 5000
    data = b''.join(i32(3) + i32(i + 1) + i32(1) + number(1) for i in range(depth)) + i32(0)
    got = loads(data)
    for _ in range(depth - 1):
        got = got[0]
    assert got == [None]
    too_deep = b''.join(i32(3) + i32(i + 1) + i32(1) + number(1) for i in range(20000)) + i32(0)
    format_error(too_deep, 'nested')
    deep = []
    cur = deep
    for _ in range(depth):    # the writer does not recurse either
        cur.append([])
        cur = cur[0]
    assert len(dumps(deep)) > depth


# --------------------------------------------------------------------------- the writer refuses
def test_unwritable_values():
    with pytest.raises(TypeError, match=r'numpy array .*obj\.a\[1\]'):
        dumps({'a': [1, np.zeros(2)]})
    with pytest.raises(TypeError, match='object'):
        dumps([object()])
    with pytest.raises(ValueError, match='doubles'):
        dumps(2 ** 53 + 1)
    with pytest.raises(TypeError, match='None key'):
        dumps({None: 1})


def test_refuses_networks_optimized_by_optnet(tmp_path):
    from pynn import optnet
    net, x = small_net()
    net.evaluate()
    want = arr(net.forward(x))
    optnet.optimizeMemory(net, x, {'mode': 'inference'})
    path = tmp_path / 'opt.t7'
    with pytest.raises(ValueError, match='removeOptimization'):
        pynn.save(path, net)
    assert not path.exists()            # nothing written
    optnet.removeOptimization(net)
    pynn.save(path, net)
    net2 = pynn.load(path)
    np.testing.assert_array_equal(arr(net2.forward(x)), want)
    net2.training()
    run_both(net, net2, x)
    # training-mode optimization is refused too, and so is any module with backward disabled
    optnet.optimizeMemory(net, x, {'mode': 'training'})
    with pytest.raises(ValueError, match='removeOptimization'):
        dumps(net)
    optnet.removeOptimization(net)
    net.modules[2]._pynn_backward_disabled = True
    with pytest.raises(ValueError, match='removeOptimization'):
        dumps(net)


# --------------------------------------------------------------------------- an independent reader
def test_torchfile_reads_what_pynn_writes(tmp_path):
    torchfile = pytest.importorskip('torchfile')
    rng = np.random.default_rng(0)
    tensors = {}
    for kind in ['Double', 'Float', 'Long', 'Int', 'Short', 'Char', 'Byte']:
        t = pynn.typed(kind)(2, 3)
        a = t.numpy()
        a[...] = rng.standard_normal(a.shape) * 50 if a.dtype.kind == 'f' else rng.integers(-100, 100, a.shape)
        tensors[kind] = t
    base = pynn.Tensor(3, 4).fill(2)
    obj = {'tensors': tensors, 'list': [1, 2.5, 'x', True, None], 'str': 'héllo', 'num': -3,
           'transposed': base.t(), 'base': base, 'ls': pynn.LongStorage([5, 6])}
    path = tmp_path / 'obj.t7'
    pynn.save(path, obj)
    got = torchfile.load(str(path), use_list_heuristic=False)
    for kind, t in tensors.items():
        np.testing.assert_array_equal(got[b'tensors'][kind.encode()], arr(t))
        assert got[b'tensors'][kind.encode()].dtype == t.numpy().dtype
    assert dict(got[b'list']) == {1: 1, 2: 2.5, 3: b'x', 4: True, 5: None}
    assert got[b'str'] == 'héllo'.encode() and got[b'num'] == -3
    np.testing.assert_array_equal(got[b'transposed'], arr(base.t()))
    assert np.shares_memory(got[b'transposed'], got[b'base'])   # one storage in the file
    np.testing.assert_array_equal(got[b'ls'], [5, 6])

    net, x = small_net()
    net.forward(x)
    pynn.save(path, net)
    tnet = torchfile.load(str(path), use_list_heuristic=False)
    assert tnet.torch_typename() == b'nn.Sequential'
    mods = tnet[b'modules']
    assert [mods[i + 1].torch_typename().decode() for i in range(len(mods))] == \
        [m.__typename__ for m in net.modules]
    conv = mods[1]
    np.testing.assert_array_equal(conv[b'weight'], arr(net.modules[0].weight))
    assert conv[b'kW'] == 3 and conv[b'padW'] == 1 and conv[b'_type'] == b'torch.DoubleTensor'
    np.testing.assert_array_equal(mods[2][b'running_var'], arr(net.modules[1].running_var))
    assert mods[2]._version_number == 2
    np.testing.assert_array_equal(tnet[b'output'], arr(net.output))


# --------------------------------------------------------------------------- models/
def _models():
    try:
        from pynn import models
    except ImportError:
        return {}
    return dict(getattr(models, 'builders', {}) or {})


CIFAR = {'dataset': 'cifar10', 'depth': 20}
SLOW = os.environ.get('PYNN_SLOW_TESTS') == '1'
MAX_PARAMS = 5_000_000      # googlenet, alexnet, vgg (0.5-2.4 GB files): PYNN_SLOW_TESTS=1
MAX_GRAD_PARAMS = 200_000   # also forward+backward in training mode (the small nets)


def _build(builder):
    try:
        return builder()
    except (TypeError, ValueError):
        return builder(CIFAR)


@pytest.mark.parametrize('name', sorted(_models()) or ['(none)'])
def test_models_round_trip(name):
    builders = _models()
    if name not in builders:
        pytest.skip('models exposes no builders')
    old = pynn.getdefaulttensortype()
    try:   # count parameters without data first
        pynn.setdefaulttensortype('torch.MetaDoubleTensor')
        meta, _ = _build(builders[name])
    except AttributeError as e:
        pytest.skip('a layer the model needs is missing from pynn.nn: %s' % e)
    finally:
        pynn.setdefaulttensortype(old)
    nparams = sum(p.nElement() for p in (meta.parameters() or ([], []))[0])
    big = nparams > MAX_PARAMS and not SLOW
    pynn.manualSeed(1)
    if big:  # alexnet, googlenet, vgg: float32 keeps the round trip cheap in CI
        pynn.setdefaulttensortype('torch.FloatTensor')
    try:
        net, x = _build(builders[name])
    finally:
        pynn.setdefaulttensortype(old)
    small = nparams <= MAX_GRAD_PARAMS or SLOW
    if small:
        net.forward(x)       # buffers and outputs filled: they are saved too
    data = dumps(net)
    net2 = loads(data)
    assert dumps(net2) == data                  # save -> load -> save: the same bytes
    if small:
        run_both(net, net2, x)
    else:
        for m in (net, net2):
            m.evaluate()
        o1 = flat_arrays(net.forward(clone_input(x)))
        o2 = flat_arrays(net2.forward(clone_input(x)))
        for a, b in zip(o1, o2):
            np.testing.assert_array_equal(a, b)


def _careful(monkeypatch):
    """Make pynn.load take the careful (generator) reader for binary files too."""
    from pynn import serialization

    def refuse(self):
        raise serialization._Fallback
    monkeypatch.setattr(serialization._Parser, '_parse_fast', refuse)


def _ref_files():
    files = sorted(LUA.glob('*.t7')) if LUA.is_dir() else []
    graphs = REF.parent / 'lua-nngraph'
    return files + (sorted(graphs.glob('*.t7')) if graphs.is_dir() else [])


@needs_ref
@pytest.mark.parametrize('path', _ref_files(), ids=lambda p: p.name)
def test_fast_and_careful_readers_agree(path, monkeypatch):
    """Binary files are read by a fast loop that hands anything irregular to the careful
    reader; both must make the same objects: the same bytes when saved again."""
    fast = dumps(pynn.load(path))
    _careful(monkeypatch)
    assert dumps(pynn.load(path)) == fast


def test_fast_reader_hands_irregular_files_to_the_careful_one():
    # shared references, a cycle, tables as keys, old version-less heads, b32 longs: same
    # objects either way; a malformed file: the careful reader's error and offset
    inner = {'a': 1, 'b': [1.5, -0.0, 2 ** 60, 'x', b'\xff']}
    outer = [inner, inner, {'k': True, 'n': None}]
    outer.append(outer)
    got = loads(dumps(outer))
    assert got[0] is got[1] and got[3] is got and got[0]['b'][1] == 0.0
    assert got[0]['b'][2] == 2 ** 60 and got[0]['b'][4] == b'\xff'
    # a version-less object head (files from before versions) next to a versioned one,
    # both of one class: the fast reader must not take one for the other
    got = loads(i32(3) + i32(1) + i32(2)
                + number(1) + torch_head(2, 'my.Config', version=None) + table(3, (string('x'), number(7)))
                + number(2) + torch_head(4, 'my.Config') + table(5, (string('x'), number(8))))
    assert [o.torch_typename() for o in got] == ['my.Config'] * 2
    assert [o.x for o in got] == [7, 8] and got[0]._pynn_version == 0 and got[1]._pynn_version == 1
    e = format_error(table(1, (number(1), i32(3) + i32(5) + i32(0))), 'points to no object')
    assert e.offset == 4 * 3 + 12 + 4


def test_truncated_repeated_storage_names_its_type():
    # the second storage's head was seen before (the fast reader's shortcut): a truncated
    # payload is still reported by the careful reader, with its type and size
    first = storage(2, 'torch.DoubleStorage', np.arange(3, dtype='<f8'))
    second = storage(3, 'torch.DoubleStorage', np.arange(5, dtype='<f8'))
    data = table(1, (number(1), first), (number(2), second))
    assert loads(data)[1].tolist() == [0, 1, 2, 3, 4]
    e = format_error(data[:-8], 'torch.DoubleStorage of 5 elements')
    assert e.offset == len(data) - 5 * 8
