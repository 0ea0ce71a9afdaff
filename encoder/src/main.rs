//! `splatcast`: encode Gaussian sequences into Splatcast streams, decode and inspect them.

mod commands;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use splatcast_encoder::Quality;

/// Volumetric video as AV1-coded Gaussian planes in fragmented MP4.
#[derive(Parser)]
#[command(name = "splatcast", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Encode a frame or a sequence (directory or glob of PLY/.splat/SOG/SPZ files).
    Encode {
        /// Input file, directory or glob such as 'frames/wave_*.sog'.
        input: PathBuf,
        /// Output MP4.
        #[arg(short, long)]
        output: PathBuf,
        /// Frames per second.
        #[arg(long, default_value_t = 30.0)]
        fps: f64,
        /// Longest GOP in frames.
        #[arg(long, default_value_t = 30)]
        gop: usize,
        /// Size/fidelity preset.
        #[arg(long, value_enum, default_value_t = Quality::Medium)]
        quality: Quality,
        /// Target bitrate instead of constant quality, e.g. 800k or 2M (bits per second).
        #[arg(long)]
        bitrate: Option<String>,
    },
    /// Decode a Splatcast file to one PLY per frame.
    Decode {
        /// Input MP4.
        file: PathBuf,
        /// Output directory.
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Describe a Splatcast file: tracks, GOPs, bytes per attribute.
    Info {
        /// Input MP4.
        file: PathBuf,
    },
    /// Encode and decode a built-in procedural scene and print size and error.
    Demo {
        /// Keep the encoded file here instead of a temporary directory.
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Encode {
            input,
            output,
            fps,
            gop,
            quality,
            bitrate,
        } => commands::encode(&input, &output, fps, gop, quality, bitrate.as_deref()),
        Command::Decode { file, output } => commands::decode(&file, &output),
        Command::Info { file } => commands::info(&file),
        Command::Demo { output } => commands::demo(output.as_deref()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("splatcast: {e:#}");
            ExitCode::FAILURE
        }
    }
}
