#!/usr/bin/python3
"""autocreate_cluster.py: auto.create.topics.enable in a cluster of 3 ringlogd nodes of its own
(--voters, Kafka listeners; num.partitions=2, default.replication.factor=3 on nodes 1 and 2,
5 on node 3):
  - kcat -P through node 2 to a topic that does not exist: the creation goes through the
    controller, the topic gets 2 partitions of 3 replicas on every node, and kcat -C -e through
    node 3 reads the records back and exits at the end of both partitions;
  - Metadata for one new topic asked of all three nodes at once: whatever each answers
    meanwhile is LEADER_NOT_AVAILABLE or no error, and every node then shows the one topic;
  - node 3's replication factor 5 is more than the 3 live brokers: its Metadata answers
    INVALID_REPLICATION_FACTOR (after LEADER_NOT_AVAILABLE while the controller decides), its
    log says why, no node has the topic, and node 3 goes on serving.
Needs BUILD and KAFKA_WORK (tests/kafka/run.sh sets them); kcat and kafka-python."""
import os
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kraw  # noqa: E402

BUILD = os.environ.get("BUILD", "build")
WORK = os.path.join(os.environ["KAFKA_WORK"], "autocreate_cluster")
RINGLOGD = os.path.join(BUILD, "bin", "ringlogd")
SUFFIX = str(os.getpid())
procs = []


def logs():
    return {i: open(os.path.join(WORK, "node-%d.log" % i), errors="replace").read()
            for i in (1, 2, 3)}


def fail(msg):
    for i, text in logs().items():
        print("--- node %d log (end)\n%s" % (i, text[-1500:]))
    sys.exit("autocreate_cluster.py: " + msg)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def poll(what, fn, seconds=30.0):
    deadline = time.monotonic() + seconds
    last = None
    while time.monotonic() < deadline:
        try:
            v = fn()
            if v:
                return v
        except (OSError, ConnectionError) as e:  # a node still starting: ask again
            last = e
        time.sleep(0.2)
    fail("%s: not within %.0f s (last error: %r)" % (what, seconds, last))


def start():
    os.makedirs(WORK)
    native = [free_port() for _ in range(3)]
    kport = [free_port() for _ in range(3)]
    voters = ",".join("%d@127.0.0.1:%d" % (i + 1, native[i]) for i in range(3))
    for i in range(3):
        rf = "5" if i == 2 else "3"
        argv = [RINGLOGD, "--node-id", str(i + 1), "--listen", "127.0.0.1:%d" % native[i],
                "--http", "off", "--data-dir", os.path.join(WORK, "data-%d" % (i + 1)),
                "--voters", voters, "--kafka-listen", "127.0.0.1:%d" % kport[i],
                "--ready-file", os.path.join(WORK, "node-%d.ready" % (i + 1)),
                "--set", "auto.create.topics.enable=true", "--set", "num.partitions=2",
                "--set", "default.replication.factor=" + rf]
        log = open(os.path.join(WORK, "node-%d.log" % (i + 1)), "w")
        procs.append(subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT))
    kafka = ["127.0.0.1:%d" % p for p in kport]
    for i in range(3):
        ready = os.path.join(WORK, "node-%d.ready" % (i + 1))
        poll("node %d writes its ready file" % (i + 1),
             lambda: procs[i].poll() is None and os.path.exists(ready)
             and "kafka=" in open(ready).read())
    # Registered: every node's Metadata lists the three brokers.
    for i in range(3):
        poll("node %d lists 3 brokers" % (i + 1), lambda: len(brokers(kafka[i])) == 3)
    return kafka


def brokers(bootstrap):
    return kraw.metadata_response(bootstrap, [], version=1).brokers


def everywhere(kafka, topic, want):
    return all(kraw.metadata(k, [topic], version=4, allow=False)[topic] == want for k in kafka)


def through_kcat(kafka):
    topic = "auto-cl-kcat-" + SUFFIX
    subprocess.run(["kcat", "-b", kafka[1], "-P", "-t", topic, "-X", "acks=all"],
                   input=b"x\ny\nz\n", check=True, timeout=120)
    poll("%s live on every node with 2 partitions" % topic,
         lambda: everywhere(kafka, topic, (0, 2)))
    # -e: a replicated log ends with Raft control entries, which Fetch serves to librdkafka as
    # Kafka control batches, so its position reaches the high watermark and it reports the end.
    out = subprocess.run(["kcat", "-b", kafka[2], "-C", "-t", topic, "-o", "beginning", "-e",
                          "-q"], capture_output=True, check=True, timeout=120).stdout
    if sorted(out.split()) != [b"x", b"y", b"z"]:
        fail("kcat -C through node 3 read back %r, not x y z" % out)
    parts = kraw.metadata_response(kafka[0], [topic], version=1).topics[0][3]
    if sorted(len(p[3]) for p in parts) != [3, 3]:
        fail("%s's partitions do not have 3 replicas each: %r" % (topic, parts))


def all_at_once(kafka):
    topic = "auto-cl-race-" + SUFFIX
    answers = []
    go = threading.Barrier(3)

    def ask(k):
        go.wait()
        answers.append(kraw.metadata(k, [topic], version=1)[topic][0])
    threads = [threading.Thread(target=ask, args=(k,)) for k in kafka[:2]] + \
        [threading.Thread(target=ask, args=(kafka[0],))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if any(a not in (0, kraw.LEADER_NOT_AVAILABLE) for a in answers):
        fail("Metadata answers while %s was created: %r" % (topic, answers))
    poll("%s live on every node" % topic, lambda: everywhere(kafka, topic, (0, 2)))


def too_many_replicas(kafka):
    topic = "auto-cl-rf5-" + SUFFIX
    seen = set()

    def refused():
        err = kraw.metadata(kafka[2], [topic], version=4, allow=True)[topic][0]
        seen.add(err)
        return err == kraw.INVALID_REPLICATION_FACTOR
    poll("node 3 answers INVALID_REPLICATION_FACTOR for %s" % topic, refused)
    if not seen <= {kraw.LEADER_NOT_AVAILABLE, kraw.INVALID_REPLICATION_FACTOR}:
        fail("Metadata answers for %s: %r" % (topic, seen))
    if "replication factor 5" not in logs()[3]:
        fail("node 3's log does not say why %s is not created" % topic)
    for k in kafka:
        if kraw.metadata(k, [topic], version=4, allow=False)[topic][0] != \
                kraw.UNKNOWN_TOPIC_OR_PARTITION:
            fail("%s exists on %s" % (topic, k))
    if procs[2].poll() is not None or len(brokers(kafka[2])) != 3:
        fail("node 3 stopped serving")


def stop():
    """Stops every node (SIGTERM); the exit codes, None for a node that had to be killed."""
    for p in procs:
        p.terminate()
    codes = []
    for p in procs:
        try:
            codes.append(p.wait(timeout=30))
        except subprocess.TimeoutExpired:
            p.kill()
            codes.append(None)
    return codes


def main():
    try:
        kafka = start()
        through_kcat(kafka)
        all_at_once(kafka)
        too_many_replicas(kafka)
    finally:
        codes = stop()
    if codes != [0, 0, 0]:
        fail("the nodes did not stop cleanly: exit codes %r" % codes)
    for i, text in logs().items():
        if "AddressSanitizer" in text or "LeakSanitizer" in text or "runtime error:" in text:
            fail("node %d reported sanitizer errors" % i)
    print("autocreate_cluster ok")


main()
