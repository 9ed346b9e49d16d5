//! The Raspberry Pi firmware's throttling flags, from `vcgencmd get_throttled`.
//!
//! The command prints one hexadecimal bit field, `throttled=0x50005`. The low bits say what
//! holds now, bits 16 to 19 the same conditions since boot:
//!
//! | bit | now | bit | since boot |
//! |---|---|---|---|
//! | 0 | under-voltage | 16 | under-voltage has occurred |
//! | 1 | ARM frequency capped | 17 | frequency capping has occurred |
//! | 2 | throttled | 18 | throttling has occurred |
//! | 3 | soft temperature limit active | 19 | soft temperature limit has occurred |
//!
//! (Raspberry Pi documentation, `vcgencmd get_throttled`.) Any of them makes timings and
//! energy figures measured meanwhile unrepresentative of the board.

use std::fmt;

use serde::Serialize;

/// The four conditions, at one time (now, or at some point since boot).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ThrottleFlags {
    pub under_voltage: bool,
    pub frequency_capped: bool,
    pub throttled: bool,
    pub soft_temperature_limit: bool,
}

impl ThrottleFlags {
    /// The flags in the four bits from `shift` up.
    fn from_bits(bits: u32, shift: u32) -> Self {
        let bit = |n: u32| bits & (1 << (shift + n)) != 0;
        ThrottleFlags {
            under_voltage: bit(0),
            frequency_capped: bit(1),
            throttled: bit(2),
            soft_temperature_limit: bit(3),
        }
    }

    /// The names of the conditions that hold.
    fn names(&self) -> Vec<&'static str> {
        [
            (self.under_voltage, "under-voltage"),
            (self.frequency_capped, "frequency capped"),
            (self.throttled, "throttled"),
            (self.soft_temperature_limit, "soft temperature limit"),
        ]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
        .collect()
    }

    fn any(&self) -> bool {
        !self.names().is_empty()
    }
}

/// `vcgencmd get_throttled`, decoded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Throttled {
    /// The bit field as the firmware printed it, e.g. `0x50005`.
    pub raw: String,
    /// What holds now.
    pub now: ThrottleFlags,
    /// What has happened since boot.
    pub since_boot: ThrottleFlags,
}

impl Throttled {
    /// Decodes `throttled=0x50005` (surrounding whitespace and lines are ignored); `None`
    /// when the output holds no such field.
    pub fn parse(output: &str) -> Option<Throttled> {
        let value = output
            .split_whitespace()
            .find_map(|word| word.strip_prefix("throttled="))?;
        let digits = value
            .strip_prefix("0x")
            .or_else(|| value.strip_prefix("0X"))?;
        let bits = u32::from_str_radix(digits, 16).ok()?;
        Some(Throttled {
            raw: format!("{bits:#x}"),
            now: ThrottleFlags::from_bits(bits, 0),
            since_boot: ThrottleFlags::from_bits(bits, 16),
        })
    }

    /// Nothing now nor since boot.
    pub fn is_clear(&self) -> bool {
        !self.now.any() && !self.since_boot.any()
    }
}

impl fmt::Display for Throttled {
    /// `0x50005: now under-voltage, throttled; since boot under-voltage, throttled`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_clear() {
            return write!(f, "{}: none, now or since boot", self.raw);
        }
        let list = |flags: &ThrottleFlags| match flags.names() {
            names if names.is_empty() => "none".to_string(),
            names => names.join(", "),
        };
        write!(
            f,
            "{}: now {}; since boot {}",
            self.raw,
            list(&self.now),
            list(&self.since_boot)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_the_bit_field() {
        let t = Throttled::parse("throttled=0x50005\n").unwrap();
        assert_eq!(t.raw, "0x50005");
        let both = ThrottleFlags {
            under_voltage: true,
            throttled: true,
            ..ThrottleFlags::default()
        };
        assert_eq!((t.now, t.since_boot), (both, both));
        assert_eq!(
            t.to_string(),
            "0x50005: now under-voltage, throttled; since boot under-voltage, throttled"
        );

        let clear = Throttled::parse("throttled=0x0").unwrap();
        assert!(clear.is_clear());
        assert_eq!(clear.to_string(), "0x0: none, now or since boot");

        // Soft temperature limit hit once, since gone; the frequency capped now.
        let t = Throttled::parse("  throttled=0x80002  ").unwrap();
        assert!(t.now.frequency_capped && !t.now.soft_temperature_limit);
        assert!(t.since_boot.soft_temperature_limit && !t.since_boot.frequency_capped);
        assert_eq!(
            t.to_string(),
            "0x80002: now frequency capped; since boot soft temperature limit"
        );
        let all = Throttled::parse("throttled=0xF000F").unwrap();
        assert_eq!(all.now.names().len(), 4);
        assert_eq!(all.since_boot.names().len(), 4);
    }

    #[test]
    fn other_output_is_not_a_reading() {
        for bad in [
            "",
            "throttled=",
            "throttled=0x",
            "throttled=50005",
            "throttled=0xnope",
            "throttled=0x1000000000",
            "error=1 error_msg=\"Command not registered\"",
        ] {
            assert_eq!(Throttled::parse(bad), None, "{bad:?}");
        }
    }
}
