#!/usr/bin/python3
"""control_cluster.py: Kafka consumers reach the end of a replicated partition whose log holds
Raft control entries. Starts its own 3 ringlogd nodes (--voters, Kafka listeners), creates a
topic of 1 partition with 3 replicas, produces N records in two runs (confluent-kafka,
acks=all) around leader changes (the leader SIGKILLed, a new one elected, the node restarted),
the last one after the second run, so the log holds control entries (each new leader's no-op)
at its start, in the middle and at its end, and the high watermark counts them (> N). Then:
  - `kcat -C -e` from the beginning exits by itself with exactly the N records, in order;
  - a confluent-kafka group consumer (check.crcs on, enable.partition.eof on) reads the N
    records, gets partition EOF at the high watermark, its position is the high watermark, and
    the offset it commits (librdkafka stores a control record's offset like a record's) reads
    back as the high watermark: lag 0 in Kafka tooling;
  - kafka-python 2.0.2 (Fetch v4, which hands control records to the application) reads the N
    records and no control record;
  - kafkajs 2.2.4 (control_kafkajs.js; skipped when not installed) reads the N records and its
    group's committed offset reaches the high watermark.
Control entries are served to Fetch v5+ as Kafka control batches (docs/architecture.md, Kafka
listener, Fetch). Needs BUILD and KAFKA_WORK (tests/kafka/run.sh sets them); kcat,
confluent-kafka and kafka-python."""
import os
import subprocess
import sys
import time

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from kafka import KafkaConsumer
from kafka import TopicPartition as KpTopicPartition

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kcluster  # noqa: E402
import kraw  # noqa: E402

BUILD = os.environ.get("BUILD", "build")
TOPIC = "kctl-%d" % os.getpid()
N_EACH = 25
CLUSTER = kcluster.Cluster("control_cluster.py",
                           os.path.join(os.environ["KAFKA_WORK"], "control_cluster"),
                           seconds=60.0)
fail = CLUSTER.fail
poll = CLUSTER.poll
# What a consumer sees while its group's coordinator moves: passing, not a failure.
COORDINATOR_MOVED = (KafkaError.COORDINATOR_NOT_AVAILABLE, KafkaError.NOT_COORDINATOR,
                     KafkaError.COORDINATOR_LOAD_IN_PROGRESS)


def leader():
    """Partition 0's leader as a live node's Kafka Metadata names it, or None."""
    part = kraw.metadata_response(CLUSTER.live()[0], [TOPIC], version=1).topics[0][3][0]
    return part[2] if part[0] == 0 and part[2] > 0 else None


def high_watermark():
    c = Consumer({"bootstrap.servers": ",".join(CLUSTER.live()), "group.id": "kctl-hw"})
    try:
        return c.get_watermark_offsets(TopicPartition(TOPIC, 0), timeout=5, cached=False)[1]
    finally:
        c.close()


def produce(tag, n, expected):
    p = Producer({"bootstrap.servers": ",".join(CLUSTER.live()), "acks": "all",
                  "enable.idempotence": True, "message.timeout.ms": 60000})
    failed = []
    for k in range(n):
        v = b"%s-%d" % (tag, k)
        p.produce(TOPIC, value=v, partition=0,
                  on_delivery=lambda err, _m: err is not None and failed.append(err))
        expected.append(v)
    if p.flush(90) != 0 or failed:
        fail("records left unacknowledged: %r" % failed[:3])


def leader_change():
    """SIGKILLs partition 0's leader, waits until another node leads and its no-op has
    committed (the high watermark grows with no record produced), restarts the killed node."""
    old = poll("partition 0's leader", leader)
    hw = poll("partition 0's high watermark", high_watermark)
    CLUSTER.kill(old)
    new = poll("a new leader after node %d's SIGKILL" % old,
               lambda: (lambda n: n if n and n != old else None)(leader()))
    poll("node %d's no-op commits (high watermark past %d)" % (new, hw),
         lambda: high_watermark() > hw)
    CLUSTER.restart(old)
    print("leader %d killed and restarted, node %d leads" % (old, new), flush=True)


