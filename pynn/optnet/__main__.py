"""The command line: `pynn-optnet demo | report MODEL | graph MODEL | tables`."""
import argparse
import sys
import time

MiB = 1048576.0


def _fmt(mem):
    return ', '.join('%s %.2f MiB' % (k, mem[k] / MiB)
                     for k in ('total_size', 'outputs', 'gradInputs', 'buffers', 'params'))


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
    print('2) optnet on %s (batch 1, float64, inference)' % args.model)
    report(argparse.Namespace(model=args.model, mode='inference', batch=None, float=False))


def _build(name, batch=None):
    import models
    b = models.builders[name]
    return b(batch=batch) if batch else b()


def report(args):
    import pynn
    from pynn import optnet
    if getattr(args, 'float', False):
        pynn.setdefaulttensortype('torch.FloatTensor')
    net, inp = _build(args.model, args.batch)
    if args.mode == 'inference':
        net.evaluate()
    t0 = time.perf_counter()
    net.forward(inp)
    if args.mode == 'training':
        from .trace import recursive_clone
        net.backward(inp, recursive_clone(net.output))
    before = optnet.countUsedMemory(net)
    optnet.optimizeMemory(net, inp, {'mode': args.mode, 'inplace': True, 'reuseBuffers': True})
    net.forward(inp)
    if args.mode == 'training':
        net.backward(inp, recursive_clone(net.output))
    after = optnet.countUsedMemory(net)
    print('   before: ' + _fmt(before))
    print('   after : ' + _fmt(after))
    print('   saved : %.1f%% of the total (%.2f s)' % (
        100.0 * (1 - after['total_size'] / before['total_size']), time.perf_counter() - t0))


def graph(args):
    from pynn import optnet
    net, inp = _build(args.model, args.batch)
    net.evaluate()
    if args.optimize:
        optnet.optimizeMemory(net, inp)
    g = optnet.graphgen(net, inp, {'addOutputNode': True})
    path = g.render(args.out, format=args.format, cleanup=True)
    print(path)


def main(argv=None):
    p = argparse.ArgumentParser(prog='pynn-optnet', description=__doc__)
    sub = p.add_subparsers(dest='cmd')
    d = sub.add_parser('demo', help='train a small net, then optimize a model and print its memory')
    d.add_argument('--steps', type=int, default=20)
    d.add_argument('--model', default='googlenet')
    r = sub.add_parser('report', help="a model's memory before and after optimizeMemory")
    r.add_argument('model')
    r.add_argument('--mode', default='inference', choices=['inference', 'training'])
    r.add_argument('--batch', type=int)
    r.add_argument('--float', action='store_true')
    g = sub.add_parser('graph', help='render the data-flow graph of a model')
    g.add_argument('model')
    g.add_argument('--batch', type=int)
    g.add_argument('--optimize', action='store_true')
    g.add_argument('--out', default='graph')
    g.add_argument('--format', default='svg')
    try:
        from . import tables as _tables
        _tables.add_parser(sub)
    except ImportError:
        pass
    args = p.parse_args(argv)
    cmd = args.cmd or 'demo'
    if cmd == 'demo' and not hasattr(args, 'steps'):
        args = p.parse_args(['demo'] + list(argv or []))
    {'demo': demo, 'report': report, 'graph': graph}.get(cmd, getattr(args, 'func', None))(args)
    return 0


if __name__ == '__main__':
    sys.exit(main())
