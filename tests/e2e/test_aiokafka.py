"""aiokafka (pure-Python asyncio client; sends ApiVersions v0, Metadata v5, Produce v7, Fetch v11,
ListOffsets v3, FindCoordinator v1, JoinGroup v5, SyncGroup v3, Heartbeat v1, LeaveGroup v1,
OffsetCommit v3, OffsetFetch v3, InitProducerId v0, CreateTopics v3): keys, headers and timestamps
round trip, codecs, a two-member consumer group, static membership, commits that survive a broker
restart, the idempotent producer across a restart, and the admin client.

Each test runs its coroutine with `asyncio.run` under an overall `asyncio.wait_for`, and every
client is stopped in a `finally` block, so a hang fails the test instead of blocking the suite."""

from __future__ import annotations

import asyncio
import time

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic, RecordsToDelete
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.structs import OffsetAndMetadata

import ck
from conftest import unique

FAST_GROUPS = {"group.initial.rebalance.delay.ms": "0"}
REQUEST_TIMEOUT_MS = 15000
TEST_BUDGET_S = 50  # below pytest-timeout's 60 s, so the asyncio timeout reports first
TS0 = 1_700_000_000_000


def run(coro, budget: float = TEST_BUDGET_S):
    return asyncio.run(asyncio.wait_for(coro, budget))


def producer(broker, **conf) -> AIOKafkaProducer:
    base = dict(bootstrap_servers=broker.bootstrap, acks="all", linger_ms=5,
                request_timeout_ms=REQUEST_TIMEOUT_MS, client_id="e2e-aiokafka")
    base.update(conf)
    return AIOKafkaProducer(**base)


def consumer(broker, *topics, group_id=None, **conf) -> AIOKafkaConsumer:
    base = dict(bootstrap_servers=broker.bootstrap, group_id=group_id, auto_offset_reset="earliest",
                enable_auto_commit=False, fetch_max_wait_ms=100, request_timeout_ms=REQUEST_TIMEOUT_MS,
                client_id="e2e-aiokafka")
    if group_id is not None:
        base.update(session_timeout_ms=6000, heartbeat_interval_ms=300, rebalance_timeout_ms=10000)
    base.update(conf)
    return AIOKafkaConsumer(*topics, **base)


async def stop_all(*clients) -> None:
    for c in clients:
        try:
            # Producers and consumers have stop(), the admin client close().
            await asyncio.wait_for(c.close() if isinstance(c, AIOKafkaAdminClient) else c.stop(), 10)
        except Exception:  # a failed stop must not hide the test's own failure
            pass


async def read(consumers: list[AIOKafkaConsumer], want: int, timeout: float = 20) -> list[list]:
    """getmany() from every consumer in turn until `want` records arrived in total, then one more
    round to catch extras. Returns one record list per consumer."""
    got: list[list] = [[] for _ in consumers]
    deadline = time.monotonic() + timeout
    while sum(map(len, got)) < want and time.monotonic() < deadline:
        for i, c in enumerate(consumers):
            for recs in (await c.getmany(timeout_ms=100)).values():
                got[i].extend(recs)
    for i, c in enumerate(consumers):
        for recs in (await c.getmany(timeout_ms=300)).values():
            got[i].extend(recs)
    total = sum(map(len, got))
    assert total == want, f"read {total} records, expected exactly {want}"
    return got


async def wait_split(consumers: list[AIOKafkaConsumer], topic: str, partitions: int,
                     timeout: float = 25) -> list[set[int]]:
    """Wait until the members' assignments are non-empty, disjoint and cover every partition."""
    deadline = time.monotonic() + timeout
    sets: list[set[int]] = []
    while time.monotonic() < deadline:
        sets = [{tp.partition for tp in c.assignment() if tp.topic == topic} for c in consumers]
        if all(sets) and sum(map(len, sets)) == partitions and set().union(*sets) == set(range(partitions)):
            return sets
        await asyncio.sleep(0.1)
    raise AssertionError(f"assignments never settled on {partitions} partitions: {sets}")


