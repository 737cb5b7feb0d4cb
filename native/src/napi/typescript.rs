//! Renders `native/lib/names.generated.ts` from the names declared once in Rust — the counters
//! (engine/stats.rs), the drop reasons (engine/drops.rs), the event types (engine/events.rs) and
//! the flow states (engine/flow.rs) —
//! and fails when the checked-in file differs. `GSRA_WRITE_GENERATED=1 cargo test --release
//! --lib typescript` (in native/) rewrites it.

use crate::engine::{Close, Event, FlowState, Reason, Stats};

const PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/lib/names.generated.ts");
/// Prettier's print width for this repository (.prettierrc).
const WIDTH: usize = 110;

/// `export const NAME = [...] as const;` laid out as prettier lays it out.
fn const_list(doc: &str, name: &str, type_name: &str, items: &[&str]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("'{}'", s)).collect();
    let one_line = format!("export const {} = [{}] as const;", name, quoted.join(", "));
    let list = if one_line.len() <= WIDTH {
        one_line
    } else {
        let body: String = quoted.iter().map(|q| format!("  {},\n", q)).collect();
        format!("export const {} = [\n{}] as const;", name, body)
    };
    format!("/** {} */\n{}\nexport type {} = (typeof {})[number];\n", doc, list, type_name, name)
}

fn render() -> String {
    [
        "// Generated from native/src (engine/stats.rs, engine/drops.rs, engine/events.rs, engine/flow.rs) by\n\
         // the Rust test napi::typescript::generated_names_are_current; do not edit. To regenerate, in\n\
         // native/:\n\
         //   GSRA_WRITE_GENERATED=1 cargo test --release --lib typescript\n"
            .to_string(),
        const_list("The engine's counters, as `stats()` reports them.", "ENGINE_COUNTERS", "EngineCounter", Stats::NAMES),
        const_list("Why the engine refuses a packet (`stats().drops`, a `drop` verdict's `reason`).", "DROP_REASONS", "DropReason", Reason::NAMES),
        const_list("Every event `type` the engine emits.", "ENGINE_EVENT_TYPES", "EngineEventType", Event::TYPES),
        const_list("The states of a flow (`flowStats().state`, `expired` events).", "FLOW_STATES", "FlowState", FlowState::NAMES),
        const_list("How a flow's traffic ended (`flowStats().close`, `expired` events).", "FLOW_CLOSES", "FlowClose", Close::NAMES),
    ]
    .join("\n")
}

#[test]
fn generated_names_are_current() {
    let want = render();
    if std::env::var("GSRA_WRITE_GENERATED").is_ok() {
        std::fs::write(PATH, &want).unwrap();
    }
    let have = std::fs::read_to_string(PATH).unwrap_or_default();
    assert!(have == want, "{} is stale: run GSRA_WRITE_GENERATED=1 cargo test --release --lib typescript in native/", PATH);
}

#[test]
fn every_counter_event_and_state_is_named_once() {
    for names in [Stats::NAMES, Reason::NAMES, Event::TYPES, FlowState::NAMES, Close::NAMES] {
        let mut sorted = names.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), names.len(), "duplicate in {:?}", names);
    }
    assert_eq!(Stats::NAMES.len(), 31);
    assert_eq!(FlowState::Udp.as_str(), "udp");
}
