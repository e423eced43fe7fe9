"""The DNS wire format (RFC 1035), as much of it as a cluster DNS server needs.

`parse_query(data)` reads a query's header and first question; `build_reply(...)` writes a
reply with answer records. Names in answers point back at the question's name when they are
the same (compression pointer 0xC00C), and are written in full otherwise. Supported record
types: A, AAAA (always empty here: no IPv6), SRV, PTR; anything else is answered with no
records. No EDNS: an OPT record in a query is ignored and none is sent back.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

A, NS, CNAME, SOA, PTR, AAAA, SRV, ANY = 1, 2, 5, 6, 12, 28, 33, 255
IN = 1
NOERROR, FORMERR, SERVFAIL, NXDOMAIN, NOTIMP, REFUSED = 0, 1, 2, 3, 4, 5


class DnsFormatError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Query:
    id: int
    flags: int
    name: str  # lower case, no trailing dot
    qtype: int
    qclass: int
    question: bytes  # the question section as received, echoed in the reply


@dataclass(frozen=True, slots=True)
class Record:
    name: str
    rtype: int
    ttl: int
    data: bytes

    @staticmethod
    def a(name: str, ip: str, ttl: int) -> Record:
        return Record(name, A, ttl, ipaddress.IPv4Address(ip).packed)

    @staticmethod
    def srv(name: str, priority: int, weight: int, port: int, target: str, ttl: int) -> Record:
        return Record(
            name, SRV, ttl, struct.pack("!HHH", priority, weight, port) + encode_name(target)
        )

    @staticmethod
    def ptr(name: str, target: str, ttl: int) -> Record:
        return Record(name, PTR, ttl, encode_name(target))


def encode_name(name: str) -> bytes:
    out = b""
    for label in name.strip(".").split("."):
        if label:
            raw = label.encode("idna") if not label.isascii() else label.encode()
            if len(raw) > 63:
                raise DnsFormatError(f"label too long: {label!r}")
            out += bytes([len(raw)]) + raw
    return out + b"\x00"


def _read_name(data: bytes, offset: int) -> tuple[str, int]:
    labels: list[str] = []
    jumps = 0
    end = None
    while True:
        if offset >= len(data):
            raise DnsFormatError("name runs past the message")
        length = data[offset]
        if length & 0xC0 == 0xC0:
            if offset + 1 >= len(data):
                raise DnsFormatError("truncated pointer")
            if end is None:
                end = offset + 2
            offset = ((length & 0x3F) << 8) | data[offset + 1]
            jumps += 1
            if jumps > 16:
                raise DnsFormatError("compression loop")
            continue
        offset += 1
        if length == 0:
            break
        labels.append(data[offset : offset + length].decode("ascii", "replace"))
        offset += length
    return ".".join(labels).lower(), (end if end is not None else offset)


def parse_query(data: bytes) -> Query:
    if len(data) < 12:
        raise DnsFormatError("shorter than a header")
    ident, flags, qdcount = struct.unpack("!HHH", data[:6])
    if qdcount < 1:
        raise DnsFormatError("no question")
    name, offset = _read_name(data, 12)
    if offset + 4 > len(data):
        raise DnsFormatError("truncated question")
    qtype, qclass = struct.unpack("!HH", data[offset : offset + 4])
    return Query(ident, flags, name, qtype, qclass, data[12 : offset + 4])


def build_reply(
    query: Query,
    answers: list[Record],
    rcode: int = NOERROR,
    *,
    authoritative: bool = True,
    max_size: int | None = None,
) -> bytes:
    """A reply echoing the question; truncated (TC set, no answers) past `max_size` bytes."""
    flags = 0x8000 | (query.flags & 0x7900)  # QR, opcode and RD copied
    if authoritative:
        flags |= 0x0400
    flags |= 0x0080  # RA: we answer recursively for what we know
    flags |= rcode & 0xF
    body = b""
    for record in answers:
        owner = (
            b"\xc0\x0c"
            if record.name.lower().strip(".") == query.name
            else encode_name(record.name)
        )
        body += (
            owner
            + struct.pack("!HHIH", record.rtype, IN, record.ttl, len(record.data))
            + record.data
        )
    header = struct.pack("!HHHHHH", query.id, flags, 1, len(answers), 0, 0)
    reply = header + query.question + body
    if max_size is not None and len(reply) > max_size:
        header = struct.pack("!HHHHHH", query.id, flags | 0x0200, 1, 0, 0, 0)
        return header + query.question
    return reply


def error_reply(data: bytes, rcode: int) -> bytes | None:
    """A reply with `rcode` to a message that could not be parsed (None if no header)."""
    if len(data) < 12:
        return None
    ident, flags = struct.unpack("!HH", data[:4])
    return struct.pack("!HHHHHH", ident, 0x8000 | (flags & 0x7900) | rcode, 0, 0, 0, 0)
