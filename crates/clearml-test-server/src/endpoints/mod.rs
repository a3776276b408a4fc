//! The endpoint table: which `service.action` names exist, from which API version, what
//! authentication they need, and which handler serves them.

pub(crate) mod auth;
pub(crate) mod events;
pub(crate) mod projects;
pub(crate) mod queues;
pub(crate) mod server;
pub(crate) mod task_status;
pub(crate) mod tasks;
pub(crate) mod workers;

use serde_json::Value;

use crate::error::ApiError;
use crate::state::Ctx;

/// The credentials an endpoint needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Auth {
    /// None: credentials are not looked at.
    None,
    /// A valid Basic key/secret or Bearer token.
    User,
    /// As `User`, and the `system` or `root` role (403/20 otherwise).
    SystemRole,
}

pub(crate) type Handler = fn(&Ctx, Value) -> Result<Value, ApiError>;

/// One registered endpoint implementation.
#[derive(Clone, Copy)]
pub(crate) struct Endpoint {
    pub name: &'static str,
    pub min_version: (u32, u32),
    pub auth: Auth,
    pub handler: Handler,
}

const fn ep(name: &'static str, min_version: (u32, u32), handler: Handler) -> Endpoint {
    Endpoint {
        name,
        min_version,
        auth: Auth::User,
        handler,
    }
}

/// Every endpoint this server implements. Versions mirror the `min_version` of the real
/// server's implementation (apiserver/services/*.py `@endpoint(..., min_version=...)`).
pub(crate) static ENDPOINTS: &[Endpoint] = &[
    ep("auth.login", (1, 0), auth::login),
    ep("auth.logout", (2, 2), auth::logout),
    Endpoint {
        auth: Auth::SystemRole,
        ..ep("auth.validate_token", (1, 0), auth::validate_token)
    },
    Endpoint {
        auth: Auth::None,
        ..ep("debug.ping", (1, 0), server::ping)
    },
    Endpoint {
        auth: Auth::None,
        ..ep("server.info", (2, 1), server::info)
    },
    Endpoint {
        auth: Auth::SystemRole,
        ..ep("server.endpoints", (1, 0), server::endpoints)
    },
    ep("users.get_current_user", (1, 0), server::current_user),
    ep("projects.create", (2, 1), projects::create),
    ep("projects.get_all", (2, 1), projects::get_all),
    ep("projects.get_all_ex", (2, 1), projects::get_all),
    ep("projects.get_by_id", (2, 1), projects::get_by_id),
    ep("queues.get_all", (2, 4), queues::get_all),
    ep("queues.get_all_ex", (2, 4), queues::get_all_ex),
    ep("queues.get_by_id", (2, 4), queues::get_by_id),
    ep("queues.create", (2, 4), queues::create),
    ep("queues.update", (2, 4), queues::update),
    ep("queues.delete", (2, 4), queues::delete),
    ep("queues.get_default", (2, 4), queues::get_default),
    ep("queues.get_next_task", (2, 4), queues::get_next_task),
    ep("queues.add_task", (2, 4), queues::add_task),
    ep("queues.remove_task", (2, 4), queues::remove_task),
    ep(
        "queues.move_task_to_front",
        (2, 4),
        queues::move_task_to_front,
    ),
    ep(
        "queues.move_task_to_back",
        (2, 4),
        queues::move_task_to_back,
    ),
    ep("queues.peek_task", (2, 15), queues::peek_task),
    ep("queues.get_num_entries", (2, 15), queues::get_num_entries),
    ep("queues.clear_queue", (2, 31), queues::clear_queue),
    ep("tasks.get_by_id", (1, 0), tasks::get_by_id),
    ep("tasks.get_all", (1, 0), tasks::get_all),
    ep("tasks.get_all_ex", (2, 1), tasks::get_all),
    ep("tasks.create", (1, 0), tasks::create),
    ep("tasks.edit", (1, 0), tasks::edit),
    ep("tasks.clone", (2, 5), tasks::clone),
    ep("tasks.update", (1, 0), tasks::update),
    ep("tasks.delete", (1, 0), tasks::delete),
    ep("tasks.set_requirements", (1, 0), tasks::set_requirements),
    ep(
        "tasks.add_or_update_artifacts",
        (2, 10),
        tasks::add_or_update_artifacts,
    ),
    ep("tasks.get_hyper_params", (2, 9), tasks::get_hyper_params),
    ep("tasks.edit_hyper_params", (2, 9), tasks::edit_hyper_params),
    ep(
        "tasks.get_configurations",
        (2, 9),
        tasks::get_configurations,
    ),
    ep(
        "tasks.edit_configuration",
        (2, 9),
        tasks::edit_configuration,
    ),
    ep("tasks.ping", (1, 0), tasks::ping),
    ep("tasks.enqueue", (1, 5), task_status::enqueue),
    ep("tasks.dequeue", (1, 5), task_status::dequeue),
    ep("tasks.started", (1, 0), task_status::started),
    ep("tasks.stop", (1, 0), task_status::stop),
    ep("tasks.stopped", (1, 0), task_status::stopped),
    ep("tasks.failed", (1, 0), task_status::failed),
    ep("tasks.completed", (2, 2), task_status::completed),
    ep("tasks.close", (1, 0), task_status::close),
    ep("tasks.publish", (1, 0), task_status::publish),
    ep("tasks.reset", (1, 0), task_status::reset),
    ep("events.add", (1, 0), events::add),
    ep("events.add_batch", (1, 0), events::add_batch),
    ep("events.get_task_log", (2, 9), events::get_task_log),
    ep("events.get_task_events", (1, 0), events::get_task_events),
    ep(
        "events.download_task_log",
        (2, 9),
        events::download_task_log,
    ),
    ep("workers.register", (2, 4), workers::register),
    ep("workers.unregister", (2, 4), workers::unregister),
    ep("workers.status_report", (2, 4), workers::status_report),
    ep("workers.get_all", (2, 4), workers::get_all),
];

/// The implementation of `name` for the requested version: `None` when the name is unknown
/// or the version is below the endpoint's minimum (both answered 404).
pub(crate) fn find(name: &str, version: (u32, u32)) -> Option<Endpoint> {
    ENDPOINTS
        .iter()
        .find(|e| e.name == name && e.min_version <= version)
        .copied()
}
