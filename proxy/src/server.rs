//! A slotgate node: the MySQL listener, the admin listener, and their shutdown.
//!
//! Contract: `Node::start` binds both listeners (port 0 allowed, for tests) and returns a
//! handle; nothing is global, so several nodes run in one process. Shutdown stops accepting,
//! lets each connection finish its current statement up to the timeout, then closes the rest.

use crate::admin::{self, AdminState};
use crate::backend::Backends;
use crate::config::{Config, Users};
use crate::error::ClientError;
use crate::frontend::throttle::LoginThrottle;
use crate::frontend::{self, FrontendConfig};
use crate::metrics::Metrics;
use crate::router::ParseCache;
use crate::session::{Session, Shared};
use crate::topology::TopologyHandle;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("{0}")]
    Config(#[from] crate::config::ConfigError),
    #[error("backend pools: {0}")]
    Backends(String),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("{0}")]
    Meta(#[from] crate::topology::MemberError),
}

/// Test and embedding knobs of a node.
#[derive(Default, Clone)]
pub struct NodeOptions {
    /// Links of the meta group this node refuses to use (fault injection for tests).
    pub faults: slotgate_meta::Faults,
}

/// A running node.
pub struct NodeHandle {
    pub mysql_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub metrics: Metrics,
    cancel: CancellationToken,
    hard: CancellationToken,
    tracker: TaskTracker,
    ready: Arc<AtomicBool>,
    backends: Backends,
    topology: TopologyHandle,
    meta: Option<slotgate_meta::MetaNode>,
    shutdown_timeout: Duration,
}

pub struct Node;

impl Node {
    pub async fn start(config: Config, users: Users) -> Result<NodeHandle, NodeError> {
        Node::start_with(config, users, NodeOptions::default()).await
    }

