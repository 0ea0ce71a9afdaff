//! The backward pass against central finite differences of the f64 CPU reference: every
//! parameter of every Gaussian of a small scene whose footprints all cover the whole image (no
//! pixel crosses a cut-off when a parameter moves, so the loss is smooth there), on GL and
//! Vulkan; random scenes with degenerate Gaussians never give NaN gradients; and on a crowd of
//! opaque Gaussians, reused buffers and the two accumulation strategies give the same gradients.

use glam::{DVec3, Quat, Vec3};
use splatcast_protocol::GaussianFrame;
use splatcast_shaders::backward::Backward;
use splatcast_shaders::{Camera, Gpu, GpuGaussians, Renderer, reference};

const W: u32 = 24;
const H: u32 = 20;

fn scene() -> GaussianFrame {
    let mut f = GaussianFrame::with_capacity(4, 1);
    let specs = [
        (
            Vec3::new(0.05, -0.02, 0.0),
            Vec3::new(0.9, 1.2, 1.0),
            Quat::from_xyzw(0.2, 0.1, -0.3, 0.9),
            0.2,
            Vec3::new(0.8, -0.4, 0.3),
        ),
        (
            Vec3::new(-0.08, 0.06, 0.5),
            Vec3::new(1.3, 0.95, 1.1),
            Quat::from_xyzw(-0.1, 0.4, 0.2, 0.85),
            -0.3,
            Vec3::new(-0.5, 0.6, 0.1),
        ),
        (
            Vec3::new(0.03, 0.09, -0.4),
            Vec3::new(1.0, 1.1, 1.4),
            Quat::from_xyzw(0.3, -0.2, 0.1, 0.9),
            0.5,
            Vec3::new(0.2, 0.1, -0.7),
        ),
        (
            Vec3::new(-0.04, -0.07, 0.9),
            Vec3::new(1.2, 1.0, 0.9),
            Quat::from_xyzw(0.0, 0.1, 0.5, 0.8),
            0.0,
            Vec3::new(0.4, 0.4, 0.9),
        ),
    ];
    for (k, (p, s, q, o, dc)) in specs.into_iter().enumerate() {
        f.positions.push(p);
        f.log_scales.push(Vec3::new(s.x.ln(), s.y.ln(), s.z.ln()));
        f.rotations.push(q);
        f.opacity_logits.push(o);
        f.sh_dc.push(dc);
        for j in 0..3 {
            let v = 0.01 * (k * 3 + j) as f32;
            f.sh_rest.push(Vec3::new(v, -v, 0.5 * v));
        }
    }
    f
}

fn camera() -> Camera {
    Camera::look_at(
        DVec3::new(0.3, -0.2, -3.0),
        DVec3::ZERO,
        DVec3::NEG_Y,
        50.0,
        W,
        H,
    )
}

/// Per pixel loss weights (the loss is Σ weight · colour).
fn weights() -> Vec<[f32; 4]> {
    (0..W * H)
        .map(|i| {
            let (x, y) = ((i % W) as f32, (i / W) as f32);
            [(0.3 * x).sin(), (0.2 * y + 1.0).cos(), 0.5 + 0.02 * x, 0.0]
        })
        .collect()
}

fn cpu_loss(frame: &GaussianFrame, w: &[[f32; 4]]) -> f64 {
    let img = reference::render(frame, &camera(), DVec3::new(0.1, 0.2, 0.3)).unwrap();
    img.rgb
        .iter()
        .zip(w)
        .map(|(c, w)| c.x * w[0] as f64 + c.y * w[1] as f64 + c.z * w[2] as f64)
        .sum()
}

/// Parameter `k` of Gaussian `i` in the GPU record order.
fn param(f: &mut GaussianFrame, i: usize, k: usize) -> &mut f32 {
    match k {
        0..=2 => &mut f.positions[i][k],
        3 => &mut f.opacity_logits[i],
        4..=6 => &mut f.log_scales[i][k - 4],
        7 => &mut f.rotations[i].x,
        8 => &mut f.rotations[i].y,
        9 => &mut f.rotations[i].z,
        10 => &mut f.rotations[i].w,
        11..=13 => &mut f.sh_dc[i][k - 11],
        _ => {
            let j = k - 14;
            &mut f.sh_rest[i * 3 + j / 3][j % 3]
        }
    }
}

