#!/usr/bin/python3
"""autocreate.py: auto.create.topics.enable=true on a ringlogd of its own (num.partitions=3):
  - kcat -P to a topic that does not exist creates it (3 partitions) and kcat -C reads the
    records back; one creation is logged for it;
  - Metadata v4 with allow_auto_topic_creation=false answers UNKNOWN_TOPIC_OR_PARTITION and
    creates nothing;
  - 32 Metadata v1 requests for one new topic at once (v1 always allows), from 4 connections
    each sending 8 in one write (so the broker serves them in one turn), are answered
    LEADER_NOT_AVAILABLE or, once it is live, without error; the topic is created once;
  - a name that cannot be a topic gets INVALID_TOPIC_EXCEPTION from Metadata and Produce and is
    not created;
  - a raw Produce to a new topic is answered with a retriable error (UNKNOWN_TOPIC_OR_PARTITION
    or LEADER_NOT_AVAILABLE) while it is created, then succeeds at offset 0;
  - CreateTopics (raw v2) with -1 partitions and replication factor, the
    "broker default", creates num.partitions (3) partitions;
  - restarted on a fresh data directory with default.replication.factor=2 (one broker), a
    Metadata request gets INVALID_REPLICATION_FACTOR, the log says why, nothing is created and
    the broker goes on serving.
Needs BUILD and KAFKA_WORK (tests/kafka/run.sh sets them); kcat and kafka-python."""
import os
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kraw  # noqa: E402

BUILD = os.environ.get("BUILD", "build")
WORK = os.path.join(os.environ["KAFKA_WORK"], "autocreate")
RINGLOGD = os.path.join(BUILD, "bin", "ringlogd")
RINGLOG = os.path.join(BUILD, "bin", "ringlog")
SUFFIX = str(os.getpid())


def fail(msg):
    sys.exit("autocreate.py: " + msg)


class Broker:
    def __init__(self, name, *settings):
        self.dir = os.path.join(WORK, name)
        os.makedirs(self.dir)
        self.log_path = os.path.join(self.dir, "ringlogd.log")
        ready = os.path.join(self.dir, "ready")
        args = [RINGLOGD, "--data-dir", os.path.join(self.dir, "data"), "--listen",
                "127.0.0.1:0", "--http", "off", "--kafka-listen", "127.0.0.1:0",
                "--ready-file", ready, "--set", "auto.create.topics.enable=true",
                "--set", "num.partitions=3"]
        for s in settings:
            args += ["--set", s]
        self.proc = subprocess.Popen(args, stdout=open(self.log_path, "ab"),
                                     stderr=subprocess.STDOUT)
        deadline = time.time() + 30
        fields = {}
        while "kafka" not in fields:
            if time.time() > deadline or self.proc.poll() is not None:
                fail("ringlogd did not start: " + self.log()[-2000:])
            time.sleep(0.1)
            if os.path.exists(ready):
                fields = dict(line.split("=", 1) for line in open(ready).read().split())
        self.kafka, self.native = fields["kafka"], fields["native"]

    def log(self):
        return open(self.log_path, errors="replace").read()

    def creations(self, topic):
        return self.log().count('creating topic "%s"' % topic)

    def topics(self):
        out = subprocess.run([RINGLOG, "--brokers", self.native, "topic", "list"],
                             capture_output=True, text=True, timeout=30)
        return out.stdout.split()

    def stop(self):
        self.proc.terminate()
        if self.proc.wait(timeout=30) != 0:
            fail("ringlogd exited with %d: %s" % (self.proc.returncode, self.log()[-2000:]))
        if any(w in self.log() for w in ("AddressSanitizer", "LeakSanitizer", "runtime error:")):
            fail("ringlogd reported sanitizer errors: " + self.log()[-3000:])


def wait_live(b, topic, partitions=3):
    deadline = time.time() + 15
    while time.time() < deadline:
        got = kraw.metadata(b.kafka, [topic], version=4, allow=False)[topic]
        if got == (0, partitions):
            return
        time.sleep(0.1)
    fail("topic %s did not become live with %d partitions: %r" % (topic, partitions, got))


def kcat_round_trip(b):
    topic = "auto-kcat-" + SUFFIX
    subprocess.run(["kcat", "-b", b.kafka, "-P", "-t", topic], input=b"a\nb\nc\n",
                   check=True, timeout=60)
    out = subprocess.run(["kcat", "-b", b.kafka, "-C", "-t", topic, "-o", "beginning", "-e",
                          "-q"], capture_output=True, check=True, timeout=60).stdout
    if sorted(out.split()) != [b"a", b"b", b"c"]:
        fail("kcat -C read back %r, not a b c" % out)
    wait_live(b, topic)
    if b.creations(topic) != 1:
        fail("%s: %d creations logged, not 1" % (topic, b.creations(topic)))