    pub async fn start_with(config: Config, users: Users, options: NodeOptions) -> Result<NodeHandle, NodeError> {
        let metrics = Metrics::new();
        let password = config.backend_password()?;
        let backends = Backends::new(&config.backend, &password, &metrics, Duration::from_millis(config.node.buffer_window_ms), config.node.buffer_max_statements);
        let tls = match &config.tls {
            Some(t) => Some(load_tls(&t.cert, &t.key)?),
            None => None,
        };
        let frontend = FrontendConfig {
            server_version: config.node.server_version.clone(),
            users: Arc::new(users),
            tls,
            max_allowed_packet: config.node.max_allowed_packet,
            backend_packet_limit: backends.packet_limit(),
            throttle: Arc::new(LoginThrottle::new(
                config.node.login_failures_before_delay,
                Duration::from_millis(config.node.login_delay_max_ms),
                metrics.login().clone(),
            )),
        };
        let bind = |addr: SocketAddr| async move {
            TcpListener::bind(addr).await.map_err(|source| NodeError::Bind { addr, source })
        };
        let listener = bind(config.node.listen).await?;
        let admin_listener = bind(config.node.admin_listen).await?;
        let mysql_addr = listener.local_addr().map_err(|source| NodeError::Bind { addr: config.node.listen, source })?;
        let admin_addr = admin_listener
            .local_addr()
            .map_err(|source| NodeError::Bind { addr: config.node.admin_listen, source })?;

        let cancel = CancellationToken::new();
        let hard = CancellationToken::new();
        let tracker = TaskTracker::new();
        let ready = Arc::new(AtomicBool::new(true));

        let topology = match &config.meta {
            Some(_) => TopologyHandle::empty(),
            None => {
                let t = config.topology().map_err(|e| NodeError::Backends(format!("topology: {e}")))?;
                backends.sync(&t).map_err(NodeError::Backends)?;
                metrics.meta().topology_version.set(t.version as f64);
                TopologyHandle::new(t)
            }
        };
        let token: Option<Arc<str>> = config.node.admin_token.as_deref().map(Arc::from);
        let meta = crate::topology::start_member(
            &config,
            crate::topology::MemberParts {
                admin_addr,
                backends: backends.clone(),
                handle: topology.clone(),
                metrics: metrics.clone(),
                hooks: Arc::new(admin::NodeHooks { backends: backends.clone(), metrics: metrics.clone() }),
                faults: options.faults.clone(),
                cancel: cancel.clone(),
                tracker: tracker.clone(),
            },
        )
        .await?;
        let admin_state = AdminState {
            metrics: metrics.clone(),
            backends: backends.clone(),
            topology: topology.clone(),
            meta: meta.clone(),
            ready: ready.clone(),
            token: token.clone(),
            metrics_open: config.node.metrics_open,
            faults: config.node.fault_injection.then(|| options.faults.clone()),
            switchover: meta.clone().map(|m| admin::Switchover {
                meta: m,
                backend: config.backend.clone(),
                password: password.clone(),
                metrics: metrics.clone(),
                active: Default::default(),
                ops: Default::default(),
            }),
            jobs: None,
        };
        let mut admin_state = admin_state;
        if let (Some(sw), Some(m)) = (&admin_state.switchover, &config.meta) {
            tracker.spawn(crate::jobs::webhooks::run(sw.meta.clone(), m.webhooks.clone(), metrics.clone(), cancel.clone()));
        }
        if let Some(sw) = &admin_state.switchover {
            let jobs = crate::jobs::Jobs::new(sw.clone(), config.migration.clone());
            tracker.spawn(jobs.clone().run(cancel.clone(), tracker.clone()));
            if config.autosplit.enabled {
                tracker.spawn(crate::jobs::autosplit::run(jobs.clone(), config.autosplit.clone(), cancel.clone()));
            }
            admin_state.jobs = Some(jobs);
        }
        if let (Some(sw), Some(m)) = (&admin_state.switchover, &config.meta) {
            if m.failover_check_ms > 0 {
                backends.hold_for_failovers(true);
                let interval = Duration::from_millis(m.failover_check_ms);
                tracker.spawn(admin::health_loop(sw.clone(), interval, m.failover_threshold.max(1), cancel.clone()));
            }
        }
        let admin_cancel = cancel.clone();
        let mut app = admin::router(admin_state);
        if let Some(node) = &meta {
            app = app
                .merge(slotgate_meta::api::admin_routes(node.clone(), token.clone()))
                .merge(slotgate_meta::network::server::raft_routes(node.clone()));
        }
        match &config.admin_tls {
            Some(t) => {
                let acceptor = admin::tls::admin_acceptor(t).map_err(NodeError::Tls)?;
                let listener = admin::tls::TlsListener::new(admin_listener, acceptor, cancel.clone(), &tracker)
                    .map_err(|source| NodeError::Bind { addr: config.node.admin_listen, source })?;
                tracker.spawn(async move {
                    let _ = axum::serve(listener, app).with_graceful_shutdown(async move { admin_cancel.cancelled().await }).await;
                });
            }
            None => {
                tracker.spawn(async move {
                    let _ = axum::serve(admin_listener, app).with_graceful_shutdown(async move { admin_cancel.cancelled().await }).await;
                });
            }
        }
        if config.node.deadlock_check_ms > 0 {
            let detector = crate::backend::deadlock::Detector {
                backends: backends.clone(),
                node_id: config.node.id,
                every: Duration::from_millis(config.node.deadlock_check_ms),
                metrics: metrics.clone(),
                peers: meta.clone().map(|m| Arc::new(m) as Arc<dyn crate::backend::deadlock::PeerThreads>),
            };
            tracker.spawn(detector.run(cancel.clone()));
        }
        let upkeep_metrics = metrics.clone();
        let upkeep_cancel = cancel.clone();
        let upkeep_backends = backends.clone();
        tracker.spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        upkeep_metrics.upkeep();
                        // New nodes' packet limits (the first tick is at once).
                        tokio::select! {
                            _ = async {
                                upkeep_backends.probe_packet_limits().await;
                                upkeep_backends.upkeep_states().await;
                            } => {}
                            _ = upkeep_cancel.cancelled() => return,
                        }
                    }
                    _ = upkeep_cancel.cancelled() => return,
                }
            }
        });

        let shared = Arc::new(Shared {
            backends: backends.clone(),
            topology: topology.clone(),
            parse_cache: ParseCache::new(config.node.parse_cache_size),
            metrics: metrics.clone(),
            transaction_mode: config.routing.transaction_mode,
            meta: meta.clone(),
            session_ids: Default::default(),
            sessions: Default::default(),
            node_id: config.node.id,
        });
        let acceptor = Acceptor {
            frontend: Arc::new(frontend),
            shared: shared.clone(),
            metrics: metrics.clone(),
            cancel: cancel.clone(),
            hard: hard.clone(),
            tracker: tracker.clone(),
            limit: Arc::new(Semaphore::new(config.node.max_connections)),
            max_connections: config.node.max_connections,
            next_id: Arc::new(AtomicU32::new(1)),
            node_id: config.node.id,
        };
        tracker.spawn(acceptor.run(listener));
        tracing::info!(%mysql_addr, %admin_addr, node = config.node.id, "slotgate node listening");
        Ok(NodeHandle {
            mysql_addr,
            admin_addr,
            metrics,
            cancel,
            hard,
            tracker,
            ready,
            backends,
            topology,
            meta,
            shutdown_timeout: config.shutdown_timeout(),
        })
    }
}

