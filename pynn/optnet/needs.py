"""Whether a module's backward reads its input's values, its output's values, or neither.

A summary of liveness.NEEDS (what updateGradInput and accGradParameters read, per Lua
typename), used to decide when switching a module to in-place is safe and by the schedule
replay check. Unknown modules read both (the safe default).
"""
from .liveness import NEEDS, DEFAULT_NEEDS, IN, OUT, GO

INPUT, OUTPUT, GRAD_OUTPUT = IN, OUT, GO


def backward_reads(module, method='backward'):
    """The subset of {INPUT, OUTPUT, GRAD_OUTPUT} read by `method` (updateGradInput,
    accGradParameters, or backward: both) of the module."""
    ugi, agp = NEEDS.get(module.__typename__, DEFAULT_NEEDS)
    parts = {'updateGradInput': (ugi,), 'accGradParameters': (agp,)}.get(method, (ugi, agp))
    reads = set()
    for part in parts:
        reads |= set(part(module) if callable(part) else part)
    return reads
