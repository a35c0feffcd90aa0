"""kraw.py: raw Kafka requests for the auto-creation tests (autocreate.py, autocreate_off.py):
one request on its own connection, encoded and decoded with kafka-python's protocol classes, so
a test sees the exact error code the broker put in the answer (a client library would retry
or hide it)."""
import io
import socket
import struct

from kafka.protocol.admin import CreateTopicsRequest, CreateTopicsResponse
from kafka.protocol.metadata import MetadataRequest, MetadataResponse
from kafka.protocol.produce import ProduceRequest, ProduceResponse
from kafka.record.memory_records import MemoryRecordsBuilder

LEADER_NOT_AVAILABLE = 5
UNKNOWN_TOPIC_OR_PARTITION = 3
INVALID_TOPIC_EXCEPTION = 17
INVALID_REPLICATION_FACTOR = 38


def _recv_exact(s, n):
    out = b""
    while len(out) < n:
        chunk = s.recv(n - len(out))
        if not chunk:
            raise ConnectionError("the broker closed the connection without an answer")
        out += chunk
    return out


def connect(bootstrap):
    host, port = bootstrap.rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=10)
    s.settimeout(10)
    return s


def send(s, key, version, body, corr=1):
    hdr = struct.pack(">hhih", key, version, corr, 4) + b"test"
    s.sendall(struct.pack(">i", len(hdr) + len(body)) + hdr + body)


def receive(s, resp_class):
    size = struct.unpack(">i", _recv_exact(s, 4))[0]
    data = _recv_exact(s, size)
    return resp_class.decode(io.BytesIO(data[4:]))  # after the correlation id


def metadata_response(bootstrap, topics, version=4, allow=True):
    """The decoded answer to one Metadata request (kafka-python's MetadataResponse)."""
    if version >= 4:
        q = MetadataRequest[version](topics=topics, allow_auto_topic_creation=allow)
    else:
        q = MetadataRequest[version](topics=topics)
    s = connect(bootstrap)
    try:
        send(s, 3, version, q.encode())
        return receive(s, MetadataResponse[version])
    finally:
        s.close()


def metadata(bootstrap, topics, version=4, allow=True):
    """{topic: (error_code, partition count)} from one Metadata request."""
    r = metadata_response(bootstrap, topics, version, allow)
    return {t[1]: (t[0], len(t[-1])) for t in r.topics}


def metadata_pipelined(bootstrap, topic, n, version=1):
    """The error codes of n Metadata requests for topic sent in one write on one connection, so
    the broker reads them together and serves them in one turn of its loop."""
    q = MetadataRequest[version](topics=[topic])
    body = q.encode()
    frames = b""
    for i in range(n):
        hdr = struct.pack(">hhih", 3, version, i + 1, 4) + b"test"
        frames += struct.pack(">i", len(hdr) + len(body)) + hdr + body
    s = connect(bootstrap)
    try:
        s.sendall(frames)
        answers = [receive(s, MetadataResponse[version]) for _ in range(n)]
    finally:
        s.close()
    return [r.topics[0][0] for r in answers]


def produce(bootstrap, topic, value, partition=0):
    """(error_code, base_offset) of one record produced with acks=1 (Produce v3)."""
    b = MemoryRecordsBuilder(magic=2, compression_type=0, batch_size=1 << 20)
    b.append(timestamp=None, key=None, value=value, headers=[])
    b.close()
    q = ProduceRequest[3](transactional_id=None, required_acks=1, timeout=10000,
                          topics=[(topic, [(partition, bytes(b.buffer()))])])
    s = connect(bootstrap)
    try:
        send(s, 0, 3, q.encode())
        r = receive(s, ProduceResponse[3])
    finally:
        s.close()
    part = r.topics[0][1][0]
    return part[1], part[2]


def create_topic(bootstrap, topic, partitions, replication_factor):
    """(error_code, error_message) of CreateTopics v2 for one topic (-1: the broker's default;
    kafka-python's admin client refuses to send it)."""
    q = CreateTopicsRequest[2](create_topic_requests=[(topic, partitions, replication_factor,
                                                       [], [])],
                               timeout=10000, validate_only=False)
    s = connect(bootstrap)
    try:
        send(s, 19, 2, q.encode())
        r = receive(s, CreateTopicsResponse[2])
    finally:
        s.close()
    return r.topic_errors[0][1], r.topic_errors[0][2]
