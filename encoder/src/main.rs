//! `splatcast`: encode Gaussian sequences into Splatcast streams, decode and inspect them.

mod capture;
mod commands;
mod net;
mod pictures;
mod training;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use splatcast_encoder::Quality;
use splatcast_encoder::views::Up;
use splatcast_protocol::stream::Fragmentation;

/// Volumetric video as AV1-coded Gaussian planes in fragmented MP4.
#[derive(Parser)]
#[command(name = "splatcast", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// `--fragment`: how the container groups samples.
#[derive(Clone, Copy, ValueEnum)]
enum FragmentArg {
    /// One fragment per GOP.
    Gop,
    /// One fragment per frame and track.
    Frame,
}

impl From<FragmentArg> for Fragmentation {
    fn from(f: FragmentArg) -> Self {
        match f {
            FragmentArg::Gop => Fragmentation::Gop,
            FragmentArg::Frame => Fragmentation::Frame,
        }
    }
}

/// Frame rate, GOP length and preset: the same for files and live streams.
#[derive(clap::Args)]
struct Coding {
    /// Frames per second.
    #[arg(long, default_value_t = 30.0)]
    fps: f64,
    /// Longest GOP in frames.
    #[arg(long, default_value_t = 30)]
    gop: usize,
    /// Size/fidelity preset [default: medium for Gaussian files; high for multi-view videos,
    /// whose learnt keyframes are pruned to fewer Gaussians].
    #[arg(long, value_enum)]
    quality: Option<Quality>,
    /// rav1e speed preset, 0 (slowest, smallest) to 10 (fastest); default: the quality
    /// preset's (9 for low and medium). BENCHMARKS.md lists what each costs.
    #[arg(long, value_parser = clap::value_parser!(u8).range(0..=10))]
    speed: Option<u8>,
    /// Leave out Gaussians whose opacity stays below this through a GOP, the threshold halved
    /// while they would carry more than 1 % of its opacity × footprint (trainers that spread a
    /// scene over faint Gaussians); 0 keeps every Gaussian. Default: the quality preset's (0.05;
    /// 0.02 for max). Learnt streams leave them out of each keyframe (see --prune-loss); live
    /// publishing codes each frame before its GOP is known and keeps every Gaussian.
    #[arg(long, value_parser = opacity)]
    prune_below: Option<f32>,
    /// Refuse input frames holding NaN or infinite values instead of dropping those Gaussians
    /// (one warning line per file says how many).
    #[arg(long)]
    strict: bool,
}

impl Coding {
    /// The sequence encoder's options these flags give.
    fn encode_options(&self, fragmentation: Fragmentation) -> splatcast_encoder::EncodeOptions {
        splatcast_encoder::EncodeOptions {
            fps: self.fps,
            gop: self.gop,
            quality: self.quality.unwrap_or(Quality::Medium),
            fragmentation,
            speed: self.speed,
            prune_below: self.prune_below,
            ..Default::default()
        }
    }
}

/// `--prune-below`: an opacity in [0, 1).
fn opacity(s: &str) -> Result<f32, String> {
    match s.parse::<f32>() {
        Ok(v) if (0.0..1.0).contains(&v) => Ok(v),
        _ => Err(format!("'{s}' is not an opacity in [0, 1)")),
    }
}

