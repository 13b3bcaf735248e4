//! Topic, filter and client id templates: `%i` becomes the client's index, `%r` its role
//! (`pub`, `sub`, `conn`), `%%` a literal `%`. Expansion is deterministic, so the parent
//! process can recompute every publisher's topic and subscriber's filter for loss
//! accounting without asking the children.

use std::fmt::Write;

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Template {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Index,
    Role,
}

impl Template {
    /// Parses `text`; an unknown `%x` or a trailing `%` is an error.
    pub(crate) fn parse(text: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            if c != '%' {
                literal.push(c);
                continue;
            }
            let part = match chars.next() {
                Some('%') => {
                    literal.push('%');
                    continue;
                }
                Some('i') => Part::Index,
                Some('r') => Part::Role,
                Some(other) => {
                    return Err(format!(
                        "unknown placeholder %{other} in {text:?} (use %i, %r or %%)"
                    ));
                }
                None => {
                    return Err(format!(
                        "{text:?} ends with a lone % (use %% for a literal %)"
                    ));
                }
            };
            if !literal.is_empty() {
                parts.push(Part::Literal(std::mem::take(&mut literal)));
            }
            parts.push(part);
        }
        if !literal.is_empty() {
            parts.push(Part::Literal(literal));
        }
        Ok(Template { parts })
    }

    /// The string for client `index` of role `role`.
    pub(crate) fn expand(&self, index: u64, role: &str) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(s) => out.push_str(s),
                // Writing to a String cannot fail.
                Part::Index => {
                    let _ = write!(out, "{index}");
                }
                Part::Role => out.push_str(role),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substitutes_index_and_role() {
        let t = Template::parse("bench/%r/%i/x").unwrap();
        assert_eq!(t.expand(7, "pub"), "bench/pub/7/x");
        assert_eq!(Template::parse("%i").unwrap().expand(19000, "sub"), "19000");
    }

    #[test]
    fn literal_percent_and_no_placeholders() {
        let t = Template::parse("100%%/out").unwrap();
        assert_eq!(t.expand(3, "pub"), "100%/out");
        assert_eq!(Template::parse("").unwrap().expand(1, "conn"), "");
    }

    #[test]
    fn rejects_unknown_placeholders() {
        assert!(Template::parse("a/%x").unwrap_err().contains("%x"));
        assert!(Template::parse("a/%").unwrap_err().contains("lone"));
    }
}
