//! Our readers and writer against npm `@playcanvas/splat-transform` as an oracle: files it
//! writes (SPZ v3/v4, SOG with SH palettes) must read as it reads them, and PLY we write must
//! survive its round trip. `.ci/run` installs the tool and sets `SPLAT_TRANSFORM`.

use std::path::{Path, PathBuf};
use std::process::Command;

use splatcast_protocol::GaussianFrame;
use splatcast_protocol::formats::{self, ply};
use splatcast_protocol::gaussian::{canonical_rotation, sigmoid};

fn data(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/data")
        .join(rel)
}

fn convert(input: &Path, output: &Path, extra: &[&str]) {
    let tool = std::env::var("SPLAT_TRANSFORM")
        .expect("set SPLAT_TRANSFORM to the splat-transform binary (see .ci/run)");
    let out = Command::new(tool)
        .args(["-q", "-w", "-g", "cpu"])
        .arg(input)
        .arg(output)
        .args(extra)
        .output()
        .expect("run splat-transform");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Largest per-attribute differences between two frames in the same order.
fn worst(a: &GaussianFrame, b: &GaussianFrame) -> [f32; 5] {
    assert_eq!(a.len(), b.len());
    let mut w = [0.0f32; 5];
    for i in 0..a.len() {
        let e = [
            (a.positions[i] - b.positions[i]).abs().max_element(),
            (a.log_scales[i] - b.log_scales[i]).abs().max_element(),
            (a.sh_dc[i] - b.sh_dc[i]).abs().max_element(),
            (sigmoid(a.opacity_logits[i]) - sigmoid(b.opacity_logits[i])).abs(),
            1.0 - canonical_rotation(a.rotations[i])
                .dot(canonical_rotation(b.rotations[i]))
                .abs(),
        ];
        for (w, e) in w.iter_mut().zip(e) {
            *w = w.max(e);
        }
    }
    w
}

#[test]
#[ignore = "needs npm @playcanvas/splat-transform (installed by .ci/run)"]
fn spz_written_by_splat_transform_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut source = formats::load(&data("splat_donut_v3dg/fused.ply")).unwrap();
    // SPZ stores colour as a byte of 0.5 + 0.15·f_dc: values beyond that clamp.
    let limit = 0.5 / 0.15;
    source
        .sh_dc
        .iter_mut()
        .for_each(|c| *c = c.clamp(glam::Vec3::splat(-limit), glam::Vec3::splat(limit)));
    for version in ["3", "4"] {
        let spz = dir.path().join(format!("donut{version}.spz"));
        convert(
            &data("splat_donut_v3dg/fused.ply"),
            &spz,
            &["--spz-version", version],
        );
        let ours = formats::load(&spz).unwrap();
        let w = worst(&source, &ours);
        // SPZ quantisation: 12 fractional position bits, scales in 1/16, colours in 1/(255·0.15).
        assert!(
            w[0] <= 1.0 / 4096.0 && w[1] <= 1.0 / 32.0 + 1e-4,
            "v{version}: {w:?}"
        );
        assert!(
            w[2] <= 0.5 / (255.0 * 0.15) + 1e-3 && w[3] <= 0.5 / 255.0 + 1e-4,
            "v{version}: {w:?}"
        );
        assert!(w[4] < 1e-3, "v{version}: {w:?}");
    }
}

#[test]
#[ignore = "needs npm @playcanvas/splat-transform (installed by .ci/run)"]
fn sog_with_sh_palette_matches_splat_transform_decode() {
    let dir = tempfile::tempdir().unwrap();
    for (name, rel) in [
        ("sh3", "splat_sh3_fixture_splatapult/test.ply"),
        ("donut", "splat_donut_v3dg/fused.ply"),
    ] {
        let sog = dir.path().join(format!("{name}.sog"));
        let back = dir.path().join(format!("{name}.back.ply"));
        convert(&data(rel), &sog, &[]);
        convert(&sog, &back, &[]);
        let ours = formats::load(&sog).unwrap();
        let theirs = formats::load(&back).unwrap();
        assert_eq!(ours.sh_degree, theirs.sh_degree, "{name}");
        let w = worst(&ours, &theirs);
        assert!(w.iter().all(|&e| e < 1e-4), "{name}: {w:?}");
        let k = ours.rest_per_gaussian();
        for i in 0..ours.len() * k {
            assert!(
                (ours.sh_rest[i] - theirs.sh_rest[i]).abs().max_element() < 1e-4,
                "{name} SH {i}"
            );
        }
    }
}

#[test]
#[ignore = "needs npm @playcanvas/splat-transform (installed by .ci/run)"]
fn ply_we_write_survives_splat_transform() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = formats::load(&data("splat_sh3_fixture_splatapult/test.ply")).unwrap();
    let ours = dir.path().join("ours.ply");
    std::fs::write(&ours, ply::write(&fixture)).unwrap();
    let back = dir.path().join("back.ply");
    convert(&ours, &back, &[]);
    assert_eq!(formats::load(&back).unwrap(), fixture);
}

#[test]
#[ignore = "needs npm @playcanvas/splat-transform (installed by .ci/run)"]
fn compressed_ply_reads_as_splat_transform_decompresses_it() {
    let dir = tempfile::tempdir().unwrap();
    for (name, source) in [
        ("donut", "splat_donut_v3dg/fused.ply"),
        ("sh3", "splat_sh3_fixture_splatapult/test.ply"),
    ] {
        // SuperSplat's export format, then splat-transform's own decompression of it.
        let compressed = dir.path().join(format!("{name}.compressed.ply"));
        convert(&data(source), &compressed, &[]);
        let plain = dir.path().join(format!("{name}.plain.ply"));
        convert(&compressed, &plain, &[]);
        let ours = formats::load(&compressed).unwrap();
        let theirs = formats::load(&plain).unwrap();
        assert_eq!(ours.sh_degree, theirs.sh_degree, "{name}");
        assert_eq!(
            ours.sh_degree,
            formats::load(&data(source)).unwrap().sh_degree,
            "{name}: SH bands kept"
        );
        let w = worst(&ours, &theirs);
        // Same formulas; their ±inf opacities (0 and 255) read as ours: finite, 0 and 1.
        assert!(
            w[0] < 1e-5 && w[1] < 1e-5 && w[2] < 1e-4 && w[3] < 1e-5 && w[4] < 1e-6,
            "{name}: {w:?}"
        );
        let rest = ours
            .sh_rest
            .iter()
            .zip(&theirs.sh_rest)
            .map(|(a, b)| (*a - *b).abs().max_element())
            .fold(0.0f32, f32::max);
        assert!(rest < 1e-5, "{name}: SH {rest}");
    }
}
