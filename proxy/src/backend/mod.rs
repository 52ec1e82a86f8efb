//! Connections to the shards: one [`NodePool`] per backend node.
//!
//! Contract: knows nothing of clients or SQL meaning; hands out pooled connections (RAII
//! guards) and reports pool metrics. Must not import `frontend` or `session`.

pub mod error;
pub mod pool;

pub use error::BackendError;
pub use pool::{quote_ident, NodePool, PooledConn, SessionSync};

use crate::config::Config;
use crate::metrics::Metrics;
use std::collections::HashMap;
use std::sync::Arc;

/// Every shard's primary pool, by shard id.
#[derive(Clone)]
pub struct Backends {
    primaries: Arc<HashMap<String, NodePool>>,
    default_shard: String,
}

impl Backends {
    pub fn new(config: &Config, password: &str, metrics: &Metrics) -> Result<Backends, String> {
        let mut primaries = HashMap::new();
        for shard in &config.shards {
            let pool = NodePool::new(
                &shard.id,
                &shard.primary,
                &config.backend,
                password,
                metrics.pool(&shard.id, &shard.primary),
            )
            .map_err(|e| format!("shard {}: {e}", shard.id))?;
            primaries.insert(shard.id.clone(), pool);
        }
        Ok(Backends { primaries: Arc::new(primaries), default_shard: config.routing.home_shard.clone() })
    }

    /// The pool every statement uses until shard-aware routing lands.
    pub fn default_pool(&self) -> &NodePool {
        // validate() guarantees the default shard exists.
        &self.primaries[&self.default_shard]
    }

    pub fn primary(&self, shard: &str) -> Option<&NodePool> {
        self.primaries.get(shard)
    }

    pub fn report_metrics(&self) {
        for p in self.primaries.values() {
            p.report();
        }
    }

    pub async fn disconnect(&self) {
        for p in self.primaries.values() {
            p.disconnect().await;
        }
    }
}
