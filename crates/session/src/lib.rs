//! ferrymq-session (under construction)
