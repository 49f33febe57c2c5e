"""The grid algorithm of SpatialConvolution / SpatialConvolutionMM (stride 1, few input planes:
functional.conv2d_grid_*) against PyTorch (float64, 1e-10) and against the im2col + GEMM
path, with THNN's buffers keeping their sizes."""
import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import HealthCheck, assume, given, settings, strategies as st

import pynn
from pynn import nn
from pynn.nn import dnnl
from pynn.nn import functional as F

from _conv import run_passes as _run

TOL = 1e-10


@pytest.fixture(autouse=True)
def _numpy_kernels():
    """These tests are about pynn's NumPy kernels: oneDNN (float32 convolutions) stays off."""
    with dnnl.disabled():
        yield
HYP = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def T(a):
    return pynn.from_numpy(np.ascontiguousarray(a))


def th(a):
    return torch.from_numpy(np.array(a))


def torch_grads(m, x, go, scale):
    xt = th(x).requires_grad_(True)
    w = m.weight.numpy().reshape(m.nOutputPlane, m.nInputPlane, m.kH, m.kW)
    wt = th(w).requires_grad_(True)
    b = m.__dict__.get('bias')
    bt = None if b is None else th(b.numpy()).requires_grad_(True)
    y = TF.conv2d(xt, wt, bt, padding=(m.padH, m.padW))
    y.backward(th(go))
    return (y.detach().numpy(), xt.grad.numpy(), scale * wt.grad.numpy().reshape(m.gradWeight.size()),
            None if bt is None else scale * bt.grad.numpy())


