"""Exact liveness of a network's storages, for the 'optimal' planner (arena.py).

The network runs once (forward, and backward in training) under a tracer. Every traced
call of every module opens and closes an *event*; the time between event t and event t+1
is *span* t. Each storage that an output, a gradInput or a pooled buffer lives in gets the
hull of the spans in which it is touched: from its first write to its last read. The rules
that say which storages a call touches, and in which span:

* leaf modules (no `modules` field), over the whole call:
    updateOutput       its input, its output, its pooled buffers;
    updateGradInput    gradOutput, gradInput, pooled buffers, and what NEEDS says it reads
                       of input and output;
    accGradParameters  pooled buffers, and what NEEDS says it reads of input, output and
                       gradOutput;
    backward           nothing itself when it calls updateGradInput/accGradParameters (they
                       are traced), else the union of both;
* containers touch only what they copy themselves, when they copy it: Concat, DepthConcat and
  Parallel read each child's output and write their own when they join them (after the last
  child), and in backward read each child's gradInput right after that child returns, into
  their own gradInput; ConcatTable likewise in backward; Sequential and ParallelTable copy
  nothing (their outputs and gradInputs *are* their children's). An unknown container is
  assumed to touch its input, output, gradOutput, gradInput and all its children's outputs
  and gradInputs over its whole call;
* views and in-place modules share the storage of what they alias, so they extend its
  lifetime: liveness is per storage, not per tensor;
* the network's output (and gradInput, in training) stays live to the end: the caller reads it;
* pooled buffers (POOLED_BUFFERS, with reuseBuffers) are tracked per tensor and live from the
  first to the last of the calls of their module that their declaration names; a scratch
  buffer (Scratch: content never outlives a call) is live inside each of those calls only.

NEEDS (keyed by Lua typename) declares what each module's backward reads; an unknown module
reads input, output and gradOutput in both updateGradInput and accGradParameters (the
conservative rule, `needs='conservative'` applies it to every module). Tests check each
declaration against its layer: whatever a layer does not declare is overwritten before its
backward runs, and its gradients must not change, nor may it write there.
"""
import bisect
import gc

import numpy as np

from ..tensor import Tensor
from ..nn.module import tracing
from .trace import recursive_clone, tensors_of

IN, OUT, GO = 'input', 'output', 'gradOutput'
ALL = frozenset((IN, OUT, GO))
NONE = frozenset()


def _inplace(reads, plain):
    """In place, the module writes its input back in updateGradInput (MulConstant, AddConstant)."""
    reads, plain = frozenset(reads), frozenset(plain)
    return lambda m: reads if m.__dict__.get('inplace') else plain


# typename -> (reads of updateGradInput, reads of accGradParameters); a value may be a
# function of the module. Sizes are metadata (kept in the tensor objects): reading only the
# size of input (gradInput:resizeAs(input)) is not a read of its storage.
NEEDS = {
    # activations
    'nn.Threshold': ({IN, GO}, NONE),          # THNN: gradInput = gradOutput * (input > th)
    'nn.ReLU': ({IN, GO}, NONE),               # (in place, input *is* the output)
    'nn.Sigmoid': ({OUT, GO}, NONE),
    'nn.Tanh': ({OUT, GO}, NONE),
    'nn.SoftMax': ({OUT, GO}, NONE),
    'nn.LogSoftMax': ({OUT, GO}, NONE),
    'nn.MulConstant': (_inplace({IN, GO}, {GO}), NONE),   # in place: input:div(c) restores it
    'nn.AddConstant': (_inplace({IN, GO}, {GO}), NONE),
    'nn.Dropout': ({GO}, NONE),                # reads its own `noise`, never shared
    # convolutions: accGradParameters reads finput (the unfolded input), not input
    'nn.SpatialConvolution': ({GO}, {GO}),
    'nn.SpatialConvolutionMM': ({GO}, {GO}),
    'nn.Linear': ({GO}, {IN, GO}),
    # normalization
    'nn.BatchNormalization': ({IN, GO}, {IN, GO}),
    'nn.SpatialBatchNormalization': ({IN, GO}, {IN, GO}),
    'nn.SpatialCrossMapLRN': ({IN, OUT, GO}, NONE),
    'nn.Normalize': ({IN, GO}, NONE),
    # pooling and padding: max pooling reads its indices (a pooled buffer)
    'nn.SpatialMaxPooling': ({GO}, NONE),
    'nn.SpatialAveragePooling': ({GO}, NONE),
    'nn.SpatialMaxUnpooling': ({GO}, NONE),
    'nn.SpatialZeroPadding': ({GO}, NONE),
    # shape
    'nn.View': ({GO}, NONE),
    'nn.Reshape': ({GO}, NONE),
    'nn.Narrow': ({GO}, NONE),
    'nn.Select': ({GO}, NONE),
    'nn.Copy': ({GO}, NONE),
    'nn.Identity': ({GO}, NONE),
    'nn.Sum': ({GO}, NONE),
    'nn.Mean': ({GO}, NONE),
    'nn.PairwiseDistance': (ALL, NONE),
    # tables
    'nn.JoinTable': ({GO}, NONE),
    'nn.SelectTable': ({GO}, NONE),
    'nn.NarrowTable': ({GO}, NONE),
    'nn.FlattenTable': ({GO}, NONE),
    'nn.CAddTable': ({GO}, NONE),
    'nn.CMulTable': ({IN, GO}, NONE),
    'nn.CSubTable': ({GO}, NONE),
    # cudnn flavours (pynn.cudnn): no finput, so the convolution's weight gradient reads input
    'cudnn.SpatialConvolution': ({GO}, {IN, GO}),
    'cudnn.ReLU': ({IN, GO}, NONE),
    'cudnn.SpatialMaxPooling': ({IN, GO}, NONE),
    'cudnn.SpatialCrossMapLRN': ({IN, OUT, GO}, NONE),
    'cudnn.BatchNormalization': ({IN, GO}, {IN, GO}),
    'cudnn.SpatialBatchNormalization': ({IN, GO}, {IN, GO}),
    'cudnn.SoftMax': ({OUT, GO}, NONE),
    'cudnn.LogSoftMax': ({OUT, GO}, NONE),
    'cudnn.Tanh': ({OUT, GO}, NONE),
    'cudnn.Sigmoid': ({OUT, GO}, NONE),
    'cudnn.SpatialAveragePooling': ({GO}, NONE),
}

