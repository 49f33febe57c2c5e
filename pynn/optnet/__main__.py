"""The command line: `pynn-optnet demo | report MODEL | graph MODEL | tables`."""
import argparse
import os
import sys
import time

MiB = 1048576.0

# The original optnet's builders (pynn.models), with the options each needs from the command
# line: resnet and preresnet take a dataset and a depth (the published tables' resnet-110 on
# CIFAR-10 by default), vgg a model type.
MODELS = ('alexnet', 'vgg', 'googlenet', 'resnet', 'preresnet', 'basic_parallel', 'basic_conv',
          'basic_deep_conv', 'basic_unpooling', 'siamese', 'basic_concat', 'basic_multiOutput')
RESNETS = ('resnet', 'preresnet')


def _fmt(mem):
    return ', '.join('%s %.2f MiB' % (k, mem[k] / MiB)
                     for k in ('total_size', 'outputs', 'gradInputs', 'buffers', 'params'))


def _progress(msg):
    print(msg, file=sys.stderr, flush=True)


def demo(args):
    import pynn
    from pynn import nn
    pynn.manualSeed(0)
    pynn.setdefaulttensortype('torch.FloatTensor')
    print('1) A small conv net trained with SGD on synthetic data (two classes: bright vs dark images)')
    net = nn.Sequential()
    net.add(nn.SpatialConvolution(1, 8, 3, 3, 1, 1, 1, 1)).add(nn.ReLU(True))
    net.add(nn.SpatialMaxPooling(2, 2, 2, 2))
    net.add(nn.View(8 * 4 * 4)).add(nn.Linear(8 * 4 * 4, 2)).add(nn.LogSoftMax())
    crit = nn.ClassNLLCriterion()
    x = pynn.rand(16, 1, 8, 8)
    labels = pynn.LongTensor(16)
    for i in range(16):
        bright = i % 2
        x.select(1, i + 1).mul(0.5).add(0.5 * bright)
        labels.numpy()[i] = 1 + bright
    for step in range(1, args.steps + 1):
        out = net.forward(x)
        loss = crit.forward(out, labels)
        net.zeroGradParameters()
        net.backward(x, crit.backward(out, labels))
        net.updateParameters(0.5)
        if step == 1 or step % 5 == 0:
            print('   step %2d  loss %.4f' % (step, loss))
    pynn.setdefaulttensortype('torch.DoubleTensor')
    print('2) optnet on %s (batch %s, float64, inference%s)'
          % (args.model, args.batch or 'default', ', meta device' if args.meta else ''))
    report(argparse.Namespace(model=args.model, mode='inference', batch=args.batch, float=False,
                              meta=args.meta, depth=args.depth, dataset=args.dataset))


def _build(args):
    import pynn
    from pynn import models
    name = args.model
    if name not in models.builders:
        raise SystemExit('pynn-optnet: unknown model %r; the models are: %s' % (name, ', '.join(MODELS)))
    kind = 'Float' if getattr(args, 'float', False) else 'Double'
    meta = getattr(args, 'meta', False)
    old = pynn.getdefaulttensortype()
    pynn.setdefaulttensortype('torch.%s%sTensor' % ('Meta' if meta else '', kind))
    try:
        b = models.builders[name]
        kw = {'batch': args.batch} if getattr(args, 'batch', None) else {}
        if name in RESNETS:
            return b({'dataset': args.dataset or 'cifar10', 'depth': args.depth or 110}, **kw)
        return b(**kw)
    finally:
        pynn.setdefaulttensortype(old)


