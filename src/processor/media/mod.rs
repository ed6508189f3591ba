//! Media files → RGB pixels: still images (with EXIF orientation and transformers'
//! `load_image` colour path), animated GIF/PNG/WebP, frame directories and MP4/MOV video.
//! Decoding only: tiles, normalisation and prompts are the processor's, and nothing here
//! reaches back into it beyond the frame-sampling plan ([`crate::processor::video`]).

mod animation;
mod colour_key;
pub(crate) mod folder;
mod frames;
pub mod image;
#[cfg(feature = "video")]
mod mp4_h264;
pub mod video;
