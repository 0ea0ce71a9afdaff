//! The GPU renderer against the f64 CPU reference, on small scenes, on GL (llvmpipe, always
//! present) and — in the apt group — Vulkan (lavapipe).

use glam::{DVec3, Quat, Vec3};
use splatcast_protocol::GaussianFrame;
use splatcast_shaders::present::Presenter;
use splatcast_shaders::reference;
use splatcast_shaders::synthetic::Rng;
use splatcast_shaders::{Camera, Gpu, GpuGaussians, RenderBuffers, Renderer};

fn scene(n: usize, sh_degree: u8, seed: u64) -> GaussianFrame {
    let mut rng = Rng::new(seed);
    let rest = [0, 3, 8, 15][sh_degree as usize];
    let mut f = GaussianFrame::with_capacity(n, sh_degree);
    for _ in 0..n {
        f.positions.push(Vec3::new(
            rng.range(-1.0, 1.0),
            rng.range(-1.0, 1.0),
            rng.range(-1.0, 1.0),
        ));
        f.rotations.push(Quat::from_xyzw(
            rng.range(-1.0, 1.0),
            rng.range(-1.0, 1.0),
            rng.range(-1.0, 1.0),
            rng.range(-1.0, 1.0),
        ));
        f.log_scales.push(Vec3::new(
            rng.range(-4.0, -1.5),
            rng.range(-4.0, -1.5),
            rng.range(-4.0, -1.5),
        ));
        f.opacity_logits.push(rng.range(-2.0, 4.0));
        f.sh_dc.push(Vec3::new(
            rng.range(-1.5, 1.5),
            rng.range(-1.5, 1.5),
            rng.range(-1.5, 1.5),
        ));
        for _ in 0..rest {
            f.sh_rest.push(Vec3::new(
                rng.range(-0.3, 0.3),
                rng.range(-0.3, 0.3),
                rng.range(-0.3, 0.3),
            ));
        }
    }
    f
}

fn camera(width: u32, height: u32, eye: DVec3) -> Camera {
    Camera::look_at(eye, DVec3::ZERO, DVec3::NEG_Y, 50.0, width, height)
}

fn psnr(mse: f64) -> f64 {
    10.0 * (1.0 / mse.max(1e-20)).log10()
}

/// PSNR of GPU RGBA pixels against reference RGB.
fn psnr_against(got: &[[f32; 4]], want: &[DVec3]) -> f64 {
    assert_eq!(got.len(), want.len());
    let mse: f64 = got
        .iter()
        .zip(want)
        .map(|(g, w)| {
            (g[0] as f64 - w.x).powi(2) + (g[1] as f64 - w.y).powi(2) + (g[2] as f64 - w.z).powi(2)
        })
        .sum::<f64>()
        / (3 * got.len()) as f64;
    psnr(mse)
}

/// Renders on the GPU with the image poisoned (NaN) first and returns (rgb PSNR, alpha max error,
/// depth max relative error).
fn compare(
    gpu: &Gpu,
    renderer: &Renderer,
    frame: &GaussianFrame,
    cam: &Camera,
    bg: DVec3,
) -> (f64, f64, f64) {
    let gaussians = GpuGaussians::upload(gpu, frame).unwrap();
    let buffers = renderer
        .buffers(gpu, &gaussians, cam.width, cam.height, 1 << 16)
        .unwrap();
    let pixels = (cam.width * cam.height) as usize;
    gpu.queue.write_buffer(
        &buffers.image,
        0,
        bytemuck::cast_slice(&vec![f32::NAN; pixels * 8]),
    );
    renderer.set_view(gpu, &buffers, cam, bg.as_vec3()).unwrap();
    let mut encoder = gpu.device.create_command_encoder(&Default::default());
    renderer.encode(&mut encoder, &buffers, None);
    gpu.queue.submit([encoder.finish()]);
    assert!(renderer.pairs_wanted(gpu, &buffers).unwrap() <= buffers.capacity());
    let got = splatcast_shaders::renderer::read_image(gpu, &buffers).unwrap();
    let want = reference::render(frame, cam, bg).unwrap();
    assert_eq!(got.rgba.len(), pixels);
    let (mut alpha_err, mut depth_err) = (0.0f64, 0.0f64);
    for p in 0..pixels {
        let g = got.rgba[p];
        assert!(
            g.iter().chain(&got.aux[p]).all(|v| v.is_finite()),
            "pixel {p} not written or NaN: {g:?}"
        );
        alpha_err = alpha_err.max((g[3] as f64 - want.alpha[p]).abs());
        depth_err = depth_err
            .max((got.aux[p][0] as f64 - want.depth[p]).abs() / want.depth[p].abs().max(1.0));
    }
    (psnr_against(&got.rgba, &want.rgb), alpha_err, depth_err)
}

