//! A listing statement under construction: its text is built by `list.rs` and `scope.rs`,
//! its typed parameters collected here.

use tokio_postgres::types::{ToSql, Type};

/// A statement under construction and its typed parameters.
#[derive(Default)]
pub(super) struct Sql {
    params: Vec<(Box<dyn ToSql + Sync + Send>, Type)>,
}

impl Sql {
    /// Adds a parameter and returns its placeholder.
    pub(super) fn param<T: ToSql + Sync + Send + 'static>(&mut self, value: T, ty: Type) -> String {
        self.params.push((Box::new(value), ty));
        format!("${}", self.params.len())
    }

    pub(super) fn types(&self) -> Vec<Type> {
        self.params.iter().map(|(_, t)| t.clone()).collect()
    }

    pub(super) fn values(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.params
            .iter()
            .map(|(v, _)| v.as_ref() as &(dyn ToSql + Sync))
            .collect()
    }
}
