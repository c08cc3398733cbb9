"""confluent-kafka-python (librdkafka 2.0.2) against runnel-broker.

Checks, with Debian's confluent-kafka 1.7.0:
- AdminClient: create topics (with configs), create an existing one (TOPIC_ALREADY_EXISTS), list
  topics, describe a topic's configs, delete a topic;
- Producer: keys, values, headers, null keys and values, explicit partitions, acks=all, one topic
  per compression codec (none, gzip, snappy, lz4, zstd), and an idempotent producer;
- Consumer (partitions assigned by hand, from the beginning): every record comes back with the
  same key, value and headers, in order per partition, at consecutive offsets;
- offsets_for_times and get_watermark_offsets (ListOffsets);
- SIGTERM stops the broker with exit status 0, and a restart serves every record again.
"""

import time

from confluent_kafka import (OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer,
                             TopicPartition)
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from harness import Broker, check, compare_partition, fail, main_binary, make_records

PARTITIONS = 3
PER_PARTITION = 300
CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
TIMEOUT_S = 30


def create_topics(admin, names, config=None):
    futures = admin.create_topics(
        [NewTopic(name, num_partitions=PARTITIONS, replication_factor=1, config=config or {})
         for name in names], operation_timeout=TIMEOUT_S)
    for name, future in futures.items():
        future.result(timeout=TIMEOUT_S)


def produce_all(bootstrap, topic, records, codec, idempotent=False):
    config = {"bootstrap.servers": bootstrap, "compression.type": codec, "acks": "all",
              "linger.ms": 5}
    if idempotent:
        config["enable.idempotence"] = True
    producer = Producer(config)
    errors = []
    delivered = []

    def on_delivery(err, message):
        if err is not None:
            errors.append(err)
        else:
            delivered.append((message.partition(), message.offset()))

    for partition, items in records.items():
        for key, value, headers in items:
            producer.produce(topic, key=key, value=value, headers=headers, partition=partition,
                             on_delivery=on_delivery)
            producer.poll(0)
    remaining = producer.flush(TIMEOUT_S)
    check(remaining == 0, f"{topic}: {remaining} records not delivered")
    check(not errors, f"{topic}: delivery errors {errors[:3]}")
    total = sum(len(items) for items in records.values())
    check(len(delivered) == total, f"{topic}: {len(delivered)} delivered of {total}")
    for partition in records:
        offsets = sorted(o for p, o in delivered if p == partition)
        check(offsets == list(range(len(records[partition]))),
              f"{topic}[{partition}]: delivered offsets are not 0..n-1")


def consume_all(bootstrap, topic, records):
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "runnel-compat",
                         "enable.auto.commit": False, "enable.partition.eof": True})
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in records])
    got = {p: [] for p in records}
    at_eof = set()
    deadline = time.monotonic() + TIMEOUT_S
    while len(at_eof) < len(records) and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is None:
            continue
        if message.error():
            if message.error().code() == KafkaError._PARTITION_EOF:
                if len(got[message.partition()]) >= len(records[message.partition()]):
                    at_eof.add(message.partition())
                continue
            fail(f"{topic}: consume error {message.error()}")
        partition = message.partition()
        check(message.offset() == len(got[partition]),
              f"{topic}[{partition}]: offset {message.offset()} after {len(got[partition])} records")
        headers = [(k, v) for k, v in (message.headers() or [])]
        got[partition].append((message.key(), message.value(), headers))
    consumer.close()
    for partition in records:
        compare_partition(f"{topic}[{partition}]", records[partition], got[partition])


def check_offsets(bootstrap, topic, records):
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "runnel-compat-offsets"})
    for partition, items in records.items():
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition),
                                                   timeout=TIMEOUT_S)
        check((low, high) == (0, len(items)),
              f"{topic}[{partition}]: watermarks {(low, high)}, expected {(0, len(items))}")
    # Every record was produced after this time, so the first offset at or after it is 0; a time
    # in the future has no offset (-1).
    past = int(time.time() * 1000) - 3_600_000
    future = int(time.time() * 1000) + 3_600_000
    found = consumer.offsets_for_times(
        [TopicPartition(topic, 0, past), TopicPartition(topic, 1, future)], timeout=TIMEOUT_S)
    check(found[0].offset == 0, f"offsets_for_times(past) = {found[0].offset}, expected 0")
    check(found[1].offset == -1, f"offsets_for_times(future) = {found[1].offset}, expected -1")
    consumer.close()


def main():
    binary = main_binary()
    records = make_records(PARTITIONS, PER_PARTITION, seed=1)
    broker = Broker(binary)
    with broker:
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        topics = [f"cfk-{codec}" for codec in CODECS]
        create_topics(admin, topics, config={"retention.ms": "86400000"})
        create_topics(admin, ["cfk-idempotent", "cfk-doomed"])

        futures = admin.create_topics([NewTopic("cfk-none", 1, 1)])
        try:
            futures["cfk-none"].result(timeout=TIMEOUT_S)
            fail("creating an existing topic succeeded")
        except KafkaException as e:
            check(e.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS,
                  f"creating an existing topic: {e}")

        listed = admin.list_topics(timeout=TIMEOUT_S).topics
        for name in topics + ["cfk-idempotent", "cfk-doomed"]:
            check(name in listed, f"list_topics lacks {name}")
            check(len(listed[name].partitions) == PARTITIONS, f"{name}: wrong partition count")

        described = admin.describe_configs([ConfigResource("topic", "cfk-gzip")])
        configs = list(described.values())[0].result(timeout=TIMEOUT_S)
        check(configs["retention.ms"].value == "86400000",
              f"retention.ms described as {configs['retention.ms'].value}")
        check("cleanup.policy" in configs, "describe_configs lacks cleanup.policy")

        for codec, topic in zip(CODECS, topics):
            produce_all(broker.bootstrap, topic, records, codec)
            consume_all(broker.bootstrap, topic, records)
        produce_all(broker.bootstrap, "cfk-idempotent", records, "lz4", idempotent=True)
        consume_all(broker.bootstrap, "cfk-idempotent", records)
        check_offsets(broker.bootstrap, "cfk-gzip", records)

        deleted = admin.delete_topics(["cfk-doomed"], operation_timeout=TIMEOUT_S)
        deleted["cfk-doomed"].result(timeout=TIMEOUT_S)
        deadline = time.monotonic() + TIMEOUT_S
        while "cfk-doomed" in admin.list_topics(timeout=TIMEOUT_S).topics:
            check(time.monotonic() < deadline, "deleted topic still listed")
            time.sleep(0.2)

        # A clean restart keeps everything.
        broker.stop()
        broker.start()
        for topic in topics:
            consume_all(broker.bootstrap, topic, records)
    print("confluent-kafka compatibility: OK")


if __name__ == "__main__":
    main()
