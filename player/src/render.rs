//! The decode pipeline's GPU half, inside bevy's render graph: each frame the newest decoded
//! planes are uploaded and unpacked into Gaussians on the GPU, and for every camera that shows
//! splats the shaders crate's project → sort → rasterize runs in the camera's own render
//! schedule, followed by a full-screen pass into the camera's main texture. Nothing here waits
//! on the GPU: capacity and timings come back through non-blocking readbacks.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bevy::core_pipeline::core_2d::main_transparent_pass_2d;
use bevy::core_pipeline::{Core2d, Core2dSystems};
use bevy::prelude::*;
use bevy::render::extract_component::{ExtractComponent, ExtractComponentPlugin};
use bevy::render::extract_resource::{ExtractResource, ExtractResourcePlugin};
use bevy::render::renderer::{
    RenderAdapterInfo, RenderContext, RenderDevice, RenderQueue, ViewQuery,
};
use bevy::render::view::ViewTarget;
use bevy::render::{RenderApp, RenderStartup};
use splatcast_shaders::present::Presenter;
use splatcast_shaders::renderer::{RenderBuffers, Timestamps};
use splatcast_shaders::unpack::{GpuGop, Order, Placement, Unpacker};
use splatcast_shaders::{Camera, Gpu, GpuGaussians, Readback, Renderer};

use crate::decode::DecodedFrame;

/// What to show, set by playback in the main world: one stream's frame, or in the room view
/// every participant's newest frame, each at its place.
#[derive(Resource, Clone, Default, ExtractResource)]
pub struct ShownFrame {
    /// The streams on screen (none before the first frame arrives).
    pub layers: Vec<Layer>,
    /// Bumped whenever `layers` change, so the GPU unpacks each frame once.
    pub serial: u64,
}

/// One stream's frame in the scene.
#[derive(Clone)]
pub struct Layer {
    /// Which stream (a room's participant); stable while it stays.
    pub key: u64,
    /// Its decoded frame.
    pub frame: Arc<DecodedFrame>,
    /// Where it is placed: added to every position.
    pub offset: Vec3,
}

impl ShownFrame {
    /// Shows `frame` alone.
    pub fn show(&mut self, frame: Arc<DecodedFrame>) {
        self.layers = vec![Layer {
            key: 0,
            frame,
            offset: Vec3::ZERO,
        }];
        self.serial += 1;
    }
}

/// Put on a bevy camera to draw splats into it.
#[derive(Component, Clone, ExtractComponent)]
pub struct SplatView {
    /// The camera at the render resolution (the target is filled whatever its size).
    pub camera: Camera,
    /// Background colour (sRGB values in [0, 1]).
    pub background: Vec3,
    /// Most Gaussians drawn: above it the GPU unpacks in spread order and this view draws an
    /// even subsample (the device budget of phones).
    pub max_gaussians: u32,
}

/// What the GPU side reports back to the main world (for the overlay and benchmarks).
#[derive(Clone, Debug, Default)]
pub struct RenderReport {
    /// GPU time of the last timed render (project, sorts, rasterize), ms; `None` without
    /// timestamp queries.
    pub gpu_ms: Option<f64>,
    /// Gaussians in the frame shown.
    pub gaussians: u32,
    /// Frames unpacked on the GPU.
    pub unpacked: u64,
    /// Serial of the last frame unpacked.
    pub serial: u64,
    /// Render resolution of the last view drawn.
    pub size: (u32, u32),
    /// A problem the GPU side hit (shown in the overlay; the player keeps going).
    pub error: Option<String>,
}

/// Shared between the worlds: the render world writes, the main world reads.
#[derive(Resource, Clone, Default, ExtractResource)]
pub struct RenderFeedback(pub Arc<Mutex<RenderReport>>);

