//! Translation of RabbitMQ topic-permission regexes into MQTT topic filters, where the
//! translation is exact (or differs only as documented below); everything else is refused.
//!
//! RabbitMQ's MQTT plugin turns the MQTT topic `a/b.c` into the routing key `a.b/c` (`/` and
//! `.` swap), and a subscription `a/+/#` into the binding key `a.*.#`; topic permissions are
//! PCRE regexes, searched (not anchored) in those keys. So `\.` in a regex is our level
//! separator and a literal `/` is a `.` inside one of our levels.
//!
//! Accepted grammar, after expanding alternations (`(a|b)`, `(?:a|b)`, top-level `a|b`;
//! at most [`MAX_FILTERS`] results):
//! - `^` first (required, except for the match-everything forms);
//! - levels separated by `\.`, each either literal text (letters, digits, `-`, `_`, `/`,
//!   `{username}`-style placeholders, and backslash-escaped punctuation), `[^.]+` or `[^.]*`
//!   (one level: `+`), or a final `.*` (`#`);
//! - `$` last, or no `$` when the regex ends in `.*` or `\.` (a prefix of whole levels).
//!
//! Documented approximations: `[^.]+` becomes `+`, which also matches an empty level; and
//! `^a\..*` becomes `a/#`, which also matches `a` itself.

use ferrymq_topic::{TopicLimits, validate_topic_filter};

/// Most filters one regex may expand to; more means the regex is refused.
pub(crate) const MAX_FILTERS: usize = 32;

/// The result of translating one regex.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Translation {
    /// Matches nothing a client can use (`^$`, the empty regex).
    Nothing,
    /// Exactly these filters.
    Filters(Vec<String>),
}

/// Does this regex match every string? (`.*`, `^.*`, `^.*$`, `.*$`.)
pub(crate) fn matches_everything(regex: &str) -> bool {
    matches!(regex, ".*" | "^.*" | "^.*$" | ".*$")
}

/// Does this regex match only the empty string, which RabbitMQ uses to grant nothing?
pub(crate) fn matches_nothing(regex: &str) -> bool {
    matches!(regex, "" | "^$")
}

/// Translates a topic-permission regex; `Err` names what could not be translated.
pub(crate) fn translate(regex: &str) -> Result<Translation, String> {
    if matches_nothing(regex) {
        return Ok(Translation::Nothing);
    }
    if matches_everything(regex) {
        return Ok(Translation::Filters(vec!["#".to_owned()]));
    }
    let mut parser = Parser {
        chars: regex.chars().collect(),
        pos: 0,
        depth: 0,
    };
    let alternatives = parser.alternation()?;
    if parser.pos != parser.chars.len() {
        return Err(format!("unexpected ')' at position {}", parser.pos));
    }
    let mut filters = Vec::new();
    for tokens in alternatives {
        let filter = to_filter(&tokens)?;
        if !filters.contains(&filter) {
            filters.push(filter);
        }
    }
    Ok(Translation::Filters(filters))
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Start,
    End,
    /// `\.`: a level separator.
    Separator,
    /// A character of a level (already mapped from routing-key to MQTT form).
    Literal(char),
    /// `[^.]+` or `[^.]*`.
    Level,
    /// `.*`.
    AnyStar,
}

/// Recursive-descent parser over the accepted subset; every alternative is expanded as it
/// is parsed, so the result is a list of token sequences.
struct Parser {
    chars: Vec<char>,
    pos: usize,
    depth: usize,
}

/// Groups nest at most this deep: bounds the recursion on hostile input.
const MAX_DEPTH: usize = 8;

impl Parser {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn eat(&mut self, text: &str) -> bool {
        let len = text.chars().count();
        let matches = self
            .chars
            .get(self.pos..self.pos + len)
            .is_some_and(|window| window.iter().copied().eq(text.chars()));
        if matches {
            self.pos += len;
        }
        matches
    }

    /// alternation := sequence ('|' sequence)*
    fn alternation(&mut self) -> Result<Vec<Vec<Token>>, String> {
        let mut all = self.sequence()?;
        while self.eat("|") {
            all.extend(self.sequence()?);
            if all.len() > MAX_FILTERS {
                return Err(format!("expands to more than {MAX_FILTERS} filters"));
            }
        }
        Ok(all)
    }

