//! Typed writer for one command's answer, so that a handler cannot write a wrong sequence:
//! OK, ERR, a result set (columns, rows, terminator), or a prepared statement's description.
//!
//! Contract: knows the negotiated capabilities (EOF vs OK terminators); records whether an
//! error was sent (for metrics) and the parameter count of statements it described, which the
//! connection needs to decode COM_STMT_EXECUTE.

use super::cursor::{Capture, Cursor};
use super::packets::{self, OkInfo};
use super::stream::{PacketStream, StreamError};
use crate::error::ClientError;
use mysql_common::constants::{CapabilityFlags, StatusFlags};
use mysql_common::packets::Column;
use mysql_common::value::Value;

/// A prepared statement the frontend described to the client.
#[derive(Debug, Clone, Copy)]
pub struct Described {
    pub stmt_id: u32,
    pub num_params: usize,
    pub num_columns: usize,
}

pub struct Reply<'a> {
    stream: &'a mut PacketStream,
    capabilities: CapabilityFlags,
    multi_statements: bool,
    pub(super) errored: Option<ClientError>,
    pub(super) described: Option<Described>,
    deferred: Option<(LastPacket, StatusFlags)>,
    pub(super) close_after: bool,
    /// Set while a cursor execute is answered (see `cursor`).
    capture: Option<Capture>,
    /// Set while the rows of a bulk execute run: their OKs are summed into one.
    pub(super) bulk: Option<BulkSum>,
    /// The answer is followed by another statement's in the same command (a multi-statement
    /// query run statement by statement): every terminator says SERVER_MORE_RESULTS_EXISTS.
    chained: bool,
    /// The client negotiated CLIENT_SESSION_TRACK.
    track: bool,
    /// Session state changes the next OK reports (see `track_state`).
    pending_state: Option<Vec<u8>>,
}

/// What the rows of a COM_STMT_BULK_EXECUTE answered so far.
#[derive(Debug, Default)]
pub(super) struct BulkSum {
    pub affected_rows: u64,
    /// The first row's generated id, as MariaDB reports for a bulk insert.
    pub last_insert_id: u64,
    pub warnings: u16,
    /// A row answered with a result set (swallowed; the bulk is refused).
    pub result_set: bool,
}

/// The final packet of an answer, held back until the final status is known.
#[derive(Debug)]
pub enum LastPacket {
    Ok(OkInfo),
    EndRows(u16),
}

impl<'a> Reply<'a> {
    pub(super) fn new(stream: &'a mut PacketStream, capabilities: CapabilityFlags, multi_statements: bool) -> Self {
        Reply { stream, capabilities, multi_statements, errored: None, described: None, deferred: None, close_after: false, capture: None, bulk: None, chained: false, track: capabilities.contains(CapabilityFlags::CLIENT_SESSION_TRACK), pending_state: None }
    }

    fn deprecate_eof(&self) -> bool {
        self.capabilities.contains(CapabilityFlags::CLIENT_DEPRECATE_EOF)
    }

    /// The negotiated capabilities (e.g. CLIENT_FOUND_ROWS decides affected-row counting).
    pub fn capabilities(&self) -> CapabilityFlags {
        self.capabilities
    }

    /// Closes the client connection once this answer is sent (the session cannot go on,
    /// e.g. its transaction died with a backend connection).
    pub fn close_after(&mut self) {
        self.close_after = true;
    }

    /// Whether the client allows several statements in one COM_QUERY.
    pub fn multi_statements(&self) -> bool {
        self.multi_statements
    }

    pub async fn ok(&mut self, info: &OkInfo, status: StatusFlags) -> Result<(), StreamError> {
        if let Some(b) = self.bulk.as_mut() {
            b.affected_rows = b.affected_rows.saturating_add(info.affected_rows);
            if b.last_insert_id == 0 {
                b.last_insert_id = info.last_insert_id;
            }
            b.warnings = b.warnings.saturating_add(info.warnings);
            return Ok(());
        }
        self.release_capture(status).await?;
        let status = self.more(status);
        let changes = self.take_state();
        self.stream.feed(packets::ok(info, status, false, changes.as_deref())).await
    }

