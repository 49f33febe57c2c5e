"""Shared by the convolution tests."""


def run_passes(m, x, go, scale):
    """forward, updateGradInput and accGradParameters (gradients zeroed first) of module m:
    copies of output, gradInput, gradWeight and gradBias (None without bias)."""
    m.zeroGradParameters()
    y = m.forward(x).numpy().copy()
    gi = m.updateGradInput(x, go).numpy().copy()
    m.accGradParameters(x, go, scale)
    gb = m.__dict__.get('gradBias')
    return y, gi, m.gradWeight.numpy().copy(), None if gb is None else gb.numpy().copy()
