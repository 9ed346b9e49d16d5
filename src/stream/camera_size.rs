//! Which of a camera's frame sizes to ask for when the user names none.
//!
//! Every pixel a camera sends is converted (or, for MJPEG, entropy-decoded: the part of
//! decoding no reduction skips) before the models shrink the frame to their input, so a
//! webcam left at 1920x1080 in front of a 224-pixel model spends most of each frame's
//! overhead on pixels nobody uses. The cascade knows how many it uses: its decode size, the
//! largest resize target among its stages (`Cascade::decode_size`). So the camera is asked
//! for the smallest size it offers that still gives every stage that many pixels on the
//! shorter side, at the aspect ratio it is set to (another aspect may frame another part of
//! the scene, which a user who pointed the camera would not expect). When no size it offers
//! at that aspect is large enough, the largest is asked for; when the cascade's need is
//! unknown (a stage without a manifest), the camera is left as it is.

use std::num::NonZeroU32;

use crate::input::FrameSize;

/// What a driver offers for one pixel format (V4L2's `VIDIOC_ENUM_FRAMESIZES`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offered {
    /// One size.
    Size(FrameSize),
    /// Every size from `min` to `max` in steps of `step_width` x `step_height` (V4L2's
    /// stepwise sizes; continuous ones are steps of 1).
    Range {
        min: FrameSize,
        max: FrameSize,
        step_width: u32,
        step_height: u32,
    },
}

/// The size to ask for: the fewest pixels among the offered sizes at `current`'s aspect
/// ratio whose shorter side is at least `need`; else the largest at that aspect; `current`
/// when `need` is unknown or nothing offered has its aspect.
pub fn choose(offered: &[Offered], current: FrameSize, need: Option<NonZeroU32>) -> FrameSize {
    let Some(need) = need else {
        return current;
    };
    let candidates = || {
        offered.iter().filter_map(move |o| match *o {
            Offered::Size(size) => same_aspect(size, current).then_some(size),
            Offered::Range {
                min,
                max,
                step_width,
                step_height,
            } => in_range(current, need, min, max, step_width, step_height),
        })
    };
    let pixels = |s: &FrameSize| u64::from(s.width) * u64::from(s.height);
    candidates()
        .filter(|s| short_side(*s) >= need.get())
        .min_by_key(pixels)
        .or_else(|| candidates().max_by_key(pixels))
        .unwrap_or(current)
}

fn short_side(size: FrameSize) -> u32 {
    size.width.min(size.height)
}

/// Whether `a` frames the scene as `b` does: width/height equal within 1% (so 1920x1080
/// and 1280x720 match, 640x480 and 640x360 do not).
fn same_aspect(a: FrameSize, b: FrameSize) -> bool {
    let ab = u64::from(a.width) * u64::from(b.height);
    let ba = u64::from(b.width) * u64::from(a.height);
    ab.abs_diff(ba) * 100 <= ab.max(ba)
}

