//! Integration tests: hocon.