impl NodeHandle {
    /// The topology this node routes with.
    pub fn topology(&self) -> &TopologyHandle {
        &self.topology
    }

    /// This node's meta group member, when `[meta]` is configured.
    pub fn meta(&self) -> Option<&slotgate_meta::MetaNode> {
        self.meta.as_ref()
    }

    /// Stops at once, as a crashed process would: connections are cut, nothing waits.
    pub async fn kill(self) {
        self.ready.store(false, Ordering::Relaxed);
        self.cancel.cancel();
        self.hard.cancel();
        self.tracker.close();
        if let Some(m) = &self.meta {
            m.shutdown().await;
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), self.tracker.wait()).await;
    }

    /// Stops accepting, waits for running statements up to the shutdown timeout, closes.
    pub async fn shutdown(self) {
        self.ready.store(false, Ordering::Relaxed);
        self.cancel.cancel();
        self.tracker.close();
        if tokio::time::timeout(self.shutdown_timeout, self.tracker.wait()).await.is_err() {
            tracing::warn!("shutdown timeout reached; closing the remaining connections");
            self.hard.cancel();
            let _ = tokio::time::timeout(Duration::from_secs(2), self.tracker.wait()).await;
        }
        if let Some(m) = &self.meta {
            m.shutdown().await;
        }
        self.backends.disconnect().await;
        tracing::info!("slotgate node stopped");
    }
}

struct Acceptor {
    frontend: Arc<FrontendConfig>,
    shared: Arc<Shared>,
    metrics: Metrics,
    cancel: CancellationToken,
    hard: CancellationToken,
    tracker: TaskTracker,
    limit: Arc<Semaphore>,
    max_connections: usize,
    next_id: Arc<AtomicU32>,
    node_id: u64,
}

impl Acceptor {
    fn connection_id(&self) -> u32 {
        // Node id in the top byte keeps ids unique across a cluster's nodes.
        let n = self.next_id.fetch_add(1, Ordering::Relaxed) & 0x00FF_FFFF;
        ((self.node_id as u32 & 0xFF) << 24) | n.max(1)
    }

    async fn run(self, listener: TcpListener) {
        let mut backoff = Duration::from_millis(5);
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                _ = self.cancel.cancelled() => return,
            };
            let (socket, peer) = match accepted {
                Ok(x) => {
                    backoff = Duration::from_millis(5);
                    x
                }
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                    continue;
                }
            };
            let _ = socket.set_nodelay(true);
            let permit = match self.limit.clone().try_acquire_owned() {
                Ok(p) => p,
                Err(_) => {
                    self.metrics.error(crate::error::ErrorKind::Overload);
                    let e = ClientError::too_many_connections(self.max_connections);
                    self.tracker.spawn(refuse(socket, e));
                    continue;
                }
            };
            let id = self.connection_id();
            let span = tracing::info_span!("conn", id, %peer);
            let (frontend, shared, metrics) = (self.frontend.clone(), self.shared.clone(), self.metrics.clone());
            let (cancel, hard) = (self.cancel.clone(), self.hard.clone());
            self.tracker.spawn(
                async move {
                    metrics.connection_opened();
                    // Its own token: shutdown or a KILL from another connection ends it.
                    let conn_cancel = cancel.child_token();
                    let _registered = shared.sessions.register(id, &peer.to_string(), conn_cancel.clone());
                    let mut session = Session::new(shared);
                    let host = peer.ip().to_string();
                    let serve = frontend::serve(Box::new(socket), &frontend, id, &host, &mut session, &metrics, &conn_cancel);
                    tokio::select! {
                        r = serve => if let Err(e) = r {
                            tracing::debug!(error = %e, "connection ended with an error");
                        },
                        _ = hard.cancelled() => {}
                    }
                    metrics.connection_closed();
                    drop(permit);
                }
                .instrument(span),
            );
        }
    }
}

/// Greets an over-limit client with ER_CON_COUNT_ERROR and closes.
async fn refuse(socket: TcpStream, e: ClientError) {
    let mut stream = frontend::stream::PacketStream::new(Box::new(socket), 1024);
    let _ = tokio::time::timeout(Duration::from_secs(1), stream.send(frontend::packets::err(&e))).await;
}

fn load_tls(cert: &std::path::Path, key: &std::path::Path) -> Result<TlsAcceptor, NodeError> {
    let config = admin::tls::server_config(cert, key, None).map_err(NodeError::Tls)?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}
