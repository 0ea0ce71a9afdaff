//! Other tools read our files, fragmented per GOP and per frame: ffprobe lists every track and
//! counts every sample, and ffmpeg decodes every AV1 track to exactly the pixels our decoder
//! produces. Needs Debian's ffmpeg; `.ci/run` installs it.

use std::io::Cursor;
use std::process::Command;

use splatcast_encoder::{EncodeOptions, Quality, SequenceEncoder, demo, stream_layout};
use splatcast_protocol::av1::Rav1dDecoder;
use splatcast_protocol::stream::{Fragmentation, StreamReader};

fn encoded(fragmentation: Fragmentation) -> Vec<u8> {
    let options = EncodeOptions {
        fps: 24.0,
        gop: 4,
        quality: Quality::Medium,
        fragmentation,
        ..EncodeOptions::default()
    };
    let mut enc =
        SequenceEncoder::new(Vec::new(), stream_layout(&options, 1500, 1), options, false);
    for t in 0..7 {
        enc.push(demo::galaxy_frame(1500, t, 24.0)).unwrap();
    }
    enc.finish().unwrap().output
}

fn run(cmd: &mut Command) -> Vec<u8> {
    let out = cmd
        .output()
        .expect("ffmpeg/ffprobe must be installed (apt-get install ffmpeg)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
#[ignore = "needs ffmpeg and ffprobe (installed by .ci/run)"]
fn ffprobe_lists_tracks_and_ffmpeg_decodes_bit_exactly() {
    for fragmentation in [Fragmentation::Gop, Fragmentation::Frame] {
        check(encoded(fragmentation));
    }
}

fn check(bytes: Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("galaxy.mp4");
    std::fs::write(&path, &bytes).unwrap();

    let probe = String::from_utf8(run(Command::new("ffprobe")
        .args(["-v", "error", "-show_entries"])
        .args([
            "stream=index,codec_type,codec_name,width,height,pix_fmt,nb_read_packets",
            "-count_packets",
            "-of",
            "csv=p=0",
        ])
        .arg(&path)))
    .unwrap();
    let lines: Vec<&str> = probe.lines().collect();
    assert_eq!(lines.len(), 6, "5 AV1 tracks + side data: {probe}");
    let video: Vec<&&str> = lines
        .iter()
        .filter(|l| l.contains("av1") && l.contains("video"))
        .collect();
    assert_eq!(video.len(), 5, "{probe}");
    // Every frame of every track is a packet; the side data is one per GOP.
    assert!(video.iter().all(|l| l.ends_with(",7")), "{probe}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("data") && l.ends_with(",2")),
        "{probe}"
    );

    let mut reader = StreamReader::open(Cursor::new(bytes)).unwrap();
    assert_eq!(reader.gop_count(), 2);
    let mut dec = Rav1dDecoder::new(1);
    let mut ours: Vec<Vec<u16>> = vec![Vec::new(); 5];
    let mut depths = [8u8; 5];
    for g in 0..reader.gop_count() {
        let (_, _, planes) = reader.decode_planes(g, &mut dec).unwrap();
        for (t, pictures) in planes.iter().enumerate() {
            depths[t] = pictures[0].bit_depth;
            ours[t].extend(pictures.iter().flat_map(|p| p.samples.iter().copied()));
        }
    }
    for (t, expected) in ours.iter().enumerate() {
        let pix_fmt = if depths[t] > 8 { "gray10le" } else { "gray" };
        let raw = run(Command::new("ffmpeg")
            .args(["-v", "error", "-i"])
            .arg(&path)
            .args([
                "-map",
                &format!("0:{t}"),
                "-f",
                "rawvideo",
                "-pix_fmt",
                pix_fmt,
                "-",
            ]));
        let theirs: Vec<u16> = if depths[t] > 8 {
            raw.chunks_exact(2)
                .map(|b| u16::from_le_bytes([b[0], b[1]]))
                .collect()
        } else {
            raw.iter().map(|&b| b as u16).collect()
        };
        assert_eq!(theirs.len(), expected.len(), "track {t}: sample count");
        assert!(
            theirs == *expected,
            "track {t}: ffmpeg's pixels differ from ours"
        );
    }
}
