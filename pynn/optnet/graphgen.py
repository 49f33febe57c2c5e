"""graphgen: the data flow of an nn network as a graphviz.Digraph, coloured by storage, as the
original optnet's graphgen.lua draws it.

The original's algorithm, step by step: one forward fills every module's output; then, on a
second forward, each module, before it runs,
- if it is a single-operation module (a module without children, except nn.Identity,
  nn.SelectTable, nn.NarrowTable and nn.FlattenTable, which only route tensors and are no
  node of their own): adds an edge from the node of each tensor of its input to the node of
  each tensor of its output (the output it holds, from the first forward), creating the
  output's node, named by the module's printed form, if it has none yet;
- if it is an operative container (nn.Concat, nn.Parallel, nn.DepthConcat): for each branch,
  takes the output of the branch's last module (of the branch itself if it is no container),
  creates its node if it has none yet (named by that module's type), and adds an edge from it
  to the container's output (created, named by the container's type).
Nodes belong to tensor objects, so a module that hands its input on (an Identity) adds
nothing. The graph holds the nodes that some edge touches; edges are not merged. Each node is
labelled '<name>\\nStorage id: N' (N numbers storages in the order their first node was
made), filled with a colour per storage id.
"""
import colorsys

import graphviz

from ..nn.module import tracing
from .trace import Recorder, recursive_clone, tensors_of

ROUTING = ('nn.Identity', 'nn.SelectTable', 'nn.NarrowTable', 'nn.FlattenTable')
OPERATIVE = ('nn.Concat', 'nn.Parallel', 'nn.DepthConcat', 'inn.SpatialPyramidPooling')


def _colour(i):
    h = (i * 0.618033988749895) % 1.0
    r, g, b = colorsys.hsv_to_rgb(h, 0.45, 0.95)
    return '#%02x%02x%02x' % (int(r * 255), int(g * 255), int(b * 255))


class Graph:
    """The original's graph: nodes (name, tensor, storage id) keyed by tensor object, edges in
    the order they were added (duplicates kept), nodes in the order edges first touched them."""

    def __init__(self):
        self.nodes = {}        # id(tensor) -> node index
        self.info = []         # node index -> (name, tensor, storage id)
        self.storage_ids = {}
        self.edges = []
        self.order = []        # node indices in graph order
        self._in_graph = set()
        self.keep = []         # tensors alive while ids are in use

    def node(self, name, t):
        key = id(t.storage()) if t.storage() is not None else None
        if key not in self.storage_ids:
            self.storage_ids[key] = len(self.storage_ids) + 1
        self.info.append((name, t, self.storage_ids[key]))
        self.nodes[id(t)] = len(self.info) - 1
        self.keep.append(t)
        return self.nodes[id(t)]

    def boundary(self, x, name):
        if hasattr(x, 'storage'):
            self.node(name, x)
        else:
            for k, v in enumerate(x, 1):
                self.boundary(v, '%s %d' % (name, k))

    def edge(self, a, b):
        self.edges.append((a, b))
        for n in (a, b):
            if n not in self._in_graph:
                self._in_graph.add(n)
                self.order.append(n)

    def add_edge(self, src, dst, name):
        """The original's addEdge: tensors or (nested) tables of them on either side."""
        if hasattr(src, 'storage') and hasattr(dst, 'storage'):
            if id(dst) not in self.nodes:
                self.node(name, dst)
            if id(src) in self.nodes:   # the original asserts here; pynn leaves the edge out
                self.edge(self.nodes[id(src)], self.nodes[id(dst)])
        elif hasattr(src, 'storage'):
            for v in dst:
                self.add_edge(src, v, name)
        else:
            for v in src:
                self.add_edge(v, dst, name)


def build_graph(net, input, opts=None):
    """The original's graph of net on input (see the module docstring), as a Graph."""
    opts = opts or {}
    if net.__typename__ == 'nn.DataParallelTable' and net.__dict__.get('modules'):
        net = net.modules[0]
    g = Graph()
    g.boundary(input, 'Input')

    def on_enter(c, m, name, args):
        if name != 'updateOutput':
            return
        mods = m.__dict__.get('modules')
        if mods is None:
            if m.__typename__ not in ROUTING:
                g.add_edge(args[0], m.__dict__.get('output'), m.__tostring__())
        elif m.__typename__ in OPERATIVE:
            for branch in mods:
                sub = branch.__dict__.get('modules')
                last = sub[-1] if sub else branch
                out = last.__dict__.get('output')
                if hasattr(out, 'storage') and id(out) not in g.nodes:
                    g.node(last.__typename__, out)
                g.add_edge(out, m.__dict__.get('output'), m.__typename__)

    net.forward(input)   # fill the states
    with tracing(Recorder(on_enter)):
        net.forward(input)
    if opts.get('addOutputNode'):
        output = recursive_clone(net.output)
        g.boundary(output, 'Output')
        for a, b in zip(tensors_of(net.output), tensors_of(output)):
            if id(a) in g.nodes:
                g.edge(g.nodes[id(a)], g.nodes[id(b)])
    return g


def graphgen(net, input, opts=None):
    """opts (the original's): nodeData(text, tensor) -> text (text is 'Storage id: N'),
    displayProps (graphviz node attributes, over shape=box, style=filled, fontsize=10 and
    the storage's colour), addOutputNode (an 'Output' node after the network's outputs).
    Runs two forward passes of net. Returns a graphviz.Digraph."""
    from .memory import check_network
    check_network('graphgen', net)
    opts = dict(opts or {})
    node_data = opts.get('nodeData')
    g = build_graph(net, input, opts)
    dot = graphviz.Digraph(name='G')
    for n in g.order:
        name, t, sid = g.info[n]
        text = 'Storage id: %d' % sid
        if node_data:
            text = node_data(text, t)
        attrs = {'color': _colour(sid), 'style': 'filled', 'shape': 'box', 'fontsize': '10'}
        attrs.update({k: str(v) for k, v in (opts.get('displayProps') or {}).items()})
        dot.node('n%d' % (n + 1), '%s\n%s' % (name, text), **attrs)
    for a, b in g.edges:
        dot.edge('n%d' % (a + 1), 'n%d' % (b + 1))
    return dot
