//! ferrymq-testkit (under construction)
