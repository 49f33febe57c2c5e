"""Lua tables as torch.save writes them and pynn.load reads them.

nngraph and graph keep "mixed" tables: an array part (1..n) and a reverse map from each
element to its position (`t[#t+1] = v; t[v] = #t`). pynn keeps them in exactly that layout (a
dict with int keys 1..n and element keys), so files written by Lua run as loaded and files
written by pynn load in Lua. An element that is itself a table is keyed by `TableKey(table)`,
as pynn.load keys tables. A loaded empty table is a list: these helpers take both.
"""
from ..serialization import TableKey


def key(v):
    return TableKey(v) if isinstance(v, (dict, list)) else v


def ipairs(t):
    """The array part t[1], t[2], ... up to the first nil (Lua's ipairs)."""
    if t is None:
        return []
    if isinstance(t, list):
        out = []
        for v in t:
            if v is None:
                break
            out.append(v)
        return out
    out = []
    i = 1
    while True:
        v = t.get(i)
        if v is None:
            return out
        out.append(v)
        i += 1


def length(t):
    return len(ipairs(t))


def as_dict(t):
    """A list (a loaded empty table, or an array) as a dict with the same integer keys."""
    if isinstance(t, dict):
        return t
    return {i: v for i, v in enumerate(t or [], 1)}


def lookup(t, v):
    """t[v] for a mixed table (v an element): its position, or None."""
    if isinstance(t, list):
        return None
    return t.get(key(v))


def insert_mapped(t, v):
    """table.insert(t, v); t[v] = #t. Returns the (possibly new) dict."""
    t = as_dict(t)
    n = length(t) + 1
    t[n] = v
    t[key(v)] = n
    return t


def set_index(lst, i, v):
    """lst[i] = v (1-based) on a Python list, growing it with None as a Lua table grows."""
    while len(lst) < i:
        lst.append(None)
    lst[i - 1] = v
