"""Torch7's serialization format (.t7 files): `pynn.load` and `pynn.save`.

Reads what Lua Torch's `torch.save` writes (binary, little-endian, 8-byte longs as on
x86_64 Linux; 'b32' files with 4-byte longs on request; ascii files too) and writes
binary (or ascii) files that Lua Torch's `torch.load` reads.

How Lua values map to Python
----------------------------
=====================  ==============================================================
Lua                    pynn
=====================  ==============================================================
nil                    None
number                 int when the double is integral with |x| <= 2^53 (and not -0.0),
                       else float. Python ints and floats are written as doubles; an
                       int a double cannot hold exactly is refused (ValueError).
boolean                bool
string                 str when the bytes are valid UTF-8, else bytes (Lua strings are
                       bytes). str is written as UTF-8, bytes as they are.
table, keys 1..n       list (the empty table too: it loads as []).
other table            dict. A table used as a key loads wrapped in `TableKey`. A dict
                       whose keys are exactly 1..n, or an empty dict, saves as a table
                       that loads as a list. Tuples save as tables (load as lists).
torch.*Tensor          pynn.Tensor of the same element type, sharing its Storage object
                       with every other tensor that shared it in the file. CUDA types
                       (torch.CudaTensor, torch.CudaDoubleTensor, ...) load onto the CPU
                       with the same element type (CudaTensor -> FloatTensor); modules'
                       `_type` field is renamed alike. A Lua empty tensor (no storage)
                       loads as pynn's empty tensor and saves back as one.
torch.*Storage         pynn.Storage (LongStorage fields such as nn.Concat.outputSize
                       are int64 Storages).
nn.X, known to pynn    an instance of `pynn.nn.registry()['nn.X']`, made without calling
                       its constructor, whose __dict__ is the file's fields. Fields older
                       nn versions wrote differently are then upgraded as Lua nn's own
                       back-compatibility code does: by the class's `read(file, version)`
                       hook when it has one (Lua's read metamethod; file is None), else
                       by `UPGRADES` (SpatialConvolution's 2-D weight and `padding`,
                       BatchNormalization's running_std of version 1, pooling's ceil_mode
                       and padding, Dropout v1, ...).
torch.Timer            `Timer` (nn.Profile holds one): Lua nn writes it as its class name
                       only and reads a fresh timer; so does pynn.
nn.GPU, nn.WeightNorm  classes with their own Lua write: `write(file)` gets a file whose
                       writeObject queues what follows the class name (nn.WeightNorm: its
                       fields without weight and gradWeight). Where Lua writes several
                       objects (`__t7_objects__`; nn.GPU: a header {_type, device}, then the
                       fields), `read(file, version)` gets a file whose readObject returns
                       them in order.
other torch class      `UnknownModule` (looks like an nn module: named nn.* / cudnn.*, or
                       has output/gradInput fields) or `TorchObject`: keeps its class
                       name (`torch_typename()`, `__typename__`), version and fields, and
                       saves back unchanged. Running an UnknownModule raises
                       NotImplementedError naming the class.
tds.Vec / tds.Hash     `TdsVec` (a list) / `TdsHash` (a dict), saved back as tds objects.
Lua function           refused by default (`T7FunctionError`); with allow_functions=True
                       an inert `LuaFunction` holding the bytecode and upvalues as bytes
                       and data. pynn never runs Lua code, whatever the option.
=====================  ==============================================================

Shared references and cycles in the file are kept: one Python object per referenced file
object. Saving writes each Python object (list, dict, tensor, storage, module) once and
refers back to it after that, as Lua's File:writeObject does; tuples are written afresh
every time (small tuples are shared by Python for no reason of the program's).

Modules are written as their class name (`__typename__`) and version ('V 2' for the batch
normalizations, as Lua's `__version`; see `LUA_VERSIONS`, else the class's own `__version__`,
else 1) with their fields: the module's __dict__ minus keys starting with '_pynn' (pynn's
private book-keeping). A None field is written as an explicit nil entry (Lua ignores it;
pynn gets the attribute back). A file re-saved after loading is byte for byte the file Lua
wrote (checked on every reference file).

Limitation: a Lua table with both `true` and `1` (or `false` and `0`) as keys cannot be a
Python dict; such a file raises T7FormatError.

Safety: files from strangers
----------------------------
Loading runs no code from the file: classes are looked up in pynn's registry and filled
with data. Every count in the file (string and table lengths, storage sizes, tensor
dimensions) is checked against the bytes that remain before anything is allocated, so a
header that claims a huge storage fails at once. Truncated or malformed files, unknown type
tags, bad version strings, unsupported Torch classes, tensors whose view does not fit their
storage and reference indices that point to no object (a new object must carry the next
index, as every Lua writer numbers them) raise `T7FormatError`, which gives the byte offset. Nesting is handled without Python recursion (up to MAX_DEPTH levels).

Saving refuses (ValueError, before anything is written) a network that optnet's
optimizeMemory changed (the root's `__memoryOptimized` flag, or any module with backward
or getParameters disabled): call `pynn.optnet.removeOptimization(net)` first.

Layout: `objects` (type tags and names, the stand-in objects, Lua class lookup), `sources`
(binary and ascii byte readers), `parser` (bytes -> nodes), `reader` (nodes -> objects; load,
loads), `upgrades` (older nn versions' fields), `writer` (save, dumps).
"""
from .objects import (TYPE_NIL, TYPE_NUMBER, TYPE_STRING, TYPE_TABLE, TYPE_TORCH,  # noqa: F401
                      TYPE_BOOLEAN, TYPE_FUNCTION, LEGACY_TYPE_RECUR_FUNCTION,
                      TYPE_RECUR_FUNCTION, MAX_DEPTH, MAX_DIMS, TYPES, LUA_VERSIONS, Timer,
                      T7FormatError, T7FunctionError, TorchObject, UnknownModule, LuaFunction,
                      TdsVec, TdsHash, TableKey, lua_package, registerClass, _REGISTERED)
from .parser import _Parser, _Fallback  # noqa: F401
from .upgrades import UPGRADES  # noqa: F401
from .reader import load, loads  # noqa: F401
from .writer import save, dumps  # noqa: F401

__all__ = ['load', 'save', 'loads', 'dumps', 'T7FormatError', 'T7FunctionError', 'TorchObject',
           'UnknownModule', 'LuaFunction', 'TdsVec', 'TdsHash', 'TableKey', 'TYPES', 'UPGRADES',
           'Timer', 'registerClass', 'lua_package']
