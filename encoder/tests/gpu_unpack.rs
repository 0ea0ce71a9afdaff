//! The GPU unpack kernel turns decoded planes + side data into the same Gaussians as the CPU
//! decode path (`gop::unpack`), on the GL backend that every machine has.

use std::io::Cursor;

use splatcast_encoder::{EncodeOptions, SequenceEncoder, demo, stream_layout};
use splatcast_protocol::av1::Rav1dDecoder;
use splatcast_protocol::stream::StreamReader;
use splatcast_shaders::unpack::{Order, Placement, Unpacker};
use splatcast_shaders::{Gpu, GpuGaussians};

#[test]
fn gpu_unpack_matches_cpu_decode() {
    let options = EncodeOptions {
        gop: 3,
        ..EncodeOptions::default()
    };
    let n = 700;
    let mut enc = SequenceEncoder::new(Vec::new(), stream_layout(&options, n, 1), options, false);
    for t in 0..5 {
        enc.push(demo::galaxy_frame(n, t, 30.0)).unwrap();
    }
    let bytes = enc.finish().unwrap().output;
    let mut reader = StreamReader::open(Cursor::new(bytes)).unwrap();
    let mut decoder = Rav1dDecoder::new(1);
    let gpu = Gpu::with_backends(wgpu::Backends::GL).unwrap();
    let unpacker = Unpacker::new(&gpu);
    let mut checked = 0;
    for g in 0..reader.gop_count() {
        let cpu = reader.read_gop(g, &mut decoder).unwrap();
        let (_, side, planes) = reader.decode_planes(g, &mut decoder).unwrap();
        assert!(side.sh_degree > 0, "the test scene exercises SH planes");
        let out = unpacker.output(&gpu, &side).unwrap();
        let gop = unpacker
            .prepare(&gpu, &side, &out, Order::Coded, Placement::default())
            .unwrap();
        for (f, want) in cpu.frames.iter().enumerate() {
            let got = &unpacked(&gpu, &unpacker, &gop, &out, &planes, f);
            let expected = GpuGaussians::pack(want);
            assert_eq!(out.count as usize, want.len());
            let worst = expected
                .iter()
                .zip(got)
                .map(|(a, b)| (a - b).abs() / a.abs().max(1.0))
                .fold(0.0f32, f32::max);
            assert!(
                worst < 1e-5,
                "GOP {g} frame {f}: worst relative error {worst}"
            );
            checked += 1;
        }
        // Pictures of the wrong size are refused, not read out of bounds.
        let mut small = planes[0][0].clone();
        small.width -= 1;
        let mut pictures: Vec<_> = planes.iter().map(|track| &track[0]).collect();
        pictures[0] = &small;
        let mut encoder = gpu.device.create_command_encoder(&Default::default());
        assert!(
            unpacker
                .unpack(&gpu, &mut encoder, &gop, &pictures)
                .is_err()
        );
    }
    assert_eq!(checked, 5);

    // Placed in a shared output (the room view): its records land at `first`, moved by
    // `offset`, the SH coefficients it lacks zeroed, and nothing else is touched.
    let cpu = reader.read_gop(0, &mut decoder).unwrap();
    let (_, side, planes) = reader.decode_planes(0, &mut decoder).unwrap();
    let own = GpuGaussians::stride(out_sh_rest(&side));
    let wide = out_sh_rest(&side) + 5;
    let first = 37u32;
    let out = Unpacker::output_for(&gpu, first as usize + n + 11, wide).unwrap();
    let offset = glam::Vec3::new(10.0, 0.0, -2.0);
    let gop = unpacker
        .prepare(&gpu, &side, &out, Order::Coded, Placement { first, offset })
        .unwrap();
    let got = unpacked(&gpu, &unpacker, &gop, &out, &planes, 0);
    let stride = GpuGaussians::stride(wide);
    let expected = GpuGaussians::pack(&cpu.frames[0]);
    for (i, &value) in got.iter().enumerate().take(stride * out.count as usize) {
        let (g, k) = (i / stride, i % stride);
        let want = match g.checked_sub(first as usize) {
            Some(j) if j < n && k < own => {
                expected[j * own + k] + if k < 3 { offset[k] } else { 0.0 }
            }
            _ => 0.0,
        };
        assert!(
            (want - value).abs() <= 1e-5 * want.abs().max(1.0),
            "record {g} value {k}: {value} != {want}"
        );
    }
}

/// Frame `f` of the GOP's decoded planes unpacked on the GPU: the whole output buffer.
fn unpacked(
    gpu: &Gpu,
    unpacker: &Unpacker,
    gop: &splatcast_shaders::unpack::GpuGop,
    out: &GpuGaussians,
    planes: &[Vec<splatcast_protocol::av1::Picture>],
    f: usize,
) -> Vec<f32> {
    let pictures: Vec<_> = planes.iter().map(|track| &track[f]).collect();
    let mut encoder = gpu.device.create_command_encoder(&Default::default());
    unpacker.unpack(gpu, &mut encoder, gop, &pictures).unwrap();
    gpu.queue.submit([encoder.finish()]);
    let raw = gpu.read(&out.buffer, out.buffer.size()).unwrap();
    bytemuck::cast_slice(&raw).to_vec()
}

fn out_sh_rest(side: &splatcast_protocol::gop::GopSide) -> u32 {
    splatcast_protocol::gaussian::sh_rest_count(side.sh_degree) as u32
}
