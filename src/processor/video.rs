//! Video metadata + sampling settings → sampled frame indices, and sampled frames → the text
//! that replaces a `<video>` marker. Pure; no pixels.
//!
//! Ref: transformers `SmolVLMVideoProcessor.sample_frames` (`video_processing_smolvlm.py`) and
//! `SmolVLMProcessor.replace_video_token` (`processing_smolvlm.py`), transformers 5.24.

use crate::error::{Error, Result};
use crate::processor::prompt::{image_prompt, Grid, ImageTokens};

/// Frames per second sampled when the preprocessor config has no `video_sampling.fps`.
const DEFAULT_FPS: f64 = 1.0;
/// Most frames sampled when the preprocessor config has no `video_sampling.max_frames`.
const DEFAULT_MAX_FRAMES: usize = 64;
/// Seconds skipped at each end of a clip long enough to fill `max_frames` without them.
const SKIP_SECS: f64 = 1.0;

/// The chat template transformers renders any conversation with a video with (its
/// `DEFAULT_CHAT_TEMPLATE`), whatever template the checkpoint ships: checkpoints published
/// before the video branch existed would otherwise drop the `<video>` part.
pub(crate) const VIDEO_CHAT_TEMPLATE: &str = "<|im_start|>{% for message in messages %}{{message['role'] | capitalize}}{% if message['content'] is string %}{{': ' + message['content']}}{% else %}{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}{% elif line['type'] == 'image' %}{{ '<image>' }}{% elif line['type'] == 'video' %}{{ '<video>' }}{% endif %}{% endfor %}{% endif %}<end_of_utterance>\n{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}";

/// What is known about a clip before any frame is decoded (transformers' `VideoMetadata`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VideoMetadata {
    /// Frames in the clip.
    pub total_frames: usize,
    /// Frames per second of the source (the average rate for variable-rate clips).
    pub fps: f64,
    /// Length in seconds; `total_frames / fps` for decoded files, as transformers' PyAV
    /// reader computes it.
    pub duration: f64,
}

impl VideoMetadata {
    /// Metadata of `total_frames` frames at a constant `fps`.
    pub fn from_rate(total_frames: usize, fps: f64) -> Self {
        VideoMetadata {
            total_frames,
            fps,
            duration: total_frames as f64 / fps,
        }
    }

    /// Seconds from the start of the clip to frame `index` (`index / fps`).
    pub fn timestamp(&self, index: usize) -> f64 {
        index as f64 / self.fps
    }
}

/// How many frames to take from a clip, and how densely.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FrameSampling {
    /// Target frames per second of video.
    pub fps: f64,
    /// Most frames taken.
    pub max_frames: usize,
}

impl Default for FrameSampling {
    fn default() -> Self {
        FrameSampling {
            fps: DEFAULT_FPS,
            max_frames: DEFAULT_MAX_FRAMES,
        }
    }
}

impl FrameSampling {
    /// Checks that the rate is positive and finite and that at least one frame is taken;
    /// `origin` names the setting in the error.
    pub(crate) fn validate(&self) -> Result<()> {
        if !(self.fps.is_finite() && self.fps > 0.0) {
            return Err(Error::InvalidOption {
                name: "fps",
                reason: format!(
                    "{} must be a positive number of frames per second",
                    self.fps
                ),
            });
        }
        if self.max_frames == 0 {
            return Err(Error::InvalidOption {
                name: "max-frames",
                reason: "at least one frame must be sampled".into(),
            });
        }
        Ok(())
    }
}

/// The indices of the frames to keep, sorted and distinct.
///
/// `round(fps × duration)` frames (Python's half-to-even `round`), at least 1 and at most
/// `max_frames`, spread evenly with `np.linspace(start, end, n, dtype=int)` (truncating).
/// When the clip is longer than `max_frames / fps` seconds plus `SKIP_SECS` at each end,
/// those seconds are skipped.
///
/// ```
/// # use vlm::processor::video::{sample_indices, FrameSampling, VideoMetadata};
/// let clip = VideoMetadata::from_rate(70, 10.0); // 7 s at 10 fps
/// assert_eq!(sample_indices(&clip, &FrameSampling::default()), vec![0, 11, 23, 34, 46, 57, 69]);
/// ```
pub fn sample_indices(meta: &VideoMetadata, sampling: &FrameSampling) -> Vec<usize> {
    if meta.total_frames == 0 {
        return Vec::new();
    }
    let estimated = (sampling.fps * meta.duration).round_ties_even();
    let estimated = if estimated.is_finite() && estimated > 0.0 {
        estimated as usize
    } else {
        0
    };
    let desired = estimated.min(sampling.max_frames).max(1);
    let last = meta.total_frames as i64 - 1;
    let (mut start, mut end) = (0i64, last);
    if SKIP_SECS > 0.0
        && (meta.duration - 2.0 * SKIP_SECS) > (sampling.max_frames as f64 * sampling.fps)
    {
        start = (SKIP_SECS * meta.fps) as i64;
        end = (meta.total_frames as f64 - SKIP_SECS * meta.fps) as i64;
    }
    start = start.max(0);
    end = end.min(last);
    if start >= end {
        (start, end) = (0, last);
    }
    let mut indices = linspace_int(start, end, desired);
    indices.dedup();
    indices
}

