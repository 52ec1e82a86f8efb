//! Session state tracking for clients that negotiate CLIENT_SESSION_TRACK: after a statement
//! that changed the session (a system variable, the schema, user variables), its OK packet
//! reports the change as MariaDB reports it. The backends never see the capability (the
//! session runs on pooled connections); slotgate reports from the session's own view.
//!
//! Contract: what is tracked follows the session's `session_track_system_variables`,
//! `session_track_schema` and `session_track_state_change`, read from the backend that ran
//! the statement (so a SET of them counts at once, and the server's defaults hold); values
//! are read back as `information_schema.SESSION_VARIABLES` shows them, as MariaDB reports
//! them. `session_track_transaction_info` is not reported.

use super::classify::{set_targets, Effect};

/// The tracker settings the session last read back (`None` until it needed them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tracking {
    config: Option<Config>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Config {
    /// `session_track_system_variables = '*'`.
    all: bool,
    vars: Vec<String>,
    schema: bool,
    state_change: bool,
}

/// The settings, as `information_schema.SESSION_VARIABLES` names them.
const SETTINGS: [&str; 3] = ["session_track_system_variables", "session_track_schema", "session_track_state_change"];

/// What a successful statement changed in the session.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// System variables it assigned (lower-case names, in statement order).
    pub vars: Vec<String>,
    pub schema: Option<String>,
    /// Anything else a "state changed" tracker counts (user variables, temporary tables).
    pub other: bool,
    /// The statement wrote to the binary log (DDL, or rows changed): `last_gtid` moved.
    pub wrote: bool,
}

impl Changes {
    /// The changes of `effects` (a statement's, as the classifier found them).
    pub fn of(effects: &[Effect]) -> Changes {
        let mut c = Changes::default();
        for e in effects {
            match e {
                Effect::Use(db) => c.schema = Some(db.clone()),
                Effect::Set(text) => {
                    for v in set_targets(text) {
                        if v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') && !c.vars.contains(&v) {
                            c.vars.push(v);
                        }
                    }
                }
                Effect::Vars(names) if !names.is_empty() => c.other = true,
                Effect::Sticky("temporary table") => c.other = true,
                _ => {}
            }
        }
        c
    }

    pub fn is_empty(&self) -> bool {
        self.vars.is_empty() && self.schema.is_none() && !self.other && !self.wrote
    }

    /// A change of session state proper (what the "state changed" tracker reports).
    fn of_state(&self) -> bool {
        !self.vars.is_empty() || self.schema.is_some() || self.other
    }
}

