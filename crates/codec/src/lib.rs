//! MQTT 3.1, 3.1.1 and 5.0 packets: the model, the decoder and the encoder, on `bytes`.
//!
//! This crate knows nothing of sockets, clocks or sessions. The decoder checks the fixed
//! header first and refuses a packet above the size limit before any of its body is
//! buffered; errors name the spec rule they enforce and map to a v5 reason code in one
//! place ([`DecodeError::reason_code`]).

mod decode;
mod encode;
mod error;
mod packet;
mod properties;
mod read;
mod reason;
mod wire;
mod write;

#[doc(hidden)]
pub mod fuzzing;

pub use decode::{Decoder, FixedHeader, peek_fixed_header};
pub use encode::{EncodeError, encode, encoded_len};
pub use error::DecodeError;
pub use packet::*;
pub use reason::ReasonCode;
