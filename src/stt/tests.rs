//! Module-level tests that need no model.

use super::*;

#[test]
fn default_model_path_is_under_data_dir() {
    let cfg = SttEngineConfig {
        data_dir: "/var/lib/dialgate".into(),
        ..Default::default()
    };
    assert_eq!(
        cfg.model_file(),
        PathBuf::from("/var/lib/dialgate/models/ggml-tiny.en.bin")
    );
}

#[test]
fn errors_are_never_fatal_for_a_call() {
    assert!(!SttError::Capacity(3).is_fatal_for_call());
    assert!(SttError::Capacity(3).is_transient());
    assert!(!SttError::Unavailable("x".into()).is_transient());
}
