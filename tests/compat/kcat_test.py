"""kcat 1.7.1 (librdkafka 2.0.2) against runnel-broker.

Checks:
- `kcat -L -J`: metadata lists the broker and, after producing, the auto-created topic;
- `kcat -P` with keys (-K), headers (-H), null values and keys (-Z) and each compression codec
  (-z none, gzip, snappy, lz4, zstd), to explicit partitions; topics are auto-created on produce,
  with the partition count of the broker's configuration file (num_partitions);
- `kcat -C -e -J` from the beginning: every record back in order with its key, value, headers,
  offset and partition;
- `kcat -Q` (ListOffsets by time);
- after kill -9 and a restart every record is still there (kcat waits for acks=all before it exits,
  and the topics use the default flush policy, so every acknowledged record is durable).
"""

import json
import subprocess
import time

from harness import Broker, check, fail, main_binary

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
PARTITIONS = 2
PER_PARTITION = 150
TIMEOUT_S = 30
HEADERS = [("app", b"kcat"), ("run", b"")]


def kcat(args, input_bytes=None):
    result = subprocess.run(["kcat"] + args, input=input_bytes, capture_output=True,
                            timeout=TIMEOUT_S * 2)
    if result.returncode != 0:
        fail(f"kcat {' '.join(args)} exited {result.returncode}: {result.stderr.decode()[-2000:]}")
    return result.stdout


def lines_for(partition):
    """(key, value) pairs; '' stands for null with -Z. Keys and values are text without tabs."""
    items = []
    for i in range(PER_PARTITION):
        key = "" if i % 9 == 4 else f"k{partition}-{i % 13}"
        value = "" if i % 7 == 3 else f"value {partition} {i} " + "x" * (i * 7 % 300)
        items.append((key, value))
    return items


def produce(bootstrap, topic, codec, partition, items):
    payload = "".join(f"{k}\t{v}\n" for k, v in items).encode()
    args = ["-P", "-b", bootstrap, "-t", topic, "-p", str(partition), "-K", "\t", "-Z",
            "-z", codec, "-X", "acks=all"]
    for name, value in HEADERS:
        args += ["-H", f"{name}={value.decode()}"]
    kcat(args, payload)


def consume(bootstrap, topic, partition):
    out = kcat(["-C", "-b", bootstrap, "-t", topic, "-p", str(partition), "-o", "beginning",
                "-e", "-J", "-q"])
    return [json.loads(line) for line in out.decode().splitlines() if line.strip()]


def check_topic(bootstrap, topic):
    for partition in range(PARTITIONS):
        expected = lines_for(partition)
        got = consume(bootstrap, topic, partition)
        check(len(got) == len(expected),
              f"{topic}[{partition}]: consumed {len(got)}, expected {len(expected)}")
        for i, ((key, value), message) in enumerate(zip(expected, got)):
            label = f"{topic}[{partition}] record {i}"
            check(message["offset"] == i, f"{label}: offset {message['offset']}")
            check(message["partition"] == partition, f"{label}: partition {message['partition']}")
            check(message["key"] == (key or None), f"{label}: key {message['key']!r}")
            check(message["payload"] == (value or None), f"{label}: value {message['payload']!r:.60}")
            headers = message.get("headers") or []
            pairs = list(zip(headers[::2], headers[1::2]))
            check(pairs == [(n, v.decode()) for n, v in HEADERS], f"{label}: headers {headers}")


def main():
    binary = main_binary()
    broker = Broker(binary, config_text=f"num_partitions: {PARTITIONS}\n")
    with broker:
        metadata = json.loads(kcat(["-L", "-J", "-b", broker.bootstrap]))
        check(len(metadata["brokers"]) == 1, f"metadata brokers: {metadata['brokers']}")
        started_ms = int(time.time() * 1000)
        for codec in CODECS:
            topic = f"kcat-{codec}"
            for partition in range(PARTITIONS):
                produce(broker.bootstrap, topic, codec, partition, lines_for(partition))
        metadata = json.loads(kcat(["-L", "-J", "-b", broker.bootstrap]))
        names = {t["topic"]: t for t in metadata["topics"]}
        for codec in CODECS:
            check(f"kcat-{codec}" in names, f"auto-created topic kcat-{codec} not in metadata")
        for codec in CODECS:
            check_topic(broker.bootstrap, f"kcat-{codec}")

        # ListOffsets by time: the first record at or after a time before the run is offset 0.
        out = kcat(["-Q", "-b", broker.bootstrap, "-t", f"kcat-none:0:{started_ms - 60_000}"])
        check(b"offset 0" in out, f"kcat -Q: {out!r}")

        broker.kill9()
        broker.start()
        for codec in CODECS:
            check_topic(broker.bootstrap, f"kcat-{codec}")
    print("kcat compatibility: OK")


if __name__ == "__main__":
    main()