    /// sequence := item*, as the cartesian product of the items' alternatives.
    fn sequence(&mut self) -> Result<Vec<Vec<Token>>, String> {
        let mut prefixes: Vec<Vec<Token>> = vec![Vec::new()];
        while let Some(c) = self.peek() {
            let options: Vec<Vec<Token>> = match c {
                '|' | ')' => break,
                '(' => {
                    self.pos += 1;
                    self.eat("?:");
                    self.depth += 1;
                    if self.depth > MAX_DEPTH {
                        return Err("groups nest too deeply".to_owned());
                    }
                    let inner = self.alternation()?;
                    self.depth -= 1;
                    if !self.eat(")") {
                        return Err("unclosed '('".to_owned());
                    }
                    inner
                }
                _ => vec![self.atom()?],
            };
            if self
                .peek()
                .is_some_and(|c| matches!(c, '*' | '+' | '?' | '{'))
                && !self.placeholder_ahead()
            {
                return Err(format!("quantifier at position {}", self.pos));
            }
            let mut next = Vec::with_capacity(prefixes.len() * options.len());
            for prefix in &prefixes {
                for option in &options {
                    let mut joined = prefix.clone();
                    joined.extend(option.iter().cloned());
                    next.push(joined);
                }
            }
            if next.len() > MAX_FILTERS {
                return Err(format!("expands to more than {MAX_FILTERS} filters"));
            }
            prefixes = next;
        }
        Ok(prefixes)
    }

    fn placeholder_ahead(&self) -> bool {
        PLACEHOLDERS.iter().any(|p| {
            self.chars
                .get(self.pos..self.pos + p.len())
                .is_some_and(|window| window.iter().copied().eq(p.chars()))
        })
    }

    /// One atom: usually one token, a placeholder several literal ones.
    fn atom(&mut self) -> Result<Vec<Token>, String> {
        if self.eat("[^.]+") || self.eat("[^.]*") {
            return Ok(vec![Token::Level]);
        }
        if self.eat(".*") {
            return Ok(vec![Token::AnyStar]);
        }
        for placeholder in PLACEHOLDERS {
            if self.eat(placeholder) {
                // Ours have the same names, so they stay as text.
                return Ok(placeholder.chars().map(Token::Literal).collect());
            }
        }
        let c = self.peek().ok_or("unexpected end")?;
        self.pos += 1;
        let token = match c {
            '^' => Token::Start,
            '$' => Token::End,
            '\\' => {
                let escaped = self.peek().ok_or("trailing backslash")?;
                self.pos += 1;
                match escaped {
                    '.' => Token::Separator,
                    c if c.is_ascii_punctuation() => literal(c)?,
                    c => return Err(format!("escape \\{c} is not a literal character")),
                }
            }
            '.' => {
                return Err("'.' matches any character; write '\\.' for a level separator".into());
            }
            // PCRE's metacharacters outside a class; a lone '}' is literal.
            '[' | ']' | '|' | '(' | ')' | '?' | '*' | '+' | '{' => {
                return Err(format!(
                    "{c:?} at position {} is not translatable",
                    self.pos - 1
                ));
            }
            c => literal(c)?,
        };
        Ok(vec![token])
    }
}

/// The placeholders RabbitMQ expands in topic permissions; ours have the same names.
const PLACEHOLDERS: [&str; 3] = ["{username}", "{client_id}", "{vhost}"];

/// A literal routing-key character in MQTT form: `/` in a routing key is `.` in MQTT.
fn literal(c: char) -> Result<Token, String> {
    match c {
        '/' => Ok(Token::Literal('.')),
        '+' | '#' | '*' | '\0' => Err(format!("{c:?} cannot occur in an MQTT topic level")),
        c => Ok(Token::Literal(c)),
    }
}