/// `np.linspace(start, end, n, dtype=int)` for `start <= end`: float64 steps, the last value
/// exactly `end`, each truncated towards zero.
fn linspace_int(start: i64, end: i64, n: usize) -> Vec<usize> {
    if n == 1 {
        return vec![start.max(0) as usize];
    }
    let div = (n - 1) as f64;
    let delta = (end - start) as f64;
    let step = delta / div;
    (0..n)
        .map(|i| {
            let y = if i == n - 1 {
                end as f64
            } else if step == 0.0 {
                i as f64 / div * delta + start as f64
            } else {
                i as f64 * step + start as f64
            };
            y.max(0.0) as usize
        })
        .collect()
}

/// English words for `n` as Python's `num2words(n)` writes them: "sixty-four",
/// "one hundred and five", "one thousand, two hundred and thirty-four".
fn number_words(n: u64) -> String {
    const ONES: [&str; 20] = [
        "zero",
        "one",
        "two",
        "three",
        "four",
        "five",
        "six",
        "seven",
        "eight",
        "nine",
        "ten",
        "eleven",
        "twelve",
        "thirteen",
        "fourteen",
        "fifteen",
        "sixteen",
        "seventeen",
        "eighteen",
        "nineteen",
    ];
    const TENS: [&str; 10] = [
        "", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety",
    ];
    const SCALES: [&str; 7] = [
        "",
        "thousand",
        "million",
        "billion",
        "trillion",
        "quadrillion",
        "quintillion",
    ];
    let below_hundred = |n: u64| -> String {
        if n < 20 {
            ONES[n as usize].to_string()
        } else if n.is_multiple_of(10) {
            TENS[(n / 10) as usize].to_string()
        } else {
            format!("{}-{}", TENS[(n / 10) as usize], ONES[(n % 10) as usize])
        }
    };
    if n < 100 {
        return below_hundred(n);
    }
    // Groups of three digits, most significant first.
    let mut groups = Vec::new();
    let mut rest = n;
    while rest > 0 {
        groups.push(rest % 1000);
        rest /= 1000;
    }
    let mut parts: Vec<String> = Vec::new();
    for (scale, &group) in groups.iter().enumerate().rev() {
        if group == 0 {
            continue;
        }
        let (hundreds, tens) = (group / 100, group % 100);
        let mut words = String::new();
        if hundreds > 0 {
            words.push_str(ONES[hundreds as usize]);
            words.push_str(" hundred");
            if tens > 0 {
                words.push_str(" and ");
                words.push_str(&below_hundred(tens));
            }
        } else if scale == 0 && !parts.is_empty() {
            // num2words joins a trailing group below one hundred with "and", not a comma.
            let last = parts.pop().unwrap_or_default();
            parts.push(format!("{last} and {}", below_hundred(tens)));
            continue;
        } else {
            words.push_str(&below_hundred(tens));
        }
        if scale > 0 {
            words.push(' ');
            words.push_str(SCALES[scale]);
        }
        parts.push(words);
    }
    parts.join(", ")
}

/// `str(datetime.timedelta(seconds=s))`: `H:MM:SS`, with `N day(s), ` in front past a day.
fn duration_text(seconds: u64) -> String {
    let (days, rest) = (seconds / 86_400, seconds % 86_400);
    let hms = format!("{}:{:02}:{:02}", rest / 3600, rest % 3600 / 60, rest % 60);
    match days {
        0 => hms,
        1 => format!("1 day, {hms}"),
        d => format!("{d} days, {hms}"),
    }
}

/// How one video appears in the prompt: its sampled frames' timestamps and its duration.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct VideoLayout {
    /// Seconds from the start of the clip to each sampled frame.
    pub timestamps: Vec<f64>,
    /// The clip's length in seconds, when known.
    pub duration: Option<f64>,
}

/// The marker the chat template writes for a video part.
const VIDEO_MARKER: &str = "<video>";

