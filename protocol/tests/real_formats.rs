//! Readers checked against real third-party files in ../shared/data.

use std::path::PathBuf;

use splatcast_protocol::formats::{self, ply};
use splatcast_protocol::gaussian::{canonical_rotation, sigmoid};

fn data(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/data")
        .join(rel)
}

#[test]
fn sog_matches_splat_transform_reference_decode() {
    let sog = formats::load(&data("seq_playcanvas_wave/wave_0001.sog")).unwrap();
    let reference = formats::load(&data("seq_playcanvas_wave/wave_0001.decoded.ply")).unwrap();
    assert_eq!(sog.len(), 4225);
    assert_eq!(sog.len(), reference.len());
    let mut worst = [0.0f32; 5];
    for i in 0..sog.len() {
        let e = [
            (sog.positions[i] - reference.positions[i])
                .abs()
                .max_element(),
            (sog.log_scales[i] - reference.log_scales[i])
                .abs()
                .max_element(),
            (sog.sh_dc[i] - reference.sh_dc[i]).abs().max_element(),
            (sigmoid(sog.opacity_logits[i]) - sigmoid(reference.opacity_logits[i])).abs(),
            1.0 - canonical_rotation(sog.rotations[i])
                .dot(canonical_rotation(reference.rotations[i]))
                .abs(),
        ];
        for (w, e) in worst.iter_mut().zip(e) {
            *w = w.max(e);
        }
    }
    assert!(worst.iter().all(|&w| w < 1e-5), "worst errors {worst:?}");
}

#[test]
fn donut_and_sh3_fixture_roundtrip_through_ply_writer() {
    for (rel, n, degree) in [
        ("splat_donut_v3dg/fused.ply", 45_624, 0),
        ("splat_sh3_fixture_splatapult/test.ply", 16, 3),
    ] {
        let f = formats::load(&data(rel)).unwrap();
        assert_eq!((f.len(), f.sh_degree), (n, degree), "{rel}");
        assert_eq!(ply::read(&ply::write(&f)).unwrap(), f, "{rel}");
    }
}

#[test]
fn load_names_the_file_in_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.ply");
    let good = std::fs::read(data("splat_donut_v3dg/fused.ply")).unwrap();
    std::fs::write(&path, &good[..good.len() / 2]).unwrap();
    let msg = formats::load(&path).unwrap_err().to_string();
    assert!(
        msg.contains("broken.ply") && msg.contains("truncated"),
        "{msg}"
    );
    let sog = std::fs::read(data("seq_playcanvas_wave/wave_0002.sog")).unwrap();
    let path = dir.path().join("cut.sog");
    std::fs::write(&path, &sog[..sog.len() - 100]).unwrap();
    let msg = formats::load(&path).unwrap_err().to_string();
    assert!(msg.contains("cut.sog"), "{msg}");
}
