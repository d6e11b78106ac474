//! `wrapix manager`: agent sessions (a tmux session running `wrapix run` with a private
//! display) behind a JSON API and an htmx dashboard, with durable state.
//!
//! Layout: [`model`] (what the API speaks), [`validate`] (requests to a [`model::NewSession`]),
//! [`store`] (SQLite), [`tmux`] (each session's terminal), [`service`] (the one service every
//! front end calls), [`auth`] (the doors' checks), [`api`] and [`ui`] (the HTTP front ends),
//! [`screenshot`], [`metrics`], [`daemon`] (state folder, token, doors, signals).

pub mod api;
pub mod auth;
pub mod daemon;
mod error;
pub mod metrics;
pub mod model;
pub mod screenshot;
pub mod service;
pub mod store;
pub mod tmux;
pub mod ui;
pub mod validate;

pub use error::ApiError;
pub use service::{Launcher, Manager};
