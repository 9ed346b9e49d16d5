//! Runtime: an RGB image becomes a decision.
pub mod cascade;
pub mod confidence;
pub mod labels;
pub mod manifest;
pub mod model;
pub mod preprocess;
pub mod stage;