def check_kcat(expected, hw):
    try:
        out = subprocess.run(["kcat", "-b", ",".join(CLUSTER.kafka), "-C", "-t", TOPIC,
                              "-p", "0", "-o", "beginning", "-e", "-q", "-f", "%s\n"],
                             capture_output=True, timeout=60)
    except subprocess.TimeoutExpired:
        fail("kcat -C -e did not exit within 60 s: its position never reached the high "
             "watermark %d past the trailing control entries" % hw)
    got = out.stdout.split(b"\n")[:-1]
    if out.returncode != 0 or got != expected:
        fail("kcat -C -e exited %d with %d records (want %d): %r..." %
             (out.returncode, len(got), len(expected), got[:3]))
    print("kcat -C -e exited by itself with the %d records" % len(got), flush=True)


def rejoined(c, until):
    """Serves the consumer (poll) until its rejoin is done: its assignment revoked (at most
    5 s; it may be already), then given again (until `until`)."""
    revoke_until = min(until, time.monotonic() + 5)
    while c.assignment() and time.monotonic() < revoke_until:
        c.poll(0.2)
    while not c.assignment() and time.monotonic() < until:
        c.poll(0.2)


def check_confluent(expected, hw):
    c = Consumer({"bootstrap.servers": ",".join(CLUSTER.kafka),
                  "group.id": "kctl-g-%d" % os.getpid(), "auto.offset.reset": "earliest",
                  "enable.auto.commit": False, "enable.partition.eof": True,
                  "check.crcs": True,
                  # A member left behind by a coordinator move (preferred-leader balancing
                  # hands __consumer_offsets partitions back as the nodes restart) holds a
                  # rebalance until its session ends: 10 s, within the commit retries below.
                  "session.timeout.ms": 10000, "heartbeat.interval.ms": 1000})
    tp = TopicPartition(TOPIC, 0)
    try:
        c.subscribe([TOPIC])
        got, eof, moved = [], None, []
        deadline = time.monotonic() + 60
        while eof is None and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error():
                if m.error().code() in COORDINATOR_MOVED:
                    # An OffsetFetch that reached the coordinator as its partition's leadership
                    # moved (preferred-leader balancing, as restarted nodes come back):
                    # librdkafka reports it, finds the coordinator again, and the member's
                    # rejoin there (membership is not replicated) assigns the partition anew.
                    moved.append(str(m.error()))
                    continue
                if m.error().code() != KafkaError._PARTITION_EOF:
                    fail("confluent-kafka consumer error: %s" % m.error())
                eof = m.offset()
                continue
            got.append(m.value())
        pos = c.position([tp])[0].offset
        if moved:
            print("confluent-kafka: %d report(s) of a coordinator moving: %s" %
                  (len(moved), moved[0]), flush=True)
        if eof is None:
            fail("no partition EOF within 60 s: %d records read, position %d, high watermark "
                 "%d; coordinator errors: %r" % (len(got), pos, hw, moved[:3]))
        # EOF comes at the high watermark of that fetch: hw, or more if an election since (a
        # restarted node's) appended another no-op.
        now = high_watermark()
        if got != expected or not hw <= eof <= now or pos != eof:
            fail("confluent-kafka read %d records (want %d), EOF at %d, position %d, high "
                 "watermark %d (now %d)" % (len(got), len(expected), eof, pos, hw, now))
        # The member may have lost its membership by the commit: a slow run's session ended,
        # or the coordinator moved (preferred-leader balancing hands __consumer_offsets
        # partitions back as nodes restart) and the new one does not know the group (group
        # membership is not replicated: members rejoin). Then rejoin and commit the same
        # offset again, but only once the rejoin has finished: a commit sent mid-join carries
        # no member id, is refused, and makes librdkafka drop that join and start another,
        # each leaving an orphan member that holds the next rebalance for its session.
        commit_until = time.monotonic() + 40
        while True:
            try:
                c.commit(offsets=[TopicPartition(TOPIC, 0, eof)], asynchronous=False)
                break
            except KafkaException as e:
                retriable = e.args[0].code() in (KafkaError.UNKNOWN_MEMBER_ID,
                                                 KafkaError.ILLEGAL_GENERATION,
                                                 KafkaError.REBALANCE_IN_PROGRESS) + \
                    COORDINATOR_MOVED
                if not retriable or time.monotonic() > commit_until:
                    fail("commit at the high watermark %d: %s" % (eof, e))
                rejoined(c, commit_until)
        committed = c.committed([tp], timeout=10)[0].offset
        if committed != eof:
            fail("committed offset %d, high watermark %d: lag never reaches 0" %
                 (committed, eof))
    finally:
        c.close()
    print("confluent-kafka: %d records, partition EOF, position and committed offset at the "
          "high watermark %d" % (len(got), eof), flush=True)


