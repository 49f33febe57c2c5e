"""karpathy/char-rnn's train.lua, ported line by line to pynn (LSTM model, clones in time,
optim.rmsprop), on a small synthetic corpus so that it runs in seconds on a CPU.

    python examples/char_rnn_train.py                 # defaults: a few hundred iterations
    python examples/char_rnn_train.py -max_iters 40   # shorter

The Lua line each block comes from is in docs/porting.md. What differs from train.lua: the
data loader is CharSplitLMMinibatchLoader's splitting logic on an in-memory string (no files),
no GPU branches, no checkpoint files unless -checkpoint_dir is given, and a -max_iters cap.
"""
import argparse
import math
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))

import pynn                                    # noqa: E402  require 'torch'
import pynn.nn as nn                           # noqa: E402  require 'nn'
import pynn.nngraph as nngraph                 # noqa: E402,F401  require 'nngraph'
import pynn.optim as optim                     # noqa: E402  require 'optim'


# --- model/LSTM.lua -----------------------------------------------------------------------------
class LSTM:
    @staticmethod
    def lstm(input_size, rnn_size, n, dropout=0):
        dropout = dropout or 0
        # there will be 2*n+1 inputs
        inputs = []
        inputs.append(nn.Identity()())  # x
        for L in range(1, n + 1):
            inputs.append(nn.Identity()())  # prev_c[L]
            inputs.append(nn.Identity()())  # prev_h[L]
        outputs = []
        for L in range(1, n + 1):
            # c,h from previos timesteps
            prev_h = inputs[L * 2 + 1 - 1]
            prev_c = inputs[L * 2 - 1]
            # the input to this layer
            if L == 1:
                x = inputs[0]   # char-rnn: OneHot(input_size)(inputs[1]); here x is one-hot already
                input_size_L = input_size
            else:
                x = outputs[(L - 1) * 2 - 1]
                if dropout > 0:
                    x = nn.Dropout(dropout)(x)  # apply dropout, if any
                input_size_L = rnn_size
            # evaluate the input sums at once for efficiency
            i2h = nn.Linear(input_size_L, 4 * rnn_size)(x).annotate({'name': 'i2h_' + str(L)})
            h2h = nn.Linear(rnn_size, 4 * rnn_size)(prev_h).annotate({'name': 'h2h_' + str(L)})
            all_input_sums = nn.CAddTable()([i2h, h2h])
            if hasattr(nn, 'SplitTable'):
                reshaped = nn.Reshape(4, rnn_size)(all_input_sums)
                n1, n2, n3, n4 = nn.SplitTable(2)(reshaped).split(4)
            else:   # until pynn.nn has SplitTable (table family): the same four slices
                n1, n2, n3, n4 = [nn.Narrow(2, k * rnn_size + 1, rnn_size)(all_input_sums) for k in range(4)]
            # decode the gates
            in_gate = nn.Sigmoid()(n1)
            forget_gate = nn.Sigmoid()(n2)
            out_gate = nn.Sigmoid()(n3)
            # decode the write inputs
            in_transform = nn.Tanh()(n4)
            # perform the LSTM update
            next_c = nn.CAddTable()([
                nn.CMulTable()([forget_gate, prev_c]),
                nn.CMulTable()([in_gate, in_transform])
            ])
            # gated cells form the output
            next_h = nn.CMulTable()([out_gate, nn.Tanh()(next_c)])
            outputs.append(next_c)
            outputs.append(next_h)
        # set up the decoder
        top_h = outputs[-1]
        if dropout > 0:
            top_h = nn.Dropout(dropout)(top_h)
        proj = nn.Linear(rnn_size, input_size)(top_h).annotate({'name': 'decoder'})
        logsoft = nn.LogSoftMax()(proj)
        outputs.append(logsoft)
        return nn.gModule(inputs, outputs)