# The rest of Lua nn, one block per family of the conformance fixtures.

# pointwise
def _noise_or_input(m):
    """RReLU: the training backward multiplies by its own `noise`; otherwise it reads input."""
    lo, hi = m.__dict__.get('lower'), m.__dict__.get('upper')
    if m.__dict__.get('train') and lo is not None and hi is not None and hi - lo > 1e-6:
        return frozenset((GO,))
    return frozenset((IN, GO))


NEEDS.update({
    'nn.Abs': ({IN, GO}, NONE),
    'nn.Clamp': ({IN, GO}, NONE),              # HardTanh kernel (in place: input is the output)
    'nn.HardTanh': ({IN, GO}, NONE),
    'nn.ReLU6': ({IN, GO}, NONE),
    'nn.ELU': ({OUT, GO}, NONE),
    'nn.LeakyReLU': ({IN, GO}, NONE),
    'nn.RReLU': (_noise_or_input, NONE),
    'nn.PReLU': ({IN, GO}, {IN, GO}),
    'nn.Exp': ({OUT, GO}, NONE),
    'nn.Log': ({IN, GO}, NONE),
    'nn.Square': ({IN, GO}, NONE),
    'nn.Sqrt': ({OUT, GO}, NONE),
    'nn.Power': ({IN, GO}, NONE),
    'nn.HardShrink': ({IN, GO}, NONE),
    'nn.SoftShrink': ({IN, GO}, NONE),
    'nn.LogSigmoid': ({IN, GO}, NONE),         # and its own `buffer`
    'nn.SoftPlus': ({OUT, GO}, NONE),
    'nn.SoftSign': ({IN, GO}, NONE),
    'nn.TanhShrink': ({GO}, NONE),             # its own nn.Tanh's output
    'nn.GatedLinearUnit': ({IN, GO}, NONE),
    'nn.SoftMin': ({OUT, GO}, NONE),           # copies -input into mininput, unused by the gradient
    'nn.SpatialSoftMax': ({OUT, GO}, NONE),
    'nn.SpatialLogSoftMax': ({OUT, GO}, NONE),
})


# misc
NEEDS.update({
    'nn.Constant': (NONE, NONE),
    'nn.GradientReversal': ({GO}, NONE),
    'nn.ZeroGrad': (NONE, NONE),
    'nn.Max': ({GO}, NONE),                    # and its own `_indices`
    'nn.Min': ({GO}, NONE),
    'nn.OneHot': (NONE, NONE),
    'nn.L1Penalty': (lambda m: frozenset((IN, GO)) if m.__dict__.get('provideOutput') is True
                     else frozenset((IN,)), NONE),
    'nn.Kmeans': (NONE, {IN}),                 # and its own `_minIndx`, weight
    'nn.SpatialDropout': ({GO}, NONE),         # its own `noise`
    'nn.WhiteNoise': ({GO}, NONE),             # training: gradInput = gradOutput
})


# table
NEEDS.update({
    'nn.CDivTable': ({IN, GO}, NONE),
    'nn.CMaxTable': ({GO}, NONE),              # reads its own maxIdx
    'nn.CMinTable': ({GO}, NONE),              # reads its own minIdx
    'nn.CAddTensorTable': ({GO}, NONE),
    'nn.SplitTable': ({GO}, NONE),
    'nn.MixtureTable': ({IN, GO}, NONE),       # gater (through _gaterView) and experts
    'nn.ZipTable': ({GO}, NONE),
    'nn.ZipTableOneToMany': ({GO}, NONE),
    'nn.CosineDistance': ({IN, GO}, NONE),     # and its own w1, w22, w32, w
    'nn.DotProduct': ({IN, GO}, NONE),
    'nn.Index': ({IN, GO}, NONE),              # the index (input[2])
    'nn.MaskedSelect': ({IN, GO}, NONE),       # the mask (input[2])
    'nn.MM': ({IN, GO}, NONE),
    'nn.MV': ({IN, GO}, NONE),
})