def report(args):
    from pynn import optnet
    _progress('building %s ...' % args.model)
    net, inp = _build(args)
    if args.mode == 'inference':
        net.evaluate()
    _progress('running it once and counting its memory ...')
    net.forward(inp)
    if args.mode == 'training':
        from .trace import recursive_clone
        net.backward(inp, recursive_clone(net.output))
    before = optnet.countUsedMemory(net)
    _progress('optimizeMemory (%s) ...' % args.mode)
    t0 = time.perf_counter()
    optnet.optimizeMemory(net, inp, {'mode': args.mode, 'inplace': True, 'reuseBuffers': True})
    took = time.perf_counter() - t0
    net.forward(inp)
    if args.mode == 'training':
        net.backward(inp, recursive_clone(net.output))
    after = optnet.countUsedMemory(net)
    print('   before: ' + _fmt(before))
    print('   after : ' + _fmt(after))
    print('   saved : %.1f%% of the total' % (100.0 * (1 - after['total_size'] / before['total_size'])))
    print('   optimizeMemory took %.2f s' % took)


DOT_MISSING = ("pynn-optnet graph: Graphviz's `dot` program was not found on the PATH, so the graph "
               "cannot be rendered. Install Graphviz (Debian/Ubuntu: apt-get install graphviz; "
               "macOS: brew install graphviz; conda: conda install graphviz), or write the graph's "
               "source without rendering it: --format dot")


def graph(args):
    import graphviz
    from pynn import optnet
    net, inp = _build(args)
    net.evaluate()
    if args.optimize:
        optnet.optimizeMemory(net, inp)
    g = optnet.graphgen(net, inp, {'addOutputNode': True})
    if args.format == 'dot':
        path = args.out + '.dot'
        with open(path, 'w') as f:
            f.write(g.source)
    else:
        try:
            path = g.render(args.out, format=args.format, cleanup=True)
        except graphviz.ExecutableNotFound:
            raise SystemExit(DOT_MISSING) from None
    print(os.path.abspath(path))


def _model_args(p, positional=True):
    if positional:
        p.add_argument('model', metavar='MODEL', help='one of: %s' % ', '.join(MODELS))
    p.add_argument('--batch', type=int, help="batch size (default: the original builder's)")
    p.add_argument('--meta', action='store_true',
                   help='build on the meta device: sizes and bytes without data (instant)')
    p.add_argument('--depth', type=int, help='resnet/preresnet depth (default 110)')
    p.add_argument('--dataset', choices=['cifar10', 'imagenet'],
                   help='resnet/preresnet dataset (default cifar10)')


def main(argv=None):
    p = argparse.ArgumentParser(prog='pynn-optnet', description=__doc__,
                                epilog='MODEL: ' + ', '.join(MODELS))
    sub = p.add_subparsers(dest='cmd')
    d = sub.add_parser('demo', help='train a small net, then optimize a model and print its memory')
    d.add_argument('--steps', type=int, default=20)
    d.add_argument('--model', default='googlenet', metavar='MODEL', help='one of: %s' % ', '.join(MODELS))
    _model_args(d, positional=False)
    r = sub.add_parser('report', help="a model's memory before and after optimizeMemory")
    _model_args(r)
    r.add_argument('--mode', default='inference', choices=['inference', 'training'])
    r.add_argument('--float', action='store_true')
    g = sub.add_parser('graph', help='render the data-flow graph of a model (needs Graphviz)')
    _model_args(g)
    g.add_argument('--optimize', action='store_true')
    g.add_argument('--out', default='graph', help='output file name without extension')
    g.add_argument('--format', default='svg', help="svg, png, pdf, ... or 'dot' for the source only")
    from . import tables as _tables
    _tables.add_parser(sub)
    argv = list(sys.argv[1:] if argv is None else argv)
    args = p.parse_args(argv)
    if args.cmd is None:
        args = p.parse_args(['demo'] + argv)
    model = getattr(args, 'model', None)
    if args.cmd in ('demo', 'report', 'graph') and model not in MODELS:
        p.error('unknown model %r; the models are: %s' % (model, ', '.join(MODELS)))
    {'demo': demo, 'report': report, 'graph': graph}.get(args.cmd, getattr(args, 'func', None))(args)
    return 0


if __name__ == '__main__':
    sys.exit(main())
