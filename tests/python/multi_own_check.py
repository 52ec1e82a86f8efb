"""A multi-statement query mixing statements slotgate answers itself (LOAD DATA LOCAL,
KILL QUERY, SHOW PROCESSLIST) with ordinary ones, through PyMySQL: prints a transcript of
the results (columns, rows or affected rows, whether more results follow, errors) to
compare with a direct MariaDB.

Usage: multi_own_check.py HOST PORT USER PASSWORD DB FILE
"""
import sys

import pymysql

host, port, user, password, db, path = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6]
c = pymysql.connect(host=host, port=port, user=user, password=password, database=db, autocommit=True,
                    local_infile=True, client_flag=pymysql.constants.CLIENT.MULTI_STATEMENTS)
cur = c.cursor()


def transcript(sql):
    out = []
    try:
        cur.execute(sql)
        while True:
            r = c._result
            if cur.description:
                names = [d[0] for d in cur.description]
                rows = cur.fetchall()
                if names and names[0] == "Id":
                    # Direct, the test's other connections are listed too.
                    rows = ["<processes>"] if rows else []
                out.append(f"columns={names} rows={list(rows)} more={r.has_next}")
            else:
                out.append(f"affected={cur.rowcount} warnings={r.warning_count} more={r.has_next}")
            if not cur.nextset():
                break
    except pymysql.err.MySQLError as e:
        out.append(f"error={e.args[0]}")
    return out


cases = [
    f"CREATE TEMPORARY TABLE tl (id INT, v VARCHAR(5)); LOAD DATA LOCAL INFILE '{path}' INTO TABLE tl; SELECT * FROM tl ORDER BY id",
    "SELECT 1 AS a; KILL QUERY CONNECTION_ID(); SELECT 2 AS b",
    "SHOW PROCESSLIST; SELECT 3 AS c",
    f"SELECT 4 AS d; LOAD DATA LOCAL INFILE '{path}' INTO TABLE nosuch; SELECT 'not reached'",
    "SET @x = 5; PREPARE s FROM 'SELECT ? AS e'; EXECUTE s USING @x; DEALLOCATE PREPARE s",
]
for sql in cases:
    for line in transcript(sql):
        print(line)
    print("--")
cur.execute("SELECT 'alive'")
print(cur.fetchall())
