//! Every environment variable the agent reads, in one table.
