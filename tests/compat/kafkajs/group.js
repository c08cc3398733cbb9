// kafkajs 2.2.4 consumer groups against runnel-broker: the kafkajs side of kafkajs_group_test.py.
//
// Usage:
//   node group.js member BOOTSTRAP GROUP TOPIC NAME
//     A group member (consumer.run with eachMessage and kafkajs's automatic commit after every
//     batch). Writes one JSON line per event to stdout, synchronously so that a member killed with
//     SIGKILL leaves every line it wrote: {"assigned": [partitions]} when kafkajs reports a joined
//     group, {"revoked": [partitions]} when it starts a rebalance, and {"p", "o", "v"} for each
//     record consumed (value as text). On SIGTERM it disconnects, which finishes the batch in hand,
//     commits and leaves the group, and exits 0.
//   node group.js produce BOOTSTRAP TOPIC < BATCH
//     Sends a JSON batch {partition: [[key, value], ...]} with acks=all, each record to its
//     partition, and exits 0 once every record is acknowledged.
//   node group.js offsets BOOTSTRAP GROUP TOPIC
//     Prints the group's committed offsets (admin.fetchOffsets, OffsetFetch) as JSON
//     {partition: offset}, -1 where there is none.
// Any failure exits non-zero with a message on stderr.
'use strict';

const fs = require('fs');
const { Kafka, logLevel } = require('kafkajs');

// The broker's minimum session timeout (Kafka's group.min.session.timeout.ms): a killed member is
// noticed this long after its last heartbeat.
const SESSION_TIMEOUT_MS = 6000;
// Heartbeats often, so that the member hears of a rebalance quickly.
const HEARTBEAT_INTERVAL_MS = 500;
// kafkajs heartbeats only between fetches, so a fetch that waits long for records (5 s by default)
// delays the member's rejoin by as much.
const FETCH_WAIT_MS_MAX = 500;

function fail(message) {
  console.error(`FAIL: ${message}`);
  process.exit(1);
}

function writeEvent(event) {
  fs.writeSync(1, JSON.stringify(event) + '\n');
}

function newKafka(bootstrap, clientId) {
  return new Kafka({
    clientId, brokers: [bootstrap], logLevel: logLevel.WARN, retry: { retries: 8 },
  });
}

async function member(bootstrap, groupId, topic, name) {
  const consumer = newKafka(bootstrap, name).consumer({
    groupId, sessionTimeout: SESSION_TIMEOUT_MS, heartbeatInterval: HEARTBEAT_INTERVAL_MS,
    maxWaitTimeInMs: FETCH_WAIT_MS_MAX,
  });
  let owned = [];
  consumer.on(consumer.events.GROUP_JOIN, (event) => {
    owned = [...(event.payload.memberAssignment[topic] || [])].sort((a, b) => a - b);
    writeEvent({ assigned: owned });
  });
  consumer.on(consumer.events.REBALANCING, () => {
    writeEvent({ revoked: owned });
    owned = [];
  });
  // kafkajs gives up on a consumer after repeated errors; a member must not vanish silently.
  consumer.on(consumer.events.CRASH, (event) => {
    if (!event.payload.restart) fail(`consumer crashed: ${event.payload.error}`);
  });
  let stopping = false;
  process.on('SIGTERM', () => {
    if (stopping) return;
    stopping = true;
    consumer.disconnect().then(() => process.exit(0),
                               (error) => fail(`disconnect: ${error}`));
  });
  await consumer.connect();
  await consumer.subscribe({ topics: [topic], fromBeginning: true });
  await consumer.run({
    eachMessage: async ({ partition, message }) => {
      writeEvent({ p: partition, o: Number(message.offset), v: message.value.toString() });
    },
  });
}

async function produce(bootstrap, topic) {
  const batch = JSON.parse(fs.readFileSync(0, 'utf8'));
  const producer = newKafka(bootstrap, 'group-producer').producer();
  await producer.connect();
  const topicMessages = [{
    topic,
    messages: Object.entries(batch).flatMap(([partition, items]) =>
      items.map(([key, value]) => ({ key, value, partition: Number(partition) }))),
  }];
  const sent = await producer.sendBatch({ topicMessages, acks: -1 });
  for (const result of sent) {
    if (result.errorCode !== 0) fail(`send: ${JSON.stringify(result)}`);
  }
  await producer.disconnect();
}

async function offsets(bootstrap, groupId, topic) {
  const admin = newKafka(bootstrap, 'group-offsets').admin();
  await admin.connect();
  const found = await admin.fetchOffsets({ groupId, topics: [topic] });
  const result = {};
  for (const { partition, offset } of found[0].partitions) result[partition] = Number(offset);
  await admin.disconnect();
  process.stdout.write(JSON.stringify(result));
}

async function main() {
  const [mode, ...args] = process.argv.slice(2);
  if (mode === 'member' && args.length === 4) return member(...args);
  if (mode === 'produce' && args.length === 2) return produce(...args);
  if (mode === 'offsets' && args.length === 3) return offsets(...args);
  fail('usage: node group.js member BOOTSTRAP GROUP TOPIC NAME | produce BOOTSTRAP TOPIC | '
       + 'offsets BOOTSTRAP GROUP TOPIC');
}

main().catch((error) => fail(error && error.stack ? error.stack : String(error)));
