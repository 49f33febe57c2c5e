"""Torch7's random generator: the Mersenne Twister of TH/THRandom.c and its transforms.

The same seed draws the same numbers as Lua Torch: `manualSeed(5); rand(3, 4)` starts
0.2220, 0.0552, 0.8707, 0.8313. The 624-word state update runs as whole-array NumPy steps
and a draw of n numbers tempers n words at once, so large fills are fast. Tensors are filled
in their logical (row-major) element order, as TH_TENSOR_APPLY does.
"""
import math

import numpy as np

from . import backend
from .storage import _to_module

N, M = 624, 397
_MATRIX_A = np.uint32(0x9908b0df)
_UPPER = np.uint32(0x80000000)
_LOWER = np.uint32(0x7fffffff)


class Generator:
    """THGenerator: seed, MT state, position, and Box-Muller's cached pair."""

    def __init__(self, seed=None):
        self.manualSeed(5489 if seed is None else seed)

    def manualSeed(self, seed):
        seed = int(seed) & 0xffffffffffffffff
        self.initial_seed = seed
        st = [seed & 0xffffffff]
        for j in range(1, N):                      # 623 integer steps of the seeding recurrence
            p = st[-1]
            st.append((1812433253 * (p ^ (p >> 30)) + j) & 0xffffffff)
        self.state = np.array(st, dtype=np.uint32)
        self.left, self.next = 1, 0
        self.normal_valid = False
        self.normal_x = self.normal_y = self.normal_rho = 0.0

    def _twist(self):
        s = self.state

        def tw(u, v):
            y = (u & _UPPER) | (v & _LOWER)
            return (y >> np.uint32(1)) ^ np.where((v & np.uint32(1)).astype(bool), _MATRIX_A, np.uint32(0))

        s[:N - M] = s[M:] ^ tw(s[:N - M], s[1:N - M + 1])
        s[N - M:2 * (N - M)] = s[:N - M] ^ tw(s[N - M:2 * (N - M)], s[N - M + 1:2 * (N - M) + 1])
        s[2 * (N - M):N - 1] = s[N - M:M - 1] ^ tw(s[2 * (N - M):N - 1], s[2 * (N - M) + 1:N])
        s[N - 1] = s[M - 1] ^ tw(s[N - 1:N], s[0:1])[0]
        self.left, self.next = N, 0

    def words(self, n):
        """The next n tempered 32-bit outputs (THRandom_random), as uint64."""
        out, got = np.empty(n, dtype=np.uint32), 0
        while got < n:
            avail = self.left - 1
            if avail == 0:
                self._twist()
                self.left = N + 1
                avail = N
            k = min(n - got, avail)
            out[got:got + k] = self.state[self.next:self.next + k]
            self.next += k
            self.left -= k
            got += k
        y = out
        y ^= y >> np.uint32(11)
        y ^= (y << np.uint32(7)) & np.uint32(0x9d2c5680)
        y ^= (y << np.uint32(15)) & np.uint32(0xefc60000)
        y ^= y >> np.uint32(18)
        return y.astype(np.uint64)

    def uniform01(self, n):
        return self.words(n).astype(np.float64) * (1.0 / 4294967296.0)

    def normal(self, n, mean=0.0, std=1.0):
        """Box-Muller with Torch's cache: cos of a fresh pair, then sin of the cached one."""
        if not std > 0:
            raise ValueError("normal: standard deviation must be strictly positive, got %r" % (std,))
        res = np.empty(n, dtype=np.float64)
        i = 0
        if n and self.normal_valid:
            res[0] = self.normal_rho * math.sin(2. * math.pi * self.normal_x)
            self.normal_valid = False
            i = 1
        m = n - i
        if m > 0:
            pairs = (m + 1) // 2
            u = self.uniform01(2 * pairs).reshape(pairs, 2)
            x, y = u[:, 0], u[:, 1]
            rho = np.sqrt(-2. * np.log(1.0 - y))
            both = np.empty((pairs, 2))
            both[:, 0] = rho * np.cos(2. * np.pi * x)
            both[:, 1] = rho * np.sin(2. * np.pi * x)
            res[i:] = both.reshape(-1)[:m]
            if m % 2:
                self.normal_valid = True
                self.normal_x, self.normal_y, self.normal_rho = float(x[-1]), float(y[-1]), float(rho[-1])
        return res * std + mean

    # --- state as Lua's ByteTensor (the THGenerator struct, x86-64 layout) --------------
    _LAYOUT = np.dtype([('seed', '<u8'), ('left', '<i4'), ('seeded', '<i4'), ('next', '<u8'),
                        ('state', '<u8', (N,)), ('nx', '<f8'), ('ny', '<f8'), ('rho', '<f8'),
                        ('valid', '<i4'), ('pad', '<i4')])

    def get_bytes(self):
        rec = np.zeros((), dtype=self._LAYOUT)
        rec['seed'], rec['left'], rec['seeded'], rec['next'] = self.initial_seed, self.left, 1, self.next
        rec['state'] = self.state
        rec['nx'], rec['ny'], rec['rho'] = self.normal_x, self.normal_y, self.normal_rho
        rec['valid'] = int(self.normal_valid)
        return np.frombuffer(rec.tobytes(), dtype=np.uint8).copy()

    def set_bytes(self, data):
        data = np.asarray(data, dtype=np.uint8).reshape(-1)
        if data.size != self._LAYOUT.itemsize:
            raise ValueError("setRNGState: expected a ByteTensor of %d bytes, got %d"
                             % (self._LAYOUT.itemsize, data.size))
        rec = np.frombuffer(data.tobytes(), dtype=self._LAYOUT)[0]
        left, nxt = int(rec['left']), int(rec['next'])
        if not (0 < left <= N and nxt <= N):
            raise ValueError("setRNGState: invalid generator state (left %d, next %d)" % (left, nxt))
        self.initial_seed, self.left, self.next = int(rec['seed']), left, nxt
        self.state = rec['state'].astype(np.uint32)
        self.normal_x, self.normal_y, self.normal_rho = float(rec['nx']), float(rec['ny']), float(rec['rho'])
        self.normal_valid = bool(rec['valid'])


