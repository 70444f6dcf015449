"""Minimal hand-rolled Kafka wire-protocol helpers for tests.

Only what the harness needs: framing, request headers v1/v2, an ApiVersions
request, and parsing an ApiVersions v0 response. This is test code: it is
deliberately tiny and independent of the broker's own protocol crate, so it
can catch encoding mistakes there.
"""

from __future__ import annotations

import os
import socket
import struct
import time

API_VERSIONS = 18
METADATA = 3

ERR_NONE = 0
ERR_UNSUPPORTED_VERSION = 35


def request_header(api_key: int, api_version: int, correlation_id: int,
                   client_id: str | None = "weir-tests", flexible: bool = False) -> bytes:
    """Request header v1 (non-flexible) or v2 (flexible: adds empty tagged fields)."""
    hdr = struct.pack(">hhi", api_key, api_version, correlation_id)
    if client_id is None:
        hdr += struct.pack(">h", -1)
    else:
        cid = client_id.encode()
        hdr += struct.pack(">h", len(cid)) + cid
    if flexible:
        hdr += b"\x00"  # empty tagged-field section
    return hdr


def frame(payload: bytes) -> bytes:
    return struct.pack(">i", len(payload)) + payload


def api_versions_request(correlation_id: int, version: int = 0) -> bytes:
    """A complete framed ApiVersions request.

    v0-v2 have an empty body and header v1. v3+ are flexible (header v2) with
    body client_software_name, client_software_version (compact strings) and
    empty tagged fields. For versions above 3 (e.g. unknown future versions)
    the v3 body is sent, as real clients do (KIP-511)."""
    if version < 3:
        return frame(request_header(API_VERSIONS, version, correlation_id))
    body = b""
    for s in (b"weir-tests", b"1.0"):
        body += bytes([len(s) + 1]) + s
    body += b"\x00"
    return frame(request_header(API_VERSIONS, version, correlation_id, flexible=True) + body)


def recv_exact(sock: socket.socket, n: int, deadline: float) -> bytes:
    buf = b""
    while len(buf) < n:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"timed out after reading {len(buf)}/{n} bytes")
        sock.settimeout(remaining)
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError(f"connection closed after {len(buf)}/{n} bytes")
        buf += chunk
    return buf


def read_frame(sock: socket.socket, timeout: float = 10.0) -> bytes:
    deadline = time.monotonic() + timeout
    (size,) = struct.unpack(">i", recv_exact(sock, 4, deadline))
    if size < 0 or size > 64 * 1024 * 1024:
        raise ValueError(f"implausible response size {size}")
    return recv_exact(sock, size, deadline)


def parse_api_versions_v0(payload: bytes) -> tuple[int, int, dict[int, tuple[int, int]]]:
    """Parse response header v0 + ApiVersions response v0 body.

    Returns (correlation_id, error_code, {api_key: (min_version, max_version)}).
    Raises ValueError if the payload does not have exactly the v0 layout."""
    if len(payload) < 10:
        raise ValueError(f"ApiVersions v0 response too short: {payload!r}")
    correlation_id, error_code, n = struct.unpack_from(">ihi", payload, 0)
    pos = 10
    if n < 0 or len(payload) != pos + 6 * n:
        raise ValueError(
            f"ApiVersions response is not v0 layout: {n} entries but {len(payload) - pos} body bytes")
    apis = {}
    for _ in range(n):
        key, lo, hi = struct.unpack_from(">hhh", payload, pos)
        pos += 6
        apis[key] = (lo, hi)
    return correlation_id, error_code, apis


