// control_kafkajs.js: control_cluster.py's kafkajs leg. A kafkajs 2.2.4 group consumer reads
// KCTL_TOPIC partition 0 from the beginning: exactly the KCTL_N records (values as produced,
// one per line in KCTL_VALUES), and its committed offset reaches the high watermark (KCTL_HW or
// later), past the log's trailing Raft control entries (kafkajs resolves a control record's offset, so
// lag reaches 0). autoCommitThreshold 1: kafkajs commits a control-only batch's resolved offset
// only through the interval or threshold checks (a batch with records commits anyway). Exits 0
// when both held within 60 s. NODE_PATH points at kafkajs.
const { Kafka, logLevel } = require('kafkajs');

const topic = process.env.KCTL_TOPIC;
const want = process.env.KCTL_VALUES.split('\n').filter((v) => v.length > 0);
const hw = process.env.KCTL_HW;
const groupId = `kctl-kjs-${process.pid}`;
const kafka = new Kafka({ brokers: process.env.KCTL_BROKERS.split(','), logLevel: logLevel.WARN });

async function committed(admin) {
  const offs = await admin.fetchOffsets({ groupId, topics: [topic] });
  return offs[0].partitions.find((p) => p.partition === 0).offset;
}

// The high watermark now: an election after KCTL_HW was read (a restarted node's) adds a no-op.
async function highWatermark(admin) {
  const offs = await admin.fetchTopicOffsets(topic);
  return offs.find((p) => p.partition === 0).high;
}

async function main() {
  const consumer = kafka.consumer({ groupId });
  const admin = kafka.admin();
  await consumer.connect();
  await admin.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  const got = [];
  await consumer.run({
    autoCommitThreshold: 1,
    eachMessage: async ({ message }) => { got.push(message.value.toString()); },
  });
  const deadline = Date.now() + 60000;
  let last = '-1';
  let high = hw;
  while (Date.now() < deadline) {
    last = await committed(admin);
    high = await highWatermark(admin);
    if (got.length >= want.length && last === high) break;
    await new Promise((r) => setTimeout(r, 300));
  }
  await consumer.disconnect();
  await admin.disconnect();
  if (JSON.stringify(got) !== JSON.stringify(want)) {
    throw new Error(`read ${got.length} records (want ${want.length}): ${got.slice(0, 3)}...`);
  }
  if (last !== high || BigInt(last) < BigInt(hw)) {
    throw new Error(`committed offset ${last}, high watermark ${high} (${hw} before)`);
  }
  console.log(`kafkajs: ${got.length} records, committed offset at the high watermark ${high}`);
}

main().catch((e) => { console.error(`control_kafkajs.js: ${e.message}`); process.exit(1); });
