//! COM_CHANGE_USER fields, which mysql_common reads only for its client side: decoded here.
//!
//! Contract: never panics; malformed input is `Err(ClientError)`.

use crate::error::ClientError;
use mysql_common::constants::CapabilityFlags;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeUser {
    pub user: String,
    pub auth_response: Vec<u8>,
    pub db: Option<String>,
    pub collation: Option<u16>,
    pub plugin: Option<String>,
}

fn cstr<'a>(buf: &mut &'a [u8]) -> Option<&'a [u8]> {
    let end = buf.iter().position(|b| *b == 0)?;
    let (s, rest) = buf.split_at(end);
    *buf = &rest[1..];
    Some(s)
}

/// Parses the body of COM_CHANGE_USER (after the command byte).
pub fn parse(body: &[u8], caps: CapabilityFlags) -> Result<ChangeUser, ClientError> {
    let bad = |what: &str| ClientError::malformed(&format!("COM_CHANGE_USER: {what}"));
    let mut buf = body;
    let user = cstr(&mut buf).ok_or_else(|| bad("user name not terminated"))?;
    let auth_response = if caps.contains(CapabilityFlags::CLIENT_SECURE_CONNECTION) {
        let (&len, rest) = buf.split_first().ok_or_else(|| bad("auth response missing"))?;
        let data = rest.get(..len as usize).ok_or_else(|| bad("auth response truncated"))?;
        buf = &rest[len as usize..];
        data.to_vec()
    } else {
        cstr(&mut buf).ok_or_else(|| bad("auth response not terminated"))?.to_vec()
    };
    // The database name may end the packet without its NUL.
    let db = match cstr(&mut buf) {
        Some(d) => d,
        None => std::mem::take(&mut buf),
    };
    let mut collation = None;
    let mut plugin = None;
    if buf.len() >= 2 {
        collation = Some(u16::from_le_bytes([buf[0], buf[1]]));
        buf = &buf[2..];
        if caps.contains(CapabilityFlags::CLIENT_PLUGIN_AUTH) {
            plugin = cstr(&mut buf).map(|p| String::from_utf8_lossy(p).into_owned());
        }
    }
    Ok(ChangeUser {
        user: String::from_utf8_lossy(user).into_owned(),
        auth_response,
        db: (!db.is_empty()).then(|| String::from_utf8_lossy(db).into_owned()),
        collation,
        plugin,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_full_packet() {
        let caps = CapabilityFlags::CLIENT_SECURE_CONNECTION | CapabilityFlags::CLIENT_PLUGIN_AUTH;
        let mut p = b"bob\0".to_vec();
        p.push(3);
        p.extend_from_slice(b"abc");
        p.extend_from_slice(b"shop\0");
        p.extend_from_slice(&45u16.to_le_bytes());
        p.extend_from_slice(b"mysql_native_password\0");
        let c = parse(&p, caps).unwrap();
        assert_eq!(c.user, "bob");
        assert_eq!(c.auth_response, b"abc");
        assert_eq!(c.db.as_deref(), Some("shop"));
        assert_eq!(c.collation, Some(45));
        assert_eq!(c.plugin.as_deref(), Some("mysql_native_password"));
        for cut in 0..p.len() {
            let _ = parse(&p[..cut], caps);
        }
        assert!(parse(b"bob", caps).is_err());
    }
}
