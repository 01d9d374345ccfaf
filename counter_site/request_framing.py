"""Where an HTTP/1.1 request ends, found in bytes as they arrive (no Django, no gunicorn).

The node's gunicorn worker (``counter_site.worker``) reads every connection
without blocking and keeps its bytes here until a whole request (head and
body) has arrived; only then does a thread get the request. This module only
finds the request's end. Whatever it cannot frame (a malformed head, a body
over the limit) is handed over as it is, and gunicorn's parser or the view
answers it with its usual error; only a head that never ends is the worker's
to refuse, since the parser would wait for its end.
"""

from __future__ import annotations

import enum

# A head this long is not a request the node serves (gunicorn's own limits are
# 8190 bytes per line and 100 fields of 8190 bytes); its parser answers it.
MAX_HEAD_BYTES = 64 * 1024
# A chunk-size line longer than this is malformed.
_MAX_CHUNK_LINE = 1024
_CONTINUE_LINE = b"expect: 100-continue"


class Framing(enum.Enum):
    NEED_MORE = "need_more"  # keep reading from the socket
    COMPLETE = "complete"  # ``request_end`` bytes hold one whole request
    HAND_OVER = "hand_over"  # stop buffering; the parser or the view answers what is there
    HEAD_TOO_LARGE = "head_too_large"  # no blank line within MAX_HEAD_BYTES


class RequestFramer:
    """Collects one request's bytes; ``feed`` says whether it is complete.

    ``max_body_bytes``: a body announced or found larger is handed over
    unbuffered (the view answers 413). ``buffer`` holds everything received,
    possibly the start of a pipelined next request after ``request_end``.
    """

    def __init__(self, max_body_bytes: int) -> None:
        self.max_body_bytes = max_body_bytes
        self.buffer = bytearray()
        self.head_end = -1  # offset just past the head's blank line, once found
        self.request_end = -1  # offset just past the body, once complete
        self.content_length = 0
        self.chunked = False
        self.expects_continue = False
        self._scanned = 0  # how far the head search has looked
        self._chunk_at = 0  # next chunk-size line (chunked bodies)
        self._in_trailer = False

    @property
    def started(self) -> bool:
        return bool(self.buffer)

    @property
    def head_complete(self) -> bool:
        return self.head_end >= 0

    @property
    def body_bytes(self) -> int:
        return len(self.buffer) - self.head_end if self.head_complete else 0

    def feed(self, data: bytes) -> Framing:
        self.buffer += data
        if not self.head_complete:
            end = self.buffer.find(b"\r\n\r\n", max(0, self._scanned - 3))
            if end < 0:
                self._scanned = len(self.buffer)
                return Framing.HEAD_TOO_LARGE if len(self.buffer) > MAX_HEAD_BYTES else Framing.NEED_MORE
            self.head_end = end + 4
            if not self._read_head():
                return Framing.HAND_OVER
        return self._frame_body()

    def drop_expect_continue(self) -> None:
        """Remove ``Expect: 100-continue`` from the head once the worker has answered it itself."""
        head = bytes(self.buffer[: self.head_end])
        lines = head.split(b"\r\n")
        kept = [line for line in lines if line.lower().replace(b" ", b"") != _CONTINUE_LINE.replace(b" ", b"")]
        new_head = b"\r\n".join(kept)
        self.buffer[: self.head_end] = new_head
        shift = len(head) - len(new_head)
        self.head_end -= shift
        self._chunk_at = max(0, self._chunk_at - shift)
        self.expects_continue = False

    def _read_head(self) -> bool:
        """Body framing from the head; False when the head is not one to buffer a body for."""
        lines = bytes(self.buffer[: self.head_end - 4]).split(b"\r\n")
        if len(lines[0].split(b" ")) != 3:
            return False
        lengths: set[bytes] = set()
        for line in lines[1:]:
            name, colon, value = line.partition(b":")
            if not colon:
                return False
            name = name.strip().lower()
            value = value.strip()
            if name == b"content-length":
                lengths.add(value)
            elif name == b"transfer-encoding":
                self.chunked = self.chunked or b"chunked" in value.lower()
            elif name == b"expect" and value.lower() == b"100-continue":
                self.expects_continue = True
        if len(lengths) > 1 or (lengths and self.chunked):
            return False  # ambiguous framing: the parser refuses it
        if lengths:
            value = lengths.pop()
            if not value.isdigit():
                return False
            self.content_length = int(value)
            if self.content_length > self.max_body_bytes:
                return False  # the view answers 413 without reading the body
        self._chunk_at = self.head_end
        return True

    def _frame_body(self) -> Framing:
        if not self.chunked:
            if self.body_bytes >= self.content_length:
                self.request_end = self.head_end + self.content_length
                return Framing.COMPLETE
            return Framing.NEED_MORE
        if self.body_bytes > self.max_body_bytes + _MAX_CHUNK_LINE:
            return Framing.HAND_OVER  # over the limit: the view reads on and answers 413
        while True:
            line_end = self.buffer.find(b"\r\n", self._chunk_at)
            if line_end < 0:
                too_long = len(self.buffer) - self._chunk_at > _MAX_CHUNK_LINE
                return Framing.HAND_OVER if too_long else Framing.NEED_MORE
            line = bytes(self.buffer[self._chunk_at : line_end])
            if self._in_trailer:
                self._chunk_at = line_end + 2
                if not line:
                    self.request_end = self._chunk_at
                    return Framing.COMPLETE
                continue
            try:
                size = int(line.partition(b";")[0].strip(), 16)
            except ValueError:
                return Framing.HAND_OVER
            if size < 0:
                return Framing.HAND_OVER
            if size == 0:
                self._in_trailer = True
                self._chunk_at = line_end + 2
                continue
            data_end = line_end + 2 + size + 2
            if len(self.buffer) < data_end:
                return Framing.NEED_MORE
            self._chunk_at = data_end
