//! What the API speaks: sessions, their status, and the create request.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A session's life: `creating → running → stopped | exited | failed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Creating,
    Running,
    Stopped,
    Exited,
    Failed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Creating => "creating",
            Status::Running => "running",
            Status::Stopped => "stopped",
            Status::Exited => "exited",
            Status::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Some(match s {
            "creating" => Status::Creating,
            "running" => Status::Running,
            "stopped" => Status::Stopped,
            "exited" => Status::Exited,
            "failed" => Status::Failed,
            _ => return None,
        })
    }

    /// Whether a tmux session may exist for it.
    pub fn is_live(self) -> bool {
        matches!(self, Status::Creating | Status::Running)
    }
}

/// The network a session was created with (`"open"`/`"none"`, or the original's `true`/`false`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Network {
    Open,
    None,
}

impl Network {
    pub fn as_str(self) -> &'static str {
        match self {
            Network::Open => "open",
            Network::None => "none",
        }
    }
}

/// One session, as the API returns it and the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Session {
    /// A UUID (version 4).
    pub id: String,
    /// `[A-Za-z0-9._-]{1,64}`, unique among the sessions.
    pub name: String,
    /// The project folder, resolved (symlinks followed).
    #[schema(value_type = String)]
    pub project_dir: PathBuf,
    /// The backend asked for (`auto` when the project's config decides).
    pub backend: String,
    /// The profile asked for; `null`: the project's config decides.
    pub profile: Option<String>,
    /// The network asked for; `null`: the project's config decides.
    pub network: Option<Network>,
    pub status: Status,
    /// The agent's exit code (`exited`).
    pub exit_code: Option<i32>,
    /// Why the session is `exited`, `failed` or `stopped`, in words.
    pub reason: Option<String>,
    /// RFC 3339 timestamps.
    pub created_at: String,
    pub updated_at: String,
    /// Run this on the server to attach to the session's terminal.
    pub attach: String,
}

/// `POST /api/sandboxes`. The original's body (`backend: "bubblewrap"`, `network: true|false`)
/// and ours (`"bwrap"`, `"podman"`, `network: "open"|"none"`, `profile`).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRequest {
    /// Unique among the sessions; not `.` or `..`.
    #[schema(pattern = "^[A-Za-z0-9._-]{1,64}$", min_length = 1, max_length = 64)]
    pub name: String,
    /// `auto`, `bwrap` (or `bubblewrap`), `podman`, … Default: `auto` (the project's config).
    #[serde(default)]
    pub backend: Option<String>,
    pub project_dir: String,
    /// `true`/`"open"` or `false`/`"none"`. Default: the project's config.
    #[serde(default)]
    #[schema(schema_with = network_schema)]
    pub network: Option<serde_json::Value>,
    /// A profile (`host`, `base`, `rust`, `python`, or one of the config's). Default: the
    /// project's config.
    #[serde(default)]
    pub profile: Option<String>,
}

/// `network` as the API takes it: a boolean, `"open"`/`"none"`, or null (absent).
fn network_schema() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
    OneOfBuilder::new()
        .item(ObjectBuilder::new().schema_type(Type::Boolean))
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(["open", "none"])),
        )
        .item(ObjectBuilder::new().schema_type(Type::Null))
        .description(Some(
            "`true`/`\"open\"` or `false`/`\"none\"`. Default: the project's config.",
        ))
        .build()
        .into()
}

/// A JSON error: `{"error": "..."}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: String,
}

/// A validated create request: everything the launcher needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSession {
    pub name: String,
    pub project_dir: PathBuf,
    /// The canonical backend name, or `auto`.
    pub backend: String,
    pub profile: Option<String>,
    pub network: Option<Network>,
}
