"""Shared pieces of the compatibility tests: a runnel-broker child process and the test records.

Each compatibility test is a Python program run by CTest as
    /usr/bin/python3 tests/compat/<client>_test.py <path of runnel-broker>
It starts its own broker on a free loopback port with a fresh data directory, drives a real Kafka
client against it, checks what comes back, stops the broker with SIGTERM (which must exit 0), and
exits non-zero with a message on the first mismatch.
"""

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
