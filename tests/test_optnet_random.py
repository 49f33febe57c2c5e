"""pynn's optnet against the ORIGINAL Lua optnet on 60 random networks x 4 option sets.

`../shared/reference/lua-optnet-random/` holds what the original printed for each network and
configuration (see its README): countUsedMemory before and after optimizeMemory, the modules it
left in place, and how far its optimized values are from the unoptimized ones. Each (network,
configuration) is classified:

- `right`: the original's optimized values equal its unoptimized ones (relative difference
  <= 1e-6) and the values are comparable (no Dropout noise in training): pynn's countUsedMemory
  before and after must equal the original's, field by field, and its in-place set must be the
  original's;
- `wrong`: the original's optimized network computes wrong values: pynn must be right, and its
  bytes are reported next to the original's;
- `noisy`: training with Dropout noise, where the original's values cannot be compared: pynn
  must be right (the noise is replayed from one seed) and its bytes are reported.

In every case pynn's optimized values must equal its unoptimized ones (1e-6 relative).
`python tests/test_optnet_random.py` prints the per-network table and the summary.
"""
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

if __name__ == '__main__':  # run as a script: this checkout's pynn, not an installed one
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import pynn  # noqa: E402
from pynn import optnet  # noqa: E402
from pynn.optnet.trace import recursive_clone, tensors_of  # noqa: E402

REF = Path(__file__).resolve().parents[1] / '..' / 'shared' / 'reference' / 'lua-optnet-random'
FIELDS = ('outputs', 'gradInputs', 'buffers', 'params', 'total_size')
CONFIGS = {
    'inference': {'mode': 'inference', 'inplace': True, 'reuseBuffers': True},
    'inference_noip': {'mode': 'inference', 'inplace': False, 'reuseBuffers': True},
    'training': {'mode': 'training', 'inplace': True, 'reuseBuffers': True},
    'training_noip': {'mode': 'training', 'inplace': False, 'reuseBuffers': True},
}
TOL = 1e-6


def _load_json(name):
    return json.loads((REF / name).read_text())


def _arrays(x):
    return [np.array(t.numpy(), copy=True) for t in tensors_of(x)]


def _rel_diff(a, b):
    """Largest |a - b| over the largest |b| (at least 1), over lists of arrays."""
    worst = 0.0
    for x, y in zip(a, b):
        if x.shape != y.shape:
            return float('inf')
        if x.size:
            scale = max(1.0, float(np.abs(y).max()))
            worst = max(worst, float(np.abs(x - y).max()) / scale)
    return worst


def _grads(net):
    p = net.parameters()
    return [np.concatenate([g.numpy().ravel() for g in p[1]])] if p and p[1] else []


def _lua_relative(vals, entry, training):
    """The original's relative difference (its self_*_diff over the unoptimized magnitudes)."""
    worst = 0.0
    for key, diff in (('out', 'self_out_diff'), ('gin', 'self_gin_diff'), ('gp', 'self_gp_diff')):
        if diff not in entry or (not training and key != 'out'):
            continue
        ref = [a for a in _arrays(vals.get(key + '1') or []) if a.size]
        scale = max([1.0] + [float(np.abs(a).max()) for a in ref])
        worst = max(worst, float(entry[diff]) / scale)
    return worst


def run_config(seed, cfg):
    """The README's protocol in pynn: returns before, after, inplace set and pynn's value diff."""
    o = CONFIGS[cfg]
    training = o['mode'] == 'training'
    net = pynn.load(str(REF / ('net_%s.t7' % seed)))
    inp0 = pynn.load(str(REF / ('input_%s.t7' % seed)))

    def once():
        pynn.manualSeed(1234)   # the same Dropout noise in both runs
        inp = inp0.clone()
        if training:
            net.zeroGradParameters()
        out = net.forward(inp)
        vals = _arrays(out)
        if training:
            gin = net.backward(inp, recursive_clone(out))
            vals += _arrays(gin) + _grads(net)
        return vals

    net.training() if training else net.evaluate()
    v1 = once()
    before = optnet.countUsedMemory(net)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always')
        optnet.optimizeMemory(net, inp0.clone(), dict(o))
    v2 = once()
    after = optnet.countUsedMemory(net)
    inplace = [i + 1 for i, m in enumerate(net.listModules()) if m.__dict__.get('inplace')]
    return {'before': before, 'after': after, 'inplace': inplace, 'diff': _rel_diff(v2, v1),
            'warnings': [str(x.message) for x in w]}


def classify(seed, cfg, lua, meta, lua_vals):
    entry = lua[seed][cfg]
    training = cfg.startswith('training')
    if training and meta[seed]['stochastic']:
        return 'noisy'
    rel = _lua_relative(lua_vals[cfg], entry, training)
    return 'right' if rel <= TOL else 'wrong'


