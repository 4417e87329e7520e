"""The real chaos suite's workload: Jepsen's Kafka queue workload with confluent-kafka
(librdkafka), writing every operation as one JSON line on standard output (the history format of
chaos/src/real/history.rs).

  queue.py run   --bootstrap B --topic T --partitions N --producers P --consumers C --group G
                 --seconds S --t0 MS [--acks all|1] [--rate R]
  queue.py final --bootstrap B --topic T --partitions N --t0 MS [--acks all|1]

`run` keeps P producers sending unique values (producer id * 10^9 + sequence) round-robin over
the partitions, and C consumers of group G polling and committing synchronously every second,
for S seconds (or until SIGTERM). `final` sends one more value to every partition (liveness) and then reads every
partition from its start to its high watermark. Times are milliseconds since T0 (the run's start,
Unix epoch milliseconds). Errors are operations too: a send without an acknowledgement is
`unknown` (it may have been written), a failed commit is not recorded (it was not acknowledged).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Producer, TopicPartition

OUT_LOCK = threading.Lock()
# The suite that started this script; if it dies, so does the workload (no orphaned clients).
PARENT = os.getppid()


# Set by SIGTERM (the suite was interrupted): the loops end early, as at their deadline, so every
# send still ends in an operation and the consumers close cleanly.
STOP = threading.Event()


def orphaned() -> bool:
    return os.getppid() != PARENT


def done(deadline: float) -> bool:
    return time.monotonic() >= deadline or STOP.is_set() or orphaned()


def emit(op: dict) -> None:
    line = json.dumps(op, separators=(",", ":"))
    with OUT_LOCK:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


class Clock:
    def __init__(self, t0_ms: int):
        self.t0_ms = t0_ms

    def now(self) -> int:
        return max(0, int(time.time() * 1000) - self.t0_ms)


def producer_config(args) -> dict:
    conf = {
        "bootstrap.servers": args.bootstrap,
        "acks": args.acks,
        "linger.ms": 5,
        # Longer than any fault lasts. A message that times out locally makes librdkafka's
        # idempotent producer bump its epoch and resend what it had in flight to other
        # partitions under new sequence numbers, which duplicates whatever of it the broker had
        # already written (librdkafka's documented "drain and bump"; Kafka's broker accepts the
        # new epoch's sequence 0 as well). A 5-node run whose all-node restart outlasted a 20 s
        # timeout showed exactly that duplicate.
        "message.timeout.ms": 60000,
        "request.timeout.ms": 5000,
        "retry.backoff.ms": 100,
        "topic.metadata.refresh.interval.ms": 2000,
        "socket.connection.setup.timeout.ms": 3000,
    }
    # An idempotent producer needs acks=all; with acks=1 it is a plain producer (Kafka's rule).
    conf["enable.idempotence"] = args.acks == "all"
    return conf


def send_loop(args, clock: Clock, pid: int, deadline: float) -> None:
    p = Producer(producer_config(args))
    seq = 0
    interval = 1.0 / args.rate if args.rate > 0 else 0.0
    next_at = time.monotonic()

    def delivered(value: int, partition: int, sent_ms: int):
        def cb(err, msg):
            op = {"op": "send", "time_ms": clock.now(), "sent_ms": sent_ms, "process": pid, "partition": partition, "value": value}
            if err is None:
                op.update(outcome="acked", offset=msg.offset())
            else:
                op.update(outcome="unknown", error=str(err))
            emit(op)

        return cb

    while not done(deadline):
        value = pid * 1_000_000_000 + seq
        partition = seq % args.partitions
        seq += 1
        try:
            p.produce(args.topic, value=str(value).encode(), partition=partition, on_delivery=delivered(value, partition, clock.now()))
        except BufferError:
            p.poll(0.1)
            continue
        p.poll(0)
        next_at += interval
        pause = next_at - time.monotonic()
        if pause > 0:
            p.poll(pause)
    # Every send ends in an operation: acknowledged, failed, or timed out (message.timeout.ms).
    p.flush(50)


def consume_loop(args, clock: Clock, pid: int, deadline: float) -> None:
    epoch = [0]

    def on_assign(consumer, partitions):
        epoch[0] += 1

    def on_revoke(consumer, partitions):
        epoch[0] += 1

    c = Consumer(
        {
            "bootstrap.servers": args.bootstrap,
            "group.id": args.group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 1000,
            "topic.metadata.refresh.interval.ms": 2000,
            "socket.connection.setup.timeout.ms": 3000,
        }
    )
    c.subscribe([args.topic], on_assign=on_assign, on_revoke=on_revoke)
    last_commit = time.monotonic()
    try:
        while not done(deadline):
            msgs = c.consume(500, timeout=0.5)
            by_partition: dict[int, list] = {}
            for m in msgs:
                if m.error() is not None:
                    continue
                by_partition.setdefault(m.partition(), []).append([m.offset(), int(m.value())])
            for partition, records in by_partition.items():
                emit({"op": "poll", "time_ms": clock.now(), "process": pid, "epoch": epoch[0], "partition": partition, "records": records})
            if time.monotonic() - last_commit >= 1.0:
                last_commit = time.monotonic()
                try:
                    committed = c.commit(asynchronous=False)
                except KafkaException:
                    committed = None
                for tp in committed or []:
                    if tp.error is None and tp.offset >= 0:
                        emit({"op": "commit", "time_ms": clock.now(), "process": pid, "group": args.group, "partition": tp.partition, "offset": tp.offset})
    finally:
        c.close()


def run(args) -> None:
    clock = Clock(args.t0)
    deadline = time.monotonic() + args.seconds
    threads = [threading.Thread(target=send_loop, args=(args, clock, 1 + i, deadline), daemon=True) for i in range(args.producers)]
    threads += [threading.Thread(target=consume_loop, args=(args, clock, 101 + i, deadline), daemon=True) for i in range(args.consumers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(args.seconds + 60)


def final(args) -> None:
    clock = Clock(args.t0)
    # Liveness: the healed cluster takes a write on every partition.
    p = Producer(producer_config(args))
    for partition in range(args.partitions):
        value = 999 * 1_000_000_000 + partition

        def cb(err, msg, value=value, partition=partition, sent_ms=clock.now()):
            op = {"op": "send", "time_ms": clock.now(), "sent_ms": sent_ms, "process": 999, "partition": partition, "value": value}
            if err is None:
                op.update(outcome="acked", offset=msg.offset())
            else:
                op.update(outcome="unknown", error=str(err))
            emit(op)

        p.produce(args.topic, value=str(value).encode(), partition=partition, on_delivery=cb)
    p.flush(30)
    # Everything, from the start of every partition to its high watermark.
    c = Consumer({"bootstrap.servers": args.bootstrap, "group.id": "chaos-final-read", "enable.auto.commit": False})
    for partition in range(args.partitions):
        _, high = c.get_watermark_offsets(TopicPartition(args.topic, partition), timeout=20)
        records = []
        if high > 0:
            c.assign([TopicPartition(args.topic, partition, OFFSET_BEGINNING)])
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and (not records or records[-1][0] < high - 1):
                for m in c.consume(1000, timeout=1):
                    if m.error() is None:
                        records.append([m.offset(), int(m.value())])
            c.unassign()
        emit({"op": "final-read", "time_ms": clock.now(), "partition": partition, "records": records})
    c.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=["run", "final"])
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--partitions", type=int, required=True)
    ap.add_argument("--t0", type=int, required=True)
    ap.add_argument("--acks", choices=["all", "1"], default="all")
    ap.add_argument("--producers", type=int, default=2)
    ap.add_argument("--consumers", type=int, default=2)
    ap.add_argument("--group", default="chaos")
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--rate", type=float, default=200, help="sends per second per producer")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: STOP.set())
    run(args) if args.mode == "run" else final(args)


if __name__ == "__main__":
    main()