def test_produce_consume_keys_headers_timestamps(broker):
    topic = unique()
    ck.create_topic(broker.bootstrap, topic, partitions=3)
    tps = [TopicPartition(topic, p) for p in range(3)]

    async def go():
        p = producer(broker)
        c = consumer(broker)
        try:
            await p.start()
            futs = []
            for i in range(30):
                futs.append(await p.send(topic, value=b"v%d" % i, key=b"k%d" % i, partition=i % 3,
                                         timestamp_ms=TS0 + i,
                                         headers=[("idx", b"%d" % i), ("kind", b"e2e"), ("empty", b"")]))
            metas = await asyncio.gather(*futs)
            assert [(m.partition, m.offset) for m in metas] == [(i % 3, i // 3) for i in range(30)]
            # log_append_time -1 in the answer (CreateTime topic): aiokafka reports type 0. (It
            # then gives every record of a batch the batch's first timestamp, so those are not
            # compared here; the consumed records below carry their own.)
            assert {m.timestamp_type for m in metas} == {0}
            # A null value and a null key (tombstone / keyless record).
            tomb = await p.send_and_wait(topic, value=None, key=b"gone", partition=0)
            keyless = await p.send_and_wait(topic, value=b"nokey", partition=1)
            assert (tomb.partition, tomb.offset, keyless.partition, keyless.offset) == (0, 10, 1, 10)

            await c.start()
            c.assign(tps)
            await c.seek_to_beginning(*tps)
            (recs,) = await read([c], 32)
            by_part = {q: [r for r in recs if r.partition == q] for q in range(3)}
            assert [r.offset for r in by_part[0]] == list(range(11))
            assert [r.offset for r in by_part[1]] == list(range(11))
            assert [r.offset for r in by_part[2]] == list(range(10))
            for q in range(3):
                for r in by_part[q][:10]:
                    i = r.offset * 3 + q
                    assert (r.topic, r.key, r.value, r.timestamp, r.timestamp_type) == \
                        (topic, b"k%d" % i, b"v%d" % i, TS0 + i, 0)
                    assert list(r.headers) == [("idx", b"%d" % i), ("kind", b"e2e"), ("empty", b"")]
            assert (by_part[0][10].key, by_part[0][10].value, list(by_part[0][10].headers)) == (b"gone", None, [])
            assert (by_part[1][10].key, by_part[1][10].value) == (None, b"nokey")

            # Fetch v11 answers carry the high watermark and, without transactions, an equal
            # last stable offset.
            assert [c.highwater(tp) for tp in tps] == [11, 11, 10]
            assert [c.last_stable_offset(tp) for tp in tps] == [11, 11, 10]
            assert await c.beginning_offsets(tps) == {tps[0]: 0, tps[1]: 0, tps[2]: 0}
            assert await c.end_offsets(tps) == {tps[0]: 11, tps[1]: 11, tps[2]: 10}
            # ListOffsets by timestamp: the first record at or after the time, None past the end.
            found = await c.offsets_for_times({tps[0]: TS0 + 7, tps[2]: TS0 + 10_000})
            assert found[tps[0]].offset == 3 and found[tps[0]].timestamp == TS0 + 9
            assert found[tps[2]] is None

            # read_committed (isolation level 1) sees the same records.
            rc = consumer(broker, isolation_level="read_committed")
            try:
                await rc.start()
                rc.assign(tps)
                await rc.seek_to_beginning(*tps)
                (again,) = await read([rc], 32)
                assert sorted((r.partition, r.offset, r.value) for r in again) == \
                    sorted((r.partition, r.offset, r.value) for r in recs)
            finally:
                await stop_all(rc)
        finally:
            await stop_all(c, p)

    run(go())


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_compressed_batches_round_trip(broker, codec):
    topic = unique()
    ck.create_topic(broker.bootstrap, topic)
    tp = TopicPartition(topic, 0)
    values = [(b"%s-%04d-" % (codec.encode(), i)) * 20 for i in range(200)]

    async def go():
        p = producer(broker, compression_type=codec, linger_ms=50)
        c = consumer(broker)
        try:
            await p.start()
            futs = [await p.send(topic, value=v, key=b"%d" % i, partition=0) for i, v in enumerate(values)]
            metas = await asyncio.gather(*futs)
            assert [m.offset for m in metas] == list(range(200))
            await c.start()
            c.assign([tp])
            await c.seek_to_beginning(tp)
            (recs,) = await read([c], 200)
            assert [(r.offset, r.key, r.value) for r in recs] == [(i, b"%d" % i, v) for i, v in enumerate(values)]
            # The broker also serves them to another client unchanged.
            assert [m.value() for m in ck.consume_n(broker.bootstrap, topic, 200)] == values
        finally:
            await stop_all(c, p)

    run(go())


@pytest.mark.broker_overrides(FAST_GROUPS)
def test_group_of_two_splits_partitions_and_takes_over_on_leave(broker):
    topic, group = unique(), unique("g")
    ck.create_topic(broker.bootstrap, topic, partitions=6)
    tps = [TopicPartition(topic, p) for p in range(6)]

    async def go():
        p = producer(broker)
        c1 = consumer(broker, topic, group_id=group)
        c2 = consumer(broker, topic, group_id=group)
        try:
            await p.start()
            await asyncio.gather(*[await p.send(topic, value=b"a%d" % i, partition=i % 6) for i in range(60)])
            await asyncio.gather(c1.start(), c2.start())
            s1, s2 = await wait_split([c1, c2], topic, 6)
            assert (len(s1), len(s2)) == (3, 3), (s1, s2)

            g1, g2 = await read([c1, c2], 60)
            assert sorted(r.value for r in g1 + g2) == sorted(b"a%d" % i for i in range(60)), \
                "every record consumed exactly once by the group"
            assert {r.partition for r in g1} == s1 and {r.partition for r in g2} == s2
            assert (len(g1), len(g2)) == (30, 30)

            await c1.commit()
            await c2.commit()
            assert [await c1.committed(tp) for tp in tps] == [10] * 6

            # c2 leaves (LeaveGroup): c1 takes every partition and resumes at c2's commits.
            await c2.stop()
            await wait_split([c1], topic, 6)
            await asyncio.gather(*[await p.send(topic, value=b"b%d" % i, partition=i % 6) for i in range(12)])
            (late,) = await read([c1], 12)
            assert sorted(r.value for r in late) == sorted(b"b%d" % i for i in range(12))
            assert sorted((r.partition, r.offset) for r in late) == sorted((q, o) for q in range(6) for o in (10, 11))
            await c1.commit()
            assert [await c1.committed(tp) for tp in tps] == [12] * 6
        finally:
            await stop_all(c1, c2, p)

    run(go())


@pytest.mark.broker_overrides(FAST_GROUPS)
def test_restarted_consumer_resumes_after_committed_offsets(broker):
    topic, group = unique(), unique("g")
    ck.create_topic(broker.bootstrap, topic, partitions=2)
    tp0, tp1 = TopicPartition(topic, 0), TopicPartition(topic, 1)

    async def produce(prefix: bytes, n: int):
        p = producer(broker)
        try:
            await p.start()
            await asyncio.gather(*[await p.send(topic, value=prefix + b"%d" % i, partition=i % 2) for i in range(n)])
        finally:
            await stop_all(p)

    async def first():
        await produce(b"old", 20)
        c = consumer(broker, topic, group_id=group)
        try:
            await c.start()
            (recs,) = await read([c], 20)
            assert sorted(r.value for r in recs) == sorted(b"old%d" % i for i in range(20))
            assert await c.committed(tp0) is None
            await c.commit()  # the consumed positions: 10 and 10
            assert (await c.committed(tp0), await c.committed(tp1)) == (10, 10)
            # An explicit commit with metadata moves tp1 back to 4.
            await c.commit({tp1: OffsetAndMetadata(4, "half-way")})
            assert (await c.committed(tp0), await c.committed(tp1)) == (10, 4)
        finally:
            await stop_all(c)
        await produce(b"new", 10)

    async def second():
        a = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=REQUEST_TIMEOUT_MS)
        c = consumer(broker, topic, group_id=group)
        try:
            await a.start()
            offsets = await a.list_consumer_group_offsets(group)
            assert offsets == {tp0: OffsetAndMetadata(10, ""), tp1: OffsetAndMetadata(4, "half-way")}
            await c.start()
            (recs,) = await read([c], 5 + 11)
            got = sorted((r.partition, r.offset, r.value) for r in recs)
            want = [(0, 10 + i, b"new%d" % (2 * i)) for i in range(5)]
            want += [(1, o, b"old%d" % (2 * o + 1)) for o in range(4, 10)]
            want += [(1, 10 + i, b"new%d" % (2 * i + 1)) for i in range(5)]
            assert got == sorted(want)
            await c.commit()
            assert (await c.committed(tp0), await c.committed(tp1)) == (15, 15)
        finally:
            await stop_all(c, a)

    run(first(), 25)
    broker.restart(kill9=True)  # committed offsets must survive kill -9
    run(second(), 25)


@pytest.mark.broker_overrides(FAST_GROUPS)
def test_static_members_get_their_partitions_back(broker):
    """group_instance_id (JoinGroup v5): a static member that stops does not leave the group; when
    it comes back under the same instance id it gets the same partitions and the other member
    keeps its own."""
    topic, group = unique(), unique("g")
    ck.create_topic(broker.bootstrap, topic, partitions=4)

    async def go():
        a = consumer(broker, topic, group_id=group, group_instance_id="inst-a", session_timeout_ms=10000)
        b = consumer(broker, topic, group_id=group, group_instance_id="inst-b", session_timeout_ms=10000)
        a2 = consumer(broker, topic, group_id=group, group_instance_id="inst-a", session_timeout_ms=10000)
        try:
            await asyncio.gather(a.start(), b.start())
            before = await wait_split([a, b], topic, 4)
            generation = b._coordinator.generation
            assert a._coordinator.generation == generation
            await a.stop()  # no LeaveGroup for a static member
            await a2.start()
            after = await wait_split([a2, b], topic, 4)
            assert after == before
            # Kafka hands the returning instance its old assignment without a rebalance.
            assert (a2._coordinator.generation, b._coordinator.generation) == (generation, generation)
        finally:
            await stop_all(a, a2, b)

    run(go())


def test_idempotent_producer_across_broker_restart(broker):
    topic = unique()
    ck.create_topic(broker.bootstrap, topic, partitions=2)

    async def go():
        p = producer(broker, enable_idempotence=True, linger_ms=20, retry_backoff_ms=200)
        c = consumer(broker)
        try:
            await p.start()
            metas = await asyncio.gather(*[await p.send(topic, value=b"x%d" % i, partition=i % 2) for i in range(40)])
            assert [(m.partition, m.offset) for m in metas] == [(i % 2, i // 2) for i in range(40)]
            pid, epoch = p._txn_manager.producer_id, p._txn_manager.producer_epoch
            assert pid >= 0 and epoch == 0, (pid, epoch)

            # kill -9 and start again: the same producer continues its sequences; the broker must
            # have kept its state and accept them (no OutOfOrderSequence / UnknownProducerId).
            await asyncio.get_running_loop().run_in_executor(None, broker.restart)
            metas = await asyncio.gather(*[await p.send(topic, value=b"y%d" % i, partition=i % 2) for i in range(40)])
            assert [(m.partition, m.offset) for m in metas] == [(i % 2, 20 + i // 2) for i in range(40)]
            assert (p._txn_manager.producer_id, p._txn_manager.producer_epoch) == (pid, epoch)

            tps = [TopicPartition(topic, 0), TopicPartition(topic, 1)]
            await c.start()
            c.assign(tps)
            await c.seek_to_beginning(*tps)
            (recs,) = await read([c], 80)
            for q in range(2):
                got = [(r.offset, r.value) for r in recs if r.partition == q]
                want = [(i // 2, b"x%d" % i) for i in range(q, 40, 2)] + [(20 + i // 2, b"y%d" % i) for i in range(q, 40, 2)]
                assert got == want
            assert await c.end_offsets(tps) == {tps[0]: 40, tps[1]: 40}
        finally:
            await stop_all(c, p)

    run(go())


@pytest.mark.broker_overrides(FAST_GROUPS)
def test_admin_client_topics_records_configs_and_groups(broker):
    topic, group = unique(), unique("g")
    tp0 = TopicPartition(topic, 0)

    async def go():
        a = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=REQUEST_TIMEOUT_MS)
        p = producer(broker)
        c = consumer(broker, topic, group_id=group)
        try:
            await a.start()
            resp = await a.create_topics([NewTopic(topic, num_partitions=4, replication_factor=1,
                                                   topic_configs={"retention.ms": "86400000"})])
            assert [(t[0], t[1]) for t in resp.topic_errors] == [(topic, 0)]
            resp = await a.create_topics([NewTopic(topic, num_partitions=4, replication_factor=1)])
            assert [(t[0], t[1]) for t in resp.topic_errors] == [(topic, 36)]  # TOPIC_ALREADY_EXISTS
            assert topic in await a.list_topics()
            (desc,) = await a.describe_topics([topic])
            assert (desc["error_code"], desc["topic"]) == (0, topic)
            assert sorted(part["partition"] for part in desc["partitions"]) == [0, 1, 2, 3]

            # DeleteRecords moves the log start offset.
            await p.start()
            await asyncio.gather(*[await p.send(topic, value=b"%d" % i, partition=0) for i in range(10)])
            assert await a.delete_records({tp0: RecordsToDelete(4)}) == {tp0: 4}
            oc = consumer(broker)
            try:
                await oc.start()
                assert await oc.beginning_offsets([tp0]) == {tp0: 4}
                assert await oc.end_offsets([tp0]) == {tp0: 10}
                oc.assign([tp0])
                await oc.seek_to_beginning(tp0)
                (recs,) = await read([oc], 6)
                assert [(r.offset, r.value) for r in recs] == [(i, b"%d" % i) for i in range(4, 10)]
            finally:
                await stop_all(oc)

            # Topic configs: describe, alter, describe again.
            async def retention() -> list:
                (r,) = await a.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic, {"retention.ms": None})])
                return [(res[0], res[3], [(e[0], e[1]) for e in res[4]]) for res in r.resources]
            assert await retention() == [(0, topic, [("retention.ms", "86400000")])]
            (r,) = await a.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, {"retention.ms": "3600000"})])
            assert [(res[0], res[3]) for res in r.resources] == [(0, topic)]
            assert await retention() == [(0, topic, [("retention.ms", "3600000")])]

            resp = await a.create_partitions({topic: NewPartitions(6)})
            assert [(t[0], t[1]) for t in resp.topic_errors] == [(topic, 0)]
            (desc,) = await a.describe_topics([topic])
            assert sorted(part["partition"] for part in desc["partitions"]) == [0, 1, 2, 3, 4, 5]

            await c.start()
            await wait_split([c], topic, 6)
            await c.commit({TopicPartition(topic, 2): OffsetAndMetadata(7, "m")})
            assert await a.list_consumer_group_offsets(group) == {TopicPartition(topic, 2): OffsetAndMetadata(7, "m")}
            listed = [tuple(g[:2]) for g in await a.list_consumer_groups() if g[0] == group]
            assert listed == [(group, "consumer")]
            (groups_resp,) = await a.describe_consumer_groups([group])
            (g,) = groups_resp.to_object()["groups"]
            assert (g["error_code"], g["group"], g["state"], g["protocol_type"], g["protocol"]) == \
                (0, group, "Stable", "consumer", "roundrobin"), g
            assert [(m["client_id"], m["client_host"]) for m in g["members"]] == [("e2e-aiokafka", "/127.0.0.1")]

            resp = await a.delete_topics([topic])
            assert [(t[0], t[1]) for t in resp.topic_error_codes] == [(topic, 0)]
            deadline = time.monotonic() + 10
            while topic in await a.list_topics():
                assert time.monotonic() < deadline, "deleted topic still listed"
                await asyncio.sleep(0.2)
        finally:
            await stop_all(c, p, a)

    run(go())
