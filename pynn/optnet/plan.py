"""Assignment strategies: which tensors share which storage.

`assign_optnet` is the original optnet's greedy strategy, kept byte-for-byte faithful:
rows sorted by last use with Lua's own (unstable) table.sort, so ties fall where they
fell in Lua, then each row joins the compatible group whose current largest member is
closest in size.
"""
from .trace import K_NOT_USED, K_MIN_FOR_SHARING


def lua_sort(a, less):
    """Sort list `a` in place exactly as Lua 5.1 / LuaJIT's table.sort (same tie order)."""
    def lt(x, y):
        return less(x, y)

    def aux(lo, up):  # 0-based inclusive bounds
        while lo < up:
            if lt(a[up], a[lo]):
                a[lo], a[up] = a[up], a[lo]
            if up - lo == 1:
                break
            i = (lo + up + 2) // 2 - 1  # Lua's (l+u)/2 on 1-based indices
            if lt(a[i], a[lo]):
                a[i], a[lo] = a[lo], a[i]
            elif lt(a[up], a[i]):
                a[i], a[up] = a[up], a[i]
            if up - lo == 2:
                break
            p = a[i]
            a[i], a[up - 1] = a[up - 1], a[i]
            i, j = lo, up - 1
            while True:
                i += 1
                while lt(a[i], p):
                    if i > up:
                        raise ValueError('invalid order function for sorting')
                    i += 1
                j -= 1
                while lt(p, a[j]):
                    if j < lo:
                        raise ValueError('invalid order function for sorting')
                    j -= 1
                if j < i:
                    break
                a[i], a[j] = a[j], a[i]
            a[up - 1], a[i] = a[i], a[up - 1]
            if i - lo < up - i:
                j, i, lo = lo, i - 1, i + 1
            else:
                j, i, up = i + 1, up, i - 1
            aux(j, i)

    aux(0, len(a) - 1)
    return a


class Group(list):
    """Rows that will share one storage; `max_size` is its largest member's element count."""
    max_size = 0


def _compatible(row, group):
    if row.used == K_NOT_USED or row.tensor.nElement() < K_MIN_FOR_SHARING:
        return False
    return row.defined > group[-1].used


def assign_optnet(rows):
    """The original's greedy assignment; returns a list of Groups."""
    lua_sort(rows, lambda x, y: x.used < y.used)
    groups = []
    for row in rows:
        size = row.tensor.nElement()
        best, best_dist = None, float('inf')
        for g in groups:
            if _compatible(row, g):
                dist = abs(g.max_size - size)
                if dist < best_dist:
                    best, best_dist = g, dist
        if best is None:
            best = Group()
            groups.append(best)
        best.append(row)
        best.max_size = max(best.max_size, size)
    return groups

