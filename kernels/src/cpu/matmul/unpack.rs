//! Unpacking quantized rows into one common form: one unsigned byte per weight plus, per
//! 32-element group, `[a_lo, c_lo, a_hi, c_hi]` so that weight `e` of the group equals
//! `a·u[e] + c` with (a, c) of its 16-element half.
//!
//! Every integer kernel multiplies these bytes with the 8-bit activations. Q8_0 is signed; by
//! default it is stored as `w ^ 0x80` (= w + 128) with `c = −128·d`. Kernels whose integer dot
//! cannot take bytes up to 255 (AVX2's saturating `maddubs`) ask for `raw_q8` instead: the raw
//! i8 weights with `c = 0`, and they multiply them with the sign trick.
//!
//! The code is plain Rust written so that LLVM vectorizes it; the SIMD kernels inline it into
//! their own `#[target_feature]` functions.

use crate::quant::TensorType;
use crate::quant::reference::{f16_at, k4_scales_mins, q5_values, u32_at};
use std::cell::RefCell;

/// Elements per group of the unpacked form (and per activation block).
pub(super) const QK: usize = 32;

/// One or more unpacked rows: `cols` bytes and `cols / 8` floats (4 per group) per row. The
/// bytes are 64-byte aligned (rows of whole groups keep every group within one cache line).
#[derive(Default)]
pub(super) struct Unpacked {
    lines: Vec<Line>,
    len: usize,
    pub ac: Vec<f32>,
}

#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([u8; 64]);

impl Unpacked {
    /// Makes room for `rows` rows of `cols` elements.
    pub fn prepare(&mut self, rows: usize, cols: usize) {
        self.len = rows * cols;
        self.lines.resize(self.len.div_ceil(64), Line([0; 64]));
        self.ac.resize(rows * cols / QK * 4, 0.0);
    }

    /// The unpacked bytes.
    pub fn u(&self) -> &[u8] {
        // SAFETY: `lines` holds at least `len` initialised bytes (`Line` is plain bytes).
        unsafe { std::slice::from_raw_parts(self.lines.as_ptr().cast(), self.len) }
    }

    /// The unpacked bytes, mutable.
    pub fn u_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `u`, and the borrow is exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.lines.as_mut_ptr().cast(), self.len) }
    }

    /// Unpacks `row` into slot `i` (see [`unpack_row`]).
    #[inline(always)]
    pub fn unpack(&mut self, i: usize, ty: TensorType, row: &[u8], cols: usize, raw_q8: bool) {
        let acn = cols / QK * 4;
        let ac = &mut self.ac[i * acn..(i + 1) * acn];
        // SAFETY: as in `u_mut`; `ac` is a different allocation.
        let all = unsafe {
            std::slice::from_raw_parts_mut(self.lines.as_mut_ptr().cast::<u8>(), self.len)
        };
        unpack_row(ty, row, raw_q8, &mut all[i * cols..(i + 1) * cols], ac);
    }
}

thread_local! {
    /// Per-thread unpack buffer, so the hot path does not allocate after warm-up.
    pub(super) static UNPACK: RefCell<Unpacked> = RefCell::new(Unpacked::default());
}

/// Unpacks one row of a quantized type; `u.len()` is the number of elements and
/// `ac.len() == u.len() / 8`. Panics for float types.
#[inline(always)]
pub(super) fn unpack_row(ty: TensorType, row: &[u8], raw_q8: bool, u: &mut [u8], ac: &mut [f32]) {
    match ty {
        TensorType::Q4_0 => blocks::<18, 32>(row, u, ac, unpack_q4_0),
        TensorType::Q4_1 => blocks::<20, 32>(row, u, ac, unpack_q4_1),
        TensorType::Q5_0 => blocks::<22, 32>(row, u, ac, unpack_q5_0),
        TensorType::Q5_1 => blocks::<24, 32>(row, u, ac, unpack_q5_1),
        TensorType::Q8_0 if raw_q8 => blocks::<34, 32>(row, u, ac, unpack_q8_0::<true>),
        TensorType::Q8_0 => blocks::<34, 32>(row, u, ac, unpack_q8_0::<false>),
        TensorType::Q4_K => blocks::<144, 256>(row, u, ac, unpack_q4_k),
        TensorType::Q5_K => blocks::<176, 256>(row, u, ac, unpack_q5_k),
        TensorType::Q6_K => blocks::<210, 256>(row, u, ac, unpack_q6_k),
        TensorType::F32 | TensorType::F16 | TensorType::BF16 => {
            unreachable!("float rows are not unpacked")
        }
    }
}

