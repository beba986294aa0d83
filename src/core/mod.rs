//! Domain types shared by every layer, free of I/O and of tokio: the validated dialout, the
//! machine-detection mode and the SIP transport. `api`, `config`, `call` and `sip` all import
//! these; this module imports nothing of the crate (checked by a test), so the arrows between the
//! layers only ever point here.

pub mod activity;
pub mod dialout;
pub mod leg_dialog;
pub mod session_config;
pub mod srtp;
pub mod transfer;
pub mod transport;

pub use dialout::{AmdMode, DialoutRequest, Target};
pub use leg_dialog::{LegDialog, LegDialogState};
pub use transport::Transport;

#[cfg(test)]
mod tests {
    /// The core stays a leaf: no tokio, no other module of the crate. The call's state machine
    /// uses no tokio either (it may use the core and the AMD result type).
    #[test]
    fn core_imports_nothing_of_the_crate_and_no_tokio() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let machine = root.join("src/call/machine");
        for entry in std::fs::read_dir(&machine).expect("src/call/machine is readable") {
            let path = entry.expect("directory entry").path();
            let text = std::fs::read_to_string(&path).expect("source is readable");
            assert!(
                !text.contains("tokio::") && !text.contains("use tokio"),
                "{}: the call machine must not use tokio",
                path.display()
            );
        }
        let dir = root.join("src/core");
        let mut checked = 0;
        for entry in std::fs::read_dir(&dir).expect("src/core is readable") {
            let path = entry.expect("directory entry").path();
            if path.extension().and_then(|e| e.to_str()) != Some("rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("source is readable");
            // The code above the test module: the test's own strings name what it forbids.
            let code = text.split("#[cfg(test)]").next().unwrap_or("");
            for (n, line) in code.lines().enumerate() {
                let l = line.trim_start();
                let bad = l.contains("tokio::")
                    || l.contains("use tokio")
                    || (l.contains("crate::") && !l.contains("crate::core"));
                assert!(
                    !bad || l.starts_with("//"),
                    "{}:{}: core must not import `{l}`",
                    path.display(),
                    n + 1
                );
            }
            checked += 1;
        }
        assert!(checked >= 3, "the check saw the core's files");
    }
}
