mod api;
mod ui;
