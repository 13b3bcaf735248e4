//! ferrymq-store (under construction)
