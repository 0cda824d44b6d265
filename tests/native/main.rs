//! Native integration tests: `cargo test` (or `./build.sh test`).
#![cfg(not(target_arch = "wasm32"))]

mod metrics;
mod models;
mod robustness;
mod rules;
mod session;
mod zoo;
