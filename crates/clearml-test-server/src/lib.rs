//! The ClearML-compatible test server (skeleton).
pub fn placeholder() {}
