//! The `splatcast` binary on real and broken inputs: round trips, one-line errors naming the
//! file, non-zero exits, and no output left under its final name after a failure.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn data(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/data")
        .join(rel)
}

fn splatcast(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_splatcast"))
        .args(args)
        .output()
        .unwrap()
}

fn os<S: AsRef<std::ffi::OsStr> + ?Sized>(s: &S) -> &std::ffi::OsStr {
    s.as_ref()
}

fn assert_fails_naming(out: &Output, name: &str) {
    assert!(!out.status.success(), "should fail");
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "one line: {err}");
    assert!(lines[0].contains(name), "names {name}: {err}");
}

fn encode(input: &Path, output: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        os("encode"),
        input.as_os_str(),
        os("-o"),
        output.as_os_str(),
    ];
    args.extend(extra.iter().map(os));
    splatcast(&args)
}

/// The wave's first `count` frames, copied into `dir/in`.
fn wave_frames(dir: &Path, count: usize) -> PathBuf {
    let frames = dir.join("in");
    std::fs::create_dir(&frames).unwrap();
    for i in 1..=count {
        let name = format!("wave_{i:04}.sog");
        std::fs::copy(
            data(&format!("seq_playcanvas_wave/{name}")),
            frames.join(&name),
        )
        .unwrap();
    }
    frames
}

