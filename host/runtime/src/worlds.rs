//! The worlds the runtime knows, one per WIT contract: what [`Plugin`] needs of each (its
//! pre-instance and instance types, its `info` call, the checks a new version must pass).
//! The bindings themselves are generated in `bindings`.

use wasmtime::Engine;
use wasmtime::component::{Component, InstancePre};

use crate::bindings::inspect::{Inspect, InspectPre};
use crate::bindings::metadef::{Validator, ValidatorPre};
use crate::bindings::store::{Capabilities, Store as Driver, StorePre as DriverPre};
use crate::call::{CallSettings, CallState};
use crate::plugin::{PluginKind, World};
use crate::store::{StoreError, StoreInfo};
use crate::{INSPECTOR_WIT, STORE_WIT, VALIDATOR_WIT};

#[cfg(doc)]
use crate::plugin::Plugin;

/// The `glass:store@0.1.0` world, for [`Plugin`].
pub(crate) struct StoreWorld;

/// What a store driver says about itself (`info`).
pub(crate) struct DriverInfo {
    pub caps: Capabilities,
    pub store: StoreInfo,
}

impl World for StoreWorld {
    const KIND: PluginKind = PluginKind::Store;
    const WIT: &'static str = STORE_WIT;
    const EXPORT: &'static str = "glass:store/driver@0.1.0";
    const BUSY: &'static str = "too many concurrent store plugin calls";

    type Pre = DriverPre<CallState>;
    type Instance = Driver;
    type Info = DriverInfo;

    fn pre(pre: InstancePre<CallState>) -> wasmtime::Result<Self::Pre> {
        DriverPre::new(pre)
    }

    async fn instantiate(
        pre: &Self::Pre,
        store: &mut wasmtime::Store<CallState>,
    ) -> wasmtime::Result<Driver> {
        pre.instantiate_async(store).await
    }

    async fn info(
        driver: &Driver,
        store: &mut wasmtime::Store<CallState>,
    ) -> wasmtime::Result<DriverInfo> {
        let info = driver.glass_store_driver().call_info(store).await?;
        let caps = info.capabilities;
        let read_only = caps.contains(Capabilities::READ_ONLY);
        Ok(DriverInfo {
            caps,
            store: StoreInfo {
                driver: info.name,
                version: info.version,
                can_write: caps.contains(Capabilities::WRITE) && !read_only,
                can_delete: caps.contains(Capabilities::DELETE) && !read_only,
                ranged_reads: caps.contains(Capabilities::RANGED_READS),
            },
        })
    }

    fn name(info: &DriverInfo) -> &str {
        &info.store.driver
    }

    fn version(info: &DriverInfo) -> &str {
        &info.store.version
    }

    fn capabilities(info: &DriverInfo) -> Vec<&'static str> {
        capability_names(info.caps)
    }

    fn check_component(
        engine: &Engine,
        settings: &CallSettings,
        component: &Component,
    ) -> anyhow::Result<()> {
        check_imports(engine, settings, component)
    }

    /// A new version must keep the capabilities the store relies on: read, and write if
    /// the version serving now writes.
    fn check_swap(id: &str, old: &DriverInfo, new: &DriverInfo) -> anyhow::Result<()> {
        let needs = old.caps
            & (Capabilities::READ | Capabilities::WRITE | Capabilities::DELETE)
            & !if old.caps.contains(Capabilities::READ_ONLY) {
                Capabilities::WRITE | Capabilities::DELETE
            } else {
                Capabilities::empty()
            };
        let lacking = needs & !new.caps;
        anyhow::ensure!(
            lacking == Capabilities::empty()
                && !(new.caps.contains(Capabilities::READ_ONLY) && old.store.can_write),
            "store {id}: {} {} lacks capabilities the store relies on: {}",
            new.store.driver,
            new.store.version,
            capability_names(if lacking == Capabilities::empty() {
                Capabilities::WRITE
            } else {
                lacking
            })
            .join(", ")
        );
        Ok(())
    }

    fn info_failed(_id: &str, error: StoreError) -> anyhow::Error {
        error.into()
    }
}

