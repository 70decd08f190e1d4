//! Conformance plugin of the Rust SDK, for the host's test suite: it does
//! what the event's name asks (see plugins/README.md, "Conformance").

use switchyard_sdk::{config, emit, handler, info, json, Error, Event};

#[handler]
fn handle(ev: Event) -> Result<(), Error> {
    match ev.name.as_str() {
        "conf.Emit" => emit("conf.Emitted", json!({"lang": "rust", "from": ev.id}))?,
        "conf.Log" => info!("conformance rust"),
        "conf.Fail" => return Err(Error::new("conformance rust failed on purpose")),
        "conf.Config" => emit("conf.ConfigSeen", config())?,
        "conf.Trap" => std::process::abort(),
        _ => {}
    }
    Ok(())
}
