//! # tests: integration tests that span crates
//!
//! Owns the checks that no single crate can make about itself: the layering
//! of the workspace now; gradient checks, PyTorch parity and end-to-end runs
//! as the crates above `kernels` fill in. The tests are in `tests/tests/`.
