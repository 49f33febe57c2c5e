"""pynn.nngraph: Lua's nngraph (graph-structured networks) and the graph classes it uses.

    import pynn.nn as nn, pynn.nngraph as nngraph
    x = nn.Identity()()
    h = nn.Tanh()(nn.Linear(3, 4)(x))
    g = nngraph.gModule([x], [nn.Linear(4, 2)(h)])     # also nn.gModule, as in Lua

Calling a module on a node, a list of nodes or nothing builds a node (Lua's Module:__call__
once nngraph is loaded); calling it on a tensor still runs forward. gModules load from and
save to .t7 files in Lua nngraph's layout.
"""
from .. import nn as _nn
from .graph import Graph, Edge, Node as GraphNode
from .node import Node
from .gmodule import gModule
from .modules import JustElement, JustTable
from .dot import dot, todot, digraph

_nn.gModule = gModule   # Lua: require 'nngraph' defines nn.gModule


def registry():
    """Lua class name -> pynn class for the classes of nngraph and graph (pynn.load uses it)."""
    return {'nn.gModule': gModule, 'nngraph.Node': Node, 'graph.Node': GraphNode,
            'graph.Graph': Graph, 'graph.Edge': Edge, 'nngraph.JustElement': JustElement,
            'nngraph.JustTable': JustTable}


graph = type('graph', (), {'Graph': Graph, 'Edge': Edge, 'Node': GraphNode, 'dot': staticmethod(dot)})
