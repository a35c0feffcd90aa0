// kafkajs.js: kafkajs 2.2.4 (npm): produce 200 records, then a consumer group of one reads
// them all, in order. Run with NODE_PATH pointing at build/kafka-npm/node_modules.
const { Kafka, logLevel } = require('kafkajs');
const { execFileSync } = require('child_process');

const topic = `kafkajs-${process.pid}`;
execFileSync(process.env.RINGLOG, ['--brokers', process.env.RINGLOG_BROKERS, 'topic', 'create',
                                   topic, '--partitions', '1']);
const kafka = new Kafka({ brokers: [process.env.KAFKA_BOOTSTRAP], logLevel: logLevel.WARN });

async function main() {
  const producer = kafka.producer();
  await producer.connect();
  const messages = [];
  for (let i = 0; i < 200; i++) messages.push({ key: 'k', value: String(i) });
  await producer.send({ topic, acks: -1, messages });
  await producer.disconnect();

  const consumer = kafka.consumer({ groupId: `kjs-${process.pid}` });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  const got = [];
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`only ${got.length} records in 60 s`)), 60000);
    consumer.run({
      eachMessage: async ({ message }) => {
        got.push(Number(message.value.toString()));
        if (got.length === 200) { clearTimeout(timer); resolve(); }
      },
    });
  });
  await consumer.disconnect();
  for (let i = 0; i < 200; i++) {
    if (got[i] !== i) throw new Error(`record ${i} is ${got[i]}`);
  }
  console.log('kafkajs ok');
}

main().catch((e) => { console.error(`kafkajs.js: ${e.message}`); process.exit(1); });