# shape
NEEDS.update({
    'nn.Contiguous': ({GO}, NONE),
    'nn.Squeeze': ({GO}, NONE),
    'nn.Unsqueeze': ({GO}, NONE),
    'nn.Replicate': ({GO}, NONE),
    'nn.Transpose': ({GO}, NONE),
    'nn.Padding': ({GO}, NONE),
    'nn.Collapse': ({GO}, NONE),
    'nn.Convert': ({GO}, NONE),                # its converters (Transpose, Reshape, Select, Identity)
    'nn.SpatialReflectionPadding': ({GO}, NONE),
    'nn.SpatialReplicationPadding': ({GO}, NONE),
    'nn.SpatialUpSamplingNearest': ({GO}, NONE),
    'nn.SpatialUpSamplingBilinear': ({GO}, NONE),
    'nn.UpSampling': ({GO}, NONE),
    'nn.PixelShuffle': ({GO}, NONE),
})


# linear
def _fast_backward(m):
    """Euclidean: fastBackward reuses the forward's buffers; without it (WeightedEuclidean, whose
    Lua constructor leaves it nil) updateGradInput runs updateOutput again (reads input, writes
    output)."""
    return frozenset((OUT, GO)) if m.__dict__.get('fastBackward') else ALL


NEEDS.update({
    'nn.Add': ({GO}, {GO}),                    # input's size only
    'nn.CAdd': ({GO}, {GO}),
    'nn.CMul': ({GO}, {IN, GO}),
    'nn.Mul': ({GO}, {IN, GO}),
    'nn.Bilinear': ({IN, GO}, {IN, GO}),
    'nn.Euclidean': (_fast_backward, NONE),    # accGradParameters reads _repeat2 (its own)
    'nn.WeightedEuclidean': (_fast_backward, NONE),
    'nn.Cosine': (ALL, ALL),
    'nn.LinearWeightNorm': ({GO}, {IN, GO}),
    'nn.LookupTable': (NONE, {IN, GO}),         # gradInput: zeros shaped like the indices
    'nn.SparseLinear': ({GO}, {IN, GO}),
    # nn.IndexLinear: not declared (its gradients are the `running` table, which the poisoning
    # check cannot compare): the conservative default applies
    'nn.PartialLinear': ({IN, GO}, {GO}),       # MM reads the input; the lookup reads partition
    'nn.Maxout': ({GO}, {IN, GO}),              # Linear -> View -> Max (reads its indices)
})


# container
def _child(method):
    """A decorator reads what its (first) module reads: it passes input and gradOutput, or
    views of them, through."""
    def reads(m):
        mods = m.__dict__.get('modules')
        return needs_of(mods[0], method) if mods else ALL
    return reads


NEEDS.update({
    'nn.Decorator': (_child('updateGradInput'), _child('accGradParameters')),
    'nn.Bottle': (_child('updateGradInput'), _child('accGradParameters')),
    'nn.MapTable': (_child('updateGradInput'), _child('accGradParameters')),
    'nn.WeightNorm': (_child('updateGradInput'), _child('accGradParameters')),
    'nn.GPU': (_child('updateGradInput'), _child('accGradParameters')),
    'nn.DontCast': (_child('updateGradInput'), _child('accGradParameters')),
    'nn.NaN': (_child('updateGradInput'), _child('accGradParameters')),
    'nn.Profile': (_child('updateGradInput'), _child('accGradParameters')),
    'nn.PrintSize': ({GO}, NONE),               # gradInput is gradOutput
    # nn.CriterionTable: not declared (its output is a number, which the poisoning check cannot
    # clone): the conservative default applies
})


# conv
NEEDS.update({
    # THNN's columns kernels unfold the input again in accGradParameters
    'nn.SpatialDilatedConvolution': ({GO}, {IN, GO}),
    'nn.SpatialFullConvolution': ({GO}, {IN, GO}),
    'nn.SpatialConvolutionMap': ({GO}, {IN, GO}),
    'nn.SpatialFullConvolutionMap': ({GO}, {IN, GO}),
    'nn.SpatialSubSampling': ({GO}, {IN, GO}),
    # finput (the unfolded input) is what accGradParameters reads
    'nn.SpatialDepthWiseConvolution': ({GO}, {GO}),
    'nn.SpatialConvolutionLocal': ({GO}, {GO}),
    # the volumetric convolutions (conv package)
    'nn.VolumetricConvolution': ({GO}, {GO}),
    'nn.VolumetricDilatedConvolution': ({GO}, {IN, GO}),
    'nn.VolumetricFullConvolution': ({GO}, {IN, GO}),
})


# temporal
NEEDS.update({
    'nn.TemporalConvolution': ({GO}, {IN, GO}),
    'nn.TemporalSubSampling': ({GO}, {IN, GO}),
    'nn.TemporalMaxPooling': ({GO}, NONE),            # reads its own `indices`
    'nn.TemporalDynamicKMaxPooling': ({GO}, NONE),    # reads its own `indices`
    'nn.TemporalRowConvolution': ({GO}, {GO}),        # accGradParameters reads finput
})


# pool
NEEDS.update({
    # max poolings read their indices (pooled buffers below), adaptive/fractional too
    'nn.SpatialDilatedMaxPooling': ({GO}, NONE),
    'nn.SpatialAdaptiveMaxPooling': ({GO}, NONE),
    'nn.SpatialAdaptiveAveragePooling': ({GO}, NONE),
    'nn.SpatialFractionalMaxPooling': ({GO}, NONE),
    'nn.FeatureLPPooling': ({IN, OUT, GO}, NONE),   # THNN: go * (x / y)^(p-1), skips y == 0
    # nn.SpatialLPPooling is a Sequential (its children are declared)
})


