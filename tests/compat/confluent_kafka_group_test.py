"""confluent-kafka-python (librdkafka 2.0.2) consumer groups against runnel-broker.

Three members, each a child process running this file with --member (a confluent-kafka Consumer
subscribed to a four-partition topic, committing synchronously what it consumed after every
batch), go through harness.GroupScenario:
- the three join and own every partition exactly once; DescribeGroups (AdminClient.list_groups)
  shows a Stable group of three "consumer" members with their client ids;
- one member leaves cleanly (SIGTERM: close() commits and sends LeaveGroup), the other two take
  its partitions over; another is killed with SIGKILL, and once the session timeout (6 s) expires
  the last member owns every partition;
- every record produced in the three phases was consumed at least once by the group, and one
  offset of a partition never came with two values.
Then the group's committed offsets (Consumer.committed, OffsetFetch) are the end of every
partition; they are the same after a clean restart of the broker and again after kill -9 and a
restart; and a new member resumes from them, reading only records produced after the restart.

Run with --mock instead of the broker's path to run the same scenario against librdkafka's mock
cluster (without the broker restarts and DescribeGroups).
"""

import signal
import sys

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

import harness
from harness import (Broker, GroupMember, GroupScenario, WorkDir, check,
                     check_committed_survive_restarts, create_group_topic,
                     group_test_target, json_line)

TOPIC = "cfk-group"
GROUP = "cfk-group"
# Four partitions: as many as the mock cluster gives a topic, so --mock runs the same test.
PARTITIONS = 4
PER_PHASE = 50
TIMEOUT_S = 30
# Records a member takes from the client per poll; it commits after each such batch.
BATCH_RECORDS_MAX = 100
POLL_TIMEOUT_S = 0.2


def consumer_config(bootstrap, client_id):
    return {"bootstrap.servers": bootstrap, "group.id": GROUP, "client.id": client_id,
            "enable.auto.commit": False, "auto.offset.reset": "earliest",
            "session.timeout.ms": harness.GROUP_SESSION_TIMEOUT_MS,
            "heartbeat.interval.ms": harness.GROUP_HEARTBEAT_INTERVAL_MS}


def member_main(bootstrap, name):
    """A group member: prints its events (harness.GroupMember's format) until SIGTERM."""
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    out = sys.stdout
    consumer = Consumer(consumer_config(bootstrap, name))
    consumer.subscribe(
        [TOPIC],
        on_assign=lambda _, tps: json_line(out, {"assigned": [tp.partition for tp in tps]}),
        on_revoke=lambda _, tps: json_line(out, {"revoked": [tp.partition for tp in tps]}))
    while not stopping:
        next_offsets = {}
        for message in consumer.consume(BATCH_RECORDS_MAX, POLL_TIMEOUT_S):
            if message.error():
                json_line(out, {"error": str(message.error())})
                continue
            json_line(out, {"p": message.partition(), "o": message.offset(),
                            "v": message.value().decode()})
            next_offsets[message.partition()] = message.offset() + 1
        if next_offsets:
            try:
                consumer.commit(offsets=[TopicPartition(TOPIC, p, o)
                                         for p, o in sorted(next_offsets.items())],
                                asynchronous=False)
            except KafkaException as e:
                # A commit during a rebalance fails; the records are read again by the next owner.
                json_line(out, {"error": f"commit: {e}"})
    consumer.close()


def produce(bootstrap, batch):
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5,
                         "enable.idempotence": True})
    errors = []
    for partition, items in batch.items():
        for key, value in items:
            producer.produce(TOPIC, key=key.encode(), value=value.encode(), partition=partition,
                             on_delivery=lambda err, _: err is not None and errors.append(err))
    remaining = producer.flush(TIMEOUT_S)
    check(remaining == 0 and not errors,
          f"produce: {remaining} records not delivered, errors {errors[:3]}")


def committed_offsets(bootstrap):
    """The group's committed offset of every partition (OffsetFetch), without joining."""
    consumer = Consumer(consumer_config(bootstrap, "offset-reader"))
    found = consumer.committed([TopicPartition(TOPIC, p) for p in range(PARTITIONS)],
                               timeout=TIMEOUT_S)
    consumer.close()
    for tp in found:
        check(tp.error is None, f"committed({tp.partition}): {tp.error}")
    return {tp.partition: tp.offset for tp in found}


def check_described_group(bootstrap, names):
    """DescribeGroups (through ListGroups) shows the stable group with exactly these members."""
    groups = AdminClient({"bootstrap.servers": bootstrap}).list_groups(GROUP, timeout=TIMEOUT_S)
    check(len(groups) == 1, f"list_groups({GROUP}) found {len(groups)} groups")
    group = groups[0]
    check(group.error is None, f"describe {GROUP}: {group.error}")
    check(group.state == "Stable", f"{GROUP} is in state {group.state}, expected Stable")
    check(group.protocol_type == "consumer", f"{GROUP} protocol type {group.protocol_type!r}")
    client_ids = sorted(m.client_id for m in group.members)
    check(client_ids == sorted(names), f"{GROUP} members have client ids {client_ids}")


def main():
    if sys.argv[1:2] == ["--member"]:
        member_main(sys.argv[2], sys.argv[3])
        return
    target = group_test_target()
    with target, WorkDir() as work_dir:
        create_group_topic(target, TOPIC, PARTITIONS)

        def new_member(name):
            return GroupMember(name, [sys.executable, "-B", __file__, "--member",
                                      target.bootstrap, name], work_dir)

        scenario = GroupScenario(PARTITIONS, PER_PHASE,
                                 lambda batch: produce(target.bootstrap, batch), new_member)
        is_broker = isinstance(target, Broker)
        if is_broker:
            scenario.after_join = lambda: check_described_group(target.bootstrap, ["a", "b", "c"])
        scenario.run()
        check_committed_survive_restarts(target, scenario, committed_offsets, ["clean", "kill9"])
        scenario.resume("d")
    print(f"confluent-kafka consumer group: OK (seconds to a stable assignment: "
          f"{scenario.timing_text()})")


if __name__ == "__main__":
    main()
