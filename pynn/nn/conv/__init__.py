"""Convolutions (Lua nn's conv family and the volumetric convolutions).

spatial.py: SpatialConvolution, SpatialConvolutionMM (THNN's unfold + GEMM, K-major finput);
dilated.py: SpatialDilatedConvolution, SpatialFullConvolution, VolumetricConvolution,
VolumetricDilatedConvolution, VolumetricFullConvolution (THNN's columns/ones kernels);
other.py: SpatialDepthWiseConvolution, SpatialConvolutionLocal, SpatialConvolutionMap,
SpatialFullConvolutionMap, SpatialSubSampling. All run on pynn.nn.functional's N-d
im2col/col2im kernels, one GEMM per batch.
"""
from .spatial import _SpatialConvolutionMMBase, SpatialConvolution, SpatialConvolutionMM
from .dilated import (SpatialDilatedConvolution, SpatialFullConvolution, VolumetricConvolution,
                      VolumetricDilatedConvolution, VolumetricFullConvolution)
from .other import (SpatialDepthWiseConvolution, SpatialConvolutionLocal, SpatialConvolutionMap,
                    SpatialFullConvolutionMap, SpatialSubSampling, tables)

# pynn.nn exports only the module classes of its family files: publish Lua's nn.tables
# (full, oneToOne, random; defined with SpatialConvolutionMap) on the package as Lua does.
import sys as _sys  # noqa: E402
_nn = _sys.modules.get(__name__.rsplit('.', 1)[0])
if _nn is not None and not hasattr(_nn, 'tables'):
    _nn.tables = tables

__all__ = ['SpatialConvolution', 'SpatialConvolutionMM', 'SpatialDilatedConvolution',
           'SpatialFullConvolution', 'VolumetricConvolution', 'VolumetricDilatedConvolution',
           'VolumetricFullConvolution', 'SpatialDepthWiseConvolution', 'SpatialConvolutionLocal',
           'SpatialConvolutionMap', 'SpatialFullConvolutionMap', 'SpatialSubSampling', 'tables']
