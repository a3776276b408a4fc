//! Parser for the pyhocon dialect of HOCON used by `clearml.conf` files.
