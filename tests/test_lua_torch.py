"""Conformance with real Lua Torch7's tensor library: every case of ../shared/reference/lua-torch/.

Each case holds the Lua text of one call (`torch.max(x, 2)`, `x:add(y)`, `x[{{1, 2}}] = y`, ...),
its arguments before and after, and every value it returned. The call is translated to pynn's
spelling (lua-torch/README.md: `torch.f` -> `pynn.f`, `x:f` -> `x.f`, tables -> lists, index
tables -> tuples of the index entries) and run on fresh copies of the arguments; the test checks
the return values (kind, type, size, values within the case's `tol` or 1e-10), the arguments
afterwards, `aliases` (the very same object) and `shares` (the same storage). `rng` cases run
after `pynn.manualSeed(seed)`. Test ids are `fn/index` (1-based position in the file).
"""
import json
import math
import numbers
import re
from pathlib import Path

import numpy as np
import pytest

import pynn

REF = Path(__file__).resolve().parents[1] / '..' / 'shared' / 'reference' / 'lua-torch'
MANIFEST = REF / 'MANIFEST.json'
FILES = json.loads(MANIFEST.read_text())['files'] if MANIFEST.exists() else []
CASES = [(f['file'], i) for f in sorted(FILES, key=lambda f: f['name']) for i in range(f['cases'])]
TOL = 1e-10
_WORDS = {'true': 'True', 'false': 'False', 'nil': 'None'}


def lua_to_python(src):
    """Translate the Lua text of a case's call into Python source for pynn (bound as `torch`).

    `x:f(...)` -> `x.f(...)`; `{a, b}` -> `[a, b]`; `f{...}` -> `f([...])`; an index table
    `x[{a, {b, c}}]` -> `x[a, [b, c]]` (the outer table becomes the subscript tuple);
    `true/false/nil` -> `True/False/None`. Strings are copied unchanged.
    """
    out, stack, i, n = [], [], 0, len(src)
    while i < n:
        ch = src[i]
        if ch in '"\'':
            j = src.index(ch, i + 1)
            out.append(src[i:j + 1])
            i = j + 1
            continue
        if ch.isalpha() or ch == '_':
            m = re.match(r'[A-Za-z_][A-Za-z_0-9]*', src[i:])
            w = m.group(0)
            out.append(_WORDS.get(w, w))
            i += len(w)
            continue
        if ch == ':':
            out.append('.')
        elif ch == '[' and src[i + 1:i + 2] == '{':
            out.append('[')
            stack.append('')          # the index table's braces vanish
            i += 2
            continue
        elif ch == '{':
            prev = ''.join(out).rstrip()
            if prev and (prev[-1].isalnum() or prev[-1] == '_'):
                out.append('([')     # f{...}: a call with one table argument
                stack.append('])')
            else:
                out.append('[')
                stack.append(']')
        elif ch == '}':
            out.append(stack.pop())
        else:
            out.append(ch)
        i += 1
    return ''.join(out)


def run_case(case):
    """Run the case's call in pynn; return the tuple of its results and the namespace."""
    args = case['args'] if isinstance(case['args'], dict) else {}
    ns = {'torch': pynn}
    ns.update(args)
    code = lua_to_python(case['call'])
    pynn.manualSeed(case['seed'])
    if case.get('stmt'):
        exec(compile(code, '<lua-case>', 'exec'), ns)
        return (), code
    res = eval(compile(code, '<lua-case>', 'eval'), ns)
    if case['nresults'] == 1 or not isinstance(res, tuple):
        res = (res,)
    return res, code


def _host(t):
    a = t.numpy()
    return a if isinstance(a, np.ndarray) else a.get()


def _close(a, b, tol):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        return False, 'shape %s, Lua %s' % (a.shape, b.shape)
    if a.size == 0:
        return True, ''
    nan_a, nan_b = np.isnan(a), np.isnan(b)
    if (nan_a != nan_b).any():
        return False, 'NaN positions differ'
    fin = ~nan_b & np.isfinite(b)
    if (a[~fin & ~nan_b] != b[~fin & ~nan_b]).any():
        return False, 'infinities differ'
    if not fin.any():
        return True, ''
    scale = max(float(np.abs(b[fin]).max()), 1.0)
    err = float(np.abs(a[fin] - b[fin]).max())
    return err <= tol * scale, 'max|diff| %.3g > %.3g' % (err, tol * scale)


