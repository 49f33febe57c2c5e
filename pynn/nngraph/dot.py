"""Drawing a graph (graph.dot in Lua): the DOT text of Lua's Graph:todot, a graphviz.Digraph,
and .dot/.svg files."""



def todot(g, title=None):
    return g.todot(title)


def digraph(g, title=None):
    """The graph as a graphviz.Digraph (nodes n<id> labelled as Lua labels them)."""
    import graphviz
    dg = graphviz.Digraph('G')
    if title:
        dg.attr(labelloc='t', label=title)
    dg.attr('node', shape='oval')
    for node in g.nodelist():
        name = node.graphNodeName() if hasattr(node, 'graphNodeName') else 'Node%s' % node.id
        attrs = dict(node.graphNodeAttributes()) if hasattr(node, 'graphNodeAttributes') else {}
        attrs = {k: str(v) for k, v in attrs.items()}
        dg.node('n%s' % node.id, label=name + '\n' + node.label(), **attrs)
    for e in g.edgelist():
        dg.edge('n%s' % e.src.id, 'n%s' % e.to.id)
    return dg


def dot(g, title=None, fname=None):
    """Lua's graph.dot(g, title, fname): returns the Digraph; with fname, writes fname.dot and
    (when Graphviz's `dot` program is installed) fname.svg."""
    dg = digraph(g, title)
    if fname:
        with open(fname + '.dot', 'w') as f:
            f.write(g.todot(title))
        try:
            dg.render(fname, format='svg', cleanup=True)
        except Exception:   # no `dot` executable: the .dot file is still written
            pass
    return dg
