//! Child processes: spawning in their own process group, output capture, killing the whole tree.
