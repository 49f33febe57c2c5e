"""graphgen: the data flow of an nn network as a graphviz.Digraph, coloured by storage.

One node per module output (leaf modules, and Concat-like containers whose output is a
new tensor), labelled with the module and the id of its output's storage; nodes whose
tensors share a storage have the same colour, so optnet's sharing is visible.
"""
import colorsys

import graphviz

from ..nn.module import tracing
from .trace import Recorder, tensors_of

CONCAT_LIKE = ('nn.Concat', 'nn.Parallel', 'nn.DepthConcat')


def _colour(i):
    h = (i * 0.618033988749895) % 1.0
    r, g, b = colorsys.hsv_to_rgb(h, 0.45, 0.95)
    return '#%02x%02x%02x' % (int(r * 255), int(g * 255), int(b * 255))


def graphgen(net, input, opts=None):
    """opts: nodeData(label, tensor) -> label, displayProps (graphviz node attributes),
    addOutputNode (bool, adds an 'output' node). Runs one forward pass of net."""
    from .memory import check_network
    check_network('graphgen', net)
    opts = dict(opts or {})
    node_data = opts.get('nodeData')
    props = dict(opts.get('displayProps') or {'shape': 'box', 'style': 'filled'})
    props.setdefault('style', 'filled')
    storage_ids = {}
    producer = {}       # id(tensor) -> node name
    by_view = {}        # (storage id, offset, size) -> node name, for views made inside containers
    dot = graphviz.Digraph(name='pynn', graph_attr={'rankdir': 'TB'})
    count = [0]

    def sid(t):
        st = t.storage()
        key = id(st) if st is not None else None
        if key not in storage_ids:
            storage_ids[key] = len(storage_ids) + 1
        return storage_ids[key]

    def add_node(label, t):
        count[0] += 1
        name = 'n%d' % count[0]
        s = sid(t)
        text = '%s\nStorage: %d' % (label, s)
        if node_data:
            text = node_data(text, t)
        attrs = dict(props)
        attrs.setdefault('fillcolor', _colour(s))
        dot.node(name, text, **attrs)
        producer[id(t)] = name
        if t.storage() is not None:
            by_view[(id(t.storage()), t._offset, t.size())] = name
        return name

    def source_of(t):
        if id(t) in producer:
            return producer[id(t)]
        if t.storage() is not None:
            return by_view.get((id(t.storage()), t._offset, t.size()))
        return None

    keep = []  # keep traced tensors alive so ids stay unique during the run
    for i, t in enumerate(tensors_of(input)):
        keep.append(t)
        add_node('input' if i == 0 else 'input %d' % (i + 1), t)

    pending = {}

    def on_enter(c, m, name, args):
        if name == 'updateOutput':
            pending[id(m)] = [t for t in tensors_of(args[0])]

    def on_exit(c, m, name, args):
        if name != 'updateOutput':
            return
        if m.__dict__.get('modules') is not None and m.__typename__ not in CONCAT_LIKE:
            return
        ins = pending.pop(id(m), [])
        if m.__dict__.get('modules') is not None:  # Concat-like: inputs are its branches' outputs
            ins = []
            for b in m.modules:
                sub = b.__dict__.get('modules')
                ins.extend(tensors_of((sub[-1] if sub else b).output))
        outs = list(tensors_of(m.output))
        for o in outs:
            keep.append(o)
            node = add_node(m._name(), o)
            for t in ins:
                src = source_of(t)
                if src is not None:
                    dot.edge(src, node)

    with tracing(Recorder(on_enter, on_exit)):
        out = net.forward(input)
    if opts.get('addOutputNode'):
        dot.node('output', 'output', shape='doublecircle')
        for t in tensors_of(out):
            src = source_of(t)
            if src is not None:
                dot.edge(src, 'output')
    return dot
