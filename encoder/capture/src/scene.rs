//! Synthetic multi-view capture: a glTF model (skinned, morph-animated or static) played at a
//! chosen clip and rendered headless by bevy from a rig of virtual cameras, frame by frame,
//! exactly as a capture stage would record it — with the ground truth a real stage lacks (exact
//! cameras, joint positions, alpha masks).
//!
//! The app is driven from here, one update per frame (bevy's externally driven headless
//! pattern): the clip is paused and sought to each frame's time, so frames depend on the frame
//! index alone, never on wall-clock time, and the same arguments give the same bytes on the same
//! backend. Screenshots of frame k arrive while frame k + 1 renders and are written by a pool
//! of threads.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, mpsc};
use std::time::{Duration, Instant};

use bevy::asset::{LoadState, RecursiveDependencyLoadState, RenderAssetUsages};
use bevy::camera::RenderTarget;
use bevy::camera::primitives::Aabb;
use bevy::core_pipeline::tonemapping::Tonemapping;
use bevy::gltf::Gltf;
use bevy::mesh::skinning::SkinnedMesh;
use bevy::prelude::*;
use bevy::render::render_resource::{Extent3d, TextureDimension, TextureFormat};
use bevy::render::view::screenshot::{Screenshot, ScreenshotCaptured};
use bevy::world_serialization::{WorldAsset, WorldAssetRoot};

use splatcast_player::headless::write_png;
use splatcast_player::stage::Stage;

use crate::files::{joints_json, poses_bounds, transforms_json};
use crate::rig::{Layout, Rig, RigCamera};

/// Why a capture failed.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// The model could not be loaded.
    #[error("{path}: {message}")]
    Model {
        /// The glTF file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The options contradict each other or the model.
    #[error("{0}")]
    Options(String),
    /// Writing the data set failed.
    #[error("{path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The renderer did not deliver a frame in time.
    #[error("the renderer delivered no image for frame {0} within 60 s")]
    Stalled(usize),
}

/// What surrounds the model.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Background {
    /// A plain colour (linear RGB 0–1); masks are available.
    Plain([f32; 3]),
    /// A checkered dome far around the model (textured, consistent across views).
    Checker,
}

/// The rig before the model is known: anything left `None` is framed from its bounds.
#[derive(Clone, Debug)]
pub struct RigSpec {
    /// Ring or dome.
    pub layout: Layout,
    /// Training cameras.
    pub count: usize,
    /// Held-out cameras.
    pub held_out: usize,
    /// Distance to the look-at point (default: the whole model fits every view).
    pub radius: Option<f32>,
    /// Ring height above the look-at point (default: a quarter of the radius).
    pub height: Option<f32>,
    /// Look-at point (default: the centre of the model's bounds).
    pub look_at: Option<Vec3>,
    /// Vertical field of view in degrees.
    pub fov_y: f32,
    /// Image size in pixels.
    pub size: (u32, u32),
}

/// Everything a capture needs.
#[derive(Clone, Debug)]
pub struct CaptureOptions {
    /// The glTF (`.glb` or `.gltf`).
    pub model: PathBuf,
    /// Animation clip by name or index (default: the first, if any).
    pub clip: Option<String>,
    /// The camera rig.
    pub rig: RigSpec,
    /// Frames per second.
    pub fps: f32,
    /// Seconds to capture (default: one pass of the clip; 1 s for a model without animation).
    pub duration: Option<f32>,
    /// Clip time of the first frame.
    pub start: f32,
    /// What surrounds the model.
    pub background: Background,
    /// Also write alpha masks (plain background only).
    pub masks: bool,
    /// Pace frames in real time, like a live rig (otherwise as fast as possible).
    pub live: bool,
    /// The data set folder.
    pub output: PathBuf,
}

/// How a capture went.
#[derive(Clone, Debug)]
pub struct CaptureReport {
    /// Frames written per camera.
    pub frames: usize,
    /// The cameras (training, then held out).
    pub cameras: Vec<RigCamera>,
    /// The clip played, if any.
    pub clip: Option<String>,
    /// Wall-clock seconds of rendering and writing.
    pub seconds: f64,
    /// Frames in live mode that started later than their time.
    pub late_frames: usize,
    /// The adapter that rendered.
    pub adapter: String,
}

