"""Small I/O pieces the flat-package readers share."""

from __future__ import annotations

import io
from types import TracebackType
from typing import Self


class Closing:
    """`with obj:` closes `obj`: for readers that hold a file open."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class ChunkReader(io.RawIOBase):
    """A raw stream that decodes in chunks: `readinto` hands out what the last chunk left."""

    _buf: bytes = b""
    _off: int = 0

    def _take(self, b: bytearray | memoryview) -> int:
        n = min(len(b), len(self._buf) - self._off)
        b[:n] = self._buf[self._off : self._off + n]
        self._off += n
        if self._off == len(self._buf):
            self._buf, self._off = b"", 0
        return n