impl RenderFeedback {
    /// A copy of the latest report.
    pub fn get(&self) -> RenderReport {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn update(&self, f: impl FnOnce(&mut RenderReport)) {
        f(&mut self.0.lock().unwrap_or_else(|e| e.into_inner()));
    }
}

/// Adds the render-world half: extraction and the splat pass in every 2D camera's schedule.
pub struct SplatRenderPlugin;

impl Plugin for SplatRenderPlugin {
    fn build(&self, app: &mut App) {
        app.init_resource::<ShownFrame>()
            .init_resource::<RenderFeedback>()
            .add_plugins((
                ExtractResourcePlugin::<ShownFrame>::default(),
                ExtractResourcePlugin::<RenderFeedback>::default(),
                ExtractComponentPlugin::<SplatView>::default(),
            ));
        let Some(render_app) = app.get_sub_app_mut(RenderApp) else {
            return;
        };
        render_app
            .add_systems(RenderStartup, init_splat_gpu)
            .add_systems(
                Core2d,
                splat_pass
                    .in_set(Core2dSystems::MainPass)
                    .after(main_transparent_pass_2d),
            );
    }
}

/// Per camera: buffers at its render size, and its readbacks.
struct ViewState {
    buffers: RenderBuffers,
    pairs: Readback,
}

/// One stream's GOP on the GPU, bound to its place in the shared Gaussian buffer.
struct LayerState {
    key: u64,
    side: usize,
    placement: Placement,
    gop: GpuGop,
    /// The frame last unpacked.
    frame: usize,
}

/// Render-world state of the splat pass.
#[derive(Resource)]
struct SplatGpu {
    gpu: Gpu,
    renderer: Renderer,
    unpacker: Unpacker,
    presenter: Presenter,
    gaussians: Option<GpuGaussians>,
    /// Gaussians drawn (the device budget applies to a single stream's spread order).
    drawn: u32,
    layers: Vec<LayerState>,
    serial: u64,
    views: HashMap<Entity, ViewState>,
    timing: Option<(Timestamps, Readback)>,
}

fn init_splat_gpu(
    mut commands: Commands,
    device: Res<RenderDevice>,
    queue: Res<RenderQueue>,
    adapter: Res<RenderAdapterInfo>,
) {
    let gpu = Gpu::from_device(
        device.wgpu_device().clone(),
        (**queue.0).clone(),
        (*adapter.0).clone(),
    );
    let timing =
        Timestamps::new(&gpu).map(|t| (t, Readback::new(&gpu, Timestamps::BYTES, "phase times")));
    commands.insert_resource(SplatGpu {
        renderer: Renderer::new(&gpu),
        unpacker: Unpacker::new(&gpu),
        presenter: Presenter::new(&gpu),
        gpu,
        gaussians: None,
        drawn: 0,
        layers: Vec::new(),
        serial: 0,
        views: HashMap::new(),
        timing,
    });
}

impl SplatGpu {
    /// Unpacks the layers' frames into the shared Gaussian buffer, each at its place: a layer
    /// whose GOP, place or frame is unchanged costs nothing; the buffer is reallocated only
    /// when the total count or the widest SH degree changes.
    fn unpack(
        &mut self,
        encoder: &mut wgpu::CommandEncoder,
        layers: &[Layer],
        serial: u64,
        max_gaussians: u32,
    ) -> Result<(), String> {
        use splatcast_protocol::gaussian::sh_rest_count;
        self.serial = serial;
        let total: usize = layers
            .iter()
            .map(|l| l.frame.side.keyframe_positions.len())
            .sum();
        let sh_rest = layers
            .iter()
            .map(|l| sh_rest_count(l.frame.side.sh_degree) as u32)
            .max()
            .unwrap_or(0);
        let fits = self
            .gaussians
            .as_ref()
            .is_some_and(|g| g.count as usize == total && g.sh_rest == sh_rest);
        if !fits {
            self.gaussians =
                Some(Unpacker::output_for(&self.gpu, total, sh_rest).map_err(|e| e.to_string())?);
            self.views.clear();
            self.layers.clear();
        }
        let out = self.gaussians.as_ref().expect("made above");
        // A single stream over the budget is unpacked in spread order and drawn in part; a
        // room is drawn whole.
        let single = layers.len() == 1;
        let order = if single && (max_gaussians as usize) < total {
            Order::Spread
        } else {
            Order::Coded
        };
        self.drawn = if single {
            out.count.min(max_gaussians)
        } else {
            out.count
        };
        let mut old = std::mem::take(&mut self.layers);
        let mut first = 0u32;
        for layer in layers {
            let side = &layer.frame.side;
            let side_id = Arc::as_ptr(side) as usize;
            let placement = Placement {
                first,
                offset: glam::Vec3::from_array(layer.offset.to_array()),
            };
            let kept = old
                .iter()
                .position(|s| s.key == layer.key && s.side == side_id && s.placement == placement);
            let mut state = match kept {
                Some(i) => old.swap_remove(i),
                None => LayerState {
                    key: layer.key,
                    side: side_id,
                    placement,
                    gop: self
                        .unpacker
                        .prepare(&self.gpu, side, out, order, placement)
                        .map_err(|e| e.to_string())?,
                    frame: 0,
                },
            };
            let frame_id = Arc::as_ptr(&layer.frame) as usize;
            if state.frame != frame_id {
                let pictures: Vec<_> = layer.frame.pictures.iter().collect();
                self.unpacker
                    .unpack(&self.gpu, encoder, &state.gop, &pictures)
                    .map_err(|e| e.to_string())?;
                state.frame = frame_id;
            }
            first += side.keyframe_positions.len() as u32;
            self.layers.push(state);
        }
        Ok(())
    }

