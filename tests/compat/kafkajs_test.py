"""kafkajs 2.2.4 (npm) against runnel-broker.

tests/compat/kafkajs/compat.js drives kafkajs's admin client and producer (see its header) and
prints what it sent; this side reads every record back with another real client
(confluent-kafka's consumer) and checks keys, values, headers and order per partition, so that what
kafkajs wrote is stored exactly. kafkajs's consumer always joins a consumer group; it is tested by
the consumer-group suite once the broker has a group coordinator.
"""

import base64
import json
import os
import subprocess

from confluent_kafka_test import consume_all
from harness import Broker, check, fail, main_binary

TIMEOUT_S = 120
HERE = os.path.dirname(os.path.abspath(__file__))


def decode(value):
    return None if value is None else base64.b64decode(value)


def main():
    binary = main_binary()
    script_dir = os.path.join(HERE, "kafkajs")
    check(os.path.isdir(os.path.join(script_dir, "node_modules", "kafkajs")),
          "kafkajs is not installed: run scripts/install-deps")
    with Broker(binary) as broker:
        result = subprocess.run(["node", "compat.js", broker.bootstrap], cwd=script_dir,
                                capture_output=True, timeout=TIMEOUT_S)
        if result.returncode != 0:
            fail(f"compat.js exited {result.returncode}: {result.stderr.decode()[-3000:]}")
        sent = json.loads(result.stdout)
        for topic, partitions in sent.items():
            records = {}
            for partition, data in partitions.items():
                records[int(partition)] = [
                    (decode(r["key"]), decode(r["value"]),
                     [(name, decode(value)) for name, value in r["headers"]])
                    for r in data["records"]]
                check(data["offsets"] == sorted(data["offsets"]) and data["offsets"][0] == 0,
                      f"{topic}[{partition}]: acknowledged base offsets {data['offsets']}")
            consume_all(broker.bootstrap, topic, records)
    print("kafkajs compatibility: OK")


if __name__ == "__main__":
    main()
