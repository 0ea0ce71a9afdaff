//! Golden images: the real donut scene and the SH degree-3 fixture rendered on GL from fixed
//! cameras, compared with small PNGs in `tests/golden/` (PSNR ≥ 45 dB, which allows the float
//! differences between GPUs and drivers but not a changed kernel). `SPLATCAST_BLESS=1` rewrites
//! them after an intended change.

use std::path::{Path, PathBuf};

use glam::DVec3;
use splatcast_protocol::{GaussianFrame, formats};
use splatcast_shaders::{Camera, Gpu, Renderer, metrics, reference, render_frame};

fn data(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/data")
        .join(rel)
}

fn golden_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name)
}

fn view(frame: &GaussianFrame, azimuth: f64, distance: f64) -> Camera {
    let n = frame.len() as f64;
    let centre = frame.positions.iter().map(|p| p.as_dvec3()).sum::<DVec3>() / n;
    let radius = frame
        .positions
        .iter()
        .map(|p| p.as_dvec3().distance(centre))
        .fold(0.0, f64::max);
    let a = azimuth.to_radians();
    let eye = centre + DVec3::new(a.sin(), -0.5, -a.cos()) * distance * radius;
    Camera::look_at(eye, centre, DVec3::NEG_Y, 45.0, 160, 120)
}

fn read_png(path: &Path) -> Vec<[f32; 3]> {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!(info.color_type, png::ColorType::Rgb);
    buf[..info.buffer_size()]
        .chunks(3)
        .map(|p| {
            [
                p[0] as f32 / 255.0,
                p[1] as f32 / 255.0,
                p[2] as f32 / 255.0,
            ]
        })
        .collect()
}

fn write_png(path: &Path, width: u32, height: u32, rgb: &[u8]) {
    let file = std::fs::File::create(path).unwrap();
    let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), width, height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    encoder
        .write_header()
        .unwrap()
        .write_image_data(rgb)
        .unwrap();
}

fn check(
    gpu: &Gpu,
    renderer: &Renderer,
    frame: &GaussianFrame,
    camera: &Camera,
    name: &str,
) -> Vec<[f32; 3]> {
    let image = render_frame(gpu, renderer, frame, camera, DVec3::splat(0.1)).unwrap();
    let rgb8 = image.to_rgb8();
    let path = golden_path(name);
    if std::env::var_os("SPLATCAST_BLESS").is_some() {
        write_png(&path, image.width, image.height, &rgb8);
    }
    let golden = read_png(&path);
    let got: Vec<[f32; 3]> = rgb8
        .chunks(3)
        .map(|p| {
            [
                p[0] as f32 / 255.0,
                p[1] as f32 / 255.0,
                p[2] as f32 / 255.0,
            ]
        })
        .collect();
    let psnr = metrics::psnr(&got, &golden);
    assert!(
        psnr >= 45.0,
        "{name}: {psnr:.1} dB against the golden image"
    );
    let lit = got
        .iter()
        .filter(|p| (p[0] - 0.1).abs() + (p[1] - 0.1).abs() + (p[2] - 0.1).abs() > 0.05)
        .count();
    assert!(
        lit > got.len() / 20,
        "{name}: only {lit} pixels show the scene"
    );
    image.rgba.iter().map(|p| [p[0], p[1], p[2]]).collect()
}

#[test]
fn donut_and_sh3_fixture_match_golden_images() {
    let gpu = Gpu::with_backends(wgpu::Backends::GL).unwrap();
    let renderer = Renderer::new(&gpu);
    let donut = formats::load(&data("splat_donut_v3dg/fused.ply")).unwrap();
    for (i, azimuth) in [0.0, 120.0].into_iter().enumerate() {
        check(
            &gpu,
            &renderer,
            &donut,
            &view(&donut, azimuth, 2.2),
            &format!("donut_{i}.png"),
        );
    }
    let fixture = formats::load(&data("splat_sh3_fixture_splatapult/test.ply")).unwrap();
    assert_eq!(fixture.sh_degree, 3);
    for (i, azimuth) in [30.0, 200.0].into_iter().enumerate() {
        let camera = view(&fixture, azimuth, 2.5);
        let got = check(
            &gpu,
            &renderer,
            &fixture,
            &camera,
            &format!("sh3_fixture_{i}.png"),
        );
        // The fixture is small enough for the f64 reference too.
        let want = reference::render(&fixture, &camera, DVec3::splat(0.1)).unwrap();
        let want: Vec<[f32; 3]> = want.rgb.iter().map(|c| c.as_vec3().to_array()).collect();
        assert!(metrics::psnr(&got, &want) >= 50.0);
    }
}
