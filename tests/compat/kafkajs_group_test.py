"""kafkajs 2.2.4 (npm) consumer groups against runnel-broker.

tests/compat/kafkajs/group.js runs the kafkajs side (see its header): group members, a producer
and an admin client's fetchOffsets. Three members, each a node process (a kafkajs consumer with
consumer.run, committing automatically after every batch; kafkajs speaks JoinGroup v5, SyncGroup
v3, Heartbeat v3 and its own round-robin assignor), go through harness.GroupScenario on a
four-partition topic:
- the three join and own every partition exactly once;
- one leaves cleanly (SIGTERM: disconnect() commits and sends LeaveGroup), the other two take its
  partitions over; another is killed with SIGKILL, and once the session timeout (6 s) expires the
  last one owns every partition;
- every record produced (by the kafkajs producer, acks=all) was consumed at least once by the
  group, and one offset of a partition never came with two values.
Then the group's committed offsets (admin.fetchOffsets, OffsetFetch) are the end of every
partition and are the same after a clean restart of the broker; and a new member resumes from
them, reading only records produced after the restart.

There is no --mock run as in the other group tests: librdkafka's mock cluster answers kafkajs's
SyncGroup with INVALID_REQUEST.
"""

import json
import os
import subprocess
import sys

from harness import (GroupMember, GroupScenario, WorkDir, check, check_committed_survive_restarts,
                     create_group_topic, fail,
                     group_test_target)

TOPIC = "kjs-group"
GROUP = "kjs-group"
# Four partitions: as many as the mock cluster gives a topic, so --mock runs the same test.
PARTITIONS = 4
PER_PHASE = 50
# How long one group.js produce or offsets run may take (node starts in about half a second).
SCRIPT_TIMEOUT_S = 60
SCRIPT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "kafkajs")


def group_js(args, input_text=None):
    result = subprocess.run(["node", "group.js"] + args, cwd=SCRIPT_DIR, input=input_text,
                            capture_output=True, text=True, timeout=SCRIPT_TIMEOUT_S)
    if result.returncode != 0:
        fail(f"group.js {' '.join(args)} exited {result.returncode}: {result.stderr[-3000:]}")
    return result.stdout


def produce(bootstrap, batch):
    group_js(["produce", bootstrap, TOPIC], json.dumps(batch))


def committed_offsets(bootstrap):
    found = json.loads(group_js(["offsets", bootstrap, GROUP, TOPIC]))
    return {int(p): offset for p, offset in found.items()}


def main():
    check(os.path.isdir(os.path.join(SCRIPT_DIR, "node_modules", "kafkajs")),
          "kafkajs is not installed: run scripts/install-deps")
    check(sys.argv[1:] != ["--mock"], "librdkafka's mock cluster cannot serve kafkajs's SyncGroup")
    target = group_test_target()
    with target, WorkDir() as work_dir:
        create_group_topic(target, TOPIC, PARTITIONS)

        def new_member(name):
            return GroupMember(name, ["node", "group.js", "member", target.bootstrap, GROUP, TOPIC,
                                      name], work_dir, cwd=SCRIPT_DIR)

        scenario = GroupScenario(PARTITIONS, PER_PHASE,
                                 lambda batch: produce(target.bootstrap, batch), new_member)
        scenario.run()
        check_committed_survive_restarts(target, scenario, committed_offsets, ["clean"])
        scenario.resume("d")
    print(f"kafkajs consumer group: OK (seconds to a stable assignment: {scenario.timing_text()})")


if __name__ == "__main__":
    main()