    /// Whether the client asked to be told of session state changes (CLIENT_SESSION_TRACK).
    pub fn tracks_session(&self) -> bool {
        self.track
    }

    /// The session state changes (MariaDB's session-state-info bytes) the next OK packet
    /// reports, when the client tracks them.
    pub fn track_state(&mut self, changes: Vec<u8>) {
        if self.track {
            self.pending_state = Some(changes);
        }
    }

    /// What the next OK reports: `None` without tracking, else the pending changes (or none).
    fn take_state(&mut self) -> Option<Vec<u8>> {
        self.track.then(|| self.pending_state.take().unwrap_or_default())
    }

    pub async fn error(&mut self, e: &ClientError) -> Result<(), StreamError> {
        // An error instead of (or in the middle of) a captured result: the client gets only
        // the error, as from a failed execute; no cursor opens.
        self.capture = None;
        self.errored = Some(e.clone());
        self.stream.feed(packets::err(e)).await
    }

    /// Column count and definitions that start a result set.
    pub async fn columns(&mut self, columns: &[Column], status: StatusFlags) -> Result<(), StreamError> {
        if let Some(b) = self.bulk.as_mut() {
            b.result_set = true;
            return Ok(());
        }
        if let Some(c) = self.capture.as_mut().filter(|c| c.header.is_none()) {
            let mut header = Vec::with_capacity(columns.len() + 1);
            header.push(packets::column_count(columns.len()));
            header.extend(columns.iter().map(packets::column_def));
            c.header = Some(header);
            return Ok(());
        }
        // A second result set: not a cursor's; what was captured goes out as it came.
        self.release_capture(status).await?;
        self.stream.feed(packets::column_count(columns.len())).await?;
        for c in columns {
            self.stream.feed(packets::column_def(c)).await?;
        }
        if !self.deprecate_eof() {
            self.stream.feed(packets::eof(0, self.more(status))).await?;
        }
        Ok(())
    }

    /// `status`, with SERVER_MORE_RESULTS_EXISTS when another statement's answer follows.
    fn more(&self, status: StatusFlags) -> StatusFlags {
        if self.chained {
            status | StatusFlags::SERVER_MORE_RESULTS_EXISTS
        } else {
            status
        }
    }

    /// Whether another statement's answer follows this one in the same command (see
    /// `chained`).
    pub fn set_chained(&mut self, chained: bool) {
        self.chained = chained;
    }

    pub async fn text_row(&mut self, values: &[Value]) -> Result<(), StreamError> {
        if self.bulk.is_some() {
            return Ok(());
        }
        self.stream.feed(packets::text_row(values)).await
    }

    pub async fn binary_row(&mut self, columns: &[Column], values: &[Value]) -> Result<(), StreamError> {
        if self.bulk.is_some() {
            return Ok(());
        }
        if let Some(c) = self.capture.as_mut().filter(|c| c.in_result()) {
            c.push_row(packets::binary_row(columns, values));
            return Ok(());
        }
        self.stream.feed(packets::binary_row(columns, values)).await
    }

    /// Ends a result set's rows.
    pub async fn end_rows(&mut self, warnings: u16, status: StatusFlags) -> Result<(), StreamError> {
        if self.bulk.is_some() {
            return Ok(());
        }
        if let Some(c) = self.capture.as_mut().filter(|c| c.in_result()) {
            c.warnings = warnings;
            c.ended = true;
            return Ok(());
        }
        self.end_rows_now(warnings, status).await
    }

    async fn end_rows_now(&mut self, warnings: u16, status: StatusFlags) -> Result<(), StreamError> {
        let status = self.more(status);
        let packet = if self.deprecate_eof() {
            let changes = self.take_state();
            packets::ok(&OkInfo { warnings, ..OkInfo::default() }, status, true, changes.as_deref())
        } else {
            packets::eof(warnings, status)
        };
        self.stream.feed(packet).await
    }

