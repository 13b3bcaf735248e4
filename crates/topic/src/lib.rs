//! ferrymq-topic (under construction)
