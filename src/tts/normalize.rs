//! Text normaliser ("SSML-lite"): turns what a bot writes into what a person would say, so the
//! phonemiser never has to guess. Handles common abbreviations, phone numbers, times, currency,
//! percentages, ordinals, decimals and plain numbers; everything else passes through.
//!
//! Why our own: espeak-ng reads "$12.50" as "dollar twelve point five zero" and "555-123-4567" as
//! a subtraction; the voice was trained on text read naturally.

use std::sync::LazyLock;

use regex_lite::{Captures, Regex};

use super::numbers::{cardinal, digits, ordinal, paired};

/// Normalise `text` for speech. Pure and deterministic.
pub fn normalize(text: &str) -> String {
    let text = collapse_whitespace(text);
    let text = expand_abbreviations(&text);
    let text = replace(&NUMBER_SIGN, &text, |c| format!("number {}", &c[1]));
    let text = phone_numbers(&text);
    let text = times(&text);
    let text = currency(&text);
    let text = replace(&PERCENT, &text, |c| {
        format!("{} percent", decimal_words(&c[1]))
    });
    let text = replace(&ORDINAL, &text, |c| match c[1].parse::<u64>() {
        Ok(n) => ordinal(n),
        Err(_) => c[0].to_owned(),
    });
    let text = replace(&DECIMAL, &text, |c| decimal_words(&c[0]));
    let text = replace(&GROUPED, &text, |c| grouped_words(&c[0]));
    let text = replace(&INTEGER, &text, |c| integer_words(&c[0]));
    let text = symbols(&text);
    collapse_whitespace(&text)
}

fn collapse_whitespace(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn re(pattern: &str) -> Regex {
    // The patterns are literals of this file, checked by the unit tests.
    Regex::new(pattern).unwrap_or_else(|e| panic!("normaliser pattern {pattern:?}: {e}"))
}

fn replace(re: &Regex, text: &str, f: impl Fn(&Captures<'_>) -> String) -> String {
    re.replace_all(text, |c: &Captures<'_>| f(c)).into_owned()
}

static PHONE_NANP: LazyLock<Regex> = LazyLock::new(|| {
    re(r"(?:\+(\d{1,3})[\s.-]?)?(?:\((\d{3})\)\s?|\b(\d{3})[\s.-])(\d{3})[\s.-](\d{4})\b")
});
static PHONE_E164: LazyLock<Regex> = LazyLock::new(|| re(r"\+(\d{10,15})\b"));
static PHONE_LOCAL: LazyLock<Regex> = LazyLock::new(|| re(r"\b(\d{3})-(\d{4})\b"));
static TIME_MERIDIEM: LazyLock<Regex> =
    LazyLock::new(|| re(r"\b(\d{1,2})(?:[:.](\d{2}))?\s?([AaPp])\.?\s?[Mm]\b(\.)?"));
static TIME_24: LazyLock<Regex> = LazyLock::new(|| re(r"\b(\d{1,2}):(\d{2})\b"));
static CURRENCY: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"([$€£])\s?(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d{1,2}))?\b(?:\s(thousand|million|billion|trillion)\b)?",
    )
});
static NUMBER_SIGN: LazyLock<Regex> = LazyLock::new(|| re(r"#\s?(\d)"));
static PERCENT: LazyLock<Regex> = LazyLock::new(|| re(r"(\d+(?:\.\d+)?)\s?%"));
static ORDINAL: LazyLock<Regex> = LazyLock::new(|| re(r"\b(\d+)(?:st|nd|rd|th|ST|ND|RD|TH)\b"));
static DECIMAL: LazyLock<Regex> = LazyLock::new(|| re(r"\b\d+\.\d+\b"));
static GROUPED: LazyLock<Regex> = LazyLock::new(|| re(r"\b\d{1,3}(?:,\d{3})+\b"));
static INTEGER: LazyLock<Regex> = LazyLock::new(|| re(r"\b\d+\b"));

