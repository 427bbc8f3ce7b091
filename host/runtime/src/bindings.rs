//! Every host binding of a Glass contract, one module per world, all generated here. A world
//! gets a module of its own so the generated names stay apart (the store world is named
//! `store`: its `Store`/`StorePre` would clash with `wasmtime::Store`). `wasi:io` maps to
//! wasmtime-wasi's own bindings, so the streams a plugin receives are wasmtime-wasi's
//! `DynInputStream`/`DynOutputStream` resources. A new contract version is a new module here.

/// `glass:store@0.1.0`: image data stores.
pub mod store {
    wasmtime::component::bindgen!({
        path: ["../../wit/deps/io.wit", "../../wit/glass-store@0.1.0"],
        world: "glass:store/store",
        exports: { default: async },
        with: {
            "wasi:io": wasmtime_wasi::p2::bindings::io,
        },
    });

    pub use exports::glass::store::driver::{Capabilities, StoreError as WitStoreError};
}

/// `glass:inspect@0.1.0`: the disk-format inspector.
pub mod inspect {
    wasmtime::component::bindgen!({
        path: ["../../wit/deps/io.wit", "../../wit/glass-inspect@0.1.0"],
        world: "glass:inspect/inspect",
        exports: { default: async },
        with: {
            "wasi:io": wasmtime_wasi::p2::bindings::io,
        },
    });
}

/// `glass:metadef@0.1.0`: metadata validators.
pub mod metadef {
    wasmtime::component::bindgen!({
        path: ["../../wit/glass-metadef@0.1.0"],
        world: "glass:metadef/validator",
        exports: { default: async },
    });
}