fn check_backend(backends: wgpu::Backends) {
    let gpu = Gpu::with_backends(backends).expect("a GPU adapter (llvmpipe / lavapipe)");
    eprintln!("adapter: {}", gpu.describe());
    let renderer = Renderer::new(&gpu);
    let cases = [
        (
            scene(300, 3, 7),
            camera(64, 48, DVec3::new(0.3, -0.5, -3.5)),
            DVec3::new(0.1, 0.2, 0.3),
        ),
        (
            scene(500, 0, 11),
            camera(37, 53, DVec3::new(-2.0, 1.0, -2.5)),
            DVec3::ZERO,
        ),
        (
            scene(200, 1, 13),
            camera(80, 40, DVec3::new(0.0, 0.0, -1.2)),
            DVec3::ONE,
        ),
        (
            scene(400, 2, 17),
            camera(33, 33, DVec3::new(1.5, -1.5, 2.0)),
            DVec3::new(0.5, 0.0, 1.0),
        ),
        // Several sort blocks, hundreds of splats per tile (many batches), early termination.
        (
            scene(9000, 1, 19),
            camera(96, 72, DVec3::new(0.0, 2.0, -3.0)),
            DVec3::new(0.2, 0.2, 0.2),
        ),
    ];
    for (i, (frame, cam, bg)) in cases.iter().enumerate() {
        let (psnr, alpha, depth) = compare(&gpu, &renderer, frame, cam, *bg);
        eprintln!("case {i}: {psnr:.1} dB, alpha err {alpha:.2e}, depth err {depth:.2e}");
        assert!(psnr >= 50.0, "case {i}: {psnr:.1} dB");
        assert!(
            alpha < 0.02 && depth < 0.02,
            "case {i}: alpha {alpha}, depth {depth}"
        );
    }
}

#[test]
fn gl_matches_cpu_reference() {
    check_backend(wgpu::Backends::GL);
}

#[test]
#[ignore = "needs Vulkan (mesa-vulkan-drivers); .ci/run installs it"]
fn vulkan_matches_cpu_reference() {
    check_backend(wgpu::Backends::VULKAN);
}

#[test]
fn grows_when_tiles_overflow_and_survives_degenerate_gaussians() {
    let gpu = Gpu::with_backends(wgpu::Backends::GL).unwrap();
    let renderer = Renderer::new(&gpu);
    let mut frame = scene(2000, 0, 23);
    // NaN position, zero quaternion, huge and tiny scales, NaN opacity, a Gaussian at the eye.
    frame.positions[0] = Vec3::NAN;
    frame.rotations[1] = Quat::from_xyzw(0.0, 0.0, 0.0, 0.0);
    frame.log_scales[2] = Vec3::splat(40.0);
    frame.log_scales[3] = Vec3::splat(-60.0);
    frame.opacity_logits[4] = f32::NAN;
    frame.log_scales[5] = Vec3::new(f32::NAN, 0.0, 0.0);
    frame.positions[6] = Vec3::new(0.0, 0.0, -0.4);
    let cam = camera(70, 50, DVec3::new(0.0, 0.0, -0.4));
    let gaussians = GpuGaussians::upload(&gpu, &frame).unwrap();
    let mut buffers = Some(renderer.buffers(&gpu, &gaussians, 70, 50, 64).unwrap());
    let img = renderer
        .render(
            &gpu,
            &gaussians,
            &mut buffers,
            &cam,
            Vec3::new(0.0, 0.5, 0.0),
        )
        .unwrap();
    assert!(buffers.as_ref().unwrap().capacity() > 64, "capacity grew");
    assert!(img.rgba.iter().flatten().all(|v| v.is_finite()));
    let want = reference::render(&frame, &cam, DVec3::new(0.0, 0.5, 0.0)).unwrap();
    let db = psnr_against(&img.rgba, &want.rgb);
    assert!(db > 50.0, "{db:.1} dB");
    let mut bad = cam;
    bad.width = 0;
    assert!(
        renderer
            .render(&gpu, &gaussians, &mut buffers, &bad, Vec3::ZERO)
            .is_err()
    );
}

#[test]
fn images_larger_than_a_binding_render_in_strips_identically() {
    let gpu = Gpu::with_backends(wgpu::Backends::GL).unwrap();
    let renderer = Renderer::new(&gpu);
    // Few Gaussians, so the f64 reference of the whole tall image stays cheap.
    let frame = scene(40, 1, 29);
    let gaussians = GpuGaussians::upload(&gpu, &frame).unwrap();
    // 2048 × 32 bytes per row; a 128 MiB binding holds 2048 rows, so 4100 rows take 3 strips.
    let cam = camera(2048, 4100, DVec3::new(0.2, -0.3, -3.0));
    assert!(
        gpu.max_binding() < 2048 * 4100 * 32,
        "the test needs a device that has to strip"
    );
    let got = renderer
        .render(&gpu, &gaussians, &mut None, &cam, Vec3::ZERO)
        .unwrap();
    let want = reference::render(&frame, &cam, DVec3::ZERO).unwrap();
    assert_eq!(got.rgba.len(), want.rgb.len());
    let db = psnr_against(&got.rgba, &want.rgb);
    assert!(db > 50.0, "{db:.1} dB with strips");
    let seam = &got.rgba[2040 * 2048..2060 * 2048];
    assert!(
        seam.iter().any(|p| p[3] > 0.1),
        "the scene crosses the strip seam"
    );
}

