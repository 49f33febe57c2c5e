"""The .t7 parser: file bytes -> nodes (one per file object, references resolved)."""
import math
import struct

from .objects import (TYPE_NIL, TYPE_NUMBER, TYPE_STRING, TYPE_TABLE, TYPE_TORCH, TYPE_BOOLEAN,
                      TYPE_FUNCTION, LEGACY_TYPE_RECUR_FUNCTION, TYPE_RECUR_FUNCTION, MAX_DEPTH,
                      MAX_DIMS, TYPES, _UNREADABLE, _lua_objects, _CLASS_NAME, T7FormatError,
                      T7FunctionError, _Classes)
from .sources import _I32, _I64, _F64, _BinaryReader


# --- parsing: file bytes -> nodes ---------------------------------------------------------------
class _Node:
    __slots__ = ('offset', 'obj')


class _Table(_Node):
    __slots__ = ('keys', 'vals')


class _Torch(_Node):
    __slots__ = ('name', 'version', 'what', 'kind', 'device', 'size', 'stride', 'soffset', 'payload', 'multi')


class _Func(_Node):
    __slots__ = ('tag', 'code', 'upvalues')


_PLAIN_KEYS = frozenset((str, int, float, bool, bytes))


_INT_LIMIT = 2.0 ** 53   # beyond it doubles no longer hold every integer


def _number(x):
    if x.is_integer() and abs(x) <= _INT_LIMIT and not (x == 0 and math.copysign(1.0, x) < 0):
        return int(x)
    return x


def _string(b):
    try:
        return b.decode('utf-8')
    except UnicodeDecodeError:
        return b


_LONGS = [struct.Struct('<%dq' % (2 * n + 1)) for n in range(MAX_DIMS + 1)]   # sizes, strides, offset


_PENDING = object()


class _Fallback(Exception):
    """The fast binary reader met something irregular: the careful reader reads the file
    again and reports exactly what and where."""


_NONE_TYPE = type(None)


def _table_done(node, vals):
    """A table's flat key, value, key, value... list -> node.keys, node.vals; None when a key
    is nil or NaN (the caller reports it)."""
    keys = vals[0::2]
    types = set(map(type, keys))
    if _NONE_TYPE in types or (float in types and any(k != k for k in keys if type(k) is float)):
        return None
    node.keys, node.vals = keys, vals[1::2]
    return node


def _finish(node, vals):
    """Hand a node the child objects it waited for (see _Parser._open)."""
    if isinstance(node, _Torch):
        if node.what == 'tensor':
            node.payload = vals[0]
        elif node.what == 'object' and node.multi is not None:
            node.multi, node.payload = vals, None
        elif node.what == 'object':
            node.payload = vals[0]
        else:   # tds.Vec / tds.Hash
            node.payload = vals
    else:       # a function: its upvalues
        node.upvalues = vals[0]
    return node


