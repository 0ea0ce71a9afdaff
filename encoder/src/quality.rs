//! Image quality of Gaussians as viewers see them: render a reference and a candidate from the
//! same cameras on the GPU and score PSNR (from the mean squared error over all views) and SSIM
//! (mean over views, computed in parallel).

use glam::Vec3;
use rayon::prelude::*;
use splatcast_protocol::GaussianFrame;
use splatcast_shaders::{Camera, Gpu, GpuGaussians, RenderBuffers, RenderError, Renderer, metrics};

/// Renders of one frame: linear RGB per camera.
pub type Views = Vec<Vec<[f32; 3]>>;

/// A GPU renderer with a fixed set of cameras.
pub struct ViewScorer {
    gpu: Gpu,
    renderer: Renderer,
    cameras: Vec<Camera>,
    background: Vec3,
}

/// Scores of one candidate frame against its reference.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FrameScore {
    /// PSNR in dB of the mean squared error over all views.
    pub psnr: f64,
    /// Mean SSIM over views, when asked for.
    pub ssim: Option<f64>,
}

impl ViewScorer {
    /// Opens the GPU and compiles the renderer.
    pub fn new(cameras: Vec<Camera>, background: Vec3) -> Result<Self, RenderError> {
        let gpu = Gpu::new()?;
        let renderer = Renderer::new(&gpu);
        Ok(Self {
            gpu,
            renderer,
            cameras,
            background,
        })
    }

    /// The adapter, for reports.
    pub fn describe(&self) -> String {
        self.gpu.describe()
    }

    /// Number of cameras.
    pub fn views(&self) -> usize {
        self.cameras.len()
    }

    /// Renders `frame` from every camera.
    pub fn render(&self, frame: &GaussianFrame) -> Result<Views, RenderError> {
        let gaussians = GpuGaussians::upload(&self.gpu, frame)?;
        let mut buffers: Option<RenderBuffers> = None;
        self.cameras
            .iter()
            .map(|c| {
                let image = self.renderer.render(
                    &self.gpu,
                    &gaussians,
                    &mut buffers,
                    c,
                    self.background,
                )?;
                Ok(image.rgba.iter().map(|p| [p[0], p[1], p[2]]).collect())
            })
            .collect()
    }

    /// Renders `frame` and scores it against `reference` (from [`ViewScorer::render`]).
    pub fn score(
        &self,
        reference: &Views,
        frame: &GaussianFrame,
        with_ssim: bool,
    ) -> Result<FrameScore, RenderError> {
        let candidate = self.render(frame)?;
        let mse = reference
            .iter()
            .zip(&candidate)
            .map(|(a, b)| metrics::mse(a, b))
            .sum::<f64>()
            / reference.len().max(1) as f64;
        let ssim = with_ssim.then(|| {
            let sum: f64 = reference
                .par_iter()
                .zip(&candidate)
                .zip(&self.cameras)
                .map(|((a, b), c)| metrics::ssim(a, b, c.width as usize, c.height as usize))
                .sum();
            sum / reference.len().max(1) as f64
        });
        Ok(FrameScore {
            psnr: metrics::psnr_from_mse(mse),
            ssim,
        })
    }
}
