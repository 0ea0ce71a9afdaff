//! The fused GPU loss (0.8 L1 + 0.2 D-SSIM) against the CPU metrics, and its gradient against
//! central finite differences of the CPU loss, on GL.

use glam::{Quat, Vec3};
use splatcast_protocol::GaussianFrame;
use splatcast_shaders::loss::Loss;
use splatcast_shaders::synthetic::Rng;
use splatcast_shaders::{Gpu, GpuGaussians, Renderer, metrics};

fn cpu_loss(x: &[[f32; 3]], y: &[[f32; 3]], w: usize, h: usize) -> f64 {
    let l1 = x
        .iter()
        .zip(y)
        .flat_map(|(a, b)| a.iter().zip(b).map(|(u, v)| (*u as f64 - *v as f64).abs()))
        .sum::<f64>()
        / (3 * x.len()) as f64;
    0.8 * l1 + 0.2 * (1.0 - metrics::ssim(x, y, w, h))
}

#[test]
fn loss_and_gradient_match_cpu_and_finite_differences() {
    let (w, h) = (23usize, 17usize);
    let gpu = Gpu::with_backends(wgpu::Backends::GL).unwrap();
    let renderer = Renderer::new(&gpu);
    // Any Gaussians: only the image buffer's layout matters here.
    let mut frame = GaussianFrame::with_capacity(1, 0);
    frame.positions.push(Vec3::ZERO);
    frame.rotations.push(Quat::IDENTITY);
    frame.log_scales.push(Vec3::ZERO);
    frame.opacity_logits.push(0.0);
    frame.sh_dc.push(Vec3::ZERO);
    let gaussians = GpuGaussians::upload(&gpu, &frame).unwrap();
    let image = renderer
        .buffers(&gpu, &gaussians, w as u32, h as u32, 1 << 10)
        .unwrap();
    let mut rng = Rng::new(77);
    // A smooth image plus noise, and a photo near it: SSIM well inside (0, 1).
    let rendered: Vec<[f32; 3]> = (0..w * h)
        .map(|i| {
            let (x, y) = ((i % w) as f32, (i / w) as f32);
            std::array::from_fn(|c| {
                0.5 + 0.3 * (0.3 * x + 0.2 * y + c as f32).sin() + 0.1 * (rng.unit() - 0.5)
            })
        })
        .collect();
    let photo: Vec<[f32; 3]> = rendered
        .iter()
        .map(|p| p.map(|v| (v + 0.2 * (rng.unit() - 0.5)).clamp(0.01, 0.99)))
        .collect();
    let packed: Vec<[f32; 4]> = rendered
        .iter()
        .flat_map(|p| [[p[0], p[1], p[2], 1.0], [0.0; 4]])
        .collect();
    gpu.queue
        .write_buffer(&image.image, 0, bytemuck::cast_slice(&packed));
    let loss = Loss::new(&gpu);
    let buffers = loss.buffers(&gpu, &image).unwrap();
    loss.set_target(&gpu, &buffers, &photo).unwrap();
    let mut encoder = gpu.device.create_command_encoder(&Default::default());
    loss.encode(&mut encoder, &buffers);
    gpu.queue.submit([encoder.finish()]);
    let raw = gpu.read(&buffers.grad, (w * h * 16) as u64).unwrap();
    let grad: &[[f32; 4]] = bytemuck::cast_slice(&raw);

    let want = cpu_loss(&rendered, &photo, w, h);
    let got: f64 = grad.iter().map(|g| g[3] as f64).sum();
    assert!((got - want).abs() < 1e-5, "loss {got} vs {want}");
    // The per-tile totals (23x17 spans two tiles by two, partly outside the image).
    let summed = loss.read_loss(&gpu, &buffers).unwrap();
    assert!(
        (summed - want).abs() < 1e-5,
        "summed loss {summed} vs {want}"
    );
    let psnr = loss.read_psnr(&gpu, &buffers).unwrap();
    let cpu_psnr = metrics::psnr(&rendered, &photo);
    assert!((psnr - cpu_psnr).abs() < 1e-3, "PSNR {psnr} vs {cpu_psnr}");

    let eps = 1e-3f32;
    let mut worst = 0.0f64;
    for _ in 0..40 {
        let p = (rng.unit() * (w * h) as f32) as usize % (w * h);
        let c = (rng.unit() * 3.0) as usize % 3;
        let mut plus = rendered.clone();
        plus[p][c] += eps;
        let mut minus = rendered.clone();
        minus[p][c] -= eps;
        let fd =
            (cpu_loss(&plus, &photo, w, h) - cpu_loss(&minus, &photo, w, h)) / (2.0 * eps as f64);
        let g = grad[p][c] as f64;
        let err = (g - fd).abs() / fd.abs().max(1e-5);
        worst = worst.max(err);
        assert!(
            err < 2e-2,
            "pixel {p} channel {c}: GPU {g:e}, finite difference {fd:e}"
        );
    }
    eprintln!("worst relative gradient error {worst:.2e}");
}
