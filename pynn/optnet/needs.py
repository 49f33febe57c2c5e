"""What each module's backward reads: its input's values, its output's values, or neither.

Used to decide when switching a module to in-place is safe, and by the planner's
layer-aware liveness. Unknown modules are assumed to read both (the safe default).
"""
INPUT, OUTPUT = 'input', 'output'

BACKWARD_READS = {
    # parameterised layers read their input to form weight gradients
    'nn.Linear': {INPUT},
    'nn.SpatialConvolution': {INPUT},
    'nn.SpatialConvolutionMM': {INPUT},
    'cudnn.SpatialConvolution': {INPUT},
    'nn.BatchNormalization': {INPUT},
    'nn.SpatialBatchNormalization': {INPUT},
    'cudnn.SpatialBatchNormalization': {INPUT},
    # pointwise: Lua's THNN Threshold reads its input (the output too when in place)
    'nn.Threshold': {INPUT},
    'nn.ReLU': {INPUT},
    'cudnn.ReLU': {INPUT, OUTPUT},
    'nn.Sigmoid': {OUTPUT},
    'nn.Tanh': {OUTPUT},
    'nn.SoftMax': {OUTPUT},
    'nn.LogSoftMax': {OUTPUT},
    'cudnn.SoftMax': {OUTPUT},
    'cudnn.LogSoftMax': {OUTPUT},
    'nn.SpatialCrossMapLRN': {INPUT, OUTPUT},
    'cudnn.SpatialCrossMapLRN': {INPUT, OUTPUT},
    'nn.Normalize': {INPUT},
    'nn.CMulTable': {INPUT},
    'nn.PairwiseDistance': {INPUT},
    # these need sizes or their own buffers (indices, noise) only
    'nn.SpatialMaxPooling': set(),
    'cudnn.SpatialMaxPooling': {INPUT, OUTPUT},
    'nn.SpatialAveragePooling': set(),
    'cudnn.SpatialAveragePooling': set(),
    'nn.SpatialMaxUnpooling': set(),
    'nn.SpatialZeroPadding': set(),
    'nn.Dropout': set(),
    'nn.MulConstant': set(),
    'nn.AddConstant': set(),
    'nn.Identity': set(),
    'nn.View': set(),
    'nn.Reshape': set(),
    'nn.Narrow': set(),
    'nn.Select': set(),
    'nn.Copy': set(),
    'nn.Mean': set(),
    'nn.Sum': set(),
    'nn.CAddTable': set(),
    'nn.CSubTable': set(),
    'nn.JoinTable': set(),
    'nn.SelectTable': set(),
    'nn.NarrowTable': set(),
    'nn.FlattenTable': set(),
    'nn.Concat': set(),
    'nn.DepthConcat': set(),
    'nn.Parallel': set(),
}


def backward_reads(module):
    return BACKWARD_READS.get(module.__typename__, {INPUT, OUTPUT})