class _Parser:
    def __init__(self, reader, allow_functions):
        self.r = reader
        self.allow_functions = allow_functions
        self.objects = []   # objects[i - 1]: the node with reference index i
        self.nodes = []     # every node, referenced or not, in file order
        self.classes = None
        self.lua_objects = {}   # class name -> how many objects its Lua write emits, by version
        self.heads = {}         # (version bytes, name bytes) -> what _torch_head made of them

    def parse(self):
        """Read one object. Binary files take the fast loop; on anything irregular (or for
        ascii files) the careful reader reads it and names what is wrong and where."""
        if isinstance(self.r, _BinaryReader):
            start = self.r.pos
            try:
                return self._parse_fast()
            except (_Fallback, struct.error):
                self.r.pos = start
                self.objects, self.nodes, self.classes = [], [], None
        return self._parse_careful()

    def _parse_fast(self):
        """Binary files, without Python recursion or a generator per object: one loop over
        the values in file order with an explicit stack of the objects still waiting for
        children ([node, number of children, children so far]). Irregular input raises
        _Fallback (or struct.error past the end) and the careful reader takes over."""
        r = self.r
        data, end, pos = r.data, r.end, r.pos
        i32, f64 = _I32.unpack_from, _F64.unpack_from
        objects, nodes = self.objects, self.nodes
        nobj = len(objects)
        strings = {}
        # the object being filled (top: None for the root's slot), how many children it
        # takes and has; the frames of its waiting ancestors on the stack
        top, need, vals = None, 1, []
        stack = []
        while True:
            tag, = i32(data, pos)
            if tag == TYPE_STRING:
                n, = i32(data, pos + 4)
                pos += 8
                if n < 0 or n > end - pos:
                    raise _Fallback
                raw = data[pos:pos + n]
                pos += n
                value = strings.get(raw)
                if value is None:   # field names repeat: one str each (its hash made once)
                    try:
                        value = raw.decode('utf-8')
                    except UnicodeDecodeError:
                        value = raw
                    if n <= 64:
                        strings[raw] = value
            elif tag == TYPE_NUMBER:
                value, = f64(data, pos + 4)
                pos += 12
                if value.is_integer() and -_INT_LIMIT <= value <= _INT_LIMIT and (
                        value or math.copysign(1.0, value) > 0):
                    value = int(value)
            elif tag == TYPE_TABLE or tag == TYPE_TORCH or tag == TYPE_RECUR_FUNCTION \
                    or tag == LEGACY_TYPE_RECUR_FUNCTION:
                index, = i32(data, pos + 4)
                if 0 < index <= nobj:
                    value = objects[index - 1]
                    pos += 8
                elif index != nobj + 1:
                    raise _Fallback
                elif tag == TYPE_TABLE:
                    n, = i32(data, pos + 8)
                    node = _Table()
                    node.offset = pos
                    pos += 12
                    objects.append(node)
                    nodes.append(node)
                    nobj += 1
                    if n < 0 or 8 * n > end - pos:
                        raise _Fallback
                    if n:
                        if len(stack) >= MAX_DEPTH:
                            raise _Fallback
                        stack.append((top, need, vals))
                        top, need, vals = node, 2 * n, []
                        continue
                    node.keys, node.vals = [], []
                    value = node
                else:
                    r.pos = pos + 8
                    node, n = (self._torch_fast(pos) if tag == TYPE_TORCH
                                else self._function(tag, pos, True))
                    pos = r.pos
                    nobj += 1
                    if n:
                        if len(stack) >= MAX_DEPTH:
                            raise _Fallback
                        stack.append((top, need, vals))
                        top, need, vals = node, n, []
                        continue
                    value = node
            elif tag == TYPE_NIL:
                value = None
                pos += 4
            elif tag == TYPE_BOOLEAN:
                value, = i32(data, pos + 4)
                value = value == 1
                pos += 8
            elif tag == TYPE_FUNCTION:   # legacy, not referenced: no index
                r.pos = pos + 4
                node, n = self._function(tag, pos, False)
                pos = r.pos
                if len(stack) >= MAX_DEPTH:
                    raise _Fallback
                stack.append((top, need, vals))
                top, need, vals = node, n, []
                continue
            else:
                raise _Fallback
            vals.append(value)   # hand the value to the object waiting for it
            while len(vals) == need:   # which is complete: hand it to its own parent
                if top is None:
                    r.pos = pos
                    return value
                if type(top) is _Table:
                    if _table_done(top, vals) is None:
                        raise _Fallback
                    value = top
                else:
                    value = _finish(top, vals)
                top, need, vals = stack.pop()
                vals.append(value)

    def _parse_careful(self):
        """Read one object without Python recursion: each _object() is a generator that
        yields when it needs a child object and receives it back."""
        stack = [self._object()]
        value = None
        while True:
            try:
                stack[-1].send(value)
            except StopIteration as stop:
                stack.pop()
                value = stop.value
                if not stack:
                    return value
                continue
            if len(stack) >= MAX_DEPTH:
                raise T7FormatError('objects nested more than %d deep' % MAX_DEPTH, self.r.pos)
            stack.append(self._object())
            value = None

    def _string_field(self, what):
        n = self.r.int(what + ' length')
        if n < 0:
            raise T7FormatError('negative %s length %d' % (what, n), self.r.pos - 4)
        return self.r.raw(n, what)

    def _object(self):
        r = self.r
        start = r.pos
        tag = r.int('type tag')
        if tag == TYPE_NIL:
            return None
        if tag == TYPE_NUMBER:
            return _number(r.double('number'))
        if tag == TYPE_BOOLEAN:
            return r.int('boolean') == 1
        if tag == TYPE_STRING:
            return _string(self._string_field('string'))
        if tag == TYPE_FUNCTION:   # legacy, not referenced: no index
            node, _ = self._function(tag, start, False)
            return _finish(node, [(yield)])
        if tag not in (TYPE_TABLE, TYPE_TORCH, TYPE_RECUR_FUNCTION, LEGACY_TYPE_RECUR_FUNCTION):
            raise T7FormatError('unknown type tag %d' % tag, start)
        ipos = r.pos
        index = r.int('reference index')
        if 1 <= index <= len(self.objects):
            return self.objects[index - 1]
        if index != len(self.objects) + 1:
            raise T7FormatError('reference index %d points to no object (%d objects read so far)'
                                % (index, len(self.objects)), ipos)
        if tag == TYPE_TABLE:
            node = _Table()
            node.offset = start
            self.objects.append(node)
            self.nodes.append(node)
            n = r.int('table size')
            if n < 0:
                raise T7FormatError('negative table size %d' % n, r.pos - 4)
            r.need(2 * n * r.min_object, 'a table of %d entries' % n)
            vals = []
            for _ in range(n):
                kpos = r.pos
                k = yield
                if k is None:
                    raise T7FormatError('table key is nil', kpos)
                if isinstance(k, float) and k != k:
                    raise T7FormatError('table key is NaN', kpos)
                vals.append(k)
                vals.append((yield))
            return _table_done(node, vals)
        if tag == TYPE_TORCH:
            node, need = self._torch_head(start)
        else:
            node, need = self._function(tag, start, True)
        if not need:
            return node
        vals = []
        for _ in range(need):
            vals.append((yield))
        return _finish(node, vals)

    def _function(self, tag, start, referenced):
        """A function's head (its bytecode); its upvalues follow as one child object."""
        if not self.allow_functions:
            raise T7FunctionError(
                'the file holds a serialized Lua function (bytecode); pynn never runs code from a '
                'file and refuses functions by default: pass allow_functions=True to load them as '
                'inert pynn.serialization.LuaFunction objects', start)
        node = _Func()
        node.offset = start
        node.tag = tag
        n = self.r.int('function size')
        if n < 0:
            raise T7FormatError('negative function size %d' % n, self.r.pos - 4)
        node.code = self.r.raw(n, 'function bytecode')
        if referenced:
            self.objects.append(node)
        self.nodes.append(node)
        return node, 1

    def _torch_fast(self, start):
        """_torch_head for a tensor, storage or object whose version and class name were seen
        before: read in place (most objects of a network file); else _torch_head."""
        r = self.r
        data, pos = r.data, r.pos
        i32 = _I32.unpack_from
        n, = i32(data, pos)
        head = data[pos + 4:pos + 4 + n]
        if r.long_size != 8 or not head.startswith(b'V '):
            return self._torch_head(start)
        p = pos + 4 + n
        m, = i32(data, p)
        name = data[p + 4:p + 4 + m]
        seen = self.heads.get((head, name))
        if seen is None or m < 0 or n < 0:
            node, need = self._torch_head(start)
            if node.what in ('tensor', 'object', 'storage') and node.multi is None:
                self.heads[head, name] = (node.name, node.version, node.what, getattr(node, 'kind', None),
                                          getattr(node, 'device', None))
            return node, need
        p += 4 + m
        node = _Torch()
        node.offset = start
        node.multi = None
        node.name, node.version, what, node.kind, node.device = seen
        node.what = what
        self.objects.append(node)
        self.nodes.append(node)
        if what == 'object':
            r.pos = p
            return node, 1
        if what == 'storage':
            n, = _I64.unpack_from(data, p)
            if n < 0:
                raise _Fallback
            r.pos = p + 8
            try:
                node.payload = r.array(node.kind, n, 'a storage')
            except T7FormatError:   # the careful reader says it with the storage's type
                raise _Fallback from None
            return node, 0
        ndim, = i32(data, p)
        if not 0 <= ndim <= MAX_DIMS:
            raise _Fallback
        longs = _LONGS[ndim]
        vals = longs.unpack_from(data, p + 4)
        node.size, node.stride = vals[:ndim], vals[ndim:2 * ndim]
        node.soffset = vals[-1] - 1
        r.pos = p + 4 + longs.size
        return node, 1

    def _torch_head(self, start):
        """A torch object up to its children (reader after the reference index): the node,
        registered, and how many child objects it takes (_finish hands them over)."""
        r = self.r
        node = _Torch()
        node.offset = start
        node.multi = None
        self.objects.append(node)
        self.nodes.append(node)
        vpos = r.pos
        head = self._string_field('version string')
        if head.startswith(b'V '):
            try:
                version = float(head[2:].decode('ascii'))
                if not math.isfinite(version):
                    raise ValueError
            except (UnicodeDecodeError, ValueError):
                raise T7FormatError('bad version string %r' % head[:40], vpos) from None
            version = _number(version)
            npos = r.pos
            name = self._string_field('class name')
        else:   # written before versions existed: the class name comes first
            version, npos, name = 0, vpos, head
        try:
            name = name.decode('ascii')
            if not _CLASS_NAME.match(name):
                raise ValueError
        except (UnicodeDecodeError, ValueError):
            raise T7FormatError('bad version string or class name %r' % name[:40], npos) from None
        node.name, node.version = name, version
        spec = TYPES.get(name)
        if spec is not None:
            node.what, node.kind, node.device = spec
            if node.what == 'storage':
                n = r.long('storage size')
                if n < 0:
                    raise T7FormatError('negative storage size %d' % n, r.pos - r.long_size)
                node.payload = r.array(node.kind, n, '%s of %d elements' % (name, n))
                return node, 0
            dpos = r.pos
            ndim = r.int('tensor dimension count')
            if not 0 <= ndim <= MAX_DIMS:
                raise T7FormatError('tensor with %d dimensions (0..%d supported)' % (ndim, MAX_DIMS), dpos)
            r.need((2 * ndim + 1) * r.long_size, 'tensor sizes and strides')
            node.size = tuple(r.longs(ndim, 'tensor sizes'))
            node.stride = tuple(r.longs(ndim, 'tensor strides'))
            node.soffset = r.long('tensor storage offset') - 1
            return node, 1
        if name in _UNREADABLE or (name.startswith('torch.') and name.endswith(('Tensor', 'Storage'))):
            raise T7FormatError('unsupported Torch type %r' % name, npos)
        if name in ('tds.Vec', 'tds.Hash'):
            node.what = name
            spos = r.pos
            n = r.long(name + ' size')
            if n < 0:
                raise T7FormatError('negative %s size %d' % (name, n), spos)
            per = 1 if name == 'tds.Vec' else 2
            r.need(per * n * r.min_object, 'a %s of %d elements' % (name, n))
            node.payload = []
            return node, per * n
        if name == 'torch.Timer':   # Lua nn's dummy serialization: nothing after the name
            node.what = 'timer'
            node.payload = None
            return node, 0
        node.what = 'object'
        n = self.lua_objects.get((name, version))
        if n is None:
            if self.classes is None:
                self.classes = _Classes()
            n = self.lua_objects[name, version] = _lua_objects(self.classes.get(name), version)
        if n != 1:   # a class whose Lua write emits several objects (nn.GPU: header, fields)
            node.multi = []
            node.payload = None
            return node, n
        return node, 1
