"""kcluster.py: the three ringlogd nodes a Kafka cluster test starts of its own
(autocreate_cluster.py, control_cluster.py, cluster_meta.py), so the start-up each of them used
to carry a copy of is written once. Free ports; in the test's work directory a data directory,
a log and a ready file per node; --voters naming all three; a Kafka listener on each. start()
returns once every node's Kafka Metadata lists the three brokers (they register through the
elected controller, so there is one); a node can be killed and restarted; stop() ends them with
SIGTERM and check_stopped_cleanly() fails the test on an exit code other than 0 or a sanitizer
report in a log (make test-asan). Every wait polls with a deadline, never sleeps to
synchronize. Needs BUILD (tests/kafka/run.sh sets it) and kafka-python (kraw.py)."""
import os
import random
import socket
import subprocess
import sys
import time

import kraw

NODES = (1, 2, 3)
RINGLOGD = os.path.join(os.environ.get("BUILD", "build"), "bin", "ringlogd")
# What ASan, LSan and UBSan write into a log (the brokers run under them in make test-asan).
SANITIZER_MARKS = ("Sanitizer", "runtime error:")


def free_ports(n):
    """n distinct free ports of 127.0.0.1 below the kernel's ephemeral range, at random from
    26000 up (the C tests' tl_pick_ports keeps to 20000-25999), each checked by binding (all
    held until the last is found). Not bind(0)'s
    ephemeral ports: a node started or restarted later could find its port taken as the source
    port of some connection made meanwhile (as tests/lib/tl_broker.c tl_pick_ports)."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            high = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        high = 32768
    if high <= 27000:
        high = 65535
    held, ports = [], []
    try:
        for _ in range(1000):
            if len(ports) == n:
                break
            port = random.SystemRandom().randrange(26000, high)
            s = socket.socket()
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                s.close()
                continue
            held.append(s)
            ports.append(port)
    finally:
        for s in held:
            s.close()
    if len(ports) != n:
        raise OSError("cannot find %d free ports below %d" % (n, high))
    return ports


def no_options(_node):
    return []


class Cluster:
    """Node n (1..3) runs with --node-id n; kafka[n - 1] and native[n - 1] are its Kafka and
    native addresses ("127.0.0.1:port"; kafka_ports[n - 1] the port alone), procs[n - 1] its
    process (None until it starts).

    name heads the failure messages; poll waits `seconds` unless told otherwise and asks again
    on the exceptions in retry_on (a node starting, an election under way); http gives each
    node an HTTP listener of its own (--http off otherwise); node_options(n) is the list of
    extra ringlogd arguments of node n."""

    def __init__(self, name, work, seconds=30.0, retry_on=(Exception,), http=False,
                 node_options=no_options):
        self.name = name
        self.work = work
        self.seconds = seconds
        self.retry_on = retry_on
        self.http = http
        self.node_options = node_options
        self.kafka, self.kafka_ports, self.native, self.argv = [], [], [], []
        self.procs = [None for _ in NODES]

    # --- failing and waiting ---------------------------------------------------------------

    def fail(self, msg):
        """Prints the end of every node's log and exits the test with msg."""
        for node, text in self.logs().items():
            print("--- node %d log (end)\n%s" % (node, text[-1500:]), flush=True)
        sys.exit("%s: %s" % (self.name, msg))

    def poll(self, what, fn, seconds=None):
        """Calls fn every 0.2 s until it returns a true value, which it returns; fails the test
        naming `what` once the deadline has passed."""
        seconds = self.seconds if seconds is None else seconds
        deadline = time.monotonic() + seconds
        last = None
        while time.monotonic() < deadline:
            try:
                v = fn()
                if v:
                    return v
            except self.retry_on as e:  # not yet: ask again
                last = e
            time.sleep(0.2)
        self.fail("%s: not within %.0f s (last error: %r)" % (what, seconds, last))

    # --- the nodes' files ------------------------------------------------------------------

    def log_path(self, node):
        return os.path.join(self.work, "node-%d.log" % node)

    def ready_path(self, node):
        return os.path.join(self.work, "node-%d.ready" % node)

    def logs(self):
        """{node: its log so far} ("" for a node whose log does not exist yet)."""
        texts = {}
        for node in NODES:
            try:
                with open(self.log_path(node), errors="replace") as f:
                    texts[node] = f.read()
            except FileNotFoundError:
                texts[node] = ""
        return texts

    # --- starting, killing, restarting, stopping -------------------------------------------

    def start(self):
        """Starts the three nodes and waits until each is ready and lists all three brokers.
        Returns the Kafka addresses."""
        os.makedirs(self.work, exist_ok=True)
        self.choose_addresses()
        for node in NODES:
            self.launch(node, log_mode="w")
        for node in NODES:
            self.wait_ready(node)
        for node in NODES:
            self.poll("node %d lists %d brokers" % (node, len(NODES)),
                      lambda: self.lists_all_brokers(node))
        return self.kafka

    def choose_addresses(self):
        """Picks the free ports and writes every node's command line."""
        ports = free_ports(3 * len(NODES))
        native = ports[:len(NODES)]
        self.kafka_ports = ports[len(NODES):2 * len(NODES)]
        http_ports = ports[2 * len(NODES):]
        self.native = ["127.0.0.1:%d" % p for p in native]
        self.kafka = ["127.0.0.1:%d" % p for p in self.kafka_ports]
        voters = ",".join("%d@%s" % (node, self.native[node - 1]) for node in NODES)
        self.argv = []
        for node in NODES:
            http = "127.0.0.1:%d" % http_ports[node - 1] if self.http else "off"
            self.argv.append([RINGLOGD, "--node-id", str(node),
                              "--listen", self.native[node - 1], "--http", http,
                              "--data-dir", os.path.join(self.work, "data-%d" % node),
                              "--voters", voters, "--kafka-listen", self.kafka[node - 1],
                              "--ready-file", self.ready_path(node)]
                             + self.node_options(node))

    def launch(self, node, log_mode="a"):
        """Starts node's process (its log appended to, or started afresh with "w")."""
        ready = self.ready_path(node)
        if os.path.exists(ready):  # a restart: the ready file must be the new process's
            os.unlink(ready)
        with open(self.log_path(node), log_mode) as log:
            self.procs[node - 1] = subprocess.Popen(self.argv[node - 1], stdout=log,
                                                    stderr=subprocess.STDOUT)

    def wait_ready(self, node):
        self.poll("node %d writes its ready file" % node, lambda: self.is_ready(node))

    def is_ready(self, node):
        if not self.running(node) or not os.path.exists(self.ready_path(node)):
            return False
        with open(self.ready_path(node)) as f:
            return "kafka=" in f.read()

    def lists_all_brokers(self, node):
        """True when node's Kafka Metadata lists every node as a broker (all registered)."""
        brokers = kraw.metadata_response(self.kafka[node - 1], [], version=1).brokers
        return len(brokers) == len(NODES)

    def running(self, node):
        p = self.procs[node - 1]
        return p is not None and p.poll() is None

    def live(self):
        """The Kafka addresses of the nodes running now."""
        return [self.kafka[node - 1] for node in NODES if self.running(node)]

    def kill(self, node):
        """SIGKILLs node and reaps it."""
        self.procs[node - 1].kill()
        self.procs[node - 1].wait()

    def restart(self, node):
        """Starts node again (on its data and log) and waits until it is ready."""
        self.launch(node)
        self.wait_ready(node)

    def stop(self):
        """Stops every node (SIGTERM, 30 s each); the exit codes, None for a node that never
        started or had to be killed."""
        for node in NODES:
            if self.running(node):
                self.procs[node - 1].terminate()
        codes = []
        for p in self.procs:
            try:
                codes.append(p.wait(timeout=30) if p else None)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
                codes.append(None)
        return codes

    def check_stopped_cleanly(self, codes):
        """Fails the test unless every node exited 0 (codes from stop()) and no log holds a
        sanitizer report."""
        if codes != [0 for _ in NODES]:
            self.fail("the nodes did not stop cleanly: exit codes %r" % codes)
        for node, text in self.logs().items():
            if any(mark in text for mark in SANITIZER_MARKS):
                self.fail("node %d reported sanitizer errors" % node)
