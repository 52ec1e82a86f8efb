//! The MySQL wire protocol facing clients, on mysql_common's packets.
//!
//! Contract: this module knows nothing of routing, shards or backends. It authenticates the
//! client, decodes commands and hands them to a [`Handler`] with a typed [`Reply`] writer.
//! It must not import `session`, `router` or `backend`.

pub mod auth;
pub mod change_user;
pub mod command;
pub mod connection;
pub mod cursor;
pub mod execute;
pub mod handshake;
pub mod packets;
pub mod reply;
pub mod stream;
pub mod throttle;

pub use connection::serve;
pub use handshake::{FrontendConfig, Login};
pub use packets::OkInfo;
pub use reply::Reply;
pub use stream::{Io, StreamError};

use mysql_common::constants::StatusFlags;
use mysql_common::value::Value;
use std::future::Future;

/// What answers client commands. Each method writes exactly one answer through `reply`
/// (OK, ERR or a result) unless it says otherwise; an `Err` return means the client
/// connection itself failed and is closed.
pub trait Handler: Send {
    /// After login: accept the default database and answer OK, or ERR to refuse.
    fn on_connect(&mut self, login: &Login, reply: &mut Reply<'_>) -> impl Future<Output = Result<(), StreamError>> + Send;
    fn on_query(&mut self, sql: &[u8], reply: &mut Reply<'_>) -> impl Future<Output = Result<(), StreamError>> + Send;
    /// Answer with `reply.prepared(...)` or an error.
    fn on_prepare(&mut self, sql: &[u8], reply: &mut Reply<'_>) -> impl Future<Output = Result<(), StreamError>> + Send;
    fn on_execute(&mut self, stmt_id: u32, params: Vec<Value>, reply: &mut Reply<'_>) -> impl Future<Output = Result<(), StreamError>> + Send;
    /// COM_STMT_CLOSE has no answer.
    fn on_close_statement(&mut self, stmt_id: u32) -> impl Future<Output = ()> + Send;
    fn on_init_db(&mut self, db: &str, reply: &mut Reply<'_>) -> impl Future<Output = Result<(), StreamError>> + Send;
    fn on_ping(&mut self, reply: &mut Reply<'_>) -> impl Future<Output = Result<(), StreamError>> + Send;
    /// COM_FIELD_LIST: answer with [`Reply::field_list`] (or an error).
    fn on_field_list(&mut self, table: &str, wildcard: &str, reply: &mut Reply<'_>) -> impl Future<Output = Result<(), StreamError>> + Send;
    /// COM_REFRESH with its flags (REFRESH_GRANT = 1, LOG = 2, TABLES = 4, HOSTS = 8, STATUS = 16, ...).
    fn on_refresh(&mut self, flags: u8, reply: &mut Reply<'_>) -> impl Future<Output = Result<(), StreamError>> + Send;
    /// COM_STATISTICS: answer with [`Reply::statistics`] (or an error).
    fn on_statistics(&mut self, reply: &mut Reply<'_>) -> impl Future<Output = Result<(), StreamError>> + Send;
    /// COM_RESET_CONNECTION: drop session state, keep the login.
    fn on_reset_connection(&mut self, reply: &mut Reply<'_>) -> impl Future<Output = Result<(), StreamError>> + Send;
    /// COM_CHANGE_USER after the new user's password was checked: start a fresh session.
    fn on_change_user(&mut self, login: &Login, reply: &mut Reply<'_>) -> impl Future<Output = Result<(), StreamError>> + Send;
    /// The session's status flags (IN_TRANS, AUTOCOMMIT) for answers the frontend writes.
    fn status(&self) -> StatusFlags;
    /// How long the client may stay idle before `on_idle` is called; `None` when the session
    /// holds nothing it should give back while idle.
    fn idle_release_after(&self) -> Option<std::time::Duration>;
    /// How long the client may stay idle before its connection is closed (the session's
    /// `wait_timeout`); `None`: no limit.
    fn idle_timeout(&self) -> Option<std::time::Duration> {
        None
    }
    /// The client has been idle for `idle_release_after`: give back what can be given back.
    fn on_idle(&mut self) -> impl Future<Output = ()> + Send;
    /// After a command was answered: true when the session cannot go on (what it held on a
    /// server is gone), so the connection is closed as a lost server connection would be.
    fn must_close(&mut self) -> bool {
        false
    }
    /// The connection is closing (quit, error or shutdown): release what the session holds.
    fn on_close(&mut self) -> impl Future<Output = ()> + Send;
}
