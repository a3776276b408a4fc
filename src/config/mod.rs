//! Configuration: `clearml.conf` parsing (pyhocon dialect) and settings resolution.

pub mod hocon;
