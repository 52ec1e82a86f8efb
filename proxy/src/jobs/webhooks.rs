//! Topology change webhooks: the meta leader POSTs every committed version to each configured
//! URL (`meta.webhooks`), so that downstream systems learn of new shards without polling.
//!
//! Contract: while this node leads, each change it applies after it took the lead is sent, in
//! version order, as `{"version", "change", "topology"}` (`change` is the history entry) to
//! every URL; a URL that does not answer 2xx is retried with backoff (0.2 s doubling to 5 s,
//! 8 attempts), then that version is given up for that URL with a warning and
//! `slotgate_webhook_failures_total` counted. Delivery is at least once for the versions a
//! leader sends (a new leader starts after the version current when it took the lead, so a
//! consumer that must see every version reads `GET /topology/watch?from=` its last one).

use crate::metrics::Metrics;
use slotgate_meta::MetaNode;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const ATTEMPTS: u32 = 8;

/// Sends changes to `urls` while this node leads; returns when `cancel` fires.
pub async fn run(meta: MetaNode, urls: Vec<String>, metrics: Metrics, cancel: CancellationToken) {
    if urls.is_empty() {
        return;
    }
    let http = reqwest::Client::new();
    let mut rx = meta.state();
    let mut sent: Option<u64> = None;
    loop {
        tokio::select! {
            r = rx.changed() => if r.is_err() { return },
            _ = cancel.cancelled() => return,
        }
        let state = rx.borrow_and_update().clone();
        let Some(t) = state.topology.as_ref() else { continue };
        if !meta.is_leader() {
            sent = None;
            continue;
        }
        let last = *sent.get_or_insert(t.version.saturating_sub(1));
        for e in state.history.iter().filter(|e| e.version > last && e.version <= t.version) {
            let body = serde_json::json!({ "version": e.version, "change": e, "topology": t });
            for url in &urls {
                deliver(&http, url, &body, &metrics, &cancel).await;
            }
        }
        sent = Some(t.version);
    }
}

async fn deliver(http: &reqwest::Client, url: &str, body: &serde_json::Value, metrics: &Metrics, cancel: &CancellationToken) {
    let mut wait = Duration::from_millis(200);
    for attempt in 1..=ATTEMPTS {
        match http.post(url).timeout(Duration::from_secs(5)).json(body).send().await {
            Ok(r) if r.status().is_success() => return,
            Ok(r) => tracing::warn!(url, attempt, status = r.status().as_u16(), "topology webhook refused"),
            Err(e) => tracing::warn!(url, attempt, error = %e, "topology webhook failed"),
        }
        if attempt < ATTEMPTS {
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = cancel.cancelled() => return,
            }
            wait = (wait * 2).min(Duration::from_secs(5));
        }
    }
    metrics.cutover().webhook_failures.increment(1);
    tracing::warn!(url, version = body["version"].as_u64(), "topology webhook given up for this version");
}
