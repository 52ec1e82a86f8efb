//! Durability and idempotency of the meta store across reopen of the same data directory.
//!
//! Contract checked here: after dropping the stores and calling `MetaStore::open` on the same
//! directory, the vote, log entries, committed id, purge point, applied state and current
//! snapshot are exactly what was acknowledged before; a request id applied twice bumps the
//! version once (also across a restart); a snapshot installed elsewhere restores the state.

use std::collections::BTreeSet;

use openraft::storage::{RaftLogStorage, RaftLogStorageExt, RaftStateMachine};
use openraft::testing::log_id;
use openraft::{EntryPayload, LogState, RaftLogReader, RaftSnapshotBuilder};
use slotgate_meta::typ::{Entry, LogId, Membership, StoredMembership, Vote};
use slotgate_meta::{MetaRequest, MetaResponse, MetaStore};
use slotgate_shared::{Shard, ShardState, ShardingRule, TopologyCommand};

fn lid(index: u64) -> LogId {
    log_id(1, 1, index)
}

/// Command number 0 initialises the topology; any other adds a rule for table `t<n>`.
fn command(n: u64) -> TopologyCommand {
    if n == 0 {
        let shard = Shard { id: "a".into(), state: ShardState::Active, primary: "h:1".into(), replicas: vec![] };
        return TopologyCommand::Init { slot_count: 4, shards: vec![shard], home: "a".into(), rules: vec![] };
    }
    TopologyCommand::AddRule { rule: ShardingRule { database: "d".into(), table: format!("t{n}"), column: "k".into() } }
}

fn normal(index: u64, request_id: &str, n: u64) -> Entry {
    Entry {
        log_id: lid(index),
        payload: EntryPayload::Normal(MetaRequest {
            request_id: request_id.to_string(),
            actor: "test".into(),
            at_ms: 0,
            if_version: None,
            command: command(n),
        }),
    }
}

fn ok(version: u64) -> MetaResponse {
    MetaResponse { version, refused: None, retried: false }
}

fn retried(version: u64) -> MetaResponse {
    MetaResponse { version, refused: None, retried: true }
}

fn rules(sm: &slotgate_meta::StateMachineStore) -> Vec<String> {
    let t = sm.state().topology.as_ref().expect("initialised");
    t.rules.iter().map(|r| r.table.clone()).collect()
}

fn voters_123() -> Membership {
    let voters: BTreeSet<u64> = [1, 2, 3].into_iter().collect();
    Membership::new(vec![voters], None)
}

fn membership(index: u64) -> Entry {
    Entry {
        log_id: lid(index),
        payload: EntryPayload::Membership(voters_123()),
    }
}

fn blank(index: u64) -> Entry {
    Entry {
        log_id: lid(index),
        payload: EntryPayload::Blank,
    }
}

#[tokio::test]
async fn everything_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let entries = vec![
        membership(1),
        normal(2, "r1", 0),
        normal(3, "r2", 2),
        normal(4, "r3", 3),
        blank(5),
        blank(6),
    ];

    let (snapshot_meta, snapshot_data) = {
        let (mut log, mut sm) = MetaStore::open(dir.path()).unwrap();
        log.save_vote(&Vote::new_committed(1, 1)).await.unwrap();
        log.blocking_append(entries.clone()).await.unwrap();
        log.truncate(lid(6)).await.unwrap();
        log.save_committed(Some(lid(4))).await.unwrap();

        let replies = sm.apply(entries[..4].to_vec()).await.unwrap();
        assert_eq!(
            replies,
            vec![
                ok(0),
                ok(1),
                ok(2),
                ok(3),
            ]
        );
        let snap = sm
            .get_snapshot_builder()
            .await
            .build_snapshot()
            .await
            .unwrap();
        assert_eq!(snap.meta.last_log_id, Some(lid(4)));
        log.purge(lid(2)).await.unwrap();

        let current = sm.get_current_snapshot().await.unwrap().unwrap();
        assert_eq!(current.meta, snap.meta);
        (snap.meta, snap.snapshot.into_inner())
    };

    let (mut log, mut sm) = MetaStore::open(dir.path()).unwrap();
    assert_eq!(
        log.read_vote().await.unwrap(),
        Some(Vote::new_committed(1, 1))
    );
    assert_eq!(log.read_committed().await.unwrap(), Some(lid(4)));
    assert_eq!(
        log.get_log_state().await.unwrap(),
        LogState {
            last_purged_log_id: Some(lid(2)),
            last_log_id: Some(lid(5)),
        }
    );
    assert_eq!(
        log.try_get_log_entries(0..100).await.unwrap(),
        entries[2..5].to_vec()
    );
    let mut reader = log.get_log_reader().await;
    assert_eq!(
        reader.try_get_log_entries(4..5).await.unwrap(),
        entries[3..4].to_vec()
    );

    let (applied, mem) = sm.applied_state().await.unwrap();
    assert_eq!(applied, Some(lid(4)));
    assert_eq!(mem, StoredMembership::new(Some(lid(1)), voters_123()));
    assert_eq!(sm.state().version(), 3);
    assert_eq!(rules(&sm), vec!["t2", "t3"]);
    assert_eq!(sm.state().requests.len(), 3);

    let current = sm.get_current_snapshot().await.unwrap().unwrap();
    assert_eq!(current.meta, snapshot_meta);
    assert_eq!(current.snapshot.into_inner(), snapshot_data);

    // The log keeps going after a restart.
    log.blocking_append([blank(6)]).await.unwrap();
    assert_eq!(log.get_log_state().await.unwrap().last_log_id, Some(lid(6)));
}