impl Tracking {
    /// The variables whose values must be read back to report `changes`: the settings
    /// themselves when unknown or changed, and the changed variables that may be tracked.
    pub fn to_read(&self, changes: &Changes) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        let settings_changed = changes.vars.iter().any(|v| SETTINGS.contains(&v.as_str()));
        if self.config.is_none() || settings_changed {
            names.extend(SETTINGS.iter().map(|s| s.to_string()));
        }
        for v in &changes.vars {
            let maybe = match &self.config {
                Some(c) if !settings_changed => c.all || c.vars.contains(v),
                _ => true,
            };
            if maybe && !names.contains(v) {
                names.push(v.clone());
            }
        }
        // A write moves `last_gtid`, which only a tracker naming it (or `*`) reports.
        if changes.wrote && self.tracks_last_gtid() && !names.iter().any(|n| n == "last_gtid") {
            names.push("last_gtid".into());
        }
        names
    }

    fn tracks_last_gtid(&self) -> bool {
        self.config.as_ref().is_some_and(|c| c.all || c.vars.iter().any(|v| v == "last_gtid"))
    }

    /// Takes in what was read back (lower-case name, value) and returns MariaDB's session
    /// state information for `changes` (empty when nothing tracked changed).
    pub fn report(&mut self, changes: &Changes, values: &[(String, String)]) -> Vec<u8> {
        let value = |name: &str| values.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
        if let (Some(vars), Some(schema), Some(state)) = (value(SETTINGS[0]), value(SETTINGS[1]), value(SETTINGS[2])) {
            let list: Vec<String> = vars.split(',').map(|v| v.trim().to_ascii_lowercase()).filter(|v| !v.is_empty()).collect();
            self.config = Some(Config { all: list.iter().any(|v| v == "*"), vars: list, schema: schema == "ON", state_change: state == "ON" });
        }
        let Some(config) = &self.config else { return Vec::new() };
        let mut out = Vec::new();
        let gtid = (changes.wrote && !changes.vars.iter().any(|v| v == "last_gtid")).then(|| "last_gtid".to_string());
        for v in changes.vars.iter().chain(gtid.as_ref()) {
            if !(config.all || config.vars.contains(v)) {
                continue;
            }
            if let Some(val) = value(v) {
                let mut data = Vec::with_capacity(v.len() + val.len() + 2);
                lenenc_str(&mut data, v.as_bytes());
                lenenc_str(&mut data, val.as_bytes());
                entry(&mut out, 0, &data);
            }
        }
        if let (Some(db), true) = (&changes.schema, config.schema) {
            let mut data = Vec::with_capacity(db.len() + 1);
            lenenc_str(&mut data, db.as_bytes());
            entry(&mut out, 1, &data);
        }
        if config.state_change && changes.of_state() {
            // Its data is the bare "1", as MariaDB writes it.
            entry(&mut out, 2, b"1");
        }
        out
    }
}

/// One session-state-info entry: its type, then its data as a length-encoded string.
fn entry(out: &mut Vec<u8>, kind: u8, data: &[u8]) {
    out.push(kind);
    lenenc_str(out, data);
}

fn lenenc_str(out: &mut Vec<u8>, s: &[u8]) {
    use mysql_common::io::WriteMysqlExt;
    out.write_lenenc_str(s).ok();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(vars: &str, schema: &str, state: &str) -> Vec<(String, String)> {
        vec![(SETTINGS[0].into(), vars.into()), (SETTINGS[1].into(), schema.into()), (SETTINGS[2].into(), state.into())]
    }

    #[test]
    fn reports_tracked_variables_schema_and_state() {
        let mut t = Tracking::default();
        let c = Changes::of(&[Effect::Set("SET time_zone = '+01:00', sql_mode = ''".into())]);
        assert_eq!(c.vars, ["time_zone", "sql_mode"]);
        assert_eq!(t.to_read(&c), [SETTINGS[0], SETTINGS[1], SETTINGS[2], "time_zone", "sql_mode"]);
        let mut values = settings("autocommit,time_zone", "ON", "OFF");
        values.push(("time_zone".into(), "+01:00".into()));
        values.push(("sql_mode".into(), "".into()));
        let r = t.report(&c, &values);
        assert_eq!(r, [&[0u8, 17, 9][..], b"time_zone", &[6], b"+01:00"].concat());
        // Known settings: only what may be tracked is read back.
        assert_eq!(t.to_read(&c), ["time_zone"]);
        let u = Changes::of(&[Effect::Use("db".into())]);
        assert_eq!(t.report(&u, &[]), [&[1u8, 3, 2][..], b"db"].concat());
        assert!(t.report(&Changes::of(&[Effect::Vars(vec!["x".into()])]), &[]).is_empty());
        // With `*`: a write reports its GTID.
        let all = t.report(&Changes::of(&[Effect::Set("SET session_track_system_variables='*'".into())]), &settings("*", "ON", "ON"));
        assert_eq!(all.last(), Some(&b'1'));
        let w = Changes { wrote: true, ..Changes::default() };
        assert_eq!(t.to_read(&w), ["last_gtid"]);
        assert_eq!(t.report(&w, &[("last_gtid".into(), "0-1-2".into())]), [&[0u8, 16, 9][..], b"last_gtid", &[5], b"0-1-2"].concat());
    }
}
