"""Torch7's LAPACK wrappers (gesv gels trtrs symeig eig svd inverse potrf potrs potri qr geqrf
orgqr) and conv2/xcorr2/conv3/xcorr3, in Lua's forms; bound onto Tensor by tensor_math.bind().

LAPACK runs on host NumPy (numpy.linalg); results go back to the tensors' device. Where Lua
returns LAPACK's work arrays (gesv's LU, gels' and geqrf's Householder factors, symeig 'N''s
tridiagonal reduction) they are rebuilt as LAPACK leaves them.
"""
import math

import numpy as np

from .tensor_math import _a, _desc, _fail, _fmt_size, _is_t, _need_t, _new, _put, _xp


# ----------------------------------------------------------------------------- LAPACK

def _host(t):
    a = _a(t)
    return a if isinstance(a, np.ndarray) else a.get()


def _mat(name, t, what='a matrix'):
    _need_t(name, t)
    if t.dim() != 2:
        _fail(name, 'expected %s (2D), got %s' % (what, _desc(t)))
    return _host(t).astype(np.float64)


def _lapack_out(like, arrs, res):
    outs = []
    for i, a in enumerate(arrs):
        r = res[i] if res and i < len(res) else _new(like)
        outs.append(_put(r, np.ascontiguousarray(a)))
    return tuple(outs)


def _getrf(a):
    """LU with partial pivoting as LAPACK's dgetrf: packed L\\U (loop over columns)."""
    a = a.copy()
    n = min(a.shape)
    for k in range(n):
        p = k + int(np.argmax(np.abs(a[k:, k])))
        if p != k:
            a[[k, p]] = a[[p, k]]
        if a[k, k] != 0:
            a[k + 1:, k] /= a[k, k]
        a[k + 1:, k + 1:] -= np.outer(a[k + 1:, k], a[k, k + 1:])
    return a


def gesv(*args):
    """gesv([rb, ra,] b, a) -> (X, LU): solves a X = b."""
    res, args = (list(args[:2]), args[2:]) if len(args) == 4 else (None, args)
    b, a = _mat('gesv', args[0], 'B'), _mat('gesv', args[1], 'A')
    if a.shape[0] != a.shape[1] or b.shape[0] != a.shape[0]:
        _fail('gesv', 'A must be square and B have as many rows: A %s, B %s' % (a.shape, b.shape))
    x = np.linalg.solve(a, b)
    return _lapack_out(args[1], [x, _getrf(a)], res)


def _householder(a):
    """LAPACK dgeqrf: (packed R and reflectors, tau)."""
    h, tau = np.linalg.qr(a, mode='raw')
    return h.T.copy(), tau


def gels(*args):
    """gels([rb, ra,] b, a) -> (solution (first n rows of LAPACK's B), QR-factored A)."""
    res, args = (list(args[:2]), args[2:]) if len(args) == 4 else (None, args)
    b, a = _mat('gels', args[0], 'B'), _mat('gels', args[1], 'A')
    if b.shape[0] != a.shape[0]:
        _fail('gels', 'A and B must have the same number of rows: A %s, B %s' % (a.shape, b.shape))
    m, n = a.shape
    x = np.linalg.lstsq(a, b, rcond=None)[0]
    fa = _householder(a)[0] if m >= n else a
    return _lapack_out(args[1], [x, fa], res)


def trtrs(*args):
    """trtrs([rb, ra,] b, a [, uplo='U' [, trans='N' [, diag='N']]]) -> (X, A)."""
    res, args = (list(args[:2]), args[2:]) if len(args) >= 4 and _is_t(args[3]) else (None, args)
    b, a = _mat('trtrs', args[0], 'B'), _mat('trtrs', args[1], 'A')
    uplo = args[2] if len(args) > 2 else 'U'
    trans = args[3] if len(args) > 3 else 'N'
    unit = (args[4] if len(args) > 4 else 'N') == 'U'
    t = np.triu(a) if uplo == 'U' else np.tril(a)
    if unit:
        np.fill_diagonal(t, 1.0)
    if trans == 'T':
        t = t.T
    x = np.linalg.solve(t, b)
    return _lapack_out(args[1], [x, a], res)


