//! A ClearML-API-compatible server for tests, benchmarks and local trials: the wire format,
//! auth, and the task/queue/worker/event endpoints clearml-agent and the clearml SDK use,
//! stored in SQLite. Not a production server (one company, one user, no fileserver).

mod app;
mod clock;
mod endpoints;
mod error;
mod faults;
mod harness;
mod ids;
mod query;
mod request;
mod state;
mod store;
mod token;
mod wire;

pub use app::serve;
pub use clock::parse_iso;
pub use error::ApiError;
pub use faults::Fault;
pub use harness::{DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY, Options, TestServer};
pub use state::Shared;
pub use token::{API_VERSION, SERVER_VERSION};