#[test]
fn downlevel_limits_render_like_the_desktop_device() {
    // What a GLES 3.1 phone offers: downlevel_defaults, no optional features.
    let gpu = Gpu::downlevel(wgpu::Backends::GL).unwrap();
    assert!(!gpu.timestamps && !gpu.subgroups);
    assert_eq!(
        gpu.device.limits().max_storage_buffers_per_shader_stage,
        wgpu::Limits::downlevel_defaults().max_storage_buffers_per_shader_stage
    );
    let renderer = Renderer::new(&gpu);
    let frame = scene(300, 2, 31);
    let cam = camera(96, 72, DVec3::new(0.3, -0.2, -3.0));
    let gaussians = GpuGaussians::upload(&gpu, &frame).unwrap();
    let got = renderer
        .render(&gpu, &gaussians, &mut None, &cam, Vec3::ZERO)
        .unwrap();
    let want = reference::render(&frame, &cam, DVec3::ZERO).unwrap();
    let db = psnr_against(&got.rgba, &want.rgb);
    assert!(db > 50.0, "{db:.1} dB on downlevel limits");
}

/// Draws the last render of `b` onto a new `format` texture of `w`×`h` and reads it back.
fn present_to(
    gpu: &Gpu,
    presenter: &mut Presenter,
    b: &RenderBuffers,
    format: wgpu::TextureFormat,
    (w, h): (u32, u32),
) -> Vec<u8> {
    let texture = gpu.device.create_texture(&wgpu::TextureDescriptor {
        label: None,
        size: wgpu::Extent3d {
            width: w,
            height: h,
            depth_or_array_layers: 1,
        },
        mip_level_count: 1,
        sample_count: 1,
        dimension: wgpu::TextureDimension::D2,
        format,
        usage: wgpu::TextureUsages::RENDER_ATTACHMENT | wgpu::TextureUsages::COPY_SRC,
        view_formats: &[],
    });
    let row = (w * 4).next_multiple_of(256);
    let out = gpu.storage(
        "present readback",
        (row * h) as u64,
        wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::COPY_SRC,
    );
    let mut encoder = gpu.device.create_command_encoder(&Default::default());
    let view = texture.create_view(&Default::default());
    presenter.encode(gpu, &mut encoder, b, &view, format, (w, h));
    encoder.copy_texture_to_buffer(
        texture.as_image_copy(),
        wgpu::TexelCopyBufferInfo {
            buffer: &out,
            layout: wgpu::TexelCopyBufferLayout {
                offset: 0,
                bytes_per_row: Some(row),
                rows_per_image: None,
            },
        },
        wgpu::Extent3d {
            width: w,
            height: h,
            depth_or_array_layers: 1,
        },
    );
    gpu.queue.submit([encoder.finish()]);
    let raw = gpu.read(&out, (row * h) as u64).unwrap();
    raw.chunks_exact(row as usize)
        .flat_map(|r| {
            r[..(w * 4) as usize]
                .chunks_exact(4)
                .flat_map(|p| [p[0], p[1], p[2]])
        })
        .collect::<Vec<u8>>()
}

#[test]
fn present_draws_the_rendered_image_onto_colour_targets() {
    let gpu = Gpu::with_backends(wgpu::Backends::GL).unwrap();
    let renderer = Renderer::new(&gpu);
    let mut presenter = Presenter::new(&gpu);
    let frame = scene(200, 1, 37);
    let cam = camera(32, 24, DVec3::new(0.1, -0.2, -3.0));
    let gaussians = GpuGaussians::upload(&gpu, &frame).unwrap();
    let mut buffers = None;
    let image = renderer
        .render(
            &gpu,
            &gaussians,
            &mut buffers,
            &cam,
            Vec3::new(0.1, 0.2, 0.3),
        )
        .unwrap();
    let want = image.to_rgb8();
    let b = buffers.as_ref().unwrap();
    // Same size, on an sRGB target (what bevy's views are) and a plain one: the bytes the
    // CLI's PNGs hold, to rounding.
    for format in [
        wgpu::TextureFormat::Rgba8UnormSrgb,
        wgpu::TextureFormat::Rgba8Unorm,
    ] {
        let got = present_to(&gpu, &mut presenter, b, format, (32, 24));
        let worst = got
            .iter()
            .zip(&want)
            .map(|(a, b)| a.abs_diff(*b))
            .max()
            .unwrap();
        assert!(worst <= 1, "{format:?}: off by {worst}");
    }
    // Twice the size: each rendered pixel covers 2×2 target pixels.
    let got = present_to(
        &gpu,
        &mut presenter,
        b,
        wgpu::TextureFormat::Rgba8Unorm,
        (64, 48),
    );
    for (y, x) in [(0, 0), (5, 9), (47, 63), (30, 17)] {
        let (g, w) = ((y * 64 + x) * 3, ((y / 2) * 32 + x / 2) * 3);
        for c in 0..3 {
            assert!(got[g + c].abs_diff(want[w + c]) <= 1, "pixel {x},{y}");
        }
    }
}
