"""Conformance with real Lua Torch7 + the final nn: every case of ../shared/reference/lua-nn/.

Each case replays the fixture protocol of lua-nn/README.md (forward, zeroGradParameters,
backward, parameters, a second forward; loss and gradInput for criteria) on the module or
criterion that Lua saved, and compares with what Lua computed: sizes, element types, and
values within 1e-10 of the largest magnitude of Lua's tensor. Test ids are `family/file`, so
`-k pointwise` runs one family.
"""
import json
from pathlib import Path

import pytest

import pynn

REF = Path(__file__).resolve().parents[1] / '..' / 'shared' / 'reference' / 'lua-nn'
MANIFEST = REF / 'MANIFEST.json'
CASES = [c for c in json.loads(MANIFEST.read_text()) if 'file' in c] if MANIFEST.exists() else []
TOL = 1e-10


def case_id(c):
    return '%s/%s' % (c['family'], c['file'][:-3])


def snap(x):
    """A copy of a result, taken at once: later calls may reuse the module's buffers."""
    if isinstance(x, pynn.Tensor):
        return x.clone() if x.nElement() else x.new()
    if isinstance(x, (list, tuple)):
        return [snap(v) for v in x]
    if isinstance(x, dict):  # e.g. nn.IndexLinear's gradients: its `running` table
        return {k: snap(v) for k, v in x.items()}
    return x


def compare(got, want, what, tol=TOL):
    if isinstance(want, pynn.Tensor):
        assert isinstance(got, pynn.Tensor), '%s: expected a tensor, got %s' % (what, type(got).__name__)
        assert got.size() == want.size(), '%s: size %s, Lua %s' % (what, got.size(), want.size())
        assert got.type() == want.type(), '%s: type %s, Lua %s' % (what, got.type(), want.type())
        if want.nElement() == 0:
            return
        a, b = got.numpy().astype('float64'), want.numpy().astype('float64')
        scale = max(float(abs(b).max()), 1e-6)
        err = float(abs(a - b).max())
        assert err <= tol * scale, '%s: max|diff| %.3g > %.3g' % (what, err, tol * scale)
    elif isinstance(want, (list, tuple)):
        assert isinstance(got, (list, tuple)), '%s: expected a table, got %s' % (what, type(got).__name__)
        assert len(got) == len(want), '%s: %d entries, Lua %d' % (what, len(got), len(want))
        for i, (g, w) in enumerate(zip(got, want)):
            compare(g, w, '%s[%d]' % (what, i + 1), tol)
    elif isinstance(want, dict):
        assert isinstance(got, dict), '%s: expected a table, got %s' % (what, type(got).__name__)
        assert sorted(map(str, got)) == sorted(map(str, want)), '%s: keys %s, Lua %s' % (what, sorted(got), sorted(want))
        for k in want:
            compare(got[k], want[k], '%s.%s' % (what, k), tol)
    elif isinstance(want, (int, float)):
        assert isinstance(got, (int, float)), '%s: expected a number, got %s' % (what, type(got).__name__)
        assert abs(got - want) <= tol * max(abs(want), 1e-6), '%s: %r, Lua %r' % (what, got, want)
    else:
        assert got == want, '%s: %r, Lua %r' % (what, got, want)


def replay(fx, case):
    """Run the fixture's protocol; return the list of (what, pynn result, Lua result)."""
    out = []
    if case['kind'] == 'criterion':
        c = fx['criterion']
        target = fx.get('target')
        out.append(('loss', c.forward(fx['input'], target), fx['loss']))
        if 'lua_backward_error' in case:  # Lua's backward fails here: pynn's must raise too
            with pytest.raises(ValueError):
                c.backward(fx['input'], target)
            return out
        out.append(('gradInput', snap(c.backward(fx['input'], target)), fx['gradInput']))
        return out
    m = fx['module']
    m.evaluate() if fx['mode'] == 'evaluate' else m.training()
    inp = fx['input']
    out.append(('output', snap(m.forward(inp)), fx['output']))
    if 'lua_backward_error' not in case:
        m.zeroGradParameters()
        out.append(('gradInput', snap(m.backward(inp, fx['gradOutput'])), fx['gradInput']))
        p = m.parameters()
        out.append(('gradParams', snap(list(p[1]) if p else []), fx['gradParams']))
    if 'input2' in fx:
        out.append(('output2', snap(m.forward(fx['input2'])), fx['output2']))
    return out


def check(fx, case):
    for what, got, want in replay(fx, case):
        compare(got, want, '%s %s' % (case['ctor'], what))


@pytest.mark.skipif(not CASES, reason='Lua nn fixtures not found at ../shared/reference/lua-nn')
@pytest.mark.parametrize('case', CASES, ids=case_id)
def test_lua_nn_case(case):
    check(pynn.load(REF / case['file']), case)
