//! How PostgreSQL runs a listing, for the query plan tests: `EXPLAIN (ANALYZE, BUFFERS,
//! FORMAT JSON)` of the exact statement `list.rs` prepares, with its parameters, planned
//! either for those values (a custom plan) or as the generic plan a prepared statement
//! settles on after a few executions.

use json_text::JsonText;
use tokio_postgres::types::Type;

use super::list;
use super::pg;
use crate::error::{RegistryError, Result};
use crate::query::ImageQuery;

/// Which plan to explain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlanKind {
    /// Planned for the parameters' values.
    Custom,
    /// Planned without them (`plan_cache_mode = force_generic_plan`).
    Generic,
}

mod json_text {
    //! A `json` column read as its text.
    use tokio_postgres::types::{FromSql, Type};

    pub struct JsonText(pub String);

    impl<'a> FromSql<'a> for JsonText {
        fn from_sql(
            _: &Type,
            raw: &'a [u8],
        ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
            Ok(JsonText(std::str::from_utf8(raw)?.to_string()))
        }

        fn accepts(ty: &Type) -> bool {
            *ty == Type::JSON
        }
    }
}

/// The plan of `query`'s listing as EXPLAIN's JSON document, run (ANALYZE) so it carries the
/// rows each node read.
pub(super) async fn explain_list(
    client: &deadpool_postgres::ClientWrapper,
    query: &ImageQuery,
    kind: PlanKind,
) -> Result<serde_json::Value> {
    let marker = list::find_marker(client, query).await?;
    let statement = list::statement(query, marker.as_ref());
    let options = "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON)";
    let text = match kind {
        PlanKind::Custom => {
            let stmt = client
                .prepare_typed(&format!("{options} {}", statement.text), &statement.types())
                .await
                .map_err(pg)?;
            let row = client
                .query_one(&stmt, &statement.values())
                .await
                .map_err(pg)?;
            row.get::<_, JsonText>(0).0
        }
        PlanKind::Generic => {
            // EXECUTE takes its arguments as SQL, not as bound parameters: the values as
            // literals, spelt by the server itself.
            let types = statement.types();
            let casts: Vec<String> = (1..=types.len()).map(|n| format!("${n}::text")).collect();
            let literals: Vec<String> = if types.is_empty() {
                Vec::new()
            } else {
                let stmt = client
                    .prepare_typed(&format!("SELECT {}", casts.join(", ")), &types)
                    .await
                    .map_err(pg)?;
                let row = client
                    .query_one(&stmt, &statement.values())
                    .await
                    .map_err(pg)?;
                (0..types.len())
                    .map(|i| match row.get::<_, Option<String>>(i) {
                        Some(v) => format!("'{}'::{}", v.replace('\'', "''"), types[i].name()),
                        None => format!("NULL::{}", types[i].name()),
                    })
                    .collect()
            };
            let names: Vec<&str> = types.iter().map(Type::name).collect();
            let prepare = if names.is_empty() {
                String::new()
            } else {
                format!("({})", names.join(", "))
            };
            let execute = if literals.is_empty() {
                String::new()
            } else {
                format!("({})", literals.join(", "))
            };
            client
                .batch_execute(&format!(
                    "SET plan_cache_mode = force_generic_plan; \
                     PREPARE glass_explain {prepare} AS {}",
                    statement.text
                ))
                .await
                .map_err(pg)?;
            let run = client
                .query_one(&format!("{options} EXECUTE glass_explain {execute}"), &[])
                .await;
            client
                .batch_execute("DEALLOCATE glass_explain; RESET plan_cache_mode")
                .await
                .map_err(pg)?;
            run.map_err(pg)?.get::<_, JsonText>(0).0
        }
    };
    serde_json::from_str(&text).map_err(|e| RegistryError::Engine(format!("explain: {e}")))
}
