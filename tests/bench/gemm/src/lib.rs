//! The kernels of tract-linalg's wasm tree on one packed matrix product, called from JavaScript:
//! `setup(kernel, m, k, n)` then `run()` (timed by the caller).

use std::cell::RefCell;
use tract_data::internal::*;
use tract_linalg::mmm::{AsInputValue, FusedSpec, MatMatMul};
use tract_linalg::MmmDispatch;

struct Job {
    mmm: Box<dyn MatMatMul>,
    m: usize,
    n: usize,
    pa: Box<dyn tract_linalg::mmm::MMMInputValue>,
    pb: Box<dyn tract_linalg::mmm::MMMInputValue>,
    c: Tensor,
}

thread_local! { static JOB: RefCell<Option<Job>> = RefCell::new(None); }

/// Prepares `m×k · k×n` with packed operands for `kernel`: 0 = the one tract picks, 1 = wasm_f32_8x8,
/// 2 = wasm_f32_4x16. Returns the kernel's tile as `mr * 1000 + nr`.
#[no_mangle]
pub extern "C" fn setup(kernel: u32, m: usize, k: usize, n: usize) -> u32 {
    let d = MmmDispatch::native();
    let mmm: Box<dyn MatMatMul> = match kernel {
        0 => d.preferred_kernel(DatumType::F32, Some(m), Some(k), Some(n)).unwrap(),
        1 => d.runnable().iter().find(|k| k.name() == "wasm_f32_8x8").unwrap().clone(),
        _ => d.runnable().iter().find(|k| k.name() == "wasm_f32_4x16").unwrap().clone(),
    };
    let av: Vec<f32> = (0..m * k).map(|i| ((i * 7919) % 13) as f32 * 0.1 - 0.6).collect();
    let bv: Vec<f32> = (0..k * n).map(|i| ((i * 104729) % 11) as f32 * 0.1 - 0.5).collect();
    let a = Tensor::from_shape(&[m, k], &av).unwrap();
    let b = Tensor::from_shape(&[k, n], &bv).unwrap();
    let packing = &mmm.packings()[0];
    let pa = packing.0.prepare_one(&a, 1, 0).unwrap();
    let pb = packing.1.prepare_one(&b, 0, 1).unwrap();
    let c = Tensor::zero::<f32>(&[m, n]).unwrap();
    let r = (mmm.mr() * 1000 + mmm.nr()) as u32;
    JOB.with_borrow_mut(|j| *j = Some(Job { mmm, m, n, pa, pb, c }));
    r
}

/// Runs the prepared product once; returns one output value (so that the work cannot be skipped).
#[no_mangle]
pub extern "C" fn run() -> f32 {
    JOB.with_borrow_mut(|j| {
        let j = j.as_mut().unwrap();
        unsafe {
            j.mmm
                .run(
                    j.m,
                    j.n,
                    &[
                        FusedSpec::AddMatMul {
                            a: AsInputValue::Borrowed(&*j.pa),
                            b: AsInputValue::Borrowed(&*j.pb),
                            packing: 0,
                        },
                        FusedSpec::Store(j.mmm.c_view(Some(0), Some(1)).wrap(&j.c.view_mut())),
                    ],
                )
                .unwrap();
        }
        *j.c.to_plain_array_view::<f32>().unwrap().iter().nth(j.c.len() / 2).unwrap()
    })
}
