"""Produce over the wire refuses what Kafka refuses, and stores nothing of a refused batch.

Batches are built by hand with a correct CRC32C around bad records, so only the broker's
record-level validation can catch them. Internal topics refuse client writes while the
broker's own group commits keep working.
"""

from __future__ import annotations

import struct
import zlib

from confluent_kafka import TopicPartition

import ck
import kwire
from conftest import unique

CORRUPT_MESSAGE = 2
INVALID_TOPIC_EXCEPTION = 17
INVALID_RECORD = 87


def _crc32c_table() -> list[int]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    c = 0xFFFFFFFF
    for b in data:
        c = _TABLE[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def varint(v: int) -> bytes:
    z = (v << 1) ^ (v >> 63)
    out = b""
    while z >= 0x80:
        out += bytes([(z & 0x7F) | 0x80])
        z >>= 7
    return out + bytes([z])


def record(offset_delta: int, value: bytes) -> bytes:
    body = b"\x00" + varint(0) + varint(offset_delta) + varint(-1) + varint(len(value)) + value + varint(0)
    return varint(len(body)) + body


def batch(payload: bytes, count: int, codec: int = 0) -> bytes:
    """A v2 batch claiming `count` records around `payload`, with a correct CRC."""
    after_crc = struct.pack(">hiqqqhii", codec, count - 1, 1_700_000_000_000, 1_700_000_000_000, -1, -1, -1, count) + payload
    crc = crc32c(after_crc)
    after_len = struct.pack(">ibI", 0, 2, crc) + after_crc
    return struct.pack(">qi", 0, len(after_len)) + after_len


def produce_v3(bootstrap: str, topic: str, partition: int, records: bytes, corr: int = 1) -> int:
    """Sends one Produce v3 (acks=-1) and returns the partition's error code."""
    body = kwire.string(None) + struct.pack(">hi", -1, 10_000)
    body += struct.pack(">i", 1) + kwire.string(topic)
    body += struct.pack(">i", 1) + struct.pack(">i", partition) + struct.pack(">i", len(records)) + records
    with kwire.connect(bootstrap) as s:
        s.sendall(kwire.frame(kwire.request_header_v1(kwire.API_PRODUCE, 3, corr) + body))
        r = kwire.Reader(kwire.recv_frame(s))
    assert r.take(">i") == corr
    assert r.take(">i") == 1
    assert r.string() == topic
    assert r.take(">i") == 1
    index, error_code = r.take(">ih")
    assert index == partition
    return error_code


def test_records_that_do_not_frame_are_refused_and_not_stored(broker):
    name = unique()
    ck.create_topic(broker.bootstrap, name)

    good = record(0, b"a") + record(1, b"b")
    assert produce_v3(broker.bootstrap, name, 0, batch(b"\x07not three records at all", 3)) == INVALID_RECORD
    assert produce_v3(broker.bootstrap, name, 0, batch(good, 3)) == INVALID_RECORD  # count says 3, holds 2
    assert produce_v3(broker.bootstrap, name, 0, batch(record(0, b"a") + record(5, b"b"), 2)) == INVALID_RECORD
    assert produce_v3(broker.bootstrap, name, 0, batch(b"\x1f\x8b\x08garbage, not gzip", 2, codec=1)) == CORRUPT_MESSAGE
    assert ck.watermarks(broker.bootstrap, name) == (0, 0), "a refused batch was stored"

    # The same records framed correctly are accepted, plain and gzip.
    assert produce_v3(broker.bootstrap, name, 0, batch(good, 2)) == 0
    gz = zlib.compressobj(wbits=31)
    assert produce_v3(broker.bootstrap, name, 0, batch(gz.compress(good) + gz.flush(), 2, codec=1)) == 0
    assert ck.watermarks(broker.bootstrap, name) == (0, 4)
    values = [m.value() for m in ck.consume_n(broker.bootstrap, name, 4)]
    assert values == [b"a", b"b", b"a", b"b"]


def test_clients_cannot_write_consumer_offsets_but_group_commits_work(broker):
    name = unique()
    group = unique("g")
    ck.create_topic(broker.bootstrap, name)
    c = ck.consumer(broker.bootstrap, **{"group.id": group})
    try:
        c.commit(offsets=[TopicPartition(name, 0, 5)], asynchronous=False)
        partitions = len(ck.admin(broker.bootstrap).list_topics(timeout=10).topics["__consumer_offsets"].partitions)
        assert partitions > 0
        garbage = batch(record(0, b"not an offset commit"), 1)
        for p in range(partitions):
            assert produce_v3(broker.bootstrap, "__consumer_offsets", p, garbage, corr=p + 1) == INVALID_TOPIC_EXCEPTION
        c.commit(offsets=[TopicPartition(name, 0, 9)], asynchronous=False)
        assert c.committed([TopicPartition(name, 0)], timeout=10)[0].offset == 9
    finally:
        c.close()
