#!/usr/bin/python3
# cluster_meta: Kafka Metadata in a cluster. Starts its own 3 ringlogd nodes (--voters, each with
# a Kafka listener; free ports), creates a topic of 6 partitions with replication factor 3 through
# node 1's Kafka listener (kafka-python's admin client), then, with clients bootstrapped from
# node 1 only:
#   - Metadata from every node lists the 3 brokers with their own Kafka addresses, and names
#     each partition's leader as `ringlog topic describe` (native Metadata) does, with 3
#     replicas;
#   - after one warm-up record per partition (retries on: an elected leader refuses produce
#     until its no-op commits), a producer with retries=0 (so a NOT_LEADER_OR_FOLLOWER answer fails the send) writes
#     RECORDS records to every partition, each acknowledged at the offset expected;
#   - a consumer assigned all 6 partitions reads them all back, and kafka-python reported no
#     NOT_LEADER_OR_FOLLOWER answer (counted where it decodes error codes); no control record
#     (a replicated log's Raft no-op or configuration entry) reaches it: Fetch leaves them out;
#   - group coordinator on another broker: every node's FindCoordinator names the same node
#     (the leader of the group's __consumer_offsets partition) at its Kafka address, so two
#     of them name another broker; a group consumer bootstrapped from one of those reads
#     everything and commits, and the committed offsets read back;
#   - leader change: partition 0's leader is SIGKILLed between two runs of acks=all produce
#     (retries on); a consumer at the log end before the kill, bootstrapped from a survivor,
#     reads every acknowledged record at its acknowledged offset (no loss). Once the new
#     leader's log ends with its no-op, a Fetch (v4, max_wait 10 s) at the old end waits past
#     that control entry and answers with the record produced 0.5 s later (not at once with
#     nothing). The killed node is then restarted.
# Exits 0 when all of that held. Needs BUILD (build dir) and KAFKA_WORK (scratch dir).
import os
import random
import re
import subprocess
import sys
import threading
import time

import kafka.errors
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.protocol.commit import GroupCoordinatorRequest
from kafka.protocol.fetch import FetchRequest
from kafka.protocol.offset import OffsetRequest
from kafka.record import MemoryRecords

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kcluster  # noqa: E402

BUILD = os.environ.get("BUILD", "build")
RINGLOG = os.path.join(BUILD, "bin", "ringlog")
SEED = int(os.environ.get("RINGLOG_TEST_SEED", str(random.randrange(1, 1 << 31))))
print(f"cluster_meta: seed {SEED} (RINGLOG_TEST_SEED={SEED} repeats it)", flush=True)
rng = random.Random(SEED)
PARTITIONS = 6
RECORDS = 40
TOPIC = f"kmeta-{SEED}"
CLUSTER = kcluster.Cluster("cluster_meta.py",
                           os.path.join(os.environ["KAFKA_WORK"], "cluster_meta"), http=True)
fail = CLUSTER.fail
poll = CLUSTER.poll


class NotLeaderCounter:
    """Counts the NOT_LEADER_OR_FOLLOWER (6) answers kafka-python decodes in any response
    (Produce, Fetch, ListOffsets all map error codes through kafka.errors.for_code; its fetcher
    refreshes metadata on one without logging it)."""

    def __init__(self):
        self.count = 0
        self.orig = kafka.errors.for_code

    def install(self):
        def counting(code):
            if code == 6:
                self.count += 1
            return self.orig(code)
        kafka.errors.for_code = counting


def native_leaders(native_addr):
    """Partition -> leader as `ringlog topic describe` (native Metadata) reports it."""
    out = subprocess.run([RINGLOG, "--brokers", native_addr, "topic", "describe", TOPIC],
                         capture_output=True, text=True, timeout=30)
    if out.returncode != 0:
        return None
    leaders = {}
    for line in out.stdout.splitlines():
        m = re.match(r"^(\d+)\s+(-?\d+)\s+\d+\s*$", line)
        if m:
            leaders[int(m.group(1))] = int(m.group(2))
    return leaders if len(leaders) == PARTITIONS else None


def kafka_metadata(client):
    """(brokers {id: (host, port)}, partitions {p: (leader, replicas, isr, error)}) from the
    Kafka Metadata the admin client's cluster view holds after a fresh request."""
    f = client._client.cluster.request_update()
    client._client.poll(future=f, timeout_ms=10000)
    if not f.succeeded():
        return None
    c = client._client.cluster
    brokers = {b.nodeId: (b.host, b.port) for b in c.brokers()}
    parts = {}
    for p in c.partitions_for_topic(TOPIC) or ():
        pm = c._partitions[TOPIC][p]
        parts[p] = (pm.leader, list(pm.replicas), list(pm.isr), pm.error)
    return brokers, parts