/// One expanded alternative to one filter.
fn to_filter(tokens: &[Token]) -> Result<String, String> {
    let Some((Token::Start, mut body)) = tokens.split_first() else {
        return Err("not anchored with '^'".to_owned());
    };
    let anchored_end = matches!(body.last(), Some(Token::End));
    if anchored_end {
        body = &body[..body.len() - 1];
    }
    if body.iter().any(|t| matches!(t, Token::Start | Token::End)) {
        return Err("'^' or '$' in the middle".to_owned());
    }
    let mut levels: Vec<&[Token]> = body.split(|t| *t == Token::Separator).collect();
    if !anchored_end {
        // A regex is searched, so without `$` it matches any continuation: only a prefix of
        // whole levels (ending in `\.` or `.*`) is a filter.
        let count = levels.len();
        let ends_in_any = body.last() == Some(&Token::AnyStar);
        match levels.last_mut() {
            Some(last) if last.is_empty() && count > 1 => *last = &[Token::AnyStar],
            _ if ends_in_any => {}
            _ => return Err("without '$' it also matches longer level names".to_owned()),
        }
    }
    let count = levels.len();
    let mut out = Vec::with_capacity(count);
    for (i, level) in levels.iter().enumerate() {
        out.push(match level {
            [Token::Level] => "+".to_owned(),
            [Token::AnyStar] if i + 1 == count => "#".to_owned(),
            tokens => tokens
                .iter()
                .map(|t| match t {
                    Token::Literal(c) => Ok(*c),
                    _ => Err("a wildcard shares a level with text".to_owned()),
                })
                .collect::<Result<String, String>>()?,
        });
    }
    let filter = out.join("/");
    validate_topic_filter(&filter, &TopicLimits::default())
        .map_err(|e| format!("translates to {filter:?}, which is not a topic filter: {e}"))?;
    Ok(filter)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filters(regex: &str) -> Vec<String> {
        match translate(regex) {
            Ok(Translation::Filters(f)) => f,
            other => panic!("{regex:?} gave {other:?}"),
        }
    }

    #[test]
    fn translatable_regexes() {
        let table: &[(&str, &[&str])] = &[
            (".*", &["#"]),
            ("^.*$", &["#"]),
            (r"^devices\..*", &["devices/#"]),
            (r"^devices\..*$", &["devices/#"]),
            (r"^devices\.", &["devices/#"]),
            (r"^devices\.[^.]+\.cmd$", &["devices/+/cmd"]),
            (r"^devices\.[^.]*$", &["devices/+"]),
            (r"^devices\.{client_id}\..*", &["devices/{client_id}/#"]),
            (r"^u\.{username}\.x-{vhost}$", &["u/{username}/x-{vhost}"]),
            (r"^(a|b)\..*", &["a/#", "b/#"]),
            (r"^(?:a|b)\.(c|d)$", &["a/c", "a/d", "b/c", "b/d"]),
            (r"^a\..*|^b$", &["a/#", "b"]),
            (r"^a\.b/c$", &["a/b.c"]),
            (r"^a\.\.b$", &["a//b"]),
            (r"^a\-b_c\.x$", &["a-b_c/x"]),
            (r"^(a|a)$", &["a"]),
            (r"^a b:c@d\.x}$", &["a b:c@d/x}"]),
        ];
        for (regex, expected) in table {
            assert_eq!(filters(regex), *expected, "{regex}");
        }
    }

    #[test]
    fn nothing_regexes() {
        assert_eq!(translate(""), Ok(Translation::Nothing));
        assert_eq!(translate("^$"), Ok(Translation::Nothing));
    }

    #[test]
    fn untranslatable_regexes() {
        for regex in [
            r"devices\..*",   // unanchored: matches "xdevices.y"
            r"^devices.*",    // matches "devicesX"
            r"^devices",      // prefix of a level name
            r"^devices\.abc", // ditto, one level down
            r"^devices\.[a-z]+$",
            r"^a\..*\.b$", // `.*` in the middle spans levels
            r"^a.b$",      // unescaped '.'
            r"^a\.b+$",    // quantifier
            r"^a\.\d$",    // character class escape
            r"^a\.\+$",    // '+' cannot be in a topic level
            r"^(a|b",      // unclosed group
            r"^a)$",
            r"^a$b",
            r"^a\.x{2}$",                        // counted repetition
            r"^(a|b)(c|d)(e|f)(g|h)(i|j)(k|l)$", // 64 alternatives
            "^a\\",
            "^((((((((((a))))))))))$",
            "^(a|)$", // the empty topic
            "^",
            r"^a\.x\*$",
        ] {
            assert!(
                translate(regex).is_err(),
                "{regex:?} gave {:?}",
                translate(regex)
            );
        }
    }

    proptest::proptest! {
        /// Regexes come from a file the operator did not write: never panic.
        #[test]
        fn arbitrary_regexes_never_panic(regex in r"[\^$.*+?()|\[\]{}a-z\\/-]{0,30}") {
            if let Ok(Translation::Filters(filters)) = translate(&regex) {
                for filter in filters {
                    proptest::prop_assert!(
                        validate_topic_filter(&filter, &TopicLimits::default()).is_ok()
                    );
                }
            }
        }
    }
}