def _sytd2_upper(a):
    """What LAPACK's dsyev(JOBZ='N', UPLO='U') leaves in A: dsytd2's tridiagonal reduction
    (superdiagonal e, reflectors above it, updated diagonal); the lower triangle untouched.
    One Householder step per column (a loop over columns, whole-array steps inside)."""
    f = a.copy()
    n = f.shape[0]
    for i in range(n - 1, 0, -1):           # LAPACK's i = n-1 .. 1 (column i+1 is f[:, i])
        alpha = f[i - 1, i]
        x = f[:i - 1, i]
        xnorm = float(np.sqrt((x * x).sum())) if x.size else 0.0
        taui = 0.0
        if xnorm != 0.0:
            beta = -math.copysign(math.hypot(alpha, xnorm), alpha)
            taui = (beta - alpha) / beta
            f[:i - 1, i] = x * (1.0 / (alpha - beta))
            alpha = beta
        f[i - 1, i] = alpha
        if taui != 0.0:
            v = f[:i, i].copy()
            v[i - 1] = 1.0
            up = np.triu(f[:i, :i])
            sym = up + np.triu(up, 1).T
            w = taui * (sym @ v)
            w += (-0.5 * taui * float(w @ v)) * v
            upd = -(np.outer(v, w) + np.outer(w, v))
            iu = np.triu_indices(i)
            f[:i, :i][iu] += upd[iu]
            f[i - 1, i] = alpha
    return f


def symeig(*args):
    """symeig([re, rv,] a [, 'N'|'V' [, 'U'|'L']]) -> (eigenvalues ascending, eigenvectors)."""
    res, args = (list(args[:2]), args[2:]) if len(args) >= 3 and _is_t(args[2]) else (None, args)
    a = _mat('symeig', args[0])
    jobz = args[1] if len(args) > 1 else 'N'
    uplo = args[2] if len(args) > 2 else 'U'
    e, v = np.linalg.eigh(a, UPLO=uplo)
    if jobz != 'V':
        v = _sytd2_upper(a) if uplo == 'U' else a
    return _lapack_out(args[0], [e, v], res)


def eig(*args):
    """eig([re, rv,] a [, 'N'|'V']) -> (n x 2 (real, imaginary) eigenvalues, eigenvectors or empty)."""
    res, args = (list(args[:2]), args[2:]) if len(args) >= 3 and _is_t(args[2]) else (None, args)
    a = _mat('eig', args[0])
    jobz = args[1] if len(args) > 1 else 'N'
    w, v = np.linalg.eig(a)
    e = np.stack([w.real, w.imag], axis=1)
    outs = _lapack_out(args[0], [e], res)
    rv = res[1] if res else _new(args[0])
    if jobz == 'V':
        _put(rv, np.ascontiguousarray(v.real))
    else:
        rv.set()
    return outs[0], rv


def svd(*args):
    """svd([ru, rs, rv,] a [, 'S'|'A']) -> (U, S, V) with a = U diag(S) V^T."""
    res, args = (list(args[:3]), args[3:]) if len(args) >= 4 and _is_t(args[3]) else (None, args)
    a = _mat('svd', args[0])
    some = (args[1] if len(args) > 1 else 'S') == 'S'
    u, s, vt = np.linalg.svd(a, full_matrices=not some)
    return _lapack_out(args[0], [u, s, vt.T], res)


def inverse(*args):
    res, args = (list(args[:1]), args[1:]) if len(args) == 2 else (None, args)
    a = _mat('inverse', args[0])
    if a.shape[0] != a.shape[1]:
        _fail('inverse', 'expected a square matrix, got %s' % _desc(args[0]))
    try:
        inv = np.linalg.inv(a)
    except np.linalg.LinAlgError:
        _fail('inverse', 'matrix is singular')
    return _lapack_out(args[0], [inv], res)[0]


