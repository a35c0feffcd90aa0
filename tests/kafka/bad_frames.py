"""bad_frames.py: hostile bytes on the Kafka port, from a raw socket. ApiVersions lists exactly
the APIs and versions served (docs/architecture.md, Kafka listener); ApiVersions at a version
above the served range gets UNSUPPORTED_VERSION (35) with the served ranges; a batch with a bad
CRC-32C gets CORRUPT_MESSAGE (2) and the connection stays usable; a negative frame size, an
API key that is not served, a Produce at a version outside the range and a body cut short each
close the connection without an answer, with the reason in the broker's log; and through it
all the broker keeps serving other clients. /metrics counts the requests by Kafka API, the key
it does not serve as "unserved"."""
import os
import socket
import struct
import subprocess
import sys
import time
import urllib.request

HOST, PORT = os.environ["KAFKA_BOOTSTRAP"].rsplit(":", 1)
LOG = os.path.join(os.environ["KAFKA_WORK"], "ringlogd.log")
TOPIC = "bad-%d" % os.getpid()


def fail(msg):
    sys.exit("bad_frames.py: " + msg)


def connect():
    s = socket.create_connection((HOST, int(PORT)), timeout=10)
    s.settimeout(10)
    return s


def request(key, version, corr, body=b""):
    hdr = struct.pack(">hhih", key, version, corr, 4) + b"test"
    return struct.pack(">i", len(hdr) + len(body)) + hdr + body


def recv_exact(s, n):
    out = b""
    while len(out) < n:
        chunk = s.recv(n - len(out))
        if not chunk:
            return None
        out += chunk
    return out


def response(s):
    size = recv_exact(s, 4)
    if size is None:
        return None
    return recv_exact(s, struct.unpack(">i", size)[0])


def closed_without_answer(s, what):
    try:
        data = s.recv(4096)
    except socket.timeout:
        fail("%s: the connection stayed open for 10 s" % what)
    if data:
        fail("%s: got %d bytes of answer; Kafka closes without one" % (what, len(data)))


def api_versions_ok(s, corr):
    s.sendall(request(18, 0, corr))
    r = response(s)
    if r is None or struct.unpack(">ih", r[:6]) != (corr, 0):
        fail("ApiVersions v0 was not answered with error 0")


# ApiVersions v0 lists exactly what is served, with the ranges clients negotiate from.
SERVED = {0: (3, 7), 1: (4, 10), 2: (1, 2), 3: (0, 4), 8: (2, 3), 9: (1, 3), 10: (0, 0),
          11: (0, 2), 12: (0, 1), 13: (0, 1), 14: (0, 1), 15: (0, 2), 16: (0, 2), 18: (0, 3),
          19: (2, 4), 20: (1, 3), 22: (0, 1), 32: (1, 2)}
s = connect()
s.sendall(request(18, 0, 5))
r = response(s)
corr, err, n = struct.unpack(">ihi", r[:10])
listed = {}
for i in range(n):
    k, lo, hi = struct.unpack(">hhh", r[10 + 6 * i:16 + 6 * i])
    listed[k] = (lo, hi)
if (corr, err) != (5, 0) or listed != SERVED:
    fail("ApiVersions v0 lists %s, want %s" % (listed, SERVED))
s.close()

# Too high an ApiVersions version: 35 and the ranges (ApiVersions itself among them).
s = connect()
s.sendall(request(18, 99, 7))
r = response(s)
if r is None:
    fail("ApiVersions v99: connection closed instead of UNSUPPORTED_VERSION")
corr, err, n = struct.unpack(">ihi", r[:10])
keys = [struct.unpack(">hhh", r[10 + 6 * i:16 + 6 * i])[0] for i in range(n)]
if corr != 7 or err != 35 or 18 not in keys:
    fail("ApiVersions v99 answered corr %d error %d keys %s" % (corr, err, keys))
api_versions_ok(s, 8)  # the connection is still usable
s.close()

# A batch whose CRC does not match: CORRUPT_MESSAGE for the partition, connection kept.
subprocess.run([os.environ["RINGLOG"], "--brokers", os.environ["RINGLOG_BROKERS"], "topic",
                "create", TOPIC, "--partitions", "1"], check=True, stdout=subprocess.DEVNULL)
records = bytes([0x0e, 0, 0, 0, 0x01, 0x04]) + b"hi" + bytes([0])
batch_tail = struct.pack(">bIhiqqqhii", 2, 0xDEADBEEF, 0, 0, 0, 0, -1, -1, -1, 1) + records
batch = struct.pack(">qii", 0, 4 + len(batch_tail), 0) + batch_tail
name = TOPIC.encode()
produce = (struct.pack(">hhii", -1, 1, 30000, 1) + struct.pack(">h", len(name)) + name +
           struct.pack(">iii", 1, 0, len(batch)) + batch)
s = connect()
s.sendall(request(0, 3, 21, produce))
r = response(s)
if r is None:
    fail("Produce with a bad CRC: connection closed instead of an error")
off = 4 + 4 + 2 + len(name) + 4 + 4
if struct.unpack(">h", r[off:off + 2])[0] != 2:
    fail("Produce with a bad CRC: error %d, want CORRUPT_MESSAGE (2)" %
         struct.unpack(">h", r[off:off + 2]))
api_versions_ok(s, 22)
s.close()

# Each of these closes the connection with no answer and a logged reason.
cases = [
    ("a negative frame size", struct.pack(">i", -5) + b"\0" * 16, "negative"),
    ("API key 999", request(999, 0, 31), "API key 999"),
    ("Produce v99", request(0, 99, 32), "Produce"),
    ("a Metadata body cut short", request(3, 1, 33, struct.pack(">i", 5)), "Metadata"),
]
for what, data, logged in cases:
    s = connect()
    api_versions_ok(s, 30)
    s.sendall(data)
    closed_without_answer(s, what)
    s.close()
    deadline = time.time() + 10
    while logged not in open(LOG, errors="replace").read() and time.time() < deadline:
        time.sleep(0.05)
    if logged not in open(LOG, errors="replace").read():
        fail("%s: no reason naming \"%s\" in the broker log" % (what, logged))

# The broker still serves everyone.
s = connect()
api_versions_ok(s, 40)
s.close()


def kafka_requests():
    """ringlog_kafka_requests_total by api from the broker's /metrics."""
    http = open(os.path.join(os.environ["KAFKA_WORK"], "ports")).read().split()[1]
    text = urllib.request.urlopen("http://127.0.0.1:%s/metrics" % http, timeout=10).read()
    out = {}
    for line in text.decode().splitlines():
        if line.startswith('ringlog_kafka_requests_total{api="'):
            name = line.split('"')[1]
            out[name] = int(line.split()[-1])
    return out


# Every ApiVersions above was answered and counted once it was sent (at least 8 here), the bad
# Produce too, and API key 999 as "unserved". The count of a request lands when its answer has
# gone (or its connection closed), so this polls briefly.
deadline = time.time() + 10
while True:
    n = kafka_requests()
    if n.get("ApiVersions", 0) >= 8 and n.get("Produce", 0) >= 1 and n.get("unserved", 0) >= 1:
        break
    if time.time() > deadline:
        fail("/metrics does not count the Kafka requests sent: %r" % n)
    time.sleep(0.05)
print("bad frames ok")
