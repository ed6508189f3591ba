//! Video options of `describe` and `ask`, and the choice between image and video for each
//! path given on the command line.

use std::path::{Path, PathBuf};

use clap::Args;
use vlm::{Content, ImageInput, VideoInput};

/// How videos are sampled.
#[derive(Args, Debug, Clone, Default)]
pub(crate) struct VideoArgs {
    /// For a video file or animation: frames to sample per second (default: the model's
    /// `video_sampling.fps`, 1). For a directory of frames: the rate the frames were taken at
    /// (default 1), which gives their timestamps.
    #[arg(long, value_name = "FPS")]
    fps: Option<f64>,
    /// Most frames to sample from a video (default: the model's `video_sampling.max_frames`,
    /// 64).
    #[arg(long, value_name = "N")]
    max_frames: Option<usize>,
}

impl VideoArgs {
    /// The video `path` names, with these options.
    fn input(&self, path: &Path) -> VideoInput {
        let mut video = VideoInput::path(path);
        if let Some(fps) = self.fps {
            video = if path.is_dir() {
                video.with_frame_rate(fps)
            } else {
                video.with_fps(fps)
            };
        }
        if let Some(n) = self.max_frames {
            video = video.with_max_frames(n);
        }
        video
    }

    /// One message part per path: a video for a directory, an MP4/MOV file or an animated
    /// GIF/PNG/WebP, an image otherwise. Files of a frame directory that are not frames are
    /// named in a warning on stderr.
    pub(crate) fn parts(&self, paths: &[PathBuf]) -> Vec<Content> {
        paths
            .iter()
            .map(|p| {
                if p.is_dir() {
                    // An unreadable directory is reported when the video is loaded.
                    for skipped in vlm::video::skipped_entries(p).unwrap_or_default() {
                        eprintln!(
                            "warning: {}: skipping {}, not a PNG, JPEG, WebP or GIF frame",
                            p.display(),
                            skipped.file_name().unwrap_or_default().to_string_lossy()
                        );
                    }
                }
                if vlm::video::is_video_path(p) {
                    Content::Video(self.input(p))
                } else {
                    Content::Image(ImageInput::Path(p.clone()))
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        v: VideoArgs,
    }

    #[test]
    fn fps_is_the_sampling_rate_of_files_and_the_rate_of_directories() {
        let t = T::try_parse_from(["t", "--fps", "0.5", "--max-frames", "16"]).unwrap();
        let file = t.v.input(Path::new("clip.mp4"));
        assert_eq!(
            (file.fps, file.max_frames, file.frame_rate),
            (Some(0.5), Some(16), None)
        );
        let dir = t.v.input(Path::new(env!("CARGO_MANIFEST_DIR")));
        assert_eq!((dir.fps, dir.frame_rate), (None, Some(0.5)));
        let parts =
            t.v.parts(&[PathBuf::from(env!("CARGO_MANIFEST_DIR")), "a.png".into()]);
        assert!(matches!(parts[0], Content::Video(_)));
        assert!(matches!(parts[1], Content::Image(_)));
    }
}
