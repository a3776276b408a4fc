//! `projects.*`: lookup and creation (used by `clearml-task`-like flows and match rules).
//! Sent at /v2.13 as the Python agent's `projects.get_all`.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::client::Client;
use super::error::Error;
use super::types::{Project, nullable};

/// Calls of the `projects` service.
pub struct Projects<'a> {
    client: &'a Client,
}

/// A `projects.get_all` query; unset fields are not sent.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ProjectQuery {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<Vec<String>>,
    /// A regular expression.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub only_fields: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub search_hidden: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ProjectsReply {
    #[serde(deserialize_with = "nullable")]
    projects: Vec<Project>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ProjectReply {
    #[serde(deserialize_with = "nullable")]
    project: Project,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct IdReply {
    #[serde(deserialize_with = "nullable")]
    id: String,
}

impl Client {
    /// The `projects` calls.
    pub fn projects(&self) -> Projects<'_> {
        Projects { client: self }
    }
}

impl Projects<'_> {
    /// `projects.get_all` (/v2.13).
    pub async fn get_all(&self, query: &ProjectQuery) -> Result<Vec<Project>, Error> {
        let reply: ProjectsReply = self
            .client
            .call("projects.get_all", Some("2.13"), query)
            .await?;
        Ok(reply.projects)
    }

    /// `projects.get_by_id` (/v2.13).
    pub async fn get_by_id(&self, project: &str) -> Result<Project, Error> {
        let reply: ProjectReply = self
            .client
            .call(
                "projects.get_by_id",
                Some("2.13"),
                &json!({ "project": project }),
            )
            .await?;
        Ok(reply.project)
    }

    /// `projects.create` (/v2.13) → the new project id.
    pub async fn create(&self, name: &str, description: &str) -> Result<String, Error> {
        let reply: IdReply = self
            .client
            .call(
                "projects.create",
                Some("2.13"),
                &json!({ "name": name, "description": description }),
            )
            .await?;
        Ok(reply.id)
    }
}
