//! Syntax checks for topic names, topic filters and shared-subscription filters.
//!
//! Everything here runs on strings a client sent, so it never panics and checks the cheap,
//! bounding properties (emptiness, length, level count) before looking at individual levels.
//! It only decides legality; what a filter *matches* lives in `matcher`.

/// Configured bounds on topic names and filters, applied on top of the spec's own rules.
///
/// The spec allows 65,535 bytes [MQTT-4.7.3-3] and any number of levels; a broker holding
/// a million subscriptions cannot afford that per entry, and the trie recurses once per level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicLimits {
    /// Longest accepted topic name or filter, in bytes of UTF-8.
    pub max_topic_length: usize,
    /// Most accepted topic levels (the number of `/` separators plus one).
    pub max_topic_levels: usize,
}

impl Default for TopicLimits {
    /// 4,096 bytes and 128 levels: far above what real applications use, small enough that a
    /// hostile client cannot make one subscription expensive.
    fn default() -> Self {
        Self {
            max_topic_length: 4096,
            max_topic_levels: 128,
        }
    }
}

/// Why a topic name or topic filter was refused. Messages name the spec rule they enforce.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    /// The string is empty.
    #[error("topic names and topic filters must be at least one character long [MQTT-4.7.3-1]")]
    Empty,
    /// The string is longer than [`TopicLimits::max_topic_length`].
    #[error("topic is {len} bytes long, above the configured limit of {max} bytes")]
    TooLong {
        /// Length of the refused string, in bytes.
        len: usize,
        /// The configured limit.
        max: usize,
    },
    /// The string has more levels than [`TopicLimits::max_topic_levels`].
    #[error("topic has {levels} levels, above the configured limit of {max} levels")]
    TooManyLevels {
        /// Number of levels of the refused string.
        levels: usize,
        /// The configured limit.
        max: usize,
    },
    /// A topic name (PUBLISH, will topic) contains `+` or `#`.
    #[error("a topic name must not contain the wildcard characters '+' or '#' [MQTT-3.3.2-2]")]
    WildcardInTopicName,
    /// A wildcard does not occupy a whole level, or `#` is not the last level.
    #[error(
        "'+' must occupy an entire topic level [MQTT-4.7.1-3]; '#' must occupy an entire level \
         and be the last level of the filter [MQTT-4.7.1-2]"
    )]
    InvalidWildcard,
    /// The string contains U+0000.
    #[error(
        "topic names and topic filters must not contain the null character U+0000 [MQTT-4.7.3-2]"
    )]
    NullCharacter,
    /// A filter starting with `$share/` is not `$share/{ShareName}/{filter}` with a non-empty
    /// ShareName free of `/`, `+` and `#`, followed by a non-empty filter.
    #[error(
        "a shared subscription must be $share/{{ShareName}}/{{filter}} with a non-empty ShareName \
         that contains no '/', '+' or '#', followed by a topic filter [MQTT-4.8.2-1] [MQTT-4.8.2-2]"
    )]
    InvalidSharedSubscription,
}

/// The prefix that marks a shared subscription [MQTT-4.8.2-1].
const SHARE_PREFIX: &str = "$share/";

/// Validates a PUBLISH topic name: non-empty [MQTT-4.7.3-1], no `+`/`#` [MQTT-3.3.2-2], no
/// U+0000 [MQTT-4.7.3-2], within `limits` (length in bytes, levels = count of `/` + 1).
///
/// Names starting with `$` are accepted: whether a client may publish to `$SYS/...` is a
/// permission question for the broker, not a syntax one.
pub fn validate_topic_name(topic: &str, limits: &TopicLimits) -> Result<(), TopicError> {
    check_bounds(topic, limits)?;
    for byte in topic.bytes() {
        match byte {
            0 => return Err(TopicError::NullCharacter),
            b'+' | b'#' => return Err(TopicError::WildcardInTopicName),
            _ => {}
        }
    }
    Ok(())
}

