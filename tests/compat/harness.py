"""Shared pieces of the compatibility tests: a runnel-broker child process and the test records.

Each compatibility test is a Python program run by CTest as
    /usr/bin/python3 tests/compat/<client>_test.py <path of runnel-broker>
It starts its own broker on a free loopback port with a fresh data directory, drives a real Kafka
client against it, checks what comes back, stops the broker with SIGTERM (which must exit 0), and
exits non-zero with a message on the first mismatch.

The consumer-group tests (*_group_test.py) share GroupScenario below: members are child processes
(GroupMember) whose event files the test reads; see the section "Consumer groups".
"""

import atexit
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

# How long the broker may take to print its ready line.
BROKER_START_TIMEOUT_S = 30
# How long a clean shutdown may take after SIGTERM.
BROKER_STOP_TIMEOUT_S = 30
READY_MARKER = "listening on"


def fail(message):
    print(f"FAIL: {message}", file=sys.stderr, flush=True)
    sys.exit(1)


def check(condition, message):
    if not condition:
        fail(message)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    """runnel-broker as a child process. Use as a context manager; stop() checks a clean exit."""

    def __init__(self, binary, extra_args=(), config_text=None):
        """config_text: the broker's configuration file (Protobuf text format), if any."""
        self.binary = binary
        self.extra_args = list(extra_args)
        self.data_dir = tempfile.mkdtemp(prefix="runnel-compat-")
        if config_text is not None:
            self.config_path = self.data_dir + "-broker.conf"
            with open(self.config_path, "w") as f:
                f.write(config_text)
            self.extra_args.append(f"--config={self.config_path}")
        else:
            self.config_path = None
        self.port = free_port()
        self.process = None
        self.log_path = os.path.join(self.data_dir + "-broker.log")

    @property
    def bootstrap(self):
        return f"127.0.0.1:{self.port}"

    def start(self):
        # The log is appended to across restarts: only what this start writes counts.
        log_start = os.path.getsize(self.log_path) if os.path.exists(self.log_path) else 0
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [self.binary, "--node-id=1", f"--listen=127.0.0.1:{self.port}",
             f"--data-dir={self.data_dir}"] + self.extra_args,
            stdout=log, stderr=log)
        log.close()
        deadline = time.monotonic() + BROKER_START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                fail(f"runnel-broker exited with {self.process.returncode} at start-up:\n"
                     + self.log_tail())
            with open(self.log_path, "r", errors="replace") as f:
                f.seek(log_start)
                if READY_MARKER in f.read():
                    return self
            time.sleep(0.05)
        fail("runnel-broker did not become ready:\n" + self.log_tail())

    def stop(self):
        """SIGTERM, then require exit status 0 within the timeout."""
        if self.process is None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(BROKER_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            fail("runnel-broker did not stop after SIGTERM:\n" + self.log_tail())
        self.process = None
        check(code == 0, f"runnel-broker exited with {code} after SIGTERM:\n" + self.log_tail())

    def kill9(self):
        self.process.kill()
        self.process.wait()
        self.process = None

    def log_tail(self, lines=40):
        try:
            with open(self.log_path, "r", errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return "(no log)"

    def __enter__(self):
        return self.start()

    def __exit__(self, kind, value, traceback):
        try:
            if kind is None:
                self.stop()
            elif self.process is not None:
                print(self.log_tail(), file=sys.stderr)
                self.process.kill()
                self.process.wait()
        finally:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            for path in (self.log_path, self.config_path):
                if path is not None and os.path.exists(path):
                    os.remove(path)
        return False


def make_records(partitions, per_partition, seed):
    """Records to produce: per partition, a list of (key, value, headers).

    Keys and values are bytes or None (null); every seventh value is null, every eleventh key is
    null (never together with the value); headers are a list of (str, bytes). Values vary in size up
    to 2 KiB so that compression has something to do. No header has a null value: kafka-python
    refuses them on produce, and Debian's confluent-kafka 1.7.0 loses a reference to None for each
    one it hands back, aborting the interpreter at exit (confluent-kafka-python issue 1191, fixed in
    1.8.2). Null header values are covered by the codec tests and Runnel's own client.
    """
    rng = random.Random(seed)
    result = {}
    for p in range(partitions):
        records = []
        for i in range(per_partition):
            # Never both key and value null: kafka-python refuses such a record.
            key = None if i % 11 == 5 and i % 7 != 3 else f"key-{p}-{i % 17}".encode()
            if i % 7 == 3:
                value = None
            else:
                size = rng.choice([0, 1, 10, 100, 1000, 2048])
                value = bytes(rng.choice(b"abcdefgh ") for _ in range(size))
            headers = [("seq", str(i).encode())]
            if i % 5 == 0:
                headers.append(("empty", b""))
            records.append((key, value, headers))
        result[p] = records
    return result


def compare_partition(label, expected, got):
    """Checks that `got` equals `expected` ((key, value, headers) tuples) in order."""
    check(len(got) == len(expected),
          f"{label}: consumed {len(got)} records, expected {len(expected)}")
    for i, (want, have) in enumerate(zip(expected, got)):
        check(want[0] == have[0], f"{label} record {i}: key {have[0]!r}, expected {want[0]!r}")
        check(want[1] == have[1],
              f"{label} record {i}: value {have[1]!r:.80}, expected {want[1]!r:.80}")
        check(list(want[2]) == list(have[2]),
              f"{label} record {i}: headers {have[2]!r}, expected {want[2]!r}")


def main_binary():
    if len(sys.argv) < 2:
        fail(f"usage: {sys.argv[0]} PATH-OF-runnel-broker")
    binary = sys.argv[1]
    check(os.access(binary, os.X_OK), f"{binary} is not an executable")
    return binary


# --- Consumer groups ----------------------------------------------------------------------------
#
# The group tests (tests/compat/*_group_test.py) share one scenario, GroupScenario: a group
# of three members, each a child process running one real client's group consumer, consumes a
# topic while one member leaves cleanly and one is killed with SIGKILL. Each member writes what it
# does to a file, one line per event, and flushes every line, so that what a killed member did
# before it died is still there. The test reads the files and checks the group as a whole.

# Kafka's smallest accepted session timeout (group.min.session.timeout.ms), which runnel-broker
# keeps: a killed member is noticed this long after its last heartbeat.
GROUP_SESSION_TIMEOUT_MS = 6000
# Members heartbeat often so that they hear of a rebalance quickly.
GROUP_HEARTBEAT_INTERVAL_MS = 500
# runnel-broker's configuration for the group tests: without the initial rebalance delay (Kafka's
# group.initial.rebalance.delay.ms, 3 s by default) the first join completes at once.
GROUP_BROKER_CONFIG = "groups { group_initial_rebalance_delay_ms: 0 }\n"
# How long the group may take to settle on an assignment after members join or leave cleanly.
REBALANCE_TIMEOUT_S = 30
# The same after a member is killed: the session timeout must expire first.
REBALANCE_AFTER_KILL_TIMEOUT_S = GROUP_SESSION_TIMEOUT_MS / 1000 + REBALANCE_TIMEOUT_S
# How long the group may take to consume what was produced.
GROUP_CONSUME_TIMEOUT_S = 30
# How long a member may take to leave the group and exit after SIGTERM.
MEMBER_STOP_TIMEOUT_S = 30
# How often the waits look at the members' files.
POLL_INTERVAL_S = 0.1
# How long creating and listing the test's topic may take.
TOPIC_SETUP_TIMEOUT_S = 30

_live_members = []


def _kill_live_members():
    """Kills every member still running when the test exits (also after fail())."""
    for member in list(_live_members):
        if member.process.poll() is None:
            member.process.kill()
            member.process.wait()


atexit.register(_kill_live_members)


class GroupMember:
    """One member of a consumer group: a child process whose event file this class reads.

    The default format of the event file is one JSON object per line:
      {"assigned": [partitions]}   the member now owns exactly these partitions;
      {"revoked": [partitions]}    the member gave these up (a rebalance is under way);
      {"p": partition, "o": offset, "v": value}   the member consumed a record (value as text);
      {"error": "text"}            something failed that the member tolerates (a failed commit);
    Subclasses for other output formats override read_events().
    """

    def __init__(self, name, argv, work_dir, cwd=None):
        self.name = name
        self.argv = argv
        self.cwd = cwd
        self.output_path = os.path.join(work_dir, f"{name}.out")
        self.error_path = os.path.join(work_dir, f"{name}.err")
        self.process = None
        self.state = "new"

    def start(self):
        with open(self.output_path, "wb") as out, open(self.error_path, "wb") as err:
            self.process = subprocess.Popen(self.argv, stdout=out, stderr=err, cwd=self.cwd)
        _live_members.append(self)
        self.state = "running"
        return self

    def stop(self):
        """SIGTERM: the member commits what it consumed, leaves the group and exits 0."""
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(MEMBER_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            fail(f"member {self.name} did not exit within {MEMBER_STOP_TIMEOUT_S} s of SIGTERM:\n"
                 + self.tail())
        _live_members.remove(self)
        self.state = "stopped"
        check(code == 0, f"member {self.name} exited with {code} after SIGTERM:\n" + self.tail())

    def kill9(self):
        """SIGKILL: the member vanishes without leaving; the coordinator must time it out."""
        self.process.kill()
        self.process.wait()
        _live_members.remove(self)
        self.state = "killed"

    def alive(self):
        return self.state == "running"

    def check_running(self):
        if self.alive() and self.process.poll() is not None:
            fail(f"member {self.name} exited with {self.process.returncode}:\n" + self.tail())

    def read_events(self):
        """Every event so far, in order: ("assigned", set), ("revoked", set),
        ("record", (partition, offset, value)) or ("error", text)."""
        events = []
        with open(self.output_path, "r", errors="replace") as f:
            for line in f:
                # A line without its newline is still being written.
                if not line.endswith("\n"):
                    break
                event = json.loads(line)
                if "assigned" in event:
                    events.append(("assigned", set(event["assigned"])))
                elif "revoked" in event:
                    events.append(("revoked", set(event["revoked"])))
                elif "p" in event:
                    events.append(("record", (event["p"], event["o"], event["v"])))
                elif "error" in event:
                    events.append(("error", event["error"]))
        return events

    def records(self):
        """(partition, offset, value) of every record this member consumed, in order."""
        return [data for kind, data in self.read_events() if kind == "record"]

    def assignment(self):
        """The partitions this member owns now by its own account (empty during a rebalance)."""
        owned = set()
        for kind, data in self.read_events():
            if kind == "assigned":
                owned = set(data)
            elif kind == "revoked":
                owned -= data
        return owned

    def tail(self, lines=15):
        parts = []
        for path in (self.output_path, self.error_path):
            try:
                with open(path, "r", errors="replace") as f:
                    last = "".join(f.readlines()[-lines:])
                parts.append(f"--- {os.path.basename(path)}\n{last}")
            except OSError:
                pass
        return "\n".join(parts)


def group_summary(members):
    """One line per member for failure messages: state, current assignment, records consumed."""
    return "\n".join(
        f"  {m.name} ({m.state}): owns {sorted(m.assignment())}, consumed {len(m.records())}"
        for m in members)


def wait_for_stable_assignment(members, partitions, timeout_s, what):
    """Waits until the running members own every partition exactly once, each at least one.

    Returns the seconds waited and the assignment (member name -> partitions)."""
    start = time.monotonic()
    while True:
        running = [m for m in members if m.alive()]
        for m in running:
            m.check_running()
        owned = {m.name: m.assignment() for m in running}
        every = [p for parts in owned.values() for p in parts]
        if (sorted(every) == list(range(partitions))
                and all(len(parts) > 0 for parts in owned.values())):
            return time.monotonic() - start, owned
        if time.monotonic() - start > timeout_s:
            fail(f"{what}: the running members did not own each of the {partitions} partitions "
                 f"exactly once within {timeout_s} s:\n" + group_summary(members))
        time.sleep(POLL_INTERVAL_S)


def wait_for_consumed(members, expected, timeout_s, what):
    """Waits until the members together consumed every (partition, value) in `expected`.

    Also checks that one offset of a partition always came with the same value."""
    start = time.monotonic()
    while True:
        for m in members:
            m.check_running()
        seen = {}
        for m in members:
            for partition, offset, value in m.records():
                earlier = seen.setdefault((partition, offset), value)
                check(earlier == value,
                      f"{what}: {m.name} read {value!r} at {partition}/{offset}, another member "
                      f"read {earlier!r} there")
        consumed = {(p, v) for (p, _), v in seen.items()}
        missing = expected - consumed
        if not missing:
            return
        if time.monotonic() - start > timeout_s:
            fail(f"{what}: {len(missing)} of {len(expected)} records not consumed within "
                 f"{timeout_s} s, e.g. {sorted(missing)[:5]}:\n" + group_summary(members))
        time.sleep(POLL_INTERVAL_S)


def group_values(partitions, start, count):
    """The records of one production phase: partition -> [(key, value)], values unique text."""
    return {p: [(f"key-{i % 5}", f"v-{p}-{i}") for i in range(start, start + count)]
            for p in range(partitions)}


def as_expected(batch):
    return {(p, value) for p, items in batch.items() for _, value in items}


class GroupScenario:
    """The shared shape of the group tests, with the client-specific parts passed in.

    produce(batch): writes batch (from group_values) to the topic, each record to its partition,
      and returns once every record is acknowledged.
    new_member(name): returns an unstarted GroupMember of the test's group, subscribed to its
      topic.
    """

    def __init__(self, partitions, per_phase, produce, new_member):
        self.partitions = partitions
        self.per_phase = per_phase
        self.produce = produce
        self.new_member = new_member
        self.produced = 0
        self.members = []
        self.timings = {}
        # Called once the three members own the partitions, for checks of the stable group.
        self.after_join = None

    def produce_phase(self):
        batch = group_values(self.partitions, self.produced, self.per_phase)
        self.produce(batch)
        self.produced += self.per_phase
        return as_expected(batch)

    def run(self):
        """Three members; one leaves, one is killed; every record is consumed at least once.

        On return every member has stopped and the survivor has committed its position."""
        a, b, c = (self.new_member(name) for name in ("a", "b", "c"))
        self.members = [a, b, c]
        for m in self.members:
            m.start()
        self.timings["join_s"], owned = wait_for_stable_assignment(
            self.members, self.partitions, REBALANCE_TIMEOUT_S, "three members joining")
        if self.after_join is not None:
            self.after_join()
        expected = self.produce_phase()
        wait_for_consumed(self.members, expected, GROUP_CONSUME_TIMEOUT_S, "first phase")

        a.stop()
        self.timings["leave_s"], owned = wait_for_stable_assignment(
            self.members, self.partitions, REBALANCE_TIMEOUT_S, f"after {a.name} left")
        check(set(owned) == {b.name, c.name}, f"after {a.name} left the owners are {owned}")
        expected |= self.produce_phase()
        wait_for_consumed(self.members, expected, GROUP_CONSUME_TIMEOUT_S, "second phase")

        b.kill9()
        self.timings["kill_s"], owned = wait_for_stable_assignment(
            self.members, self.partitions, REBALANCE_AFTER_KILL_TIMEOUT_S,
            f"after {b.name} was killed")
        check(set(owned) == {c.name}, f"after {b.name} was killed the owners are {owned}")
        expected |= self.produce_phase()
        wait_for_consumed(self.members, expected, GROUP_CONSUME_TIMEOUT_S, "third phase")
        c.stop()
        return expected

    def resume(self, name):
        """A new member of the same group resumes where the group's committed offsets say.

        Produces one more phase and checks that the member reads exactly that phase: nothing from
        before the committed offsets and nothing missing. Returns the member, stopped."""
        member = self.new_member(name)
        self.members.append(member)
        member.start()
        wait_for_stable_assignment([member], self.partitions, REBALANCE_TIMEOUT_S,
                                   f"{name} joining after the restart")
        expected = self.produce_phase()
        wait_for_consumed([member], expected, GROUP_CONSUME_TIMEOUT_S, f"{name} after the restart")
        member.stop()
        consumed = {(p, v) for p, _, v in member.records()}
        check(consumed == expected,
              f"{name} read {len(consumed - expected)} records from before the group's committed "
              f"offsets, e.g. {sorted(consumed - expected)[:5]}")
        return member

    def end_offsets(self):
        """What every partition's committed offset must be once everything was consumed."""
        return {p: self.produced for p in range(self.partitions)}

    def timing_text(self):
        return ", ".join(f"{k} {v:.1f}" for k, v in self.timings.items())


class WorkDir:
    """A temporary directory for member files, removed when the test passes."""

    def __enter__(self):
        self.path = tempfile.mkdtemp(prefix="runnel-group-")
        return self.path

    def __exit__(self, kind, value, traceback):
        if kind is None:
            shutil.rmtree(self.path, ignore_errors=True)
        else:
            print(f"member files kept in {self.path}", file=sys.stderr)
        return False


def json_line(stream, event):
    """Writes one event line for GroupMember and flushes it (a killed member keeps its lines)."""
    stream.write(json.dumps(event) + "\n")
    stream.flush()


class MockCluster:
    """librdkafka's mock cluster in a child process: a stand-in for Broker while developing a test.

    It has consumer groups but no CreateTopics (topics are created on first use with
    MOCK_PARTITIONS partitions) and keeps nothing across restarts, so start() and stop() exist only
    for the first start and the final stop."""

    def __init__(self):
        self.process = None
        self.bootstrap = None

    def start(self):
        self.process = subprocess.Popen(
            [sys.executable, "-B", os.path.abspath(__file__), "--host-mock-cluster"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        line = self.process.stdout.readline().decode().strip()
        check(line.startswith("bootstrap "), f"mock cluster host printed {line!r}")
        self.bootstrap = line.split()[1]
        return self

    def stop(self):
        self.process.stdin.close()
        self.process.wait(BROKER_STOP_TIMEOUT_S)

    def __enter__(self):
        return self.start()

    def __exit__(self, kind, value, traceback):
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        return False


# The partition count of a topic that librdkafka's mock cluster creates on first use.
MOCK_PARTITIONS = 4


def check_committed_survive_restarts(target, scenario, read_committed, restarts):
    """After scenario.run(): the group's committed offsets, as read_committed(bootstrap) reports
    them, must be the end of every partition; against a broker they must then stay the same across
    each restart in `restarts`, in order: "clean" (SIGTERM) or "kill9" (SIGKILL), each followed by a
    start on the same data directory. The mock cluster is not restarted."""
    committed = read_committed(target.bootstrap)
    check(committed == scenario.end_offsets(),
          f"committed offsets {committed}, expected {scenario.end_offsets()}")
    if not isinstance(target, Broker):
        return
    for restart in restarts:
        if restart == "clean":
            target.stop()
        else:
            target.kill9()
        target.start()
        after = read_committed(target.bootstrap)
        what = "a clean restart" if restart == "clean" else "kill -9 and a restart"
        check(after == committed, f"after {what} committed offsets are {after}, were {committed}")


def create_group_topic(target, topic, partitions):
    """Creates the topic of a group test (with confluent-kafka's admin client; the mock cluster
    creates it when its metadata is first asked for) and waits until it is listed."""
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic
    if isinstance(target, MockCluster):
        check(partitions == MOCK_PARTITIONS,
              f"the mock cluster gives a topic {MOCK_PARTITIONS} partitions, not {partitions}")
    else:
        admin = AdminClient({"bootstrap.servers": target.bootstrap})
        futures = admin.create_topics([NewTopic(topic, partitions, 1)])
        futures[topic].result(timeout=TOPIC_SETUP_TIMEOUT_S)
    listed = Producer({"bootstrap.servers": target.bootstrap}).list_topics(
        topic, timeout=TOPIC_SETUP_TIMEOUT_S).topics
    check(topic in listed and len(listed[topic].partitions) == partitions,
          f"topic {topic} is not listed with {partitions} partitions: {listed}")


def group_test_target():
    """The group tests' peer: runnel-broker (the path given) with GROUP_BROKER_CONFIG, or with
    --mock librdkafka's mock cluster, which tells a fault of the test or client from one of the
    broker (the steps that restart the broker are skipped)."""
    if sys.argv[1:] == ["--mock"]:
        return MockCluster()
    return Broker(main_binary(), config_text=GROUP_BROKER_CONFIG)


def _host_mock_cluster():
    """Runs a mock cluster inside a librdkafka client until stdin closes."""
    from confluent_kafka import Producer
    host = Producer({"bootstrap.servers": "", "test.mock.num.brokers": 1})
    broker = list(host.list_topics(timeout=10).brokers.values())[0]
    print(f"bootstrap {broker.host}:{broker.port}", flush=True)
    sys.stdin.read()


if __name__ == "__main__" and sys.argv[1:] == ["--host-mock-cluster"]:
    _host_mock_cluster()
