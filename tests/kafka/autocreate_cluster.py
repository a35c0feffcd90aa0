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
import subprocess
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kcluster  # noqa: E402
import kraw  # noqa: E402

SUFFIX = str(os.getpid())


def node_options(node):
    """Auto-creation on, 2 partitions; 3 replicas from nodes 1 and 2, more than there are
    brokers from node 3."""
    rf = "5" if node == 3 else "3"
    return ["--set", "auto.create.topics.enable=true", "--set", "num.partitions=2",
            "--set", "default.replication.factor=" + rf]


# Only a connection error means "not yet" here: any other exception is a failure at once.
CLUSTER = kcluster.Cluster("autocreate_cluster.py",
                           os.path.join(os.environ["KAFKA_WORK"], "autocreate_cluster"),
                           retry_on=(OSError,), node_options=node_options)
fail = CLUSTER.fail
poll = CLUSTER.poll


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
    if "replication factor 5" not in CLUSTER.logs()[3]:
        fail("node 3's log does not say why %s is not created" % topic)
    for k in kafka:
        if kraw.metadata(k, [topic], version=4, allow=False)[topic][0] != \
                kraw.UNKNOWN_TOPIC_OR_PARTITION:
            fail("%s exists on %s" % (topic, k))
    if not CLUSTER.running(3) or not CLUSTER.lists_all_brokers(3):
        fail("node 3 stopped serving")


def main():
    try:
        kafka = CLUSTER.start()
        through_kcat(kafka)
        all_at_once(kafka)
        too_many_replicas(kafka)
    finally:
        codes = CLUSTER.stop()
    CLUSTER.check_stopped_cleanly(codes)
    print("autocreate_cluster ok")


main()
