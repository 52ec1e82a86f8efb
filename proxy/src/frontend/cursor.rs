//! Server-side cursors (COM_STMT_EXECUTE with a cursor flag, then COM_STMT_FETCH), kept by
//! the frontend as MariaDB keeps a materialised cursor: the whole result is read at execute
//! time and the client fetches it in parts.
//!
//! Contract: while a cursor execute is answered, [`Capture`] takes the first result set's
//! column definitions and binary rows instead of sending them (an OK or ERR instead of a
//! result passes through, and no cursor opens). The client then gets the column count, the
//! definitions and the terminator with SERVER_STATUS_CURSOR_EXISTS; each COM_STMT_FETCH
//! sends up to the asked number of rows, then the terminator with CURSOR_EXISTS while rows
//! remain, or with SERVER_STATUS_LAST_ROW_SENT (and the result's warning count) once all
//! are sent, which closes the cursor. A re-execute, COM_STMT_RESET or COM_STMT_CLOSE closes
//! it too. A result larger than [`MAX_CURSOR_BYTES`] is refused with 1235 (nothing of it
//! was sent).

use std::collections::VecDeque;

/// The most row bytes one cursor holds.
pub const MAX_CURSOR_BYTES: usize = 64 * 1024 * 1024;

/// A cursor execute's answer being captured.
#[derive(Default)]
pub struct Capture {
    /// Column count and column definition packets of the result, once it started.
    pub header: Option<Vec<Vec<u8>>>,
    pub rows: VecDeque<Vec<u8>>,
    pub bytes: usize,
    pub overflow: bool,
    pub warnings: u16,
    /// The result's rows ended.
    pub ended: bool,
}

impl Capture {
    /// Whether a result set is being captured (rows and terminators go here).
    pub fn in_result(&self) -> bool {
        self.header.is_some() && !self.ended
    }

    pub fn push_row(&mut self, row: Vec<u8>) {
        if self.overflow {
            return;
        }
        self.bytes += row.len();
        if self.bytes > MAX_CURSOR_BYTES {
            self.overflow = true;
            self.rows.clear();
            return;
        }
        self.rows.push_back(row);
    }
}

/// An open cursor: the rows not fetched yet.
pub struct Cursor {
    pub rows: VecDeque<Vec<u8>>,
    pub warnings: u16,
}