def raw(admin, node, req, seconds=10.0):
    """Sends req to node through the admin client's connections; the response, or None."""
    c = admin._client
    deadline = time.monotonic() + seconds
    while not c.ready(node):
        if time.monotonic() > deadline:
            return None
        c.poll(timeout_ms=100)
    f = c.send(node, req)
    c.poll(future=f, timeout_ms=int(seconds * 1000))
    return f.value if f.succeeded() else None


def decode_records(data):
    """[(offset, key, value)] of a Fetch answer's records bytes."""
    out = []
    recs = MemoryRecords(data)
    while recs.has_next():
        batch = recs.next_batch()
        if batch is None:
            break
        out.extend((r.offset, r.key, r.value) for r in batch)
    return out


def check_coordinator(admins, want):
    """Every node's FindCoordinator names one coordinator at its Kafka address; a group
    consumer bootstrapped from another node reads all and commits. Returns the group."""
    group = f"kmeta-group-{SEED}"

    def view():
        seen = {}
        for n in (1, 2, 3):
            r = raw(admins[0], n, GroupCoordinatorRequest[0](group))
            if r is None or r.error_code != 0:
                return None
            seen[n] = (r.coordinator_id, r.host, r.port)
        return seen if len(set(seen.values())) == 1 else None
    seen = poll(f"every node's FindCoordinator names one coordinator of {group}", view, 60)
    coord, host, port = seen[1]
    if want.get(coord) != (host, port):
        fail(f"FindCoordinator named node {coord} at {host}:{port}, not its Kafka address "
             f"{want.get(coord)}")
    others = [n for n in (1, 2, 3) if n != coord]
    print(f"group {group}: nodes {others} name coordinator node {coord} at {host}:{port}",
          flush=True)
    gc = KafkaConsumer(TOPIC, bootstrap_servers=CLUSTER.kafka[others[0] - 1],
                       group_id=group, enable_auto_commit=False, auto_offset_reset="earliest",
                       client_id="kmeta-group")
    got = 0
    deadline = time.monotonic() + 60
    while got < PARTITIONS * RECORDS:
        if time.monotonic() > deadline:
            fail(f"group consumer read {got} of {PARTITIONS * RECORDS} records in 60 s")
        for _tp, msgs in gc.poll(timeout_ms=500).items():
            got += sum(1 for m in msgs if m.value != b"warm-up")
    gc.commit()
    tps = [TopicPartition(TOPIC, p) for p in range(PARTITIONS)]
    for tp in tps:
        if gc.committed(tp) != gc.position(tp):
            fail(f"{tp}: committed {gc.committed(tp)}, position {gc.position(tp)}")
    gc.close()
    print(f"group consumer bootstrapped from node {others[0]} read {got} records and "
          f"committed through node {coord}", flush=True)
    return group


def leader_of(admin, p):
    md = kafka_metadata(admin)
    if not md or p not in md[1]:
        return None
    leader = md[1][p][0]
    return leader if leader > 0 else None


