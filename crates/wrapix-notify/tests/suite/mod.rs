mod badinput;
mod dbus;
mod harness;
mod peer;
mod sandbox;
mod tmux;
mod x11;