@st.composite
def grid_cfg(draw):
    kW, kH = draw(st.integers(2, 5)), draw(st.integers(2, 5))
    nIn = draw(st.integers(-(-24 // kW), 96 // kW))
    nOut = draw(st.integers(1, 24))
    padW, padH = draw(st.integers(0, kW - 1)), draw(st.integers(0, kH - 1))
    H, W = draw(st.integers(14, 40)), draw(st.integers(14, 40))
    B = draw(st.integers(2, 4))
    return nIn, nOut, kW, kH, padW, padH, B, H, W, draw(st.booleans()), draw(st.booleans())


@HYP
@given(grid_cfg(), st.integers(0, 2 ** 31))
def test_grid_vs_torch(cfg, seed):
    nIn, nOut, kW, kH, padW, padH, B, H, W, mm, bias = cfg
    oH, oW = H + 2 * padH - kH + 1, W + 2 * padW - kW + 1
    # outside the regime (too much separating zero) the im2col path runs: test_nn_conv.py
    assume(F.conv2d_grid_fits(B, nIn, H, W, kH, kW, 1, 1, padH, padW, B * nIn * kH * kW * oH * oW))
    pynn.setdefaulttensortype('torch.DoubleTensor')
    cls = nn.SpatialConvolutionMM if mm else nn.SpatialConvolution
    m = cls(nIn, nOut, kW, kH, 1, 1, padW, padH)
    if not bias:
        m.noBias()
    rng = np.random.default_rng(seed)
    x, go = rng.standard_normal((B, nIn, H, W)), rng.standard_normal((B, nOut, oH, oW))
    got = _run(m, T(x), T(go), 0.5)
    assert '_pynn_grid' in m.__dict__                    # the grid path ran
    want = torch_grads(m, x, go, 0.5)
    for a, b in zip(got, want):
        if b is not None:
            np.testing.assert_allclose(a, b, atol=TOL, rtol=0)
    K, L = nIn * kH * kW, oH * oW                        # THNN's buffers, sizes unchanged
    assert m.finput.size() == (B, K, L) and m.finput.storage().size() == B * K * L
    assert m.fgradInput.size() == (B, K, L) and m.fgradInput.storage().size() == B * K * L


@pytest.mark.parametrize('kH,kW,padH,padW', [(2, 2, 0, 0), (2, 2, 1, 1), (3, 3, 1, 1),
                                              (3, 3, 2, 2), (4, 4, 1, 1), (4, 4, 2, 2),
                                              (5, 3, 2, 1), (3, 5, 2, 3), (5, 5, 4, 4),
                                              (4, 2, 3, 1)])
def test_grid_every_padding_with_stale_buffers(kH, kW, padH, padW):
    # grid rows as wide as the input ("same" width), wider (output wider than the input) and
    # with unused columns (output narrower); the padding columns are zeroed in the shifted
    # copies, not stored: buffers full of NaN beforehand must not leak into any result
    pynn.setdefaulttensortype('torch.DoubleTensor')
    nIn, B, H, W = -(-24 // kW), 3, 30, 30
    oH, oW = H + 2 * padH - kH + 1, W + 2 * padW - kW + 1
    assert F.conv2d_grid_fits(B, nIn, H, W, kH, kW, 1, 1, padH, padW, B * nIn * kH * kW * oH * oW)
    m = nn.SpatialConvolution(nIn, 4, kW, kH, 1, 1, padW, padH)
    rng = np.random.default_rng(kH * 100 + kW * 10 + padH + padW)
    x, go = rng.standard_normal((B, nIn, H, W)), rng.standard_normal((B, 4, oH, oW))
    _run(m, T(x), T(go), 1.0)
    for buf in (m.finput, m.fgradInput, m.output, m.gradInput):
        buf.storage().data[:] = np.nan
    got = _run(m, T(x), T(go), 1.0)
    assert '_pynn_grid' in m.__dict__
    for a, b in zip(got, torch_grads(m, x, go, 1.0)):
        np.testing.assert_allclose(a, b, atol=TOL, rtol=0)


def _both_paths(monkeypatch, m, x, go, scale=1.0):
    grid = _run(m, x, go, scale)
    assert '_pynn_grid' in m.__dict__
    with monkeypatch.context() as mp:
        mp.setattr(F, 'conv2d_grid_fits', lambda *a: False)
        mm = _run(m, x, go, scale)
        assert '_pynn_grid' not in m.__dict__
    return grid, mm


@pytest.mark.parametrize('cls', [nn.SpatialConvolution, nn.SpatialConvolutionMM])
def test_grid_float32_equals_im2col_path(monkeypatch, cls):
    # resnet's 16-plane layer, smaller batch: both algorithms within float32 rounding
    pynn.setdefaulttensortype('torch.FloatTensor')
    m = cls(16, 16, 3, 3, 1, 1, 1, 1)
    rng = np.random.default_rng(3)
    x = T(rng.standard_normal((4, 16, 32, 32)).astype(np.float32))
    go = T(rng.standard_normal((4, 16, 32, 32)).astype(np.float32))
    grid, mm = _both_paths(monkeypatch, m, x, go, 0.25)
    for a, b in zip(grid, mm):
        assert a.dtype == np.float32
        np.testing.assert_allclose(a, b, atol=1e-4 * max(1, np.abs(b).max()), rtol=0)


def test_grid_non_contiguous_input_and_gradoutput():
    pynn.setdefaulttensortype('torch.DoubleTensor')
    rng = np.random.default_rng(4)
    m = nn.SpatialConvolution(8, 5, 3, 3, 1, 1, 1, 1)
    xa, ga = rng.standard_normal((3, 8, 20, 18)), rng.standard_normal((3, 5, 20, 18))
    x = T(xa.transpose(0, 1, 3, 2)).transpose(3, 4)      # same values, transposed strides
    go = T(ga.transpose(0, 1, 3, 2)).transpose(3, 4)
    assert not x.isContiguous() and not go.isContiguous()
    got = _run(m, x, go, 1.0)
    assert '_pynn_grid' in m.__dict__
    for a, b in zip(got, torch_grads(m, xa, ga, 1.0)):
        np.testing.assert_allclose(a, b, atol=TOL, rtol=0)


@pytest.mark.parametrize('how', ['clone', 'file'])
def test_grid_accgrad_rebuilds_a_finput_it_did_not_write(how, tmp_path):
    # a clone or a loaded file has finput's content but not this module's record of how it
    # was laid out: accGradParameters rebuilds the grid from the input, never misreads finput
    pynn.setdefaulttensortype('torch.DoubleTensor')
    rng = np.random.default_rng(5)
    m = nn.SpatialConvolution(16, 4, 3, 3, 1, 1, 1, 1)
    x, go = rng.standard_normal((2, 16, 16, 16)), rng.standard_normal((2, 4, 16, 16))
    m.forward(T(x))
    if how == 'clone':
        c = m.clone()
    else:
        pynn.save(str(tmp_path / 'm.t7'), m)
        c = pynn.load(str(tmp_path / 'm.t7'))
        assert '_pynn_grid' not in c.__dict__
    assert c.finput.nElement() == m.finput.nElement()
    c.finput.storage().data[:] = np.nan                 # whatever it holds is not trusted
    c.zeroGradParameters()
    c.accGradParameters(T(x), T(go), 2.0)
    want = torch_grads(m, x, go, 2.0)
    np.testing.assert_allclose(c.gradWeight.numpy(), want[2], atol=TOL, rtol=0)
    np.testing.assert_allclose(c.gradBias.numpy(), want[3], atol=TOL, rtol=0)


def test_grid_batch_changes_and_repeats():
    pynn.setdefaulttensortype('torch.DoubleTensor')
    rng = np.random.default_rng(6)
    m = nn.SpatialConvolutionMM(12, 6, 4, 2, 1, 1, 2, 1)
    for shape in [(3, 12, 17, 19), (3, 12, 17, 19), (5, 12, 16, 16), (2, 12, 22, 17), (12, 16, 16)]:
        x = rng.standard_normal(shape)
        xb = x if x.ndim == 4 else x[None]
        oH, oW = shape[-2] + 2 - 2 + 1, shape[-1] + 4 - 4 + 1
        go = rng.standard_normal(xb.shape[:1] + (6, oH, oW))
        got = _run(m, T(x), T(go if x.ndim == 4 else go[0]), 1.0)
        want = torch_grads(m, xb, go, 1.0)
        for a, b in zip(got, want):
            np.testing.assert_allclose(a.reshape(b.shape), b, atol=TOL, rtol=0)
        assert ('_pynn_grid' in m.__dict__) == (x.ndim == 4)


def test_grid_fits_only_where_it_is_faster():
    room = 10 ** 9
    assert F.conv2d_grid_fits(32, 16, 32, 32, 3, 3, 1, 1, 1, 1, room)      # resnet's 16 planes
    assert not F.conv2d_grid_fits(32, 3, 32, 32, 3, 3, 1, 1, 1, 1, room)   # K too short
    assert F.conv2d_grid_fits(32, 32, 16, 16, 3, 3, 1, 1, 1, 1, room)      # 32 planes: kW*C = 96
    assert not F.conv2d_grid_fits(32, 33, 16, 16, 3, 3, 1, 1, 1, 1, room)  # K long enough already
    assert not F.conv2d_grid_fits(32, 64, 8, 8, 3, 3, 1, 1, 1, 1, room)
    assert not F.conv2d_grid_fits(32, 16, 32, 32, 3, 3, 2, 2, 1, 1, room)  # stride 2
    assert not F.conv2d_grid_fits(32, 16, 4, 4, 3, 3, 1, 1, 1, 1, room)    # planes mostly border
    assert not F.conv2d_grid_fits(32, 16, 32, 32, 3, 3, 1, 1, 1, 1, 1000)  # finput too small


@pytest.mark.parametrize('cfg', [(32, 32, 3, 3, 1, 1, 10, 9), (12, 7, 3, 2, 0, 1, 11, 8),
                                 (20, 20, 5, 5, 2, 2, 9, 9), (9, 6, 1, 1, 0, 0, 5, 6),
                                 (40, 24, 3, 3, 0, 0, 12, 12)])
@pytest.mark.parametrize('cls', [nn.SpatialConvolution, nn.SpatialConvolutionMM])
def test_stride1_gradinput_as_flipped_convolution(monkeypatch, cfg, cls):
    # updateGradInput of a stride-1 convolution runs as im2col(gradOutput) + one GEMM (no
    # col2im) when gradOutput's unfolding fits in fgradInput: same values as PyTorch
    nIn, nOut, kW, kH, padW, padH, H, W = cfg
    pynn.setdefaulttensortype('torch.DoubleTensor')
    m = cls(nIn, nOut, kW, kH, 1, 1, padW, padH)
    rng = np.random.default_rng(sum(cfg))
    oH, oW = H + 2 * padH - kH + 1, W + 2 * padW - kW + 1
    x, go = rng.standard_normal((3, nIn, H, W)), rng.standard_normal((3, nOut, oH, oW))

    def no_col2im(*a, **k):
        raise AssertionError('col2im ran')
    monkeypatch.setattr(F, 'col2im_add', no_col2im)
    monkeypatch.setattr(F, 'conv2d_grid_fits', lambda *a: False)
    got = _run(m, T(x), T(go), 1.5)
    for a, b in zip(got, torch_grads(m, x, go, 1.5)):
        np.testing.assert_allclose(a, b, atol=TOL, rtol=0)
    assert m.fgradInput.size() == m.finput.size() == (3, nIn * kH * kW, oH * oW)


@pytest.fixture
def blas_threads_restored():
    before = pynn.getnumthreads()
    yield
    pynn.setnumthreads(before)


@pytest.mark.skipif(pynn.threads.blas_threads() is None, reason="NumPy's BLAS not found by threadpoolctl")
@pytest.mark.parametrize('forward_threads,backward_threads', [(1, 1), (1, 2), (2, 1)])
def test_thread_count_changing_between_passes(blas_threads_restored, forward_threads,
                                              backward_threads):
    # a 32-plane layer (the grid algorithm) with the BLAS thread count changed between the
    # forward and the backward passes
    pynn.setdefaulttensortype('torch.DoubleTensor')
    m = nn.SpatialConvolution(32, 5, 3, 3, 1, 1, 1, 1)
    rng = np.random.default_rng(forward_threads * 10 + backward_threads)
    x, go = rng.standard_normal((3, 32, 16, 16)), rng.standard_normal((3, 5, 16, 16))
    m.zeroGradParameters()
    pynn.setnumthreads(max(forward_threads, backward_threads))
    if pynn.getnumthreads() != max(forward_threads, backward_threads):
        pytest.skip("NumPy's BLAS cannot run 2 threads on this machine")
    pynn.setnumthreads(forward_threads)
    y = m.forward(T(x)).numpy().copy()
    assert '_pynn_grid' in m.__dict__
    pynn.setnumthreads(backward_threads)
    gi = m.updateGradInput(T(x), T(go)).numpy().copy()
    m.accGradParameters(T(x), T(go), 0.5)
    got = (y, gi, m.gradWeight.numpy().copy(), m.gradBias.numpy().copy())
    for a, b in zip(got, torch_grads(m, x, go, 0.5)):
        np.testing.assert_allclose(a, b, atol=TOL, rtol=0)


def test_setnumthreads_rejects_bad_counts(blas_threads_restored):
    before = pynn.getnumthreads()
    for bad in (0, -1, 1.5, '2', True, None):
        with pytest.raises(ValueError, match=r'setnumthreads: expected a thread count'):
            pynn.setnumthreads(bad)
        assert pynn.getnumthreads() == before
    pynn.setnumthreads(np.int64(1))
    assert pynn.getnumthreads() == 1


def test_unknown_blas(monkeypatch):
    monkeypatch.setattr(pynn.threads, '_blas', [])
    assert pynn.threads.blas_threads() is None and pynn.getnumthreads() == 1
    pynn.setnumthreads(3)   # nothing to set: no error


def test_limited_sets_then_restores_the_blas_threads(blas_threads_restored):
    pynn.setnumthreads(2)
    before = pynn.getnumthreads()
    with pynn.threads.limited(1):
        assert pynn.getnumthreads() == 1
    assert pynn.getnumthreads() == before
    with pynn.threads.limited(0):   # 0: left as they are
        assert pynn.getnumthreads() == before