def potrf(*args):
    res, args = (list(args[:1]), args[1:]) if len(args) >= 2 and _is_t(args[1]) else (None, args)
    a = _mat('potrf', args[0])
    uplo = args[1] if len(args) > 1 else 'U'
    try:
        low = np.linalg.cholesky(a)
    except np.linalg.LinAlgError:
        _fail('potrf', 'matrix is not positive definite')
    return _lapack_out(args[0], [low if uplo == 'L' else low.T], res)[0]


def potrs(*args):
    res, args = (list(args[:1]), args[1:]) if len(args) >= 3 and _is_t(args[2]) else (None, args)
    b, c = _mat('potrs', args[0], 'B'), _mat('potrs', args[1], 'the Cholesky factor')
    uplo = args[2] if len(args) > 2 else 'U'
    a = c.T @ c if uplo == 'U' else c @ c.T
    return _lapack_out(args[0], [np.linalg.solve(a, b)], res)[0]


def potri(*args):
    res, args = (list(args[:1]), args[1:]) if len(args) >= 2 and _is_t(args[1]) else (None, args)
    c = _mat('potri', args[0], 'the Cholesky factor')
    uplo = args[1] if len(args) > 1 else 'U'
    a = c.T @ c if uplo == 'U' else c @ c.T
    return _lapack_out(args[0], [np.linalg.inv(a)], res)[0]


def qr(*args):
    res, args = (list(args[:2]), args[2:]) if len(args) >= 3 else (None, args)
    a = _mat('qr', args[0])
    q, r = np.linalg.qr(a)
    return _lapack_out(args[0], [q, r], res)


def geqrf(*args):
    res, args = (list(args[:2]), args[2:]) if len(args) >= 3 else (None, args)
    a = _mat('geqrf', args[0])
    h, tau = _householder(a)
    return _lapack_out(args[0], [h, tau], res)


def orgqr(*args):
    res, args = (list(args[:1]), args[1:]) if len(args) >= 3 else (None, args)
    h = _mat('orgqr', args[0])
    tau = _host(_need_t('orgqr', args[1])).astype(np.float64).reshape(-1)
    m, n = h.shape
    q = np.eye(m, n)
    for i in range(len(tau) - 1, -1, -1):          # apply H_k ... H_1 to the identity's columns
        v = np.zeros(m)
        v[i] = 1.0
        v[i + 1:] = h[i + 1:, i]
        q -= tau[i] * np.outer(v, v @ q)
    return _lapack_out(args[0], [q], res)[0]


# ----------------------------------------------------------------------------- convolutions

def _conv(name, nd, flip):
    def func(*args):
        res = None
        if len(args) >= 3 and _is_t(args[2]):
            res, args = args[0], args[1:]
        x, k = _need_t(name, args[0]), _need_t(name, args[1])
        mode = (args[2] if len(args) > 2 else 'V').upper()
        if x.dim() != nd or k.dim() != nd:
            _fail(name, 'expected %dD input and kernel, got %s and %s' % (nd, _desc(x), _desc(k)))
        a, w = _a(x), _a(k)
        xp = _xp(x)
        if flip:
            w = w[(slice(None, None, -1),) * nd]
        if mode == 'F':
            pads = [(s - 1, s - 1) for s in w.shape]
            a = xp.pad(a, pads)
            w_ = w
        elif mode == 'V':
            w_ = w
        else:
            _fail(name, "mode must be 'V' or 'F', got %r" % mode)
        if any(sa < sw for sa, sw in zip(a.shape, w_.shape)):
            _fail(name, 'kernel %s larger than input %s' % (_fmt_size(k.size()), _fmt_size(x.size())))
        win = xp.lib.stride_tricks.sliding_window_view(a, w_.shape)
        axes = tuple(range(nd, 2 * nd))
        out = (win * w_).sum(axis=axes)
        r = res if res is not None else _new(x)
        return _put(r, out)
    return func
