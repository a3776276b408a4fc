//! Object ids: 32 lowercase hex characters, like the uuid4 hex ids of the real server.

/// A fresh random id.
pub(crate) fn new_id() -> String {
    let bytes: [u8; 16] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
