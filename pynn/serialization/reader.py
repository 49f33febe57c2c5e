"""Building Python objects from the parser's nodes, and the reading API: load, loads."""
import gc
import mmap
import os
import warnings

from ..storage import Storage
from ..tensor import Tensor, _extent
from .objects import (_NAMES, Timer, _ReadObjects, _missing_class_text, T7FormatError, TorchObject,
                      UnknownModule, LuaFunction, TdsVec, TdsHash, TableKey, _Classes)
from .sources import _BinaryReader, _AsciiReader
from .parser import _Node, _Table, _Torch, _Func, _PLAIN_KEYS, _PENDING, _Parser
from .upgrades import _upgrade


# --- building: nodes -> Python objects ----------------------------------------------------------
def _val(x):
    return x.obj if isinstance(x, _Node) else x


def _is_list(keys):
    """Keys exactly 1..n (in any order): the table loads as a list."""
    n = len(keys)
    if not n:
        return True
    if set(map(type, keys)) != {int}:
        return False
    return min(keys) == 1 and max(keys) == n and len(set(keys)) == n


def _looks_like_module(name, payload):
    if name.startswith(('nn.', 'cudnn.', 'cunn.', 'nngraph.')):
        return True
    if isinstance(payload, _Table):
        return 'output' in payload.keys or 'gradInput' in payload.keys
    return False


def _str_keyed(keys):
    return all(isinstance(k, str) for k in keys)


