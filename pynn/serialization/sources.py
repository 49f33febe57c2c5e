"""Byte sources of the .t7 reader: binary (8- or 4-byte longs) and ascii files."""
import os
import re
import struct
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .. import backend
from .objects import T7FormatError


# --- byte sources ----------------------------------------------------------------------------------
_I32 = struct.Struct('<i')
_I64 = struct.Struct('<q')
_F64 = struct.Struct('<d')


_PREAD_MIN = 1 << 20   # bytes: storages at least this large are read with preadv
_PREAD_PART = 32 << 20   # bytes per thread when one storage is read by several
_PREAD_THREADS = min(4, os.cpu_count() or 1)


def _pread_into(fd, view, lo, hi, offset, what):
    """Bytes lo..hi of the array `view` from the file at offset + lo."""
    done = lo
    while done < hi:
        got = os.preadv(fd, [view[done:hi]], offset + done)
        if got <= 0:
            raise T7FormatError('the file ended inside %s' % what, offset + done)
        done += got


class _BinaryReader:
    def __init__(self, data, long_size=8):
        self.data = data
        self.pos = 0
        self.end = len(data)
        self.long = self._long8 if long_size == 8 else self.int
        self.long_size = long_size
        self.min_object = 4      # the smallest object (nil) takes one int

    def need(self, nbytes, what):
        left = self.end - self.pos
        if nbytes > left:
            raise T7FormatError('file ends early: %s needs %d bytes but only %d remain'
                                % (what, nbytes, left), self.pos)

    def _unpack(self, st, what):
        self.need(st.size, what)
        v = st.unpack_from(self.data, self.pos)[0]
        self.pos += st.size
        return v

    def int(self, what):
        return self._unpack(_I32, what)

    def _long8(self, what):
        return self._unpack(_I64, what)

    def longs(self, n, what):
        self.need(n * self.long_size, what)
        dt = '<i8' if self.long_size == 8 else '<i4'
        v = np.frombuffer(self.data, dtype=dt, count=n, offset=self.pos).tolist()
        self.pos += n * self.long_size
        return v

    def double(self, what):
        return self._unpack(_F64, what)

    def raw(self, n, what):
        self.need(n, what)
        v = bytes(self.data[self.pos:self.pos + n])
        self.pos += n
        return v

    def array(self, kind, n, what):
        dtype = np.dtype(backend.KINDS[kind])
        nbytes = n * dtype.itemsize
        self.need(nbytes, what)
        fd = getattr(self, 'fd', None)
        if fd is not None and nbytes >= _PREAD_MIN and sys.byteorder == 'little':
            # big storages straight from the file into their own array: one sequential read
            # instead of page faults on the mapping (as fast as a plain read of the file)
            arr = np.empty(n, dtype=dtype)
            view = memoryview(arr).cast('B')
            # very large ones in parts by several threads: the kernel's copy (and the page
            # faults of the new array) run on several cores, about 1.7x faster on two
            parts = max(1, min(_PREAD_THREADS, nbytes // _PREAD_PART))
            step = -(-nbytes // parts)
            spans = [(i * step, min(nbytes, (i + 1) * step)) for i in range(parts)]
            if parts == 1:
                _pread_into(fd, view, 0, nbytes, self.pos, what)
            else:
                with ThreadPoolExecutor(parts) as pool:
                    list(pool.map(lambda s: _pread_into(fd, view, s[0], s[1], self.pos, what), spans))
            self.pos += nbytes
            return arr
        arr = np.frombuffer(self.data, dtype=dtype.newbyteorder('<'), count=n, offset=self.pos)
        self.pos += nbytes
        return arr.astype(dtype, copy=True)   # native order, writable, owned

    def check_end(self):
        if self.pos != self.end:
            raise T7FormatError('%d unexpected bytes after the end of the object' % (self.end - self.pos),
                                self.pos)


_TOKEN = re.compile(rb'[ \t\n\r\v\f]*([^ \t\n\r\v\f]+)')
_INT_TOKEN = re.compile(rb'[+-]?[0-9]+\Z')
_WHITESPACE = re.compile(rb'[ \t\n\r\v\f]*\Z')


def _parse_int(tok):
    if not _INT_TOKEN.match(tok):
        raise ValueError
    return int(tok)


def _parse_float(tok):
    return float(tok.replace(b'_', b'!'))   # float() would take '1_0'; C's scanf would not


class _AsciiReader:
    """Torch's ascii mode (THDiskFile with auto-spacing): numbers as text separated by spaces,
    each write ending with a newline; chars (strings, byte storages) raw, then a newline."""
    long_size = 1    # the fewest bytes a long takes here (one digit): for bounds checks
    min_object = 1

    def __init__(self, data):
        self.data = data
        self.pos = 0
        self.end = len(data)

    need = _BinaryReader.need

    def _eol(self):
        if self.pos < self.end and self.data[self.pos] == 0x0a:
            self.pos += 1

    def _numbers(self, n, parse, what):
        self.need(n, what)   # at least one byte a number
        out = []
        for _ in range(n):
            m = _TOKEN.match(self.data, self.pos)
            if m is None:
                raise T7FormatError('file ends early: %s expected' % what, self.pos)
            try:
                out.append(parse(m.group(1)))
            except ValueError:
                raise T7FormatError('%s: %r is not a number' % (what, m.group(1)[:40]), m.start(1)) from None
            self.pos = m.end()
        if n > 0:
            self._eol()
        return out

    def int(self, what):
        return self._numbers(1, _parse_int, what)[0]

    long = int

    def longs(self, n, what):
        return self._numbers(n, _parse_int, what)

    def double(self, what):
        return self._numbers(1, _parse_float, what)[0]

    def raw(self, n, what):
        self.need(n, what)
        v = bytes(self.data[self.pos:self.pos + n])
        self.pos += n
        if n > 0:
            self._eol()
        return v

    def array(self, kind, n, what):
        dtype = np.dtype(backend.KINDS[kind])
        if kind in ('Byte', 'Char'):
            return np.frombuffer(self.raw(n, what), dtype=dtype).copy()
        start = self.pos
        vals = self._numbers(n, _parse_float if dtype.kind == 'f' else _parse_int, what)
        try:
            return np.array(vals, dtype=dtype)
        except (OverflowError, ValueError):
            raise T7FormatError('%s: a value does not fit a %s' % (what, dtype), start) from None

    def check_end(self):
        if not _WHITESPACE.match(self.data, self.pos):
            raise T7FormatError('%d unexpected bytes after the end of the object' % (self.end - self.pos),
                                self.pos)
