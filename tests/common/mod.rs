#![allow(dead_code)]
pub mod api;