    /// Holds back the final packet of an answer; `fallback` is its status if
    /// [`Reply::write_deferred`] learns none.
    pub fn defer_last(&mut self, packet: LastPacket, fallback: StatusFlags) {
        if self.bulk.is_some() && matches!(packet, LastPacket::EndRows(_)) {
            return;
        }
        if let (Some(c), LastPacket::EndRows(w)) = (self.capture.as_mut().filter(|c| c.in_result()), &packet) {
            c.warnings = *w;
            c.ended = true;
            return;
        }
        self.deferred = Some((packet, fallback));
    }

    /// Writes the held-back final packet (if any) with `status`, or its fallback status.
    pub async fn write_deferred(&mut self, status: Option<StatusFlags>) -> Result<(), StreamError> {
        if let Some((packet, fallback)) = self.deferred.take() {
            let status = status.unwrap_or(fallback) - StatusFlags::SERVER_MORE_RESULTS_EXISTS;
            match packet {
                LastPacket::Ok(info) => self.ok(&info, status).await?,
                LastPacket::EndRows(w) => self.end_rows(w, status).await?,
            }
        }
        Ok(())
    }

    /// The code of the error this answer carried, if any.
    pub fn error_code(&self) -> Option<u16> {
        self.errored.as_ref().map(|e| e.code)
    }

    /// Whether the client accepts LOAD DATA LOCAL INFILE requests.
    pub fn local_files(&self) -> bool {
        self.capabilities.contains(CapabilityFlags::CLIENT_LOCAL_FILES)
    }

    /// Asks the client for a local file (LOAD DATA LOCAL INFILE) and flushes.
    pub async fn request_file(&mut self, name: &str) -> Result<(), StreamError> {
        let mut packet = Vec::with_capacity(1 + name.len());
        packet.push(0xFB);
        packet.extend_from_slice(name.as_bytes());
        self.stream.send(packet).await
    }

    /// The next chunk of the file the client sends; `None` at its empty end packet.
    pub async fn file_chunk(&mut self) -> Result<Option<bytes::BytesMut>, StreamError> {
        match self.stream.read().await? {
            Some(p) if p.is_empty() => Ok(None),
            Some(p) => Ok(Some(p)),
            None => Err(StreamError::Io(std::io::ErrorKind::UnexpectedEof.into())),
        }
    }

    /// The answer to COM_FIELD_LIST: one column definition per column (with its default
    /// value field, NULL here), then EOF.
    pub async fn field_list(&mut self, columns: &[Column], status: StatusFlags) -> Result<(), StreamError> {
        for c in columns {
            let mut def = packets::column_def(c);
            def.push(0xFB);
            self.stream.feed(def).await?;
        }
        self.end_rows(0, status).await
    }

    /// The answer to COM_STATISTICS: one bare string packet.
    pub async fn statistics(&mut self, text: &str) -> Result<(), StreamError> {
        self.stream.feed(text.as_bytes().to_vec()).await
    }

    /// The answer to COM_SET_OPTION: EOF, or its OK form under CLIENT_DEPRECATE_EOF.
    pub async fn eof(&mut self, status: StatusFlags) -> Result<(), StreamError> {
        self.end_rows(0, status).await
    }

    /// Describes a prepared statement (COM_STMT_PREPARE's answer).
    pub async fn prepared(
        &mut self,
        stmt_id: u32,
        params: &[Column],
        columns: &[Column],
        warnings: u16,
        status: StatusFlags,
    ) -> Result<(), StreamError> {
        let (np, nc) = (params.len().min(u16::MAX as usize) as u16, columns.len().min(u16::MAX as usize) as u16);
        self.stream.feed(packets::stmt_prepare_ok(stmt_id, nc, np, warnings)).await?;
        for group in [params, columns] {
            if group.is_empty() {
                continue;
            }
            for c in group {
                self.stream.feed(packets::column_def(c)).await?;
            }
            if !self.deprecate_eof() {
                self.stream.feed(packets::eof(0, status)).await?;
            }
        }
        self.described = Some(Described { stmt_id, num_params: params.len(), num_columns: columns.len() });
        Ok(())
    }
}

