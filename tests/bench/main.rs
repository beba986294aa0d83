//! Benchmarks, every one `#[ignore]`d: run by `scripts/bench-store` and `scripts/bench-wsbot`
//! (`cargo test --test bench -- --ignored --test-threads=1 <name>`), one at a time so that
//! they measure alone. `cargo test` only lists them.

#[path = "../common/mod.rs"]
mod common;
mod measure;
mod store_bench;
mod ws_floor;
mod wsbot_bench;
mod wsbot_call_bench;
