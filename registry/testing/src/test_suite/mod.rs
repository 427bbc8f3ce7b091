//! The behaviour every registry engine must show. [`run`] exercises a [`Registry`] through its
//! public trait only and panics, with a message naming the broken rule, at the first
//! deviation.
//!
//! The suite may run against a database other runs share: every check creates its own
//! uniquely named owners, members and images, and every listing is filtered down to them, so
//! nothing assumes an empty registry and nothing is cleaned up.

mod concurrency;
mod filters;
mod helpers;
mod images;
mod listing;
mod members;
mod metadef;
mod order;
mod scale;
mod tasks;
mod visibility;

use glass_registry::Registry;

/// Runs every check against `registry`.
pub async fn run(registry: &dyn Registry) {
    images::create_and_get(registry).await;
    images::compare_and_swap(registry).await;
    images::state_machine(registry).await;
    images::delete(registry).await;
    members::members(registry).await;
    concurrency::concurrent_writes(registry).await;
    listing::default_order_and_paging(registry).await;
    listing::sorting(registry).await;
    listing::markers(registry).await;
    filters::filters(registry).await;
    filters::time_filters(registry).await;
    visibility::visibility(registry).await;
    tasks::tasks(registry).await;
    tasks::task_image_follows_updates(registry).await;
    metadef::run(registry).await;
    scale::filtered_pages_cost_the_page(registry).await;
}