#[test]
fn wave_roundtrip_through_encode_info_decode() {
    let dir = tempfile::tempdir().unwrap();
    let frames = wave_frames(dir.path(), 6);
    let mp4 = dir.path().join("wave.mp4");
    let out = encode(
        &frames.join("wave_*.sog"),
        &mp4,
        &["--gop", "4", "--fps", "25"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let info = splatcast(&[os("info"), mp4.as_os_str()]);
    let text = String::from_utf8_lossy(&info.stdout);
    assert!(info.status.success());
    assert!(
        text.contains("2 GOPs") && text.contains("25.000 fps"),
        "{text}"
    );
    assert!(text.contains("GOP length reached"), "{text}");
    assert!(text.contains("bytes/Gaussian/frame"), "{text}");

    let decoded = dir.path().join("out");
    let out = splatcast(&[os("decode"), mp4.as_os_str(), os("-o"), decoded.as_os_str()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut plys: Vec<_> = std::fs::read_dir(&decoded)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    plys.sort();
    assert_eq!(plys.len(), 6);
    let first = splatcast_protocol::formats::load(&plys[0]).unwrap();
    let source = splatcast_protocol::formats::load(&frames.join("wave_0001.sog")).unwrap();
    assert_eq!(first.len(), source.len());
    let (lo, hi) = (first.bounds().unwrap(), source.bounds().unwrap());
    assert!((lo.0 - hi.0).abs().max_element() < 1e-3 * source.extent());

    // Cut inside its first fragment: nothing to decode is an error, in one line, not an empty
    // success; decode, info and render say so alike.
    let bytes = std::fs::read(&mp4).unwrap();
    let moof = bytes.windows(4).position(|w| w == b"moof").unwrap() - 4;
    let cut = dir.path().join("cut.mp4");
    std::fs::write(&cut, &bytes[..moof + 100]).unwrap();
    let (none, png) = (dir.path().join("none"), dir.path().join("cut.png"));
    for args in [
        vec![os("decode"), cut.as_os_str(), os("-o"), none.as_os_str()],
        vec![os("info"), cut.as_os_str()],
        vec![os("render"), cut.as_os_str(), os("-o"), png.as_os_str()],
    ] {
        let out = splatcast(&args);
        assert_fails_naming(&out, "cut.mp4");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("no complete GOP (the file ends inside its first fragment)"),
            "{err}"
        );
    }
    assert!(!none.exists() || std::fs::read_dir(&none).unwrap().next().is_none());
}

#[test]
fn frames_of_different_sizes_start_a_new_gop() {
    let dir = tempfile::tempdir().unwrap();
    let donut = splatcast_protocol::formats::load(&data("splat_donut_v3dg/fused.ply")).unwrap();
    let small = donut.permuted(&(0..1000).collect::<Vec<_>>());
    let large = donut.permuted(&(0..1500).collect::<Vec<_>>());
    for (i, f) in [&small, &small, &large].iter().enumerate() {
        let ply = splatcast_protocol::formats::ply::write(f);
        std::fs::write(dir.path().join(format!("f{i}.ply")), ply).unwrap();
    }
    let mp4 = dir.path().join("mixed.mp4");
    let out = encode(dir.path(), &mp4, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let info =
        String::from_utf8_lossy(&splatcast(&[os("info"), mp4.as_os_str()]).stdout).into_owned();
    assert!(info.contains("Gaussian count changed"), "{info}");
}

#[test]
fn broken_inputs_fail_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read(data("splat_donut_v3dg/fused.ply")).unwrap();
    let header_end = good.windows(10).position(|w| w == b"end_header").unwrap() + 11;
    let body = &good[header_end..];
    let header = String::from_utf8_lossy(&good[..header_end]).into_owned();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("truncated.ply", good[..good.len() / 3].to_vec()),
        (
            "lying.ply",
            [header.replace("45624", "999999999").as_bytes(), body].concat(),
        ),
        ("empty.ply", header.replace("45624", "0").into_bytes()),
        (
            "noopacity.ply",
            [header.replace("opacity", "opacitx").as_bytes(), body].concat(),
        ),
        ("garbage.sog", b"PK\x03\x04 not really a zip".to_vec()),
        ("garbage.spz", vec![0x1f, 0x8b, 8, 0, 1, 2, 3]),
        ("odd.splat", vec![0u8; 33]),
    ];
    for (name, bytes) in cases {
        let input = dir.path().join(name);
        std::fs::write(&input, bytes).unwrap();
        let output = dir.path().join(format!("{name}.mp4"));
        let out = encode(&input, &output, &[]);
        assert_fails_naming(&out, name);
        assert!(!output.exists(), "{name}: no output under the final name");
        assert!(!dir.path().join(format!("{name}.mp4.partial")).exists());
    }

    // A NaN position: that Gaussian is dropped with one warning line; --strict refuses the file.
    let nan = dir.path().join("nan.ply");
    let mut bytes = good.clone();
    bytes[header_end..header_end + 4].copy_from_slice(&f32::NAN.to_le_bytes());
    std::fs::write(&nan, bytes).unwrap();
    let output = dir.path().join("nan.mp4");
    let out = encode(&nan, &output, &["--quality", "low"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.lines()
            .filter(|l| l.contains("dropped 1 Gaussians"))
            .count()
            == 1
            && err.contains("nan.ply"),
        "{err}"
    );
    let strict = dir.path().join("strict.mp4");
    let out = encode(&nan, &strict, &["--strict"]);
    assert_fails_naming(&out, "nan.ply");
    assert!(!strict.exists());

    let unwritable = dir.path().join("no/such/dir/out.mp4");
    let out = encode(
        &data("splat_sh3_fixture_splatapult/test.ply"),
        &unwritable,
        &[],
    );
    assert_fails_naming(&out, "out.mp4");

    // A valid file, then damaged copies of it.
    let mp4 = dir.path().join("ok.mp4");
    assert!(
        encode(&data("splat_sh3_fixture_splatapult/test.ply"), &mp4, &[])
            .status
            .success()
    );
    let bytes = std::fs::read(&mp4).unwrap();
    let corrupt = dir.path().join("corrupt.mp4");
    std::fs::write(&corrupt, &bytes[..bytes.len() / 2]).unwrap();
    let out = splatcast(&[
        os("decode"),
        corrupt.as_os_str(),
        os("-o"),
        dir.path().join("d").as_os_str(),
    ]);
    assert!(!out.status.success() || String::from_utf8_lossy(&out.stderr).contains("corrupt.mp4"));
    let noise = dir.path().join("noise.mp4");
    std::fs::write(&noise, vec![7u8; 5000]).unwrap();
    assert_fails_naming(&splatcast(&[os("info"), noise.as_os_str()]), "noise.mp4");
}

fn png_size_and_lit(path: &Path) -> (u32, u32, usize) {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let lit = buf[..info.buffer_size()]
        .chunks(3)
        .filter(|p| p.iter().any(|&v| v > 20))
        .count();
    (info.width, info.height, lit)
}

#[test]
fn render_and_eval_real_scenes() {
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("donut.png");
    let out = splatcast(&[
        os("render"),
        data("splat_donut_v3dg/fused.ply").as_os_str(),
        os("--camera"),
        os("45,30,2.5"),
        os("--size"),
        os("96x64"),
        os("-o"),
        png.as_os_str(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (w, h, lit) = png_size_and_lit(&png);
    assert_eq!((w, h), (96, 64));
    assert!(lit > 96 * 64 / 10, "the donut is visible: {lit} pixels");

    // A frame of an encode, and views from a transforms file.
    let frames = data("seq_playcanvas_wave/wave_000?.sog");
    let mp4 = dir.path().join("wave_gop4_medium.mp4");
    let enc = encode(&frames, &mp4, &["--gop", "4"]);
    assert!(
        enc.status.success(),
        "{}",
        String::from_utf8_lossy(&enc.stderr)
    );
    let frame_png = dir.path().join("wave5.png");
    let out = splatcast(&[
        os("render"),
        mp4.as_os_str(),
        os("--frame"),
        os("5"),
        os("--up"),
        os("+y"),
        os("--size"),
        os("80x60"),
        os("-o"),
        frame_png.as_os_str(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(png_size_and_lit(&frame_png).2 > 100);
    let fox_png = dir.path().join("fox_view.png");
    let out = splatcast(&[
        os("render"),
        data("splat_donut_v3dg/fused.ply").as_os_str(),
        os("--transforms"),
        data("mv_fox_instant_ngp/transforms.json").as_os_str(),
        os("--view"),
        os("3"),
        os("--size"),
        os("54x96"),
        os("-o"),
        fox_png.as_os_str(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(png_size_and_lit(&fox_png).0, 54);

    // eval: the encode against its source, with a chart.
    let chart = dir.path().join("rd.png");
    let out = splatcast(&[
        os("eval"),
        frames.as_os_str(),
        mp4.as_os_str(),
        os("--views"),
        os("4"),
        os("--size"),
        os("64x64"),
        os("--up"),
        os("+y"),
        os("--plot"),
        chart.as_os_str(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mean = stdout
        .lines()
        .find(|l| l.contains(" mean "))
        .expect("a mean line");
    let fields: Vec<f64> = mean
        .split_whitespace()
        .filter_map(|f| f.parse().ok())
        .collect();
    let (bpg, psnr, ssim) = (fields[0], fields[1], fields[2]);
    assert!(bpg > 0.1 && bpg < 5.0, "{mean}");
    assert!(psnr > 30.0 && ssim > 0.9, "{mean}");
    assert_eq!(
        stdout
            .lines()
            .filter(|l| l.contains("wave_gop4_medium.mp4"))
            .count(),
        10,
        "9 frames + mean"
    );
    assert!(png_size_and_lit(&chart).2 > 1000);

    // Bad requests: one line naming the problem, no output file.
    let bad = dir.path().join("bad.png");
    let out = splatcast(&[os("render"), os("/no/such.ply"), os("-o"), bad.as_os_str()]);
    assert_fails_naming(&out, "/no/such.ply");
    let out = splatcast(&[
        os("render"),
        data("splat_donut_v3dg/fused.ply").as_os_str(),
        os("--size"),
        os("0x10"),
        os("-o"),
        bad.as_os_str(),
    ]);
    assert_fails_naming(&out, "0x10");
    let out = splatcast(&[
        os("eval"),
        frames.as_os_str(),
        mp4.as_os_str(),
        os("--frames"),
        os("7..3"),
    ]);
    assert_fails_naming(&out, "7..3");
    assert!(!bad.exists());
}

/// Largest position and colour differences between two frames in the same order, colours of
/// `a` first clamped to what `ext` can hold (.splat: a byte of 0.5 + SH_C0·dc; SPZ: of
/// 0.5 + 0.15·dc).
fn worst(
    a: &splatcast_protocol::GaussianFrame,
    b: &splatcast_protocol::GaussianFrame,
    ext: &str,
) -> (f32, f32) {
    assert_eq!(a.len(), b.len());
    let limit = match ext {
        "splat" => 0.5 / 0.282_094_8,
        "spz" => 0.5 / 0.15,
        _ => f32::INFINITY,
    };
    let p = a
        .positions
        .iter()
        .zip(&b.positions)
        .map(|(p, q)| (*p - *q).abs().max_element())
        .fold(0.0f32, f32::max);
    let c = a
        .sh_dc
        .iter()
        .zip(&b.sh_dc)
        .map(|(x, y)| {
            (x.clamp(glam::Vec3::splat(-limit), glam::Vec3::splat(limit)) - *y)
                .abs()
                .max_element()
        })
        .fold(0.0f32, f32::max);
    (p, c)
}

#[test]
fn convert_writes_any_frame_as_ply_splat_and_spz() {
    let dir = tempfile::tempdir().unwrap();
    let source = data("splat_sh3_fixture_splatapult/test.ply");
    let original = splatcast_protocol::formats::load(&source).unwrap();
    // Positions: exact, exact, 12 fractional bits; colour: half a byte step of each format.
    for (ext, position, colour) in [
        ("ply", 0.0, 0.0),
        ("splat", 0.0, 0.51 / 255.0 / 0.282_094_8),
        ("spz", 0.5 / 4096.0, 0.51 / 255.0 / 0.15),
    ] {
        let out = dir.path().join(format!("fixture.{ext}"));
        let run = splatcast(&[os("convert"), source.as_os_str(), os("-o"), out.as_os_str()]);
        assert!(
            run.status.success(),
            "{}",
            String::from_utf8_lossy(&run.stderr)
        );
        let back = splatcast_protocol::formats::load(&out).unwrap();
        let (p, c) = worst(&original, &back, ext);
        assert!(p <= position && c <= colour, "{ext}: {p} {c}");
        assert_eq!(
            back.sh_degree,
            if ext == "splat" {
                0
            } else {
                original.sh_degree
            }
        );
    }
    // A Gaussian with a NaN position is dropped with one warning line; --strict refuses.
    let good = std::fs::read(&source).unwrap();
    let body = good.windows(11).position(|w| w == b"end_header\n").unwrap() + 11;
    let mut bad = good.clone();
    bad[body..body + 4].copy_from_slice(&f32::NAN.to_le_bytes());
    let nan = dir.path().join("nan.ply");
    std::fs::write(&nan, bad).unwrap();
    let out = dir.path().join("clean.ply");
    let run = splatcast(&[os("convert"), nan.as_os_str(), os("-o"), out.as_os_str()]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let err = String::from_utf8_lossy(&run.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("dropped 1 Gaussians") && err.contains("nan.ply"),
        "{err}"
    );
    let clean = splatcast_protocol::formats::load(&out).unwrap();
    assert_eq!(clean.len(), original.len() - 1);
    assert_eq!(clean.positions[0], original.positions[1]);
    let run = splatcast(&[
        os("convert"),
        nan.as_os_str(),
        os("-o"),
        out.as_os_str(),
        os("--strict"),
    ]);
    assert_fails_naming(&run, "nan.ply");

    // What we cannot write is refused before anything is read; a frame past the end names it.
    let run = splatcast(&[os("convert"), source.as_os_str(), os("-o"), os("x.sog")]);
    assert_fails_naming(&run, "x.sog");
    let run = splatcast(&[
        os("convert"),
        source.as_os_str(),
        os("-o"),
        dir.path().join("f.ply").as_os_str(),
        os("--frame"),
        os("3"),
    ]);
    assert_fails_naming(&run, "test.ply");
}

#[test]
#[ignore = "needs npm @playcanvas/splat-transform (installed by .ci/run)"]
fn splat_transform_reads_what_convert_writes() {
    let tool = std::env::var("SPLAT_TRANSFORM").expect("set SPLAT_TRANSFORM (see .ci/run)");
    let dir = tempfile::tempdir().unwrap();
    let source = data("splat_donut_v3dg/fused.ply");
    let original = splatcast_protocol::formats::load(&source).unwrap();
    for ext in ["ply", "splat", "spz"] {
        let ours = dir.path().join(format!("donut.{ext}"));
        let run = splatcast(&[
            os("convert"),
            source.as_os_str(),
            os("-o"),
            ours.as_os_str(),
        ]);
        assert!(
            run.status.success(),
            "{}",
            String::from_utf8_lossy(&run.stderr)
        );
        let theirs = dir.path().join(format!("donut.{ext}.ply"));
        let out = Command::new(&tool)
            .args(["-q", "-w", "-g", "cpu"])
            .arg(&ours)
            .arg(&theirs)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{ext}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let read = splatcast_protocol::formats::load(&theirs).unwrap();
        let (p, c) = worst(&original, &read, ext);
        eprintln!("{ext}: splat-transform read it back within {p} (position), {c} (DC)");
        // .splat keeps f32 positions and 8-bit colour; SPZ 24-bit fixed point (12 bits of
        // fraction here) and colour in 1/(255·0.15).
        let (pmax, cmax) = match ext {
            "ply" => (1e-6, 1e-6),
            "splat" => (1e-6, 0.51 / 255.0 / 0.282_094_8),
            _ => (0.5 / 4096.0 + 1e-6, 0.51 / 255.0 / 0.15),
        };
        assert!(p <= pmax && c <= cmax, "{ext}: {p} {c}");
    }
}

/// `--bitrate` is what the file comes to — planes, side data and container — within 10 %, on a
/// sequence and on a single frame, at a low and a high target.
#[test]
fn bitrate_lands_on_its_target() {
    let dir = tempfile::tempdir().unwrap();
    let frames = wave_frames(dir.path(), 12);
    let cases = [
        (frames.join("wave_*.sog"), 12.0, "300k"),
        (frames.join("wave_*.sog"), 12.0, "1.2M"),
        (frames.join("wave_0001.sog"), 1.0, "12M"),
    ];
    for (input, count, rate) in cases {
        let mp4 = dir.path().join(format!("w{rate}.mp4"));
        let out = encode(&input, &mp4, &["--gop", "6", "--bitrate", rate]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let bits = std::fs::metadata(&mp4).unwrap().len() as f64 * 8.0;
        let per_second = bits * 30.0 / count;
        let target: f64 = match rate {
            "300k" => 3e5,
            "1.2M" => 1.2e6,
            _ => 1.2e7,
        };
        let off = per_second / target - 1.0;
        assert!(off.abs() < 0.1, "{rate}: {per_second:.0} bit/s ({off:+.3})");
    }
}

/// `encode --as-live` records what `publish` sends live: a valid file whose last GOP is shorter
/// than its side data declared, every frame readable.
#[test]
fn a_live_recording_reads_back_whole() {
    let dir = tempfile::tempdir().unwrap();
    let frames = wave_frames(dir.path(), 12);
    let mp4 = dir.path().join("live.mp4");
    let out = encode(
        &frames.join("wave_*.sog"),
        &mp4,
        &["--as-live", "--gop", "5"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let info = splatcast(&[os("info"), mp4.as_os_str()]);
    let text = String::from_utf8_lossy(&info.stdout);
    assert!(text.contains("total 12 frames"), "{text}");
    let decoded = dir.path().join("out");
    let out = splatcast(&[os("decode"), mp4.as_os_str(), os("-o"), decoded.as_os_str()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read_dir(&decoded).unwrap().count(), 12);
}

/// One frame leaves out exactly the Gaussians fainter than the preset's threshold (0.05 at
/// Medium), and `--prune-below 0` keeps them all.
#[test]
fn faint_gaussians_are_left_out_unless_asked_to_keep_them() {
    let dir = tempfile::tempdir().unwrap();
    let source = data("splat_donut_v3dg/fused.ply");
    let input = splatcast_protocol::formats::load(&source).unwrap();
    let logit = (0.05f32 / 0.95).ln();
    let bright = input.opacity_logits.iter().filter(|&&o| o >= logit).count();
    assert!(bright < input.len(), "the donut holds faint Gaussians");
    let (stream, back) = (dir.path().join("donut.mp4"), dir.path().join("back.ply"));
    let decoded_count = |extra: &[&str]| -> usize {
        let runs = [
            encode(&source, &stream, extra),
            splatcast(&[os("convert"), os(&stream), os("-o"), os(&back)]),
        ];
        for run in runs {
            assert!(
                run.status.success(),
                "{}",
                String::from_utf8_lossy(&run.stderr)
            );
        }
        splatcast_protocol::formats::load(&back).unwrap().len()
    };
    assert_eq!(decoded_count(&[]), bright);
    assert_eq!(decoded_count(&["--prune-below", "0"]), input.len());
}
