"""Idle PyMySQL-default clients (autocommit=0) hold no backend connection.

Usage: idle_autocommit_check.py HOST PORT USER PASSWORD DB METRICS_URL IDLE WORKERS

Opens IDLE connections with PyMySQL's defaults (it sends SET AUTOCOMMIT = 0), each running
one statement so that it really is a used session, then has WORKERS of them run
single-shard transactions concurrently (read, update, insert, COMMIT or ROLLBACK), while the node's
backend pool is far smaller than WORKERS. Every transaction must be served, every committed
row present and every rolled-back one absent; the node's slotgate_sessions_pinned gauge must
count a session inside a transaction under autocommit_off_transaction and none once they
all ended. Exits non-zero on the first failure.
"""
import re
import sys
import threading
import urllib.request

import pymysql

host, port, user, password, db, metrics_url = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6]
idle, workers = int(sys.argv[7]), int(sys.argv[8])


def connect():
    # PyMySQL's defaults: autocommit=False.
    return pymysql.connect(host=host, port=port, user=user, password=password, database=db)


def pinned():
    text = urllib.request.urlopen(metrics_url, timeout=10).read().decode()
    out = {}
    for m in re.finditer(r'^slotgate_sessions_pinned\{reason="([a-z_]+)"\} (\S+)$', text, re.M):
        out[m.group(1)] = float(m.group(2))
    return out


setup = pymysql.connect(host=host, port=port, user=user, password=password, database=db, autocommit=True)
setup.cursor().execute("CREATE TABLE acc (id INT PRIMARY KEY, n INT NOT NULL)")
setup.cursor().execute("INSERT INTO acc (id, n) VALUES " + ",".join("(%d, 0)" % i for i in range(workers)))

conns = []
for i in range(idle):
    c = connect()
    cur = c.cursor()
    cur.execute("SELECT @@autocommit")
    assert cur.fetchone()[0] == 0
    # The implicit transaction that SELECT may have opened ends here, as it would on MariaDB.
    c.commit()
    conns.append(c)

p = pinned()
assert sum(p.values()) == 0, ("idle autocommit=0 sessions are pinned", p)

# One session inside a transaction is counted, with its reason.
c0 = conns[0]
c0.cursor().execute("SELECT n FROM acc WHERE id = 0")
p = pinned()
assert p.get("autocommit_off_transaction") == 1, p
c0.rollback()
assert sum(pinned().values()) == 0, pinned()

errors = []
rounds = 5


def work(w):
    c = conns[w]
    try:
        for r in range(rounds):
            cur = c.cursor()
            cur.execute("SELECT n FROM acc WHERE id = %s", (w,))
            (n,) = cur.fetchone()
            cur.execute("UPDATE acc SET n = %s WHERE id = %s", (n + 1, w))
            # Same shard key as the row above: each transaction stays on one shard.
            cur.execute("INSERT INTO log_%s (id, r) VALUES (%%s, %%s)" % ("c" if r % 2 == 0 else "r"), (w, r))
            if r % 2 == 0:
                c.commit()
            else:
                c.rollback()
    except Exception as e:  # noqa: BLE001 - reported below
        errors.append((w, repr(e)))


setup.cursor().execute("CREATE TABLE log_c (id INT, r INT, PRIMARY KEY (id, r))")
setup.cursor().execute("CREATE TABLE log_r (id INT, r INT, PRIMARY KEY (id, r))")
threads = [threading.Thread(target=work, args=(w,)) for w in range(workers)]
for t in threads:
    t.start()
for t in threads:
    t.join()
assert not errors, errors[:5]

cur = setup.cursor()
commits = (rounds + 1) // 2
cur.execute("SELECT COUNT(*), MIN(n), MAX(n) FROM acc")
assert cur.fetchone() == (workers, commits, commits), "each worker's committed increments, and only those"
cur.execute("SELECT COUNT(*) FROM log_c")
assert cur.fetchone()[0] == workers * commits
cur.execute("SELECT COUNT(*) FROM log_r")
assert cur.fetchone()[0] == 0, "rolled-back inserts are absent"
assert sum(pinned().values()) == 0, pinned()

# Every idle session still works after all that.
for c in conns[::97]:
    cur = c.cursor()
    cur.execute("SELECT COUNT(*) FROM acc")
    assert cur.fetchone()[0] == workers
    c.commit()
for c in conns:
    c.close()
print("idle autocommit checks passed")
