//! Hostile task definitions: placeholder, filled by its own change.
