//! Numbers as English words (American usage: no "and"), for the text normaliser.

const ONES: [&str; 20] = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
];
const TENS: [&str; 10] = [
    "", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety",
];
const SCALES: [(u64, &str); 4] = [
    (1_000_000_000_000, "trillion"),
    (1_000_000_000, "billion"),
    (1_000_000, "million"),
    (1_000, "thousand"),
];

/// Largest number [`cardinal`] reads as a quantity (larger ones are read digit by digit).
pub const MAX_CARDINAL: u64 = 999_999_999_999_999;

fn below_thousand(n: u64, out: &mut Vec<&'static str>) {
    let (h, rest) = (n / 100, n % 100);
    if h > 0 {
        out.push(ONES[h as usize]);
        out.push("hundred");
    }
    if rest >= 20 {
        out.push(TENS[(rest / 10) as usize]);
        if rest % 10 > 0 {
            out.push(ONES[(rest % 10) as usize]);
        }
    } else if rest > 0 || h == 0 {
        out.push(ONES[rest as usize]);
    }
}

/// `1250` → "one thousand two hundred fifty". Beyond [`MAX_CARDINAL`]: digit by digit.
pub fn cardinal(n: u64) -> String {
    if n > MAX_CARDINAL {
        return digits(&n.to_string());
    }
    let mut words = Vec::new();
    let mut rest = n;
    for (scale, name) in SCALES {
        if rest >= scale {
            below_thousand(rest / scale, &mut words);
            words.push(name);
            rest %= scale;
        }
    }
    if rest > 0 || words.is_empty() {
        below_thousand(rest, &mut words);
    }
    words.join(" ")
}

/// Each digit as a word: `"507"` → "five zero seven" (non-digits are skipped).
pub fn digits(s: &str) -> String {
    s.chars()
        .filter_map(|c| c.to_digit(10))
        .map(|d| ONES[d as usize])
        .collect::<Vec<_>>()
        .join(" ")
}

/// `21` → "twenty first", `100` → "one hundredth".
pub fn ordinal(n: u64) -> String {
    let words = cardinal(n);
    let (head, last) = match words.rsplit_once(' ') {
        Some((h, l)) => (format!("{h} "), l),
        None => (String::new(), words.as_str()),
    };
    let last = match last {
        "one" => "first".to_owned(),
        "two" => "second".to_owned(),
        "three" => "third".to_owned(),
        "five" => "fifth".to_owned(),
        "eight" => "eighth".to_owned(),
        "nine" => "ninth".to_owned(),
        "twelve" => "twelfth".to_owned(),
        w if w.ends_with('y') => format!("{}ieth", &w[..w.len() - 1]),
        w => format!("{w}th"),
    };
    format!("{head}{last}")
}

/// A four-digit number as people say years and house numbers: 1999 → "nineteen ninety nine",
/// 1600 → "sixteen hundred", 2005 → "two thousand five", 2024 → "twenty twenty four",
/// 1905 → "nineteen oh five".
pub fn paired(n: u64) -> String {
    if !(1000..=9999).contains(&n) {
        return cardinal(n);
    }
    let (hi, lo) = (n / 100, n % 100);
    if (2000..2010).contains(&n) || hi % 10 == 0 && lo == 0 {
        return cardinal(n);
    }
    match lo {
        0 => format!("{} hundred", cardinal(hi)),
        1..=9 => format!("{} oh {}", cardinal(hi), cardinal(lo)),
        _ => format!("{} {}", cardinal(hi), cardinal(lo)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cardinals() {
        assert_eq!(cardinal(0), "zero");
        assert_eq!(cardinal(7), "seven");
        assert_eq!(cardinal(40), "forty");
        assert_eq!(cardinal(99), "ninety nine");
        assert_eq!(cardinal(100), "one hundred");
        assert_eq!(cardinal(1250), "one thousand two hundred fifty");
        assert_eq!(cardinal(1_000_001), "one million one");
        assert_eq!(cardinal(2_500_000_000), "two billion five hundred million");
    }

    #[test]
    fn ordinals() {
        assert_eq!(ordinal(1), "first");
        assert_eq!(ordinal(2), "second");
        assert_eq!(ordinal(3), "third");
        assert_eq!(ordinal(12), "twelfth");
        assert_eq!(ordinal(20), "twentieth");
        assert_eq!(ordinal(21), "twenty first");
        assert_eq!(ordinal(100), "one hundredth");
        assert_eq!(ordinal(111), "one hundred eleventh");
    }

    #[test]
    fn paired_four_digits() {
        assert_eq!(paired(1999), "nineteen ninety nine");
        assert_eq!(paired(1600), "sixteen hundred");
        assert_eq!(paired(2005), "two thousand five");
        assert_eq!(paired(2000), "two thousand");
        assert_eq!(paired(2024), "twenty twenty four");
        assert_eq!(paired(1905), "nineteen oh five");
        assert_eq!(paired(4521), "forty five twenty one");
        assert_eq!(paired(3000), "three thousand");
    }

    #[test]
    fn digit_strings() {
        assert_eq!(digits("507"), "five zero seven");
        assert_eq!(cardinal(MAX_CARDINAL + 1), digits("1000000000000000"));
    }
}
