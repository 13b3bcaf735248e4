//! ferrymq-auth (under construction)
