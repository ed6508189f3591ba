#!/bin/sh
# Writes the small MP4 fixtures under tests/fixtures/video/clips/ with FFmpeg (Debian's
# `ffmpeg` 5.1 package: `apt-get install -y ffmpeg`). Run once from the repository root; the
# outputs are committed and the tests never call FFmpeg.
#
#   clip.mp4          4 s of testsrc2 at 10 fps, 128x72, H.264 High profile with B-frames
#   clip_rotated.mp4  the same stream with a 90-degree display rotation in its track header
#   hevc.mp4          1 s of HEVC (H.265), for the unsupported-codec error
#   audio_only.mp4    1 s of AAC and no video track
#   clip_ref_N.png    FFmpeg's own RGB decoding of frame N of clip.mp4, for N in the frames
#                     the default sampling takes (1 fps over 4 s: 0, 13, 26, 39)
set -eu
out=tests/fixtures/video/clips
mkdir -p "$out"
ff="ffmpeg -hide_banner -loglevel error -y"
$ff -f lavfi -i testsrc2=size=128x72:rate=10 -t 4 -c:v libx264 -profile:v high -bf 2 -g 20 \
    -crf 30 -pix_fmt yuv420p -movflags +faststart "$out/clip.mp4"
$ff -i "$out/clip.mp4" -c copy -metadata:s:v:0 rotate=90 -movflags +faststart "$out/clip_rotated.mp4"
$ff -f lavfi -i testsrc2=size=64x64:rate=10 -t 1 -c:v libx265 -x265-params log-level=error \
    "$out/hevc.mp4"
$ff -f lavfi -i sine=frequency=440:duration=1 -c:a aac "$out/audio_only.mp4"
for n in 0 13 26 39; do
    $ff -i "$out/clip.mp4" -vf "select=eq(n\,$n)" -fps_mode passthrough -frames:v 1 \
        -pix_fmt rgb24 "$out/clip_ref_$n.png"
done
