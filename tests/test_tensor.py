"""Torch7 tensor/storage semantics: shared storages, in-place resize, views, set, errors."""
import numpy as np
import pytest

import pynn
from pynn import Storage, Tensor


def test_two_tensors_on_one_storage_see_each_others_writes():
    a = pynn.DoubleTensor(2, 3).zero()
    b = pynn.DoubleTensor().set(a.storage(), 1, (6,))
    b.numpy()[4] = 7.5
    assert a.numpy()[1, 1] == 7.5
    a.fill(2)
    assert b.numpy().tolist() == [2] * 6
    assert a.storage() is b.storage()


def test_resize_grows_the_shared_storage_in_place_for_all():
    a = pynn.FloatTensor(4).fill(1)
    b = pynn.FloatTensor().set(a)
    st = a.storage()
    a.resize(3, 5)
    assert a.storage() is st and b.storage() is st
    assert st.size() == 15
    assert b.numpy().tolist() == [1, 1, 1, 1]  # b keeps its view; the data was kept
    b.numpy()[0] = 9
    assert a.numpy()[0, 0] == 9


def test_resize_does_not_shrink_storage_and_keeps_strides_when_unchanged():
    a = pynn.Tensor(10)
    a.resize(2)
    assert a.storage().size() == 10
    t = pynn.Tensor(3, 4).transpose(1, 2)
    stride = t.stride()
    t.resize(4, 3)
    assert t.stride() == stride


def test_views_share_memory():
    a = pynn.Tensor(4, 6)
    a.numpy()[...] = np.arange(24).reshape(4, 6)
    n = a.narrow(2, 2, 3)
    assert n.size() == (4, 3) and n.storageOffset() == 2
    assert n.numpy().tolist() == np.arange(24).reshape(4, 6)[:, 1:4].tolist()
    s = a.select(1, 3)
    assert s.numpy().tolist() == list(range(12, 18))
    tr = a.transpose(1, 2)
    assert not tr.isContiguous()
    assert tr.numpy()[5, 3] == a.numpy()[3, 5]
    v = a.view(2, -1)
    v.numpy()[1, 11] = -1
    assert a.numpy()[3, 5] == -1
    c = tr.contiguous()
    assert c.isContiguous() and c.storage() is not a.storage()
    assert np.array_equal(c.numpy(), a.numpy().T)


def test_set_forms():
    st = Storage(10)
    t = Tensor().set(st, 3, (2, 2), (4, 1))
    assert t.size() == (2, 2) and t.stride() == (4, 1) and t.storageOffset() == 3
    t.set()
    assert t.storage() is None and t.dim() == 0 and t.nElement() == 0
    u = Tensor().set(st)
    assert u.size() == (10,)


def test_bad_input_errors_leave_tensor_unchanged():
    st = Storage(6)
    t = Tensor().set(st, 1, (2, 3))
    with pytest.raises(ValueError, match='does not fit'):
        t.set(st, 2, (2, 3))
    assert t.size() == (2, 3) and t.storageOffset() == 1
    with pytest.raises(ValueError, match='>= 0'):
        t.resize(-1, 2)
    assert t.size() == (2, 3)
    with pytest.raises(ValueError, match='inconsistent'):
        t.view(4, 2)
    with pytest.raises(TypeError):
        pynn.FloatTensor().set(st)  # a DoubleStorage under a FloatTensor
    with pytest.raises(ValueError, match='sizes do not match'):
        t.copy(pynn.Tensor(5))
    with pytest.raises(ValueError, match='contiguous'):
        pynn.Tensor(3, 4).t().view(12)


def test_types_and_copy():
    d = pynn.DoubleTensor([[1.5, 2.5], [3, 4]])
    f = d.float()
    assert f.type() == 'torch.FloatTensor' and f.numpy().dtype == np.float32
    l = d.long()
    assert l.tolist() == [[1, 2], [3, 4]]
    assert d.type('torch.DoubleTensor') is d
    assert pynn.typename(f) == 'torch.FloatTensor'
    b = pynn.ByteTensor(3).fill(255)
    assert b.numpy().dtype == np.uint8
    x = pynn.FloatTensor(2, 2).copy(d)
    assert x.numpy().tolist() == [[1.5, 2.5], [3, 4]]