#[tokio::test]
async fn same_request_id_applies_once() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (_log, mut sm) = MetaStore::open(dir.path()).unwrap();
        let replies = sm
            .apply([
                normal(1, "same", 0),
                normal(2, "same", 5),
            ])
            .await
            .unwrap();
        assert_eq!(
            replies,
            vec![ok(1), retried(1)]
        );
        assert_eq!(sm.state().version(), 1);
        assert!(rules(&sm).is_empty());
        assert_eq!(sm.applied_state().await.unwrap().0, Some(lid(2)));
    }
    // The dedup table is durable: a retry after a restart is still recognised.
    let (_log, mut sm) = MetaStore::open(dir.path()).unwrap();
    let replies = sm
        .apply([
            normal(3, "same", 6),
            normal(4, "other", 7),
        ])
        .await
        .unwrap();
    assert_eq!(
        replies,
        vec![retried(1), ok(2)]
    );
    assert_eq!(sm.state().version(), 2);
    assert_eq!(rules(&sm), vec!["t7"]);
}

#[tokio::test]
async fn installed_snapshot_survives_reopen() {
    let leader_dir = tempfile::tempdir().unwrap();
    let follower_dir = tempfile::tempdir().unwrap();

    let (_l_log, mut leader) = MetaStore::open(leader_dir.path()).unwrap();
    leader
        .apply([membership(1), normal(2, "a", 0)])
        .await
        .unwrap();
    let snap = leader
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap();

    {
        let (_f_log, mut follower) = MetaStore::open(follower_dir.path()).unwrap();
        let mut rx = follower.begin_receiving_snapshot().await.unwrap();
        *rx = *snap.snapshot.clone();
        follower.install_snapshot(&snap.meta, rx).await.unwrap();
        assert_eq!(follower.stored_state(), leader.stored_state());
    }

    let (_f_log, mut follower) = MetaStore::open(follower_dir.path()).unwrap();
    assert_eq!(follower.stored_state(), leader.stored_state());
    let current = follower.get_current_snapshot().await.unwrap().unwrap();
    assert_eq!(current.meta, snap.meta);

    // A garbage snapshot is rejected and changes nothing.
    let mut rx = follower.begin_receiving_snapshot().await.unwrap();
    rx.get_mut().extend_from_slice(b"not json");
    let mut bad_meta = snap.meta.clone();
    bad_meta.last_log_id = Some(lid(9));
    assert!(follower.install_snapshot(&bad_meta, rx).await.is_err());
    assert_eq!(follower.stored_state(), leader.stored_state());
}

#[tokio::test]
async fn newer_snapshot_on_disk_restores_state_at_open() {
    // Simulates a crash after an installed snapshot was renamed into place but before the
    // applied state was committed: the snapshot file is newer than the state database.
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let expected = {
        let (_log, mut sm) = MetaStore::open(src.path()).unwrap();
        sm.apply([membership(1), normal(2, "a", 0)])
            .await
            .unwrap();
        sm.get_snapshot_builder()
            .await
            .build_snapshot()
            .await
            .unwrap();
        sm.stored_state().clone()
    };
    std::fs::create_dir_all(dst.path().join("snapshots")).unwrap();
    std::fs::copy(
        src.path().join("snapshots/current.snap"),
        dst.path().join("snapshots/current.snap"),
    )
    .unwrap();

    let (_log, mut sm) = MetaStore::open(dst.path()).unwrap();
    assert_eq!(sm.stored_state(), &expected);
    assert_eq!(sm.applied_state().await.unwrap().0, Some(lid(2)));
}
