//! The plugin side of every exported call: convert to FFI types and turn a panic into a
//! [`PluginError`] value, since unwinding across `extern "C"` would abort the host.

use crate::{Host, PluginError, PluginSource, SourcePlugin, SourceRequest, ffi};
use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{RErr, ROk, RResult, RStr, RString};
use std::cell::{Cell, RefCell};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Once;

thread_local! {
    /// True while this thread runs a guarded call.
    static GUARDED: Cell<bool> = const { Cell::new(false) };
    /// Where the latest guarded panic happened, recorded by the panic hook.
    static PANIC_LOCATION: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Replaces the default panic output for panics inside guarded calls: the panic becomes
/// an error value with its location, so printing a backtrace on the host's stderr would
/// only repeat it. Other panics go to the previous hook. The hook belongs to this
/// library's copy of `std`, not the host's.
pub(crate) fn install_panic_hook() {
    static INSTALLED: Once = Once::new();
    INSTALLED.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if GUARDED.with(Cell::get) {
                let location = info
                    .location()
                    .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()));
                PANIC_LOCATION.with(|slot| *slot.borrow_mut() = location);
            } else {
                previous(info);
            }
        }));
    });
}

/// Runs `call`, turning a panic into an error with code `panic` naming `what` was called
/// and where it panicked.
fn guarded<T>(what: &str, call: impl FnOnce() -> Result<T, PluginError>) -> Result<T, PluginError> {
    let outer = GUARDED.with(|g| g.replace(true));
    let result = catch_unwind(AssertUnwindSafe(call));
    GUARDED.with(|g| g.set(outer));
    result.unwrap_or_else(|payload| {
        let reason = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "no message".into());
        let location = PANIC_LOCATION
            .with(|slot| slot.borrow_mut().take())
            .map(|l| format!(" at {l}"))
            .unwrap_or_default();
        Err(PluginError::new(
            "panic",
            format!("the plugin panicked in `{what}`{location}: {reason}"),
        ))
    })
}

fn into_ffi<T, F: From<T>>(result: Result<T, PluginError>) -> RResult<F, ffi::PluginError> {
    match result {
        Ok(value) => ROk(value.into()),
        Err(e) => RErr(e.into()),
    }
}

pub(crate) extern "C" fn info<P: SourcePlugin>() -> RResult<ffi::PluginInfo, ffi::PluginError> {
    into_ffi(guarded("info", || Ok(P::info())))
}

pub(crate) extern "C" fn open<P: SourcePlugin>(
    request: RStr<'_>,
    host: ffi::HostBox,
) -> RResult<ffi::SourceBox, ffi::PluginError> {
    let opened = guarded("open", || {
        let request: SourceRequest = serde_json::from_str(request.as_str())
            .map_err(|e| PluginError::new("bad_request", format!("cannot read the host's request: {e}")))?;
        P::open(request, Host::from_ffi(host))
    });
    match opened {
        Ok(source) => ROk(ffi::SourceObject_TO::from_value(Guarded(source), TD_Opaque)),
        Err(e) => RErr(e.into()),
    }
}

/// A plugin's source behind the FFI object, every call guarded.
struct Guarded(Box<dyn PluginSource>);

impl ffi::SourceObject for Guarded {
    fn location(&self) -> RString {
        guarded("location", || Ok(self.0.location()))
            .unwrap_or_else(|e| e.message)
            .into()
    }

    fn scan(&self, host: ffi::HostBox) -> RResult<ffi::Scan, ffi::PluginError> {
        into_ffi(guarded("scan", || self.0.scan(&Host::from_ffi(host))))
    }

    fn load(&self, locator: RStr<'_>, host: ffi::HostBox) -> RResult<ffi::Bundle, ffi::PluginError> {
        into_ffi(guarded("load", || self.0.load(locator.as_str(), &Host::from_ffi(host))))
    }
}
