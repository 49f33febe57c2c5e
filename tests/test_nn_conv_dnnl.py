"""SpatialConvolution(MM) on oneDNN (pynn.nn.dnnl) against PyTorch's convolution and against
pynn's NumPy kernels: outputs, input and parameter gradients, scale, bias or none, batch or
single image, strides and paddings that differ per axis; where oneDNN is not used; and where
its working memory comes from."""
import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings, strategies as st

import pynn
from pynn import nn, threads
from pynn.nn import dnnl

from _conv import run_passes as _run

pytestmark = pytest.mark.skipif(not dnnl.available(),
                                reason='oneDNN is not in use here (the onednn-cpu-gomp wheel is not '
                                       'installed, or PYNN_DNNL=0)')


def _torch_reference(m, x, go, scale, batch):
    w = torch.from_numpy(m.weight.numpy().reshape(m.nOutputPlane, m.nInputPlane, m.kH, m.kW)
                         .astype(np.float64)).requires_grad_(True)
    b = (torch.from_numpy(m.bias.numpy().astype(np.float64)).requires_grad_(True)
         if m.__dict__.get('bias') is not None else None)
    tx = torch.from_numpy(x.numpy().astype(np.float64)).requires_grad_(True)
    xin = tx if batch else tx[None]
    y = torch.nn.functional.conv2d(xin, w, b, stride=(m.dH, m.dW), padding=(m.padH, m.padW))
    g = torch.from_numpy(go.numpy().astype(np.float64))
    y.backward(g if batch else g[None])
    return (y.detach().numpy() if batch else y.detach().numpy()[0], tx.grad.numpy(),
            scale * w.grad.numpy().reshape(m.gradWeight.size()),
            None if b is None else scale * b.grad.numpy())


def _close(a, b, ref_scale):
    np.testing.assert_allclose(a, b, rtol=0, atol=2e-5 * max(1.0, ref_scale))


@settings(max_examples=25, deadline=None)
@given(B=st.integers(1, 4), C=st.integers(1, 20), O=st.integers(1, 20), H=st.integers(3, 14),
       W=st.integers(3, 14), kH=st.integers(1, 3), kW=st.integers(1, 3), dH=st.integers(1, 3),
       dW=st.integers(1, 3), padH=st.integers(0, 2), padW=st.integers(0, 2),
       batch=st.booleans(), mm=st.booleans(), bias=st.booleans(), seed=st.integers(0, 2**31 - 1))
def test_against_torch_and_the_numpy_kernels(B, C, O, H, W, kH, kW, dH, dW, padH, padW, batch, mm,
                                              bias, seed):
    assume(H + 2 * padH >= kH and W + 2 * padW >= kW)
    old = pynn.getdefaulttensortype()
    pynn.setdefaulttensortype('torch.FloatTensor')
    try:
        pynn.manualSeed(seed)
        cls = nn.SpatialConvolutionMM if mm else nn.SpatialConvolution
        m = cls(C, O, kW, kH, dW, dH, padW, padH)
        if not bias:
            m.noBias()
        x = pynn.randn(B, C, H, W) if batch else pynn.randn(C, H, W)
        y = m.forward(x)
        # oneDNN runs unless finput cannot hold its working memory (forward and weight
        # gradient: the forward leaves its copy of the input there)
        x4 = x.numpy() if batch else x.numpy()[None]
        w4 = m.weight.numpy().reshape(O, C, kH, kW)
        need = max(dnnl.scratch_elements(x4, w4, y.size()[-2:], (dH, dW), (padH, padW), bias, k)
                   for k in ('forward', 'weight'))
        assert (m.__dict__.get('_pynn_dnnl') is not None) == (need <= m.finput.nElement())
        go = pynn.randn(*y.size())
        got = _run(m, x, go, 0.5)
        want = _torch_reference(m, x, go, 0.5, batch)
        with dnnl.disabled():
            numpy_path = _run(m, x, go, 0.5)
            assert m.__dict__.get('_pynn_dnnl') is None
        for g, w_, n in zip(got, want, numpy_path):
            if w_ is None:
                assert g is None and n is None
                continue
            _close(g, w_, float(np.abs(w_).max(initial=1)))
            _close(g, n, float(np.abs(w_).max(initial=1)))
    finally:
        pynn.setdefaulttensortype(old)