/// Digits read in groups with a pause between: "five five five, one two three, four five six
/// seven".
fn phone_numbers(text: &str) -> String {
    let read = |country: Option<&str>, groups: &[&str]| {
        let mut parts: Vec<String> = Vec::new();
        if let Some(cc) = country {
            parts.push(format!("plus {}", digits(cc)));
        }
        parts.extend(groups.iter().map(|g| digits(g)));
        parts.join(", ")
    };
    let text = replace(&PHONE_NANP, text, |c| {
        let area = c.get(2).or(c.get(3)).map_or("", |m| m.as_str());
        read(c.get(1).map(|m| m.as_str()), &[area, &c[4], &c[5]])
    });
    let text = replace(&PHONE_E164, &text, |c| {
        let d = &c[1];
        // +1 NANP numbers: country code, area code, exchange, line. Others: a 1–3 digit
        // country code before a 10-digit national number read 3-3-4, else 2 and threes.
        if d.len() == 11 && d.starts_with('1') {
            read(Some("1"), &[&d[1..4], &d[4..7], &d[7..]])
        } else if (11..=13).contains(&d.len()) {
            let (cc, n) = d.split_at(d.len() - 10);
            read(Some(cc), &[&n[..3], &n[3..6], &n[6..]])
        } else {
            let (cc, n) = d.split_at(2);
            let groups: Vec<&str> = n
                .as_bytes()
                .chunks(3)
                .filter_map(|g| std::str::from_utf8(g).ok())
                .collect();
            read(Some(cc), &groups)
        }
    });
    replace(&PHONE_LOCAL, &text, |c| read(None, &[&c[1], &c[2]]))
}

/// "3:45 pm" → "three forty five p m", "10:00" → "ten o'clock", "9am" → "nine a m",
/// "14:30" → "fourteen thirty". Out-of-range values are left alone.
fn times(text: &str) -> String {
    let text = TIME_MERIDIEM
        .replace_all(text, |c: &Captures<'_>| {
            let minute = c.get(2).map(|m| m.as_str());
            let Some(mut words) = time_words(&c[1], minute, true) else {
                return c[0].to_owned();
            };
            words.push_str(&format!(" {} m", c[3].to_ascii_lowercase()));
            // "… at 9 a.m." ending a sentence keeps its full stop for the sentence splitter.
            let rest = &text[c.get(0).map_or(text.len(), |m| m.end())..];
            if c.get(4).is_some() && sentence_follows(rest) {
                words.push('.');
            }
            words
        })
        .into_owned();
    replace(&TIME_24, &text, |c| {
        time_words(&c[1], Some(&c[2]), false).unwrap_or_else(|| c[0].to_owned())
    })
}

/// True when `rest` (the text after a full stop) is empty or starts a new sentence.
fn sentence_follows(rest: &str) -> bool {
    let rest = rest.trim_start();
    rest.is_empty() || rest.chars().next().is_some_and(char::is_uppercase)
}

fn time_words(hour: &str, minute: Option<&str>, twelve_hour: bool) -> Option<String> {
    let hour: u64 = hour.parse().ok()?;
    let minute: Option<u64> = match minute {
        Some(m) => Some(m.parse().ok()?),
        None => None,
    };
    if hour > 23 || (twelve_hour && !(1..=12).contains(&hour)) || minute.is_some_and(|m| m > 59) {
        return None;
    }
    let mut words = cardinal(hour);
    match minute {
        Some(0) | None if !twelve_hour => {
            words.push_str(if hour <= 12 { " o'clock" } else { " hundred" })
        }
        Some(0) | None => {}
        Some(m) if m < 10 => words.push_str(&format!(" oh {}", cardinal(m))),
        Some(m) => words.push_str(&format!(" {}", cardinal(m))),
    }
    Some(words)
}

