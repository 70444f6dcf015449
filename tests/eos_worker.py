"""A consume-transform-produce worker with exactly-once semantics, for
test_transactions.py: reads IN (read_committed, group GROUP), writes
b"out-" + value to OUT and commits the input offsets in the same transaction.

usage: eos_worker.py BOOTSTRAP IN OUT GROUP TXN_ID [--exit-when-idle]
"""

import sys
import time

from confluent_kafka import Consumer, KafkaException, Producer


def main() -> int:
    bootstrap, src, dst, group, txn_id = sys.argv[1:6]
    exit_when_idle = "--exit-when-idle" in sys.argv[6:]
    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "broker.address.family": "v4",
        "group.id": group,
        "isolation.level": "read_committed",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": 6000,
    })
    producer = Producer({
        "bootstrap.servers": bootstrap,
        "broker.address.family": "v4",
        "transactional.id": txn_id,
        "linger.ms": 5,
    })
    producer.init_transactions(60)
    consumer.subscribe([src])
    idle_since = time.monotonic()
    while True:
        msgs = [m for m in consumer.consume(200, timeout=0.5) if not m.error()]
        if not msgs:
            if exit_when_idle and time.monotonic() - idle_since > 8:
                break
            continue
        idle_since = time.monotonic()
        producer.begin_transaction()
        for m in msgs:
            producer.produce(dst, key=m.key(), value=b"out-" + m.value(), partition=m.partition())
        try:
            producer.send_offsets_to_transaction(
                consumer.position(consumer.assignment()),
                consumer.consumer_group_metadata(), 30)
            producer.commit_transaction(30)
        except KafkaException as e:
            print(f"transaction failed: {e}", flush=True)
            return 3
    consumer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