#[inline(always)]
fn blocks<const BB: usize, const BE: usize>(
    row: &[u8],
    u: &mut [u8],
    ac: &mut [f32],
    f: impl Fn(&[u8; BB], &mut [u8; BE], &mut [f32]),
) {
    let acs = ac.chunks_exact_mut(BE / 8);
    for ((b, u), ac) in row.chunks_exact(BB).zip(u.chunks_exact_mut(BE)).zip(acs) {
        f(b.try_into().unwrap(), u.try_into().unwrap(), ac);
    }
}

#[inline(always)]
fn set_ac(ac: &mut [f32], a: f32, c: f32) {
    ac[..4].copy_from_slice(&[a, c, a, c]);
}

#[inline(always)]
fn split_nibbles(qs: &[u8], u: &mut [u8; 32]) {
    for j in 0..16 {
        u[j] = qs[j] & 0xF;
        u[j + 16] = qs[j] >> 4;
    }
}

#[inline(always)]
fn unpack_q4_0(b: &[u8; 18], u: &mut [u8; 32], ac: &mut [f32]) {
    let d = f16_at(b, 0);
    split_nibbles(&b[2..], u);
    set_ac(ac, d, -8.0 * d);
}

#[inline(always)]
fn unpack_q4_1(b: &[u8; 20], u: &mut [u8; 32], ac: &mut [f32]) {
    split_nibbles(&b[4..], u);
    set_ac(ac, f16_at(b, 0), f16_at(b, 2));
}

#[inline(always)]
fn unpack_q5_0(b: &[u8; 22], u: &mut [u8; 32], ac: &mut [f32]) {
    let d = f16_at(b, 0);
    *u = q5_values(u32_at(b, 2), &b[6..]);
    set_ac(ac, d, -16.0 * d);
}

#[inline(always)]
fn unpack_q5_1(b: &[u8; 24], u: &mut [u8; 32], ac: &mut [f32]) {
    *u = q5_values(u32_at(b, 4), &b[8..]);
    set_ac(ac, f16_at(b, 0), f16_at(b, 2));
}

#[inline(always)]
fn unpack_q8_0<const RAW: bool>(b: &[u8; 34], u: &mut [u8; 32], ac: &mut [f32]) {
    let d = f16_at(b, 0);
    let flip = if RAW { 0 } else { 0x80 };
    for (u, &q) in u.iter_mut().zip(&b[2..]) {
        *u = q ^ flip;
    }
    set_ac(ac, d, if RAW { 0.0 } else { -128.0 * d });
}

/// Q4_K and Q5_K: sub-block g of 32 has scale d·sc[g] and offset −dmin·mn[g].
#[inline(always)]
fn k_affine(b: &[u8], qs: &[u8], qh: Option<&[u8]>, u: &mut [u8; 256], ac: &mut [f32]) {
    let (d, dmin) = (f16_at(b, 0), f16_at(b, 2));
    let (sc, mn) = k4_scales_mins(&b[4..16]);
    for c in 0..4 {
        let q = &qs[32 * c..32 * c + 32];
        for l in 0..32 {
            u[64 * c + l] = q[l] & 0xF;
            u[64 * c + 32 + l] = q[l] >> 4;
        }
    }
    if let Some(qh) = qh {
        for g in 0..8 {
            for l in 0..32 {
                u[32 * g + l] |= ((qh[l] >> g) & 1) << 4;
            }
        }
    }
    for g in 0..8 {
        set_ac(&mut ac[4 * g..], d * sc[g] as f32, -dmin * mn[g] as f32);
    }
}

#[inline(always)]
fn unpack_q4_k(b: &[u8; 144], u: &mut [u8; 256], ac: &mut [f32]) {
    k_affine(b, &b[16..], None, u, ac);
}

#[inline(always)]
fn unpack_q5_k(b: &[u8; 176], u: &mut [u8; 256], ac: &mut [f32]) {
    k_affine(b, &b[48..], Some(&b[16..48]), u, ac);
}

/// Q6_K: value `q6` (0..63) with a = d·sc[e/16], c = −32·a.
#[inline(always)]
fn unpack_q6_k(b: &[u8; 210], u: &mut [u8; 256], ac: &mut [f32]) {
    let (ql, qh, sc) = (&b[0..128], &b[128..192], &b[192..208]);
    let d = f16_at(b, 208);
    for n in 0..2 {
        let (ql, qh, u) = (&ql[64 * n..], &qh[32 * n..], &mut u[128 * n..]);
        for l in 0..32 {
            u[l] = (ql[l] & 0xF) | ((qh[l] & 3) << 4);
            u[l + 32] = (ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4);
            u[l + 64] = (ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4);
            u[l + 96] = (ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4);
        }
    }
    for (i, &s) in sc.iter().enumerate() {
        let a = d * (s as i8) as f32;
        ac[2 * i] = a;
        ac[2 * i + 1] = -32.0 * a;
    }
}
