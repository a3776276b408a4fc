//! Integration tests: source.
