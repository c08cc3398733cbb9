"""kafkajs 2.2.4 (npm) against runnel-broker.

tests/compat/kafkajs/compat.js drives kafkajs's admin client, producer and (group) consumer (see
its header): what the producer sent must come back through kafkajs's consumer, and it prints what it
sent; this side reads every record back once more with another real client (confluent-kafka's
consumer) and checks keys, values, headers and order per partition, so that what kafkajs wrote is
stored exactly as sent, not only in a form kafkajs reads back.
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
    # No initial rebalance delay: the read-back group has one member.
    with Broker(binary, config_text="groups { group_initial_rebalance_delay_ms: 0 }\n") as broker:
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