# normalization
NEEDS.update({
    # built from submodules kept as fields (not `modules`): what their backward reads of the
    # module's own input; their inner tensors are the module's own
    'nn.SpatialSubtractiveNormalization': ({GO}, NONE),     # CSubTable, CDivTable, conv chain
    'nn.SpatialDivisiveNormalization': ({IN, GO}, NONE),    # CDivTable{input, std}, Square(input)
    'nn.SpatialContrastiveNormalization': ({GO}, NONE),     # the divisive part reads an inner output
    # nn.LayerNormalization is a Sequential (its children are declared)
})


# volumetric
NEEDS.update({
    'nn.VolumetricMaxPooling': ({GO}, NONE),        # reads its packed indices
    'nn.VolumetricDilatedMaxPooling': ({GO}, NONE),
    'nn.VolumetricAveragePooling': ({GO}, NONE),
    'nn.VolumetricMaxUnpooling': ({GO}, NONE),      # reads the pooling module's indices
    'nn.VolumetricFractionalMaxPooling': ({GO}, NONE),
    'nn.VolumetricBatchNormalization': ({IN, GO}, {IN, GO}),
    'nn.VolumetricDropout': ({GO}, NONE),           # reads its own `noise`, never shared
    'nn.VolumetricReplicationPadding': ({GO}, NONE),
})


# nngraph
# (nn.gModule is a container: its children declare their reads; its own gradOutput sums are
# reported to the tracer as they happen. nngraph.JustElement / JustTable, which only pass
# tables through, keep the conservative default: no Lua fixture exists to check a declaration.)
NEEDS.update({
})

DEFAULT_NEEDS = (ALL, ALL)

# Buffers the arena pools with outputs and gradInputs (option reuseBuffers): the fields the
# original optnet shares in inference, each with the calls of its module that use it. A pooled
# buffer lives from the first to the last of those calls (it must be written before it is read
# in the first): conv's finput from updateOutput to accGradParameters, its fgradInput only
# inside updateGradInput (a scratch), max pooling's indices from updateOutput to
# updateGradInput. Checked against the layers by tests, as NEEDS is.
UO, UGI, AGP = 'updateOutput', 'updateGradInput', 'accGradParameters'


class Scratch(tuple):
    """The calls of a pooled buffer whose content never outlives a call (each call writes it
    before reading it): it is live inside each of those calls, and only there."""


SCRATCH = Scratch((UO, UGI, AGP))
POOLED_BUFFERS = {
    # fgradInput: the unfolded gradient in updateGradInput, GEMM scratch in the other calls
    'nn.SpatialConvolution': {'finput': (UO, AGP), 'fgradInput': SCRATCH},
    'nn.SpatialConvolutionMM': {'finput': (UO, AGP), 'fgradInput': SCRATCH},
    'nn.Normalize': {'norm': (UO, UGI), 'buffer': (UO, UGI), 'normp': (UO, UGI), '_indices': (UO, UGI)},
    'nn.SpatialCrossMapLRN': {'scale': (UO, UGI)},
    'nn.SpatialMaxPooling': {'indices': (UO, UGI)},
}

# The rest of Lua nn, one block per family.

# conv
POOLED_BUFFERS.update({
    # as SpatialConvolution's: finput from updateOutput to accGradParameters, fgradInput a
    # scratch (the unfolded gradient in updateGradInput)
    'nn.SpatialDepthWiseConvolution': {'finput': (UO, AGP), 'fgradInput': SCRATCH},
    'nn.SpatialConvolutionLocal': {'finput': (UO, AGP), 'fgradInput': SCRATCH},
    'nn.VolumetricConvolution': {'finput': (UO, AGP), 'fgradInput': SCRATCH},
    # THNN's columns (finput) and ones (fgradInput) kernels: columns are unfolded again in
    # each call; pynn never reads `ones` (the bias is a sum), so both are scratch
    'nn.SpatialDilatedConvolution': {'finput': SCRATCH, 'fgradInput': SCRATCH},
    'nn.SpatialFullConvolution': {'finput': SCRATCH, 'fgradInput': SCRATCH},
    'nn.VolumetricDilatedConvolution': {'finput': SCRATCH, 'fgradInput': SCRATCH},
    'nn.VolumetricFullConvolution': {'finput': SCRATCH, 'fgradInput': SCRATCH},
})


# temporal
POOLED_BUFFERS.update({
    'nn.TemporalRowConvolution': {'finput': (UO, AGP), 'fgradInput': SCRATCH},
    'nn.TemporalMaxPooling': {'indices': (UO, UGI)},
})


# pool
POOLED_BUFFERS.update({
    # as the original's nn.SpatialMaxPooling: argmax indices, written by updateOutput and
    # read by updateGradInput (the fractional poolings' randomSamples are state, not buffers)
    'nn.SpatialDilatedMaxPooling': {'indices': (UO, UGI)},
    'nn.SpatialAdaptiveMaxPooling': {'indices': (UO, UGI)},
    'nn.SpatialFractionalMaxPooling': {'indices': (UO, UGI)},
})


# normalization
POOLED_BUFFERS.update({
})


