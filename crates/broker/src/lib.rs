//! ferrymq-broker

pub mod config;
