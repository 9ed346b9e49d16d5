//! Board power models (`boards/*.toml`): an error or a board whose power is positive,
//! finite and never falls as cores get busy.
#![no_main]

use cascade::energy::Board;
use cascade_fuzz::text;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(text) = text(data) else { return };
    let Ok(board) = Board::parse(text, "fuzz.toml") else {
        return;
    };
    let mut previous = 0.0;
    for busy in 0..=board.cores.saturating_add(1).min(1024) {
        let watts = board.power_at(busy);
        assert!(watts.is_finite() && watts > 0.0, "{busy} cores: {watts} W");
        assert!(watts >= previous, "{busy} cores: {watts} W < {previous} W");
        previous = watts;
    }
});