/// A screenshot on its way to the writers: frame, camera index, image.
type Shot = (usize, usize, Image);

/// The animation the capture plays: its player entity, graph node and clip length.
struct Playing {
    player: Entity,
    node: AnimationNodeIndex,
    duration: f32,
    name: String,
}

/// What the capture needs of a loaded glTF.
struct Model {
    scene: Handle<WorldAsset>,
    animations: Vec<Handle<AnimationClip>>,
    /// Clip names in clip order (unnamed clips are known by index).
    names: Vec<(String, Handle<AnimationClip>)>,
}

fn load_model(stage: &mut Stage, options: &CaptureOptions) -> Result<Model, String> {
    let name = options
        .model
        .file_name()
        .ok_or("not a file")?
        .to_string_lossy()
        .into_owned();
    let handle: Handle<Gltf> = stage.world().resource::<AssetServer>().load(name);
    let h = handle.clone();
    stage.until("loading", |world| {
        let server = world.resource::<AssetServer>();
        // A texture or buffer that fails fails the model: its error names the file and cause.
        match (
            server.load_state(&h),
            server.recursive_dependency_load_state(&h),
        ) {
            (LoadState::Failed(e), _) | (_, RecursiveDependencyLoadState::Failed(e)) => {
                Err(one_line(&e.to_string()))
            }
            (_, RecursiveDependencyLoadState::Loaded) => Ok(true),
            _ => Ok(false),
        }
    })?;
    let gltf = stage
        .world()
        .resource::<Assets<Gltf>>()
        .get(&handle)
        .ok_or("loaded but missing")?;
    let scene = gltf
        .default_scene
        .clone()
        .or_else(|| gltf.scenes.first().cloned())
        .ok_or("the glTF has no scene")?;
    let mut names: Vec<(String, Handle<AnimationClip>)> = gltf
        .named_animations
        .iter()
        .map(|(n, h)| (n.to_string(), h.clone()))
        .collect();
    names.sort_by_key(|(_, h)| gltf.animations.iter().position(|a| a == h));
    Ok(Model {
        scene,
        animations: gltf.animations.clone(),
        names,
    })
}

/// An error message on one line (bevy's nest causes over several).
fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Spawns the model's scene and, when it has animations, starts the chosen clip paused.
fn spawn_model(
    stage: &mut Stage,
    model: &Model,
    clip: Option<&str>,
) -> Result<Option<Playing>, String> {
    stage.world().spawn(WorldAssetRoot(model.scene.clone()));
    let animated = !model.animations.is_empty();
    stage.until("spawning the scene", |world| {
        let meshes = world.query::<&Mesh3d>().iter(world).count();
        let players = world.query::<&AnimationPlayer>().iter(world).count();
        Ok(meshes > 0 && (!animated || players > 0))
    })?;
    if !animated {
        return match clip {
            Some(c) => Err(format!("has no animations (asked for clip {c})")),
            None => Ok(None),
        };
    }
    let names = &model.names;
    let chosen = match clip {
        None => 0,
        Some(c) => match c.parse::<usize>() {
            Ok(i) if i < model.animations.len() => i,
            _ => names
                .iter()
                .find(|(n, _)| n == c)
                .and_then(|(_, h)| model.animations.iter().position(|a| a == h))
                .ok_or_else(|| {
                    let list: Vec<&str> = names.iter().map(|(n, _)| n.as_str()).collect();
                    format!("no clip {c}; clips: {}", list.join(", "))
                })?,
        },
    };
    let handle = model.animations[chosen].clone();
    let name = names
        .iter()
        .find(|(_, h)| *h == handle)
        .map_or_else(|| chosen.to_string(), |(n, _)| n.clone());
    let duration = stage
        .world()
        .resource::<Assets<AnimationClip>>()
        .get(&handle)
        .map(|c| c.duration())
        .ok_or("the clip is not loaded")?;
    let (graph, node) = AnimationGraph::from_clip(handle);
    let graph = stage
        .world()
        .resource_mut::<Assets<AnimationGraph>>()
        .add(graph);
    let world = stage.world();
    let player = world
        .query_filtered::<Entity, With<AnimationPlayer>>()
        .iter(world)
        .next()
        .ok_or("no animation player")?;
    world.entity_mut(player).insert(AnimationGraphHandle(graph));
    world
        .get_mut::<AnimationPlayer>(player)
        .ok_or("no animation player")?
        .play(node)
        .pause();
    Ok(Some(Playing {
        player,
        node,
        duration,
        name,
    }))
}