    /// Makes the view's buffers fit `size`, growing them when the last readback found them
    /// too small.
    fn fit_view(&mut self, entity: Entity, size: (u32, u32)) -> Result<(), String> {
        let all = self.gaussians.as_ref().ok_or("no frame yet")?;
        // The budget draws a prefix of the (spread) buffer.
        let gaussians = &GpuGaussians {
            buffer: all.buffer.clone(),
            count: self.drawn,
            sh_rest: all.sh_rest,
        };
        let mut capacity = None;
        if let Some(v) = self.views.get(&entity) {
            let wanted = v.pairs.poll().map(|raw| {
                u32::from_le_bytes(
                    raw.get(..4)
                        .and_then(|b| b.try_into().ok())
                        .unwrap_or([0; 4]),
                )
            });
            match wanted {
                Some(w) if w > v.buffers.capacity() => {
                    let max = (self.gpu.max_binding() / 8).min(u32::MAX as u64) as u32;
                    capacity = Some((w as u64 * 5 / 4).min(max as u64) as u32);
                }
                _ if v.buffers.size() != size || v.buffers.count() != gaussians.count => {
                    capacity = Some(v.buffers.capacity())
                }
                _ => {}
            }
        } else {
            capacity = Some(gaussians.count.saturating_mul(8).max(1 << 18));
        }
        if let Some(capacity) = capacity {
            let buffers = self
                .renderer
                .buffers(&self.gpu, gaussians, size.0, size.1, capacity)
                .map_err(|e| e.to_string())?;
            let pairs = Readback::new(&self.gpu, 4, "pairs wanted");
            self.views.insert(entity, ViewState { buffers, pairs });
        }
        Ok(())
    }
}

/// The splat pass of one camera: unpack (first camera of a frame), render, present.
fn splat_pass(
    view: ViewQuery<(&ViewTarget, &SplatView)>,
    shown: Res<ShownFrame>,
    feedback: Res<RenderFeedback>,
    mut state: ResMut<SplatGpu>,
    mut ctx: RenderContext,
) {
    let entity = view.entity();
    let (target, splat) = view.into_inner();
    let state = &mut *state;
    let _ = state.gpu.device.poll(wgpu::PollType::Poll);
    let encoder = ctx.command_encoder();
    if shown.serial != state.serial && !shown.layers.is_empty() {
        let result = state.unpack(encoder, &shown.layers, shown.serial, splat.max_gaussians);
        feedback.update(|r| {
            r.unpacked += 1;
            r.serial = shown.serial;
            r.gaussians = state.gaussians.as_ref().map_or(0, |g| g.count);
            if let Err(e) = &result {
                r.error = Some(format!("frame {}: {e}", shown.layers[0].frame.at.frame));
            }
        });
    }
    if state.gaussians.is_none() || shown.layers.is_empty() {
        return;
    }
    let texture = target.main_texture();
    let target_size = (texture.width(), texture.height());
    let camera = &splat.camera;
    let size = (camera.width, camera.height);
    if let Err(e) = state.fit_view(entity, size) {
        feedback.update(|r| r.error = Some(e));
        return;
    }
    let SplatGpu {
        gpu,
        renderer,
        presenter,
        views,
        timing,
        ..
    } = state;
    let view_state = &views[&entity];
    if let Some((_, readback)) = timing
        && let Some(raw) = readback.poll()
    {
        let ms: f64 = Timestamps::millis(gpu, &raw).iter().sum();
        feedback.update(|r| r.gpu_ms = Some(ms));
    }
    if let Err(e) = renderer.set_view(gpu, &view_state.buffers, camera, splat.background) {
        feedback.update(|r| r.error = Some(e.to_string()));
        return;
    }
    renderer.encode(
        encoder,
        &view_state.buffers,
        timing.as_ref().map(|(t, _)| t),
    );
    view_state
        .buffers
        .copy_pairs_wanted(encoder, &view_state.pairs);
    if let Some((t, readback)) = timing {
        t.copy(encoder, readback);
    }
    feedback.update(|r| r.size = size);
    presenter.encode(
        gpu,
        encoder,
        &view_state.buffers,
        target.main_texture_view(),
        target.main_texture_format(),
        target_size,
    );
}
