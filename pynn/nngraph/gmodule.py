"""nn.gModule: a module made of a graph of nngraph.Nodes, run in topological order, in Lua
nngraph's layout (forwardnodes, backwardnodes, fg, bg, innode, outnode, modules, nInputs), so
that gModules written by Lua run as loaded and those built here save for Lua."""
from ..nn.container import Container
from ..nn.module import Module, recursive_type, current_tracer
from ..tensor import Tensor
from .lua import ipairs, length, lookup, set_index
from .nesting import clone_nested, resize_nested_as, copy_nested, add_nested_to
from .node import Node, _expecting


def _is_zero_placeholder(t):
    st = t.storage() if isinstance(t, Tensor) else None
    return st is not None and st.size() == 1 and st.data is not None and float(st.data[0]) == 0


def _total_grad_output(node, gm=None):
    d = node.data
    go = d.get('gradOutput')
    if not isinstance(go, list):
        raise ValueError('expecting gradients to sum')
    if len(go) > 1:
        if d.get('gradOutputBuffer') is None:
            count, idx = 0, 0
            for i, g in enumerate(go):
                if not _is_zero_placeholder(g):
                    idx = i
                    count += 1
            if count < 2:
                return go[idx]
        if d.get('gradOutputBuffer') is None:
            d['gradOutputBuffer'] = clone_nested(go[0])
        buf = d['gradOutputBuffer']
        tr = current_tracer()
        if tr is not None and hasattr(tr, 'container_reads'):   # optnet's liveness sees the sum
            tr.container_reads(gm, list(go), [buf])
        resize_nested_as(buf, go[0])
        copy_nested(buf, go[0])
        for g in go[1:]:
            add_nested_to(buf, g)
        return buf
    return go[0]


def _clear(lst):
    if isinstance(lst, list):
        del lst[:]
    elif isinstance(lst, dict):
        lst.clear()


