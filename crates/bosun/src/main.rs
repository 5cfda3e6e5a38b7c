//! The `bosun` binary.

mod resources;

fn main() {}
