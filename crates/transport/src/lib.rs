//! ferrymq-transport (under construction)
