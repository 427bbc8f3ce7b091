//! The backend-agnostic registry test suite (being written).
pub async fn run(_registry: &dyn crate::Registry) {}
