//! Prompt expansion: each `<image>` marker → the processor's tile layout of image tokens.
//!
//! Ref: transformers `processing_smolvlm.py` (`_prompt_split_image`, `_prompt_single_image`).

use crate::error::{Error, Result};

/// Token strings used in the expansion.
#[derive(Debug, Clone)]
pub struct ImageTokens<'a> {
    /// Image-feature slot (`<image>`).
    pub image: &'a str,
    /// Wraps images and precedes each tile (`<fake_token_around_image>`).
    pub fake: &'a str,
    /// Precedes the global view (`<global-img>`).
    pub global: &'a str,
}

/// Tile grid of one image: `rows × cols` tiles plus a global view, or `0 × 0` for a single view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Grid {
    /// Tile rows (0 when the image is not split).
    pub rows: usize,
    /// Tile columns (0 when the image is not split).
    pub cols: usize,
}

impl Grid {
    /// Number of views (tiles plus the global view) this grid feeds the vision tower.
    pub(crate) fn views(&self) -> usize {
        if self.rows == 0 || self.cols == 0 {
            1
        } else {
            self.rows * self.cols + 1
        }
    }
}

/// The text that replaces one `<image>` marker.
pub(crate) fn image_prompt(grid: Grid, image_seq_len: usize, t: &ImageTokens<'_>) -> String {
    let slots = t.image.repeat(image_seq_len);
    if grid.rows == 0 || grid.cols == 0 {
        return format!("{}{}{slots}{}", t.fake, t.global, t.fake);
    }
    let mut s = String::new();
    for r in 0..grid.rows {
        for c in 0..grid.cols {
            // Tiles are not closed: the next tile's fake token separates them.
            s.push_str(&format!("{}<row_{}_col_{}>{slots}", t.fake, r + 1, c + 1));
        }
        s.push('\n');
    }
    s.push_str(&format!("\n{}{}{slots}{}", t.fake, t.global, t.fake));
    s
}

/// Replaces the k-th `<image>` marker of `prompt` with the expansion of `grids[k]`.
pub(crate) fn expand(
    prompt: &str,
    grids: &[Grid],
    image_seq_len: usize,
    t: &ImageTokens<'_>,
) -> Result<String> {
    let pieces: Vec<&str> = prompt.split(t.image).collect();
    let markers = pieces.len() - 1;
    if markers != grids.len() {
        return Err(Error::ImageCount {
            markers,
            images: grids.len(),
        });
    }
    let mut out =
        String::with_capacity(prompt.len() + grids.len() * image_seq_len * t.image.len() * 17);
    for (i, piece) in pieces.iter().enumerate() {
        out.push_str(piece);
        if let Some(grid) = grids.get(i) {
            out.push_str(&image_prompt(*grid, image_seq_len, t));
        }
    }
    Ok(out)
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
    fn single_view() {
        let s = image_prompt(Grid { rows: 0, cols: 0 }, 2, &T);
        assert_eq!(
            s,
            "<fake_token_around_image><global-img><image><image><fake_token_around_image>"
        );
    }

    #[test]
    fn split_views() {
        let s = image_prompt(Grid { rows: 2, cols: 2 }, 1, &T);
        assert_eq!(
            s,
            "<fake_token_around_image><row_1_col_1><image><fake_token_around_image><row_1_col_2><image>\n\
             <fake_token_around_image><row_2_col_1><image><fake_token_around_image><row_2_col_2><image>\n\
             \n<fake_token_around_image><global-img><image><fake_token_around_image>"
        );
        assert_eq!(Grid { rows: 3, cols: 4 }.views(), 13);
    }

    #[test]
    fn marker_count_must_match() {
        let err = expand("a<image>b<image>", &[Grid { rows: 0, cols: 0 }], 1, &T).unwrap_err();
        assert!(matches!(
            err,
            Error::ImageCount {
                markers: 2,
                images: 1
            }
        ));
        let ok = expand("x<image>y", &[Grid { rows: 0, cols: 0 }], 1, &T).unwrap();
        assert!(ok.starts_with("x<fake") && ok.ends_with(">y"));
    }
}
