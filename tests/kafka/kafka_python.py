"""kafka_python.py: kafka-python 2.0.2 (pure Python; probes the broker with ApiVersions v0 +
Metadata v0, then speaks fixed versions): produce 500 records with acks=all, subscribe as a
group, read 200 and commit, restart the consumer and resume from the committed offset."""
import os
import subprocess
import sys
import time

from kafka import KafkaConsumer, KafkaProducer

B = os.environ["KAFKA_BOOTSTRAP"]
TOPIC = "kpy-%d" % os.getpid()
GROUP = "kpy-g-%d" % os.getpid()
N = 500

subprocess.run([os.environ["RINGLOG"], "--brokers", os.environ["RINGLOG_BROKERS"], "topic",
                "create", TOPIC, "--partitions", "1"], check=True)
p = KafkaProducer(bootstrap_servers=B, acks="all")
for i in range(N):
    p.send(TOPIC, key=b"k", value=b"%d" % i)
p.flush(30)
p.close()


def consume(count, deadline_s=60):
    c = KafkaConsumer(TOPIC, bootstrap_servers=B, group_id=GROUP,
                      auto_offset_reset="earliest", enable_auto_commit=False)
    got = []
    end = time.time() + deadline_s
    while len(got) < count and time.time() < end:
        for records in c.poll(timeout_ms=1000, max_records=count - len(got)).values():
            got.extend(int(r.value) for r in records)
    c.commit()
    c.close()
    return got


first = consume(200)
second = consume(300)
if first != list(range(200)) or second != list(range(200, N)):
    sys.exit("kafka_python.py: read %s... then %s..." % (first[:5], second[:5]))
print("kafka-python ok")