class gModule(Container):
    __typename__ = 'nn.gModule'

    def __init__(self, inputs, outputs):
        super().__init__()
        inputs = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        outputs = list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]
        outnode = Node({'input': []})
        for i, n in enumerate(outputs, 1):
            if not isinstance(n, Node):
                raise TypeError(_expecting(n, 'outputs', i))
            outnode.add(n, True)
        for i, n in enumerate(inputs, 1):
            if not isinstance(n, Node):
                raise TypeError(_expecting(n, 'inputs', i))
        innode = Node({'input': []})
        if not inputs:
            raise ValueError('no inputs are not supported')
        if len(inputs) == 1:
            inputs[0].add(innode, True)
        else:
            splits = innode.split(len(inputs))
            for n in inputs:
                if length(n.children) != 0:
                    raise ValueError('an input should have no inputs')
            for n, s in zip(inputs, splits):
                n.add(s, True)

        self.bg = outnode.graph()
        self.fg = self.bg.reverse()[0]
        roots = self.fg.roots()
        if len(roots) != 1:
            raise ValueError('expecting only one start')
        self.innode = roots[0]
        if self.innode.data is not innode.data:
            raise ValueError('expecting the forward innode')
        self.outnode = outnode
        self.verbose = False
        self.nInputs = len(inputs)
        self.forwardnodes = self.fg.topsort()
        self.backwardnodes = self.bg.topsort()

        for i, node in enumerate(self.forwardnodes):
            d = node.data
            if d.get('nSplitOutputs') and d['nSplitOutputs'] != length(node.children):
                raise ValueError('%d of split(%d) outputs from the node declared at %s are unused'
                                 % (d['nSplitOutputs'] - length(node.children), d['nSplitOutputs'],
                                    d['annotations'].get('_debugLabel')))
            later = {id(n.data) for n in self.forwardnodes[i + 1:]}
            for succ in (d.get('reverseMap') or {}):
                if id(succ.data) not in later:
                    raise ValueError('node declared on %s does not connect to gmodule output'
                                     % succ.data['annotations'].get('_debugLabel'))
            d['forwardNodeId'] = node.id
            if d.get('module') is not None:
                self.add(d['module'])
        self.output = None
        self.gradInput = None
        if length(self.outnode.children) > 1:
            self.output = self.outnode.data['input']

    def add(self, module):
        if not isinstance(module, Module):
            raise TypeError('nn.gModule: a node holds %s, not an nn.Module' % type(module).__name__)
        self.modules.append(module)
        return self

    # Lua's gModule:read: older files without `modules`
    def read(self, file, version=None):
        if self.__dict__.get('modules') is None:
            self.modules = [n.data['module'] for n in self.forwardnodes if n.data.get('module') is not None]

    def __tostring__(self):
        return self.__dict__.get('name') or self.__typename__

    # --- forward --------------------------------------------------------------------
    def updateOutput(self, input):
        return self.runForwardFunction('updateOutput', input)

    def runForwardFunction(self, func, input):
        if isinstance(func, str):
            name = func
            func = lambda m, x: getattr(m, name)(x)  # noqa: E731
        nInputs = self.nInputs or length(self.innode.children)
        if nInputs <= 1:
            input = [input]
        elif not isinstance(input, list):
            self._fail('a table of %d inputs' % nInputs, input)
        if len(input) != nInputs:
            self._fail('%d inputs' % nInputs, input)
        for node in self.forwardnodes:
            _clear(node.data.get('input'))
        idata = self.innode.data
        if not isinstance(idata.get('input'), list):
            idata['input'] = []
        idata['input'].extend(input)

        for node in self.forwardnodes:
            d = node.data
            if d.get('selectindex') is not None:
                inp = d['input']
                if len(inp) != 1 or not isinstance(inp[0], list):
                    raise ValueError('the input for a split should be a table')
                self._propagate(node, inp[0][d['selectindex'] - 1])
            else:
                inp = d.get('input')
                if inp is None:
                    inp = []
                if len(inp) == 1:
                    inp = inp[0]
                if d.get('module') is None:
                    out = inp
                else:
                    out = func(d['module'], inp)
                n = d.get('nSplitOutputs')
                if n and (not isinstance(out, list) or n != len(out)):
                    raise ValueError('split(%s) cannot split %s outputs'
                                     % (n, len(out) if isinstance(out, list) else 'a tensor of'))
                self._propagate(node, out)
        out = self.outnode.data['input']
        if length(self.outnode.children) == 1:
            out = out[0]
        self.output = out
        return out

    @staticmethod
    def _propagate(node, x):
        for child in ipairs(node.children):
            cd = child.data
            if not isinstance(cd.get('input'), list):
                cd['input'] = []
            pos = lookup(cd['mapindex'], node.data)
            if pos - 1 < len(cd['input']) and cd['input'][pos - 1] is not None:
                raise ValueError('each input should have one source')
            set_index(cd['input'], pos, x)

    # --- backward -------------------------------------------------------------------
    def updateGradInput(self, input, gradOutput):
        nout = length(self.outnode.children)
        if nout > 1 and (not isinstance(gradOutput, list) or len(gradOutput) != nout):
            self._fail('a table of %d gradOutputs' % nout, gradOutput)
        for node in self.backwardnodes:
            _clear(node.data.get('gradOutput'))
        od = self.outnode.data
        if not isinstance(od.get('gradOutput'), list):
            od['gradOutput'] = []
        od['gradOutput'][:] = [gradOutput]

        for node in self.backwardnodes:
            d = node.data
            if d.get('selectindex') is not None:
                kids = ipairs(node.children)
                child = kids[0]
                go = _total_grad_output(node, self)
                cd = child.data
                if not isinstance(cd.get('gradOutput'), list):
                    cd['gradOutput'] = []
                if not cd['gradOutput']:
                    cd['gradOutput'].append([])
                set_index(cd['gradOutput'][0], d['selectindex'], go)
            else:
                go = _total_grad_output(node, self)
                if d.get('module') is None:
                    gi = go
                else:
                    inp = d.get('input')
                    if inp is None:
                        inp = []
                    if len(inp) == 1:
                        inp = inp[0]
                    gi = d['module'].updateGradInput(inp, go)
                kids = ipairs(node.children)
                for child in kids:
                    cd = child.data
                    if not isinstance(cd.get('gradOutput'), list):
                        cd['gradOutput'] = []
                    if len(kids) == 1:
                        g = gi
                    else:
                        g = gi[lookup(d['mapindex'], cd) - 1]
                    cd['gradOutput'].append(g)
        go = self.innode.data.get('gradOutput')
        if not isinstance(go, list) or len(go) != 1:
            raise ValueError('expecting the innode to be used only once')
        self.gradInput = go[0]
        return self.gradInput

    def accGradParameters(self, input, gradOutput, scale=1):
        nout = length(self.outnode.children)
        if nout > 1 and (not isinstance(gradOutput, list) or len(gradOutput) != nout):
            self._fail('a table of %d gradOutputs' % nout, gradOutput)
        for node in self.backwardnodes:
            d = node.data
            m = d.get('module')
            if m is None:
                continue
            gos = d['gradOutput']
            go = gos[0] if len(gos) <= 1 else d['gradOutputBuffer']
            inp = d.get('input')
            if inp is None:
                inp = []
            if len(inp) == 1:
                inp = inp[0]
            m.accGradParameters(inp, go, scale)

    # --- containers' protocol -------------------------------------------------------
    def replace(self, fn):
        out = fn(self)
        pos = {id(m): i for i, m in enumerate(self.modules)}
        for node in self.forwardnodes:
            m = node.data.get('module')
            if m is not None:
                node.data['module'] = m.replace(fn)
                if id(m) in pos:
                    self.modules[pos[id(m)]] = node.data['module']
        return out

    def map(self, gm, func):
        for i, node in enumerate(self.forwardnodes):
            other = gm.forwardnodes[i]
            if node.data.get('module') is not None:
                func(node.data['module'], other.data['module'])

    def type(self, name=None, tensorCache=None):
        if name is None:
            return self._type
        cache = {} if tensorCache is None else tensorCache
        super().type(name, cache)
        for node in list(self.forwardnodes) + list(self.backwardnodes):
            d = node.data
            for k in ('input', 'gradOutput', 'gradOutputBuffer'):
                if d.get(k) is not None:
                    d[k] = recursive_type(d[k], name, cache)
        return self

    def clearState(self):
        super().clearState()
        for node in self.backwardnodes:
            node.data.pop('gradOutput', None)
            node.data.pop('gradOutputBuffer', None)
        for node in self.forwardnodes:
            node.data.pop('input', None)
        return self
