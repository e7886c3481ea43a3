//! CPU kernels.

pub mod attention;
pub mod matmul;
pub mod norm;
pub mod rope;
pub mod sampling;
