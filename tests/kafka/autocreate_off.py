#!/usr/bin/python3
"""autocreate_off.py: auto.create.topics.enable left at its default (off), against the shared
broker of tests/kafka/run.sh: Metadata v4 allowing auto-creation, Metadata v1 (which always
allows it) and a Produce naming a topic that does not exist are each answered
UNKNOWN_TOPIC_OR_PARTITION; 1.5 s of such requests later the topic still does not exist (ringlog topic list
and Metadata); the broker's log says auto.create.topics.enable is off and how to create it."""
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kraw  # noqa: E402

B = os.environ["KAFKA_BOOTSTRAP"]
LOG = os.path.join(os.environ["KAFKA_WORK"], "ringlogd.log")
TOPIC = "auto-off-%d" % os.getpid()


def fail(msg):
    sys.exit("autocreate_off.py: " + msg)


for version in (4, 1):
    got = kraw.metadata(B, [TOPIC], version=version, allow=True)[TOPIC]
    if got[0] != kraw.UNKNOWN_TOPIC_OR_PARTITION:
        fail("Metadata v%d for a missing topic answered %r, not UNKNOWN_TOPIC_OR_PARTITION"
             % (version, got))
err, _ = kraw.produce(B, TOPIC, b"v")
if err != kraw.UNKNOWN_TOPIC_OR_PARTITION:
    fail("Produce to a missing topic answered %d, not UNKNOWN_TOPIC_OR_PARTITION" % err)
# The "not created" line is logged at most once a second (whoever asked): ask for a while.
for _ in range(5):
    time.sleep(0.3)
    kraw.metadata(B, [TOPIC], version=4, allow=True)
listed = subprocess.run([os.environ["RINGLOG"], "--brokers", os.environ["RINGLOG_BROKERS"],
                         "topic", "list"], capture_output=True, text=True, timeout=30).stdout
got = kraw.metadata(B, [TOPIC], version=4, allow=False)[TOPIC]
if TOPIC in listed.split() or got[0] != kraw.UNKNOWN_TOPIC_OR_PARTITION:
    fail("%s was created with auto.create.topics.enable off (metadata %r)" % (TOPIC, got))
lines = [line for line in open(LOG, errors="replace") if '"%s"' % TOPIC in line]
said = [line for line in lines if "auto.create.topics.enable is off" in line and
        "ringlog topic create %s" % TOPIC in line]
if not said:
    fail("the broker's log does not say auto.create.topics.enable is off and how to create "
         "%s; its lines about it: %r" % (TOPIC, lines))
if any("creating topic" in line for line in lines):
    fail("the broker logged a creation of %s" % TOPIC)
print("autocreate_off ok")
