"""A tokenizer process: counts the texts its node sends it (see ``tokenizer_processes``).

    python -m storage_app.core.tokenizer_child TOKENIZER

Imports only the tokenizer, so each child starts fast and stays small.
"""

from __future__ import annotations

import signal
import struct
import sys
from array import array
from typing import BinaryIO

from storage_app.core.keywords import Keywords

_LENGTH = struct.Struct("<Q")
_COUNTED = struct.Struct("<BQQ")
_INVALID = struct.Struct("<BQQQ")


def serve(tokenizer: str, requests: BinaryIO, replies: BinaryIO) -> None:
    """The child's loop: answer each request until end of input."""
    keywords = Keywords(tokenizer)
    while True:
        header = requests.read(_LENGTH.size)
        if len(header) < _LENGTH.size:
            return
        (length,) = _LENGTH.unpack(header)
        data = requests.read(length)
        if len(data) < length:
            return
        try:
            tokens, per_key, texts = keywords.count_with_texts(data)
        except UnicodeDecodeError as error:
            reason = error.reason.encode("utf-8")
            replies.write(_INVALID.pack(1, error.start, error.end, len(reason)) + reason)
        else:
            replies.write(_COUNTED.pack(0, tokens, len(per_key)))
            replies.write(array("Q", per_key.keys()).tobytes())
            replies.write(array("Q", per_key.values()).tobytes())
            # A TextColumn's wire form, written without numpy, which the child does not import.
            column = array("I", map(len, texts)).tobytes() + b"".join(texts)
            replies.write(_LENGTH.pack(len(column)) + column)
        replies.flush()


if __name__ == "__main__":
    # The node stops its children by closing their input; Ctrl-C is for the node.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.byteorder != "little":
        raise SystemExit("tokenizer processes speak little-endian")
    serve(sys.argv[1], sys.stdin.buffer, sys.stdout.buffer)