def compare(got, want, what, tol):
    if isinstance(want, pynn.Tensor):
        assert isinstance(got, pynn.Tensor), '%s: expected a tensor, got %s %r' % (
            what, type(got).__name__, got)
        assert got.type() == want.type(), '%s: type %s, Lua %s' % (what, got.type(), want.type())
        assert tuple(got.size()) == tuple(want.size()), '%s: size %s, Lua %s' % (
            what, got.size(), want.size())
        if want.nElement():
            ok, why = _close(_host(got), _host(want), tol)
            assert ok, '%s: %s' % (what, why)
    elif isinstance(want, pynn.Storage):
        # Lua's LongStorage sizes: pynn gives a Storage, or a tuple where pynn's size()/stride() do
        if isinstance(got, pynn.Storage):
            assert got.type() == want.type(), '%s: %s, Lua %s' % (what, got.type(), want.type())
            got = got.tolist()
        assert isinstance(got, (tuple, list)), '%s: expected a %s, got %s' % (
            what, want.type(), type(got).__name__)
        assert list(got) == want.tolist(), '%s: %s, Lua %s' % (what, list(got), want.tolist())
    elif isinstance(want, (list, tuple)):
        assert isinstance(got, (list, tuple)), '%s: expected a table, got %s' % (what, type(got).__name__)
        assert len(got) == len(want), '%s: %d entries, Lua %d' % (what, len(got), len(want))
        for i, (g, w) in enumerate(zip(got, want)):
            compare(g, w, '%s[%d]' % (what, i + 1), tol)
    elif isinstance(want, bool):
        assert isinstance(got, (bool, np.bool_)), '%s: expected a boolean, got %s %r' % (
            what, type(got).__name__, got)
        assert bool(got) == want, '%s: %r, Lua %r' % (what, got, want)
    elif isinstance(want, numbers.Real):
        assert isinstance(got, numbers.Real) and not isinstance(got, (bool, np.bool_)), \
            '%s: expected a number, got %s %r' % (what, type(got).__name__, got)
        if math.isnan(want):
            assert math.isnan(got), '%s: %r, Lua nan' % (what, got)
        else:
            assert abs(got - want) <= tol * max(abs(want), 1.0), '%s: %r, Lua %r' % (what, got, want)
    else:
        assert got == want, '%s: %r, Lua %r' % (what, got, want)


def _numbered(table):
    """Lua's {[i] = name} as (i, name) pairs, i 1-based."""
    if isinstance(table, dict):
        return [(int(k), v) for k, v in table.items()]
    return [(i + 1, v) for i, v in enumerate(table or []) if v is not None]


def _signfree(got, want):
    """Flip got's columns to the signs of want's (eigen/singular vectors are defined up to sign)."""
    a, b = _host(got).astype(np.float64), _host(want).astype(np.float64)
    if a.shape != b.shape or a.ndim != 2:
        return got
    s = np.where((a * b).sum(0) < 0, -1.0, 1.0)
    return pynn.from_numpy(np.ascontiguousarray(a * s)).type(want.type())


def _sorted_along(got, want, d):
    """Order values (and their indices) along 1-based dim d, for Torch's unordered topk."""
    outs = []
    for res in (got, want):
        v = _host(res[0]).astype(np.float64)
        order = np.argsort(v, axis=d - 1, kind='stable')
        outs.append([pynn.from_numpy(np.ascontiguousarray(np.take_along_axis(_host(r), order, d - 1)))
                     .type(r.type()) for r in res])
    return outs


@pytest.mark.skipif(not CASES, reason='Lua torch cases not found at ../shared/reference/lua-torch')
@pytest.mark.parametrize('file,index', CASES, ids=['%s/%d' % (f[:-3], i + 1) for f, i in CASES])
def test_lua_torch_case(file, index):
    case = pynn.load(REF / file)[index]
    tol = case.get('tol') or TOL
    res, code = run_case(case)
    what = '%s  [pynn: %s]' % (case['call'], code)
    want = list(case['results'] or [])
    nres = case.get('nresults', len(want))
    assert len(res) == nres, '%s: %d results, Lua %d' % (what, len(res), nres)
    got = list(res)
    if case.get('signfree'):
        for i in case['signfree']:
            got[i - 1] = _signfree(got[i - 1], want[i - 1])
    if case.get('unordered'):
        got, want = _sorted_along(got, want, int(case['unordered']))
    for i, (g, w) in enumerate(zip(got, want)):
        compare(g, w, '%s result %d' % (what, i + 1), tol)
    args = case['args'] if isinstance(case['args'], dict) else {}
    after = case['after'] if isinstance(case['after'], dict) else {}
    for name, w in after.items():
        compare(args[name], w, '%s: %s afterwards' % (what, name), tol)
    for i, name in _numbered(case.get('aliases')):
        r, a = res[i - 1], args[name]
        assert r is a or (isinstance(r, pynn.Tensor) and r.isSetTo(a)), \
            '%s: result %d is not %s itself' % (what, i, name)
    for i, name in _numbered(case.get('shares')):
        r, a = res[i - 1], args[name]
        assert isinstance(r, pynn.Tensor) and r.storage() is not None and r.storage() is a.storage(), \
            '%s: result %d does not share the storage of %s' % (what, i, name)


def test_translator():
    assert lua_to_python('x:max(2)') == 'x.max(2)'
    assert lua_to_python('x[{{1, 2}, {}}]') == 'x[[1, 2], []]'
    assert lua_to_python('x[{2, 3}]') == 'x[2, 3]'
    assert lua_to_python('torch.LongStorage{3, 4}') == 'torch.LongStorage([3, 4])'
    assert lua_to_python('torch.cat({x, y, z}, 1)') == 'torch.cat([x, y, z], 1)'
    assert lua_to_python('torch.multinomial(pr, 3, true)') == 'torch.multinomial(pr, 3, True)'
    assert lua_to_python('x:type("torch.LongTensor")') == 'x.type("torch.LongTensor")'
    assert lua_to_python('torch.Tensor(2, 3):fill(1)') == 'torch.Tensor(2, 3).fill(1)'
