//! The users file: client accounts and their `mysql_native_password` hashes.
//!
//! Contract: only hashes are stored, never passwords. A hash is MariaDB's `PASSWORD('pw')`
//! output, `*` followed by 40 hex digits of SHA1(SHA1(pw)); an empty string means an empty
//! password. Nothing here is ever logged.

use super::ConfigError;
use serde::Deserialize;
use sha1::{Digest, Sha1};
use std::collections::HashMap;
use std::path::Path;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UsersFile {
    #[serde(default)]
    users: Vec<UserFileEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UserFileEntry {
    name: String,
    password_hash: String,
    #[serde(default)]
    require_tls: bool,
    /// Sees every connection of the node in SHOW PROCESSLIST and may KILL them (MariaDB's
    /// PROCESS and CONNECTION ADMIN); without it, only the account's own connections.
    #[serde(default)]
    connection_admin: bool,
}

/// One client account.
#[derive(Clone)]
pub struct UserEntry {
    /// SHA1(SHA1(password)), or `None` for an empty password.
    pub stage2: Option<[u8; 20]>,
    pub require_tls: bool,
    pub connection_admin: bool,
}

impl std::fmt::Debug for UserEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserEntry")
            .field("require_tls", &self.require_tls)
            .field("connection_admin", &self.connection_admin)
            .finish_non_exhaustive()
    }
}

/// All client accounts, by user name.
#[derive(Debug, Clone, Default)]
pub struct Users {
    by_name: HashMap<String, UserEntry>,
}

impl Users {
    pub fn load(path: &Path) -> Result<Users, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
        Users::parse(&text).map_err(|e| match e {
            ConfigError::Parse { message, .. } => ConfigError::Parse { path: path.to_path_buf(), message },
            ConfigError::Invalid { key, message } => ConfigError::Invalid {
                key: format!("{}: {key}", path.display()),
                message,
            },
            other => other,
        })
    }

    pub fn parse(text: &str) -> Result<Users, ConfigError> {
        let file: UsersFile = toml::from_str(text)
            .map_err(|e| ConfigError::Parse { path: "users file".into(), message: e.to_string() })?;
        let mut by_name = HashMap::new();
        for (i, u) in file.users.into_iter().enumerate() {
            if u.name.is_empty() || u.name.len() > 80 {
                return Err(ConfigError::Invalid {
                    key: format!("users[{i}].name"),
                    message: "must be 1 to 80 characters".into(),
                });
            }
            let stage2 = parse_native_hash(&u.password_hash).map_err(|message| ConfigError::Invalid {
                key: format!("users[{i}].password_hash"),
                message,
            })?;
            if by_name.insert(u.name.clone(), UserEntry { stage2, require_tls: u.require_tls, connection_admin: u.connection_admin }).is_some() {
                return Err(ConfigError::Invalid {
                    key: format!("users[{i}].name"),
                    message: format!("duplicate user {:?}", u.name),
                });
            }
        }
        Ok(Users { by_name })
    }

    pub fn get(&self, name: &str) -> Option<&UserEntry> {
        self.by_name.get(name)
    }

    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}

fn parse_native_hash(text: &str) -> Result<Option<[u8; 20]>, String> {
    if text.is_empty() {
        return Ok(None);
    }
    let hex = text
        .strip_prefix('*')
        .filter(|h| h.len() == 40)
        .ok_or("expected '*' and 40 hex digits, as MariaDB's PASSWORD('...') prints")?;
    let mut out = [0u8; 20];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)
            .map_err(|_| "password_hash has a character that is not a hex digit".to_string())?;
    }
    Ok(Some(out))
}

/// The users-file form of a password's hash: `*` and uppercase hex of SHA1(SHA1(pw)).
pub fn native_password_hash(password: &str) -> String {
    if password.is_empty() {
        return String::new();
    }
    let stage2 = Sha1::digest(Sha1::digest(password.as_bytes()));
    let mut out = String::with_capacity(41);
    out.push('*');
    for b in stage2 {
        out.push_str(&format!("{b:02X}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_matches_mariadb_password_function() {
        // SELECT PASSWORD('secret') on MariaDB.
        assert_eq!(native_password_hash("secret"), "*14E65567ABDB5135D0CFD9A70B3032C179A49EE7");
    }

    #[test]
    fn parse_round_trip_and_errors() {
        let users = Users::parse(&format!(
            "[[users]]\nname = \"app\"\npassword_hash = \"{}\"\n[[users]]\nname = \"anon\"\npassword_hash = \"\"\nrequire_tls = true\n",
            native_password_hash("pw")
        ))
        .unwrap();
        assert!(users.get("app").unwrap().stage2.is_some());
        assert!(users.get("anon").unwrap().stage2.is_none());
        assert!(users.get("anon").unwrap().require_tls);
        let err = Users::parse("[[users]]\nname = \"a\"\npassword_hash = \"secret\"\n").unwrap_err();
        assert!(err.to_string().contains("users[0].password_hash"), "{err}");
    }
}
