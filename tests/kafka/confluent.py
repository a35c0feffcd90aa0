"""confluent.py: confluent-kafka (over librdkafka 2.0.2): an idempotent producer writes 1000
records; a group consumer reads 400, commits and closes; a new consumer of the same group
resumes at the committed offset and reads the other 600, none twice."""
import os
import subprocess
import sys
import time

from confluent_kafka import Consumer, Producer

B = os.environ["KAFKA_BOOTSTRAP"]
TOPIC = "confluent-%d" % os.getpid()
GROUP = "cg-%d" % os.getpid()
N = 1000

subprocess.run([os.environ["RINGLOG"], "--brokers", os.environ["RINGLOG_BROKERS"], "topic",
                "create", TOPIC, "--partitions", "1"], check=True)
p = Producer({"bootstrap.servers": B, "enable.idempotence": True})
for i in range(N):
    p.produce(TOPIC, key=b"k%d" % i, value=b"%d" % i)
if p.flush(30) != 0:
    sys.exit("confluent.py: records left unacknowledged")


def consume(count, deadline_s=60):
    c = Consumer({"bootstrap.servers": B, "group.id": GROUP, "auto.offset.reset": "earliest",
                  "enable.auto.commit": False})
    c.subscribe([TOPIC])
    got = []
    end = time.time() + deadline_s
    while len(got) < count and time.time() < end:
        m = c.poll(1.0)
        if m is None or m.error():
            continue
        got.append(int(m.value()))
    c.commit(asynchronous=False)
    c.close()
    return got


first = consume(400)
second = consume(600)
if first != list(range(400)) or second != list(range(400, N)):
    sys.exit("confluent.py: read %s... then %s..." % (first[:5], second[:5]))
print("confluent ok")
