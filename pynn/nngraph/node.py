"""nngraph.Node: a graph.Node whose `data` holds an nn module (or nothing: the graph's input,
output, split and select nodes), `mapindex` (its inputs' data, in order, and the reverse map),
`reverseMap` (its consumers), `annotations`; and calling a module on nodes (`nn.Linear(3,4)(x)`)."""
import os
import sys

from .graph import Node as GraphNode
from .lua import insert_mapped, lookup, ipairs


def _debug_label(depth=3):
    """Lua's _debugLabel '[file]:line_name' of the code that made the node."""
    try:
        f = sys._getframe(depth)
        here = os.path.dirname(os.path.abspath(__file__))
        while f is not None and os.path.dirname(os.path.abspath(f.f_code.co_filename)) in (
                here, os.path.join(os.path.dirname(here), 'nn')):
            f = f.f_back
        if f is None:
            return None
        return '[%s]:%d_%s' % (os.path.basename(f.f_code.co_filename), f.f_lineno,
                               '' if f.f_code.co_name == '<module>' else f.f_code.co_name)
    except Exception:
        return None


class Node(GraphNode):
    __typename__ = 'nngraph.Node'

    def __init__(self, data=None):
        super().__init__({} if data is None else data)
        d = self.data
        if d.get('annotations') is None:
            d['annotations'] = {}
        if d.get('mapindex') is None:
            d['mapindex'] = {}
        if d.get('reverseMap') is None:
            d['reverseMap'] = {}
        if d['annotations'].get('_debugLabel') is None:
            lbl = _debug_label()
            if lbl is not None:
                d['annotations']['_debugLabel'] = lbl

    def add(self, child, domap=False):
        super().add(child)
        if domap:
            data = child.data
            if lookup(self.data['mapindex'], data) is not None:
                raise ValueError("Don't pass the same input twice.")
            self.data['mapindex'] = insert_mapped(self.data['mapindex'], data)
            rev = child.data.get('reverseMap')
            if isinstance(rev, list):
                rev = child.data['reverseMap'] = {}
            if self in rev:
                raise ValueError('this connection has already been made!')
            rev[self] = True

    def split(self, noutput):
        """Lua's node:split(n): n nodes selecting the elements of this node's table output."""
        from .modules import JustElement
        if noutput == 1:
            return JustElement()(self)
        lbl = self.data['annotations'].get('_debugLabel') or ''
        mnode = Node({'nSplitOutputs': noutput,
                      'annotations': {'_debugLabel': lbl + ' split-mnode'}})
        mnode.add(self, True)
        out = []
        for i in range(1, noutput + 1):
            n = Node({'selectindex': i, 'input': [], 'annotations': {'_debugLabel': '%s-%d' % (lbl, i)}})
            n.add(mnode, True)
            out.append(n)
        return tuple(out)

    def annotate(self, annotations=None, **kw):
        for k, v in dict(annotations or {}, **kw).items():
            self.data['annotations'][k] = v
        return self

    def graphNodeName(self):
        name = self.data['annotations'].get('name')
        if name:
            return '%s (%s)' % (name, self.id)
        return 'Node%s' % self.id

    def graphNodeAttributes(self):
        a = self.data['annotations']
        if a.get('graphAttributes') is None:
            a['graphAttributes'] = {}
        ga = a['graphAttributes']
        if ga.get('tooltip') is None and a.get('_debugLabel') is not None:
            ga['tooltip'] = a['_debugLabel']
        return ga

    def label(self):
        from ..tensor import Tensor

        def getstr(v):
            if v is None:
                return ''
            if isinstance(v, Tensor):
                t = 'Tensor' if v.type() == Tensor().type() else v.type()
                return '%s[%s]' % (t, 'x'.join(str(s) for s in v.size()))
            if isinstance(v, (list, tuple)):
                return '{' + ','.join(getstr(x) for x in v) + '}'
            if hasattr(v, '__tostring__'):
                return v.__tostring__().replace('\n', '\\l')
            return str(v).replace('\n', '\\l')
        lbl = []
        for k, v in self.data.items():
            if k == 'mapindex':
                items = ipairs(v)
                if len(items) > 1:
                    lbl.append(k + ' = {' + ','.join('Node%s' % (d.get('forwardNodeId') or '') for d in items) + '}')
            elif k in ('forwardNodeId', 'annotations', 'reverseMap'):
                continue
            else:
                lbl.append(k + ' = ' + getstr(v))
        desc = self.data['annotations'].get('description')
        return ('desc = ' + desc + '\\n' if desc else '') + '\\l'.join(lbl)

    # Lua: node1 - module  ==  module(node1)
    def __sub__(self, nxt):
        return nxt(self)


def is_node(x):
    return isinstance(x, Node)


def module_call(module, *args):
    """Lua's Module:__call__ with nngraph loaded: `m()` (no inputs), `m(node)`, `m({n1, n2})`."""
    if len(args) > 1:
        raise ValueError('Use {input1, input2} to pass multiple inputs.')
    if args and args[0] is None:
        raise ValueError('inputs[1] is nil (typo / bad index?)')
    inputs = args[0] if args else []
    if isinstance(inputs, (list, tuple)):
        if args and len(inputs) == 0:
            raise ValueError('cannot pass an empty table of inputs. To indicate no incoming '
                             'connections, leave the second set of parens blank.')
    else:
        inputs = [inputs]
    mnode = Node({'module': module})
    for i, d in enumerate(inputs, 1):
        if not isinstance(d, Node):
            raise TypeError(_expecting(d, 'inputs', i))
        mnode.add(d, True)
    return mnode


def _expecting(bad, array, idx):
    from ..nn.module import Module
    if bad is None:
        return '%s[%d] is nil (typo / bad index?)' % (array, idx)
    if isinstance(bad, Module):
        return ('%s[%d] is an nn.Module, specifically a %s, but the only valid thing to pass is an '
                'instance of nngraph.Node. Did you forget a second set of parens, which convert a '
                'nn.Module to a nngraph.Node?' % (array, idx, bad.__typename__))
    return '%s[%d] should be an nngraph.Node but is of type %s' % (
        array, idx, getattr(bad, '__typename__', None) or type(bad).__name__)
