//! Test fixture: a component built against `remora:plugin@0.1.0`, the
//! contract line before protocol switches. The host (0.2) must refuse to
//! load it and say which versions disagree.

wit_bindgen::generate!({ path: "wit", world: "dissector-plugin" });

struct Plugin;

impl exports::remora::plugin::dissector::Guest for Plugin {
    fn describe() -> String {
        "test-legacy".into()
    }
}

export!(Plugin);
