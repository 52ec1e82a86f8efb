//! `slotgate users-sync`: client accounts imported from a shard's `mysql.user`, merged into
//! the users file.
//!
//! Contract: only accounts the users file can check are imported: `mysql_native_password`
//! with a `*`+40-hex hash (or an empty password). Others are skipped with the reason:
//! another authentication plugin (ed25519, unix_socket, PAM...), a name the file cannot hold,
//! MariaDB's own `mariadb.sys`, and a name whose accounts on several hosts have different
//! passwords (the users file has no hosts). The merge keeps every entry of the existing file
//! (and its `require_tls` and `connection_admin`), takes the shard's hash for names the shard has, and adds the new
//! ones; names only the file has stay (they are reported). Nothing here logs a hash.

use std::collections::BTreeMap;

/// An account row of `mysql.user`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardAccount {
    pub user: String,
    pub host: String,
    pub plugin: String,
    pub hash: String,
}

/// One users-file entry.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FileUser {
    pub name: String,
    pub password_hash: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub require_tls: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub connection_admin: bool,
}

#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct FileUsers {
    #[serde(default)]
    pub users: Vec<FileUser>,
}

/// What a sync did, for the operator.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SyncReport {
    pub added: Vec<String>,
    pub updated: Vec<String>,
    pub unchanged: Vec<String>,
    /// (account, why it was not imported).
    pub skipped: Vec<(String, String)>,
    /// Names in the users file that the shard does not have.
    pub only_in_file: Vec<String>,
}

fn native_hash_ok(hash: &str) -> bool {
    hash.is_empty() || (hash.len() == 41 && hash.starts_with('*') && hash[1..].chars().all(|c| c.is_ascii_hexdigit()))
}

/// The merged users and the report.
pub fn merge(existing: FileUsers, accounts: &[ShardAccount]) -> (FileUsers, SyncReport) {
    let mut report = SyncReport::default();
    // Importable hash per user name, or why not.
    let mut by_name: BTreeMap<String, Result<String, String>> = BTreeMap::new();
    for a in accounts {
        let who = format!("{}@{}", a.user, a.host);
        let why = if a.user == "mariadb.sys" {
            Some("MariaDB's own account".to_string())
        } else if a.user.is_empty() || a.user.len() > 80 {
            Some("an anonymous or over-long user name".to_string())
        } else if !(a.plugin.is_empty() || a.plugin == "mysql_native_password") {
            Some(format!("authenticates with {}, which slotgate's users file cannot check (use mysql_native_password)", a.plugin))
        } else if !native_hash_ok(&a.hash) {
            Some("its password hash is not a mysql_native_password one".to_string())
        } else {
            None
        };
        if let Some(why) = why {
            report.skipped.push((who, why));
            continue;
        }
        let hash = a.hash.to_ascii_uppercase();
        match by_name.get(&a.user) {
            None => {
                by_name.insert(a.user.clone(), Ok(hash));
            }
            Some(Ok(h)) if *h == hash => {}
            Some(Ok(_)) => {
                by_name.insert(a.user.clone(), Err("has accounts on several hosts with different passwords; the users file has no hosts: add it by hand".into()));
            }
            Some(Err(_)) => {}
        }
    }
    let mut out = FileUsers::default();
    let mut seen = std::collections::BTreeSet::new();
    for mut u in existing.users {
        seen.insert(u.name.clone());
        match by_name.get(&u.name) {
            Some(Ok(h)) if *h == u.password_hash.to_ascii_uppercase() => report.unchanged.push(u.name.clone()),
            Some(Ok(h)) => {
                u.password_hash = h.clone();
                report.updated.push(u.name.clone());
            }
            Some(Err(_)) => {}
            None => report.only_in_file.push(u.name.clone()),
        }
        out.users.push(u);
    }
    for (name, hash) in by_name {
        match hash {
            Err(why) => report.skipped.push((name, why)),
            Ok(h) if !seen.contains(&name) => {
                report.added.push(name.clone());
                out.users.push(FileUser { name, password_hash: h, require_tls: false, connection_admin: false });
            }
            Ok(_) => {}
        }
    }
    (out, report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acct(user: &str, host: &str, plugin: &str, hash: &str) -> ShardAccount {
        ShardAccount { user: user.into(), host: host.into(), plugin: plugin.into(), hash: hash.into() }
    }

    const H1: &str = "*2470C0C06DEE42FD1618BB99005ADCA2EC9D1E19";
    const H2: &str = "*6BB4837EB74329105EE4568DDA7DC67ED2CA2AD9";

    #[test]
    fn imports_native_accounts_keeps_the_file_and_says_what_it_skipped() {
        let existing = FileUsers {
            users: vec![
                FileUser { name: "app".into(), password_hash: H2.into(), require_tls: true, connection_admin: true },
                FileUser { name: "proxy_only".into(), password_hash: String::new(), require_tls: false, connection_admin: false },
            ],
        };
        let accounts = vec![
            acct("app", "%", "mysql_native_password", &H1.to_lowercase()),
            acct("app", "localhost", "mysql_native_password", H1),
            acct("new", "%", "", H2),
            acct("two", "%", "mysql_native_password", H1),
            acct("two", "10.0.0.1", "mysql_native_password", H2),
            acct("ed", "%", "ed25519", "abc"),
            acct("mariadb.sys", "localhost", "mysql_native_password", ""),
            acct("root", "localhost", "unix_socket", ""),
        ];
        let (out, r) = merge(existing, &accounts);
        assert_eq!(
            out.users,
            vec![
                FileUser { name: "app".into(), password_hash: H1.into(), require_tls: true, connection_admin: true },
                FileUser { name: "proxy_only".into(), password_hash: String::new(), require_tls: false, connection_admin: false },
                FileUser { name: "new".into(), password_hash: H2.into(), require_tls: false, connection_admin: false },
            ]
        );
        assert_eq!((r.added, r.updated, r.only_in_file), (vec!["new".to_string()], vec!["app".to_string()], vec!["proxy_only".to_string()]));
        let skipped: Vec<&str> = r.skipped.iter().map(|(w, _)| w.as_str()).collect();
        assert_eq!(skipped, vec!["ed@%", "mariadb.sys@localhost", "root@localhost", "two"]);
        assert!(r.skipped.iter().any(|(_, why)| why.contains("ed25519")));
        // The written file reads back as a users file.
        let text = toml::to_string(&out).unwrap();
        assert_eq!(crate::config::users::Users::parse(&text).unwrap().len(), 3);
    }
}