def _cases():
    if not REF.exists():
        return []
    return [(s, c) for s in sorted(_load_json('lua.json'), key=int) for c in CONFIGS]


_CACHE = {}


def _reference():
    if 'lua' not in _CACHE:
        _CACHE['lua'] = _load_json('lua.json')
        _CACHE['meta'] = _load_json('meta.json')
    return _CACHE['lua'], _CACHE['meta']


def _lua_vals(seed):
    return pynn.load(str(REF / ('lua_vals_%s.t7' % seed)))


def evaluate(seed, cfg, lua_vals=None):
    lua, meta = _reference()
    lua_vals = lua_vals or _lua_vals(seed)
    kind = classify(seed, cfg, lua, meta, lua_vals)
    got = run_config(seed, cfg)
    want = lua[seed][cfg]
    fields_equal = all(got['before'][f] == want['before'][f] and got['after'][f] == want['after'][f]
                       for f in FIELDS)
    return kind, got, want, fields_equal


@pytest.fixture(autouse=True)
def _double_default():
    pynn.setdefaulttensortype('torch.DoubleTensor')
    yield


@pytest.mark.skipif(not REF.exists(), reason='shared/reference/lua-optnet-random is absent here')
@pytest.mark.parametrize('seed', [str(s) for s in range(1, 61)])
def test_random_network_against_the_original(seed):
    lua_vals = _lua_vals(seed)
    failures = []
    for cfg in CONFIGS:
        kind, got, want, equal = evaluate(seed, cfg, lua_vals)
        if got['diff'] > TOL:
            failures.append('%s: pynn optimized values differ by %.3g (relative)' % (cfg, got['diff']))
        if any('could not be made consistent' in w for w in got['warnings']):
            failures.append('%s: fell back to no sharing' % cfg)
        if kind == 'right':
            if not equal:
                failures.append('%s: bytes differ: pynn %s / %s, original %s / %s'
                                % (cfg, got['before'], got['after'], want['before'], want['after']))
            if got['inplace'] != want['inplace']:
                failures.append('%s: in-place set %s, original %s' % (cfg, got['inplace'],
                                                                     want['inplace']))
    assert not failures, '\n'.join(failures)


def main():
    lua, meta = _reference()
    pynn.setdefaulttensortype('torch.DoubleTensor')
    summary = {c: {'right_equal': 0, 'right_differ': 0, 'wrong': [], 'noisy': [], 'pynn_bad': 0}
               for c in CONFIGS}
    t0 = time.time()
    seeds = sys.argv[1:] or sorted(lua, key=int)
    for seed in seeds:
        lua_vals = _lua_vals(seed)
        for cfg in CONFIGS:
            try:
                kind, got, want, equal = evaluate(seed, cfg, lua_vals)
            except Exception as e:  # noqa: BLE001 (a diagnosis run goes on)
                print('%3s %-15s ERROR %s' % (seed, cfg, e), flush=True)
                summary[cfg]['pynn_bad'] += 1
                continue
            s = summary[cfg]
            ip = 'ip=' if got['inplace'] == want['inplace'] else 'ip!'
            if got['diff'] > TOL:
                s['pynn_bad'] += 1
            line = '%3s %-15s %-6s %-6s %s pynn after %7d/%7d lua %7d/%7d diff %.1g %s' % (
                seed, cfg, kind, 'equal' if equal else 'DIFFER', ip,
                got['after']['outputs'], got['after']['total_size'],
                want['after']['outputs'], want['after']['total_size'], got['diff'],
                ' '.join(w[:40] for w in got['warnings']))
            print(line, flush=True)
            if kind == 'right':
                s['right_equal' if equal else 'right_differ'] += 1
            else:
                s[kind].append((seed, equal, got['after']['total_size'], want['after']['total_size']))
    print('\n%-15s %6s %6s %6s %6s %8s  %s' % ('config', 'equal', 'differ', 'wrong', 'noisy',
                                               'pynn_bad', 'wrong/noisy: seed pynn/lua total after'))
    for c, s in summary.items():
        extra = ' '.join('%s:%d/%d%s' % (sd, p, q, '=' if eq else '') for sd, eq, p, q in s['wrong'] + s['noisy'])
        print('%-15s %6d %6d %6d %6d %8d  %s' % (c, s['right_equal'], s['right_differ'], len(s['wrong']),
                                                len(s['noisy']), s['pynn_bad'], extra))
    print('%.1f s' % (time.time() - t0))


if __name__ == '__main__':
    main()