def test_accumulates_with_scale_like_the_numpy_kernels():
    pynn.manualSeed(3)
    m = nn.SpatialConvolution(5, 7, 3, 3, 1, 1, 1, 1).float()
    x = pynn.randn(3, 5, 9, 9).float()
    go = pynn.randn(3, 7, 9, 9).float()
    m.forward(x)
    m.zeroGradParameters()
    m.accGradParameters(x, go, 1)
    m.accGradParameters(x, go, 0.25)   # gradients add up: 1.25 x one pass
    once = m.gradWeight.numpy().copy()
    with dnnl.disabled():
        m.zeroGradParameters()
        m.accGradParameters(x, go, 1.25)
    np.testing.assert_allclose(once, m.gradWeight.numpy(), rtol=0, atol=1e-4)


def test_weight_gradient_reads_the_forwards_copy_not_the_input():
    """As THNN's reads the unfolded input from finput, the weight gradient after a oneDNN
    forward reads oneDNN's copy of the input in finput: optnet lets the input be overwritten
    between the forward and accGradParameters. Also after the NumPy kernels are switched on in
    between (the gradient follows the forward's kernels) and with a non-contiguous
    gradOutput."""
    pynn.manualSeed(4)
    m = nn.SpatialConvolution(16, 8, 3, 3, 2, 2, 1, 1).float()
    x = pynn.randn(4, 16, 11, 11).float()
    keep = x.clone()
    y = m.forward(x)
    assert m.__dict__.get('_pynn_dnnl') is not None
    go = pynn.randn(*y.size()).float()
    x.fill(1e3)                                         # the input's storage reused
    m.zeroGradParameters()
    with dnnl.disabled():
        m.accGradParameters(x, go, 1)
    got = m.gradWeight.numpy().copy()
    goT = pynn.randn(4, 8, 6, 6).float().transpose(3, 4)   # not contiguous
    goT.copy(go)
    m.zeroGradParameters()
    m.accGradParameters(x, goT, 1)
    np.testing.assert_array_equal(m.gradWeight.numpy(), got)
    with dnnl.disabled():
        m.forward(keep)
        m.zeroGradParameters()
        m.accGradParameters(keep, go, 1)
    np.testing.assert_allclose(got, m.gradWeight.numpy(), rtol=0, atol=1e-4)


def test_where_onednn_is_not_used():
    pynn.manualSeed(5)
    m = nn.SpatialConvolution(3, 4, 3, 3)
    m.forward(pynn.randn(2, 3, 6, 6))                    # float64: NumPy
    assert m.__dict__.get('_pynn_dnnl') is None
    m = nn.SpatialConvolution(16, 16, 3, 3, 1, 1, 1, 1).float()
    x = pynn.randn(4, 12, 12, 16).float().transpose(2, 4).transpose(3, 4)   # not contiguous
    assert not x.isContiguous()
    want = m.forward(x.contiguous()).numpy().copy()
    assert m.__dict__.get('_pynn_dnnl') is not None
    got = m.forward(x).numpy()
    assert m.__dict__.get('_pynn_dnnl') is None
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)


@pytest.mark.parametrize('layer', [(32, 16, 16, 32, 3, 1, 1), (32, 16, 32, 32, 3, 2, 1),
                                   (32, 64, 64, 8, 3, 1, 1), (32, 3, 16, 32, 3, 1, 1),
                                   (8, 3, 64, 224, 11, 4, 2), (2, 64, 128, 112, 3, 1, 1)])
def test_working_memory_fits_in_the_module_buffers(layer):
    """oneDNN's blocked copies and scratchpad go into finput (forward, weight gradient) and
    fgradInput (input gradient), which keep Torch's sizes: they hold them for the 3x3 and
    11x11 layers of the benchmarked networks, so these run on oneDNN."""
    B, C, O, S, k, d, pad = layer
    x = np.empty((B, C, S, S), np.float32)
    w = np.empty((O, C, k, k), np.float32)
    oS = (S + 2 * pad - k) // d + 1
    finput = B * C * k * k * oS * oS
    for kind in ('forward', 'input', 'weight'):
        need = dnnl.scratch_elements(x, w, (oS, oS), (d, d), (pad, pad), True, kind)
        assert need <= finput, (kind, need, finput)


