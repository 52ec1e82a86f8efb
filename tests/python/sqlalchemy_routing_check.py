"""SQLAlchemy Core over PyMySQL against slotgate with a sharded table.

Usage: sqlalchemy_routing_check.py HOST PORT USER PASSWORD DB
(DB must have a sharding rule: <DB>.users sharded by id.) Exits non-zero on the first failure.
"""
import sys

try:
    import sqlalchemy as sa
except ImportError:
    sys.exit("SQLAlchemy is missing: pip install sqlalchemy (scripts/test.sh installs it)")

host, port, user, password, db = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
engine = sa.create_engine(f"mysql+pymysql://{user}:{password}@{host}:{port}/{db}", pool_pre_ping=True)
meta = sa.MetaData()
users = sa.Table(
    "users", meta,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("name", sa.String(40)),
    sa.Column("country", sa.String(2)),
    sa.Column("score", sa.Numeric(10, 2)),
)
meta.create_all(engine)  # DDL broadcast to every shard

rows = [{"id": i, "name": f"n{i}", "country": ["de", "fr", "jp"][i % 3], "score": i * 1.5} for i in range(1, 301)]
with engine.begin() as conn:  # one transaction over every shard
    conn.execute(sa.insert(users), rows)

with engine.connect() as conn:
    assert conn.execute(sa.select(users.c.name).where(users.c.id == 42)).scalar_one() == "n42"
    got = conn.execute(sa.select(users.c.id).where(users.c.id.in_([3, 150, 299])).order_by(users.c.id)).scalars().all()
    assert got == [3, 150, 299], got
    assert conn.execute(sa.select(sa.func.count()).select_from(users)).scalar_one() == 300
    by_country = dict(conn.execute(sa.select(users.c.country, sa.func.count()).group_by(users.c.country)).all())
    assert by_country == {"de": 100, "fr": 100, "jp": 100}, by_country
    top = conn.execute(sa.select(users.c.id).order_by(users.c.score.desc()).limit(3).offset(1)).scalars().all()
    assert top == [299, 298, 297], top
    total = conn.execute(sa.select(sa.func.sum(users.c.score))).scalar_one()
    assert float(total) == sum(i * 1.5 for i in range(1, 301)), total

with engine.begin() as conn:
    n = conn.execute(sa.update(users).where(users.c.country == "jp").values(score=0)).rowcount
    assert n == 100, n
    n = conn.execute(sa.delete(users).where(users.c.id > 290)).rowcount
    assert n == 10, n

# A rolled-back transaction over several shards leaves nothing behind.
try:
    with engine.begin() as conn:
        conn.execute(sa.insert(users), [{"id": 1000 + i, "name": "tmp"} for i in range(10)])
        raise RuntimeError("roll back")
except RuntimeError:
    pass
with engine.connect() as conn:
    assert conn.execute(sa.select(sa.func.count()).select_from(users).where(users.c.id >= 1000)).scalar_one() == 0
    # A NULL shard key is refused with a MySQL error, not a crash.
    try:
        conn.execute(sa.text("INSERT INTO users (id, name) VALUES (NULL, 'x')"))
        sys.exit("NULL shard key accepted")
    except sa.exc.DBAPIError as e:
        assert e.orig.args[0] == 1048, e
print("sqlalchemy routing checks passed")
