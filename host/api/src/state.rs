//! What every handler shares: the image [`Service`] (handlers reach its registry, stores,
//! policy and metrics through `Deref`), as the router's state.

use std::ops::Deref;

use glass_images::Service;

#[derive(Clone)]
pub struct AppState(pub Service);

impl Deref for AppState {
    type Target = Service;

    fn deref(&self) -> &Service {
        &self.0
    }
}