fn currency(text: &str) -> String {
    replace(&CURRENCY, text, |c| {
        let (unit, units, sub, subs) = match &c[1] {
            "€" => ("euro", "euros", "cent", "cents"),
            "£" => ("pound", "pounds", "penny", "pence"),
            _ => ("dollar", "dollars", "cent", "cents"),
        };
        let whole: u64 = c[2].replace(',', "").parse().unwrap_or(0);
        let fraction = c.get(3).map(|m| m.as_str());
        if let Some(scale) = c.get(4) {
            // "$2.5 million" → "two point five million dollars"
            let amount = match fraction {
                Some(f) => format!("{} point {}", cardinal(whole), digits(f)),
                None => cardinal(whole),
            };
            return format!("{amount} {} {units}", scale.as_str());
        }
        let cents: u64 = match fraction {
            Some(f) if f.len() == 1 => f.parse::<u64>().unwrap_or(0) * 10,
            Some(f) => f.parse().unwrap_or(0),
            None => 0,
        };
        let name = |n: u64, one: &str, many: &str| {
            format!("{} {}", cardinal(n), if n == 1 { one } else { many })
        };
        match (whole, cents) {
            (0, 0) => name(0, unit, units),
            (0, c) => name(c, sub, subs),
            (w, 0) => name(w, unit, units),
            (w, c) => format!("{} and {}", name(w, unit, units), name(c, sub, subs)),
        }
    })
}

/// "3.75" → "three point seven five".
fn decimal_words(s: &str) -> String {
    match s.split_once('.') {
        Some((int, frac)) => format!("{} point {}", integer_words(int), digits(frac)),
        None => integer_words(s),
    }
}

fn grouped_words(s: &str) -> String {
    match s.replace(',', "").parse::<u64>() {
        Ok(n) => cardinal(n),
        Err(_) => digits(s),
    }
}

/// Plain digit strings: up to three digits as a quantity, four as a year or house number
/// ("forty five twenty one"), longer ones and those with a leading zero (zip codes, order and
/// account numbers) digit by digit.
fn integer_words(s: &str) -> String {
    if s.len() > 1 && s.starts_with('0') || s.len() >= 5 {
        return digits(s);
    }
    match s.parse::<u64>() {
        Ok(n) if s.len() == 4 => paired(n),
        Ok(n) => cardinal(n),
        Err(_) => digits(s),
    }
}

fn symbols(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => out.push_str(" and "),
            '@' => out.push_str(" at "),
            '+' => out.push_str(" plus "),
            '=' => out.push_str(" equals "),
            // Quotes and brackets carry no sound; dashes between words are pauses.
            '"' | '“' | '”' | '*' | '_' | '[' | ']' | '{' | '}' => out.push(' '),
            '–' | '—' => out.push_str(", "),
            _ => out.push(ch),
        }
    }
    out
}

/// Abbreviations that are always followed by a name: never the end of a sentence.
const TITLES: [(&str, &str); 8] = [
    ("Mr", "Mister"),
    ("Mrs", "Missus"),
    ("Ms", "Miss"),
    ("Dr", "Doctor"),
    ("Prof", "Professor"),
    ("Capt", "Captain"),
    ("Sgt", "Sergeant"),
    ("Rev", "Reverend"),
];

/// Abbreviations expanded when written with their full stop (without it they may be words).
const DOTTED: [(&str, &str); 31] = [
    ("Jr", "Junior"),
    ("Sr", "Senior"),
    ("Ave", "Avenue"),
    ("Blvd", "Boulevard"),
    ("Rd", "Road"),
    ("Ln", "Lane"),
    ("Hwy", "Highway"),
    ("Apt", "Apartment"),
    ("Ste", "Suite"),
    ("Dept", "Department"),
    ("Mt", "Mount"),
    ("etc", "et cetera"),
    ("vs", "versus"),
    ("approx", "approximately"),
    ("Inc", "Incorporated"),
    ("Ltd", "Limited"),
    ("Corp", "Corporation"),
    ("e.g", "for example"),
    ("i.e", "that is"),
    ("Jan", "January"),
    ("Feb", "February"),
    ("Mar", "March"),
    ("Apr", "April"),
    ("Jun", "June"),
    ("Jul", "July"),
    ("Aug", "August"),
    ("Sep", "September"),
    ("Sept", "September"),
    ("Oct", "October"),
    ("Nov", "November"),
    ("Dec", "December"),
];