#[test]
fn gradients_match_finite_differences_of_the_reference_on_gl() {
    check_gradients(wgpu::Backends::GL, false);
}

#[test]
#[ignore = "needs Vulkan (mesa-vulkan-drivers); .ci/run installs it"]
fn gradients_match_finite_differences_of_the_reference_on_vulkan() {
    check_gradients(wgpu::Backends::VULKAN, false);
}

#[test]
#[ignore = "needs Vulkan (mesa-vulkan-drivers); .ci/run installs it"]
fn gradients_summed_over_subgroups_match_finite_differences_on_vulkan() {
    check_gradients(wgpu::Backends::VULKAN, true);
}

/// Checks the backward pass on `backends`, with subgroup sums (`subgroups`, which the adapter
/// must offer) or workgroup atomics alone.
fn check_gradients(backends: wgpu::Backends, subgroups: bool) {
    let mut gpu = Gpu::with_backends(backends).unwrap();
    assert!(
        gpu.subgroups || !subgroups,
        "{} offers no subgroups",
        gpu.describe()
    );
    gpu.subgroups = subgroups;
    let renderer = Renderer::new(&gpu);
    let backward = Backward::new(&gpu).expect("Mesa offers at least 8 storage buffers per stage");
    let frame = scene();
    let gaussians = GpuGaussians::upload(&gpu, &frame).unwrap();
    let buffers = renderer.buffers(&gpu, &gaussians, W, H, 1 << 12).unwrap();
    let w = weights();
    let dl = gpu.storage(
        "dl/dimage",
        (W * H * 16) as u64,
        wgpu::BufferUsages::empty(),
    );
    gpu.queue.write_buffer(&dl, 0, bytemuck::cast_slice(&w));
    let param_grads = Backward::param_grads(&gpu, &gaussians).unwrap();
    let grads = backward
        .buffers(&gpu, &buffers, &gaussians, &dl, &param_grads)
        .unwrap();
    renderer
        .set_view(&gpu, &buffers, &camera(), Vec3::new(0.1, 0.2, 0.3))
        .unwrap();
    let mut encoder = gpu.device.create_command_encoder(&Default::default());
    renderer.encode(&mut encoder, &buffers, None);
    backward.encode(&mut encoder, &grads);
    gpu.queue.submit([encoder.finish()]);
    let stride = GpuGaussians::stride(3);
    let raw = gpu
        .read(&param_grads, (frame.len() * stride * 4) as u64)
        .unwrap();
    let got: &[f32] = bytemuck::cast_slice(&raw);

    // Every pixel sees every Gaussian: the scene is smooth in all parameters.
    let img = renderer
        .render(
            &gpu,
            &gaussians,
            &mut None,
            &camera(),
            Vec3::new(0.1, 0.2, 0.3),
        )
        .unwrap();
    assert!(
        img.aux.iter().all(|a| a[2] as usize == frame.len()),
        "every splat covers every pixel"
    );

    let names = [
        "px", "py", "pz", "opacity", "sx", "sy", "sz", "qx", "qy", "qz", "qw", "dc r", "dc g",
        "dc b",
    ];
    let mut worst = 0.0f64;
    for i in 0..frame.len() {
        for k in 0..stride {
            let eps = 1e-3f32;
            let mut plus = frame.clone();
            *param(&mut plus, i, k) += eps;
            let mut minus = frame.clone();
            *param(&mut minus, i, k) -= eps;
            let fd = (cpu_loss(&plus, &w) - cpu_loss(&minus, &w)) / (2.0 * eps as f64);
            let g = got[i * stride + k] as f64;
            let err = (g - fd).abs() / fd.abs().max(0.05);
            worst = worst.max(err);
            let name = names.get(k).copied().unwrap_or("sh rest");
            assert!(
                err < 2e-2,
                "Gaussian {i} {name}: GPU {g:.5}, finite difference {fd:.5}"
            );
        }
    }
    eprintln!("worst relative error {worst:.2e}");
}

