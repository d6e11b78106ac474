mod badinput;
mod dbus;
mod harness;
mod i3;
mod peer;
mod sandbox;
mod tmux;
mod x11;
