"""optnet on char-rnn's LSTM unrolled in time: the memory optimizeMemory saves.

The unrolled network is one gModule whose nodes are T clones of the LSTM gModule sharing
weights and gradients (as char-rnn's model_utils.clone_many_times), chained through their
states: inputs {x_1..x_T, c0_1, h0_1, ..., c0_L, h0_L}, outputs the T predictions and the last
states. Reports countUsedMemory after a forward (and backward, in training) run, before and
after optimizeMemory.

    python examples/char_rnn_memory.py                       # seq 50, batch 50, rnn 128, 2 layers
    python examples/char_rnn_memory.py -seq_length 5 -mode inference -planner optimal
"""
import argparse
import os
import sys
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))

import pynn                          # noqa: E402
import pynn.nn as nn                 # noqa: E402
import pynn.nngraph as nngraph       # noqa: E402
import pynn.optnet as optnet         # noqa: E402
from char_rnn_train import LSTM, clone_many_times   # noqa: E402


def unrolled(vocab, rnn_size, num_layers, seq_length):
    proto = LSTM.lstm(vocab, rnn_size, num_layers, 0)
    clones = clone_many_times(proto, seq_length)
    xs = [nn.Identity()() for _ in range(seq_length)]
    init = [nn.Identity()() for _ in range(2 * num_layers)]
    state, preds = list(init), []
    for t in range(seq_length):
        outs = clones[t]([xs[t]] + state).split(2 * num_layers + 1)
        state = list(outs[:2 * num_layers])
        preds.append(outs[-1])
    return nngraph.gModule(xs + init, preds + state)


def measure(seq_length=50, batch_size=50, rnn_size=128, num_layers=2, vocab=65,
            mode='training', planner='optnet', seed=1):
    pynn.manualSeed(seed)
    net = unrolled(vocab, rnn_size, num_layers, seq_length)
    rng = np.random.default_rng(seed)
    inp = []
    for _ in range(seq_length):
        x = np.zeros((batch_size, vocab))
        x[np.arange(batch_size), rng.integers(0, vocab, batch_size)] = 1
        inp.append(pynn.from_numpy(x))
    inp += [pynn.zeros(batch_size, rnn_size) for _ in range(2 * num_layers)]
    out = net.forward(inp)
    if mode == 'training':
        net.backward(inp, [o.clone().zero() for o in out])
    before = optnet.countUsedMemory(net)
    t0 = time.time()
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        optnet.optimizeMemory(net, inp, {'mode': mode, 'planner': planner})
    seconds = time.time() - t0
    after = optnet.countUsedMemory(net)
    return before, after, seconds


def main(argv=None):
    cmd = argparse.ArgumentParser(description=__doc__.split('\n')[0], prefix_chars='-')
    cmd.add_argument('-seq_length', type=int, default=50)
    cmd.add_argument('-batch_size', type=int, default=50)
    cmd.add_argument('-rnn_size', type=int, default=128)
    cmd.add_argument('-num_layers', type=int, default=2)
    cmd.add_argument('-vocab', type=int, default=65)
    cmd.add_argument('-mode', default='training', choices=['training', 'inference'])
    cmd.add_argument('-planner', default='optnet', choices=['optnet', 'optimal'])
    opt = cmd.parse_args(argv)
    before, after, seconds = measure(opt.seq_length, opt.batch_size, opt.rnn_size, opt.num_layers,
                                     opt.vocab, opt.mode, opt.planner)
    mb = 2.0 ** 20
    print('char-rnn LSTM, seq %d, batch %d, rnn_size %d, %d layers, vocab %d, %s, planner %s:'
          % (opt.seq_length, opt.batch_size, opt.rnn_size, opt.num_layers, opt.vocab, opt.mode, opt.planner))
    print('  total %.2f MB -> %.2f MB (%.1f%% saved) in %.1f s'
          % (before['total_size'] / mb, after['total_size'] / mb,
             100 * (1 - after['total_size'] / before['total_size']), seconds))
    return before, after


if __name__ == '__main__':
    main()
