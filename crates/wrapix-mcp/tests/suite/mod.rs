mod harness;

mod bad_input;
mod flow;
mod lifecycle;
mod python;
mod sandbox;
