// kafkajs 2.2.4 against runnel-broker: admin (create topics with configs, metadata, offsets,
// describe configs, delete), and a producer sending keys, values, headers and null keys and values
// to explicit partitions with acks=all, uncompressed and gzip (the codecs kafkajs has built in).
//
// Then kafkajs's own consumer (in a consumer group, the only way kafkajs consumes) reads every
// record back, and keys, values, headers, offsets and order per partition must be what was sent.
//
// Usage: node compat.js BOOTSTRAP. Prints one JSON document on stdout: for each topic, per
// partition, the records sent in order ({key, value, headers} with bytes as base64 and null as
// null) and the acknowledged base offsets, so that the Python side (kafkajs_test.py) can also read
// them back with another client and compare. Any failure exits non-zero with a message.
'use strict';

const { Kafka, CompressionTypes, logLevel } = require('kafkajs');

// How long the read-back may take, group join included.
const CONSUME_TIMEOUT_MS = 60000;
const PARTITIONS = 2;
const PER_PARTITION = 120;
const TOPICS = [
  { name: 'kjs-none', compression: CompressionTypes.None },
  { name: 'kjs-gzip', compression: CompressionTypes.GZIP },
];

function fail(message) {
  console.error(`FAIL: ${message}`);
  process.exit(1);
}

function check(condition, message) {
  if (!condition) fail(message);
}

function makeRecords(partition) {
  const records = [];
  for (let i = 0; i < PER_PARTITION; i++) {
    const key = i % 11 === 5 ? null : Buffer.from(`key-${partition}-${i % 17}`);
    const value = i % 7 === 3 ? null : Buffer.from(`value ${partition} ${i} ` + 'y'.repeat((i * 13) % 500));
    const headers = { seq: Buffer.from(String(i)), client: Buffer.from('kafkajs') };
    records.push({ key, value, headers });
  }
  return records;
}

const b64 = (buffer) => (buffer === null || buffer === undefined ? null : buffer.toString('base64'));

// Reads every record of TOPICS back with a kafkajs group consumer from the beginning and checks
// each partition against `sent` (compat.js's own output format): same offsets 0.., keys, values
// and headers, in order.
async function consumeBack(kafka, sent) {
  const total = TOPICS.length * PARTITIONS * PER_PARTITION;
  const got = {};
  let count = 0;
  let finish;
  const finished = new Promise((resolve) => { finish = resolve; });
  const consumer = kafka.consumer({ groupId: 'kjs-compat-readback', maxWaitTimeInMs: 500 });
  await consumer.connect();
  for (const topic of TOPICS) await consumer.subscribe({ topic: topic.name, fromBeginning: true });
  await consumer.run({
    eachMessage: async ({ topic, partition, message }) => {
      const records = ((got[topic] = got[topic] || {})[partition] =
        (got[topic] && got[topic][partition]) || []);
      records.push({
        offset: Number(message.offset),
        key: b64(message.key),
        value: b64(message.value),
        headers: Object.entries(message.headers || {}).map(([k, v]) => [k, b64(v)]),
      });
      if (++count === total) finish();
    },
  });
  const timer = setTimeout(
    () => fail(`kafkajs consumer read ${count} of ${total} records in ${CONSUME_TIMEOUT_MS} ms`),
    CONSUME_TIMEOUT_MS);
  await finished;
  clearTimeout(timer);
  await consumer.disconnect();
  for (const topic of TOPICS) {
    for (let partition = 0; partition < PARTITIONS; partition++) {
      const want = sent[topic.name][partition].records;
      const have = (got[topic.name] || {})[partition] || [];
      check(have.length === want.length,
            `${topic.name}[${partition}]: kafkajs consumer read ${have.length} records, want ${want.length}`);
      have.forEach((record, i) => {
        const where = `${topic.name}[${partition}] offset ${record.offset}`;
        check(record.offset === i, `${where}: expected offset ${i}`);
        check(record.key === want[i].key, `${where}: key ${record.key}, want ${want[i].key}`);
        check(record.value === want[i].value, `${where}: value ${record.value}, want ${want[i].value}`);
        check(JSON.stringify(record.headers) === JSON.stringify(want[i].headers),
              `${where}: headers ${JSON.stringify(record.headers)}, want ${JSON.stringify(want[i].headers)}`);
      });
    }
  }
}

async function main() {
  const bootstrap = process.argv[2];
  check(bootstrap, 'usage: node compat.js BOOTSTRAP');
  const kafka = new Kafka({ clientId: 'runnel-compat', brokers: [bootstrap], logLevel: logLevel.WARN,
                            retry: { retries: 5 } });
  const admin = kafka.admin();
  await admin.connect();
  const created = await admin.createTopics({
    waitForLeaders: true,
    topics: [...TOPICS.map((t) => ({ topic: t.name, numPartitions: PARTITIONS })),
             { topic: 'kjs-doomed', numPartitions: 1,
               configEntries: [{ name: 'retention.ms', value: '3600000' }] }],
  });
  check(created === true, 'createTopics did not create the topics');
  const again = await admin.createTopics({ topics: [{ topic: 'kjs-none', numPartitions: 1 }] });
  check(again === false, 'createTopics of an existing topic reported a creation');

  const metadata = await admin.fetchTopicMetadata({ topics: TOPICS.map((t) => t.name) });
  for (const topic of metadata.topics) {
    check(topic.partitions.length === PARTITIONS, `${topic.name}: ${topic.partitions.length} partitions`);
  }
  const configs = await admin.describeConfigs({
    includeSynonyms: false, resources: [{ type: 2, name: 'kjs-doomed' }],
  });
  const retention = configs.resources[0].configEntries.find((e) => e.configName === 'retention.ms');
  check(retention && retention.configValue === '3600000', `retention.ms described as ${JSON.stringify(retention)}`);

  const producer = kafka.producer({ allowAutoTopicCreation: false });
  await producer.connect();
  const result = {};
  for (const topic of TOPICS) {
    result[topic.name] = {};
    for (let partition = 0; partition < PARTITIONS; partition++) {
      const records = makeRecords(partition);
      const offsets = [];
      // Several sends per partition, so that the log holds several batches.
      for (let start = 0; start < records.length; start += 40) {
        const chunk = records.slice(start, start + 40);
        const sent = await producer.send({
          topic: topic.name, acks: -1, compression: topic.compression,
          messages: chunk.map((r) => ({ ...r, partition })),
        });
        check(sent.length === 1 && sent[0].errorCode === 0, `send: ${JSON.stringify(sent)}`);
        offsets.push(Number(sent[0].baseOffset));
      }
      result[topic.name][partition] = {
        offsets,
        records: records.map((r) => ({
          key: b64(r.key), value: b64(r.value),
          headers: Object.entries(r.headers).map(([k, v]) => [k, b64(v)]),
        })),
      };
    }
  }
  await producer.disconnect();

  for (const topic of TOPICS) {
    const offsets = await admin.fetchTopicOffsets(topic.name);
    for (const o of offsets) {
      check(o.low === '0' && o.high === String(PER_PARTITION),
            `${topic.name}[${o.partition}]: offsets low ${o.low} high ${o.high}`);
    }
  }
  await consumeBack(kafka, result);
  await admin.deleteTopics({ topics: ['kjs-doomed'] });
  const listed = await admin.listTopics();
  check(!listed.includes('kjs-doomed'), 'deleted topic still listed');
  await admin.disconnect();
  process.stdout.write(JSON.stringify(result));
}

main().catch((error) => fail(error && error.stack ? error.stack : String(error)));