/// The `glass:metadef@0.1.0` world, for [`Plugin`].
pub(crate) struct ValidatorWorld;

/// What a component says about itself (`info`): its name and version.
pub(crate) struct Named {
    pub name: String,
    pub version: String,
}

impl World for ValidatorWorld {
    const KIND: PluginKind = PluginKind::Validator;
    const WIT: &'static str = VALIDATOR_WIT;
    const EXPORT: &'static str = "glass:metadef/validate@0.1.0";

    type Pre = ValidatorPre<CallState>;
    type Instance = Validator;
    type Info = Named;

    fn pre(pre: InstancePre<CallState>) -> wasmtime::Result<Self::Pre> {
        ValidatorPre::new(pre)
    }

    async fn instantiate(
        pre: &Self::Pre,
        store: &mut wasmtime::Store<CallState>,
    ) -> wasmtime::Result<Validator> {
        pre.instantiate_async(store).await
    }

    async fn info(
        validator: &Validator,
        store: &mut wasmtime::Store<CallState>,
    ) -> wasmtime::Result<Named> {
        let info = validator.glass_metadef_validate().call_info(store).await?;
        Ok(Named {
            name: info.name,
            version: info.version,
        })
    }

    fn name(info: &Named) -> &str {
        &info.name
    }

    fn version(info: &Named) -> &str {
        &info.version
    }
}

/// The `glass:inspect@0.1.0` world, for [`Plugin`].
pub(crate) struct InspectorWorld;

impl World for InspectorWorld {
    const KIND: PluginKind = PluginKind::Inspector;
    const WIT: &'static str = INSPECTOR_WIT;
    const EXPORT: &'static str = INSPECTOR_WIT;

    type Pre = InspectPre<CallState>;
    type Instance = Inspect;
    type Info = Named;

    fn pre(pre: InstancePre<CallState>) -> wasmtime::Result<Self::Pre> {
        InspectPre::new(pre)
    }

    async fn instantiate(
        pre: &Self::Pre,
        store: &mut wasmtime::Store<CallState>,
    ) -> wasmtime::Result<Inspect> {
        pre.instantiate_async(store).await
    }

    async fn info(
        inspect: &Inspect,
        store: &mut wasmtime::Store<CallState>,
    ) -> wasmtime::Result<Named> {
        let info = inspect.glass_inspect_inspector().call_info(store).await?;
        Ok(Named {
            name: info.name,
            version: info.version,
        })
    }

    fn name(info: &Named) -> &str {
        &info.name
    }

    fn version(info: &Named) -> &str {
        &info.version
    }
}

fn capability_names(caps: Capabilities) -> Vec<&'static str> {
    [
        (Capabilities::READ, "read"),
        (Capabilities::WRITE, "write"),
        (Capabilities::DELETE, "delete"),
        (Capabilities::RANGED_READS, "ranged-reads"),
        (Capabilities::READ_ONLY, "read-only"),
    ]
    .into_iter()
    .filter(|(c, _)| caps.contains(*c))
    .map(|(_, name)| name)
    .collect()
}

/// Refuses a component that needs outgoing HTTP when the store grants it no host: every
/// call would fail, so it is better to say so when it is loaded.
fn check_imports(
    engine: &Engine,
    settings: &CallSettings,
    component: &Component,
) -> anyhow::Result<()> {
    let ty = component.component_type();
    let wants_http = ty
        .imports(engine)
        .any(|(name, _)| name.starts_with("wasi:http/outgoing-handler@"));
    anyhow::ensure!(
        !wants_http || !settings.hosts.is_empty(),
        "store {}: the component needs network access (it imports wasi:http/outgoing-handler) \
         but the store grants it no hosts (set `hosts` in its configuration)",
        settings.plugin
    );
    Ok(())
}