#[derive(Subcommand)]
enum Command {
    /// Encode a frame or a sequence (directory or glob of PLY/.splat/SOG/SPZ files), or learn a
    /// multi-view video (N3DV/LLFF camNN/ frame folders or camNN.mp4, per-frame
    /// frames/NNNN/transforms.json, splatcast-capture output) into a stream.
    Encode {
        /// Input file, directory or glob such as 'frames/wave_*.sog', or a multi-view video
        /// folder.
        input: PathBuf,
        /// Output MP4.
        #[arg(short, long)]
        output: PathBuf,
        #[command(flatten)]
        coding: Coding,
        /// Target bitrate instead of constant quality, e.g. 800k or 2M (bits per second).
        #[arg(long)]
        bitrate: Option<String>,
        /// Container fragments: one per GOP (smallest), or one per frame and track (the chunks
        /// a live MoQ stream carries; the file replays into MoQ unchanged).
        #[arg(long, value_enum, default_value_t = FragmentArg::Gop)]
        fragment: FragmentArg,
        /// Code as `publish` does live: each GOP planned at its key frame alone, frames coded
        /// one at a time (rav1e low latency), per-frame fragments — a recording of the live
        /// stream, to compare with the file encoder's.
        #[arg(long, conflicts_with_all = ["bitrate", "fragment"])]
        as_live: bool,
        /// Multi-view videos: learn online, taking each frame when its time comes at the frame
        /// rate and capping each residual frame's steps to keep up.
        #[arg(long)]
        live: bool,
        #[command(flatten)]
        learning: LearnArgs,
    },
    /// Score streams (or Gaussian sequences) of a multi-view video against the photos of its
    /// held-out cameras: PSNR and SSIM per frame and on average, MB/frame, learning s/frame.
    EvalCapture {
        /// The multi-view video folder.
        dataset: PathBuf,
        /// Streams (MP4) or sequences (directory or glob of splat files), one frame per
        /// video frame.
        #[arg(required = true)]
        candidates: Vec<PathBuf>,
        /// Downscale the photos by this factor.
        #[arg(long, default_value_t = 1)]
        resolution: u32,
        /// Background colour R,G,B in [0, 1] the renders composite over.
        #[arg(long, default_value = "0,0,0")]
        background: String,
        /// Chart of held-out PSNR over the frames (PNG); beside it `.bytes.png`, kB per frame
        /// of each stream.
        #[arg(long)]
        plot: Option<PathBuf>,
    },
    /// Decode a Splatcast file to one PLY per frame.
    Decode {
        /// Input MP4.
        file: PathBuf,
        /// Output directory.
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Convert one frame of anything we read (PLY, compressed PLY, .splat, SOG, SPZ, a frame of
    /// a Splatcast MP4 or of a sequence) to PLY, .splat or SPZ, by the output's extension.
    Convert {
        /// Input file, folder or glob.
        input: PathBuf,
        /// Output: .ply (Inria 3DGS), .splat or .spz.
        #[arg(short, long)]
        output: PathBuf,
        /// Frame of a stream or sequence.
        #[arg(long, default_value_t = 0)]
        frame: usize,
        /// Refuse a file holding NaN or infinite values instead of dropping those Gaussians.
        #[arg(long)]
        strict: bool,
    },
    /// Describe a Splatcast file: tracks, GOPs, bytes per attribute.
    Info {
        /// Input MP4.
        file: PathBuf,
    },
    /// Render one frame of any input (PLY, .splat, SOG, SPZ, Splatcast MP4) to a PNG on the GPU.
    Render {
        /// Input file, sequence (directory or glob) or Splatcast MP4.
        input: PathBuf,
        /// Frame of a sequence or MP4.
        #[arg(long, default_value_t = 0)]
        frame: usize,
        #[command(flatten)]
        views: ViewArgs,
        /// View of --transforms to render.
        #[arg(long, default_value_t = 0)]
        view: usize,
        /// Output PNG.
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Render a reference and candidates from the same cameras; print PSNR and SSIM per frame and
    /// bytes per Gaussian per frame; optionally plot rate against distortion.
    Eval {
        /// The reference (uncompressed) input.
        reference: PathBuf,
        /// Candidates: encodes (MP4) or other renditions of the same frames.
        #[arg(required = true)]
        candidates: Vec<PathBuf>,
        /// Frames to compare: `A..B`, `A..`, or one index (default: all).
        #[arg(long)]
        frames: Option<String>,
        /// Cameras on the ring around the scene.
        #[arg(long, default_value_t = 16)]
        views: usize,
        #[command(flatten)]
        view_args: ViewArgs,
        /// Draw a rate-distortion chart (PNG): one curve per file-stem prefix before the last `_`.
        #[arg(long)]
        plot: Option<PathBuf>,
    },
    /// Learn 3D Gaussians from posed photos (transforms.json, COLMAP sparse/0, LLFF/N3DV).
    Train {
        /// Dataset folder (or its transforms.json).
        dataset: PathBuf,
        /// Output PLY; beside it: .checkpoint.ply, .report.md, .heldout.png.
        #[arg(short, long)]
        output: PathBuf,
        /// Optimisation steps.
        #[arg(long, default_value_t = 7000)]
        iterations: u32,
        /// Gaussian budget (fixed for the run, kept by relocation).
        #[arg(long, default_value_t = 300_000)]
        max_gaussians: usize,
        /// Downscale the photos by this factor (1 = full size).
        #[arg(long, default_value_t = 1)]
        resolution: u32,
        /// Highest SH degree.
        #[arg(long, default_value_t = 3)]
        sh_degree: u8,
        /// Hold out every n-th view (sorted by file name) for evaluation; 0 keeps all.
        #[arg(long, default_value_t = 8)]
        hold_out: usize,
        /// Steps between checkpoints.
        #[arg(long, default_value_t = 1000)]
        checkpoint_every: u32,
        /// Start from a checkpoint PLY (optimizer state starts fresh).
        #[arg(long)]
        resume: Option<PathBuf>,
        /// Random seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[command(flatten)]
        tuning: Tuning,
    },
    /// Publish a stream to a MoQ relay: replay a Splatcast MP4 at its frame rate, encode a
    /// sequence of Gaussian frames live and send each frame as soon as it is coded, or learn a
    /// multi-view video online and send each GOP as soon as it is coded.
    Publish {
        /// A Splatcast MP4, Gaussian frames (file, directory or glob), or a multi-view video
        /// folder.
        input: PathBuf,
        /// moq://host:port/rooms/ROOM/NAME (raw QUIC) or https://… (WebTransport); the token
        /// goes in as ?jwt=TOKEN (from `splatcast token`).
        #[arg(long)]
        to: String,
        #[command(flatten)]
        trust: net::TrustArgs,
        /// Replay the file again and again.
        #[arg(long = "loop")]
        looped: bool,
        /// Encode Gaussian frames at several qualities, each a rendition of the broadcast
        /// (e.g. low,medium,high); viewers switch between them at GOP boundaries from what
        /// they measure.
        #[arg(long, value_enum, value_delimiter = ',')]
        ladder: Vec<Quality>,
        /// How Gaussian frames are coded (live encoding).
        #[command(flatten)]
        coding: Coding,
        /// How a multi-view video is learnt (always online).
        #[command(flatten)]
        learning: LearnArgs,
    },
    /// Run a single-machine MoQ relay: rooms as path prefixes (rooms/ROOM/NAME), tokens checked,
    /// the latest GOP of every track cached for late joiners.
    Relay(net::RelayArgs),
    /// Check our tokens for moq-relay: the HTTP server its `--auth-url` asks, with the same
    /// rule as `splatcast relay` (publishing needs a token; private rooms need one to watch).
    Auth(net::AuthArgs),
    /// Serve Splatcast MP4s on demand over MoQ, with seeking: each file at vod/NAME (its file
    /// stem); players fetch any GOP (`splatcast-player moq://HOST:PORT/vod/NAME`).
    Serve(net::ServeArgs),
    /// Mint an access token (or make the signing key with --generate).
    Token(net::TokenArgs),
    /// Encode and decode a built-in procedural scene and print size and error.
    Demo {
        /// Keep the encoded file here instead of a temporary directory.
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// rav1e speed preset, 0 to 10 (default: the medium preset's).
        #[arg(long, value_parser = clap::value_parser!(u8).range(0..=10))]
        speed: Option<u8>,
        /// Gaussians in the galaxy.
        #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u32).range(1_000..=5_000_000))]
        gaussians: u32,
    },
}

/// How a multi-view video is learnt (`encode` of a multi-view video folder only).
#[derive(clap::Args)]
struct LearnArgs {
    /// Steps of the first keyframe, trained from scratch.
    #[arg(long, default_value_t = 3000)]
    iterations: u32,
    /// Steps of later keyframes, refreshed from the previous decoded frame.
    #[arg(long, default_value_t = 1000)]
    refresh_iterations: u32,
    /// How keyframes after the first are trained.
    #[arg(long, value_enum, default_value_t = splatcast_encoder::learn::Refresh::Auto)]
    refresh: splatcast_encoder::learn::Refresh,
    /// Steps of each residual frame (online: at most this many).
    #[arg(long, default_value_t = 300)]
    residual_iterations: u32,
    /// Where a residual frame's training starts: the previous decoded frame (`still`) or that
    /// frame moved on at its last decoded motion (`velocity`).
    #[arg(long, value_enum, default_value_t = splatcast_encoder::residual::Prediction::Velocity)]
    prediction: splatcast_encoder::residual::Prediction,
    /// Fraction of each residual frame's steps trained on half-size photos first.
    #[arg(long, default_value_t = 0.5)]
    coarse: f32,
    /// Gaussian budget of the stream.
    #[arg(long, default_value_t = 100_000)]
    max_gaussians: usize,
    /// Downscale the photos by this factor (1 = full size).
    #[arg(long, default_value_t = 1)]
    resolution: u32,
    /// Highest SH degree.
    #[arg(long, default_value_t = 1)]
    sh_degree: u8,
    /// Background colour R,G,B in [0, 1] of the photos.
    #[arg(long, default_value = "0,0,0")]
    background: String,
    /// Weight of the residuals' L1 rate term.
    #[arg(long, default_value_t = 0.01)]
    rate: f32,
    /// New GOP when a residual frame is this many dB below its keyframe (training views;
    /// offline only: online, a refresh gets no more steps than the residual frame had).
    #[arg(long, default_value_t = 1.5)]
    quality_drop: f64,
    /// Training-view dB a keyframe may lose when its faint Gaussians (below --prune-below)
    /// are left out; the threshold is halved until it loses no more.
    #[arg(long, default_value_t = 0.5)]
    prune_loss: f64,
}

/// The trainer's initialisation and 3DGS-MCMC knobs (unset: the library's defaults).
#[derive(clap::Args)]
struct Tuning {
    /// Opacity of the initial Gaussians [default: 0.1].
    #[arg(long)]
    init_opacity: Option<f32>,
    /// Initial size as a fraction of the neighbour spacing [default: 1].
    #[arg(long)]
    init_scale: Option<f32>,
    /// Weight of the mean-opacity penalty [default: 0.01].
    #[arg(long)]
    opacity_reg: Option<f32>,
    /// Weight of the mean-scale penalty [default: 0.01].
    #[arg(long)]
    scale_reg: Option<f32>,
    /// Position noise of transparent Gaussians, relative to the position rate [default: 5e5].
    #[arg(long)]
    noise_lr: Option<f32>,
}

impl Tuning {
    fn apply(
        &self,
        mut o: splatcast_encoder::train::TrainOptions,
    ) -> splatcast_encoder::train::TrainOptions {
        let pick = |v: Option<f32>, d: f32| v.unwrap_or(d);
        o.init_opacity = pick(self.init_opacity, o.init_opacity);
        o.init_scale = pick(self.init_scale, o.init_scale);
        o.opacity_reg = pick(self.opacity_reg, o.opacity_reg);
        o.scale_reg = pick(self.scale_reg, o.scale_reg);
        o.noise_lr = pick(self.noise_lr, o.noise_lr);
        o
    }
}

/// Where cameras come from.
#[derive(clap::Args)]
struct ViewArgs {
    /// Orbit camera: AZIMUTH,ELEVATION[,DISTANCE[,FOV]] (degrees; distance in scene radii).
    #[arg(long)]
    camera: Option<String>,
    /// Cameras from a nerfstudio / instant-ngp transforms.json instead of an orbit.
    #[arg(long)]
    transforms: Option<PathBuf>,
    /// Image size WIDTHxHEIGHT (default 960x720 for render, 512x512 for eval, or the transforms').
    #[arg(long)]
    size: Option<String>,
    /// World direction shown as up for orbit cameras.
    #[arg(long, default_value = "-y", allow_hyphen_values = true)]
    up: Up,
    /// Background colour R,G,B in [0, 1].
    #[arg(long, default_value = "0,0,0")]
    background: String,
}

impl ViewArgs {
    fn choice(&self) -> pictures::ViewChoice {
        pictures::ViewChoice {
            orbit: self.camera.clone(),
            transforms: self.transforms.clone(),
            size: self.size.clone(),
            up: self.up,
        }
    }
}

/// The learnt encoder's options from the command line (`live`: online).
fn learn_options(
    coding: &Coding,
    bitrate: Option<&str>,
    fragmentation: Fragmentation,
    (a, live): (&LearnArgs, bool),
) -> anyhow::Result<splatcast_encoder::learn::LearnOptions> {
    anyhow::ensure!(coding.gop >= 1, "--gop must be at least 1");
    let background = pictures::parse_background(&a.background)?;
    let keyframe = splatcast_encoder::train::TrainOptions {
        iterations: a.iterations,
        max_gaussians: a.max_gaussians,
        downscale: a.resolution,
        sh_degree: a.sh_degree,
        background,
        report_every: a.iterations.max(1),
        ..Default::default()
    };
    training::check_options(&keyframe)?;
    let defaults = splatcast_encoder::learn::LearnOptions::default();
    Ok(splatcast_encoder::learn::LearnOptions {
        keyframe,
        refresh_iterations: a.refresh_iterations.max(1),
        refresh: a.refresh,
        residual: splatcast_encoder::residual::ResidualOptions {
            iterations: a.residual_iterations.max(1),
            rate: a.rate,
            prediction: a.prediction,
            coarse: a.coarse,
            background,
            ..Default::default()
        },
        encode: splatcast_encoder::EncodeOptions {
            bitrate: bitrate.map(commands::parse_bitrate).transpose()?,
            quality: coding
                .quality
                .unwrap_or(splatcast_encoder::learn::LEARNT_QUALITY),
            ..coding.encode_options(fragmentation)
        },
        quality_drop: a.quality_drop,
        prune_loss: a.prune_loss,
        live_budget: live.then_some(1.0 / coding.fps),
        ..defaults
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Encode {
            input,
            output,
            coding,
            bitrate,
            fragment,
            as_live,
            live,
            learning,
        } => {
            if splatcast_encoder::multiview::MultiViewVideo::detect(&input) {
                learn_options(
                    &coding,
                    bitrate.as_deref(),
                    fragment.into(),
                    (&learning, live),
                )
                .and_then(|options| capture::encode(&input, &output, options))
            } else {
                let options = coding.encode_options(fragment.into());
                if as_live {
                    commands::encode_as_live(&input, &output, options, coding.strict)
                } else {
                    commands::encode(&input, &output, options, bitrate.as_deref(), coding.strict)
                }
            }
        }
        Command::EvalCapture {
            dataset,
            candidates,
            resolution,
            background,
            plot,
        } => pictures::parse_background(&background)
            .and_then(|bg| capture::eval(&dataset, &candidates, resolution, bg, plot.as_deref())),
        Command::Decode { file, output } => commands::decode(&file, &output),
        Command::Convert {
            input,
            output,
            frame,
            strict,
        } => commands::convert(&input, &output, frame, strict),
        Command::Publish {
            input,
            to,
            trust,
            looped,
            ladder,
            coding,
            learning,
        } => {
            let learn = splatcast_encoder::multiview::MultiViewVideo::detect(&input)
                .then(|| learn_options(&coding, None, Fragmentation::Frame, (&learning, true)))
                .transpose();
            learn.and_then(|learn| {
                net::publish(net::PublishArgs {
                    input,
                    to,
                    trust,
                    looped,
                    ladder,
                    options: coding.encode_options(Fragmentation::Frame),
                    strict: coding.strict,
                    learn,
                })
            })
        }
        Command::Relay(args) => net::relay(args),
        Command::Auth(args) => net::auth(args),
        Command::Serve(args) => net::serve(args),
        Command::Token(args) => net::token(args),
        Command::Info { file } => commands::info(&file),
        Command::Render {
            input,
            frame,
            views,
            view,
            output,
        } => pictures::render(
            &input,
            frame,
            &views.choice(),
            view,
            &views.background,
            &output,
        ),
        Command::Eval {
            reference,
            candidates,
            frames,
            views,
            view_args,
            plot,
        } => pictures::eval(
            &reference,
            &candidates,
            frames.as_deref(),
            views,
            &view_args.choice(),
            &view_args.background,
            plot.as_deref(),
        ),
        Command::Train {
            dataset,
            output,
            iterations,
            max_gaussians,
            resolution,
            sh_degree,
            hold_out,
            checkpoint_every,
            resume,
            seed,
            tuning,
        } => training::train(
            &dataset,
            &output,
            tuning.apply(splatcast_encoder::train::TrainOptions {
                iterations,
                max_gaussians,
                downscale: resolution,
                sh_degree,
                seed,
                checkpoint_every,
                report_every: 100,
                ..Default::default()
            }),
            &training::TrainArgs { hold_out, resume },
        ),
        Command::Demo {
            output,
            speed,
            gaussians,
        } => commands::demo(output.as_deref(), speed, gaussians as usize),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("splatcast: {e:#}");
            ExitCode::FAILURE
        }
    }
}
