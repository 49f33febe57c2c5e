"""Files written by older nn versions: every back-compatibility path of the final nn.

Each case takes a Lua conformance fixture, rewrites its module in the layout an older nn
version wrote (fields renamed or absent, another tensor layout, an older class version), saves
it with pynn's writer, loads it back and replays the fixture: the final nn runs such a file as
it runs the fixture (or, where the old version meant something else, as the old one did), and
so must pynn. The paths, from the final nn's sources:

| class | older layout | final nn's code |
|---|---|---|
| SpatialConvolution | `padding` (one pad for both sides), 2-D weight, no finput/fgradInput | backCompatibility |
| SpatialConvolutionMM, SpatialDepthWiseConvolution | `padding` | updateOutput |
| BatchNormalization (all three), version 1 | `running_std` = 1/sqrt(var + eps) | read |
| SpatialMaxPooling | no ceil_mode, padW, padH | updateOutput |
| SpatialAveragePooling | no ceil_mode/count_include_pad/pads; no `divide` (a sum) | backwardCompatible |
| VolumetricMaxPooling, version 1 | no ceil_mode | read |
| Dropout | no v2 (v1: scaled at evaluation) | updateOutput |
| View | no numInputDims, no output | updateOutput |
| Linear | no addBuffer | updateAddBuffer |
| Threshold, ReLU | no inplace | validateParameters |
| HardTanh | no min_val/max_val/inplace | updateOutput |
| Replicate | no dim | __init (dim or 1) |
| GradientReversal, version 1 | no lambda | read |
| Concat, DepthConcat | no outputSize | updateOutput |
| LookupTable, version < 4 | no shouldScaleGradByFreq, _count, _input | backCompatibility |
| SpatialFullConvolution | no adjW/adjH | backCompatibility |
| VolumetricFullConvolution | pT/pW/pH, no adj*, weight with dims 1 and 2 swapped | backCompatibility |
| MultiMarginCriterion | no p; a number target | updateOutput |
| CosineEmbeddingCriterion | a number target | updateOutput |
"""
import io
import json
from pathlib import Path

import numpy as np
import pytest

import pynn
from pynn.serialization import TorchObject

from test_lua_nn import REF, check

MANIFEST = REF / 'MANIFEST.json'
CASES = {c['file']: c for c in json.loads(MANIFEST.read_text()) if 'file' in c} if MANIFEST.exists() else {}


def drop(*names):
    def f(d):
        for n in names:
            d.pop(n, None)
    return f


def conv_padding(d):
    d['padding'] = d.pop('padW')
    d.pop('padH')