def test_too_little_module_memory_runs_the_numpy_kernels():
    """A 1x1 convolution's finput is only as big as its (subsampled) input: too small for
    oneDNN's copies, so the NumPy kernels run, with no memory beside the module's."""
    pynn.manualSeed(7)
    m = nn.SpatialConvolution(16, 32, 1, 1, 2, 2).float()
    x = pynn.randn(4, 16, 8, 8).float()
    y = m.forward(x)
    assert m.__dict__.get('_pynn_dnnl') is None
    want = torch.nn.functional.conv2d(torch.from_numpy(x.numpy()), torch.from_numpy(m.weight.numpy()),
                                      torch.from_numpy(m.bias.numpy()), stride=2).numpy()
    np.testing.assert_allclose(y.numpy(), want, rtol=0, atol=1e-5)


def test_a_convolution_onednn_declines_runs_the_numpy_kernels(monkeypatch):
    def refuse(key):
        raise RuntimeError('oneDNN convolution forward failed (status 3)')
    monkeypatch.setattr(dnnl, '_build_plans', refuse)
    monkeypatch.setattr(dnnl, '_cache', {})
    pynn.manualSeed(8)
    m = nn.SpatialConvolution(16, 16, 3, 3, 1, 1, 1, 1).float()
    x = pynn.randn(4, 16, 12, 12).float()
    go = pynn.randn(4, 16, 12, 12).float()
    got = _run(m, x, go, 1)
    assert m.__dict__.get('_pynn_dnnl') is None
    want = _torch_reference(m, x, go, 1, True)
    for g, w_ in zip(got, want):
        _close(g, w_, float(np.abs(w_).max(initial=1)))


def test_thread_counts_agree():
    pynn.manualSeed(6)
    m = nn.SpatialConvolution(16, 16, 3, 3, 1, 1, 1, 1).float()
    x = pynn.randn(4, 16, 12, 12).float()
    go = pynn.randn(4, 16, 12, 12).float()
    res = []
    for n in (1, 2):
        with threads.limited(n):
            res.append(_run(m, x, go, 1))
    for a, b in zip(*res):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-4)


@settings(max_examples=40, deadline=None)
@given(M=st.integers(1, 40), N=st.integers(1, 40), K=st.integers(1, 40), ta=st.booleans(),
       tb=st.booleans(), pad=st.integers(0, 3), beta=st.sampled_from([0.0, 1.0]),
       alpha=st.sampled_from([1.0, 0.5, -2.0]), seed=st.integers(0, 2**31 - 1))
def test_matmul_layouts_against_numpy(M, N, K, ta, tb, pad, beta, alpha, seed):
    """dnnl.matmul (the GEMM of pynn's own kernels when oneDNN is loaded): row- and
    column-major operands with leading dimensions beyond their width, alpha and beta."""
    rs = np.random.default_rng(seed)

    def operand(r, c, t):
        if t:   # column-major: the transpose of a row-major (c, r + pad) block
            return rs.standard_normal((c, r + pad)).astype(np.float32)[:, :r].T
        return rs.standard_normal((r, c + pad)).astype(np.float32)[:, :c]

    a, b = operand(M, K, ta), operand(K, N, tb)
    out_full = rs.standard_normal((M, N + pad)).astype(np.float32)
    out = out_full[:, :N]
    before = out.astype(np.float64)
    want = alpha * (a.astype(np.float64) @ b.astype(np.float64)) + beta * before
    if beta == 0:
        out[...] = np.nan          # beta 0: out's content is not read
    keep = out_full[:, N:].copy()
    assert dnnl.matmul(a, b, out, alpha, beta)
    np.testing.assert_allclose(out, want, rtol=0, atol=1e-4 * max(1.0, np.abs(want).max()))
    np.testing.assert_array_equal(out_full[:, N:], keep)    # nothing beyond the view written


def test_matmul_declines_what_it_does_not_serve():
    a = np.ones((3, 4), np.float32)
    b = np.ones((4, 5), np.float32)
    assert not dnnl.matmul(a.astype(np.float64), b.astype(np.float64), np.empty((3, 5)))
    assert not dnnl.matmul(a, b, np.empty((3, 6), np.float32))          # wrong shape
    assert not dnnl.matmul(a, b, np.empty((5, 3), np.float32).T)        # column-major out
    assert not dnnl.matmul(a[:, ::2], b[::2], np.empty((3, 5), np.float32))   # strided rows
    c = np.zeros((4, 4), np.float32)
    assert not dnnl.matmul(c, c, c)                                       # out overlaps
    with dnnl.disabled():
        assert not dnnl.matmul(a, b, np.empty((3, 5), np.float32))
