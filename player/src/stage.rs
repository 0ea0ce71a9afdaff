//! A bevy app without a window, driven from outside one update at a time (bevy's externally
//! driven headless pattern): what the capture tool and the player's headless mode render with.

use std::path::Path;
use std::time::{Duration, Instant};

use bevy::app::{PluginGroupBuilder, SubApps};
use bevy::asset::RenderAssetUsages;
use bevy::log::LogPlugin;
use bevy::prelude::*;
use bevy::render::RenderPlugin;
use bevy::render::render_resource::{
    Extent3d, PollType, TextureDimension, TextureFormat, TextureUsages,
};
use bevy::render::renderer::RenderDevice;
use bevy::window::ExitCondition;
use bevy::winit::WinitPlugin;

/// The bevy app, pumped by hand.
pub struct Stage {
    apps: SubApps,
}

impl Stage {
    /// A windowless app with bevy's default plugins (assets read from `asset_root`) without
    /// glTF models and PBR materials (see [`without_models`]), set up further by `configure`.
    pub fn new(asset_root: Option<&Path>, configure: impl FnOnce(&mut App)) -> Self {
        Self::build(asset_root, false, configure)
    }

    /// Like [`Stage::new`], keeping glTF loading and PBR materials: the capture tool's scenes.
    #[cfg(feature = "models")]
    pub fn with_models(asset_root: Option<&Path>, configure: impl FnOnce(&mut App)) -> Self {
        Self::build(asset_root, true, configure)
    }

    fn build(asset_root: Option<&Path>, models: bool, configure: impl FnOnce(&mut App)) -> Self {
        let mut app = App::new();
        let mut assets = AssetPlugin::default();
        if let Some(root) = asset_root {
            assets.file_path = root.to_string_lossy().into_owned();
        }
        let mut plugins = DefaultPlugins
            .set(WindowPlugin {
                primary_window: None,
                exit_condition: ExitCondition::DontExit,
                ..default()
            })
            .set(RenderPlugin {
                synchronous_pipeline_compilation: true,
                ..default()
            })
            .set(assets)
            .disable::<LogPlugin>()
            .disable::<WinitPlugin>();
        if !models {
            plugins = without_models(plugins);
        }
        app.add_plugins(plugins);
        configure(&mut app);
        app.finish();
        app.cleanup();
        Self {
            apps: std::mem::take(app.sub_apps_mut()),
        }
    }

    /// A new `w`×`h` sRGB image that cameras can render into and screenshots can read.
    pub fn render_target(&mut self, w: u32, h: u32) -> Handle<Image> {
        let mut image = Image::new_uninit(
            Extent3d {
                width: w,
                height: h,
                depth_or_array_layers: 1,
            },
            TextureDimension::D2,
            TextureFormat::Rgba8UnormSrgb,
            RenderAssetUsages::RENDER_WORLD,
        );
        image.texture_descriptor.usage |=
            TextureUsages::RENDER_ATTACHMENT | TextureUsages::COPY_SRC;
        self.world().resource_mut::<Assets<Image>>().add(image)
    }

    /// The main world.
    pub fn world(&mut self) -> &mut World {
        self.apps.main.world_mut()
    }

    /// One update, then wait for the GPU.
    pub fn update(&mut self) {
        self.apps.update();
        // A poll error means the device is gone; the stall timeout reports it.
        let _ = self
            .apps
            .main
            .world()
            .resource::<RenderDevice>()
            .wgpu_device()
            .poll(PollType::Wait {
                submission_index: None,
                timeout: None,
            });
    }

    /// Updates until `ready` says so, or fails after 60 s.
    pub fn until(
        &mut self,
        what: &str,
        mut ready: impl FnMut(&mut World) -> Result<bool, String>,
    ) -> Result<(), String> {
        let start = Instant::now();
        loop {
            self.update();
            if ready(self.world())? {
                return Ok(());
            }
            if start.elapsed() > Duration::from_secs(60) {
                return Err(format!("{what}: nothing after 60 s"));
            }
        }
    }
}

/// `plugins` without glTF loading and PBR materials, which splat playback does not use:
/// bevy_pbr's shadow shaders fail to compile on Mesa's GL backend, which stops bevy's render
/// world (the capture tool, which needs them, therefore runs on Vulkan only). They are only
/// there when some crate of the build (the capture tool) turns on the `models` feature.
pub fn without_models(plugins: PluginGroupBuilder) -> PluginGroupBuilder {
    #[cfg(feature = "models")]
    let plugins = plugins
        .disable::<bevy::pbr::PbrPlugin>()
        .disable::<bevy::gltf::GltfPlugin>();
    plugins
}