class _Builder:
    def __init__(self, nodes):
        self.nodes = nodes
        self.classes = _Classes()
        self.class_of = {}   # Lua class name -> pynn class (None: not known)
        self.warned = set()

    def build(self, root):
        """Make every object empty first (so that references and cycles resolve), then fill
        tables, tensors, objects, then upgrade old fields. One pass sorts the nodes by kind."""
        tables, tensors, objects = [], [], []
        shell = self._shell
        for node in self.nodes:
            t = type(node)
            if t is _Table:
                node.obj = [] if _is_list(node.keys) else {}
                tables.append(node)
                continue
            shell(node)
            if t is _Func or node.what in ('tds.Vec', 'tds.Hash'):
                tables.append(node)
            elif node.what == 'tensor':
                tensors.append(node)
            elif node.what == 'object':
                objects.append(node)
        fill_table = self._fill_table
        for node in tables:
            if type(node) is _Table:
                fill_table(node)
            elif type(node) is _Func:
                node.obj.upvalues = _val(node.upvalues)
            else:
                self._fill_tds(node)
        fill_tensor = self._fill_tensor
        for node in tensors:
            fill_tensor(node)
        fill_object = self._fill_object
        known = [node for node in objects if fill_object(node)]
        for node in known:
            _upgrade(node)
        return _val(root)

    def _shell(self, node):
        if isinstance(node, _Table):
            node.obj = [] if _is_list(node.keys) else {}
        elif isinstance(node, _Func):
            node.obj = LuaFunction(node.code, None, node.tag)
        elif node.what == 'storage':
            node.obj = Storage(data=node.payload, dtype=node.payload.dtype, device='cpu')
        elif node.what == 'tensor':
            node.obj = Tensor(kind=node.kind, device='cpu')
        elif node.what == 'tds.Vec':
            node.obj = TdsVec()
        elif node.what == 'tds.Hash':
            node.obj = TdsHash()
        elif node.what == 'timer':
            node.obj = Timer()
        else:
            cls = self.class_of.get(node.name, _PENDING)
            if cls is _PENDING:
                cls = self.class_of[node.name] = self.classes.get(node.name)
            payload = node.payload
            if cls is not None:
                try:
                    node.obj = cls.__new__(cls)
                except Exception as e:  # a class that cannot be made empty
                    raise T7FormatError('cannot make an instance of %s: %s' % (node.name, e), node.offset) from None
            elif _looks_like_module(node.name, payload) and (
                    not isinstance(payload, _Table) or _str_keyed(payload.keys)):
                node.obj = UnknownModule.__new__(UnknownModule)
                if node.name not in self.warned:
                    self.warned.add(node.name)
                    warnings.warn('pynn.load: %s; it loads as an inert object whose fields and '
                                  'tensors are reachable, and raises if run'
                                  % _missing_class_text(node.name), stacklevel=5)   # at the load call
            else:
                node.obj = TorchObject.__new__(TorchObject)

    def _fill_table(self, node):
        obj, keys = node.obj, node.keys
        vals = [v.obj if isinstance(v, _Node) else v for v in node.vals]
        if type(obj) is list:
            if keys != sorted(keys):
                vals = [v for _, v in sorted(zip(keys, vals), key=lambda kv: kv[0])]
            obj.extend(vals)
            return
        ktypes = set(map(type, keys))
        if _Table not in ktypes:   # no Lua table as a key (those need TableKey): at C speed
            if _Torch in ktypes or _Func in ktypes:   # objects as keys (nngraph's node maps)
                keys = [k.obj if isinstance(k, _Node) else k for k in keys]
            if ktypes <= _PLAIN_KEYS or not any(issubclass(t, (list, dict))
                                                for t in set(map(type, keys))):
                obj.update(zip(keys, vals))
                if len(obj) == len(keys):
                    return
                obj.clear()   # a key twice (Lua's true and 1): the general loop below names it
            keys = node.keys
        for k, v in zip(keys, vals):
            key = _key(_val(k))
            if key in obj:
                raise T7FormatError('table has the key %r twice (Lua true/1 and false/0 cannot both be '
                                    'keys of one table in pynn)' % (key,), node.offset)
            obj[key] = v

    def _fill_tds(self, node):
        items = [_val(x) for x in node.payload]
        if node.what == 'tds.Vec':
            node.obj.extend(items)
            return
        for i in range(0, len(items), 2):
            key = _key(items[i])
            if key is None:
                raise T7FormatError('tds.Hash key is nil', node.offset)
            node.obj[key] = items[i + 1]

    def _fill_tensor(self, node):
        t, size, stride, off = node.obj, node.size, node.stride, node.soffset
        st = _val(node.payload)
        where = node.offset
        if min(size, default=0) < 0 or min(stride, default=0) < 0 or off < 0:
            raise T7FormatError('%s with a negative size, stride or offset (size %s, stride %s, offset %d)'
                                % (node.name, size, stride, off + 1), where)
        if st is None:
            n = 1
            for s in size:
                n *= s
            if size and n:
                raise T7FormatError('%s of %d elements has no storage' % (node.name, n), where)
            t._size, t._stride, t._offset = size, stride, off
            return
        want = _NAMES[('storage', node.kind, node.device)]
        pnode = node.payload
        if not isinstance(st, Storage) or not isinstance(pnode, _Torch) or pnode.name != want:
            raise T7FormatError('%s has a storage of type %s, expected %s'
                                % (node.name, getattr(pnode, 'name', type(st).__name__), want), where)
        if off + _extent(size, stride) > st.size():
            raise T7FormatError('%s view (offset %d, size %s, stride %s) does not fit its storage of %d '
                                'elements' % (node.name, off + 1, size, stride, st.size()), where)
        # checked above: the storage's type is the tensor's, the view fits
        t._storage, t._offset, t._size, t._stride = st, off, size, stride

    def _fill_object(self, node):
        """Fill a torch object's fields; True when it is an instance of a pynn class."""
        obj = node.obj
        multi = getattr(node, 'multi', None)
        if multi is not None and not isinstance(obj, (TorchObject, UnknownModule)):
            obj.read(_ReadObjects([_val(x) for x in multi]), node.version)
            return True
        fields = _val(node.payload)
        if isinstance(fields, list) and not fields:
            fields = {}
        named = isinstance(fields, dict) and set(map(type, fields)) <= {str}
        if named and '\x00_pynn' in '\x00' + '\x00'.join(fields):   # the test at C speed
            bad = [k for k in fields if k.startswith('_pynn')]
            if bad:
                raise T7FormatError('%s has a field named %r: names starting with _pynn are reserved'
                                    % (node.name, bad[0]), node.offset)
        if isinstance(obj, (TorchObject, UnknownModule)):
            obj.__dict__['_pynn_typename'] = node.name
            obj.__dict__['_pynn_version'] = node.version
            if named:
                obj.__dict__.update(fields)
            else:
                obj.__dict__['_pynn_payload'] = fields
            return False
        if not named:
            raise T7FormatError('%s: its fields are not a table of named fields (got %s)'
                                % (node.name, type(fields).__name__), node.offset)
        obj.__dict__.update(fields)
        return True


