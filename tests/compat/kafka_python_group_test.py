"""kafka-python 2.0.2 (Debian's) consumer groups against runnel-broker.

kafka-python speaks the group protocol at the versions of the Kafka release it infers from
ApiVersions (JoinGroup up to v2, OffsetCommit v2, OffsetFetch v1), with its own range and
round-robin assignors and a background heartbeat thread. Three members, each a child process
running this file with --member (a KafkaConsumer subscribed to a four-partition topic with a
rebalance listener, committing synchronously what it consumed after every poll), go through
harness.GroupScenario:
- the three join and own every partition exactly once;
- one member leaves cleanly (SIGTERM: close() sends LeaveGroup), the other two take its
  partitions over; another is killed with SIGKILL, and once the session timeout (6 s) expires the
  last member owns every partition;
- every record produced (by KafkaProducer) was consumed at least once by the group, and one offset
  of a partition never came with two values.
Then the group's committed offsets (KafkaConsumer.committed, OffsetFetch) are the end of every
partition and are the same after kill -9 of the broker and a restart; and a new member resumes
from them, reading only records produced after the restart.

Run with --mock instead of the broker's path to run the same scenario against librdkafka's mock
cluster (without the broker restart); the mock's group support is made for librdkafka and now and
then answers kafka-python's SyncGroup with INVALID_REQUEST, which fails that run.
"""

import signal
import sys

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata

import harness
from harness import (GroupMember, GroupScenario, WorkDir, check_committed_survive_restarts,
                     create_group_topic, group_test_target, json_line)

TOPIC = "kp-group"
GROUP = "kp-group"
# Four partitions: as many as the mock cluster gives a topic, so --mock runs the same test.
PARTITIONS = 4
PER_PHASE = 50
TIMEOUT_S = 30
# Records a member takes from the client per poll; it commits after each poll.
BATCH_RECORDS_MAX = 100
POLL_TIMEOUT_MS = 200


def new_consumer(bootstrap, client_id):
    return KafkaConsumer(bootstrap_servers=bootstrap, group_id=GROUP, client_id=client_id,
                         enable_auto_commit=False, auto_offset_reset="earliest",
                         session_timeout_ms=harness.GROUP_SESSION_TIMEOUT_MS,
                         heartbeat_interval_ms=harness.GROUP_HEARTBEAT_INTERVAL_MS)


class Listener(ConsumerRebalanceListener):
    def __init__(self, out):
        self.out = out

    def on_partitions_revoked(self, revoked):
        json_line(self.out, {"revoked": sorted(tp.partition for tp in revoked)})

    def on_partitions_assigned(self, assigned):
        json_line(self.out, {"assigned": sorted(tp.partition for tp in assigned)})


def member_main(bootstrap, name):
    """A group member: prints its events (harness.GroupMember's format) until SIGTERM."""
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    out = sys.stdout
    consumer = new_consumer(bootstrap, name)
    consumer.subscribe([TOPIC], listener=Listener(out))
    while not stopping:
        next_offsets = {}
        polled = consumer.poll(timeout_ms=POLL_TIMEOUT_MS, max_records=BATCH_RECORDS_MAX)
        for tp, messages in sorted(polled.items()):
            for message in messages:
                json_line(out, {"p": tp.partition, "o": message.offset,
                                "v": message.value.decode()})
                next_offsets[tp] = OffsetAndMetadata(message.offset + 1, None)
        if next_offsets:
            try:
                consumer.commit(next_offsets)
            except KafkaError as e:
                # A commit during a rebalance fails; the records are read again by the next owner.
                json_line(out, {"error": f"commit: {e!r}"})
    consumer.close()


def produce(bootstrap, batch):
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    futures = [producer.send(TOPIC, key=key.encode(), value=value.encode(), partition=partition)
               for partition, items in batch.items() for key, value in items]
    producer.flush(TIMEOUT_S)
    for future in futures:
        future.get(timeout=TIMEOUT_S)
    producer.close(TIMEOUT_S)


def committed_offsets(bootstrap):
    """The group's committed offset of every partition (OffsetFetch), without joining."""
    consumer = new_consumer(bootstrap, "offset-reader")
    found = {p: consumer.committed(TopicPartition(TOPIC, p)) for p in range(PARTITIONS)}
    consumer.close(autocommit=False)
    return found


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
        scenario.run()
        check_committed_survive_restarts(target, scenario, committed_offsets, ["kill9"])
        scenario.resume("d")
    print(f"kafka-python consumer group: OK (seconds to a stable assignment: "
          f"{scenario.timing_text()})")


if __name__ == "__main__":
    main()