/// Shows clip time `t` (wrapped into the clip) on the next update.
fn seek(stage: &mut Stage, playing: Option<&Playing>, t: f32) {
    if let Some(p) = playing {
        let time = if p.duration > 0.0 {
            t.rem_euclid(p.duration)
        } else {
            0.0
        };
        if let Some(mut player) = stage.world().get_mut::<AnimationPlayer>(p.player)
            && let Some(active) = player.animation_mut(p.node)
        {
            active.set_seek_time(time);
        }
    }
}

/// Skin joints by name with their world positions (as of the last update).
fn joints(world: &mut World) -> Vec<(String, Vec3)> {
    let mut ids: Vec<Entity> = world
        .query::<&SkinnedMesh>()
        .iter(world)
        .flat_map(|s| s.joints.iter().copied())
        .collect();
    ids.sort();
    ids.dedup();
    let mut out: Vec<(String, Vec3)> = ids
        .into_iter()
        .filter_map(|e| {
            let name = world
                .get::<Name>(e)
                .map_or_else(|| format!("{e}"), |n| n.to_string());
            Some((name, world.get::<GlobalTransform>(e)?.translation()))
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// The model's bounding sphere over the clip: skin joints (widened by a fifth, as the skin
/// lies outside its bones) for skinned models, mesh boxes otherwise.
fn bounds(stage: &mut Stage, playing: Option<&Playing>) -> (Vec3, f32) {
    let mut lo = Vec3::splat(f32::INFINITY);
    let mut hi = Vec3::splat(f32::NEG_INFINITY);
    let samples = if playing.is_some() { 8 } else { 1 };
    let mut skinned = false;
    for i in 0..samples {
        let t = playing.map_or(0.0, |p| p.duration * i as f32 / samples as f32);
        seek(stage, playing, t);
        stage.update();
        let world = stage.world();
        let j = joints(world);
        skinned = !j.is_empty();
        for (_, p) in &j {
            lo = lo.min(*p);
            hi = hi.max(*p);
        }
        if !skinned {
            for (aabb, transform) in world.query::<(&Aabb, &GlobalTransform)>().iter(world) {
                let (c, h) = (Vec3::from(aabb.center), Vec3::from(aabb.half_extents));
                for k in 0..8 {
                    let corner = c + h * Vec3::new(
                        if k & 1 == 0 { -1.0 } else { 1.0 },
                        if k & 2 == 0 { -1.0 } else { 1.0 },
                        if k & 4 == 0 { -1.0 } else { 1.0 },
                    );
                    let p = transform.transform_point(corner);
                    lo = lo.min(p);
                    hi = hi.max(p);
                }
            }
        }
    }
    if !lo.is_finite() || !hi.is_finite() {
        return (Vec3::ZERO, 1.0);
    }
    let radius = 0.5 * (hi - lo).length() * if skinned { 1.2 } else { 1.0 };
    (0.5 * (lo + hi), radius.max(1e-3))
}

fn rig_for(spec: &RigSpec, centre: Vec3, radius: f32) -> Rig {
    let (w, h) = spec.size;
    let half_y = 0.5 * spec.fov_y.to_radians();
    let half_x = (half_y.tan() * w as f32 / h as f32).atan();
    // Far enough that the bounding sphere fits the narrower half field of view, with a margin.
    let distance = spec
        .radius
        .unwrap_or_else(|| radius / half_x.min(half_y).sin());
    Rig {
        layout: spec.layout,
        count: spec.count,
        held_out: spec.held_out,
        radius: distance,
        height: spec.height.unwrap_or(0.25 * distance),
        look_at: spec.look_at.unwrap_or(centre),
        fov_y: spec.fov_y,
        width: w,
        height_px: h,
    }
}

fn checker_dome(stage: &mut Stage, centre: Vec3, radius: f32) {
    let size = 256u32;
    let mut data = Vec::with_capacity((size * size * 4) as usize);
    for y in 0..size {
        for x in 0..size {
            let light = ((x / 16) + (y / 16)) % 2 == 0;
            data.extend(if light {
                [200, 200, 190, 255]
            } else {
                [70, 90, 120, 255]
            });
        }
    }
    let image = Image::new(
        Extent3d {
            width: size,
            height: size,
            depth_or_array_layers: 1,
        },
        TextureDimension::D2,
        data,
        TextureFormat::Rgba8UnormSrgb,
        RenderAssetUsages::RENDER_WORLD,
    );
    let world = stage.world();
    let texture = world.resource_mut::<Assets<Image>>().add(image);
    let material = world
        .resource_mut::<Assets<StandardMaterial>>()
        .add(StandardMaterial {
            base_color_texture: Some(texture),
            unlit: true,
            cull_mode: None,
            ..default()
        });
    let mesh = world
        .resource_mut::<Assets<Mesh>>()
        .add(Sphere::new(radius).mesh().uv(64, 32));
    world.spawn((
        Mesh3d(mesh),
        MeshMaterial3d(material),
        Transform::from_translation(centre),
    ));
}

fn write_error(path: &Path) -> impl FnOnce(std::io::Error) -> CaptureError + '_ {
    move |source| CaptureError::Write {
        path: path.to_owned(),
        source,
    }
}

/// Writes the rig's static files: `poses_bounds.npy` (training cameras in the output folder,
/// held-out ones in `heldout/`) and per-frame `transforms.json`.
fn write_rig_files(
    output: &Path,
    cameras: &[RigCamera],
    frames: usize,
    centre: Vec3,
    radius: f32,
) -> Result<(), CaptureError> {
    for (dir, held) in [(output.to_owned(), false), (output.join("heldout"), true)] {
        let group: Vec<&RigCamera> = cameras.iter().filter(|c| c.held_out == held).collect();
        if group.is_empty() {
            continue;
        }
        std::fs::create_dir_all(&dir).map_err(write_error(&dir))?;
        let distance = group
            .iter()
            .map(|c| c.position.distance(centre))
            .fold(0.0f32, f32::max);
        let near = (distance - 1.5 * radius).max(0.01 * distance);
        let far = distance + 1.5 * radius;
        let npy = dir.join("poses_bounds.npy");
        splatcast_protocol::atomic::write_file(&npy, &poses_bounds(&group, near, far))
            .map_err(write_error(&npy))?;
        for f in 0..frames {
            let path = dir.join(format!("frames/{f:04}/transforms.json"));
            std::fs::create_dir_all(path.parent().expect("has a folder"))
                .map_err(write_error(&path))?;
            splatcast_protocol::atomic::write_file(&path, transforms_json(&group, f).as_bytes())
                .map_err(write_error(&path))?;
        }
    }
    Ok(())
}

/// Writes the skin joints' world positions at `frame` (clip time `time`), if the model has any.
fn write_joints(
    output: &Path,
    frame: usize,
    time: f32,
    playing: Option<&Playing>,
    world: &mut World,
) -> Result<(), CaptureError> {
    let joints = joints(world);
    if joints.is_empty() {
        return Ok(());
    }
    let path = output.join(format!("joints/{frame:04}.json"));
    std::fs::create_dir_all(path.parent().expect("has a folder")).map_err(write_error(&path))?;
    let clip_time = playing.map_or(0.0, |p| time.rem_euclid(p.duration.max(1e-6)));
    splatcast_protocol::atomic::write_file(&path, joints_json(clip_time, &joints).as_bytes())
        .map_err(write_error(&path))
}

/// Writes one captured RGBA image as the camera's RGB frame (and mask).
fn write_frame(
    output: &Path,
    camera: &RigCamera,
    frame: usize,
    image: &Image,
    masks: bool,
) -> Result<(), CaptureError> {
    let (w, h) = (camera.width, camera.height);
    let pixels = (w * h) as usize;
    let data = image
        .data
        .as_deref()
        .filter(|d| d.len() == pixels * 4)
        .ok_or_else(|| {
            CaptureError::Options(format!(
                "{}: the screenshot has the wrong size",
                camera.name
            ))
        })?;
    let base = if camera.held_out {
        output.join("heldout")
    } else {
        output.to_owned()
    };
    let rgb: Vec<u8> = data
        .chunks_exact(4)
        .flat_map(|p| [p[0], p[1], p[2]])
        .collect();
    let path = base.join(format!("{}/{frame:04}.png", camera.name));
    write_png(&path, w, h, 3, &rgb).map_err(write_error(&path))?;
    if masks {
        let alpha: Vec<u8> = data.chunks_exact(4).map(|p| p[3]).collect();
        let path = base.join(format!("masks/{}/{frame:04}.png", camera.name));
        write_png(&path, w, h, 1, &alpha).map_err(write_error(&path))?;
    }
    Ok(())
}

/// Renders the model from the rig for every frame and writes the data set; `progress` hears
/// (frames done, frames in all).
pub fn capture(
    options: &CaptureOptions,
    mut progress: impl FnMut(usize, usize),
) -> Result<CaptureReport, CaptureError> {
    if options.masks && options.background == Background::Checker {
        return Err(CaptureError::Options(
            "masks need a plain background".into(),
        ));
    }
    let (w, h) = options.rig.size;
    if !(8..=8192).contains(&w) || !(8..=8192).contains(&h) {
        return Err(CaptureError::Options(format!(
            "image size {w}x{h} is outside 8 to 8192"
        )));
    }
    if options.rig.count == 0 || options.rig.count + options.rig.held_out > 100 {
        return Err(CaptureError::Options(
            "1 to 100 cameras in all (training + held out)".into(),
        ));
    }
    if !(options.fps > 0.0 && options.fps <= 1000.0) {
        return Err(CaptureError::Options("--fps must be in (0, 1000]".into()));
    }
    if !(1.0..=170.0).contains(&options.rig.fov_y) {
        return Err(CaptureError::Options(
            "--fov must be 1 to 170 degrees".into(),
        ));
    }
    let model_error = |message: String| CaptureError::Model {
        path: options.model.clone(),
        message,
    };
    let folder = options
        .model
        .parent()
        .map(Path::to_owned)
        .unwrap_or_default();
    let asset_root = std::path::absolute(&folder).map_err(|e| model_error(e.to_string()))?;
    if !options.model.is_file() {
        return Err(model_error("no such file".into()));
    }
    let mut stage = Stage::with_models(Some(&asset_root), |app| {
        app.insert_resource(GlobalAmbientLight {
            color: Color::WHITE,
            brightness: 600.0,
            ..default()
        });
    });
    let adapter = stage
        .world()
        .get_resource::<bevy::render::renderer::RenderAdapterInfo>()
        .map_or_else(String::new, |a| format!("{} ({:?})", a.name, a.backend));
    let model = load_model(&mut stage, options).map_err(model_error)?;
    let playing = spawn_model(&mut stage, &model, options.clip.as_deref()).map_err(model_error)?;
    let (centre, radius) = bounds(&mut stage, playing.as_ref());
    let rig = rig_for(&options.rig, centre, radius);
    let cameras = rig.cameras();
    let duration = options
        .duration
        .unwrap_or_else(|| playing.as_ref().map_or(1.0, |p| p.duration));
    let frames = ((duration * options.fps).round() as usize).max(1);
    if frames > 100_000 {
        return Err(CaptureError::Options(format!(
            "{frames} frames is too many (at most 100,000)"
        )));
    }

    // Lights and surroundings, then one render target and camera per rig camera.
    let world = stage.world();
    world.spawn((
        DirectionalLight {
            illuminance: 6000.0,
            ..default()
        },
        Transform::from_xyz(1.0, 2.0, 1.5).looking_at(Vec3::ZERO, Vec3::Y),
    ));
    let clear = match options.background {
        Background::Plain([r, g, b]) => Color::linear_rgba(r, g, b, 0.0),
        Background::Checker => Color::linear_rgba(0.0, 0.0, 0.0, 1.0),
    };
    if options.background == Background::Checker {
        checker_dome(&mut stage, rig.look_at, 20.0 * rig.radius.max(radius));
    }
    let mut targets = Vec::with_capacity(cameras.len());
    for c in &cameras {
        let handle = stage.render_target(w, h);
        let world = stage.world();
        world.spawn((
            Camera3d::default(),
            Camera {
                clear_color: ClearColorConfig::Custom(clear),
                ..default()
            },
            RenderTarget::Image(handle.clone().into()),
            Projection::Perspective(PerspectiveProjection {
                fov: options.rig.fov_y.to_radians(),
                aspect_ratio: w as f32 / h as f32,
                near: 0.01 * rig.radius,
                ..default()
            }),
            Tonemapping::None,
            Transform::from_translation(c.position).with_rotation(Quat::from_mat3(&c.rotation)),
        ));
        targets.push(handle);
    }
    write_rig_files(&options.output, &cameras, frames, centre, radius)?;

    // Screenshots go straight from bevy's observers to a pool of PNG writers, so rendering
    // never waits for encoding.
    let (sender, receiver) = mpsc::channel::<Option<Shot>>();
    let receiver = Mutex::new(receiver);
    let written = AtomicUsize::new(0);
    let failure: Mutex<Option<CaptureError>> = Mutex::new(None);
    let writers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let wanted = frames * cameras.len();
    let start = Instant::now();
    let mut late_frames = 0;
    std::thread::scope(|scope| -> Result<(), CaptureError> {
        for _ in 0..writers {
            scope.spawn(|| {
                while let Some((frame, cam, image)) =
                    receiver.lock().ok().and_then(|r| r.recv().ok()).flatten()
                {
                    let result =
                        write_frame(&options.output, &cameras[cam], frame, &image, options.masks);
                    if let (Err(e), Ok(mut slot)) = (result, failure.lock()) {
                        slot.get_or_insert(e);
                    }
                    written.fetch_add(1, Ordering::SeqCst);
                }
            });
        }
        let rendered = (|| {
            for frame in 0..frames {
                if options.live {
                    let due = start + Duration::from_secs_f64(frame as f64 / options.fps as f64);
                    match due.checked_duration_since(Instant::now()) {
                        Some(wait) => std::thread::sleep(wait),
                        None if frame > 0 => late_frames += 1,
                        None => {}
                    }
                }
                let time = options.start + frame as f32 / options.fps;
                seek(&mut stage, playing.as_ref(), time);
                for (cam, target) in targets.iter().enumerate() {
                    let sink = sender.clone();
                    stage
                        .world()
                        .spawn(Screenshot::image(target.clone()))
                        .observe(move |shot: On<ScreenshotCaptured>| {
                            let _ = sink.send(Some((frame, cam, shot.image.clone())));
                        });
                }
                stage.update();
                write_joints(
                    &options.output,
                    frame,
                    time,
                    playing.as_ref(),
                    stage.world(),
                )?;
                progress(frame + 1, frames);
            }
            // The last frames' images arrive on the following updates.
            let waiting = Instant::now();
            while written.load(Ordering::SeqCst) < wanted {
                stage.update();
                if waiting.elapsed() > Duration::from_secs(60) {
                    return Err(CaptureError::Stalled(
                        written.load(Ordering::SeqCst) / cameras.len(),
                    ));
                }
            }
            Ok(())
        })();
        for _ in 0..writers {
            let _ = sender.send(None);
        }
        rendered
    })?;
    if let Some(e) = failure.into_inner().ok().flatten() {
        return Err(e);
    }
    Ok(CaptureReport {
        frames,
        cameras,
        clip: playing.map(|p| p.name),
        seconds: start.elapsed().as_secs_f64(),
        late_frames,
        adapter,
    })
}
