#![doc = include_str!("../README.md")]

mod error;
pub mod secrets;

pub use error::{Error, Result};
