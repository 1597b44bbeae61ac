//! (module placeholder; see docs/design.md for its owner)
