"""Lua's `graph` package (torch/graph): graph.Node, graph.Edge, graph.Graph with its
topological sort, roots, reverse and DOT output, in the field layout Lua saves.

Iteration orders (breadth-first graph building, depth-first post-order topsort, roots sorted
by node index) are Lua's, because nngraph's module order (and so parameters()) follows them.
"""
from .lua import ipairs, insert_mapped, lookup, length


class _LuaObject:
    """A torch class instance: fields in __dict__ (saved as they are); absent public fields
    read as None (Lua's nil)."""

    def __getattr__(self, name):
        if name.startswith('_'):
            raise AttributeError(name)
        return None


class Node(_LuaObject):
    __typename__ = 'graph.Node'

    def __init__(self, data=None):
        self.data = data
        self.id = 0
        self.children = {}
        self.visited = False
        self.marked = False

    def add(self, child):
        if isinstance(child, (list, tuple)):
            for c in child:
                self.add(c)
            return
        if lookup(self.children, child) is None:
            self.children = insert_mapped(self.children, child)

    def childlist(self):
        return ipairs(self.children)

    def visit(self, pre_func=None, post_func=None):
        """Lua's recursive visit (pre at entry, post after the children), without recursion."""
        if self.visited:
            return
        if pre_func:
            pre_func(self)
        stack = [(self, iter(self.childlist()))]
        while stack:
            node, it = stack[-1]
            for child in it:
                if not child.visited:
                    if pre_func:
                        pre_func(child)
                    stack.append((child, iter(child.childlist())))
                    break
            else:
                stack.pop()
                if post_func:
                    post_func(node)

    def label(self):
        return str(self.data)

    def graph(self):
        g = Graph()

        def build(node):
            for child in node.childlist():
                g.add(Edge(node, child))
        self.bfs(build)
        return g

    def dfs_dirty(self, func):
        visited = []

        def post(node):
            func(node)
            visited.append(node)

        def pre(node):
            node.visited = True
        self.visit(pre, post)
        return visited

    def dfs(self, func):
        for node in self.dfs_dirty(func):
            node.visited = False

    def bfs_dirty(self, func):
        visited, queue = [], [self]
        self.marked = True
        while queue:
            node = queue.pop(0)
            visited.append(node)
            func(node)
            for child in node.childlist():
                if not child.marked:
                    child.marked = True
                    queue.append(child)
        return visited

    def bfs(self, func):
        for node in self.bfs_dirty(func):
            node.marked = False

    def new(self, data):
        """Lua's `n.new(data)`: a fresh node of the same class."""
        return type(self)(data)

    def __repr__(self):
        return '<%s %s>' % (self.__typename__, self.id)


class Edge(_LuaObject):
    __typename__ = 'graph.Edge'

    def __init__(self, frm, to, weight=None):
        self.__dict__['from'] = frm
        self.to = to
        if weight is not None:
            self.weight = weight

    @property
    def src(self):
        return self.__dict__['from']

    def new(self, frm, to):
        return Edge(frm, to)


class Graph(_LuaObject):
    __typename__ = 'graph.Graph'

    def __init__(self):
        self.nodes = {}
        self.edges = {}

    def nodelist(self):
        return ipairs(self.nodes)

    def edgelist(self):
        return ipairs(self.edges)

    def index(self, node):
        return lookup(self.nodes, node)

    def add(self, edge):
        if isinstance(edge, (list, tuple)):
            for e in edge:
                self.add(e)
            return
        if lookup(self.edges, edge) is None:
            self.edges = insert_mapped(self.edges, edge)
        src, dst = edge.src, edge.to
        if lookup(self.nodes, src) is None:
            self.nodes = insert_mapped(self.nodes, src)
        if lookup(self.nodes, dst) is None:
            self.nodes = insert_mapped(self.nodes, dst)
        src.add(dst)
        src.id = lookup(self.nodes, src)
        dst.id = lookup(self.nodes, dst)

    def reverse(self):
        rg = Graph()
        mapnodes = {}
        for e in self.edgelist():
            src, dst = e.src, e.to
            if id(src) not in mapnodes:
                mapnodes[id(src)] = (src, src.new(src.data))
            if id(dst) not in mapnodes:
                mapnodes[id(dst)] = (dst, dst.new(dst.data))
            rg.add(e.new(mapnodes[id(dst)][1], mapnodes[id(src)][1]))
        return rg, {k: v for k, v in mapnodes.values()}

    def roots(self):
        edges = self.edgelist()
        tos = {id(e.to) for e in edges}
        seen, roots = set(), []
        for e in edges:
            if id(e.src) not in tos and id(e.src) not in seen:
                seen.add(id(e.src))
                roots.append(e.src)
        roots.sort(key=lambda n: self.index(n))
        return roots

    def leaves(self):
        edges = self.edgelist()
        froms = {id(e.src) for e in edges}
        seen, leaves = set(), []
        for e in edges:
            if id(e.to) not in froms and id(e.to) not in seen:
                seen.add(id(e.to))
                leaves.append(e.to)
        leaves.sort(key=lambda n: self.index(n))
        return leaves

    def topsort(self):
        rg, fmap = self.reverse()
        rmap = {id(new): old for old, new in fmap.items()}
        rootnodes = rg.roots()
        if not rootnodes:
            raise RuntimeError('Graph has cycles')
        if len(rootnodes) > 1:
            dummy = Node('dummy_root')
            for r in rootnodes:
                dummy.add(r)
        else:
            dummy = rootnodes[0]
        out = []
        dummy.dfs(lambda n: out.append(rmap.get(id(n))))
        out = [n for n in out if n is not None]   # the dummy root maps to nothing (Lua: nil)
        if len(out) != length(self.nodes):
            raise RuntimeError('Graph has cycles')
        return out

    def hasCycle(self):
        try:
            self.topsort()
        except RuntimeError:
            return True
        return False

    def todot(self, title=None):
        """Lua's Graph:todot: the DOT text of the graph."""
        s = ['digraph G {\n']
        if title:
            s.append('labelloc="t";\nlabel="' + title + '";\n')
        s.append('node [shape = oval]; ')
        names = {}
        for node in self.nodelist():
            name = node.graphNodeName() if hasattr(node, 'graphNodeName') else 'Node%s' % node.id
            lbl = dot_escape(name + '\n' + node.label())
            names[id(node)] = 'n%s' % node.id
            attrs = ''
            if hasattr(node, 'graphNodeAttributes'):
                a = node.graphNodeAttributes()
                attrs = ' ' + ' '.join('%s=%s' % (k, dot_escape(str(a[k]))) for k in sorted(a))
            s.append('\n' + names[id(node)] + '[label=' + lbl + attrs + '];')
        s.append('\n')
        for e in self.edgelist():
            s.append(names[id(e.src)] + ' -> ' + names[id(e.to)] + ';\n')
        s.append('}')
        return ''.join(s)


def dot_escape(s):
    import re
    if re.search('[^a-zA-Z]', s):
        s = '"' + s.replace('\n', '\\n').replace('"', '\\"') + '"'
    return s
