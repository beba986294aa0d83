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

#[test]
fn decoder_keys_are_set_by_name_and_bad_ones_refused() {
    // 1. Known keys take their values; the model name picks the file under data_dir.
    let mut cfg = SttEngineConfig::default();
    cfg.set("model=base").unwrap();
    cfg.set("pad_ms=2000").unwrap();
    cfg.set("initial_prompt=Hello? Hi.").unwrap();
    assert_eq!(cfg.model_file(), PathBuf::from("data/models/ggml-base.bin"));
    assert_eq!(cfg.pad_ms, 2000);
    assert_eq!(cfg.initial_prompt, "Hello? Hi.");
    // 2. An unknown key, a bad value or no `=` is a clear error.
    for bad in ["nope=1", "pad_ms=long", "pad_ms"] {
        let e = cfg.set(bad).unwrap_err();
        assert!(matches!(e, SttError::BadInput(_)), "{bad}: {e}");
    }
    assert_eq!(cfg.pad_ms, 2000);
}
