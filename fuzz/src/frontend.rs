//! Fuzz check of the frontend decoders: the command decoder (every command, COM_STMT_EXECUTE
//! with parameters, COM_CHANGE_USER), the connection-phase packets (handshake response, SSL
//! request, the password check) and the packet framing (plain and compressed).
//!
//! Properties: no panic on any input; decoded packets respect `max_allowed_packet`; framing
//! round-trips (what the codec writes, a fresh codec reads back packet for packet).

use crate::bytes::Bytes;
use bytes::BytesMut;
use mysql_common::constants::CapabilityFlags;
use mysql_common::io::ParseBuf;
use mysql_common::packets::{HandshakeResponse, SslRequest};
use slotgate_proxy::config::Users;
use slotgate_proxy::frontend::change_user;
use slotgate_proxy::frontend::command::Command;
use slotgate_proxy::frontend::execute::{parse_bulk, parse_execute, ParamType};
use slotgate_proxy::frontend::handshake::check_password;
use slotgate_proxy::frontend::stream::MyCodec;
use std::collections::HashMap;
use std::sync::OnceLock;
use tokio_util::codec::{Decoder, Encoder};

const MAX_PACKET: usize = 1 << 16;

pub fn check(data: &[u8]) {
    let mut b = Bytes::new(data);
    match b.u8() % 5 {
        0 => command(&mut b),
        1 => execute(&mut b),
        2 => login(&mut b),
        3 => framing(&mut b),
        _ => round_trip(&mut b),
    }
}

/// One command packet, then (for the commands that carry one) its body's own decoder.
fn command(b: &mut Bytes<'_>) {
    let caps = CapabilityFlags::from_bits_truncate(b.u32());
    let packet = BytesMut::from(b.rest());
    match Command::parse(packet) {
        Ok(Command::ChangeUser(body)) => {
            let _ = change_user::parse(&body, caps);
        }
        Ok(Command::Execute(body)) => {
            let mut bound = None;
            let _ = parse_execute(&body, usize::from(caps.bits() as u8), &mut bound, &mut HashMap::new());
        }
        Ok(Command::BulkExecute(body)) => {
            let _ = parse_bulk(&body, usize::from(caps.bits() as u8), &mut None);
        }
        _ => {}
    }
}

/// COM_STMT_EXECUTE bodies against a statement of n parameters, with types bound before or
/// not, and long data sent before.
fn execute(b: &mut Bytes<'_>) {
    let num_params = b.below(40);
    let mut bound = if b.bool() {
        let types = (0..num_params).map(|_| {
            let t = mysql_common::constants::ColumnType::try_from(b.u8()).unwrap_or(mysql_common::constants::ColumnType::MYSQL_TYPE_LONG);
            ParamType { column_type: t, unsigned: b.bool() }
        });
        Some(types.collect::<Vec<_>>())
    } else {
        None
    };
    let mut long_data = HashMap::new();
    for _ in 0..b.below(3) {
        long_data.insert(b.u16() % 40, b.take(64).to_vec());
    }
    let body = b.rest();
    if let Ok(req) = parse_execute(body, num_params, &mut bound, &mut long_data) {
        assert_eq!(req.params.len(), num_params, "an execute decodes one value per parameter");
    }
}

fn users() -> &'static Users {
    static USERS: OnceLock<Users> = OnceLock::new();
    USERS.get_or_init(|| {
        let hash = slotgate_proxy::config::users::native_password_hash("secret");
        Users::parse(&format!("[[users]]\nname = \"app\"\npassword_hash = \"{hash}\"\n")).unwrap_or_default()
    })
}

/// The connection phase's packets, and the password check on whatever they carry: a login is
/// accepted only with the right scramble answer, which random bytes never are.
fn login(b: &mut Bytes<'_>) {
    let scramble: [u8; 20] = std::array::from_fn(|_| b.u8());
    let packet = b.rest();
    let _ = ParseBuf(packet).parse::<SslRequest>(());
    if let Ok(response) = ParseBuf(packet).parse::<HandshakeResponse>(()) {
        let user = String::from_utf8_lossy(response.user()).into_owned();
        let token = response.scramble_buf().to_vec();
        let ok = check_password(users(), &user, "fuzz", &scramble, &token, false).is_ok();
        let right = mysql_common::scramble::scramble_native(&scramble, b"secret").map(|a| a.to_vec());
        assert!(!ok || (user == "app" && right.as_deref() == Some(&token[..])), "a login passed the password check without the password");
    }
}

/// Arbitrary bytes arriving in arbitrary chunks, plain or compressed.
fn framing(b: &mut Bytes<'_>) {
    let mut codec = MyCodec::new(MAX_PACKET, b.bool());
    let mut buf = BytesMut::new();
    while !b.is_empty() {
        let chunk = b.take(300);
        let chunk = if chunk.is_empty() { b.rest() } else { chunk };
        buf.extend_from_slice(chunk);
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(p)) => assert!(p.len() <= MAX_PACKET, "a packet over max_allowed_packet was accepted"),
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
}

/// Packets written by the codec are read back unchanged by a fresh one.
fn round_trip(b: &mut Bytes<'_>) {
    let compressed = b.bool();
    let mut packets = Vec::new();
    while !b.is_empty() && packets.len() < 8 {
        let len = b.below(40_000);
        let seed = b.u8();
        packets.push((0..len).map(|i| seed.wrapping_add(i as u8)).collect::<Vec<u8>>());
    }
    let mut writer = MyCodec::new(MAX_PACKET, compressed);
    let mut wire = BytesMut::new();
    for p in &packets {
        if writer.encode(p.clone(), &mut wire).is_err() {
            return;
        }
    }
    let mut reader = MyCodec::new(MAX_PACKET, compressed);
    for p in &packets {
        match reader.decode(&mut wire) {
            Ok(Some(got)) => assert_eq!(&got[..], &p[..], "a packet changed on its way through the framing"),
            other => panic!("a written packet of {} bytes did not read back: {other:?}", p.len()),
        }
    }
}