# volumetric
POOLED_BUFFERS.update({
    # nn.VolumetricMaxPooling's indices stay private: nn.VolumetricMaxUnpooling reads them
    # (the case the original excludes for nn.SpatialMaxPooling when an unpooling is present)
    'nn.VolumetricDilatedMaxPooling': {'indices': (UO, UGI)},
    'nn.VolumetricFractionalMaxPooling': {'indices': (UO, UGI)},
})


# containers whose own copying is modelled exactly (see the module docstring)
JOINING = ('nn.Concat', 'nn.DepthConcat', 'nn.Parallel')
PASSING = ('nn.Sequential', 'nn.ParallelTable', 'nn.gModule')   # gModule: its sums are reported


def needs_of(m, method, rule='layer'):
    """The set of 'input', 'output', 'gradOutput' that m's `method` reads."""
    if rule == 'conservative':
        return ALL
    pair = NEEDS.get(m.__typename__, DEFAULT_NEEDS)
    v = pair[0] if method == 'updateGradInput' else pair[1]
    return frozenset(v(m) if callable(v) else v)


def pooled_fields(net, reuse_buffers=True):
    """typename -> {pooled buffer field: calls that use it} for this net (none when
    reuseBuffers is off; max pooling's indices stay private when an unpooling module reads
    them, as the original)."""
    if not reuse_buffers:
        return {}
    table = dict(POOLED_BUFFERS)
    if net.findModules('nn.SpatialMaxUnpooling'):
        table.pop('nn.SpatialMaxPooling', None)
    return table


def _extent(t):
    """The storage elements t spans, from the storage's start (offset + extent)."""
    n = 1
    for s, st in zip(t._size, t._stride):
        if s == 0:
            return 0
        n += (s - 1) * st
    return t._offset + n if t._size else 0


def _obs(x, out):
    """Append (storage, end) for every tensor with a storage in x (tensor or nested lists)."""
    if isinstance(x, Tensor):
        st = x._storage
        if st is not None:
            out.append((st, _extent(x)))
    elif isinstance(x, (list, tuple)):
        for v in x:
            _obs(v, out)
    return out


def _refs(x, out):
    """Append (storage, 0) for every tensor with a storage in x: the arguments of a call are
    views of module fields (whose sizes are observed on their own) or not placed at all."""
    if isinstance(x, Tensor):
        st = x._storage
        if st is not None:
            out.append((st, 0))
    elif isinstance(x, (list, tuple)):
        for v in x:
            _refs(v, out)
    return out


def _pooled_obs(d, fields, name):
    """(tensor, end) of a module's pooled buffers that call `name` uses: they are tracked per
    tensor, not per storage (reuse_state_buffers may have given all of one kind a single
    storage, and a buffer keeps its storage between the calls that use it)."""
    out = []
    for f, calls in fields.items():
        if name in calls or (name == 'backward' and (UGI in calls or AGP in calls)):
            t = d.get(f)
            if isinstance(t, Tensor):
                if t._storage is not None:
                    out.append((t, _extent(t), isinstance(calls, Scratch)))
                elif isinstance(calls, Scratch):
                    # in later runs it will have its storage here, and may serve as scratch
                    out.append((t, 0, True))
    return out


class Call:
    """One traced call: module index, method, enter/exit events, parent call, observations;
    `extra`: the storages a container read or wrote itself just before this call."""
    __slots__ = ('idx', 'm', 'name', 'E', 'X', 'parent', 'kids', 'inp', 'go', 'out', 'gi', 'buf', 'extra')

    def __init__(self, idx, m, name, E, parent):
        self.idx, self.m, self.name, self.E, self.parent = idx, m, name, E, parent
        self.X = None
        self.kids = []
        self.extra = None


class _Recorder:
    """The tracer: numbers events and records, per call, the storages of its arguments (on
    entry) and of the module's output, gradInput and pooled buffers (on exit)."""

    def __init__(self, index, pooled):
        self.index = index
        self.pooled = pooled
        self.clock = 0
        self.calls = []
        self.stack = []
        self.pending = []
        self.windows = []   # recomputation windows (recompute.py): [first event, last event, input storages]

    def container_reads(self, container, reads, writes=()):
        """A container reads `reads` and writes `writes` itself between its children's calls
        (nngraph's gModule summing the gradOutputs of a node used twice into a buffer): they
        are touched from the span before the next call to its end."""
        _refs(reads, self.pending)
        _refs(writes, self.pending)

    def begin_recompute(self, checkpoint):
        """The recompute runtime opens a window: a segment's forward runs again from `checkpoint`."""
        w = [self.clock, None, frozenset(id(st) for st, _ in _refs(checkpoint, []))]
        self.windows.append(w)
        return w

    def end_recompute(self, w):
        w[1] = self.clock - 1

    def enter(self, m, name, args):
        idx = self.index.get(id(m))
        parent = self.stack[-1] if self.stack else None
        c = Call(idx, m, name, self.clock, parent)
        self.clock += 1
        if idx is not None and self.pending:
            c.extra, self.pending = self.pending, []
        if idx is not None:
            c.inp = _refs(args[0], []) if args else []
            c.go = _refs(args[1], []) if len(args) > 1 else []
            self.calls.append(c)
            if parent is not None:
                parent.kids.append(c)
        self.stack.append(c)

    def exit(self, m, name, args):
        c = self.stack.pop()
        c.X = self.clock
        self.clock += 1
        if c.idx is not None:
            d = m.__dict__
            c.out = _obs(d.get('output'), [])
            c.gi = _obs(d.get('gradInput'), [])
            fields = self.pooled.get(m.__typename__)
            c.buf = _pooled_obs(d, fields, name) if fields else []


