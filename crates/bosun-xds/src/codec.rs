//! The gRPC codec of the discovery services.
//!
//! Requests are decoded with prost. Responses are *not* encoded from a `DiscoveryResponse`
//! struct: a response is assembled from a small per-stream head (version, type URL, nonce) and
//! body chunks that were encoded once per resource version and are shared, by reference count,
//! by every stream that sends them. Writing a response is then a copy of those bytes into the
//! transport buffer, which is the floor for a push.

use std::marker::PhantomData;

use bytes::{BufMut, Bytes, BytesMut};
use prost::Message;
use tonic::Status;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

/// A protobuf message whose bytes are already encoded: a per-stream head followed by shared
/// chunks. The concatenation of `head` and `chunks` is a valid encoding of the message.
#[derive(Debug, Clone, Default)]
pub struct EncodedMessage {
    head: Bytes,
    chunks: Vec<Bytes>,
}

impl EncodedMessage {
    /// A message made of `head` followed by `chunks`.
    pub fn new(head: Bytes, chunks: Vec<Bytes>) -> Self {
        Self { head, chunks }
    }

    /// The encoded length of the whole message.
    pub fn encoded_len(&self) -> usize {
        self.head.len() + self.chunks.iter().map(Bytes::len).sum::<usize>()
    }

    /// The message as one contiguous buffer (used by tests and in-process clients).
    pub fn to_bytes(&self) -> Bytes {
        let mut buf = BytesMut::with_capacity(self.encoded_len());
        buf.put_slice(&self.head);
        for chunk in &self.chunks {
            buf.put_slice(chunk);
        }
        buf.freeze()
    }

    /// Decodes the message as `M` (for tests and diagnostics; the push path never does this).
    pub fn decode<M: Message + Default>(&self) -> Result<M, prost::DecodeError> {
        M::decode(self.to_bytes())
    }
}

/// Appends a length-delimited field (`tag`, wire type 2) to `buf`.
pub(crate) fn put_len_field(buf: &mut BytesMut, field: u32, bytes: &[u8]) {
    prost::encoding::encode_key(field, prost::encoding::WireType::LengthDelimited, buf);
    prost::encoding::encode_varint(bytes.len() as u64, buf);
    buf.put_slice(bytes);
}

/// The encoded length of a length-delimited field carrying `len` bytes.
pub(crate) fn len_field_size(field: u32, len: usize) -> usize {
    prost::encoding::key_len(field) + prost::encoding::encoded_len_varint(len as u64) + len
}

/// Codec: decodes `D` with prost, encodes [`EncodedMessage`] by copying its bytes.
#[derive(Debug)]
pub struct XdsCodec<D>(PhantomData<fn() -> D>);

impl<D> Default for XdsCodec<D> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<D: Message + Default + Send + 'static> Codec for XdsCodec<D> {
    type Encode = EncodedMessage;
    type Decode = D;
    type Encoder = EncodedMessageEncoder;
    type Decoder = ProstDecoder<D>;

    fn encoder(&mut self) -> Self::Encoder {
        EncodedMessageEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProstDecoder(PhantomData)
    }
}

/// Writes an [`EncodedMessage`] into the transport buffer.
#[derive(Debug)]
pub struct EncodedMessageEncoder;

impl Encoder for EncodedMessageEncoder {
    type Item = EncodedMessage;
    type Error = Status;

    fn encode(&mut self, item: EncodedMessage, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.reserve(item.encoded_len());
        dst.put_slice(&item.head);
        for chunk in &item.chunks {
            dst.put_slice(chunk);
        }
        Ok(())
    }
}

/// Decodes a prost message; a malformed message is an `INVALID_ARGUMENT` status.
#[derive(Debug)]
pub struct ProstDecoder<D>(PhantomData<fn() -> D>);

impl<D: Message + Default> Decoder for ProstDecoder<D> {
    type Item = D;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<D>, Status> {
        D::decode(src).map(Some).map_err(|e| Status::invalid_argument(format!("malformed request: {e}")))
    }
}
