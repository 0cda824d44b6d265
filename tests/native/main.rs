//! Native integration tests: `cargo test` (or `./build.sh test`).
#![cfg(not(target_arch = "wasm32"))]

mod baselines;
mod metrics;
mod models;
mod oracle;
mod robustness;
mod rules;
mod session;
mod statistics;
mod trained;
mod zoo;
