//! Ready instances of one installed plugin, so a call does not pay instantiation.
//!
//! Each instance has its own store (one tenant, one plugin); an instance is used by one call at
//! a time and goes back to the pool afterwards unless it trapped. Instances are never shared
//! between tenants: a pool belongs to one (tenant, plugin) pair.

use std::sync::{Mutex, MutexGuard};

use wasmtime::Store;
use wasmtime::component::InstancePre;

use super::error::{PluginError, TrapKind};
use super::kind::PluginKind;
use super::model::GenerationPolicy;
use super::runtime::{InstanceSpec, PluginRuntime, PluginState, PluginStore};

/// A world's generated bindings, as the pool needs them.
pub trait World {
    const KIND: PluginKind;
    type Pre: Clone + Send + Sync;
    type Bindings: Send;
    fn pre(pre: InstancePre<PluginState>) -> wasmtime::Result<Self::Pre>;
    fn instantiate(
        pre: &Self::Pre,
        store: &mut Store<PluginState>,
    ) -> wasmtime::Result<Self::Bindings>;
}

/// Implements [`World`] for the generated bindings of one world: `world!(Name, KIND, Pre,
/// Bindings)` where `bindings` (in scope at the call site) is that world's bindings module.
macro_rules! world {
    ($name:ident, $kind:expr, $pre:ident, $bindings:ident) => {
        /// The world, for [`InstancePool`](super::pool::InstancePool).
        pub struct $name;

        impl super::pool::World for $name {
            const KIND: super::kind::PluginKind = $kind;
            type Pre = bindings::$pre<super::runtime::PluginState>;
            type Bindings = bindings::$bindings;

            fn pre(
                pre: wasmtime::component::InstancePre<super::runtime::PluginState>,
            ) -> wasmtime::Result<Self::Pre> {
                bindings::$pre::new(pre)
            }

            fn instantiate(
                pre: &Self::Pre,
                store: &mut wasmtime::Store<super::runtime::PluginState>,
            ) -> wasmtime::Result<Self::Bindings> {
                pre.instantiate(store)
            }
        }
    };
}
pub(super) use world;

/// An installed plugin of one tenant: its pool of instances. Each world's module adds the
/// calls of its interface (`Plugin<ValidatorWorld>::score`, ...).
pub struct Plugin<W: World> {
    pub(super) pool: InstancePool<W>,
}

impl<W: World> Plugin<W> {
    /// Checks `wasm` as a plugin of `W`'s kind; instances are created from `spec`, and up to
    /// `max_idle` are kept ready.
    pub fn new(
        runtime: &PluginRuntime,
        wasm: &[u8],
        spec: InstanceSpec,
        max_idle: usize,
    ) -> Result<Self, PluginError> {
        Ok(Plugin {
            pool: InstancePool::new(runtime, wasm, spec, max_idle)?,
        })
    }

    pub fn pool(&self) -> &InstancePool<W> {
        &self.pool
    }
}

/// One live instance: its store and the bindings of its exports.
pub struct Instance<W: World> {
    pub store: PluginStore,
    pub bindings: W::Bindings,
}

/// Idle instances of one plugin for one tenant.
pub struct InstancePool<W: World> {
    runtime: PluginRuntime,
    pre: W::Pre,
    spec: InstanceSpec,
    idle: Mutex<Vec<Instance<W>>>,
    max_idle: usize,
}

impl<W: World> InstancePool<W> {
    /// Checks `wasm` as a plugin of `W`'s kind and makes a pool of up to `max_idle` idle
    /// instances, each created from `spec`.
    pub fn new(
        runtime: &PluginRuntime,
        wasm: &[u8],
        spec: InstanceSpec,
        max_idle: usize,
    ) -> Result<Self, PluginError> {
        let pre = W::pre(runtime.prepare(W::KIND, wasm)?)
            .map_err(|e| PluginError::Link(super::error::describe(&e)))?;
        Ok(InstancePool {
            runtime: runtime.clone(),
            pre,
            spec,
            idle: Mutex::new(Vec::new()),
            max_idle: max_idle.max(1),
        })
    }

    /// The linked component, as its world's bindings see it.
    pub fn pre(&self) -> &W::Pre {
        &self.pre
    }

    /// The plugin's name.
    pub fn name(&self) -> &str {
        &self.spec.plugin
    }

    /// Runs `f` on an idle instance (or a new one), with `config` as the plugin's settings
    /// for this call when given. The instance returns to the pool unless it trapped.
    pub fn call<R>(
        &self,
        config: Option<&str>,
        f: impl FnOnce(&mut Instance<W>) -> Result<R, PluginError>,
    ) -> Result<R, PluginError> {
        self.call_with(config, GenerationPolicy::default(), f)
    }

    /// [`call`](Self::call), with the call's model requests run under `policy`.
    pub fn call_with<R>(
        &self,
        config: Option<&str>,
        policy: GenerationPolicy,
        f: impl FnOnce(&mut Instance<W>) -> Result<R, PluginError>,
    ) -> Result<R, PluginError> {
        let mut instance = match self.lock().pop() {
            Some(instance) => instance,
            None => self.instantiate()?,
        };
        instance
            .store
            .set_config(config.unwrap_or(&self.spec.config).to_owned());
        instance.store.set_policy(policy);
        let result = f(&mut instance);
        if !instance.store.is_poisoned() {
            let mut idle = self.lock();
            if idle.len() < self.max_idle {
                idle.push(instance);
            }
        }
        result
    }

    /// A fresh instance (what a call pays when the pool is empty).
    pub fn instantiate(&self) -> Result<Instance<W>, PluginError> {
        let mut store = self.runtime.new_store(self.spec.clone());
        let bindings = store
            .call(|s| W::instantiate(&self.pre, s))
            .map_err(|e| match e {
                // Failures other than traps and limits are instantiation failures.
                PluginError::Trap {
                    kind: TrapKind::Other,
                    message,
                    ..
                } => PluginError::Instantiate(message),
                other => other,
            })?;
        Ok(Instance { store, bindings })
    }

    /// Idle instances right now.
    pub fn idle(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Instance<W>>> {
        // A panic while holding the lock cannot leave the list inconsistent.
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }
}