/// Replaces the `<image>` and `<video>` markers of `prompt`, in order, with the expansions
/// of `layouts`: an image's tile layout, or a video's frames.
pub(crate) fn expand_media(
    prompt: &str,
    layouts: &[crate::processor::MediaLayout],
    image_seq_len: usize,
    t: &ImageTokens<'_>,
) -> Result<String> {
    use crate::processor::MediaLayout;
    let count = |marker: &str| prompt.matches(marker).count();
    let images = layouts
        .iter()
        .filter(|l| matches!(l, MediaLayout::Image(_)))
        .count();
    let videos = layouts.len() - images;
    let (image_markers, video_markers) = (count(t.image), count(VIDEO_MARKER));
    if image_markers != images {
        return Err(Error::ImageCount {
            markers: image_markers,
            images,
        });
    }
    if video_markers != videos {
        return Err(Error::InvalidOption {
            name: "video",
            reason: format!(
                "the prompt has {video_markers} {VIDEO_MARKER} markers but {videos} videos were given"
            ),
        });
    }
    let mut out = String::with_capacity(prompt.len());
    let mut rest = prompt;
    let mut layouts = layouts.iter();
    loop {
        let next_image = rest.find(t.image).map(|i| (i, t.image.len(), true));
        let next_video = rest
            .find(VIDEO_MARKER)
            .map(|i| (i, VIDEO_MARKER.len(), false));
        let next = match (next_image, next_video) {
            (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
            (a, b) => a.or(b),
        };
        let Some((at, len, is_image)) = next else {
            out.push_str(rest);
            return Ok(out);
        };
        out.push_str(&rest[..at]);
        match (layouts.next(), is_image) {
            (Some(MediaLayout::Image(grid)), true) => {
                out.push_str(&image_prompt(*grid, image_seq_len, t))
            }
            (Some(MediaLayout::Video(v)), false) => {
                out.push_str(&video_prompt(&v.timestamps, v.duration, image_seq_len, t))
            }
            _ => return Err(Error::InvalidOption {
                name: "video",
                reason:
                    "images and videos are given in a different order than the prompt places them"
                        .into(),
            }),
        }
        rest = &rest[at + len..];
    }
}

/// `MM:SS` of a frame `seconds` into the clip: whole minutes and whole seconds, each
/// truncated, as `f"{int(s // 60):02d}:{int(s % 60):02d}"`.
fn timestamp_text(seconds: f64) -> String {
    // Python's float `%` is the exact `fmod` for non-negative values, and its `//` is
    // `(x - x % 60) / 60` rounded to the nearest integer.
    let secs = seconds % 60.0;
    let minutes = ((seconds - secs) / 60.0).round();
    format!("{:02}:{:02}", minutes as u64, secs as u64)
}

/// The text that replaces one `<video>` marker: the intro with the frame count in words and
/// the clip's `H:MM:SS` duration, then `\nFrame from MM:SS:` and one single-view image
/// expansion per frame, then a blank line.
///
/// `timestamps` are the sampled frames' times in seconds; `duration` is the clip's length
/// (truncated to whole seconds; when unknown, the last timestamp's).
pub fn video_prompt(
    timestamps: &[f64],
    duration: Option<f64>,
    image_seq_len: usize,
    t: &ImageTokens<'_>,
) -> String {
    let duration = duration
        .or_else(|| timestamps.last().copied())
        .unwrap_or(0.0);
    let mut s = format!(
        "You are provided the following series of {} frames from a {} [H:MM:SS] video.\n",
        number_words(timestamps.len() as u64),
        duration_text(duration.max(0.0) as u64)
    );
    let frame = image_prompt(Grid { rows: 0, cols: 0 }, image_seq_len, t);
    for &ts in timestamps {
        s.push_str("\nFrame from ");
        s.push_str(&timestamp_text(ts));
        s.push(':');
        s.push_str(&frame);
    }
    s.push_str("\n\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: ImageTokens<'static> = ImageTokens {
        image: "<image>",
        fake: "<fake_token_around_image>",
        global: "<global-img>",
    };

    #[test]
    fn numbers_in_words_follow_num2words() {
        // Values printed by num2words 0.5.14.
        for (n, words) in [
            (0, "zero"),
            (1, "one"),
            (7, "seven"),
            (13, "thirteen"),
            (20, "twenty"),
            (21, "twenty-one"),
            (64, "sixty-four"),
            (100, "one hundred"),
            (101, "one hundred and one"),
            (999, "nine hundred and ninety-nine"),
            (1000, "one thousand"),
            (1001, "one thousand and one"),
            (1234, "one thousand, two hundred and thirty-four"),
            (100_000, "one hundred thousand"),
            (
                123_456,
                "one hundred and twenty-three thousand, four hundred and fifty-six",
            ),
        ] {
            assert_eq!(number_words(n), words, "{n}");
        }
    }

    #[test]
    fn durations_and_timestamps() {
        assert_eq!(duration_text(0), "0:00:00");
        assert_eq!(duration_text(65), "0:01:05");
        assert_eq!(duration_text(3600 * 10 + 61), "10:01:01");
        assert_eq!(duration_text(86_400 + 5), "1 day, 0:00:05");
        assert_eq!(timestamp_text(0.0), "00:00");
        assert_eq!(timestamp_text(59.999), "00:59");
        assert_eq!(timestamp_text(61.5), "01:01");
        assert_eq!(timestamp_text(6001.0), "100:01");
    }

    #[test]
    fn sampling_takes_one_frame_per_second_up_to_the_cap() {
        let s = FrameSampling::default();
        // 7 s at 24 fps → 7 frames spread over the whole clip.
        let idx = sample_indices(&VideoMetadata::from_rate(168, 24.0), &s);
        assert_eq!(idx, vec![0, 27, 55, 83, 111, 139, 167]);
        // A clip shorter than half a second still gives one frame, the first.
        assert_eq!(
            sample_indices(&VideoMetadata::from_rate(4, 10.0), &s),
            vec![0]
        );
        // 2.5 s rounds half to even: 2 frames.
        assert_eq!(
            sample_indices(&VideoMetadata::from_rate(25, 10.0), &s).len(),
            2
        );
        // Fewer source frames than wanted: duplicates collapse.
        let idx = sample_indices(
            &VideoMetadata {
                total_frames: 3,
                fps: 1.0,
                duration: 10.0,
            },
            &s,
        );
        assert_eq!(idx, vec![0, 1, 2]);
        assert!(sample_indices(&VideoMetadata::from_rate(0, 30.0), &s).is_empty());
    }

    #[test]
    fn long_clips_skip_a_second_at_each_end() {
        let s = FrameSampling::default();
        // 65 s: 65 - 2 is not more than 64 frames at 1 fps, so nothing is skipped.
        let idx = sample_indices(&VideoMetadata::from_rate(65 * 30, 30.0), &s);
        assert_eq!((idx.len(), idx[0], idx[63]), (64, 0, 1949));
        // 90 s: the first and last second are skipped.
        let idx = sample_indices(&VideoMetadata::from_rate(90 * 30, 30.0), &s);
        assert_eq!((idx.len(), idx[0], idx[63]), (64, 30, 2670));
    }

    #[test]
    fn the_prompt_lists_every_frame() {
        let p = video_prompt(&[0.0, 61.0], Some(62.9), 1, &T);
        assert_eq!(
            p,
            "You are provided the following series of two frames from a 0:01:02 [H:MM:SS] video.\n\
             \nFrame from 00:00:<fake_token_around_image><global-img><image><fake_token_around_image>\
             \nFrame from 01:01:<fake_token_around_image><global-img><image><fake_token_around_image>\n\n"
        );
    }

    #[test]
    fn media_are_expanded_in_order() {
        use crate::processor::MediaLayout;
        let layouts = [
            MediaLayout::Video(VideoLayout {
                timestamps: vec![0.0],
                duration: Some(1.0),
            }),
            MediaLayout::Image(Grid { rows: 0, cols: 0 }),
        ];
        let out = expand_media("a<video>b<image>c", &layouts, 1, &T).unwrap();
        assert!(out.starts_with("aYou are provided the following series of one frames"));
        assert!(out.ends_with(
            "\n\nb<fake_token_around_image><global-img><image><fake_token_around_image>c"
        ));
        let swapped = expand_media("a<image>b<video>c", &layouts, 1, &T).unwrap_err();
        assert!(swapped.to_string().contains("order"), "{swapped}");
        let missing = expand_media("a<video>b", &layouts, 1, &T).unwrap_err();
        assert!(matches!(
            missing,
            Error::ImageCount {
                markers: 0,
                images: 1
            }
        ));
    }

    #[test]
    fn bad_sampling_is_rejected() {
        for fps in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let s = FrameSampling { fps, max_frames: 4 };
            assert!(s.validate().is_err(), "{fps}");
        }
        let s = FrameSampling {
            fps: 1.0,
            max_frames: 0,
        };
        assert!(s.validate().unwrap_err().to_string().contains("max-frames"));
    }
}