/// Validates a topic filter as written, without interpreting `$share/`: `#` only as the
/// whole last level [MQTT-4.7.1-2], `+` only as a whole level [MQTT-4.7.1-3], non-empty
/// [MQTT-4.7.3-1], no U+0000 [MQTT-4.7.3-2], within `limits`.
///
/// What a client sent in SUBSCRIBE should go through [`parse_subscription_filter`] instead,
/// which also recognises shared subscriptions.
pub fn validate_topic_filter(filter: &str, limits: &TopicLimits) -> Result<(), TopicError> {
    check_bounds(filter, limits)?;
    if filter.contains('\0') {
        return Err(TopicError::NullCharacter);
    }
    let mut levels = filter.split('/').peekable();
    while let Some(level) = levels.next() {
        let is_last = levels.peek().is_none();
        let legal = match level {
            "+" => true,
            "#" => is_last,
            _ => !level.contains(['+', '#']),
        };
        if !legal {
            return Err(TopicError::InvalidWildcard);
        }
    }
    Ok(())
}

/// A validated filter from SUBSCRIBE or UNSUBSCRIBE, borrowing the client's string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscriptionFilter<'a> {
    /// An ordinary topic filter; every matching message goes to this subscriber.
    Normal(&'a str),
    /// `$share/{group}/{filter}` [MQTT-4.8.2]: each matching message goes to one member of
    /// the group. `group` (the spec's ShareName) is non-empty and contains no `/`, `+`, `#`;
    /// `filter` is a valid topic filter.
    Shared {
        /// The ShareName.
        group: &'a str,
        /// The topic filter the group subscribes to.
        filter: &'a str,
    },
}

impl<'a> SubscriptionFilter<'a> {
    /// The topic filter to match published topic names against (the part after the
    /// ShareName for a shared subscription).
    pub fn topic_filter(&self) -> &'a str {
        match *self {
            SubscriptionFilter::Normal(filter) | SubscriptionFilter::Shared { filter, .. } => {
                filter
            }
        }
    }
}

/// Parses and validates what a client put in SUBSCRIBE/UNSUBSCRIBE.
///
/// A string starting with `$share/` must be a well-formed shared subscription; anything else
/// (including a bare `$share`) is an ordinary filter. The length limit applies to the whole
/// string, the level limit to the filter that will be stored in the trie.
pub fn parse_subscription_filter<'a>(
    raw: &'a str,
    limits: &TopicLimits,
) -> Result<SubscriptionFilter<'a>, TopicError> {
    let Some(rest) = raw.strip_prefix(SHARE_PREFIX) else {
        validate_topic_filter(raw, limits)?;
        return Ok(SubscriptionFilter::Normal(raw));
    };
    if raw.len() > limits.max_topic_length {
        return Err(TopicError::TooLong {
            len: raw.len(),
            max: limits.max_topic_length,
        });
    }
    // The ShareName ends at the first '/', so it cannot contain one [MQTT-4.8.2-2].
    let Some((group, filter)) = rest.split_once('/') else {
        return Err(TopicError::InvalidSharedSubscription);
    };
    if group.is_empty() || group.contains(['+', '#']) || filter.is_empty() {
        return Err(TopicError::InvalidSharedSubscription);
    }
    if group.contains('\0') {
        return Err(TopicError::NullCharacter);
    }
    validate_topic_filter(filter, limits)?;
    Ok(SubscriptionFilter::Shared { group, filter })
}

/// The checks common to names and filters that bound all later work: emptiness, byte length
/// and level count, each a single pass over the bytes at most.
fn check_bounds(topic: &str, limits: &TopicLimits) -> Result<(), TopicError> {
    if topic.is_empty() {
        return Err(TopicError::Empty);
    }
    if topic.len() > limits.max_topic_length {
        return Err(TopicError::TooLong {
            len: topic.len(),
            max: limits.max_topic_length,
        });
    }
    let levels = topic.bytes().filter(|&b| b == b'/').count() + 1;
    if levels > limits.max_topic_levels {
        return Err(TopicError::TooManyLevels {
            levels,
            max: limits.max_topic_levels,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests;
