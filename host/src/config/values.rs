//! Deserializers for the value types of the configuration that TOML does
//! not have: durations (`"1h30m"`), sizes (`"512MiB"`) and counts.
//!
//! Each describes what it expects in words, so that an error for a wrong
//! value says what to write rather than naming a Rust type. Range checks
//! (a positive timeout, at least one worker) are not made here but in
//! the parent module's validation, where the whole configuration is seen.

use std::fmt;
use std::time::Duration;

use bytesize::ByteSize;
use serde::de::{self, Deserializer, Visitor};

/// Deserializes a duration written like `"90s"`, `"5m"` or `"1h30m"`.
pub(super) fn duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    struct DurationVisitor;

    impl Visitor<'_> for DurationVisitor {
        type Value = Duration;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a duration such as \"90s\", \"5m\" or \"1h30m\"")
        }

        fn visit_str<E: de::Error>(self, text: &str) -> Result<Duration, E> {
            humantime::parse_duration(text).map_err(|error| {
                E::custom(format!(
                    "invalid duration {text:?} ({error}), expected {}",
                    Expected(&self)
                ))
            })
        }
    }

    deserializer.deserialize_str(DurationVisitor)
}

/// Deserializes a count, so that a wrong value is described in words
/// rather than as a Rust integer type.
pub(super) fn count<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<u64>,
{
    struct CountVisitor<T>(std::marker::PhantomData<T>);

    impl<T: TryFrom<u64>> Visitor<'_> for CountVisitor<T> {
        type Value = T;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a whole number, 0 or more")
        }

        fn visit_u64<E: de::Error>(self, value: u64) -> Result<T, E> {
            T::try_from(value).map_err(|_| E::custom(format!("{value} is too large")))
        }

        fn visit_i64<E: de::Error>(self, value: i64) -> Result<T, E> {
            match u64::try_from(value) {
                Ok(value) => self.visit_u64(value),
                Err(_) => Err(E::invalid_value(de::Unexpected::Signed(value), &self)),
            }
        }
    }

    deserializer.deserialize_any(CountVisitor(std::marker::PhantomData))
}

/// Deserializes a size in bytes, written as a number of bytes or a string
/// like `"512MiB"` or `"2GB"`.
pub(super) fn size<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    struct SizeVisitor;

    impl Visitor<'_> for SizeVisitor {
        type Value = u64;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a size such as \"512MiB\" or a number of bytes")
        }

        fn visit_u64<E: de::Error>(self, bytes: u64) -> Result<u64, E> {
            Ok(bytes)
        }

        fn visit_i64<E: de::Error>(self, bytes: i64) -> Result<u64, E> {
            u64::try_from(bytes).map_err(|_| E::invalid_value(de::Unexpected::Signed(bytes), &self))
        }

        fn visit_str<E: de::Error>(self, text: &str) -> Result<u64, E> {
            // bytesize's own message is cut short mid-word; what was
            // written and what is expected say more.
            match text.parse::<ByteSize>() {
                Ok(size) => Ok(size.as_u64()),
                Err(_) => Err(E::custom(format!(
                    "invalid size {text:?}, expected {}",
                    Expected(&self)
                ))),
            }
        }
    }

    deserializer.deserialize_any(SizeVisitor)
}

/// Shows what a visitor expects, for messages built by hand.
struct Expected<'a, V>(&'a V);

impl<'de, V: Visitor<'de>> fmt::Display for Expected<'_, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.expecting(f)
    }
}
