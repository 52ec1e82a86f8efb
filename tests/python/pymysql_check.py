"""PyMySQL through slotgate: login, types, parameters, transactions, errors, multi-results.

Usage: pymysql_check.py HOST PORT USER PASSWORD DB. Exits non-zero on the first failure.
"""
import datetime
import decimal
import sys

try:
    import pymysql
except ImportError:
    sys.exit("PyMySQL is missing: pip install pymysql (scripts/test.sh installs it)")

host, port, user, password, db = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]


def connect(**kw):
    return pymysql.connect(host=host, port=port, user=user, password=password, database=db, **kw)


# Wrong password: 1045.
try:
    pymysql.connect(host=host, port=port, user=user, password="wrong-" + password)
    sys.exit("login with a wrong password succeeded")
except pymysql.err.OperationalError as e:
    assert e.args[0] == 1045, e

c = connect(client_flag=pymysql.constants.CLIENT.MULTI_STATEMENTS, autocommit=True)
cur = c.cursor()
cur.execute("CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(20), price DECIMAL(8,2), at DATETIME, blob_col BLOB, f DOUBLE)")
rows = [(i, "n%d" % i if i % 3 else None, decimal.Decimal("1.25") * i, datetime.datetime(2024, 1, 2, 3, 4, i), bytes([i, 0, 255]), i / 4) for i in range(1, 11)]
assert cur.executemany("INSERT INTO items VALUES (%s, %s, %s, %s, %s, %s)", rows) == 10
cur.execute("SELECT id, name, price, at, blob_col, f FROM items WHERE id IN (%s, %s) ORDER BY id", (3, 4))
got = cur.fetchall()
assert got == tuple(rows[2:4]), got
assert [d[0] for d in cur.description] == ["id", "name", "price", "at", "blob_col", "f"]

# Transactions.
c.begin()
cur.execute("UPDATE items SET price = 0 WHERE id = 1")
c.rollback()
cur.execute("SELECT price FROM items WHERE id = 1")
assert cur.fetchone()[0] == decimal.Decimal("1.25")

# Errors keep their codes.
try:
    cur.execute("SELECT * FROM nope")
    sys.exit("query on a missing table succeeded")
except pymysql.err.ProgrammingError as e:
    assert e.args[0] == 1146, e

# Multiple result sets.
cur.execute("SELECT 1; SELECT 2, 3")
assert cur.fetchall() == ((1,),)
assert cur.nextset()
assert cur.fetchall() == ((2, 3),)

# Unicode round trip.
cur.execute("SELECT %s", ("héllo ✓ 😀",))
assert cur.fetchone()[0] == "héllo ✓ 😀"

c.ping()
c.close()
print("pymysql checks passed")
