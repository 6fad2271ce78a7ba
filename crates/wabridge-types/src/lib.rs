//! Wire types of the WhatsApp Business Cloud API.
//!
//! Everything here is pure data: request bodies for every kind of send ([`send`]), the responses
//! ([`response`], [`template`]), the Graph error envelope and its classification ([`error`]), the webhook
//! envelope and its events ([`webhook`]), and the HMAC helpers ([`signature`]). No I/O, no async runtime.
//!
//! Wire types are forward compatible: fields and variants this crate does not know yet are kept (in
//! `extra` maps and `Unknown` variants) so that parsing and serializing again gives back the same JSON.
//!
//! ```
//! use wabridge_types::send::OutboundMessage;
//!
//! let msg = OutboundMessage::text("+16505551234", "Your order has shipped");
//! msg.validate().expect("within Meta's limits");
//! let body = serde_json::to_value(&msg).unwrap();
//! assert_eq!(body["type"], "text");
//! assert_eq!(body["text"]["body"], "Your order has shipped");
//! ```

pub mod error;
pub mod ids;
pub mod limits;
pub mod response;
pub mod send;
pub mod signature;
pub mod template;
pub mod validate;
pub mod webhook;

pub use error::{ErrorClass, GraphError};
pub use ids::{MediaId, PhoneNumberId, TemplateId, WaId, WabaId, Wamid};
pub use validate::ValidationError;

/// The only value Meta accepts for `messaging_product`.
pub const MESSAGING_PRODUCT: &str = "whatsapp";

/// The README's examples, compiled and run as doc-tests.
#[doc = include_str!("../../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