#[test]
fn random_and_degenerate_scenes_never_give_nan_gradients() {
    let gpu = Gpu::with_backends(wgpu::Backends::GL).unwrap();
    let renderer = Renderer::new(&gpu);
    let backward = Backward::new(&gpu).unwrap();
    let mut rng = splatcast_shaders::synthetic::Rng::new(0x1234_5678_9abc_def0u64);
    let mut next = move || rng.unit();
    for round in 0..4 {
        let mut f = GaussianFrame::with_capacity(400, 2);
        for _ in 0..400 {
            f.positions
                .push(Vec3::new(next(), next(), next()) * 2.0 - Vec3::ONE);
            f.rotations.push(Quat::from_xyzw(
                next() - 0.5,
                next() - 0.5,
                next() - 0.5,
                next() - 0.5,
            ));
            f.log_scales
                .push(Vec3::new(next(), next(), next()) * 4.0 - Vec3::splat(5.0));
            f.opacity_logits.push(next() * 12.0 - 6.0);
            f.sh_dc
                .push(Vec3::new(next(), next(), next()) * 4.0 - Vec3::splat(2.0));
            for _ in 0..8 {
                f.sh_rest
                    .push(Vec3::new(next(), next(), next()) - Vec3::splat(0.5));
            }
        }
        // Degenerate ones: zero quaternion, huge and tiny scales, one at the eye, one behind it.
        f.rotations[0] = Quat::from_xyzw(0.0, 0.0, 0.0, 0.0);
        f.log_scales[1] = Vec3::splat(15.0);
        f.log_scales[2] = Vec3::splat(-40.0);
        f.opacity_logits[3] = 30.0;
        let eye = DVec3::new(0.2 * round as f64, -0.3, -2.5 + round as f64);
        f.positions[4] = eye.as_vec3();
        let camera = Camera::look_at(eye, DVec3::ZERO, DVec3::NEG_Y, 60.0, 40, 30);
        let gaussians = GpuGaussians::upload(&gpu, &f).unwrap();
        let mut buffers = None;
        renderer
            .render(&gpu, &gaussians, &mut buffers, &camera, Vec3::ZERO)
            .unwrap();
        let buffers = buffers.unwrap();
        let weights: Vec<[f32; 4]> = (0..40 * 30)
            .map(|_| [next() - 0.5, next() - 0.5, next() - 0.5, 0.0])
            .collect();
        let dl = gpu.storage(
            "dl/dimage",
            (40 * 30 * 16) as u64,
            wgpu::BufferUsages::empty(),
        );
        gpu.queue
            .write_buffer(&dl, 0, bytemuck::cast_slice(&weights));
        let param_grads = Backward::param_grads(&gpu, &gaussians).unwrap();
        let grads = backward
            .buffers(&gpu, &buffers, &gaussians, &dl, &param_grads)
            .unwrap();
        renderer
            .set_view(&gpu, &buffers, &camera, Vec3::ZERO)
            .unwrap();
        let mut encoder = gpu.device.create_command_encoder(&Default::default());
        renderer.encode(&mut encoder, &buffers, None);
        backward.encode(&mut encoder, &grads);
        gpu.queue.submit([encoder.finish()]);
        let raw = gpu
            .read(&param_grads, (400 * GpuGaussians::stride(8) * 4) as u64)
            .unwrap();
        let got: &[f32] = bytemuck::cast_slice(&raw);
        assert!(
            got.iter().all(|v| v.is_finite()),
            "round {round}: non-finite gradient"
        );
        assert!(
            got.iter().any(|v| *v != 0.0),
            "round {round}: some gradient flows"
        );
    }
}

const CROWD: (u32, u32) = (40, 30);

/// 300 opaque, overlapping Gaussians and loss weights for a 40×30 view: tile lists longer than a
/// batch, and pixels that saturate long before their tile's list ends.
fn crowd() -> (GaussianFrame, Vec<[f32; 4]>) {
    let mut rng = splatcast_shaders::synthetic::Rng::new(7);
    let mut next = move || rng.unit();
    let mut f = GaussianFrame::with_capacity(300, 0);
    for _ in 0..300 {
        f.positions
            .push(Vec3::new(next(), next(), next()) * 1.6 - Vec3::splat(0.8));
        f.rotations.push(
            Quat::from_xyzw(next() - 0.5, next() - 0.5, next() - 0.5, next() - 0.5).normalize(),
        );
        f.log_scales
            .push(Vec3::new(next(), next(), next()) - Vec3::splat(1.5));
        f.opacity_logits.push(5.0);
        f.sh_dc
            .push(Vec3::new(next(), next(), next()) * 2.0 - Vec3::ONE);
    }
    let weights = (0..CROWD.0 * CROWD.1)
        .map(|_| [next() - 0.5, next() - 0.5, next() - 0.5, 0.0])
        .collect();
    (f, weights)
}

