//! Telephone numbers: a dialout target written without `+` (`15550100`,
//! `tel:15550100`) is read in the numbering plan of a default country calling
//! code (`default_country` on the bot or trunk) and every number is parsed and
//! checked with libphonenumber's metadata (the `phonenumber` crate) before it
//! is dialled. Plain functions, no I/O.

use phonenumber::country::Id;
use phonenumber::metadata::DATABASE;
use phonenumber::{Mode, ParseError};
use std::str::FromStr;

/// Why a number cannot be dialled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NumberError {
    /// No `+` and no `default_country` to read it with.
    #[error(
        "`{0}` has no country code: write it as +<country code><number> (E.164), or set `default_country` on the bot or its SIP connection"
    )]
    NoCountry(String),
    /// The numbering plan refuses it.
    #[error("`{number}` is not a valid phone number: {why}")]
    Invalid {
        /// The number as written.
        number: String,
        /// What the parser said.
        why: String,
    },
}

/// Whether `code` is a country calling code of the numbering plan.
pub fn known_country_code(code: u16) -> bool {
    DATABASE.by_code(&code).is_some()
}

/// The region whose national rules (trunk prefix, lengths) apply to `code`:
/// its main country, `None` for non-geographic codes (800, 882, …).
fn main_region(code: u16) -> Option<Id> {
    let regions = DATABASE.by_code(&code)?;
    let main = regions
        .iter()
        .find(|m| m.is_main_country_for_code())
        .or(regions.first())?;
    Id::from_str(main.id()).ok()
}

fn why(e: &ParseError) -> String {
    match e {
        ParseError::NoNumber => "it holds no phone number".into(),
        ParseError::InvalidCountryCode => "unknown country calling code".into(),
        ParseError::TooShortNsn | ParseError::TooShortAfterIdd => "too short".into(),
        ParseError::TooLong => "too long".into(),
        other => other.to_string(),
    }
}

/// Reads `number` (digits, optionally with a leading `+`) and returns it in
/// E.164 (`+15550100`). Without `+`, `default_country` supplies the country
/// calling code and that country's trunk prefix is removed (`0301234567` in
/// country 49 → `+49301234567`; `15550100` in country 1 → `+15550100`).
pub fn to_e164(number: &str, default_country: Option<u16>) -> Result<String, NumberError> {
    let invalid = |e: ParseError| NumberError::Invalid {
        number: number.to_owned(),
        why: why(&e),
    };
    if !number.bytes().all(|b| b.is_ascii_digit() || b == b'+') || number.len() > 20 {
        return Err(NumberError::Invalid {
            number: number.to_owned(),
            why: "only digits after an optional leading `+`".into(),
        });
    }
    let parsed = if number.starts_with('+') {
        phonenumber::parse(None, number).map_err(invalid)?
    } else {
        let code = default_country.ok_or_else(|| NumberError::NoCountry(number.to_owned()))?;
        match main_region(code) {
            Some(region) => phonenumber::parse(Some(region), number).map_err(invalid)?,
            None => phonenumber::parse(None, format!("+{code}{number}")).map_err(invalid)?,
        }
    };
    let e164 = parsed.format().mode(Mode::E164).to_string();
    // E.164 allows at most 15 digits after the `+`.
    if e164.len() > 16 {
        return Err(NumberError::Invalid {
            number: number.to_owned(),
            why: "longer than the 15 digits E.164 allows".into(),
        });
    }
    Ok(e164)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_without_plus_take_the_default_country() {
        // 1. North America: the leading 1 is the trunk prefix
        assert_eq!(to_e164("15550100", Some(1)).unwrap(), "+15550100");
        assert_eq!(to_e164("2025550123", Some(1)).unwrap(), "+12025550123");
        // 2. Germany: the trunk prefix 0 is dropped
        assert_eq!(to_e164("0301234567", Some(49)).unwrap(), "+49301234567");
        // 3. the UK
        assert_eq!(to_e164("02079460000", Some(44)).unwrap(), "+442079460000");
    }

    #[test]
    fn e164_numbers_are_kept() {
        assert_eq!(to_e164("+15551234567", None).unwrap(), "+15551234567");
        assert_eq!(to_e164("+15551234567", Some(49)).unwrap(), "+15551234567");
        assert_eq!(to_e164("+49301234567", None).unwrap(), "+49301234567");
    }

    #[test]
    fn refusals_say_why() {
        // 1. no country to read it with
        assert_eq!(
            to_e164("15550100", None),
            Err(NumberError::NoCountry("15550100".into()))
        );
        // 2. an unknown country code, letters, too long
        assert!(matches!(
            to_e164("+99912345678", None),
            Err(NumberError::Invalid { .. })
        ));
        assert!(matches!(
            to_e164("12ab34", Some(1)),
            Err(NumberError::Invalid { .. })
        ));
        assert!(matches!(
            to_e164("+1234567890123456789", None),
            Err(NumberError::Invalid { .. })
        ));
    }

    #[test]
    fn country_codes() {
        assert!(known_country_code(1));
        assert!(known_country_code(44));
        assert!(known_country_code(800));
        assert!(!known_country_code(999));
        assert!(!known_country_code(0));
    }
}