_GEN = Generator(5489)


def default_generator():
    return _GEN


def _nprng_seed(seed):
    from . import tensor
    tensor._rng['gen'] = np.random.default_rng(int(seed) & 0xffffffffffffffff)


def manualSeed(seed):
    """torch.manualSeed: seeds Torch's Mersenne Twister (and pynn's auxiliary NumPy generator)."""
    _GEN.manualSeed(seed)
    _nprng_seed(seed)


def seed():
    import os
    s = int.from_bytes(os.urandom(8), 'little')
    manualSeed(s)
    return s


def streams_state():
    """Both random streams pynn draws from: Torch's Mersenne Twister (Dropout, fills) and the
    NumPy generator a few kernels use; to replay a run with the same draws."""
    import copy
    from .tensor import generator
    return copy.deepcopy(generator().bit_generator.state), _GEN.get_bytes().copy()


def set_streams_state(state):
    import copy
    from .tensor import generator
    generator().bit_generator.state = copy.deepcopy(state[0])
    _GEN.set_bytes(state[1])


def initialSeed():
    return _GEN.initial_seed


def getRNGState(r=None):
    from .tensor import Tensor
    b = _GEN.get_bytes()
    t = r if r is not None else Tensor(kind='Byte')
    t.resize(b.size)
    t.numpy()[...] = b
    return t


def setRNGState(state):
    if not hasattr(state, 'numpy'):
        raise TypeError("setRNGState: expected a ByteTensor, got %s" % type(state).__name__)
    a = state.numpy()
    _GEN.set_bytes(a if isinstance(a, np.ndarray) else a.get())
    return state


# --- transforms (THRandom.c), n values at a time -------------------------------------
def draw_uniform(n, a=0.0, b=1.0):
    return _GEN.uniform01(n) * (b - a) + a


def draw_normal(n, mean=0.0, std=1.0):
    return _GEN.normal(n, mean, std)


def draw_exponential(n, lambd=1.0):
    return -1. / lambd * np.log(1 - _GEN.uniform01(n))


def draw_cauchy(n, median=0.0, sigma=1.0):
    return median + sigma * np.tan(np.pi * (_GEN.uniform01(n) - 0.5))


def draw_logNormal(n, mean=1.0, std=2.0):
    if not std > 0:
        raise ValueError("logNormal: standard deviation must be strictly positive, got %r" % (std,))
    return np.exp(_GEN.normal(n, mean, std))


def draw_geometric(n, p):
    if not 0 < p < 1:
        raise ValueError("geometric: p must be > 0 and < 1, got %r" % (p,))
    return np.trunc(np.log(1 - _GEN.uniform01(n)) / math.log(p)) + 1


