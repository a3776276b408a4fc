//! Shipping task output to the server as log events, with no line lost.