def test_numpy_is_a_view_and_fromNumpy_shares():
    t = pynn.Tensor(3, 2)
    a = t.numpy()
    a[...] = 5
    assert t.sum() == 30
    arr = np.arange(6, dtype=np.float32).reshape(2, 3)
    u = pynn.fromNumpy(arr)
    arr[0, 0] = 42
    assert u.numpy()[0, 0] == 42 and u.type() == 'torch.FloatTensor'
    nc = pynn.fromNumpy(arr.T)  # not contiguous: copied
    assert nc.size() == (3, 2) and nc.numpy()[1, 0] == 1 and nc.numpy()[0, 1] == 3


def test_default_type_and_random():
    pynn.setdefaulttensortype('torch.FloatTensor')
    try:
        assert pynn.Tensor(2).type() == 'torch.FloatTensor'
        assert pynn.rand(3, 3).type() == 'torch.FloatTensor'
    finally:
        pynn.setdefaulttensortype('torch.DoubleTensor')
    pynn.manualSeed(3)
    a = pynn.rand(100)
    pynn.manualSeed(3)
    b = pynn.rand(100)
    assert a.equal(b) and 0 <= a.min() and a.max() < 1
    assert abs(pynn.randn(20000).numpy().std() - 1) < 0.05


def test_one_based_indexing_and_arith():
    t = pynn.Tensor([[1, 2], [3, 4]])
    assert t[2][1] == 3 and t.size(2) == 2 and t.size(-1) == 2
    with pytest.raises(IndexError):
        t.size(3)
    t.add(1).mul(2)
    assert t.tolist() == [[4, 6], [8, 10]]
    t.add(0.5, pynn.Tensor([[2, 2], [2, 2]]))
    assert t.tolist() == [[5, 7], [9, 11]]


def test_meta_tensors_have_sizes_but_no_data():
    m = pynn.MetaFloatTensor(128, 3, 224, 224)
    assert m.nElement() == 128 * 3 * 224 * 224
    assert m.storage().data is None and m.storage().size() == m.nElement()
    with pytest.raises(RuntimeError, match='no data'):
        m.numpy()
    m.resize(256, 3, 224, 224)
    assert m.storage().size() == 256 * 3 * 224 * 224


# --- Torch7's math library, operators, indexing and the Python protocol -----------------------
# (Lua's own results for every function are replayed in tests/test_lua_torch.py; these check
# other shapes and types against NumPy, and the error paths.)

def _T(a, kind='Double'):
    t = getattr(pynn, kind + 'Tensor')()
    t.resize(*np.shape(a))
    t.numpy()[...] = a
    return t


def test_operators_follow_lua_against_numpy():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    m, v = rng.standard_normal((4, 2)), rng.standard_normal(4)
    x, y = _T(a), _T(b)
    assert np.allclose(np.asarray(x + y), a + b) and np.allclose(np.asarray(2 - x), 2 - a)
    assert np.allclose(np.asarray(-x), -a) and np.allclose(np.asarray(x / 4), a / 4)
    assert np.allclose(np.asarray(x % 0.7), a - 0.7 * np.floor(a / 0.7))
    assert np.allclose(np.asarray(x * _T(m)), a @ m) and np.allclose(np.asarray(x * _T(v)), a @ v)
    assert (_T(v) * _T(v)) == pytest.approx(float(v @ v))
    assert np.array_equal(np.asarray(x), a)         # operators never modify their operands


