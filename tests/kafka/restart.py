"""restart.py: after a broker SIGKILL and restart, Kafka clients reconnect and continue with
nothing acknowledged lost: an idempotent confluent-kafka producer has 2000 records
acknowledged, the broker is killed and restarted on the same address, the producer sends 2000
more, and a consumer reads all 4000 exactly once, in order."""
import os
import subprocess
import sys
import time

from confluent_kafka import Consumer, Producer

B = os.environ["KAFKA_BOOTSTRAP"]
TOPIC = "restart-%d" % os.getpid()
subprocess.run([os.environ["RINGLOG"], "--brokers", os.environ["RINGLOG_BROKERS"], "topic",
                "create", TOPIC, "--partitions", "1"], check=True)
acked = []
p = Producer({"bootstrap.servers": B, "enable.idempotence": True, "acks": "all"})


def report(err, msg):
    if err is None:
        acked.append(int(msg.value()))


for i in range(2000):
    p.produce(TOPIC, value=b"%d" % i, on_delivery=report)
if p.flush(30) != 0:
    sys.exit("restart.py: first half not acknowledged")
subprocess.run(os.environ["BROKER_CTL"].split() + ["restart"], check=True)
for i in range(2000, 4000):
    p.produce(TOPIC, value=b"%d" % i, on_delivery=report)
if p.flush(60) != 0:
    sys.exit("restart.py: second half not acknowledged after the restart")
c = Consumer({"bootstrap.servers": B, "group.id": "restart-g-%d" % os.getpid(),
              "auto.offset.reset": "earliest"})
c.subscribe([TOPIC])
got = []
end = time.time() + 60
while len(got) < 4000 and time.time() < end:
    m = c.poll(1.0)
    if m is not None and not m.error():
        got.append(int(m.value()))
c.close()
if sorted(acked) != list(range(4000)) or got != list(range(4000)):
    sys.exit("restart.py: %d acknowledged, %d read back" % (len(acked), len(got)))
print("restart ok")
