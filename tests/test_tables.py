"""`pynn-optnet tables` on the meta device: the JSON records, the figures against optnet's
published tables, and the emulation of the 2016 code that made those figures.

Meta accounting equals real accounting (tests/test_meta.py), so these run in seconds."""
import json
from pathlib import Path

import pytest

from pynn.optnet import tables
from pynn.optnet.__main__ import main

MiB = 1048576.0
REF = Path(__file__).resolve().parents[2] / 'shared' / 'reference' / 'optnet_published_tables.json'
KEYS = {'setting', 'model', 'before', 'after', 'lower_bound', 'seconds'}
FIELDS = {'total_size', 'outputs', 'gradInputs', 'buffers', 'params'}

# The one cell where today's optnet ends above the published figure (docs/tables.md): its
# assignment puts a tensor into the compatible storage closest in size, the 2016 code into the
# first compatible one, which happens to save 5.7 MiB more here. (--lua2016 reproduces 816.)
ABOVE_PUBLISHED = {('training_cudnn_float_batch64', 'alexnet'): 6 * MiB}


@pytest.fixture(scope='module')
def records(tmp_path_factory):
    path = tmp_path_factory.mktemp('tables') / 'tables.json'
    assert main(['tables', '--meta', '--no-progress', '--json', str(path)]) == 0
    return json.loads(path.read_text())


@pytest.fixture(scope='module')
def lua2016(tmp_path_factory):
    path = tmp_path_factory.mktemp('tables') / 'lua2016.json'
    assert main(['tables', '--meta', '--no-progress', '--lua2016', '--json', str(path)]) == 0
    return json.loads(path.read_text())


def test_embedded_figures_are_the_reference():
    if not REF.is_file():
        pytest.skip('shared/reference/optnet_published_tables.json absent')
    ref = json.loads(REF.read_text())
    for key, table in tables.PUBLISHED.items():
        for k, v in table.items():
            assert ref[key][k] == v, (key, k)
    assert {s['key'] for s in tables.SETTINGS} == {k for k in ref if k != 'source'}


def test_json_schema(records):
    assert len(records) == 12
    settings = [s['key'] for s in tables.SETTINGS]
    models = [m[0] for m in tables.MODELS]
    assert [(r['setting'], r['model']) for r in records] == [(s, m) for s in settings for m in models]
    for r in records:
        assert KEYS <= set(r)
        for w in ('before', 'after'):
            assert set(r[w]) == FIELDS and all(isinstance(v, int) and v >= 0 for v in r[w].values())
            assert r[w]['total_size'] == sum(r[w][k] for k in FIELDS - {'total_size'})
        assert isinstance(r['lower_bound'], int) and r['lower_bound'] > 0
        assert r['seconds'] >= 0 and r['meta'] is True
        assert r['options'] == tables.options_of(r['setting'])
        pub = tables.PUBLISHED[r['setting']]
        assert set(r['published']['before']) == {('total_size' if f == 'total' else f) for f in pub['fields']}


def test_after_at_most_published(records):
    """Every pynn after total is at most the published after (up to the printed rounding), but
    for the documented ABOVE_PUBLISHED cell, which stays within its bound."""
    for r in records:
        pub = r['published']['after']['total_size']
        slack = ABOVE_PUBLISHED.get((r['setting'], r['model']), 0.5 * MiB)
        assert r['after']['total_size'] <= pub + slack, (r['setting'], r['model'], r['after']['total_size'] / MiB)
        assert r['after']['total_size'] <= r['before']['total_size']


def test_before_close_to_published(records):
    """Within 5% of the published before, except GoogLeNet in training (cudnn.torch's 2016
    contiguous copies, docs/tables.md and test_lua2016_reproduces_published)."""
    for r in records:
        pub = r['published']['before']['total_size']
        got = r['before']['total_size']
        if (r['setting'], r['model']) == ('training_cudnn_float_batch64', 'googlenet'):
            assert 0.85 * pub < got < pub
            continue
        assert abs(got - pub) <= 0.05 * pub, (r['setting'], r['model'], got / MiB, pub / MiB)


def test_lower_bound_below_activations(records):
    for r in records:
        a = r['after']
        mode = r['options']['mode']
        acts = a['outputs'] + (a['gradInputs'] if mode == 'training' else 0) + a['buffers']
        assert r['lower_bound'] <= acts + 1, (r['setting'], r['model'])


def _tolerance(value):
    """Half a unit of the printed figure's last digit (1.5 and 0.5 MiB have one decimal), or 1%."""
    return max(0.05 * MiB if value != int(value) else 0.5 * MiB, 0.01 * value * MiB)


# What the emulation does not reproduce (docs/tables.md): AlexNet's outputs in the cudnn inference
# table (6.3 MiB, 1.6%: optnet's countUsedMemory of 2016-03-15 and cudnn.torch of the time), and a
# published total that is not the sum of its own fields (VGG: 4386 + 1014 = 5400, printed 5340).
NOT_REPRODUCED = {
    ('inference_cudnn_float_batch128', 'alexnet', 'before', 'total_size'): 0.02,
    ('inference_cudnn_float_batch128', 'alexnet', 'before', 'outputs'): 0.02,
    ('inference_cudnn_float_batch128', 'vgg-A', 'before', 'total_size'): 0.02,
}


def test_lua2016_reproduces_published(lua2016):
    """With the 2016 code emulated (optnet's first-fit assignment, cudnn.torch's contiguous
    copies) and the networks of the time, every published figure comes out to its printed
    rounding (or 1%), but for the NOT_REPRODUCED ones (within 2%)."""
    for r in lua2016:
        assert r['emulation'] == 'lua2016'
        pub = tables.PUBLISHED[r['setting']][r['model']]
        names = [('total_size' if f == 'total' else f) for f in tables.PUBLISHED[r['setting']]['fields']]
        for w in ('before', 'after'):
            for n, v in zip(names, pub[w]):
                got = r[w][n]
                tol = NOT_REPRODUCED.get((r['setting'], r['model'], w, n))
                tol = tol * v * MiB if tol else _tolerance(v)
                assert abs(got - v * MiB) <= tol + 1e-9 * MiB, (r['setting'], r['model'], w, n, got / MiB, v)


def test_text_output_and_cli(capsys):
    assert main(['tables', '--meta', '--no-progress', '--setting', 'inference_cudnn_float_batch128',
                 '--model', 'resnet-110-cifar', '--no-optimal']) == 0
    out = capsys.readouterr().out
    assert 'Inference, cudnn modules, float32, batch 128' in out
    assert 'resnet-110-cifar' in out and 'published' in out and '(1049, 1036, 13.0)' in out
    assert 'wall time' in out


def test_activation_lower_bound_fallback():
    """The command's own lower bound (used when pynn.optnet has no lowerBound) never exceeds
    pynn's liveness lower bound computed with the same conservative reads, and is positive."""
    from pynn import optnet
    s = tables.SETTINGS[2]
    net, inp = tables.prepare(s, 'resnet-110-cifar', meta=True, network='nobn')
    mine = tables.activation_lower_bound(net, inp, 'training')
    net, inp = tables.prepare(s, 'resnet-110-cifar', meta=True, network='nobn')
    theirs = optnet.lowerBound(net, inp, {'mode': 'training', 'needs': 'conservative', 'reuseBuffers': False})
    assert 0 < mine
    assert abs(mine - theirs) <= 0.1 * theirs, (mine / MiB, theirs / MiB)