def conv_2013(d):
    conv_padding(d)
    for k in ('finput', 'fgradInput'):
        d.pop(k, None)
    w = d['weight']
    d['weight'] = w.view(w.size(1), w.nElement() // w.size(1))


def bn_v1(d):
    var = d.pop('running_var')
    std = var.clone()
    std.numpy()[...] = 1 / np.sqrt(var.numpy() + d['eps'])
    d['running_std'] = std


def volfull_old(d):
    for a in 'TWH':
        d['p' + a] = d.pop('pad' + a)
        d.pop('adj' + a, None)
    for k in ('weight', 'gradWeight'):
        d[k] = d[k].transpose(1, 2).contiguous()


def scale_outputs(factor):
    """The old version meant something else: Lua's outputs and gradInput then are the
    fixture's times factor (for these linear layers)."""
    def f(fx):
        for k in ('output', 'output2', 'gradInput'):
            if k in fx:
                fx[k] = fx[k].clone().mul(factor)
    return f


# file -> (rewrite of the module's fields, class version written, change of the expected values)
VINTAGES = {
    'SpatialConvolution_1.t7': (conv_2013, 1, None),
    'SpatialConvolution_2.t7': (drop('finput', 'fgradInput'), 1, None),
    'SpatialConvolutionMM_1.t7': (conv_padding, 1, None),
    'SpatialDepthWiseConvolution_1.t7': (conv_padding, 1, None),
    'BatchNormalization_2.t7': (bn_v1, 1, None),
    'SpatialBatchNormalization_2.t7': (bn_v1, 1, None),
    'VolumetricBatchNormalization_1.t7': (bn_v1, 1, None),
    'SpatialMaxPooling_1.t7': (drop('ceil_mode', 'padW', 'padH'), 1, None),
    'SpatialAveragePooling_1.t7': (drop('ceil_mode', 'count_include_pad', 'padW', 'padH'), 1, None),
    'VolumetricMaxPooling_1.t7': (drop('ceil_mode'), 1, None),
    'View_1.t7': (drop('numInputDims', 'output'), 1, None),
    'Linear_1.t7': (drop('addBuffer'), 1, None),
    'Threshold_2.t7': (drop('inplace'), 1, None),
    'ReLU_1.t7': (drop('inplace'), 1, None),
    'HardTanh_1.t7': (drop('min_val', 'max_val', 'inplace'), 1, None),
    'Replicate_1.t7': (drop('dim'), 1, None),
    'GradientReversal_1.t7': (drop('lambda'), 1, None),
    'Concat_1.t7': (drop('outputSize'), 1, None),
    'DepthConcat_1.t7': (drop('outputSize'), 1, None),
    'LookupTable_1.t7': (drop('shouldScaleGradByFreq', '_count', '_input'), 3, None),
    'SpatialFullConvolution_1.t7': (drop('adjW', 'adjH'), 1, None),
    'VolumetricFullConvolution_1.t7': (volfull_old, 1, None),
    'MultiMarginCriterion_1.t7': (drop('p'), 1, None),
}


def dropout_v1(d):
    d.pop('v2', None)


def avgpool_sum(d):
    for k in ('ceil_mode', 'count_include_pad', 'padW', 'padH', 'divide'):
        d.pop(k, None)


MEANING_CHANGED = {
    # Dropout before v2 scaled at evaluation: evaluate-mode outputs are input * (1 - p)
    'Dropout_1.t7': (dropout_v1, 1, lambda fx: scale_outputs(1 - fx['module'].p)(fx)),
    # SpatialAveragePooling before `divide` summed its window
    'SpatialAveragePooling_1.t7': (avgpool_sum, 1, lambda fx: scale_outputs(
        fx['module'].kW * fx['module'].kH)(fx)),
}


def old_file(fx, key, rewrite, version):
    """fx with its module rewritten in an older layout, written by pynn's writer and read back."""
    obj = fx[key]
    fields = dict(obj.__dict__)
    rewrite(fields)
    old = TorchObject(obj.__typename__, {k: v for k, v in fields.items() if not k.startswith('_pynn')},
                      version=version)
    fx = dict(fx)
    fx[key] = old
    buf = io.BytesIO()
    pynn.save(buf, fx)
    return pynn.load(io.BytesIO(buf.getvalue()))


def run_vintage(name, rewrite, version, expect):
    if name not in CASES:
        pytest.skip('Lua nn fixtures not found at ../shared/reference/lua-nn')
    case = CASES[name]
    fx = pynn.load(REF / name)
    key = 'criterion' if case['kind'] == 'criterion' else 'module'
    got = old_file(fx, key, rewrite, version)
    assert type(got[key]).__name__ == case['class'][3:], 'loads as its pynn class'
    if expect is not None:
        expect(got)
    check(got, case)


@pytest.mark.parametrize('name', sorted(VINTAGES))
def test_older_layout_runs_as_the_final_nn_runs_it(name):
    run_vintage(name, *VINTAGES[name])


@pytest.mark.parametrize('name', sorted(MEANING_CHANGED))
def test_older_meaning_is_kept(name):
    run_vintage(name, *MEANING_CHANGED[name])


def test_number_targets_of_older_scripts():
    """MultiMarginCriterion and CosineEmbeddingCriterion took a plain number as target."""
    for name in ('MultiMarginCriterion_1.t7', 'CosineEmbeddingCriterion_1.t7'):
        if name not in CASES:
            pytest.skip('Lua nn fixtures not found at ../shared/reference/lua-nn')
        fx = pynn.load(REF / name)
        c, x, t = fx['criterion'], fx['input'], fx['target']
        if isinstance(t, pynn.Tensor) and t.nElement() == 1:
            n = float(t.numpy().reshape(-1)[0])
            xin = x.select(1, 1) if isinstance(x, pynn.Tensor) and x.dim() == 2 else \
                [v.select(1, 1) if v.dim() == 2 else v for v in x] if isinstance(x, list) else x
            loss_t = c.forward(xin, t)
            loss_n = c.forward(xin, n)
            assert abs(loss_t - loss_n) <= 1e-12 * max(1, abs(loss_t))