/// Units, expanded after a number.
const UNITS: [(&str, &str); 12] = [
    ("km", "kilometers"),
    ("kg", "kilograms"),
    ("lb", "pounds"),
    ("lbs", "pounds"),
    ("ft", "feet"),
    ("mi", "miles"),
    ("mph", "miles per hour"),
    ("min", "minutes"),
    ("mins", "minutes"),
    ("hr", "hours"),
    ("hrs", "hours"),
    ("sec", "seconds"),
];

fn starts_upper(word: Option<&&str>) -> bool {
    word.and_then(|w| w.chars().find(|c| c.is_alphanumeric()))
        .is_some_and(char::is_uppercase)
}

fn starts_digit(word: Option<&&str>) -> bool {
    word.and_then(|w| w.chars().next())
        .is_some_and(|c| c.is_ascii_digit())
}

/// Word-by-word: an abbreviation's meaning depends on its neighbours ("St." after a street
/// name is Street, before a name Saint; "No." before a number is "number").
fn expand_abbreviations(text: &str) -> String {
    let words: Vec<&str> = text.split(' ').collect();
    let mut out: Vec<String> = Vec::with_capacity(words.len());
    for (i, word) in words.iter().enumerate() {
        let (prev, next) = (
            i.checked_sub(1).and_then(|p| words.get(p)),
            words.get(i + 1),
        );
        let trimmed = word.trim_end_matches([',', ';', ':', '!', '?']);
        let trailing = &word[trimmed.len()..];
        let (core, dotted) = match trimmed.strip_suffix('.') {
            Some(c) => (c, true),
            None => (trimmed, false),
        };
        // A dotted abbreviation that ends the sentence keeps its full stop for the splitter.
        let stop = if dotted && (next.is_none() || starts_upper(next)) {
            "."
        } else {
            ""
        };
        let expansion = if let Some((_, full)) = TITLES.iter().find(|(a, _)| *a == core) {
            starts_upper(next).then(|| (full.to_string(), ""))
        } else if core == "St" {
            let street = starts_upper(prev) || starts_digit(prev);
            let saint = !street && starts_upper(next);
            (street || saint).then(|| {
                let full = if street { "Street" } else { "Saint" };
                (full.to_string(), if street { stop } else { "" })
            })
        } else if (core == "No" || core == "no") && dotted && starts_digit(next) {
            Some(("number".to_string(), ""))
        } else if let Some((_, full)) = UNITS.iter().find(|(a, _)| *a == core) {
            starts_digit(prev).then(|| (full.to_string(), stop))
        } else if dotted {
            DOTTED
                .iter()
                .find(|(a, _)| a.eq_ignore_ascii_case(core) && (a.len() > 1))
                .map(|(_, full)| (full.to_string(), stop))
        } else {
            None
        };
        match expansion {
            Some((full, stop)) => out.push(format!("{full}{stop}{trailing}")),
            None => out.push((*word).to_owned()),
        }
    }
    out.join(" ")
}

#[cfg(test)]
mod tests {
    use super::normalize as n;

    #[test]
    fn plain_numbers() {
        assert_eq!(n("I have 3 cats."), "I have three cats.");
        assert_eq!(
            n("It costs 250 points"),
            "It costs two hundred fifty points"
        );
        assert_eq!(
            n("We shipped 1,250,000 units"),
            "We shipped one million two hundred fifty thousand units"
        );
        assert_eq!(n("Pi is about 3.14"), "Pi is about three point one four");
        assert_eq!(n("Zip code 90210."), "Zip code nine zero two one zero.");
        assert_eq!(n("Agent 007"), "Agent zero zero seven");
    }

    #[test]
    fn years_and_house_numbers() {
        assert_eq!(n("Since 1999"), "Since nineteen ninety nine");
        assert_eq!(n("In 2024 we"), "In twenty twenty four we");
        assert_eq!(n("in 2005"), "in two thousand five");
        assert_eq!(
            n("I live at 4521 Oak St. in Springfield."),
            "I live at forty five twenty one Oak Street in Springfield."
        );
    }

