//! Configuration errors: every one names file, line, column and field path.

use std::fmt;
use std::path::PathBuf;

/// What went wrong, so callers (and tests) can classify an error without parsing its text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The file (or include directory) could not be read.
    Io,
    /// The text is not valid YAML.
    Syntax,
    /// A field name the schema does not know.
    UnknownField,
    /// A required field is absent.
    MissingField,
    /// A value has the wrong type (text where a number is expected, ...).
    WrongType,
    /// A value has the right type but is out of range or malformed.
    InvalidValue,
    /// Two entries share an ID, name or number.
    Duplicate,
    /// A reference to a bot, SIP connection or phone number that is not defined.
    UnknownReference,
    /// A file named by the configuration (certificate, key) does not exist.
    MissingFile,
    /// A `*_env` field names an environment variable that is not set.
    MissingEnv,
    /// Two settings contradict each other (e.g. `token` and `token_env`).
    Conflict,
}

/// One problem in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// File as given to [`super::load`] (include files: joined to the include directory).
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// Field path such as `bots[1].outbound.max_cps` (empty for whole-file problems).
    pub path: String,
    /// Human-readable explanation, without the position prefix.
    pub message: String,
    /// Classification.
    pub kind: ErrorKind,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file.display(), self.line, self.column)?;
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}

/// All problems found while loading; never empty when returned as an error.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    /// The individual errors, in file order.
    pub fn errors(&self) -> &[ConfigError] {
        &self.0
    }
}

impl fmt::Display for ConfigErrors {
    /// One error per line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}