# --- util/CharSplitLMMinibatchLoader.lua (on a string) ---------------------------------------------
class CharSplitLMMinibatchLoader:
    def __init__(self, text, batch_size, seq_length, split_fractions):
        chars = sorted(set(text))
        self.vocab_mapping = {c: i + 1 for i, c in enumerate(chars)}
        self.vocab_size = len(chars)
        data = np.array([self.vocab_mapping[c] for c in text], dtype=np.int64)
        length = len(data)
        if length % (batch_size * seq_length) != 0:
            data = data[:batch_size * seq_length * math.floor(length / (batch_size * seq_length))]
        ydata = data.copy()
        ydata[:-1] = data[1:]
        ydata[-1] = data[0]
        self.x_batches = np.split(data.reshape(batch_size, -1), data.size // (batch_size * seq_length), axis=1)
        self.y_batches = np.split(ydata.reshape(batch_size, -1), ydata.size // (batch_size * seq_length), axis=1)
        self.nbatches = len(self.x_batches)
        self.ntrain = math.floor(self.nbatches * split_fractions[0])
        self.nval = self.nbatches - self.ntrain
        self.split_sizes = [self.ntrain, self.nval, 0]
        self.batch_ix = [0, 0, 0]

    def reset_batch_pointer(self, split_index):
        self.batch_ix[split_index - 1] = 0

    def next_batch(self, split_index):
        self.batch_ix[split_index - 1] += 1
        if self.batch_ix[split_index - 1] > self.split_sizes[split_index - 1]:
            self.batch_ix[split_index - 1] = 1
        ix = self.batch_ix[split_index - 1] + (self.ntrain if split_index == 2 else 0)
        return self.x_batches[ix - 1], self.y_batches[ix - 1]


# --- util/model_utils.lua, util/misc.lua ------------------------------------------------------------
def combine_all_parameters(*networks):
    return networks[0].getParameters()   # one network here: Module.getParameters flattens the same way


def clone_many_times(net, T):
    """T clones of net whose parameters and gradients share net's storages (criteria, which
    have no parameters, are plain copies)."""
    if isinstance(net, nn.Criterion):
        return [net.clone() for _ in range(T)]
    return [net.clone('weight', 'bias', 'gradWeight', 'gradBias') for _ in range(T)]


def clone_list(tensor_list, zero_too=False):
    out = []
    for v in tensor_list:
        c = v.clone()
        if zero_too:
            c.zero()
        out.append(c)
    return out


def synthetic_corpus(n=6000, seed=0):
    """A small text with structure to learn: words from a tiny vocabulary in a repeating grammar."""
    rng = np.random.default_rng(seed)
    words = ['the cat ', 'sat on ', 'a mat. ', 'the dog ', 'ran to ', 'a log. ']
    out = []
    while sum(len(w) for w in out) < n:
        k = int(rng.integers(0, 2)) * 3
        out.extend(words[k:k + 3])
    return ''.join(out)[:n]


def main(argv=None):
    cmd = argparse.ArgumentParser(description='Train a character-level language model', prefix_chars='-')
    # model params
    cmd.add_argument('-rnn_size', type=int, default=32, help='size of LSTM internal state')
    cmd.add_argument('-num_layers', type=int, default=2, help='number of layers in the LSTM')
    cmd.add_argument('-model', default='lstm', help='lstm (gru, rnn: not ported)')
    # optimization
    cmd.add_argument('-learning_rate', type=float, default=2e-2, help='learning rate')
    cmd.add_argument('-learning_rate_decay', type=float, default=0.97, help='learning rate decay')
    cmd.add_argument('-learning_rate_decay_after', type=float, default=10, help='in number of epochs, when to start decaying the learning rate')
    cmd.add_argument('-decay_rate', type=float, default=0.95, help='decay rate for rmsprop')
    cmd.add_argument('-dropout', type=float, default=0, help='dropout for regularization')
    cmd.add_argument('-seq_length', type=int, default=12, help='number of timesteps to unroll for')
    cmd.add_argument('-batch_size', type=int, default=10, help='number of sequences to train on in parallel')
    cmd.add_argument('-max_epochs', type=float, default=4, help='number of full passes through the training data')
    cmd.add_argument('-grad_clip', type=float, default=5, help='clip gradients at this value')
    cmd.add_argument('-train_frac', type=float, default=0.95, help='fraction of data that goes into train set')
    cmd.add_argument('-val_frac', type=float, default=0.05, help='fraction of data that goes into validation set')
    cmd.add_argument('-seed', type=int, default=123, help='torch manual random number generator seed')
    cmd.add_argument('-print_every', type=int, default=10, help='how many steps/minibatches between printing out the loss')
    cmd.add_argument('-eval_val_every', type=int, default=1000, help='every how many iterations should we evaluate on validation data?')
    cmd.add_argument('-checkpoint_dir', default='', help='output directory where checkpoints get written (none if empty)')
    cmd.add_argument('-savefile', default='lstm', help='filename to autosave the checkpont to')
    cmd.add_argument('-max_iters', type=int, default=0, help='stop after this many iterations (0: max_epochs)')
    opt = cmd.parse_args(argv)

    pynn.manualSeed(opt.seed)
    # train / val / test split for data, in fractions
    test_frac = max(0, 1 - (opt.train_frac + opt.val_frac))
    split_sizes = [opt.train_frac, opt.val_frac, test_frac]

    # create the data loader class
    loader = CharSplitLMMinibatchLoader(synthetic_corpus(), opt.batch_size, opt.seq_length, split_sizes)
    vocab_size = loader.vocab_size  # the number of distinct characters
    print('vocab size: ' + str(vocab_size))

    # define the model: prototypes for one timestep, then clone them in time
    print('creating an %s with %d layers' % (opt.model, opt.num_layers))
    protos = {}
    protos['rnn'] = LSTM.lstm(vocab_size, opt.rnn_size, opt.num_layers, opt.dropout)
    protos['criterion'] = nn.ClassNLLCriterion()

    # the initial state of the cell/hidden states
    init_state = []
    for L in range(1, opt.num_layers + 1):
        h_init = pynn.zeros(opt.batch_size, opt.rnn_size)
        init_state.append(h_init.clone())
        init_state.append(h_init.clone())

    # put the above things into one flattened parameters tensor
    params, grad_params = combine_all_parameters(protos['rnn'])

    # initialization
    params.uniform(-0.08, 0.08)  # small uniform numbers

    # initialize the LSTM forget gates with slightly higher biases to encourage remembering
    for layer_idx in range(1, opt.num_layers + 1):
        for node in protos['rnn'].forwardnodes:
            if node.data['annotations'].get('name') == 'i2h_' + str(layer_idx):
                print('setting forget gate biases to 1 in LSTM layer ' + str(layer_idx))
                # the gates are, in order, i,f,o,g, so f is the 2nd block of weights
                node.data['module'].bias.narrow(1, opt.rnn_size + 1, opt.rnn_size).fill(1.0)
    print('number of parameters in the model: %d' % params.nElement())

    # make a bunch of clones after flattening, as that reallocates memory
    clones = {}
    for name, proto in protos.items():
        print('cloning ' + name)
        clones[name] = clone_many_times(proto, opt.seq_length)

    eye = np.eye(vocab_size)

    # preprocessing helper function: x as one-hot rows per time step, y as class indices
    def prepro(x, y):
        x = np.ascontiguousarray(x.T)   # swap the axes for faster indexing
        y = np.ascontiguousarray(y.T)
        return ([pynn.from_numpy(eye[x[t] - 1]) for t in range(x.shape[0])],
                [pynn.from_numpy(y[t].astype(np.float64)) for t in range(y.shape[0])])

    # evaluate the loss over an entire split
    def eval_split(split_index, max_batches=None):
        print('evaluating loss over split index %d' % split_index)
        n = loader.split_sizes[split_index - 1]
        if max_batches is not None:
            n = min(max_batches, n)
        loader.reset_batch_pointer(split_index)  # move batch iteration pointer for this split to front
        loss = 0
        rnn_state = {0: init_state}
        for i in range(1, n + 1):  # iterate over batches in the split
            x, y = loader.next_batch(split_index)
            x, y = prepro(x, y)
            for t in range(1, opt.seq_length + 1):
                clones['rnn'][t - 1].evaluate()  # for dropout proper functioning
                lst = clones['rnn'][t - 1].forward([x[t - 1]] + list(rnn_state[t - 1]))
                rnn_state[t] = []
                for k in range(len(init_state)):
                    rnn_state[t].append(lst[k])
                prediction = lst[-1]
                loss = loss + clones['criterion'][t - 1].forward(prediction, y[t - 1])
            # carry over lstm state
            rnn_state[0] = rnn_state[len(rnn_state) - 1]
        loss = loss / opt.seq_length / max(n, 1)
        return loss

    # do fwd/bwd and return loss, grad_params
    state = {'init_state_global': clone_list(init_state)}

    def feval(x):
        if x is not params:
            params.copy(x)
        grad_params.zero()
        # ---------------- get minibatch -------------------
        x, y = loader.next_batch(1)
        x, y = prepro(x, y)
        # ----------------- forward pass -------------------
        rnn_state = {0: state['init_state_global']}
        predictions = {}  # softmax outputs
        loss = 0
        for t in range(1, opt.seq_length + 1):
            clones['rnn'][t - 1].training()  # make sure we are in correct mode (this is cheap, sets flag)
            lst = clones['rnn'][t - 1].forward([x[t - 1]] + list(rnn_state[t - 1]))
            rnn_state[t] = []
            for i in range(len(init_state)):
                rnn_state[t].append(lst[i])  # extract the state, without output
            predictions[t] = lst[-1]  # last element is the prediction
            loss = loss + clones['criterion'][t - 1].forward(predictions[t], y[t - 1])
        loss = loss / opt.seq_length
        # ----------------- backward pass -------------------
        # initialize gradient at time t to be zeros (there's no influence from future)
        drnn_state = {opt.seq_length: clone_list(init_state, True)}  # true also zeros the clones
        for t in range(opt.seq_length, 0, -1):
            # backprop through loss, and softmax/linear
            doutput_t = clones['criterion'][t - 1].backward(predictions[t], y[t - 1])
            drnn_state[t].append(doutput_t)
            dlst = clones['rnn'][t - 1].backward([x[t - 1]] + list(rnn_state[t - 1]), drnn_state[t])
            drnn_state[t - 1] = []
            for k, v in enumerate(dlst, 1):
                if k > 1:  # k == 1 is gradient on x, which we dont need
                    drnn_state[t - 1].append(v)
        # ---------------------- misc ----------------------
        # transfer final state to initial state (BPTT)
        state['init_state_global'] = rnn_state[len(rnn_state) - 1]
        # clip gradient element-wise
        np.clip(grad_params.numpy(), -opt.grad_clip, opt.grad_clip, out=grad_params.numpy())
        return loss, grad_params

    # start optimization here
    train_losses = {}
    val_losses = {}
    optim_state = {'learningRate': opt.learning_rate, 'alpha': opt.decay_rate}
    iterations = int(opt.max_epochs * loader.ntrain)
    if opt.max_iters:
        iterations = min(iterations, opt.max_iters)
    loss0 = None
    for i in range(1, iterations + 1):
        epoch = i / loader.ntrain
        timer = time.time()
        _, loss = optim.rmsprop(feval, params, optim_state)
        elapsed = time.time() - timer
        train_loss = loss[0]  # the loss is inside a list, pop it
        train_losses[i] = train_loss

        # exponential learning rate decay
        if i % loader.ntrain == 0 and opt.learning_rate_decay < 1:
            if epoch >= opt.learning_rate_decay_after:
                decay_factor = opt.learning_rate_decay
                optim_state['learningRate'] = optim_state['learningRate'] * decay_factor  # decay it
                print('decayed learning rate by a factor %g to %g' % (decay_factor, optim_state['learningRate']))

        # every now and then or on last iteration
        if i % opt.eval_val_every == 0 or i == iterations:
            # evaluate loss on validation data
            val_loss = eval_split(2)  # 2 = validation
            val_losses[i] = val_loss
            if opt.checkpoint_dir:
                os.makedirs(opt.checkpoint_dir, exist_ok=True)
                savefile = '%s/lm_%s_epoch%.2f_%.4f.t7' % (opt.checkpoint_dir, opt.savefile, epoch, val_loss)
                print('saving checkpoint to ' + savefile)
                checkpoint = {'protos': protos, 'opt': {k: v for k, v in vars(opt).items()},
                              'train_losses': train_losses, 'val_loss': val_loss,
                              'val_losses': val_losses, 'i': i, 'epoch': epoch,
                              'vocab': loader.vocab_mapping}
                pynn.save(savefile, checkpoint)

        if i % opt.print_every == 0:
            gp, p = np.linalg.norm(grad_params.numpy()), np.linalg.norm(params.numpy())
            print('%d/%d (epoch %.3f), train_loss = %6.8f, grad/param norm = %6.4e, time/batch = %.4fs'
                  % (i, iterations, epoch, train_loss, gp / p, elapsed))

        # handle early stopping if things are going really bad
        if loss[0] != loss[0]:
            print('loss is NaN.  This usually indicates a bug.')
            break  # halt
        if loss0 is None:
            loss0 = loss[0]
        if loss[0] > loss0 * 3:
            print('loss is exploding, aborting.')
            break  # halt
    return train_losses, val_losses


if __name__ == '__main__':
    main()
