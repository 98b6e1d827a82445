//! The Kafka wire protocol, without I/O: frames, request headers, response encoding and the
//! api-version table. Message schemas come from the `kafka-protocol` crate; nothing here is a
//! hand-written message schema.
pub mod codec;
pub mod frame;
pub mod versions;

pub use codec::{
    decode_request_header, encode_response, encode_response_body, response_prefix, HeaderError, RequestFrame,
};
pub use frame::{read_frame, FrameError};
pub use versions::VersionTable;
