"""Small I/O pieces the flat-package readers share."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from types import TracebackType
from typing import Self


class Closing:
    """`with obj:` closes `obj`: for readers that hold a file open."""

    def close(self) -> None:
        raise NotImplementedError

    @contextlib.contextmanager
    def closed_on_error(self) -> Iterator[None]:
        """Around the checks an object runs as it opens: if one fails, what it holds open is closed."""
        try:
            yield
        except BaseException:
            self.close()
            raise

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