def _key(k):
    if isinstance(k, (list, dict)):
        return TableKey(k)
    return k


# --- reading: public API ------------------------------------------------------------------------
def _detect_mode(data):
    """A binary file starts with a type tag 0..8 as a little-endian int32: bytes 0x00..0x08;
    an ascii file with the tag as text."""
    if data[:1].isdigit() or (data[:1] in (b'+', b'-', b' ', b'\t', b'\n', b'\r', b'\v', b'\f')
                              and b'\x00' not in data[:4]):
        return 'ascii'
    return 'binary'


def loads(data, mode='auto', allow_functions=False):
    """Load one object from the bytes of a .t7 file. See `load`."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError('loads expects bytes, got %s' % type(data).__name__)
    return _load_buffer(bytes(data), mode, allow_functions)


def _load_buffer(data, mode, allow_functions, fd=None):
    """data: bytes or an mmap (arrays are copied out of it, never kept as views); fd: the
    file's descriptor when data maps a whole file (large arrays are then read from it)."""
    if mode == 'auto':
        mode = _detect_mode(data)
    if mode in ('binary', 'b64'):
        reader = _BinaryReader(data, 8)
    elif mode == 'b32':
        reader = _BinaryReader(data, 4)
    if mode in ('binary', 'b64', 'b32') and hasattr(os, 'preadv'):
        reader.fd = fd
    elif mode == 'ascii':
        reader = _AsciiReader(data)
    else:
        raise ValueError("mode must be 'auto', 'binary', 'b64', 'b32' or 'ascii', got %r" % (mode,))
    # The collector would walk the growing graph of small objects again and again while
    # nothing can be garbage yet (a 23,000-object network loads 1.5x faster without it).
    collecting = gc.isenabled()
    gc.disable()
    try:
        parser = _Parser(reader, allow_functions)
        root = parser.parse()
        reader.check_end()
        return _Builder(parser.nodes).build(root)
    finally:
        if collecting:
            gc.enable()


def load(path_or_file, mode='auto', allow_functions=False):
    """Load a file written by Lua Torch's torch.save (or by pynn.save).

    path_or_file: a path, or a binary file object (anything with .read()).
    mode: 'auto' (ascii when the file starts with a digit, else binary), 'binary' (= 'b64':
        8-byte longs, Linux x86_64), 'b32' (4-byte longs) or 'ascii'.
    allow_functions: serialized Lua functions are refused by default (T7FunctionError), since
        a model from an untrusted source has no business holding code. True loads them as
        inert LuaFunction objects (bytecode kept as bytes). pynn never runs them either way.

    Raises T7FormatError (with the byte offset) for anything malformed or unsupported.
    """
    if isinstance(path_or_file, (str, os.PathLike)):
        with open(path_or_file, 'rb') as f:
            if os.fstat(f.fileno()).st_size == 0:
                return loads(b'', mode=mode, allow_functions=allow_functions)
            mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)   # no second copy of big files
            try:
                return _load_buffer(mm, mode, allow_functions, f.fileno())
            finally:
                try:
                    mm.close()
                except BufferError:   # a view still alive (only after an error): the GC closes it
                    pass
    if hasattr(path_or_file, 'read'):
        data = path_or_file.read()
        if isinstance(data, str):
            raise TypeError('load needs a file opened in binary mode (rb)')
    else:
        raise TypeError('load expects a path or a binary file object, got %s' % type(path_or_file).__name__)
    return loads(data, mode=mode, allow_functions=allow_functions)