/// The smallest size of a stepwise range at `current`'s aspect whose shorter side is at
/// least `need` (each side rounded up to the range's steps); the range's largest size at
/// that aspect when even that is short; `None` when the range holds no such size.
fn in_range(
    current: FrameSize,
    need: NonZeroU32,
    min: FrameSize,
    max: FrameSize,
    step_width: u32,
    step_height: u32,
) -> Option<FrameSize> {
    // The scale, as a fraction, that brings the current shorter side to `need`, capped
    // where either side would pass the range's maximum. Integers, so that a side scaled
    // to exactly a step is not pushed a step further by a rounding error.
    let (mut num, mut den) = (u64::from(need.get()), u64::from(short_side(current)));
    for (cap, side) in [(max.width, current.width), (max.height, current.height)] {
        let (cap, side) = (u64::from(cap), u64::from(side));
        if cap * den < num * side {
            (num, den) = (cap, side);
        }
    }
    let side = |current: u32, min: u32, max: u32, step: u32| -> Option<u32> {
        let (min, max, step) = (u64::from(min), u64::from(max), u64::from(step.max(1)));
        let wanted = (u64::from(current) * num).div_ceil(den).max(min);
        let mut side = min + (wanted - min).div_ceil(step) * step;
        // Rounding up to a step may pass the maximum: the last step below it then.
        if side > max {
            side = min + max.checked_sub(min)? / step * step;
        }
        u32::try_from(side).ok().filter(|&s| s > 0)
    };
    let size = FrameSize {
        width: side(current.width, min.width, max.width, step_width)?,
        height: side(current.height, min.height, max.height, step_height)?,
    };
    same_aspect(size, current).then_some(size)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn size(width: u32, height: u32) -> FrameSize {
        FrameSize::new(width, height).unwrap()
    }

    fn need(side: u32) -> Option<NonZeroU32> {
        NonZeroU32::new(side)
    }

    /// vivid's webcam sizes (drivers/media/test-drivers/vivid/vivid-vid-cap.c), which the
    /// camera-vivid check streams from.
    fn vivid() -> Vec<Offered> {
        [
            (320, 180),
            (640, 360),
            (640, 480),
            (1280, 720),
            (1920, 1080),
            (3840, 2160),
        ]
        .into_iter()
        .map(|(w, h)| Offered::Size(size(w, h)))
        .collect()
    }

    #[test]
    fn a_webcam_at_1080p_is_asked_for_the_smallest_16_by_9_size_the_stages_need() {
        // Lite0 needs 256 (224 / 0.875), Lite2 297 (260 / 0.875): 640x360 for both,
        // as 320x180 is short of either.
        assert_eq!(
            choose(&vivid(), size(1920, 1080), need(256)),
            size(640, 360)
        );
        assert_eq!(
            choose(&vivid(), size(1920, 1080), need(297)),
            size(640, 360)
        );
        // A need above 360 takes the next 16:9 size, never the 4:3 640x480.
        assert_eq!(
            choose(&vivid(), size(1920, 1080), need(400)),
            size(1280, 720)
        );
    }

    #[test]
    fn the_aspect_the_camera_is_set_to_is_kept() {
        // 640x480 is vivid's only 4:3 size: kept even where 640x360 has fewer pixels.
        assert_eq!(choose(&vivid(), size(640, 480), need(256)), size(640, 480));
        // A smaller current size is raised to what the stages need.
        assert_eq!(choose(&vivid(), size(320, 180), need(297)), size(640, 360));
    }

    #[test]
    fn when_no_size_is_large_enough_the_largest_at_the_aspect_is_taken() {
        assert_eq!(
            choose(&vivid(), size(640, 360), need(4000)),
            size(3840, 2160)
        );
        assert_eq!(choose(&vivid(), size(640, 480), need(4000)), size(640, 480));
    }

    #[test]
    fn an_unknown_need_or_nothing_at_the_aspect_leaves_the_camera_as_it_is() {
        assert_eq!(choose(&vivid(), size(1920, 1080), None), size(1920, 1080));
        assert_eq!(choose(&vivid(), size(800, 600), need(256)), size(640, 480));
        assert_eq!(
            choose(&vivid(), size(1000, 1000), need(256)),
            size(1000, 1000)
        );
        assert_eq!(choose(&[], size(1920, 1080), need(256)), size(1920, 1080));
    }

    #[test]
    fn a_stepwise_range_gives_the_need_rounded_up_to_its_steps() {
        // The Pi's legacy camera driver (bcm2835-v4l2): 32x32 to 2592x1944 in steps of 2.
        let pi = [Offered::Range {
            min: size(32, 32),
            max: size(2592, 1944),
            step_width: 2,
            step_height: 2,
        }];
        // 1024x768 scaled to a shorter side of 297: 396x297, the height rounded up to 298.
        assert_eq!(choose(&pi, size(1024, 768), need(297)), size(396, 298));
        assert_eq!(choose(&pi, size(1920, 1080), need(256)), size(456, 256));
        // Above the range: its largest size at the aspect.
        assert_eq!(choose(&pi, size(1024, 768), need(3000)), size(2592, 1944));
        // Coarse steps: 480x320 scaled to the range's 1000 wide is 1000x667, rounded up past
        // the maximum, so each side stops at the last step below it: 960x640.
        let coarse = [Offered::Range {
            min: size(64, 64),
            max: size(1000, 700),
            step_width: 64,
            step_height: 64,
        }];
        assert_eq!(choose(&coarse, size(480, 320), need(700)), size(960, 640));
        // Steps too coarse for the aspect: nothing offered has it, the camera stays.
        assert_eq!(choose(&coarse, size(960, 640), need(300)), size(960, 640));
    }
}