impl Reply<'_> {
    /// The answers to come are a bulk execute's rows: sum their OKs (see `bulk_end`).
    pub(super) fn bulk_start(&mut self) {
        self.bulk = Some(BulkSum::default());
    }

    /// Stops summing; what the rows answered.
    pub(super) fn bulk_end(&mut self) -> Option<BulkSum> {
        self.bulk.take()
    }

    /// The answer to come is a cursor execute's: capture its result (see `cursor`).
    pub(super) fn capture_cursor(&mut self) {
        self.capture = Some(Capture::default());
    }

    /// Sends what a capture holds as an ordinary answer and stops capturing.
    async fn release_capture(&mut self, status: StatusFlags) -> Result<(), StreamError> {
        let Some(c) = self.capture.take() else { return Ok(()) };
        let Some(header) = c.header else { return Ok(()) };
        if c.overflow {
            // Its rows were dropped: nothing true can be sent.
            return self.error(&ClientError::not_supported("a result of more than 64 MiB in a server-side cursor; execute it without a cursor")).await;
        }
        for p in header {
            self.stream.feed(p).await?;
        }
        if !self.deprecate_eof() {
            self.stream.feed(packets::eof(0, status | StatusFlags::SERVER_MORE_RESULTS_EXISTS)).await?;
        }
        for r in c.rows {
            self.stream.feed(r).await?;
        }
        if c.ended {
            self.end_rows_now(c.warnings, status | StatusFlags::SERVER_MORE_RESULTS_EXISTS).await?;
        }
        Ok(())
    }

    /// After a cursor execute was answered: opens the cursor over the captured result
    /// (sending its column definitions and a terminator with SERVER_STATUS_CURSOR_EXISTS),
    /// or returns `None` when the answer was no result set.
    pub(super) async fn open_cursor(&mut self, status: StatusFlags) -> Result<Option<Cursor>, StreamError> {
        let Some(c) = self.capture.take() else { return Ok(None) };
        let Some(header) = c.header else { return Ok(None) };
        if c.overflow {
            self.error(&ClientError::not_supported("a result of more than 64 MiB in a server-side cursor; execute it without a cursor")).await?;
            return Ok(None);
        }
        if !c.ended {
            // The result never ended (the handler stopped early): as a lost result.
            self.error(&ClientError::malformed("the result of the cursor ended early")).await?;
            return Ok(None);
        }
        for p in header {
            self.stream.feed(p).await?;
        }
        let status = (status | StatusFlags::SERVER_STATUS_CURSOR_EXISTS) - StatusFlags::SERVER_MORE_RESULTS_EXISTS;
        if self.deprecate_eof() {
            self.end_rows_now(0, status).await?;
        } else {
            self.stream.feed(packets::eof(0, status)).await?;
        }
        Ok(Some(Cursor { rows: c.rows, warnings: c.warnings }))
    }

    /// Answers COM_STMT_FETCH: up to `n` rows of `cursor`; true when it is exhausted (the
    /// terminator said SERVER_STATUS_LAST_ROW_SENT) and must be closed.
    pub(super) async fn fetch(&mut self, cursor: &mut Cursor, n: usize, status: StatusFlags) -> Result<bool, StreamError> {
        for _ in 0..n {
            let Some(row) = cursor.rows.pop_front() else { break };
            self.stream.feed(row).await?;
        }
        let status = status - StatusFlags::SERVER_MORE_RESULTS_EXISTS;
        if cursor.rows.is_empty() {
            self.end_rows_now(cursor.warnings, status | StatusFlags::SERVER_STATUS_LAST_ROW_SENT).await?;
            return Ok(true);
        }
        self.end_rows_now(0, status | StatusFlags::SERVER_STATUS_CURSOR_EXISTS).await?;
        Ok(false)
    }

    /// Mid-command auth switch (COM_CHANGE_USER with a non-native plugin).
    pub(super) async fn auth_switch(&mut self, scramble: &[u8; 20]) -> Result<Vec<u8>, super::handshake::HandshakeError> {
        self.stream.flush().await?;
        super::handshake::auth_switch(self.stream, scramble).await
    }
}
