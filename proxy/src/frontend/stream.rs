//! A client's packet stream: MySQL framing (sequence ids, 16 MB+ packets, compression,
//! `max_allowed_packet`) over TCP or TLS, on mysql_common's `PacketCodec`.
//!
//! Contract: `read` yields whole packets; `feed` buffers a packet (flushing on its own when
//! the buffer passes the backpressure boundary, so results stream in bounded memory);
//! `flush` sends what is buffered. Knows nothing of what the packets mean.

use bytes::BytesMut;
use futures_util::{SinkExt, StreamExt};
use mysql_common::proto::codec::{error::PacketCodecError, Compression, PacketCodec};
use std::io;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::{Decoder, Encoder, Framed, FramedParts};

/// Anything a client connection can run over.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Why a packet could not be read.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("i/o: {0}")]
    Io(#[from] io::Error),
    #[error("packet larger than max_allowed_packet")]
    TooLarge,
    #[error("packets out of order")]
    OutOfSync,
    #[error("bad compressed packet header")]
    BadCompressed,
}

impl From<PacketCodecError> for StreamError {
    fn from(e: PacketCodecError) -> Self {
        match e {
            PacketCodecError::Io(e) => StreamError::Io(e),
            PacketCodecError::PacketTooLarge => StreamError::TooLarge,
            PacketCodecError::PacketsOutOfSync => StreamError::OutOfSync,
            PacketCodecError::BadCompressedPacketHeader => StreamError::BadCompressed,
        }
    }
}

/// tokio-util adapter around `PacketCodec`; keeps the partly read packet between calls.
pub struct MyCodec {
    inner: PacketCodec,
    partial: BytesMut,
    compressed: bool,
}

impl MyCodec {
    /// A codec refusing packets over `max_allowed_packet`, compressed framing when asked.
    pub fn new(max_allowed_packet: usize, compressed: bool) -> MyCodec {
        let mut inner = PacketCodec::default();
        inner.max_allowed_packet = max_allowed_packet;
        if compressed {
            inner.compress(Compression::default());
        }
        MyCodec { inner, partial: BytesMut::new(), compressed }
    }
}

impl Decoder for MyCodec {
    type Item = BytesMut;
    type Error = StreamError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<BytesMut>, StreamError> {
        if self.inner.decode(src, &mut self.partial)? {
            Ok(Some(self.partial.split()))
        } else {
            Ok(None)
        }
    }
}

impl Encoder<Vec<u8>> for MyCodec {
    type Error = StreamError;

    fn encode(&mut self, item: Vec<u8>, dst: &mut BytesMut) -> Result<(), StreamError> {
        // mysql_common 0.37's compressor writes deflate output into the buffer's spare
        // capacity and stops when that runs out, so a payload that does not compress (output
        // longer than input) could be cut short: "incomplete deflate stream" on the client.
        // Room for the worst-case deflate expansion up front avoids it (found by fuzzing).
        if self.compressed {
            dst.reserve(item.len() + item.len() / 32 + 512);
        }
        self.inner.encode(&mut &item[..], dst)?;
        Ok(())
    }
}

/// The framed client connection.
pub struct PacketStream {
    framed: Framed<Box<dyn Io>, MyCodec>,
}

impl PacketStream {
    pub fn new(io: Box<dyn Io>, max_allowed_packet: usize) -> PacketStream {
        PacketStream { framed: Framed::new(io, MyCodec::new(max_allowed_packet, false)) }
    }

    /// Next whole packet; `Ok(None)` when the client closed the connection.
    pub async fn read(&mut self) -> Result<Option<BytesMut>, StreamError> {
        self.framed.next().await.transpose()
    }

    /// Buffers a packet for sending.
    pub async fn feed(&mut self, packet: Vec<u8>) -> Result<(), StreamError> {
        self.framed.feed(packet).await
    }

    pub async fn flush(&mut self) -> Result<(), StreamError> {
        SinkExt::<Vec<u8>>::flush(&mut self.framed).await
    }

    /// Buffers and flushes one packet.
    pub async fn send(&mut self, packet: Vec<u8>) -> Result<(), StreamError> {
        self.framed.send(packet).await
    }

    /// Starts a new command: sequence ids from 0.
    pub fn reset_seq(&mut self) {
        self.framed.codec_mut().inner.reset_seq_id();
    }

    /// Switches to the compressed protocol (after the authentication OK).
    pub fn enable_compression(&mut self) {
        let codec = self.framed.codec_mut();
        codec.inner.compress(Compression::default());
        codec.compressed = true;
    }

    /// Replaces the transport (TLS upgrade), keeping sequence ids and buffered bytes.
    pub async fn upgrade<F, Fut>(self, wrap: F) -> Result<PacketStream, io::Error>
    where
        F: FnOnce(Box<dyn Io>) -> Fut,
        Fut: std::future::Future<Output = Result<Box<dyn Io>, io::Error>>,
    {
        let parts = self.framed.into_parts();
        if !parts.read_buf.is_empty() {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "client sent data before the TLS handshake"));
        }
        let io = wrap(parts.io).await?;
        let mut new_parts = FramedParts::new(io, parts.codec);
        new_parts.write_buf = parts.write_buf;
        Ok(PacketStream { framed: Framed::from_parts(new_parts) })
    }
}
