"""kafka-python 2.0.2 (Debian's) against runnel-broker.

kafka-python does not negotiate versions: it infers a Kafka release from the ApiVersions ranges and
then sends that release's fixed versions, so this also checks that the advertised ranges look like
a real release. Checks:
- the inferred broker version is a real release at least 2.1 (zstd needs Produce v7);
- KafkaAdminClient: create topics with configs, describe configs, delete a topic;
- KafkaProducer: keys, values, headers, null keys and values, explicit partitions, acks=all, one
  topic per codec kafka-python supports (none, gzip, snappy, lz4, zstd);
- KafkaConsumer without a group (assign + seek_to_beginning): every record back, same key, value
  and headers, in order per partition at consecutive offsets; beginning_offsets, end_offsets and
  offsets_for_times (ListOffsets).
"""

import time

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic
from kafka.errors import TopicAlreadyExistsError

from harness import Broker, check, compare_partition, main_binary, make_records

PARTITIONS = 2
PER_PARTITION = 200
CODECS = [None, "gzip", "snappy", "lz4", "zstd"]
TIMEOUT_S = 30


def produce_all(bootstrap, topic, records, codec):
    producer = KafkaProducer(bootstrap_servers=bootstrap, compression_type=codec, acks="all",
                             linger_ms=5)
    futures = []
    for partition, items in records.items():
        for key, value, headers in items:
            futures.append((partition, producer.send(topic, key=key, value=value,
                                                     headers=headers, partition=partition)))
    producer.flush(TIMEOUT_S)
    offsets = {p: [] for p in records}
    for partition, future in futures:
        metadata = future.get(timeout=TIMEOUT_S)
        check(metadata.partition == partition, f"{topic}: record went to {metadata.partition}")
        offsets[partition].append(metadata.offset)
    for partition, items in records.items():
        check(sorted(offsets[partition]) == list(range(len(items))),
              f"{topic}[{partition}]: acknowledged offsets are not 0..n-1")
    producer.close(TIMEOUT_S)


def consume_all(bootstrap, topic, records):
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                             enable_auto_commit=False, auto_offset_reset="earliest")
    partitions = [TopicPartition(topic, p) for p in records]
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    got = {p: [] for p in records}
    total = sum(len(items) for items in records.values())
    deadline = time.monotonic() + TIMEOUT_S
    while sum(len(v) for v in got.values()) < total and time.monotonic() < deadline:
        for tp, messages in consumer.poll(timeout_ms=500).items():
            for message in messages:
                check(message.offset == len(got[tp.partition]),
                      f"{topic}[{tp.partition}]: offset {message.offset} after "
                      f"{len(got[tp.partition])} records")
                got[tp.partition].append((message.key, message.value, list(message.headers)))
    for partition in records:
        compare_partition(f"{topic}[{partition}]", records[partition], got[partition])

    beginning = consumer.beginning_offsets(partitions)
    end = consumer.end_offsets(partitions)
    for tp in partitions:
        check(beginning[tp] == 0, f"{tp}: beginning offset {beginning[tp]}")
        check(end[tp] == len(records[tp.partition]), f"{tp}: end offset {end[tp]}")
    past = int(time.time() * 1000) - 3_600_000
    found = consumer.offsets_for_times({partitions[0]: past})
    check(found[partitions[0]] is not None and found[partitions[0]].offset == 0,
          f"offsets_for_times(past) = {found[partitions[0]]}")
    consumer.close()


def main():
    binary = main_binary()
    records = make_records(PARTITIONS, PER_PARTITION, seed=2)
    with Broker(binary) as broker:
        admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
        version = admin.config["api_version"]
        check(tuple(version) >= (2, 1), f"kafka-python inferred broker version {version}")
        topics = [f"kp-{codec or 'none'}" for codec in CODECS]
        admin.create_topics([NewTopic(name, PARTITIONS, 1, topic_configs={"segment.bytes": "1048576"})
                             for name in topics + ["kp-doomed"]], timeout_ms=TIMEOUT_S * 1000)
        try:
            admin.create_topics([NewTopic("kp-none", 1, 1)], timeout_ms=TIMEOUT_S * 1000)
            check(False, "creating an existing topic succeeded")
        except TopicAlreadyExistsError:
            pass

        described = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, "kp-gzip")])
        entries = {entry[0]: entry[1] for entry in described[0].resources[0][4]}
        check(entries.get("segment.bytes") == "1048576",
              f"segment.bytes described as {entries.get('segment.bytes')}")

        for codec, topic in zip(CODECS, topics):
            produce_all(broker.bootstrap, topic, records, codec)
            consume_all(broker.bootstrap, topic, records)

        admin.delete_topics(["kp-doomed"], timeout_ms=TIMEOUT_S * 1000)
        deadline = time.monotonic() + TIMEOUT_S
        while "kp-doomed" in admin.list_topics():
            check(time.monotonic() < deadline, "deleted topic still listed")
            time.sleep(0.2)
        admin.close()
    print(f"kafka-python compatibility (broker version inferred as {version}): OK")


if __name__ == "__main__":
    main()