def check_kafka_python(expected):
    c = KafkaConsumer(bootstrap_servers=CLUSTER.kafka, group_id=None, enable_auto_commit=False,
                      check_crcs=True, client_id="kctl-kafka-python")
    tp = KpTopicPartition(TOPIC, 0)
    c.assign([tp])
    c.seek_to_beginning(tp)
    got = []
    deadline = time.monotonic() + 60
    while len(got) < len(expected) and time.monotonic() < deadline:
        for _tp, msgs in c.poll(timeout_ms=500).items():
            for m in msgs:
                if m.key is not None:
                    fail("a control record reached kafka-python at offset %d" % m.offset)
                got.append(m.value)
    # Anything more (a control record after the last one) would show within a poll or two.
    for _tp, msgs in c.poll(timeout_ms=1000).items():
        got.extend(m.value for m in msgs)
    c.close()
    if got != expected:
        fail("kafka-python read %d records (want %d): %r..." % (len(got), len(expected),
                                                               got[:3]))
    print("kafka-python (Fetch v4): the %d records, no control record" % len(got), flush=True)


def check_kafkajs(expected, hw):
    """kafkajs (npm; run.sh's kafkajs test installs it) when it is there: a leg of its own,
    reported as skipped otherwise."""
    modules = os.path.join(BUILD, "kafka-npm", "node_modules")
    if not os.path.exists(os.path.join(modules, "kafkajs", "package.json")):
        print("kafkajs: skipped (not installed: make kafka-client-tests)", flush=True)
        return
    env = dict(os.environ, NODE_PATH=os.path.abspath(modules), KCTL_TOPIC=TOPIC,
               KCTL_BROKERS=",".join(CLUSTER.kafka), KCTL_HW=str(hw),
               KCTL_VALUES="\n".join(v.decode() for v in expected))
    js = os.path.join(os.path.dirname(os.path.abspath(__file__)), "control_kafkajs.js")
    try:
        out = subprocess.run(["node", js], env=env, capture_output=True, text=True, timeout=90)
    except subprocess.TimeoutExpired:
        fail("the kafkajs consumer did not finish within 90 s")
    if out.returncode != 0:
        fail("kafkajs: %s%s" % (out.stdout, out.stderr[-1500:]))
    print(out.stdout.strip(), flush=True)


def main():
    try:
        CLUSTER.start()
        poll("CreateTopics %s (1 partition, 3 replicas)" % TOPIC,
             lambda: kraw.create_topic(CLUSTER.kafka[0], TOPIC, 1, 3)[0] in (0, 36))
        poll("partition 0 has a leader", leader)
        expected = []
        produce(b"a", N_EACH, expected)
        leader_change()
        produce(b"b", N_EACH, expected)
        leader_change()
        hw = poll("partition 0's high watermark", high_watermark)
        print("high watermark %d after %d records" % (hw, len(expected)), flush=True)
        if hw <= len(expected):
            fail("the high watermark %d does not count control entries: nothing to test" % hw)
        check_kcat(expected, hw)
        check_confluent(expected, hw)
        check_kafka_python(expected)
        check_kafkajs(expected, hw)
    finally:
        codes = CLUSTER.stop()
    CLUSTER.check_stopped_cleanly(codes)
    print("control_cluster ok")


main()
