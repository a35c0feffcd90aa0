"""admin.py: Kafka tooling over the listener, with kafka-python 2.0.2's KafkaAdminClient:
CreateTopics (then Metadata shows the partitions), DescribeConfigs (the topic's settings),
ListGroups and DescribeGroups of a live Kafka consumer group (state, protocol, the member and
its assignment, also as `ringlog group describe` shows it), the group's committed offsets
(OffsetFetch, the numbers lag is computed from), and DeleteTopics."""
import os
import subprocess
import sys
import time

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient, NewTopic

B = os.environ["KAFKA_BOOTSTRAP"]
TOPIC = "admin-%d" % os.getpid()
GROUP = "admin-g-%d" % os.getpid()


def fail(msg):
    sys.exit("admin.py: " + msg)


admin = KafkaAdminClient(bootstrap_servers=B)
admin.create_topics([NewTopic(TOPIC, num_partitions=2, replication_factor=1,
                              topic_configs={"retention.ms": "3600000"})])
c = KafkaConsumer(bootstrap_servers=B)
if c.partitions_for_topic(TOPIC) != {0, 1}:
    fail("created topic has partitions %s" % c.partitions_for_topic(TOPIC))
c.close()
res = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, TOPIC)])
entries = {e[0]: e[1] for e in res[0].resources[0][4]}
if entries.get("retention.ms") != "3600000":
    fail("describe_configs gave %s" % entries)

p = KafkaProducer(bootstrap_servers=B)
for i in range(10):
    p.send(TOPIC, value=b"%d" % i, partition=i % 2)
p.flush(30)
p.close()
consumer = KafkaConsumer(TOPIC, bootstrap_servers=B, group_id=GROUP,
                         auto_offset_reset="earliest", enable_auto_commit=False)
got = 0
end = time.time() + 30
while got < 10 and time.time() < end:
    got += sum(len(v) for v in consumer.poll(timeout_ms=500).values())
consumer.commit()
if got != 10:
    fail("the group consumer read %d of 10" % got)
groups = [g[0] for g in admin.list_consumer_groups()]
if GROUP not in groups:
    fail("list_consumer_groups: %s" % groups)
desc = admin.describe_consumer_groups([GROUP])[0]
if desc.state != "Stable" or desc.protocol_type != "consumer" or len(desc.members) != 1:
    fail("describe_consumer_groups: %s" % (desc,))
assigned = desc.members[0].member_assignment.assignment
if sorted(assigned) != [(TOPIC, [0, 1])]:
    fail("the member's assignment as described: %s" % assigned)
native = subprocess.run([os.environ["RINGLOG"], "--brokers", os.environ["RINGLOG_BROKERS"],
                         "group", "describe", GROUP], capture_output=True, text=True).stdout
if "%s[0,1]" % TOPIC not in native:
    fail("ringlog group describe does not show the Kafka member's partitions:\n" + native)
offsets = admin.list_consumer_group_offsets(GROUP)
if {tp.partition: om.offset for tp, om in offsets.items()} != {0: 5, 1: 5}:
    fail("committed offsets: %s" % offsets)
consumer.close()
admin.delete_topics([TOPIC])
c = KafkaConsumer(bootstrap_servers=B)
deadline = time.time() + 10
while TOPIC in c.topics() and time.time() < deadline:
    time.sleep(0.1)
if TOPIC in c.topics():
    fail("the topic is still listed after delete_topics")
print("admin ok")