def draw_bernoulli(n, p=0.5):
    if np.ndim(p) == 0 and not 0 <= p <= 1:
        raise ValueError("bernoulli: p must be >= 0 and <= 1, got %r" % (p,))
    return (_GEN.uniform01(n) <= p).astype(np.float64)


_CHUNK = 1 << 16   # values drawn at a time: no full-size temporaries for large fills


def _fill(t, draw, name):
    """Fill t in its logical (row-major) order, as TH_TENSOR_APPLY does, with draw(start, k)
    (k values for elements start..start+k-1), a chunk at a time."""
    if t.is_meta() or t.nElement() == 0:
        return t
    a = t.numpy()
    xp = backend.array_module(a)
    n = t.nElement()
    flat = a.reshape(-1) if a.flags.c_contiguous else None
    if flat is None:   # a strided view: its values in logical order, written back at once
        a[...] = _to_module(draw(0, n).reshape(t.size()).astype(t.dtype), xp)
        return t
    step = max(256, min(_CHUNK, n // 32))   # temporaries a small fraction of the tensor
    for start in range(0, n, step):
        k = min(step, n - start)
        flat[start:start + k] = _to_module(draw(start, k).astype(t.dtype), xp)
    return t


def _count(t):
    return 0 if t.is_meta() else t.nElement()


# --- tensor fills (methods) --------------------------------------------------------
def uniform(self, a=0.0, b=1.0):
    return _fill(self, lambda start, k: draw_uniform(k, a, b), 'uniform')


def normal(self, mean=0.0, std=1.0):
    return _fill(self, lambda start, k: draw_normal(k, mean, std), 'normal')


def exponential(self, lambd=1.0):
    return _fill(self, lambda start, k: draw_exponential(k, lambd), 'exponential')


def cauchy(self, median=0.0, sigma=1.0):
    return _fill(self, lambda start, k: draw_cauchy(k, median, sigma), 'cauchy')


def logNormal(self, mean=1.0, std=2.0):
    return _fill(self, lambda start, k: draw_logNormal(k, mean, std), 'logNormal')


def geometric(self, p):
    return _fill(self, lambda start, k: draw_geometric(k, p), 'geometric')


def bernoulli(self, p=0.5):
    from .tensor import Tensor
    if isinstance(p, Tensor):
        if p.nElement() != self.nElement():
            raise ValueError("bernoulli: probability tensor has %d elements, tensor %d"
                             % (p.nElement(), self.nElement()))
        pa = p.numpy()
        p = (pa if isinstance(pa, np.ndarray) else pa.get()).reshape(-1)
        return _fill(self, lambda start, k: draw_bernoulli(k, p[start:start + k].astype(np.float64)),
                     'bernoulli')
    draw_bernoulli(0, p)   # check p before drawing
    return _fill(self, lambda start, k: draw_bernoulli(k, p), 'bernoulli')


def random_(self, a=None, b=None):
    """x:random() | x:random(b) in 1..b | x:random(a, b) in a..b (THRandom_random modulo)."""
    n = _count(self)
    w = _GEN.words(n) if n else np.zeros(0, np.uint64)
    if a is None:
        mod = {'Byte': 256, 'Char': 128, 'Short': 32768, 'Int': 2 ** 31, 'Long': 2 ** 63,
               'Float': 2 ** 24 + 1, 'Double': 2 ** 53 + 1, 'Half': 2 ** 11 + 1}[self._kind]
        vals = (w % np.uint64(mod)).astype(np.int64)
    elif b is None:
        if not a > 0:
            raise ValueError("random: upper bound must be strictly positive, got %r" % (a,))
        vals = (w % np.uint64(int(a))).astype(np.int64) + 1
    else:
        if not b >= a:
            raise ValueError("random: upper bound %r must be larger than lower bound %r" % (b, a))
        vals = (w % np.uint64(int(b) + 1 - int(a))).astype(np.int64) + int(a)
    return _fill(self, lambda start, k: vals[start:start + k], 'random')


# --- torch.* functions ---------------------------------------------------------------
def random(*args):
    """torch.random() | torch.random(b) | torch.random(a, b) -> a number; x.random(...) fills x."""
    from .tensor import Tensor
    if args and isinstance(args[0], Tensor):
        return random_(*args)
    w = int(_GEN.words(1)[0])
    if not args:
        return w
    if len(args) == 1:
        if not args[0] > 0:
            raise ValueError("random: upper bound must be strictly positive, got %r" % (args[0],))
        return w % int(args[0]) + 1
    a, b = int(args[0]), int(args[1])
    if not b >= a:
        raise ValueError("random: upper bound %r must be larger than lower bound %r" % (b, a))
    return w % (b + 1 - a) + a


def _number_or_fill(fill, draw):
    def f(*args):
        from .tensor import Tensor
        if args and isinstance(args[0], Tensor):
            return fill(*args)
        return float(draw(1, *args)[0])
    f.__name__ = fill.__name__
    return f


uniform_fn = _number_or_fill(uniform, draw_uniform)
normal_fn = _number_or_fill(normal, draw_normal)
exponential_fn = _number_or_fill(exponential, draw_exponential)
cauchy_fn = _number_or_fill(cauchy, draw_cauchy)
logNormal_fn = _number_or_fill(logNormal, draw_logNormal)
geometric_fn = _number_or_fill(geometric, draw_geometric)
bernoulli_fn = _number_or_fill(bernoulli, draw_bernoulli)


def _sized(args):
    from .tensor import Tensor, _as_sizes
    r = None
    if args and isinstance(args[0], Tensor):
        r, args = args[0], args[1:]
    return r, _as_sizes(args)


def rand(*args):
    """torch.rand([r,] sizes...): uniform on [0, 1)."""
    from .tensor import Tensor
    r, size = _sized(args)
    r = r if r is not None else Tensor()
    return uniform(r.resize(*size), 0, 1)


def randn(*args):
    from .tensor import Tensor
    r, size = _sized(args)
    r = r if r is not None else Tensor()
    return normal(r.resize(*size), 0, 1)


def randperm(*args):
    """torch.randperm([r,] n): a permutation of 1..n (Torch's swap sequence)."""
    from .tensor import Tensor
    r = None
    if args and isinstance(args[0], Tensor):
        r, args = args[0], args[1:]
    n = int(args[0])
    if n <= 0:
        raise ValueError("randperm: n must be strictly positive, got %d" % n)
    w = _GEN.words(n - 1).astype(np.int64) % (n - np.arange(n - 1))
    perm = np.arange(n, dtype=np.int64)
    for i, z in enumerate(w.tolist()):      # the Fisher-Yates swaps are sequential by nature
        j = i + z
        perm[i], perm[j] = perm[j], perm[i]
    r = r if r is not None else Tensor()
    r.resize(n)
    vals = perm + 1
    return _fill(r, lambda start, k: vals[start:start + k], 'randperm')


def multinomial(*args):
    """torch.multinomial([r,] prob, n [, replacement]) -> 1-based LongTensor of category draws."""
    from .tensor import Tensor
    r = None
    if len(args) >= 2 and isinstance(args[1], Tensor):
        r, args = args[0], args[1:]
    prob, n = args[0], int(args[1])
    repl = bool(args[2]) if len(args) > 2 else False
    if prob.dim() not in (1, 2):
        raise ValueError("multinomial: expected a 1D or 2D probability tensor, got %dD" % prob.dim())
    p = prob.numpy()
    p = (p if isinstance(p, np.ndarray) else p.get()).astype(np.float64)
    p2 = p.reshape(1, -1) if p.ndim == 1 else p
    ncat = p2.shape[1]
    if n <= 0:
        raise ValueError("multinomial: cannot sample n_sample <= 0 samples (%d)" % n)
    if not repl and n > ncat:
        raise ValueError("multinomial: cannot sample %d > %d categories without replacement" % (n, ncat))
    out = np.empty((p2.shape[0], n), dtype=np.int64)
    for i in range(p2.shape[0]):            # one distribution at a time: Torch's draw order
        cum = np.cumsum(p2[i])
        s = cum[-1]
        if not s > 0:
            raise ValueError("multinomial: invalid distribution %d (sum of probabilities <= 0)" % (i + 1))
        cum = cum / s
        if repl:
            cum[-1] = 1
            out[i] = np.searchsorted(cum, _GEN.uniform01(n), side='left')
            continue
        for j in range(n):                  # without replacement: each draw changes the distribution
            cum[-1] = 1
            u = _GEN.uniform01(1)[0]
            k = int(np.searchsorted(cum, u, side='left'))
            out[i, j] = k
            diff = cum[k] - (cum[k - 1] if k else 0.0)
            cum[k:] -= diff
            cum /= (1.0 - diff)
    r = r if r is not None else Tensor(kind='Long')
    r.resize(*((n,) if p.ndim == 1 else out.shape))
    vals = out.reshape(-1) + 1
    return _fill(r, lambda start, k: vals[start:start + k], 'multinomial')