def connect(host: str, port: int, timeout: float = 5.0) -> socket.socket:
    s = socket.create_connection((host, port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def wait_closed(sock: socket.socket, timeout: float = 10.0) -> bytes:
    """Read until the peer closes the connection; return whatever was received.

    Raises TimeoutError if the connection is still open after `timeout`."""
    deadline = time.monotonic() + timeout
    data = b""
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"connection still open after {timeout}s (received {data[:64]!r})")
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            continue
        except (ConnectionResetError, BrokenPipeError):
            return data
        if not chunk:
            return data
        data += chunk


def api_versions_ok(host: str, port: int, timeout: float = 2.0) -> bool:
    """True if the broker answers an ApiVersions v0 request with error 0."""
    try:
        with connect(host, port, timeout=timeout) as s:
            s.sendall(api_versions_request(1, 0))
            corr, err, apis = parse_api_versions_v0(read_frame(s, timeout))
            return corr == 1 and err == ERR_NONE and API_VERSIONS in apis
    except (OSError, ValueError, TimeoutError, ConnectionError, struct.error):
        return False


# --- record batches and Produce (enough to send hand-made / corrupted batches) ---

PRODUCE = 0

_CRC32C_TABLE = []
for _i in range(256):
    _c = _i
    for _ in range(8):
        _c = (_c >> 1) ^ 0x82F63B78 if _c & 1 else _c >> 1
    _CRC32C_TABLE.append(_c)


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for b in data:
        crc = _CRC32C_TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def uvarint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def varint(n: int) -> bytes:
    return uvarint((n << 1) ^ (n >> 63))


def _nbytes(b: bytes | None) -> bytes:
    return varint(-1) if b is None else varint(len(b)) + b


def record(offset_delta: int, ts_delta: int, key: bytes | None, value: bytes | None,
           headers=()) -> bytes:
    body = b"\x00" + varint(ts_delta) + varint(offset_delta) + _nbytes(key) + _nbytes(value)
    body += varint(len(headers))
    for hk, hv in headers:
        body += _nbytes(hk.encode()) + _nbytes(hv)
    return varint(len(body)) + body


def record_batch(records: list[tuple], base_ts: int, base_offset: int = 0, attributes: int = 0,
                 records_payload: bytes | None = None, count: int | None = None,
                 corrupt_crc: bool = False, magic: int = 2) -> bytes:
    """A v2 RecordBatch of (key, value) records, uncompressed unless
    `records_payload` is given (then used verbatim, e.g. compressed bytes)."""
    if records_payload is None:
        records_payload = b"".join(record(i, i, k, v) for i, (k, v) in enumerate(records))
    n = len(records) if count is None else count
    after_crc = struct.pack(">hiqqqhii", attributes, max(n - 1, 0), base_ts, base_ts + max(n - 1, 0),
                            -1, -1, -1, n) + records_payload
    crc = crc32c(after_crc)
    if corrupt_crc:
        crc ^= 0x1
    after_len = struct.pack(">ibI", 0, magic, crc) + after_crc
    return struct.pack(">qi", base_offset, len(after_len)) + after_len


def produce_request(correlation_id: int, version: int, topic: str, partition: int,
                    batch: bytes | None, acks: int = -1, timeout_ms: int = 10_000) -> bytes:
    """Produce v3-v8 (non-flexible) for one topic-partition."""
    assert 3 <= version <= 8
    t = topic.encode()
    body = struct.pack(">hhi", -1, acks, timeout_ms)
    body += struct.pack(">i", 1) + struct.pack(">h", len(t)) + t
    body += struct.pack(">i", 1) + struct.pack(">i", partition)
    body += struct.pack(">i", -1) if batch is None else struct.pack(">i", len(batch)) + batch
    return frame(request_header(PRODUCE, version, correlation_id) + body)


def parse_produce_response(payload: bytes) -> tuple[int, int, int]:
    """(correlation_id, error_code, base_offset) of the first partition."""
    corr, n_topics = struct.unpack_from(">ii", payload, 0)
    pos = 8
    assert n_topics == 1, n_topics
    (tlen,) = struct.unpack_from(">h", payload, pos)
    pos += 2 + tlen
    (n_parts,) = struct.unpack_from(">i", payload, pos)
    pos += 4
    assert n_parts == 1, n_parts
    _index, err, base = struct.unpack_from(">ihq", payload, pos)
    return corr, err, base


def api_versions(host: str, port: int) -> dict[int, tuple[int, int]]:
    with connect(host, port) as s:
        s.sendall(api_versions_request(1, 0))
        return parse_api_versions_v0(read_frame(s))[2]



def _metadata_v4(host: str, port: int, topic: str | None,
                 auto_create: bool = False) -> tuple[int, int | None, int]:
    """This broker's own Metadata v4 answer: how many brokers it lists, the
    partition count of `topic` (None while it answers an error for it, or
    without a topic) and the topic's error code."""
    body = struct.pack(">i", 0) if topic is None else \
        struct.pack(">ih", 1, len(topic.encode())) + topic.encode()
    with connect(host, port) as s:
        s.sendall(frame(request_header(3, 4, 1) + body + bytes([auto_create])))
        buf = read_frame(s)
    pos = 8  # correlation id, throttle time

    def string(pos: int) -> int:
        (n,) = struct.unpack_from(">h", buf, pos)
        return pos + 2 + max(n, 0)

    (brokers,) = struct.unpack_from(">i", buf, pos)
    pos += 4
    for _ in range(brokers):
        pos = string(string(pos + 4) + 4)  # node id, host, port, rack
    pos = string(pos) + 4  # cluster id, controller id
    (topics,) = struct.unpack_from(">i", buf, pos)
    if topic is None or topics != 1:
        return brokers, None, 0
    (error,) = struct.unpack_from(">h", buf, pos + 4)
    pos = string(pos + 6) + 1  # name, is_internal
    (partitions,) = struct.unpack_from(">i", buf, pos)
    return brokers, None if error else partitions, error


def listed_brokers(host: str, port: int) -> int:
    """How many brokers this broker's metadata lists."""
    return _metadata_v4(host, port, None)[0]


def topic_partition_count(host: str, port: int, topic: str) -> int | None:
    """The partition count this broker's own metadata gives `topic`, or
    None while it answers an error for it."""
    return _metadata_v4(host, port, topic)[1]


def auto_create_error(host: str, port: int, topic: str) -> int:
    """The error code of this broker's Metadata answer for `topic`, asked
    with auto-creation allowed (LEADER_NOT_AVAILABLE, 5, for one it has
    just created)."""
    return _metadata_v4(host, port, topic, auto_create=True)[2]


def finalized_features(host: str, port: int) -> dict[str, int]:
    """The finalized features (name to max level) of an ApiVersions v3
    answer: the response's tagged field 2 (KIP-584)."""
    with connect(host, port) as s:
        s.sendall(api_versions_request(1, 3))
        buf = read_frame(s)
    pos = 4  # correlation id; the response header of ApiVersions has no tags
    err = struct.unpack_from(">h", buf, pos)[0]
    assert err == ERR_NONE, err
    pos += 2
    n, pos = read_uvarint(buf, pos)
    for _ in range(n - 1):
        pos = skip_tags(buf, pos + 6)
    pos += 4  # throttle time
    out: dict[str, int] = {}
    count, pos = read_uvarint(buf, pos)
    for _ in range(count):
        tag, pos = read_uvarint(buf, pos)
        size, pos = read_uvarint(buf, pos)
        if tag == 2:
            q = pos
            m, q = read_uvarint(buf, q)
            for _ in range(m - 1):
                name, q = _skip_compact_str(buf, q)
                # MaxVersionLevel comes before MinVersionLevel.
                out[name] = struct.unpack_from(">h", buf, q)[0]
                q = skip_tags(buf, q + 4)
        pos += size
    return out

SHARE_GROUP_HEARTBEAT = 76
DESCRIBE_GROUPS = 15
LIST_GROUPS = 16
ERR_NOT_COORDINATOR = 16
ERR_COORDINATOR_NOT_AVAILABLE = 15


def _compact_str(s: str | None) -> bytes:
    if s is None:
        return b"\x00"
    b = s.encode()
    return uvarint(len(b) + 1) + b


def read_uvarint(buf: bytes, pos: int) -> tuple[int, int]:
    """An unsigned varint at `pos`: its value and the position after it."""
    n = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        n |= (b & 0x7F) << shift
        if not b & 0x80:
            return n, pos
        shift += 7


def _skip_compact_str(buf: bytes, pos: int) -> tuple[str | None, int]:
    n, pos = read_uvarint(buf, pos)
    if n == 0:
        return None, pos
    return buf[pos:pos + n - 1].decode(), pos + n - 1


def skip_tags(buf: bytes, pos: int) -> int:
    """The position after the tagged-field section at `pos`."""
    count, pos = read_uvarint(buf, pos)
    for _ in range(count):
        _tag, pos = read_uvarint(buf, pos)
        size, pos = read_uvarint(buf, pos)
        pos += size
    return pos


def share_group_heartbeat(sock: socket.socket, correlation_id: int, group: str, member_id: str,
                          epoch: int, topics: list[str] | None) -> dict:
    """One ShareGroupHeartbeat v1 (KIP-932): answers error code, member
    epoch and the assignment (topic id hex to partitions; None if the
    response carries none)."""
    body = _compact_str(group) + _compact_str(member_id) + struct.pack(">i", epoch)
    body += _compact_str(None)
    if topics is None:
        body += b"\x00"
    else:
        body += uvarint(len(topics) + 1) + b"".join(_compact_str(t) for t in topics)
    body += b"\x00"
    sock.sendall(frame(request_header(SHARE_GROUP_HEARTBEAT, 1, correlation_id, flexible=True)
                       + body))
    buf = read_frame(sock)
    (corr,) = struct.unpack_from(">i", buf, 0)
    assert corr == correlation_id, corr
    pos = skip_tags(buf, 4)
    _throttle, err = struct.unpack_from(">ih", buf, pos)
    pos += 6
    message, pos = _skip_compact_str(buf, pos)
    _member, pos = _skip_compact_str(buf, pos)
    member_epoch, _interval = struct.unpack_from(">ii", buf, pos)
    pos += 8
    assignment = None
    if buf[pos] != 0xFF:
        pos += 1
        assignment = {}
        n, pos = read_uvarint(buf, pos)
        for _ in range(max(n - 1, 0)):
            topic_id = buf[pos:pos + 16].hex()
            pos += 16
            k, pos = read_uvarint(buf, pos)
            parts = list(struct.unpack_from(f">{max(k - 1, 0)}i", buf, pos))
            pos += 4 * max(k - 1, 0)
            pos = skip_tags(buf, pos)
            assignment[topic_id] = parts
    return {"error": err, "message": message, "epoch": member_epoch, "assignment": assignment}


def join_share_group(host: str, port: int, group: str, topic: str,
                     timeout: float = 60) -> tuple[str, int]:
    """A member joins `group` over the raw protocol, heartbeating until its
    assignment includes `topic`'s partition 0 (retrying while the broker
    is not, or not yet, the coordinator); answers its member id and epoch.
    It never fetches."""
    member = os.urandom(16).hex()
    deadline = time.monotonic() + timeout
    epoch, corr = 0, 0
    with connect(host, port) as s:
        while time.monotonic() < deadline:
            corr += 1
            hb = share_group_heartbeat(s, corr, group, member, epoch, [topic])
            assert hb["error"] in (0, ERR_NOT_COORDINATOR, ERR_COORDINATOR_NOT_AVAILABLE), hb
            if hb["error"] == 0:
                epoch = hb["epoch"]
                if any(0 in ps for ps in (hb["assignment"] or {}).values()):
                    return member, epoch
            time.sleep(0.1)
    raise AssertionError(f"{member} got no assignment of {topic}-0 in {group}")


def leave_share_group(host: str, port: int, group: str, member: str) -> None:
    with connect(host, port) as s:
        hb = share_group_heartbeat(s, 1, group, member, -1, None)
        assert hb["error"] == 0, hb


def describe_groups_v0(host: str, port: int, groups: list[str]) -> dict[str, tuple[int, str]]:
    """DescribeGroups v0: group id to (error code, state)."""
    body = struct.pack(">i", len(groups))
    for g in groups:
        b = g.encode()
        body += struct.pack(">h", len(b)) + b
    with connect(host, port) as s:
        s.sendall(frame(request_header(DESCRIBE_GROUPS, 0, 1) + body))
        buf = read_frame(s)
    pos = 4
    (n,) = struct.unpack_from(">i", buf, pos)
    pos += 4
    out = {}

    def string() -> str:
        nonlocal pos
        (length,) = struct.unpack_from(">h", buf, pos)
        pos += 2
        v = buf[pos:pos + max(length, 0)].decode()
        pos += max(length, 0)
        return v

    for _ in range(n):
        (err,) = struct.unpack_from(">h", buf, pos)
        pos += 2
        gid, state = string(), string()
        string(), string()  # protocol type, protocol
        (members,) = struct.unpack_from(">i", buf, pos)
        pos += 4
        for _ in range(members):
            string(), string(), string()  # member id, client id, host
            for _ in range(2):  # metadata, assignment
                (length,) = struct.unpack_from(">i", buf, pos)
                pos += 4 + max(length, 0)
        out[gid] = (err, state)
    return out


def list_groups_v0(host: str, port: int) -> tuple[int, list[str]]:
    """ListGroups v0: error code and the group ids listed."""
    with connect(host, port) as s:
        s.sendall(frame(request_header(LIST_GROUPS, 0, 1)))
        buf = read_frame(s)
    err, n = struct.unpack_from(">hi", buf, 4)
    pos, ids = 10, []
    for _ in range(n):
        for i in range(2):  # group id, protocol type
            (length,) = struct.unpack_from(">h", buf, pos)
            pos += 2
            if i == 0:
                ids.append(buf[pos:pos + length].decode())
            pos += length
    return err, ids
