"""kcat 1.7.1 (librdkafka 2.0.2) balanced consumer groups (kcat -G) against runnel-broker.

Three `kcat -G` processes, each printing every record it consumes (partition, offset, value) to
stdout unbuffered and librdkafka's rebalances ("assigned: ..." and "revoked: ...") to stderr, with
librdkafka's automatic offset commits, go through harness.GroupScenario on a four-partition topic:
- the three join and own every partition exactly once;
- one leaves cleanly (SIGTERM: kcat closes its consumer, which commits and sends LeaveGroup), the
  other two take its partitions over; another is killed with SIGKILL, and once the session timeout
  (6 s) expires the last one owns every partition;
- every record produced (by `kcat -P`, with keys, acks=all) was consumed at least once by the
  group, and one offset of a partition never came with two values.
Then the broker is killed with SIGKILL and restarted, and a new `kcat -G` member of the group
resumes from the committed offsets: it reads exactly the records produced after the restart,
nothing from before (which it would with lost offsets, since it starts from the earliest offset
where there is none) and nothing less.

Run with --mock instead of the broker's path to run the same scenario against librdkafka's mock
cluster (without the broker restart).
"""

import re
import subprocess

import harness
from harness import (Broker, GroupMember, GroupScenario, WorkDir, check, create_group_topic, fail,
                     group_test_target)

TOPIC = "kcat-group"
GROUP = "kcat-group"
# Four partitions: as many as the mock cluster gives a topic, so --mock runs the same test.
PARTITIONS = 4
PER_PHASE = 50
TIMEOUT_S = 30
# librdkafka commits the consumed position this often, and once more when kcat closes.
AUTO_COMMIT_INTERVAL_MS = 500

# librdkafka's rebalance as kcat prints it:
#   % Group G rebalanced (memberid M): assigned: T [0], T [1]
REBALANCE_LINE = re.compile(
    r"^% Group \S+ rebalanced \(memberid [^)]*\): (assigned|revoked): (.*)$")
PARTITION_ITEM = re.compile(r"\[(\d+)\]")


class KcatMember(GroupMember):
    """A `kcat -G` process: records on stdout as "partition offset value", rebalances on stderr."""

    def read_events(self):
        events = []
        with open(self.error_path, "r", errors="replace") as f:
            for line in f:
                match = REBALANCE_LINE.match(line.rstrip("\n"))
                if match and line.endswith("\n"):
                    partitions = {int(p) for p in PARTITION_ITEM.findall(match.group(2))}
                    events.append((match.group(1), partitions))
        with open(self.output_path, "r", errors="replace") as f:
            for line in f:
                if not line.endswith("\n"):
                    break
                fields = line.split()
                check(len(fields) == 3, f"{self.name}: unexpected output line {line!r}")
                events.append(("record", (int(fields[0]), int(fields[1]), fields[2])))
        return events


def kcat(args, input_bytes=None):
    result = subprocess.run(["kcat"] + args, input=input_bytes, capture_output=True,
                            timeout=TIMEOUT_S * 2)
    if result.returncode != 0:
        fail(f"kcat {' '.join(args)} exited {result.returncode}: {result.stderr.decode()[-2000:]}")


def produce(bootstrap, batch):
    for partition, items in batch.items():
        payload = "".join(f"{key}:{value}\n" for key, value in items).encode()
        kcat(["-P", "-b", bootstrap, "-t", TOPIC, "-p", str(partition), "-K", ":",
              "-X", "acks=all"], payload)


def main():
    target = group_test_target()
    with target, WorkDir() as work_dir:
        create_group_topic(target, TOPIC, PARTITIONS)

        def new_member(name):
            return KcatMember(name, [
                "kcat", "-b", target.bootstrap, "-G", GROUP, TOPIC, "-u", "-f", "%p %o %s\\n",
                "-X", f"client.id={name}", "-X", "auto.offset.reset=earliest",
                "-X", f"session.timeout.ms={harness.GROUP_SESSION_TIMEOUT_MS}",
                "-X", f"heartbeat.interval.ms={harness.GROUP_HEARTBEAT_INTERVAL_MS}",
                "-X", f"auto.commit.interval.ms={AUTO_COMMIT_INTERVAL_MS}"], work_dir)

        scenario = GroupScenario(PARTITIONS, PER_PHASE,
                                 lambda batch: produce(target.bootstrap, batch), new_member)
        scenario.run()
        if isinstance(target, Broker):
            target.kill9()
            target.start()
        scenario.resume("d")
    print(f"kcat consumer group: OK (seconds to a stable assignment: {scenario.timing_text()})")


if __name__ == "__main__":
    main()