def test_lua_indexing_and_assignment():
    a = np.arange(12.).reshape(3, 4)
    x = _T(a)
    assert x[2, 3] == a[1, 2] and x[-1, -1] == a[2, 3]
    assert np.array_equal(np.asarray(x[[1, 2], []]), a[0:2])
    assert np.array_equal(np.asarray(x[[], 2]), a[:, 1])
    assert np.array_equal(np.asarray(x[[-2, -1], [2, 3]]), a[1:3, 1:3])
    assert x[[], 2].storage() is x.storage()
    mask = x.gt(5)
    assert mask.type() == 'torch.ByteTensor'
    assert np.array_equal(np.asarray(x[mask]), a[a > 5])
    x[mask] = 0
    x[1, 1] = 7
    x[[], 4] = -1
    want = np.where(a > 5, 0, a)
    want[0, 0] = 7
    want[:, 3] = -1
    assert np.array_equal(np.asarray(x), want)
    with pytest.raises(IndexError, match='__getitem__'):
        x[4, 1]
    with pytest.raises(IndexError, match='range'):
        x[[2, 5]]


def test_python_protocol():
    a = np.arange(6.).reshape(2, 3)
    x = _T(a)
    rows = list(x)
    assert len(rows) == len(x) == 2 and all(r.size() == (3,) for r in rows)
    assert list(x[2]) == [3.0, 4.0, 5.0]
    arr = np.asarray(x)
    assert arr.dtype == np.float64 and np.shares_memory(arr, x.numpy())
    f = _T(a, 'Float')
    assert np.asarray(f).dtype == np.float32
    assert 4.0 in x and 9.0 not in x
    assert repr(_T([[1, 2], [3, 4]])) == ' 1  2\n 3  4\n[torch.DoubleTensor of size 2x2]'
    assert repr(pynn.Tensor()) == '[torch.DoubleTensor with no dimension]'
    assert list(pynn.Tensor()) == []


def test_result_first_forms_alias_and_methods_work_in_place():
    x = _T(np.array([[1., -2.], [3., -4.]]))
    r = pynn.Tensor()
    assert pynn.abs(r, x) is r and np.array_equal(np.asarray(r), [[1, 2], [3, 4]])
    assert x.abs() is x and np.array_equal(np.asarray(x), [[1, 2], [3, 4]])
    v, i = pynn.max(x, 2)
    assert v.size() == (2, 1) and i.type() == 'torch.LongTensor' and i.tolist() == [[2], [2]]
    assert pynn.sum(x) == 10 and x.t().storage() is x.storage()


def test_float32_math_keeps_the_type():
    rng = np.random.default_rng(1)
    a = rng.standard_normal((3, 4)).astype(np.float32)
    x = _T(a, 'Float')
    for r in (pynn.exp(x), x + 1, pynn.sum(x, 2), pynn.mm(x, x.t()), pynn.cumsum(x, 2)):
        assert r.type() == 'torch.FloatTensor'
    assert np.allclose(np.asarray(pynn.mm(x, x.t())), a @ a.T, atol=1e-5)


def test_math_bad_input_names_the_function_and_changes_nothing():
    a = np.arange(12.).reshape(3, 4)
    x, y = _T(a), _T(np.ones((2, 2)))
    for call, fn in ((lambda: x.add(y), 'add'), (lambda: x.cmul(y), 'cmul'),
                     (lambda: pynn.mm(x, x), 'mm'), (lambda: pynn.sum(x, 3), 'sum'),
                     (lambda: x.index(1, pynn.LongTensor([1, 4])), 'index'),
                     (lambda: pynn.cat(x, y, 1), 'cat'), (lambda: x.narrow(2, 4, 2), 'narrow'),
                     (lambda: pynn.addmm(x, x, x), 'addmm'), (lambda: x.gather(2, y), 'gather')):
        with pytest.raises((ValueError, IndexError, TypeError), match=fn):
            call()
        assert np.array_equal(np.asarray(x), a) and np.array_equal(np.asarray(y), np.ones((2, 2)))


def test_scatter_gather_bad_input():
    x = _T(np.zeros((3, 4)))
    idx = pynn.LongTensor([[1, 2], [3, 4], [2, 2]])
    with pytest.raises(ValueError, match='scatter'):
        x.scatter(2, idx, _T(np.ones((2, 2))))
    with pytest.raises(IndexError, match='scatter'):
        x.scatter(2, pynn.LongTensor([[5], [1], [1]]), 1.0)
    assert not np.asarray(x).any()
    x.scatter(2, idx, 2.5)
    assert np.asarray(x).sum() == 2.5 * 5
