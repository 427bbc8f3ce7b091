//! Host bindings for the `glass:store@0.1.0` world. Kept in a module of its own: the world is
//! named `store`, so the generated `Store`/`StorePre` would clash with `wasmtime::Store`.
//! `wasi:io` maps to wasmtime-wasi's own bindings, so the streams a driver receives are
//! wasmtime-wasi's `DynInputStream`/`DynOutputStream` resources.

wasmtime::component::bindgen!({
    path: ["../wit/deps/io.wit", "../wit/glass-store@0.1.0"],
    world: "glass:store/store",
    exports: { default: async },
    with: {
        "wasi:io": wasmtime_wasi::p2::bindings::io,
    },
});

pub use exports::glass::store::driver::{Capabilities, StoreError as WitStoreError};
