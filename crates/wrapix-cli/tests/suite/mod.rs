//! The integration suite. Every test starts from [`harness::Case::new`], which prints
//! `SKIP: <reason>` and returns `None` when this host cannot run sandboxes.

mod apple;
mod badinput;
mod builder;
mod claude;
mod config;
mod desktop;
mod desktop_more;
mod dns;
mod doctor;
mod egress;
mod egress_creds;
mod escape;
mod escape_attack;
mod escape_attack2;
mod escape_attack3;
mod escape_git;
mod escape_net;
mod escape_nspawn;
mod escape_persist;
mod escape_tty;
mod harness;
mod images;
mod manager;
mod manager_web;
mod mcp;
mod nix;
mod notify_restart;
mod nspawn;
mod proc;
mod qemu;
mod ralph;
mod remote;
mod run;
mod testhost;
