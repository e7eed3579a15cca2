//! Integration tests of the protocol crate: captured vectors, builders, classifier,
//! property tests.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod builders;
mod encodings;
mod events;
mod private_image;
mod props;
mod vectors;