def not_allowed(b):
    topic = "auto-disallowed-" + SUFFIX
    for _ in range(2):
        got = kraw.metadata(b.kafka, [topic], version=4, allow=False)[topic]
        if got[0] != kraw.UNKNOWN_TOPIC_OR_PARTITION:
            fail("Metadata v4 allow_auto_topic_creation=false answered %r" % (got,))
        time.sleep(0.5)
    if topic in b.topics() or b.creations(topic):
        fail("%s was created though the client did not allow it" % topic)


def concurrent(b):
    topic = "auto-concurrent-" + SUFFIX
    answers = []
    start = threading.Barrier(4)

    def ask():
        start.wait()
        answers.extend(kraw.metadata_pipelined(b.kafka, topic, 8))
    threads = [threading.Thread(target=ask) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if len(answers) != 32 or any(a not in (0, kraw.LEADER_NOT_AVAILABLE) for a in answers) or \
            kraw.LEADER_NOT_AVAILABLE not in answers:
        fail("concurrent Metadata v1 answers: %r (want LEADER_NOT_AVAILABLE, or 0 once live)"
             % answers)
    wait_live(b, topic)
    time.sleep(0.3)
    if b.creations(topic) != 1:
        fail("%s: %d creations logged for concurrent requests, not 1"
             % (topic, b.creations(topic)))


def invalid_names(b):
    for topic in ("bad name!", "x" * 250):
        got = kraw.metadata(b.kafka, [topic], version=4, allow=True)[topic]
        if got[0] != kraw.INVALID_TOPIC_EXCEPTION:
            fail("Metadata for %r answered %r, not INVALID_TOPIC_EXCEPTION" % (topic[:20], got))
        err, _ = kraw.produce(b.kafka, topic, b"v")
        if err != kraw.INVALID_TOPIC_EXCEPTION:
            fail("Produce to %r answered %d, not INVALID_TOPIC_EXCEPTION" % (topic[:20], err))
        if b.creations(topic):
            fail("an invalid name was proposed for creation")


def raw_produce(b):
    topic = "auto-produce-" + SUFFIX
    err, _ = kraw.produce(b.kafka, topic, b"first")
    if err not in (kraw.UNKNOWN_TOPIC_OR_PARTITION, kraw.LEADER_NOT_AVAILABLE):
        fail("the first Produce to a new topic answered %d, not a retriable error" % err)
    deadline = time.time() + 15
    while err != 0:
        if time.time() > deadline:
            fail("Produce to %s still answers %d after 15 s" % (topic, err))
        if err not in (kraw.UNKNOWN_TOPIC_OR_PARTITION, kraw.LEADER_NOT_AVAILABLE):
            fail("Produce to %s answered %d while it was created" % (topic, err))
        time.sleep(0.1)
        err, offset = kraw.produce(b.kafka, topic, b"first")
    if offset != 0:
        fail("the first record of %s is at offset %d" % (topic, offset))
    wait_live(b, topic)
    if b.creations(topic) != 1:
        fail("%s: %d creations logged, not 1" % (topic, b.creations(topic)))


def create_topics_defaults(b):
    topic = "auto-defaults-" + SUFFIX
    got = kraw.create_topic(b.kafka, topic, -1, -1)
    if got[0] != 0:
        fail("CreateTopics with -1 counts answered %r" % (got,))
    wait_live(b, topic, partitions=3)


def too_many_replicas():
    b = Broker("rf2", "default.replication.factor=2")
    try:
        topic = "auto-rf2-" + SUFFIX
        for _ in range(3):
            got = kraw.metadata(b.kafka, [topic], version=4, allow=True)[topic]
            if got[0] != kraw.INVALID_REPLICATION_FACTOR:
                fail("replication factor 2 on one broker: Metadata answered %r" % (got,))
            time.sleep(0.2)
        if "replication factor 2" not in b.log():
            fail("the broker's log does not say why the topic is not created")
        if topic in b.topics():
            fail("%s was created with replication factor 2 on one broker" % topic)
    finally:
        b.stop()


def main():
    b = Broker("on")
    try:
        kcat_round_trip(b)
        not_allowed(b)
        concurrent(b)
        invalid_names(b)
        raw_produce(b)
        create_topics_defaults(b)
    finally:
        b.stop()
    too_many_replicas()
    print("autocreate ok")


main()