class Buffer:
    """A storage of the traced run that the arena may place: the spans it is live in (`spans`,
    a list of [lo, hi]: one interval, or one per call for a scratch buffer; lo and hi are
    their hull), the elements it needs, and the module fields (members) that view it."""
    __slots__ = ('storage', 'size', 'lo', 'hi', 'spans', 'members', 'label', 'category', 'offset', 'key',
                 'recomputed')

    def __init__(self, storage, size, lo, hi, spans=None):
        self.storage, self.size, self.lo, self.hi = storage, size, lo, hi
        self.spans = spans or [(lo, hi)]
        self.recomputed = False  # dropped after its last forward use, written again by a recomputation
        self.members = []      # (tensor, path, offset, size, stride); path = (module index, field, i...)
        self.label = self.category = None
        self.offset = None     # in elements, inside the arena of its type (set by the planner)

    @property
    def itemsize(self):
        return self.storage.dtype.itemsize

    @property
    def nbytes(self):
        return self.size * self.storage.dtype.itemsize

    def __repr__(self):
        return 'Buffer(%s, %d B, spans %s, offset %s)' % (self.label, self.nbytes, self.spans,
                                                              self.offset)


def type_key(st):
    """The arena a storage belongs to: one per tensor type (a network lives on one device)."""
    return np.dtype(st.dtype).name


class Schedule:
    """The liveness of one run: `buffers` (placeable), `spans` (number of spans), `mode`,
    `rule` ('layer' or 'conservative'), `calls` (the traced calls, for reports)."""

    def __init__(self, buffers, spans, mode, rule, calls, net_size):
        self.buffers, self.spans, self.mode, self.rule, self.calls = buffers, spans, mode, rule, calls
        self.n_modules = net_size

    def by_type(self):
        out = {}
        for b in self.buffers:
            out.setdefault(type_key(b.storage), []).append(b)
        return out

    def lower_bound(self, per_type=False):
        """Bytes: the largest sum of live buffers over all spans (per arena type if asked)."""
        if per_type:
            return {k: _peak(bs) for k, bs in self.by_type().items()}
        return _peak(self.buffers)


def _peak(buffers):
    ev = {}
    for b in buffers:
        for lo, hi in b.spans:
            ev[lo] = ev.get(lo, 0) + b.nbytes
            ev[hi + 1] = ev.get(hi + 1, 0) - b.nbytes
    cur = peak = 0
    for t in sorted(ev):
        cur += ev[t]
        peak = max(peak, cur)
    return peak


def _field_tensors(v, path, out):
    if isinstance(v, Tensor):
        out.append((v, path))
    elif isinstance(v, (list, tuple)):
        for i, x in enumerate(v):
            _field_tensors(x, path + (i,), out)
    elif isinstance(v, dict):
        for k, x in v.items():
            _field_tensors(x, path + (k,), out)


def module_fields(m, i, pooled):
    """(planned, other): (tensor, path, category) of m's output, gradInput and pooled buffers,
    and (tensor, path) of every other field (parameters, private buffers), which pin their
    storages."""
    planned, other = [], []
    pf = pooled.get(m.__typename__, ())
    for k, v in m.__dict__.items():
        if isinstance(v, Tensor):
            if k == 'output':
                planned.append((v, (i, k), 'outputs'))
            elif k == 'gradInput':
                planned.append((v, (i, k), 'gradInputs'))
            elif k in pf:
                planned.append((v, (i, k), 'buffers'))
            elif not k.startswith('_pynn_'):
                other.append((v, (i, k)))
            continue
        if not isinstance(v, (list, tuple, dict)) or k == 'modules' or k.startswith('_pynn_'):
            continue
        acc = []
        _field_tensors(v, (i, k), acc)
        if not acc:
            continue
        if k == 'output':
            planned.extend((t, p, 'outputs') for t, p in acc)
        elif k == 'gradInput':
            planned.extend((t, p, 'gradInputs') for t, p in acc)
        elif k in pf:
            planned.extend((t, p, 'buffers') for t, p in acc)
        else:
            other.extend(acc)
    return planned, other


def privatize_pooled(net, pooled):
    """Give every pooled buffer its own (empty) storage again, undoing reuse_state_buffers.
    (Not needed for planning: pooled buffers are tracked per tensor.)"""
    for m in net.listModules():
        for f in pooled.get(m.__typename__, ()):
            t = m.__dict__.get(f)
            if isinstance(t, Tensor):
                t.set()


def run_traced(net, input, mode, pooled):
    """Run forward (and backward on a copy of the output, in training) under the recorder."""
    mods = net.listModules()
    index = {}
    for i, m in enumerate(mods):
        index.setdefault(id(m), i)
    rec = _Recorder(index, pooled)
    grad = None
    with no_gc(), tracing(rec):
        out = net.forward(input)
        if mode == 'training':
            grad = recursive_clone(out)
            net.backward(input, grad)
    return rec, mods, grad


class no_gc:
    """Pause Python's cyclic garbage collector: the tracer creates tens of thousands of small
    objects, and on a large network every collection they trigger scans all its modules."""

    def __enter__(self):
        self.was = gc.isenabled()
        gc.disable()

    def __exit__(self, *exc):
        if self.was:
            gc.enable()
        return False


