"""Requests no well-behaved HTTP client sends: bodies the server refuses before reading them all, sent from a
thread of their own while the response is read, so the early answer is seen (a client that writes its whole
body first would only see the connection reset)."""

from __future__ import annotations

import contextlib
import http.client
import socket
import struct
import threading
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass(frozen=True)
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes


def send(url: str, path: str, headers: dict[str, str], body: Iterable[bytes], timeout_s: float = 60) -> RawResponse:
    """POST ``body`` (an iterable of pieces) with exactly ``headers``; reads the answer as it comes."""
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=timeout_s)
    head = f"POST {path} HTTP/1.1\r\nHost: {parts.netloc}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    sock.sendall(head.encode() + b"\r\n")
    chunked = headers.get("Transfer-Encoding") == "chunked"

    def write() -> None:
        with contextlib.suppress(OSError):  # the server may answer and close before it has everything
            for piece in body:
                sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
            if chunked:
                sock.sendall(b"0\r\n\r\n")

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    try:
        response = http.client.HTTPResponse(sock)
        response.begin()
        answer = RawResponse(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
    finally:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()
        writer.join(timeout=timeout_s)
    return answer


def zeros(total: int, piece: int = 1 << 20) -> Iterable[bytes]:
    block = bytes(piece)
    for _ in range(total // piece):
        yield block


def gzip_bomb(inflated_bytes: int, chunk: int = 1 << 24) -> bytes:
    """A valid gzip file of ``inflated_bytes`` zeros (a multiple of ``chunk``) made without compressing them all:
    after a full flush the deflate state starts afresh, so every chunk compresses to the same bytes."""
    zero = bytes(chunk)
    deflate = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    block = deflate.compress(zero) + deflate.flush(zlib.Z_FULL_FLUSH)
    end = deflate.flush(zlib.Z_FINISH)
    crc = 0
    for _ in range(inflated_bytes // chunk):
        crc = zlib.crc32(zero, crc)
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
    trailer = struct.pack("<II", crc, inflated_bytes & 0xFFFFFFFF)
    return header + block * (inflated_bytes // chunk) + end + trailer
