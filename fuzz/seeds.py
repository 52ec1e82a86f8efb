#!/usr/bin/env python3
"""Writes the seed corpus of the fuzz targets into fuzz/corpus/<target>/ (idempotent).

Router seeds are the SQL texts of the router's unit tests; frontend seeds are well-formed
packets of every kind the decoders read (a correct login among them); meta seeds are a log
entry, a request and command sequences that build a topology and start a migration; merge
seeds are fixed pseudo-random streams. Run it after adding router tests: python3 fuzz/seeds.py
"""
import hashlib, json, os, random, re, struct

ROOT = os.path.dirname(os.path.abspath(__file__))


def write(target, name, data):
    d = os.path.join(ROOT, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def u16(n):
    return struct.pack("<H", n)


def router():
    sqls = set()
    src = os.path.join(ROOT, "..", "proxy", "src", "router")
    pat = re.compile(r'"((?:SELECT|INSERT|UPDATE|DELETE|REPLACE|CREATE|ALTER|DROP|SET|SHOW|BEGIN|START|COMMIT|ROLLBACK|WITH|USE|EXPLAIN|TRUNCATE|LOCK|CALL)\b(?:[^"\\]|\\.)*)"', re.I)
    for name in sorted(os.listdir(src)):
        if name.startswith("tests") and name.endswith(".rs"):
            for m in pat.finditer(open(os.path.join(src, name)).read()):
                sqls.add(m.group(1).replace('\\"', '"').replace("\\\\", "\\"))
    for i, sql in enumerate(sorted(sqls)):
        topo = i % 2  # every other seed against the topology with a migration running
        params = sql.count("?")
        head = bytes([topo, 1]) + u16(min(params, 4))
        for p in range(min(params, 4)):
            head += bytes([1]) + struct.pack("<I", 40 + p)
        write("router", f"sql-{i:03}", head + sql.encode())


def native_token(scramble, password):
    s1 = hashlib.sha1(password).digest()
    s2 = hashlib.sha1(s1).digest()
    mix = hashlib.sha1(scramble + s2).digest()
    return bytes(a ^ b for a, b in zip(s1, mix))


def frontend():
    caps = 0x0000_0200 | 0x0000_8000 | 0x0008_0000 | 0x0000_0008 | 0x0020_0000 | 0x0001_0000
    c = struct.pack("<I", caps)
    commands = {
        "query": b"\x03SELECT * FROM orders WHERE customer_id = 42",
        "init-db": b"\x02shop",
        "ping": b"\x0e",
        "quit": b"\x01",
        "field-list": b"\x04orders\x00%",
        "set-option": b"\x1b\x01\x00",
        "long-data": b"\x18" + struct.pack("<IH", 1, 0) + b"hello",
        "close": b"\x19" + struct.pack("<I", 1),
        "reset": b"\x1a" + struct.pack("<I", 1),
        "fetch": b"\x1c" + struct.pack("<II", 1, 10),
        "refresh": b"\x07\x01",
        "change-user": b"\x11app\x00" + bytes([20]) + b"x" * 20 + b"shop\x00" + u16(45) + b"mysql_native_password\x00",
        "execute": b"\x17" + struct.pack("<IBI", 1, 0, 1) + b"\x00\x01\x08\x00" + struct.pack("<q", 42),
    }
    for name, packet in commands.items():
        write("frontend", f"command-{name}", b"\x00" + c + packet)
    # mode 1: a two-parameter execute (BIGINT, VARCHAR), types sent in the packet.
    body = struct.pack("<IBI", 7, 0, 1) + b"\x00" + b"\x01" + b"\x08\x00\xfd\x00" + struct.pack("<q", -5) + b"\x03abc"
    write("frontend", "execute-two-params", b"\x01" + u16(2) + b"\x00" + u16(0) + body)
    body = struct.pack("<IBI", 7, 0, 1) + b"\x02" + b"\x00"
    write("frontend", "execute-null-rebound", b"\x01" + u16(2) + b"\x01\x08\x00\xfd\x00" + u16(0) + body)
    # mode 2: a handshake response with the right password for user app.
    scramble = bytes(range(1, 21))
    token = native_token(scramble, b"secret")
    resp = struct.pack("<IIB", caps, 1 << 24, 45) + b"\x00" * 23 + b"app\x00" + bytes([20]) + token + b"shop\x00" + b"mysql_native_password\x00"
    write("frontend", "login-right-password", b"\x02" + scramble + resp)
    ssl = struct.pack("<IIB", caps | 0x800, 1 << 24, 45) + b"\x00" * 23
    write("frontend", "login-ssl-request", b"\x02" + scramble + ssl)
    # mode 3: framed bytes, plain and compressed.
    q = b"\x03SELECT 1"
    plain = struct.pack("<I", len(q))[:3] + b"\x00" + q
    write("frontend", "framing-plain", b"\x03\x00" + u16(5) + plain)
    comp = struct.pack("<I", len(plain))[:3] + b"\x00" + b"\x00\x00\x00" + plain
    write("frontend", "framing-compressed", b"\x03\x01" + u16(7) + comp)
    write("frontend", "round-trip", b"\x04\x01" + u16(300) + b"\x07" + u16(20000) + b"\x01")


def meta():
    init = {"request_id": "r1", "actor": "seed", "at_ms": 1, "command": {"kind": "init", "slot_count": 16, "home": "s0",
            "shards": [{"id": "s0", "state": "active", "primary": "127.0.0.1:3306", "replicas": []},
                       {"id": "s1", "state": "active", "primary": "127.0.0.1:3307", "replicas": ["db:3306"]}],
            "rules": [{"database": "shop", "table": "orders", "column": "id"}]}}
    write("meta", "request-init", b"\x00" + json.dumps(init).encode())
    entry = {"log_id": {"leader_id": {"term": 1, "node_id": 1}, "index": 1}, "payload": {"Normal": init}}
    write("meta", "entry-normal", b"\x00" + json.dumps(entry).encode())
    # mode 1: init (16 slots, shards s0..s2, one rule), then a migration, phases and a move.
    shard = lambda i: u16(0) + u16(i) + u16(i % 4) + u16(0)
    seq = b"\x01" + b"\x00" + u16(2) + u16(3) + shard(0) + shard(1) + shard(2) + u16(0) + u16(1) + u16(0) + u16(0) + u16(0)
    seq += b"\x01" + b"\x0f" + u16(0) + b"\x00\x03" + u16(3) + b"\x00"          # migration_begin 0-3 -> s3 (refused: no s3)
    seq += b"\x01" + b"\x01" + u16(0) + u16(3) + u16(1) + u16(0)                # add_shard s3
    seq += b"\x01" + b"\x0f" + u16(0) + b"\x00\x03" + u16(3) + b"\x00"          # migration_begin 0-3 -> s3
    seq += b"\x01" + b"\x11" + u16(1) + b"\x01"                                 # migration_phase catch_up
    seq += b"\x01" + b"\x07" + u16(0) + b"\x08\x02" + u16(2)                    # freeze_slots 8-10 -> s2
    seq += b"\x01" + b"\x06" + u16(0) + b"\x08\x02" + u16(2)                    # assign_slots 8-10 -> s2
    seq += b"\x00" + b"\x12" + b"\x01"                                          # retry of an earlier id
    write("meta", "sequence-migration", seq)
    rnd = random.Random(11)
    for i in range(12):
        write("meta", f"random-{i:02}", bytes([1 + i % 3]) + bytes(rnd.randrange(256) for _ in range(rnd.randrange(20, 200))))


def merge():
    rnd = random.Random(7)
    for i in range(24):
        write("merge", f"random-{i:02}", bytes([i % 3]) + bytes(rnd.randrange(256) for _ in range(rnd.randrange(10, 300))))


router()
frontend()
meta()
merge()