fn crowd_camera(x: f64) -> Camera {
    let (w, h) = CROWD;
    Camera::look_at(
        DVec3::new(x, -0.3, -1.6),
        DVec3::ZERO,
        DVec3::NEG_Y,
        60.0,
        w,
        h,
    )
}

/// Parameter gradients of the crowd seen from the last of `views`, all rendered in turn into
/// one set of buffers.
fn crowd_gradients(gpu: &Gpu, views: &[Camera]) -> Vec<f32> {
    let (frame, weights) = crowd();
    let (w, h) = CROWD;
    let renderer = Renderer::new(gpu);
    let backward = Backward::new(gpu).unwrap();
    let gaussians = GpuGaussians::upload(gpu, &frame).unwrap();
    let dl = gpu.storage(
        "dl/dimage",
        (w * h * 16) as u64,
        wgpu::BufferUsages::empty(),
    );
    gpu.queue
        .write_buffer(&dl, 0, bytemuck::cast_slice(&weights));
    let buffers = renderer.buffers(gpu, &gaussians, w, h, 1 << 16).unwrap();
    let param_grads = Backward::param_grads(gpu, &gaussians).unwrap();
    let grads = backward
        .buffers(gpu, &buffers, &gaussians, &dl, &param_grads)
        .unwrap();
    for view in views {
        renderer.set_view(gpu, &buffers, view, Vec3::ZERO).unwrap();
        let mut encoder = gpu.device.create_command_encoder(&Default::default());
        renderer.encode(&mut encoder, &buffers, None);
        backward.encode(&mut encoder, &grads);
        gpu.queue.submit([encoder.finish()]);
    }
    let raw = gpu
        .read(
            &param_grads,
            (frame.len() * GpuGaussians::stride(0) * 4) as u64,
        )
        .unwrap();
    bytemuck::cast_slice(&raw).to_vec()
}

/// Every float of `b` within 1e-4 of `a`'s largest magnitude.
fn assert_close(a: &[f32], b: &[f32], what: &str) {
    let scale = a.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    assert!(scale > 0.0, "some gradient flows");
    for (k, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            (x - y).abs() <= 1e-4 * scale,
            "record float {k}: {x} against {y} {what}"
        );
    }
}

/// Gradients of a view rendered into buffers that a previous view used match those of fresh
/// buffers, also for splats behind every pixel's last visible one: nothing of the previous
/// view's pass is carried over.
#[test]
fn reused_buffers_carry_nothing_over_between_views() {
    let gpu = Gpu::with_backends(wgpu::Backends::GL).unwrap();
    let saturated = Renderer::new(&gpu)
        .render(
            &gpu,
            &GpuGaussians::upload(&gpu, &crowd().0).unwrap(),
            &mut None,
            &crowd_camera(0.0),
            Vec3::ZERO,
        )
        .unwrap()
        .aux
        .iter()
        .filter(|a| a[1] < 1e-3)
        .count();
    assert!(
        saturated * 10 > (CROWD.0 * CROWD.1) as usize * 9,
        "{saturated} pixels saturate"
    );
    assert_close(
        &crowd_gradients(&gpu, &[crowd_camera(0.0)]),
        &crowd_gradients(&gpu, &[crowd_camera(0.8), crowd_camera(0.0)]),
        "after another view",
    );
}

/// Summing over subgroups first gives what workgroup atomics alone give, on tile lists several
/// batches long.
#[test]
#[ignore = "needs Vulkan (mesa-vulkan-drivers); .ci/run installs it"]
fn subgroup_sums_match_workgroup_atomics_on_long_tile_lists_on_vulkan() {
    let mut gpu = Gpu::with_backends(wgpu::Backends::VULKAN).unwrap();
    assert!(gpu.subgroups, "{} offers no subgroups", gpu.describe());
    let summed = crowd_gradients(&gpu, &[crowd_camera(0.0)]);
    gpu.subgroups = false;
    let atomics = crowd_gradients(&gpu, &[crowd_camera(0.0)]);
    assert_close(&atomics, &summed, "summed over subgroups");
}
