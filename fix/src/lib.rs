//! FIX 4.4: framing, zero-copy parsing, dictionary validation, message building and the
//! session layer, with QuickFIX's behaviour where the acceptance suite pins it down.

pub mod builder;
mod compiled;
pub mod dictionary;
mod fix44_data;
pub mod frame;
pub mod message;
pub mod session;
pub mod shape;
pub mod timefmt;
pub mod validate;
pub mod window;