def failover(admins):
    """Partition 0 across its leader's SIGKILL: nothing acknowledged is lost, and a Fetch at
    the new leader's end (a trailing no-op) waits for the next record. Returns the killed
    node."""
    p0 = 0
    old = poll("partition 0's leader", lambda: leader_of(admins[0], p0))
    live = [n for n in (1, 2, 3) if n != old]
    adm = admins[live[0] - 1]
    lboot = CLUSTER.kafka[live[0] - 1]
    prod = KafkaProducer(bootstrap_servers=lboot, acks="all", retries=100,
                         retry_backoff_ms=100, max_in_flight_requests_per_connection=1,
                         client_id="kmeta-failover")
    cons = KafkaConsumer(bootstrap_servers=lboot, group_id=None, enable_auto_commit=False,
                         client_id="kmeta-failover-consumer")
    tp0 = TopicPartition(TOPIC, p0)
    cons.assign([tp0])
    cons.seek_to_end(tp0)
    cons.position(tp0)
    acked = []
    got = {}

    def produce(tag, n):
        for k in range(n):
            v = f"fo:{tag}:{k}:{rng.random()}".encode()
            acked.append((prod.send(TOPIC, value=v, partition=p0).get(timeout=60).offset, v))

    def consume_all(what):
        deadline = time.monotonic() + 60
        while any(off not in got for off, _ in acked):
            if time.monotonic() > deadline:
                fail(f"{what}: {sum(1 for o, _ in acked if o in got)} of {len(acked)} "
                     "acknowledged records consumed in 60 s")
            for _tp, msgs in cons.poll(timeout_ms=500).items():
                for m in msgs:
                    if m.key is not None:
                        fail(f"a control record reached the consumer at offset {m.offset}")
                    got[m.offset] = m.value
        for off, v in acked:
            if got[off] != v:
                fail(f"{what}: offset {off} holds {got[off]!r}, acknowledged {v!r}")

    produce("before", 20)
    consume_all("before the leader change")
    end = cons.position(tp0)
    CLUSTER.kill(old)
    new = poll(f"a new leader of partition {p0} after node {old}'s SIGKILL",
               lambda: (lambda n: n if n and n != old else None)(leader_of(adm, p0)), 60)

    def latest():
        r = raw(adm, new, OffsetRequest[1](-1, [(TOPIC, [(p0, -1)])]))
        part = r.topics[0][1][0] if r else None
        return part[3] if part and part[1] == 0 else -1
    poll(f"node {new}'s log of partition {p0} ends past {end} (its no-op committed)",
         lambda: latest() > end, 60)
    acked_at = []
    timer = threading.Timer(0.5, lambda: (produce("during-fetch", 1),
                                          acked_at.append(time.monotonic())))
    t0 = time.monotonic()
    timer.start()
    r = raw(adm, new, FetchRequest[4](-1, 10000, 1, 1 << 20, 0,
                                      [(TOPIC, [(p0, end, 1 << 20)])]), seconds=20)
    waited = time.monotonic() - t0
    timer.join()
    part = r.topics[0][1][0] if r else None
    recs = decode_records(part[5]) if part and part[1] == 0 and part[5] else []
    if not recs or acked[-1][1] not in [v for _o, _k, v in recs] or waited < 0.4:
        fail(f"Fetch at {end} from node {new} (its log ends with control entries) answered "
             f"{recs} after {waited:.2f} s; wanted the record produced 0.5 s in")
    if any(k is not None for _o, k, _v in recs):
        fail(f"Fetch answered a control record: {recs}")
    late = t0 + waited - acked_at[0]
    print(f"partition {p0}: leader {old} killed, new leader {new}; Fetch at {end} waited "
          f"{waited:.2f} s past the trailing control entries for the next record at "
          f"{recs[0][0]}, answered {late:.2f} s after its acknowledgement", flush=True)
    if late > 3:
        fail("the Fetch answered more than 3 s after the record it waited for was acknowledged")
    produce("after", 20)
    consume_all("after the leader change")
    prod.close()
    cons.close()
    print(f"partition {p0}: {len(acked)} records acknowledged across the leader change, all "
          f"consumed at their offsets", flush=True)
    return old


