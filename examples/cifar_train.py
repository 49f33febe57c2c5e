"""A CIFAR-style convolutional network trained with optim.sgd and optim.ConfusionMatrix, ported
line by line from the structure of Torch's demos/train-on-cifar/train-on-cifar.lua (model
definition, getParameters, the feval closure over a mini-batch, the confusion matrix printed
each epoch, optim.Logger), on synthetic data so that it runs in seconds on a CPU.

    python examples/cifar_train.py                # 3 epochs on 384 synthetic 3x16x16 images
"""
import argparse
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))

import pynn                                  # noqa: E402  require 'torch'
import pynn.nn as nn                         # noqa: E402  require 'nn'
import pynn.optim as optim                   # noqa: E402  require 'optim'


def synthetic_cifar(n, classes, size=16, seed=0):
    """Images whose class sets a coloured pattern (a bar position and a colour), plus noise;
    labels 1..#classes (Lua's 1-based class indices)."""
    rng = np.random.default_rng(seed)
    nclass = len(classes)
    data = rng.normal(0, 0.6, (n, 3, size, size))
    labels = rng.integers(1, nclass + 1, n)
    for i, c in enumerate(labels):
        k = int(c) - 1
        data[i, k % 3, :, (k * size // nclass):((k + 1) * size // nclass)] += 1.5
        data[i, (k + 1) % 3, (k * size // nclass):((k + 1) * size // nclass), :] += 1.0
    return {'data': pynn.from_numpy(data), 'labels': pynn.from_numpy(labels.astype(np.float64)),
            'size': lambda: n}


def main(argv=None):
    cmd = argparse.ArgumentParser(description='CIFAR-style training/optimization', prefix_chars='-')
    cmd.add_argument('-save', default='', help='subdirectory to save/log experiments in (a temp dir if empty)')
    cmd.add_argument('-learningRate', type=float, default=5e-2, help='learning rate at t=0')
    cmd.add_argument('-batchSize', type=int, default=16, help='mini-batch size (1 = pure stochastic)')
    cmd.add_argument('-weightDecay', type=float, default=0, help='weight decay (SGD only)')
    cmd.add_argument('-momentum', type=float, default=0.9, help='momentum (SGD only)')
    cmd.add_argument('-epochs', type=int, default=3, help='number of passes over the training set')
    cmd.add_argument('-trainSize', type=int, default=384, help='number of training samples')
    cmd.add_argument('-seed', type=int, default=1, help='random seed')
    opt = cmd.parse_args(argv)

    pynn.manualSeed(opt.seed)
    pynn.setdefaulttensortype('torch.DoubleTensor')

    # classes
    classes = ['airplane', 'automobile', 'bird', 'cat']

    # define model to train: a typical modern convolution network (conv+relu+pool)
    model = nn.Sequential()
    # stage 1 : filter bank -> squashing -> max pooling
    model.add(nn.SpatialConvolution(3, 8, 3, 3, 1, 1, 1, 1))
    model.add(nn.ReLU())
    model.add(nn.SpatialMaxPooling(2, 2, 2, 2))
    # stage 2 : filter bank -> squashing -> max pooling
    model.add(nn.SpatialConvolution(8, 16, 3, 3, 1, 1, 1, 1))
    model.add(nn.ReLU())
    model.add(nn.SpatialMaxPooling(2, 2, 2, 2))
    # stage 3 : standard 2-layer neural network
    model.add(nn.View(16 * 4 * 4))
    model.add(nn.Linear(16 * 4 * 4, 32))
    model.add(nn.ReLU())
    model.add(nn.Linear(32, len(classes)))
    model.add(nn.LogSoftMax())

    # retrieve parameters and gradients
    parameters, gradParameters = model.getParameters()

    # verbose
    print('<cifar> using model:')
    print(model)

    # loss function: negative log-likelihood
    criterion = nn.ClassNLLCriterion()

    # get/create dataset
    trainData = synthetic_cifar(opt.trainSize, classes, seed=opt.seed)
    testData = synthetic_cifar(opt.trainSize // 4, classes, seed=opt.seed + 1)

    # this matrix records the current confusion across classes
    confusion = optim.ConfusionMatrix(classes)

    # log results to files
    save = opt.save or tempfile.mkdtemp(prefix='cifar_')
    trainLogger = optim.Logger(os.path.join(save, 'train.log'))
    testLogger = optim.Logger(os.path.join(save, 'test.log'))

    epoch_losses = []
    state = {'epoch': 1}

    # training function
    def train(dataset):
        # local vars
        t0 = time.time()
        total_loss, nbatches = 0.0, 0
        # do one epoch
        print('<trainer> on training set:')
        print("<trainer> online epoch # %d [batchSize = %d]" % (state['epoch'], opt.batchSize))
        shuffle = np.random.default_rng(state['epoch']).permutation(dataset['size']())
        for t in range(1, dataset['size']() + 1, opt.batchSize):
            # create mini batch
            idx = shuffle[t - 1:min(t + opt.batchSize, dataset['size']() + 1) - 1]
            inputs = pynn.from_numpy(dataset['data'].numpy()[idx])
            targets = pynn.from_numpy(dataset['labels'].numpy()[idx])

            # create closure to evaluate f(X) and df/dX
            def feval(x):
                # get new parameters
                if x is not parameters:
                    parameters.copy(x)
                # reset gradients
                gradParameters.zero()
                # evaluate function for complete mini batch
                outputs = model.forward(inputs)
                f = criterion.forward(outputs, targets)
                # estimate df/dW
                df_do = criterion.backward(outputs, targets)
                model.backward(inputs, df_do)
                # update confusion
                confusion.batchAdd(outputs, targets)
                # return f and df/dX
                return f, gradParameters

            # optimize on current mini-batch (Lua: config = config or {...}; the state lives in it)
            if state.get('config') is None:
                state['config'] = {'learningRate': opt.learningRate, 'weightDecay': opt.weightDecay,
                                   'momentum': opt.momentum, 'learningRateDecay': 5e-7}
            config = state['config']
            _, fs = optim.sgd(feval, parameters, config)
            total_loss += fs[0]
            nbatches += 1

        # time taken
        elapsed = time.time() - t0
        print('<trainer> time to learn 1 sample = %.4fms' % (elapsed / dataset['size']() * 1000))

        # print confusion matrix
        print(confusion)
        trainLogger.add({'% mean class accuracy (train set)': confusion.totalValid * 100})
        confusion.zero()
        epoch_losses.append(total_loss / nbatches)
        # next epoch
        state['epoch'] += 1

    # test function
    def test(dataset):
        print('<trainer> on testing Set:')
        model.evaluate()
        for t in range(1, dataset['size']() + 1, opt.batchSize):
            idx = np.arange(t - 1, min(t + opt.batchSize, dataset['size']() + 1) - 1)
            inputs = pynn.from_numpy(dataset['data'].numpy()[idx])
            targets = pynn.from_numpy(dataset['labels'].numpy()[idx])
            preds = model.forward(inputs)
            confusion.batchAdd(preds, targets)
        print(confusion)
        testLogger.add({'% mean class accuracy (test set)': confusion.totalValid * 100})
        acc = confusion.totalValid
        confusion.zero()
        model.training()
        return acc

    accuracy = None
    for _ in range(opt.epochs):
        train(trainData)
        accuracy = test(testData)
    return epoch_losses, accuracy


if __name__ == '__main__':
    main()
