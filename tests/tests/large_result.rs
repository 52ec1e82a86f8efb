//! A 200 MB result streams through the proxy without the process holding it: the peak
//! resident memory grows by far less than the result's size. (nextest runs each test in its
//! own process, so the peak belongs to this test.)

use mysql_async::prelude::*;
use slotgate_tests::mariadb::MariaDb;
use slotgate_tests::proxy::TestProxy;

fn peak_rss_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[tokio::test]
async fn two_hundred_megabytes_stream_in_bounded_memory() {
    let m = MariaDb::start().await.unwrap();
    let p = TestProxy::start(&[&m]).await.unwrap();
    let mut c = p.conn(Some("mysql")).await.unwrap();
    let before = peak_rss_kb();
    let mut result = c.query_iter("SELECT seq, REPEAT('x', 10000) FROM seq_1_to_20000").await.unwrap();
    let (mut rows, mut bytes) = (0u64, 0u64);
    while let Some(row) = result.next().await.unwrap() {
        let s: Vec<u8> = row.get(1).unwrap();
        rows += 1;
        bytes += s.len() as u64;
    }
    drop(result);
    assert_eq!(rows, 20_000);
    assert_eq!(bytes, 200_000_000);
    let grown_mb = (peak_rss_kb().saturating_sub(before)) / 1024;
    assert!(grown_mb < 64, "peak memory grew by {grown_mb} MB for a 200 MB result");
}