def analyse(net, input, mode='inference', rule='layer', reuse_buffers=True, pooled=None):
    """Run the net once and return its Schedule (see the module docstring)."""
    if pooled is None:
        pooled = pooled_fields(net, reuse_buffers)
    rec, mods, grad = run_traced(net, input, mode, pooled)
    with no_gc():
        return build_schedule(net, mods, rec, input, grad, mode, rule, pooled)


def build_schedule(net, mods, rec, input, grad, mode, rule, pooled):
    lo, hi, end, keep = {}, {}, {}, {}
    windows = [w for w in getattr(rec, 'windows', ()) if w[1] is not None]
    touches = {} if windows else None   # storage -> [(first, last, written)], for recomputation

    def touch(obs, a, b, written=False):
        for st, e in obs:
            k = id(st)
            if touches is not None:
                touches.setdefault(k, []).append((a, b, written))
            if k in lo:
                if a < lo[k]:
                    lo[k] = a
                if b > hi[k]:
                    hi[k] = b
                if e > end[k]:
                    end[k] = e
            else:
                lo[k], hi[k], end[k], keep[k] = a, b, e, st

    blo, bhi, bend, bspans = {}, {}, {}, {}

    ptouches = {} if windows else None   # pooled tensor -> [(first, last, written)]

    def touch_pooled(obs, a, b, written=False):
        for t, e, scratch in obs:
            k = id(t)
            if ptouches is not None and not scratch:
                ptouches.setdefault(k, []).append((a, b, written))
            if k in blo:
                bhi[k] = b
                if e > bend[k]:
                    bend[k] = e
            else:
                blo[k], bhi[k], bend[k] = a, b, e
            if scratch:  # live inside each call only
                sp = bspans.setdefault(k, [])
                if sp and sp[-1][1] >= a:
                    sp[-1] = (sp[-1][0], max(sp[-1][1], b))
                else:
                    sp.append((a, b))

    for c in rec.calls:
        m, name, E, X = c.m, c.name, c.E, c.X
        last = X - 1  # the last span inside the call
        if c.extra:
            touch(c.extra, max(E - 1, 0), last)
        mods_of = m.__dict__.get('modules')
        if mods_of is None:  # a leaf
            if name == 'updateOutput':
                touch(c.inp, E, last)
                touch(c.out, E, last, True)
                touch_pooled(c.buf, E, last, True)
                continue
            if name == 'backward' and any(k.m is m for k in c.kids):
                continue  # its own updateGradInput / accGradParameters are traced
            if name == 'backward':
                reads = needs_of(m, 'updateGradInput', rule) | needs_of(m, 'accGradParameters', rule)
            else:
                reads = needs_of(m, name, rule)
            if name != 'accGradParameters':
                touch(c.gi, E, last)
                touch(c.go, E, last)
            elif GO in reads:
                touch(c.go, E, last)
            if IN in reads:
                touch(c.inp, E, last)
            if OUT in reads:
                touch(c.out, E, last)
            touch_pooled(c.buf, E, last)
            continue
        tn = m.__typename__
        kids = [k for k in c.kids if k.m in mods_of]
        if tn in PASSING or (tn in JOINING and name == 'accGradParameters') or \
                (tn == 'nn.ConcatTable' and name in ('updateOutput', 'accGradParameters')):
            continue
        if tn in JOINING and name == 'updateOutput':
            for k in kids:
                touch(k.out, last, last)
            touch(c.out, last, last, True)
            continue
        if tn in JOINING or tn == 'nn.ConcatTable':  # updateGradInput / backward
            if not kids:
                touch(c.gi, E, last)
            for j, k in enumerate(kids):
                touch(k.gi, k.X, k.X)
                touch(c.gi, kids[0].X, k.X)
            continue
        # an unknown container: everything over the whole call
        for obs in (c.inp, c.go, c.out, c.gi):
            touch(obs, E, last)
        for k in kids:
            touch(k.out, E, last)
            touch(k.gi, E, last)

    spans = rec.clock  # spans 0 .. clock-1 (the last span follows the last event)
    # the caller reads the network's output (and gradInput) after the run
    root_end = spans - 1
    root = rec.calls[0] if rec.calls else None
    if root is not None:
        finals = _obs(net.__dict__.get('output'), [])
        if mode == 'training':
            finals = _obs(net.__dict__.get('gradInput'), finals)
        for st, e in finals:
            k = id(st)
            if k in lo:
                hi[k] = root_end
                end[k] = max(end[k], e)

    pinned = set(id(t._storage) for t in tensors_of(input) if t._storage is not None)
    if grad is not None:
        pinned.update(id(t._storage) for t in tensors_of(grad) if t._storage is not None)
    members = {}
    seen_t = set()
    labels = {}
    pooled_bufs = []
    pcuts = _pooled_cuts(windows, ptouches) if windows else {}
    for i, m in enumerate(mods):
        planned, other = module_fields(m, i, pooled)
        for t, _ in other:
            if t._storage is not None:
                pinned.add(id(t._storage))
        for t, path, cat in planned:
            st = t._storage
            if st is None or id(t) in seen_t:
                continue
            seen_t.add(id(t))
            if cat == 'buffers':
                k = id(t)
                if k in blo and bend[k] > 0:
                    size = max(bend[k], _extent(t))
                    if k in bspans and _extent(t) > 0:
                        # a scratch buffer is also seen in calls that do not size it (where
                        # it may still be a view of a storage reuse_state_buffers shared):
                        # its size is the one its module gave it
                        size = _extent(t)
                    live = bspans.get(k)
                    if k in pcuts:
                        live = _split(ptouches[k], pcuts[k], blo[k], bhi[k])
                        if len(live) < 2:
                            live = None
                    b = Buffer(st, size, blo[k], bhi[k], live)
                    b.recomputed = live is not None and k in pcuts
                    b.members = [(t, path, t._offset, t._size, t._stride)]
                    b.category, b.label, b.key = cat, describe_path(mods, path), path
                    pooled_bufs.append(b)
                continue
            k = id(st)
            members.setdefault(k, []).append((t, path, t._offset, t._size, t._stride))
            if k not in labels:
                labels[k] = (path, cat)
            e = _extent(t)
            if k in end and e > end[k]:
                end[k] = e
    cuts = _recompute_cuts(rec.calls, windows, touches) if windows else {}
    buffers = []
    for k, mem in members.items():
        if k in pinned or k not in lo or end[k] <= 0:
            continue
        live = None
        if k in cuts:
            live = _split(touches[k], cuts[k], lo[k], hi[k])
        b = Buffer(keep[k], end[k], lo[k], hi[k], live)
        b.recomputed = live is not None and len(live) > 1
        b.members = mem
        path, cat = labels[k]
        b.category = cat
        b.label = describe_path(mods, path)
        b.key = path
        buffers.append(b)
    buffers.extend(pooled_bufs)
    _close_gaps(buffers)
    buffers.sort(key=lambda b: (b.lo, b.hi, b.key))
    return Schedule(buffers, spans, mode, rule, rec.calls, len(mods))