    #[test]
    fn currency() {
        assert_eq!(
            n("That is $12.50"),
            "That is twelve dollars and fifty cents"
        );
        assert_eq!(n("Only $1 today"), "Only one dollar today");
        assert_eq!(n("$0.99"), "ninety nine cents");
        assert_eq!(n("$1,250"), "one thousand two hundred fifty dollars");
        assert_eq!(n("$3.5"), "three dollars and fifty cents");
        assert_eq!(
            n("€20 and £1.01"),
            "twenty euros and one pound and one penny"
        );
        assert_eq!(
            n("a $2.5 million grant"),
            "a two point five million dollars grant"
        );
        assert_eq!(
            n("You owe $45.20."),
            "You owe forty five dollars and twenty cents."
        );
    }

    #[test]
    fn times() {
        assert_eq!(n("Call at 3:45 pm"), "Call at three forty five p m");
        assert_eq!(n("at 10:00 AM"), "at ten a m");
        assert_eq!(n("by 9am tomorrow"), "by nine a m tomorrow");
        assert_eq!(n("at 9 a.m. tomorrow"), "at nine a m tomorrow");
        assert_eq!(n("See you at 9 a.m. Bye."), "See you at nine a m. Bye.");
        assert_eq!(n("at 10:05"), "at ten oh five");
        assert_eq!(n("at 3.45pm"), "at three forty five p m");
        assert_eq!(n("at 14:30"), "at fourteen thirty");
        assert_eq!(n("at 12:00"), "at twelve o'clock");
        assert_eq!(n("at 18:00"), "at eighteen hundred");
        // Not a time: left to the number rules.
        assert_eq!(n("ratio 25:99"), "ratio twenty five:ninety nine");
    }

    #[test]
    fn phone_numbers() {
        assert_eq!(
            n("Call 555-123-4567 now"),
            "Call five five five, one two three, four five six seven now"
        );
        assert_eq!(
            n("Call (555) 123-4567."),
            "Call five five five, one two three, four five six seven."
        );
        assert_eq!(
            n("Dial +1 555 123 4567"),
            "Dial plus one, five five five, one two three, four five six seven"
        );
        assert_eq!(
            n("or +15551234567."),
            "or plus one, five five five, one two three, four five six seven."
        );
        assert_eq!(n("Ext 555-0199"), "Ext five five five, zero one nine nine");
        assert_eq!(
            n("+442079460958"),
            "plus four four, two zero seven, nine four six, zero nine five eight"
        );
    }

    #[test]
    fn ordinals_and_percent() {
        assert_eq!(n("the 1st and 2nd"), "the first and second");
        assert_eq!(n("on the 23rd floor"), "on the twenty third floor");
        assert_eq!(n("the 100th caller"), "the one hundredth caller");
        assert_eq!(n("a 15% discount"), "a fifteen percent discount");
        assert_eq!(n("2.5% APR"), "two point five percent APR");
    }

    #[test]
    fn abbreviations() {
        assert_eq!(n("Dr. Smith is in."), "Doctor Smith is in.");
        assert_eq!(n("Mr Jones and Mrs. Lee"), "Mister Jones and Missus Lee");
        assert_eq!(n("St. Louis"), "Saint Louis");
        assert_eq!(n("Meet on Main St."), "Meet on Main Street.");
        assert_eq!(n("See No. 5"), "See number five");
        assert_eq!(
            n("apples, pears, etc. and more"),
            "apples, pears, et cetera and more"
        );
        assert_eq!(n("Apt. 4B"), "Apartment 4B");
        assert_eq!(n("It is 5 km away"), "It is five kilometers away");
        assert_eq!(n("Acme Inc. Thanks"), "Acme Incorporated. Thanks");
        assert_eq!(n("Tom & Jerry"), "Tom and Jerry");
        assert_eq!(n("order #42"), "order number forty two");
    }

    #[test]
    fn plain_text_passes_through() {
        let s = "Hi there, we are calling from Acme about your order. Is now a good time?";
        assert_eq!(n(s), s);
        assert_eq!(n("  spaced\n out\ttext "), "spaced out text");
        assert_eq!(n(""), "");
    }
}
