//! Test fixture: a component built against `remora:plugin@0.8.0` (a contract
//! version the host does not speak). The host must refuse to load it and say why.

wit_bindgen::generate!({ path: "wit", world: "dissector-plugin" });

struct Plugin;

impl exports::remora::plugin::dissector::Guest for Plugin {
    fn describe() -> String {
        "test-future".into()
    }
}

export!(Plugin);