def _recompute_cuts(calls, windows, touches):
    """storage -> the window starts at which its liveness may be cut: storages that an
    updateOutput inside a recomputation window writes (not the window's checkpoint), that
    were touched before the window, and whose first touch inside it is that write: their
    value before the window is dead once its last earlier reader is done."""
    cuts = {}
    for T0, T1, ins in windows:
        written = set()
        for c in calls:
            if c.name == 'updateOutput' and T0 <= c.E <= T1:
                written.update(id(st) for st, _ in c.out)
        for k in written - ins:
            ts = touches.get(k)
            if not ts:
                continue
            after = [t for t in ts if t[0] >= T0]
            if not after or not any(t[0] < T0 for t in ts):
                continue
            first = min(t[0] for t in after)
            if any(t[0] == first and t[2] for t in after):
                cuts.setdefault(k, []).append(T0)
    return cuts


def _pooled_cuts(windows, ptouches):
    """pooled tensor -> window starts: a (non-scratch) pooled buffer is written by its
    module's updateOutput, the first of the calls that use it; one that a recomputation's
    updateOutput writes again, first thing in the window, had its earlier value die once
    its earlier users were done."""
    cuts = {}
    for T0, T1, _ in windows:
        for k, ts in ptouches.items():
            after = [t for t in ts if t[0] >= T0]
            if not after or not any(t[0] < T0 for t in ts):
                continue
            first = min(after)
            if first[2] and first[0] <= T1:
                cuts.setdefault(k, []).append(T0)
    return cuts


def _split(ts, cuts, lo, hi):
    """The hulls of a storage's touches between consecutive cuts."""
    bounds = sorted(set(cuts))
    groups = {}
    for a, b, _ in ts:
        g = bisect.bisect_right(bounds, a)
        lo_g, hi_g = groups.get(g, (a, b))
        groups[g] = (min(lo_g, a), max(hi_g, b))
    spans = [groups[g] for g in sorted(groups)]
    spans[0] = (lo, spans[0][1])
    spans[-1] = (spans[-1][0], max(spans[-1][1], hi))
    return spans


def _close_gaps(buffers):
    """Join the live intervals of a (scratch) buffer across a gap in which no other buffer
    lives and dies: that adds no conflict, and a buffer with one interval packs better."""
    multi = [b for b in buffers if len(b.spans) > 1]
    if not multi:
        return
    ivs = sorted(iv for b in buffers for iv in b.spans)
    los = [iv[0] for iv in ivs]
    for b in multi:
        out = [b.spans[0]]
        for a, e in b.spans[1:]:
            g0, g1 = out[-1][1] + 1, a - 1
            inside = False
            if g0 <= g1:
                k = bisect.bisect_left(los, g0)
                while k < len(ivs) and ivs[k][0] <= g1:
                    if ivs[k][1] <= g1:
                        inside = True
                        break
                    k += 1
            if inside:
                out.append((a, e))
            else:
                out[-1] = (out[-1][0], e)
        b.spans = out


def describe_path(mods, path):
    i, field = path[0], path[1]
    rest = ''.join('[%s]' % (p + 1 if isinstance(p, int) else p) for p in path[2:])
    return '%d:%s.%s%s' % (i + 1, mods[i].__typename__, field, rest)


def resolve(mods, path):
    """The tensor at `path` (module index, field, list indices...) in a module list, or None."""
    try:
        v = mods[path[0]].__dict__.get(path[1])
        for p in path[2:]:
            v = v[p]
    except (IndexError, KeyError, TypeError):
        return None
    return v if isinstance(v, Tensor) else None