def main():
    try:
        CLUSTER.start()
        boot = CLUSTER.kafka[0]
        want = {i + 1: ("127.0.0.1", CLUSTER.kafka_ports[i]) for i in range(3)}

        # Every node's Kafka Metadata lists the three brokers at their Kafka addresses.
        admins = [KafkaAdminClient(bootstrap_servers=CLUSTER.kafka[i],
                                   client_id=f"kmeta-admin-{i + 1}") for i in range(3)]
        for i in range(3):
            poll(f"node {i + 1}'s Kafka Metadata lists brokers {want}",
                 lambda: (kafka_metadata(admins[i]) or ({}, {}))[0] == want)
        print(f"brokers as Kafka Metadata lists them: {want}", flush=True)

        res = poll("CreateTopics through node 1 succeeds",
                   lambda: admins[0].create_topics(
                       [NewTopic(TOPIC, PARTITIONS, 3)], timeout_ms=20000) or True)
        del res

        # Each node's Kafka Metadata names the leader its native Metadata names, with 3 replicas.
        def agrees(i):
            md = kafka_metadata(admins[i])
            nl = native_leaders(CLUSTER.native[i])
            if not md or not nl or len(md[1]) != PARTITIONS:
                return False
            for p, (leader, replicas, isr, err) in md[1].items():
                if leader < 1 or err != 0 or sorted(replicas) != [1, 2, 3] or not isr:
                    return False
                if nl[p] != leader:
                    return False
            return md[1]
        parts = None
        for i in range(3):
            parts = poll(f"node {i + 1}'s Kafka Metadata names native Metadata's leaders",
                         lambda: agrees(i))
        leaders = {p: v[0] for p, v in sorted(parts.items())}
        print(f"leaders (Kafka Metadata = native Metadata): {leaders}", flush=True)
        if len(set(leaders.values())) < 2:
            print("note: every partition is led by one node", flush=True)

        # A leader named in Metadata accepts produce once its term's no-op has committed (a few
        # ms after its election; until then NOT_LEADER): one record per partition with retries
        # waits that out before the counted part starts.
        warm = KafkaProducer(bootstrap_servers=boot, acks="all", retries=20,
                             retry_backoff_ms=50, client_id="kmeta-warmup")
        for f in [warm.send(TOPIC, value=b"warm-up", partition=p) for p in range(PARTITIONS)]:
            f.get(timeout=30)
        warm.close()

        counter = NotLeaderCounter()
        counter.install()

        # retries=0: a produce answered NOT_LEADER_OR_FOLLOWER fails its send.
        prod = KafkaProducer(bootstrap_servers=boot, acks="all", retries=0, linger_ms=5,
                             client_id="kmeta-producer")
        futs = []
        sent = {p: [] for p in range(PARTITIONS)}
        for p in range(PARTITIONS):
            for n in range(RECORDS):
                sent[p].append(f"{p}:{n}:{rng.random()}".encode())
                futs.append((p, n, prod.send(TOPIC, value=sent[p][-1], partition=p)))
        acked = {p: [] for p in range(PARTITIONS)}
        for p, n, f in futs:
            md = f.get(timeout=30)
            if md.partition != p:
                fail(f"record {n} of partition {p} acknowledged in partition {md.partition}")
            acked[p].append(md.offset)
        for p in range(PARTITIONS):
            if acked[p] != list(range(acked[p][0], acked[p][0] + RECORDS)):
                fail(f"partition {p}: acknowledged offsets {acked[p][:5]}... not consecutive")
        print(f"first acknowledged offset per partition: "
              f"{ {p: acked[p][0] for p in range(PARTITIONS)} }", flush=True)
        prod.close()
        print(f"produced {PARTITIONS * RECORDS} records, retries=0, all acknowledged",
              flush=True)

        cons = KafkaConsumer(bootstrap_servers=boot, group_id=None, enable_auto_commit=False,
                             client_id="kmeta-consumer", consumer_timeout_ms=1000)
        tps = [TopicPartition(TOPIC, p) for p in range(PARTITIONS)]
        cons.assign(tps)
        cons.seek_to_beginning(*tps)
        got = {p: [] for p in range(PARTITIONS)}
        control = [0]
        deadline = time.monotonic() + 60
        while sum(len(v) for v in got.values()) < PARTITIONS * RECORDS:
            if time.monotonic() > deadline:
                fail(f"consumed {sum(len(v) for v in got.values())} of "
                     f"{PARTITIONS * RECORDS} records within 60 s")
            for tp, msgs in cons.poll(timeout_ms=500).items():
                # kafka-python 2.0.2 hands out control records (a replicated partition's log
                # holds the Raft no-op and configuration entries as control batches, which
                # librdkafka skips): they are the records with a key here.
                control[0] += sum(1 for m in msgs if m.key is not None)
                got[tp.partition].extend(m for m in msgs
                                         if m.key is None and m.value != b"warm-up")
        cons.close()
        for p in range(PARTITIONS):
            offs = [m.offset for m in got[p]]
            if offs != acked[p]:
                fail(f"partition {p}: consumed offsets {offs} not the acknowledged {acked[p]}")
            vals = [m.value for m in got[p]]
            if vals != sent[p]:
                fail(f"partition {p}: consumed {vals[:2]}... not what was produced "
                     f"{sent[p][:2]}...")
        print(f"consumed {PARTITIONS * RECORDS} records from node 1's bootstrap at the "
              f"acknowledged offsets (and {control[0]} control records)", flush=True)
        if counter.count:
            fail(f"{counter.count} NOT_LEADER_OR_FOLLOWER answers after the first Metadata")
        print("NOT_LEADER_OR_FOLLOWER answers seen by the clients: 0", flush=True)
        if control[0]:
            fail(f"{control[0]} control records reached the consumer")
        check_coordinator(admins, want)
        CLUSTER.restart(failover(admins))
        for a in admins:
            a.close()
    finally:
        codes = CLUSTER.stop()
    # Each node stops cleanly on SIGTERM, and a sanitizer report (make test-asan) fails the test.
    CLUSTER.check_stopped_cleanly(codes)
    # Raft entries of __consumer_offsets (no-ops, configurations) are not commits, and calling
    # them damage would drown real damage in noise.
    for node, text in CLUSTER.logs().items():
        if "commit record does not decode" in text:
            fail(f"node {node} reported a Raft entry of __consumer_offsets as damage")
    print("cluster_meta: ok", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
